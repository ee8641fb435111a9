r"""Gradient flow by SciPy's ``solve_ivp`` on the flattened weights (host float64): stiff and long horizons.

Shared by the diagonal map (:mod:`linnet.diagonal`) and the tied map (:mod:`linnet.tied`), and, through
:func:`dense_flow`, by dense nets where a stiff integrator (LSODA) over a long horizon is needed (THEOREMS2 §16b:
:math:`t = 10^6`), which the batched explicit integrator of :mod:`linnet.train` is not built for. To fold into the
training driver once it takes product maps and integrators as capabilities.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from ._backend import from_host, namespace, to_numpy
from ._validate import check_matrix, check_opt_positive, check_positive, check_real

__all__ = ["FlowRun", "integrate", "dense_flow"]


class FlowRun(NamedTuple):
    """Result of :func:`integrate`.

    Attributes
    ----------
    weights : tuple of arrays, the final weights (namespace and dtype of the input)
    t : ndarray ``(T,)`` float64, output times (``t_eval`` up to the stop, then the stop time)
    states : ndarray ``(T, P)`` float64, the flattened weights at ``t``
    loss : ndarray ``(T,)`` float64, the loss at ``t`` (summed over a batch of nets)
    stopped : bool, whether the ``ftol`` event ended the run before ``t_max``
    """

    weights: tuple
    t: np.ndarray
    states: np.ndarray
    loss: np.ndarray
    stopped: bool


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
) -> FlowRun:
    """Integrate :math:`\\dot\\theta = -\\nabla L(\\theta)` from ``Ws`` to ``t_max`` (or until ``L <= ftol``).

    ``grad_flat`` and ``loss_flat`` take a tuple of float64 host arrays shaped like ``Ws`` and return the tuple
    of gradients and the (summed) loss.
    """
    for name, fn in (("grad_flat", grad_flat), ("loss_flat", loss_flat)):
        if not callable(fn):
            raise ValueError(f"`{name}` must be a callable, got {type(fn).__name__}")
    Ws = check_arrays(Ws)
    t_max, t_eval, ftol, rtol, atol = check_flow_options(t_max, t_eval, ftol, method, rtol, atol)
    from scipy.integrate import solve_ivp

    shapes = [tuple(W.shape) for W in Ws]
    sizes = [int(np.prod(s)) for s in shapes]
    y0 = np.concatenate([np.asarray(to_numpy(W), dtype=np.float64).ravel() for W in Ws])

    def split(y):
        out, k = [], 0
        for s, n in zip(shapes, sizes):
            out.append(y[k : k + n].reshape(s))
            k += n
        return tuple(out)

    def rhs(_t, y):
        return -np.concatenate([g.ravel() for g in grad_flat(split(y))])

    _check_callbacks(grad_flat, loss_flat, split(y0), shapes)
    events = None
    if ftol is not None:
        f = ftol

        def reached(_t, y):
            return float(loss_flat(split(y))) - f

        reached.terminal = True
        events = reached
    sol = solve_ivp(rhs, (0.0, t_max), y0, method=method, rtol=rtol, atol=atol, t_eval=t_eval, events=events)
    if sol.status < 0:
        raise ValueError(f"gradient flow failed to integrate with `method` = {method!r}: {sol.message}")
    stopped = sol.status == 1
    ts, ys = list(sol.t), list(sol.y.T)
    if stopped:
        ts.append(float(sol.t_events[0][0]))
        ys.append(sol.y_events[0][0])
    if not ys:  # t_eval empty before the stop: keep the start
        ts, ys = [0.0], [y0]
    states = np.asarray(ys)
    losses = np.asarray([float(loss_flat(split(y))) for y in states])
    xp_ref = Ws[0]
    xp = namespace(xp_ref)
    final = tuple(from_host(a, xp, xp_ref.dtype) for a in split(states[-1]))
    return FlowRun(final, np.asarray(ts), states, losses, bool(stopped))


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
    if rtol is None or rtol < 100 * np.finfo(np.float64).eps:
        raise ValueError(f"`rtol` must be a real number >= 100 eps = {100 * np.finfo(np.float64).eps:.3g}, got {rtol!r}")
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


def dense_flow(loss, Ws, *, t_max: float, t_eval=None, ftol=None, method="LSODA", rtol=1e-10, atol=1e-13) -> FlowRun:
    r"""Layer-wise gradient flow :math:`\dot W_j = -\partial L/\partial W_j` of a dense net (one net, NumPy loss).

    The gradient is the engine's (:func:`linnet.grad`); the integrator is ``scipy.integrate.solve_ivp``.
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

    return integrate(g, f, Ws, t_max=t_max, t_eval=t_eval, ftol=ftol, method=method, rtol=rtol, atol=atol)
