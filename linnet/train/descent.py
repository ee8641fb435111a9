r"""Discrete descent on the layers: :func:`gd`, :func:`momentum`, and the driver every descent method shares.

:math:`W_j \leftarrow W_j - \eta c_j\,\partial L/\partial W_j` (THEOREMS.md §1–§2), heavy ball with
:math:`\beta > 0`. The driver :func:`_descend` (also used by :func:`linnet.train.sgd` and
:func:`linnet.train.end_to_end_gd`) loops on :func:`linnet._step.value_and_grads`, the hot path shared by every
training loop. Host synchronisation happens only every ``check_every`` steps, to stop early once every net is
converged or diverged; per-net freezing itself is exact at every step (a window in which a net diverged is
replayed with ``xp.where`` roll-back masks), so ``check_every`` changes the cost, never the result.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

from .. import _step
from ..losses import HuberLoss, Loss, LpLoss, SquaredLoss
from ._args import (
    _broadcast_shapes,
    _broadcast_weights,
    _check_ftol,
    _check_int,
    _check_layer_lr,
    _check_lr,
    _check_tol,
    _prepare,
    _record_schedule,
    _with_lr,
)
from .trajectory import (
    CONVERGED,
    DIVERGED,
    MAX_STEPS,
    Trajectory,
    _quiet,
    _stack_history,
    _threshold,
    _weights_finite,
)

__all__ = ["gd", "momentum"]

Array = Any

_BUILTIN = (SquaredLoss, LpLoss, HuberLoss)


def _descend(
    *,
    xp,
    W0: tuple,
    batch: tuple,
    evaluate: Callable,
    lr,
    lr_shape: tuple,
    layer_lr: tuple,
    beta: float,
    steps: int,
    gtol: Optional[float],
    ftol: Optional[float],
    schedule: list,
    keep_history: bool,
    check_every: int,
    record_loss: Optional[Callable] = None,
    check_weights_finite: bool = True,
) -> Trajectory:
    r"""Descent :math:`W_j \leftarrow W_j - \eta c_j V_j` with ``(L, V) = evaluate(k, W)`` (heavy ball if
    ``beta > 0``: :math:`M \leftarrow \beta M + V`, :math:`W \leftarrow W - \eta c_j M`).

    Each step proposes :math:`W - \eta c_j a\,M` (``a`` = 1 for running nets, 0 for frozen ones) and evaluates
    the proposal: its loss decides divergence, its ``V`` drives the next step. Steps run in windows of
    ``check_every`` between host synchronisations. A window first runs *fast*: every proposal is kept (a frozen
    net's proposal is its own weights, exactly). If a net stopped being finite during the window, the window
    is replayed from its start in *exact* mode, where each diverging net is rolled back to its last finite
    iterate by an ``xp.where`` mask. Both modes perform the same arithmetic on running nets, so the result
    does not depend on ``check_every``.
    """
    dt = W0[0].dtype
    int64 = xp.int64
    if lr_shape:
        lr_b = lr[..., None, None]
        steps_lr = tuple(lr_b * c for c in layer_lr)
    else:
        steps_lr = tuple(lr * c for c in layer_lr)

    def ok_mask(Lc, Wc, Vc):
        ok = xp.isfinite(Lc) & (xp.abs(Lc) <= thr)
        if check_weights_finite:
            ok = ok & _weights_finite(Wc, xp) & _weights_finite(Vc, xp)
        return ok

    def conv_mask(Lc, Vc):
        out = None
        if gtol is not None:
            g2 = None
            for v in Vc:
                t = xp.sum(xp.vecdot(v, v, axis=-1), axis=-1)
                g2 = t if g2 is None else g2 + t
            out = g2 <= gtol * gtol
        if ftol is not None:
            f = Lc <= ftol
            out = f if out is None else out | f
        return out

    def settle(Lc, Vc, status, active):
        conv = conv_mask(Lc, Vc)
        if conv is not None:
            conv = conv & active
            status = xp.where(conv, xp.full(batch, CONVERGED, dtype=int64), status)
            active = active & ~conv
        return status, active

    W = W0
    L, V = evaluate(0, W)
    thr = _threshold(L, xp)
    ok0 = ok_mask(L, W, V)
    zero_b = xp.zeros((1,) * (len(batch) + 2), dtype=dt)
    V = tuple(xp.where(ok0[..., None, None], v, zero_b) for v in V)  # a frozen net needs a finite V
    status = xp.where(ok0, xp.full(batch, MAX_STEPS, dtype=int64), xp.full(batch, DIVERGED, dtype=int64))
    div_at = xp.where(ok0, xp.full(batch, -1, dtype=int64), xp.zeros(batch, dtype=int64))
    status, active = settle(L, V, status, ok0)
    Mom = None

    rec_loss, rec_W, rec_steps = [], [], []
    rec_set = set(schedule)

    def record(k, W, L):
        rec_steps.append(k)
        rec_loss.append(L if record_loss is None else record_loss(W, L))
        if keep_history:
            rec_W.append(W)

    if 0 in rec_set:
        record(0, W, L)
    k, replays, always_exact = 0, 0, False
    no_event = xp.zeros(batch, dtype=xp.bool)
    while k < steps and bool(xp.any(active)):  # one host synchronisation per window
        kend = min(k + check_every, steps)
        start = (W, L, V, Mom, status, div_at, active, len(rec_steps))
        exact = always_exact
        while True:
            W, L, V, Mom, status, div_at, active, n_rec = start
            del rec_steps[n_rec:], rec_loss[n_rec:], rec_W[n_rec:]
            event = no_event
            for kk in range(k, kend):
                Mc = V if not beta or Mom is None else tuple(beta * m + v for m, v in zip(Mom, V))
                a = xp.astype(active, dt)[..., None, None]
                Wc = tuple(w - (s * a) * m for w, s, m in zip(W, steps_lr, Mc))
                Lc, Vc = evaluate(kk + 1, Wc)
                ok = ok_mask(Lc, Wc, Vc)
                if exact:
                    new_div = active & ~ok
                    status = xp.where(new_div, xp.full(batch, DIVERGED, dtype=int64), status)
                    div_at = xp.where(new_div, xp.full(batch, kk + 1, dtype=int64), div_at)
                    upd_b = (active & ok)[..., None, None]
                    W = tuple(xp.where(upd_b, wc, w) for wc, w in zip(Wc, W))
                    bad_b = (~ok)[..., None, None]
                    Vc = tuple(xp.where(bad_b, zero_b, v) for v in Vc)
                    if beta:
                        Mc = tuple(xp.where(bad_b, zero_b, m) for m in Mc)
                    active = active & ok
                else:
                    event = event | ~ok
                    W = Wc
                L = xp.where(active, Lc, L)
                V, Mom = Vc, (Mc if beta else None)
                status, active = settle(Lc, Vc, status, active)
                if kk + 1 in rec_set:
                    record(kk + 1, W, L)
            if exact or not bool(xp.any(event)):
                break
            exact, replays = True, replays + 1  # a net diverged in this window: replay it with roll-back masks
            always_exact = replays >= 3  # a pathological loss keeps producing events: stay exact
        k = kend
    n = k
    if not rec_steps or rec_steps[-1] != n:
        record(n, W, L)  # stopped early: every net is frozen, so this state holds at every later step

    steps_arr = xp.asarray(rec_steps, dtype=int64)
    steps_f = xp.asarray([float(s) for s in rec_steps], dtype=xp.float64)
    if lr_shape:
        lr64 = xp.broadcast_to(xp.astype(lr, xp.float64), batch)
        times = xp.reshape(steps_f, (len(rec_steps),) + (1,) * len(batch)) * lr64
    else:
        times = steps_f * lr
    return Trajectory(
        weights=tuple(W),
        loss=xp.stack(rec_loss, axis=0),
        steps=steps_arr,
        times=times,
        status=status,
        diverged_at=div_at,
        history=_stack_history(rec_W, keep_history, xp),
        n_steps=n,
    )


def _descent_setup(
    Ws: tuple,
    xp,
    batch: tuple,
    *,
    lr: Any,
    steps: Any,
    gtol: Any,
    ftol: Any,
    record_every: Any,
    record_steps: Any,
    keep_history: Any,
    check_every: Any,
    lr_per_layer: Any = None,
) -> dict:
    """Check the descent arguments for validated weights ``Ws`` (batch ``batch``); the keyword arguments of
    :func:`_descend` other than ``evaluate``, ``beta`` and its optional ones."""
    lr, lr_shape = _check_lr(lr, xp, Ws[0].dtype)
    steps = _check_int(steps, "steps", minimum=0)
    batch = _broadcast_shapes(batch, *(tuple(W.shape[:-2]) for W in Ws))
    batch = _with_lr(batch, lr_shape)
    return dict(
        xp=xp,
        W0=_broadcast_weights(Ws, batch, xp),
        batch=batch,
        lr=lr,
        lr_shape=lr_shape,
        layer_lr=_check_layer_lr(lr_per_layer, len(Ws)),
        steps=steps,
        gtol=_check_tol(gtol, "gtol"),
        ftol=_check_ftol(ftol),
        schedule=_record_schedule(steps, record_every, record_steps),
        keep_history=bool(keep_history),
        check_every=_check_int(check_every, "check_every", minimum=1),
    )


def _layer_descent(loss: Loss, Ws: Sequence[Array], *, beta: float, residual: bool, **kw) -> Trajectory:
    """Full-batch descent on the layers (heavy ball if ``beta > 0``): the whole of :func:`gd` and :func:`momentum`."""
    loss_fn, Ws, xp, batch = _prepare(loss, Ws, residual)
    opts = _descent_setup(Ws, xp, batch, **kw)
    residual = bool(residual)

    def evaluate(k, W):
        return _step.value_and_grads(loss_fn, W, residual, xp)

    with _quiet():
        return _descend(evaluate=evaluate, beta=beta, check_weights_finite=not isinstance(loss_fn, _BUILTIN), **opts)


# ---------------------------------------------------------------------------------------------------------------
# public descent methods
# ---------------------------------------------------------------------------------------------------------------


def gd(
    loss: Loss,
    Ws: Sequence[Array],
    *,
    lr: Any,
    steps: int,
    residual: bool = False,
    gtol: Optional[float] = None,
    ftol: Optional[float] = None,
    record_every: int = 1,
    record_steps: Optional[Sequence[int]] = None,
    keep_history: bool = False,
    check_every: int = 10,
    lr_per_layer: Optional[Sequence[float]] = None,
) -> Trajectory:
    r"""Full-batch gradient descent on the layers of a batch of deep linear nets.

    .. math:: W_j^{(k+1)} = W_j^{(k)} - \eta\,c_j\,\frac{\partial L}{\partial W_j}\big(W^{(k)}\big),
       \qquad \frac{\partial L}{\partial W_j} = W_{j+1:N}^\top\,\nabla\ell(W_{1:N})\,W_{1:j-1}^\top

    (THEOREMS.md §1), with :math:`c_j = 1` unless ``lr_per_layer`` is given. With one step size for every layer
    the balancedness gaps :math:`D_j = W_{j+1}^\top W_{j+1} - W_jW_j^\top` drift by exactly
    :math:`\eta^2(G_{j+1}^\top G_{j+1} - G_jG_j^\top)` per step (THEOREMS.md §2); ``lr_per_layer`` breaks this
    (a negative control).

    Parameters
    ----------
    loss : Loss
        The end-to-end loss (cast once to the weights' dtype).
    Ws : tuple of arrays
        Layers ``(..., d_j, d_{j-1})``; leading dimensions are a batch of nets.
    lr : float or array
        Step size :math:`\eta \ge 0`, or an array of them broadcastable to the batch (one per net, e.g. a grid).
        ``lr = 0`` changes nothing.
    steps : int
        Number of steps (``>= 0``).
    residual : bool
        Train the residual net :math:`(I+W_N)\cdots(I+W_1)`.
    gtol, ftol : float, optional
        A net has converged (and is frozen) once :math:`(\sum_j\|\partial L/\partial W_j\|_F^2)^{1/2} \le`
        ``gtol`` or its loss is ``<= ftol``.
    record_every : int
        Record the loss at steps ``0, r, 2r, ...`` and at the last step.
    record_steps : sequence of int, optional
        Explicit step indices to record instead (in ``[0, steps]``).
    keep_history : bool
        Also record the weights.
    check_every : int
        Steps between host-side checks for early stopping (all nets converged or diverged); results do not
        depend on it.
    lr_per_layer : sequence of float, optional
        Factors :math:`c_j` multiplying ``lr`` layer by layer.

    Returns
    -------
    Trajectory
        ``times = lr * steps``.

    Examples
    --------
    >>> import numpy as np, linnet as ln
    >>> loss = ln.SquaredLoss.whitened(np.array([[2.0, 0.0], [0.0, 1.0]]))
    >>> Ws = ln.init.gaussian((2, 4, 2), scale=0.5, batch=(3,), seed=0)
    >>> run = ln.train.gd(loss, Ws, lr=0.1, steps=500, gtol=1e-8)
    >>> run.status_names.tolist(), bool(run.loss[-1].max() < 1e-12)
    (['converged', 'converged', 'converged'], True)
    """
    return _layer_descent(
        loss,
        Ws,
        beta=0.0,
        residual=residual,
        lr=lr,
        steps=steps,
        gtol=gtol,
        ftol=ftol,
        record_every=record_every,
        record_steps=record_steps,
        keep_history=keep_history,
        check_every=check_every,
        lr_per_layer=lr_per_layer,
    )


def momentum(
    loss: Loss,
    Ws: Sequence[Array],
    *,
    lr: Any,
    steps: int,
    beta: float = 0.9,
    residual: bool = False,
    gtol: Optional[float] = None,
    ftol: Optional[float] = None,
    record_every: int = 1,
    record_steps: Optional[Sequence[int]] = None,
    keep_history: bool = False,
    check_every: int = 10,
    lr_per_layer: Optional[Sequence[float]] = None,
) -> Trajectory:
    r"""Heavy-ball momentum (Polyak 1964) on the layers.

    .. math:: M_j^{(k+1)} = \beta M_j^{(k)} + \frac{\partial L}{\partial W_j}\big(W^{(k)}\big), \qquad
       W_j^{(k+1)} = W_j^{(k)} - \eta\,c_j\,M_j^{(k+1)}, \qquad M^{(0)} = 0,

    i.e. :math:`W^{(k+1)} = W^{(k)} - \eta\nabla L + \beta(W^{(k)} - W^{(k-1)})`. ``beta = 0`` is exactly
    :func:`gd`. Other arguments as in :func:`gd`; ``0 <= beta < 1``.

    Examples
    --------
    >>> import numpy as np, linnet as ln
    >>> loss = ln.SquaredLoss.whitened(np.eye(2))
    >>> run = ln.train.momentum(loss, ln.init.gaussian((2, 3, 2), scale=0.5, seed=1), lr=0.05, beta=0.8, steps=300)
    >>> bool(run.loss[-1] < 1e-10)
    True
    """
    try:
        b = float(beta)
    except (TypeError, ValueError):
        raise ValueError(f"`beta` must be a real in [0, 1), got {beta!r}") from None
    if not (0.0 <= b < 1.0):
        raise ValueError(f"`beta` must be a real in [0, 1), got {beta!r}")
    return _layer_descent(
        loss,
        Ws,
        beta=b,
        residual=residual,
        lr=lr,
        steps=steps,
        gtol=gtol,
        ftol=ftol,
        record_every=record_every,
        record_steps=record_steps,
        keep_history=keep_history,
        check_every=check_every,
        lr_per_layer=lr_per_layer,
    )
