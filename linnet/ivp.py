r"""Gradient flow by SciPy's ODE solvers on the flattened weights (host float64): stiff and long horizons.

Shared by the diagonal map (:mod:`linnet.diagonal`) and the tied map (:mod:`linnet.tied`), and, through
:func:`dense_flow`, by dense nets where a stiff integrator (LSODA) over a long horizon is needed (THEOREMS2 §16b:
:math:`t = 10^6`), which the batched explicit integrator of :mod:`linnet.train` is not built for. To fold into the
training driver once it takes product maps and integrators as capabilities.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from ._backend import from_host, namespace, to_numpy
from ._validate import check_int, check_matrix, check_opt_positive, check_positive, check_real

__all__ = ["FlowRun", "FLOW_STATUSES", "integrate", "dense_flow"]


#: the ways a flow ends (``FlowRun.status``)
FLOW_STATUSES = ("t_max", "ftol", "max_steps", "diverged")


class FlowRun(NamedTuple):
    """Result of :func:`integrate`.

    Attributes
    ----------
    weights : tuple of arrays, the final weights (namespace and dtype of the input)
    t : ndarray ``(T,)`` float64, output times: every accepted step (or the ``t_eval`` times) up to the end, and
        the end time when the run ends before ``t_max``
    states : ndarray ``(T, P)`` float64, the flattened weights at ``t``
    loss : ndarray ``(T,)`` float64, the loss at ``t`` (summed over a batch of nets)
    stopped : bool, whether the ``ftol`` event ended the run before ``t_max``
    status : str, how the run ended: ``"t_max"`` (reached it), ``"ftol"`` (the loss reached ``ftol``),
        ``"max_steps"`` (the step budget ran out first), ``"diverged"`` (the weights became non-finite or larger
        than :data:`linnet.train.DIVERGENCE_FACTOR`, or the solver's step fell below the spacing of floats, as it
        does at a finite-time blow-up; the run keeps its last accepted state)
    message : str, the solver's message when the run is ``"diverged"``, else ``""``
    """

    weights: tuple
    t: np.ndarray
    states: np.ndarray
    loss: np.ndarray
    stopped: bool
    status: str = "t_max"
    message: str = ""


def integrate(
    grad_flat: Callable,
    loss_flat: Callable,
    Ws: Sequence[Any],
    *,
    t_max: float,
    t_eval: Any = None,
    ftol: Any = None,
    method: str = "DOP853",
    rtol: float = 1e-10,
    atol: float = 1e-13,
    max_steps: int = 1_000_000,
) -> FlowRun:
    """Integrate :math:`\\dot\\theta = -\\nabla L(\\theta)` from ``Ws`` to ``t_max`` (or until ``L <= ftol``).

    ``grad_flat`` and ``loss_flat`` take a tuple of float64 host arrays shaped like ``Ws`` and return the tuple
    of gradients and the (summed) loss. The integrator is SciPy's ``method`` (an ``OdeSolver``), stepped here so
    that the run is bounded: at most ``max_steps`` solver steps, and a run that blows up ends with status
    ``"diverged"`` at its last accepted state instead of a warning, an error from SciPy or a NaN. ``ftol`` ends the run at the time the loss crosses it, found by root finding on the solver's dense output
    (as ``solve_ivp``'s terminal events do); a run that starts at or below ``ftol`` ends at ``t = 0``.
    """
    for name, fn in (("grad_flat", grad_flat), ("loss_flat", loss_flat)):
        if not callable(fn):
            raise ValueError(f"`{name}` must be a callable, got {type(fn).__name__}")
    Ws = check_arrays(Ws)
    t_max, t_eval, ftol, rtol, atol = check_flow_options(t_max, t_eval, ftol, method, rtol, atol)
    max_steps = check_int(max_steps, "max_steps")
    import scipy.integrate as si

    shapes = [tuple(W.shape) for W in Ws]
    y0 = np.concatenate([np.asarray(to_numpy(W), dtype=np.float64).ravel() for W in Ws])
    split, rhs, loss_at = _flat_callbacks(grad_flat, loss_flat, shapes)
    _check_callbacks(grad_flat, loss_flat, split(y0), shapes)
    solver = getattr(si, method)(rhs, 0.0, y0, t_max, rtol=rtol, atol=atol)
    ts, ys, status, message = _march(solver, y0, loss_at, t_eval, ftol, max_steps)
    states = np.asarray(ys)
    losses = np.asarray([loss_at(y) for y in states])
    xp_ref = Ws[0]
    xp = namespace(xp_ref)
    final = tuple(from_host(a, xp, xp_ref.dtype) for a in split(states[-1]))
    message = message if status == "diverged" else ""
    return FlowRun(final, np.asarray(ts, dtype=np.float64), states, losses, status == "ftol", status, message)


def _flat_callbacks(grad_flat: Callable, loss_flat: Callable, shapes: list) -> tuple:
    """``(split, rhs, loss_at)`` on the flattened float64 state: ``split`` cuts it into arrays of ``shapes``,
    ``rhs(t, y)`` is the flow's right-hand side and ``loss_at(y)`` the loss, both silent on overflow."""
    sizes = [int(np.prod(s)) for s in shapes]

    def split(y):
        out, k = [], 0
        for s, n in zip(shapes, sizes):
            out.append(y[k : k + n].reshape(s))
            k += n
        return tuple(out)

    def rhs(_t, y):  # may be non-finite at a trial state: the solver then rejects the step and shrinks it
        with np.errstate(all="ignore"):
            return -np.concatenate([np.ravel(g) for g in grad_flat(split(y))])

    def loss_at(y):
        with np.errstate(all="ignore"):
            return float(loss_flat(split(y)))

    return split, rhs, loss_at


def _march(solver: Any, y0: np.ndarray, loss_at: Callable, t_eval: Any, ftol: Any, max_steps: int) -> tuple:
    """Step ``solver`` from ``y0`` until it reaches its end, the loss crosses ``ftol``, ``max_steps`` run out or
    the state diverges; ``(ts, ys, status, message)``: the output times and states, how the run ended and the
    solver's last message."""
    from scipy.optimize import brentq

    from .train.trajectory import DIVERGENCE_FACTOR

    ts, ys = [], []
    k = 0  # the next t_eval time to output
    if t_eval is None:
        ts.append(0.0), ys.append(y0)
    status = "ftol" if ftol is not None and loss_at(y0) <= ftol else "t_max"
    # the last accepted state: where the run ends unless ftol is crossed
    t_old, y_old, steps, message = 0.0, y0, 0, None
    while status == "t_max" and solver.status == "running":
        if steps >= max_steps:
            status = "max_steps"
            break
        with np.errstate(all="ignore"):  # trial steps may overflow: they are rejected, or the run is "diverged"
            message = solver.step()
        steps += 1
        y = solver.y
        if solver.status == "failed" or not np.all(np.isfinite(y)) or np.max(np.abs(y)) > DIVERGENCE_FACTOR:
            status = "diverged"
            message = message or "the weights left the finite numbers or exceeded DIVERGENCE_FACTOR"
            break
        t_new, dense = solver.t, None
        if ftol is not None and loss_at(y) <= ftol:
            dense = solver.dense_output()
            t_hit = brentq(lambda t, d=dense: loss_at(d(t)) - ftol, t_old, t_new, xtol=1e-14 * max(1.0, abs(t_new)))
            y = dense(t_hit)
            t_new, status = t_hit, "ftol"
        if t_eval is None:
            ts.append(t_new), ys.append(y)
        else:
            k = _emit_t_eval(solver, t_eval, k, (t_old, y_old), (t_new, y), dense, ts, ys)
        t_old, y_old = t_new, y
    if status != "t_max" and (not ts or ts[-1] != t_old):  # the end state, when the run stops before t_max
        ts.append(float(t_old)), ys.append(y_old)
    return ts, ys, status, message


def _emit_t_eval(solver: Any, t_eval: Any, k: int, old: tuple, new: tuple, dense: Any, ts: list, ys: list) -> int:
    """Append to ``ts``, ``ys`` the ``t_eval`` times from the ``k``-th on that the step from ``old = (t, y)`` to
    ``new`` covers, with their states (the step's ends, or the solver's dense output between); the next ``k``."""
    (t_old, y_old), (t_new, y) = old, new
    while k < len(t_eval) and t_eval[k] <= t_new:
        if t_eval[k] == t_new or t_eval[k] <= t_old:  # at a step's end (or t_eval[0] = 0 before the first)
            ys.append(y if t_eval[k] == t_new else y_old)
        else:
            dense = dense if dense is not None else solver.dense_output()
            ys.append(dense(t_eval[k]))
        ts.append(float(t_eval[k]))
        k += 1
    return k


def check_arrays(Ws: Any, name: str = "Ws") -> tuple:
    """A tuple or list of >= 1 finite float32/float64 arrays of one namespace and one dtype (any shapes)."""
    if not isinstance(Ws, (tuple, list)):
        raise ValueError(f"`{name}` must be a tuple or list of arrays, got {type(Ws).__name__}")
    if len(Ws) < 1:
        raise ValueError(f"`{name}` must hold at least one array, got 0")
    first, xp = check_matrix(Ws[0], f"{name}[0]", min_ndim=1)
    out = [first]
    for j, W in enumerate(Ws[1:], start=1):
        W, _ = check_matrix(W, f"{name}[{j}]", xp=xp, min_ndim=1, other=f"`{name}[0]`")
        if W.dtype != first.dtype:
            raise ValueError(f"`{name}` must share one dtype: `{name}[0]` is {first.dtype}, `{name}[{j}]` is {W.dtype}")
        out.append(W)
    return tuple(out)


def check_flow_options(t_max, t_eval, ftol, method, rtol, atol):
    """``(t_max, t_eval, ftol, rtol, atol)`` checked for :func:`integrate` (``ValueError`` naming the argument)."""
    t_max = check_positive(t_max, "t_max")
    if not isinstance(method, str) or method not in ("DOP853", "LSODA", "RK45", "Radau", "BDF"):
        raise ValueError(f"`method` must be one of DOP853, LSODA, RK45, Radau, BDF, got {method!r}")
    if t_eval is not None:
        t_eval = check_real(t_eval, "t_eval")
        if t_eval.ndim != 1 or np.any(np.diff(t_eval) <= 0) or t_eval[0] < 0 or t_eval[-1] > t_max:
            raise ValueError(f"`t_eval` must be increasing times in [0, t_max={t_max}], got {t_eval!r}")
    ftol = check_opt_positive(ftol, "ftol")
    rtol = check_opt_positive(rtol, "rtol")
    atol = check_opt_positive(atol, "atol")
    # solve_ivp raises rtol below 100 eps to that bound with a warning: refuse it here instead
    if rtol is None or not 100 * np.finfo(np.float64).eps <= rtol < 1:
        raise ValueError(
            f"`rtol` must be a real number in [100 eps, 1) = [{100 * np.finfo(np.float64).eps:.3g}, 1), got {rtol!r}"
        )
    if atol is None:
        raise ValueError("`atol` must be a real number > 0, got None")
    return t_max, t_eval, ftol, rtol, atol


def _check_callbacks(grad_flat, loss_flat, Ws, shapes) -> None:
    """One call of each callback at the start: gradients shaped like the weights, a finite real loss."""
    G = grad_flat(Ws)
    got = [tuple(np.shape(g)) for g in G] if isinstance(G, (tuple, list)) else None
    if got != shapes:
        raise ValueError(
            f"`grad_flat` must return a tuple of arrays of the shapes of `Ws` {shapes}, got "
            f"{got if got is not None else type(G).__name__} (a batched loss needs weights with its batch shape)"
        )
    L = loss_flat(Ws)
    try:
        L = float(L)
    except (TypeError, ValueError):
        raise ValueError(f"`loss_flat` must return a real number, got {type(L).__name__}") from None
    if not np.isfinite(L):
        raise ValueError(f"`loss_flat` must be finite at the initial weights, got {L}")


def broadcast_to_problem(loss: Any, Ws: tuple, We: Any) -> tuple:
    """The layers broadcast to the batch shape of the loss at their end-to-end matrix ``We`` (as the trainers do)."""
    xp = namespace(*Ws)
    batch = tuple(loss.value(We).shape)
    return tuple(xp.broadcast_to(W, batch + tuple(W.shape[-2:])) for W in Ws)


def dense_flow(
    loss, Ws, *, t_max: float, t_eval=None, ftol=None, method="LSODA", rtol=1e-10, atol=1e-13, max_steps=1_000_000
) -> FlowRun:
    r"""Layer-wise gradient flow :math:`\dot W_j = -\partial L/\partial W_j` of a dense net (one net, NumPy loss).

    The gradient is the engine's (:func:`linnet.grad`); the integrator is SciPy's, stepped by :func:`integrate`
    (whose keywords these are).
    """
    from ._validate import check_loss, check_loss_against, check_problem_batch, check_weights
    from .calculus import grad
    from .calculus import loss as deep_loss
    from .product import end_to_end

    loss = check_loss(loss)
    Ws, xp = check_weights(Ws)
    if namespace(*Ws) is not namespace(np.zeros(1)):
        raise ValueError("`Ws` must be NumPy arrays (the flow runs on the host in float64)")
    We = end_to_end(Ws)
    loss = check_loss_against(loss, We)
    check_problem_batch(loss, We)
    Ws = broadcast_to_problem(loss, Ws, We)

    def g(W):
        return grad(loss, W)

    def f(W):
        return float(np.sum(deep_loss(loss, W)))

    return integrate(
        g, f, Ws, t_max=t_max, t_eval=t_eval, ftol=ftol, method=method, rtol=rtol, atol=atol, max_steps=max_steps
    )
