r"""Gradient flow by SciPy's ``solve_ivp`` on the flattened weights (host float64): stiff and long horizons.

Shared by the diagonal map (:mod:`linnet.diagonal`) and the tied map (:mod:`linnet.tied`), and, through
:func:`dense_flow`, by dense nets where a stiff integrator (LSODA) over a long horizon is needed (THEOREMS2 §16b:
:math:`t = 10^6`), which the batched explicit integrator of :mod:`linnet.train` is not built for. To fold into the
training driver once it takes product maps and integrators as capabilities.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from ._backend import from_host, to_numpy
from ._validate import check_positive

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
    t_max = check_positive(t_max, "t_max")
    if method not in ("DOP853", "LSODA", "RK45", "Radau", "BDF"):
        raise ValueError(f"`method` must be one of DOP853, LSODA, RK45, Radau, BDF, got {method!r}")
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

    events = None
    if ftol is not None:
        f = check_positive(ftol, "ftol")

        def reached(_t, y):
            return float(loss_flat(split(y))) - f

        reached.terminal = True
        events = reached
    if t_eval is not None:
        t_eval = np.asarray(t_eval, dtype=np.float64)
        if t_eval.ndim != 1 or np.any(np.diff(t_eval) <= 0) or t_eval[0] < 0 or t_eval[-1] > t_max:
            raise ValueError(f"`t_eval` must be increasing times in [0, t_max={t_max}], got {t_eval!r}")
    sol = solve_ivp(rhs, (0.0, t_max), y0, method=method, rtol=rtol, atol=atol, t_eval=t_eval, events=events)
    if sol.status < 0:
        raise ValueError(f"gradient flow failed to integrate ({method}): {sol.message}")
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
    from ._backend import namespace

    xp = namespace(xp_ref)
    final = tuple(from_host(a, xp, xp_ref.dtype) for a in split(states[-1]))
    return FlowRun(final, np.asarray(ts), states, losses, bool(stopped))


def dense_flow(loss, Ws, *, t_max: float, t_eval=None, ftol=None, method="LSODA", rtol=1e-10, atol=1e-13) -> FlowRun:
    r"""Layer-wise gradient flow :math:`\dot W_j = -\partial L/\partial W_j` of a dense net (one net, NumPy loss).

    The gradient is the engine's (:func:`linnet.grad`); the integrator is ``scipy.integrate.solve_ivp``.
    """
    from .calculus import grad
    from .calculus import loss as deep_loss

    def g(W):
        return grad(loss, W)

    def f(W):
        return float(np.sum(deep_loss(loss, W)))

    return integrate(g, f, tuple(Ws), t_max=t_max, t_eval=t_eval, ftol=ftol, method=method, rtol=rtol, atol=atol)
