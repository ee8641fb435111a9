r"""Training dynamics of deep linear networks: GD, SGD, heavy-ball momentum, gradient flow, end-to-end dynamics.

Every routine trains a whole batch of independent nets at once (leading dimensions of the weights, of the
problem, or of a per-net step size) and returns a :class:`Trajectory`. Each net has its own status: a net whose
loss or weights stop being finite (or whose loss grows past a huge threshold) is frozen at its last finite
iterate and marked ``diverged`` with the step; the others go on. Nothing returns NaN silently. "Huge" means
:math:`|L| >` :data:`DIVERGENCE_FACTOR` :math:`\cdot\max(|L_0|, 1)` (capped at ``1e-8`` times the dtype's largest
value). Floating-point warnings of diverging nets are silenced inside these routines; the status reports them.

The public functions validate their arguments once, then loop on :func:`linnet._step.value_and_grads`, the hot
path shared by every training loop. Host synchronisation happens only every ``check_every`` steps, to stop
early once every net is converged or diverged; per-net freezing itself is exact at every step (a window in
which a net diverged is replayed with ``xp.where`` roll-back masks), so ``check_every`` changes the cost, never
the result.

* :func:`gd`, :func:`sgd`, :func:`momentum`: discrete descent on the layers, :math:`W_j \leftarrow W_j - \eta\,
  \partial L/\partial W_j` (THEOREMS.md §1–§2).
* :func:`gradient_flow`: :math:`\dot W_j = -\partial L/\partial W_j` by the embedded Runge–Kutta pair of Dormand &
  Prince (5(4), FSAL), each net with its own step size and accept/reject decision.
* :func:`end_to_end_flow`, :func:`end_to_end_gd`: the end-to-end dynamics of Arora, Cohen & Hazan
  (`arXiv:1802.06509 <https://arxiv.org/abs/1802.06509>`_, THEOREMS.md §4),
  :math:`\dot W_e = -\sum_{j=1}^N [W_eW_e^\top]^{\frac{j-1}N}\nabla\ell(W_e)[W_e^\top W_e]^{\frac{N-j}N}`.
"""

from __future__ import annotations

import contextlib
import copy
import math
import warnings
from typing import Any, Callable, NamedTuple, Optional, Sequence

import numpy as np  # host side only: minibatch indices, status names, argument checks

from . import _step
from . import product as _p
from ._backend import dtype_name, from_host, host_rng, namespace, to_numpy
from ._validate import check_positive, check_weights
from .linalg import e2e_velocity
from .losses import HuberLoss, Loss, LpLoss, SquaredLoss

__all__ = [
    "Trajectory",
    "CONVERGED",
    "MAX_STEPS",
    "DIVERGED",
    "STATUS_NAMES",
    "gd",
    "sgd",
    "momentum",
    "gradient_flow",
    "end_to_end_flow",
    "end_to_end_gd",
]

Array = Any

CONVERGED = 0  #: met ``gtol``/``ftol`` (descent) or reached ``t_final`` (flows)
MAX_STEPS = 1  #: ran out of steps (descent: the normal end without tolerances)
DIVERGED = 2  #: loss or weights became non-finite or huge; frozen at the last finite iterate
STATUS_NAMES = ("converged", "max_steps", "diverged")

#: A net whose loss exceeds this factor times ``max(|L_0|, 1)`` counts as diverged (capped below the dtype's max).
DIVERGENCE_FACTOR = 1e100


class Trajectory(NamedTuple):
    """The result of a training run on a batch of nets.

    ``batch`` below is the broadcast batch shape of the weights, the problem and a per-net ``lr``.

    Attributes
    ----------
    weights : tuple of arrays
        Final layers, ``W_j`` of shape ``(*batch, d_j, d_{j-1})``, the weights' dtype. For the end-to-end
        dynamics a 1-tuple ``(W_e,)`` of shape ``(*batch, d_N, d_0)``. A diverged net holds its last finite
        iterate.
    loss : array ``(n_rec, *batch)``, the weights' dtype
        Loss recorded at each record (step 0 or the first record time included). SGD records the full-data loss.
    steps : int64 array ``(n_rec,)``
        Step index of each record (flows: the loop iteration at which the record was taken).
    times : float64 array ``(n_rec,)``
        Time of each record: the requested times for flows, ``lr * steps`` for descent (shape ``(n_rec, *batch)``
        when ``lr`` is per-net).
    status : int64 array ``(*batch)``
        :data:`CONVERGED`, :data:`MAX_STEPS` or :data:`DIVERGED` per net (see :attr:`status_names`).
    diverged_at : int64 array ``(*batch)``
        Step at which a net diverged (flows: its number of attempted steps when it failed), ``-1`` otherwise.
    history : tuple of arrays or None
        With ``keep_history=True``, per layer an array ``(n_rec, *batch, d_j, d_{j-1})`` of the recorded weights.
    n_steps : int
        Steps actually executed (flows: loop iterations); smaller than requested when every net stopped early.
    """

    weights: tuple
    loss: Array
    steps: Array
    times: Array
    status: Array
    diverged_at: Array
    history: Optional[tuple]
    n_steps: int

    @property
    def status_names(self) -> np.ndarray:
        """Status of each net as a NumPy array of str: ``'converged'``, ``'max_steps'`` or ``'diverged'``."""
        codes = np.asarray(to_numpy(self.status), dtype=np.int64)
        return np.asarray(STATUS_NAMES)[codes]


# ---------------------------------------------------------------------------------------------------------------
# argument checks (host side, once per call)
# ---------------------------------------------------------------------------------------------------------------


def _check_int(value: Any, name: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise ValueError(f"`{name}` must be an int >= {minimum}, got {value!r}")
    v = int(value.__index__())
    if v < minimum:
        raise ValueError(f"`{name}` must be an int >= {minimum}, got {value!r}")
    return v


def _check_loss(loss: Any) -> Loss:
    if not isinstance(loss, Loss):
        raise ValueError(f"`loss` must be a linnet loss (e.g. SquaredLoss), got {type(loss).__name__}")
    return loss


def _broadcast_shapes(*shapes) -> tuple:
    ndim = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(ndim):
        dims = {s[len(s) - ndim + i] for s in shapes if len(s) - ndim + i >= 0} - {1}
        if len(dims) > 1:
            raise ValueError(f"batch shapes {', '.join(str(tuple(s)) for s in shapes)} do not broadcast")
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def _check_lr(lr: Any, xp, dt, name: str = "lr"):
    """A finite lr >= 0: a Python float, or an array (the weights' dtype) broadcastable to the batch."""
    if isinstance(lr, (int, float, np.floating, np.integer)) and not isinstance(lr, bool):
        return check_positive(lr, name, allow_zero=True), ()
    if isinstance(lr, bool) or lr is None:
        raise ValueError(f"`{name}` must be a finite real >= 0 or an array of them, got {lr!r}")
    try:
        host = np.asarray(to_numpy(lr), dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a finite real >= 0 or an array of them, got {lr!r}") from None
    if host.ndim == 0:
        return check_positive(float(host), name, allow_zero=True), ()
    if not (np.all(np.isfinite(host)) and np.all(host >= 0)):
        raise ValueError(f"`{name}` must hold finite values >= 0, got {host!r}")
    return from_host(host, xp, dtype_name(dt)), tuple(host.shape)


def _with_lr(batch: tuple, lr_shape: tuple) -> tuple:
    try:
        return _broadcast_shapes(batch, lr_shape)
    except ValueError:
        raise ValueError(f"`lr` of shape {lr_shape} does not broadcast with the batch {batch} of nets") from None


def _check_layer_lr(lr_per_layer: Any, n_layers: int) -> tuple:
    if lr_per_layer is None:
        return (1.0,) * n_layers
    try:
        factors = tuple(lr_per_layer)
    except TypeError:
        raise ValueError(f"`lr_per_layer` must be a sequence of {n_layers} floats, got {lr_per_layer!r}") from None
    if len(factors) != n_layers:
        raise ValueError(f"`lr_per_layer` must have one factor per layer ({n_layers}), got {len(factors)}")
    return tuple(check_positive(c, "lr_per_layer", allow_zero=True) for c in factors)


def _check_tol(value: Any, name: str) -> Optional[float]:
    return None if value is None else check_positive(value, name, allow_zero=True)


def _check_ftol(value: Any) -> Optional[float]:
    if value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"`ftol` must be a finite real, got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"`ftol` must be a finite real, got {value!r}")
    return v


def _record_schedule(steps: int, record_every: Any, record_steps: Any) -> list:
    """Sorted step indices to record: ``0, r, 2r, ..., steps`` or the explicit ``record_steps``."""
    if record_steps is not None:
        try:
            idx = sorted({int(_check_int(s, "record_steps", minimum=0)) for s in record_steps})
        except TypeError:
            raise ValueError(f"`record_steps` must be a sequence of ints in [0, steps], got {record_steps!r}") from None
        if idx and idx[-1] > steps:
            raise ValueError(f"`record_steps` must lie in [0, steps={steps}], got {idx[-1]}")
        return idx
    r = _check_int(record_every, "record_every", minimum=1)
    idx = list(range(0, steps + 1, r))
    if idx[-1] != steps:
        idx.append(steps)
    return idx


def _prepare(loss: Any, Ws: Any, residual: bool, name: str = "Ws"):
    """Validate loss and weights; return the loss in the weights' dtype, the weights, xp and the batch shape."""
    loss = _check_loss(loss)
    Ws, xp = check_weights(Ws, name=name)
    Fs = _p.factors(Ws, bool(residual), xp)
    We = Fs[0]
    for F in Fs[1:]:
        We = xp.matmul(F, We)
    loss_fn, batch = _check_against(loss, We, name)
    return loss_fn, Ws, xp, batch


def _check_against(loss: Loss, We, name: str):
    """The loss in the dtype of ``We`` and the batch shape of the nets broadcast with the problem."""
    try:
        loss_fn = loss.check(We)
    except ValueError as exc:
        raise ValueError(f"`loss` and `{name}` disagree: {exc}") from None
    problem = tuple(getattr(getattr(loss_fn, "Phi", None), "shape", ())[:-2])
    try:
        _broadcast_shapes(tuple(We.shape[:-2]), problem)
        batch = tuple(loss_fn.value(We).shape)
    except ValueError as exc:
        raise ValueError(
            f"the batch shape of `{name}` {tuple(We.shape[:-2])} does not broadcast with that of `loss` {problem}: {exc}"
        ) from None
    return loss_fn, batch


def _broadcast_weights(Ws, batch, xp) -> tuple:
    return tuple(xp.broadcast_to(W, batch + tuple(W.shape[-2:])) for W in Ws)


def _threshold(L0, xp):
    """Per-net divergence threshold ``factor * max(|L_0|, 1)``, kept finite in the dtype."""
    factor = min(DIVERGENCE_FACTOR, float(xp.finfo(L0.dtype).max) * 1e-8)
    scale = xp.where(xp.isfinite(L0), xp.abs(L0), xp.zeros_like(L0))
    return factor * xp.maximum(scale, xp.ones_like(L0))


@contextlib.contextmanager
def _quiet():
    """Silence the floating-point warnings of nets that diverge (they are reported by status instead)."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r".*(overflow|invalid value|divide by zero).*", category=RuntimeWarning
        )
        yield


def _weights_finite(Ws, xp):
    """Per-net finiteness of all layers (a sum is non-finite iff an entry is, up to overflow, which also counts)."""
    s = None
    for W in Ws:
        t = xp.sum(W, axis=(-2, -1))
        s = t if s is None else s + t
    return xp.isfinite(s)


_BUILTIN = (SquaredLoss, LpLoss, HuberLoss)


# ---------------------------------------------------------------------------------------------------------------
# the descent driver
# ---------------------------------------------------------------------------------------------------------------


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
    history = tuple(xp.stack([r[j] for r in rec_W], axis=0) for j in range(len(W))) if keep_history else None
    return Trajectory(
        weights=tuple(W),
        loss=xp.stack(rec_loss, axis=0),
        steps=steps_arr,
        times=times,
        status=status,
        diverged_at=div_at,
        history=history,
        n_steps=n,
    )


def _descent_setup(loss, Ws, residual, lr, steps, record_every, record_steps, check_every, lr_per_layer, gtol, ftol):
    loss_fn, Ws, xp, batch = _prepare(loss, Ws, residual)
    dt = Ws[0].dtype
    lr, lr_shape = _check_lr(lr, xp, dt)
    steps = _check_int(steps, "steps", minimum=0)
    batch = _broadcast_shapes(batch, *(tuple(W.shape[:-2]) for W in Ws))
    batch = _with_lr(batch, lr_shape)
    opts = dict(
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
        check_every=_check_int(check_every, "check_every", minimum=1),
    )
    return loss_fn, xp, opts


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
    loss_fn, xp, opts = _descent_setup(
        loss, Ws, residual, lr, steps, record_every, record_steps, check_every, lr_per_layer, gtol, ftol
    )
    residual = bool(residual)

    def evaluate(k, W):
        return _step.value_and_grads(loss_fn, W, residual, xp)

    with _quiet():
        return _descend(
            evaluate=evaluate,
            beta=0.0,
            keep_history=bool(keep_history),
            check_weights_finite=not isinstance(loss_fn, _BUILTIN),
            **opts,
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
    loss_fn, xp, opts = _descent_setup(
        loss, Ws, residual, lr, steps, record_every, record_steps, check_every, lr_per_layer, gtol, ftol
    )
    residual = bool(residual)

    def evaluate(k, W):
        return _step.value_and_grads(loss_fn, W, residual, xp)

    with _quiet():
        return _descend(
            evaluate=evaluate,
            beta=b,
            keep_history=bool(keep_history),
            check_weights_finite=not isinstance(loss_fn, _BUILTIN),
            **opts,
        )


class _SquaredStats(Loss):
    r"""Minibatch squared loss from its sufficient statistics, unvalidated (built every SGD step).

    :math:`\ell_b(W) = \tfrac12\operatorname{tr}(W S_{xx} W^\top) - \langle W, S_{yx}\rangle + \tfrac12 t_{yy}`
    with :math:`S_{xx} = X_bX_b^\top/b`, :math:`S_{yx} = Y_bX_b^\top/b`, :math:`t_{yy} = \|Y_b\|_F^2/b`.
    """

    def __init__(self, Sxx, Syx, tr_yy):
        self.Sxx, self.Syx, self.tr_yy = Sxx, Syx, tr_yy
        self.shape = tuple(Syx.shape[-2:])

    def value(self, W):
        xp = namespace(W)
        quad = xp.sum(xp.matmul(W, self.Sxx) * W, axis=(-2, -1))
        return 0.5 * quad - xp.sum(W * self.Syx, axis=(-2, -1)) + 0.5 * self.tr_yy

    def grad(self, W):
        return namespace(W).matmul(W, self.Sxx) - self.Syx


def _data_of(loss: Loss, dt, xp):
    """``(X, Y)`` of a loss built from data, in dtype ``dt``; ``ValueError`` otherwise."""
    if isinstance(loss, SquaredLoss):
        if loss.data is None:
            raise ValueError(
                "`loss` must carry data for sgd: build it with SquaredLoss.from_data(X, Y) "
                "(whitened/population losses have no samples to draw)"
            )
        X, Y = loss.data
    elif isinstance(loss, (LpLoss, HuberLoss)):
        X, Y = loss.X, loss.Y
    else:
        raise ValueError(
            f"`loss` must carry data for sgd (SquaredLoss.from_data, LpLoss or HuberLoss), got {type(loss).__name__}"
        )
    return xp.astype(X, dt), xp.astype(Y, dt)


def _minibatch_loss(base: Loss, X, Y, idx, xp) -> Loss:
    """The loss of ``base``'s kind on the samples ``idx`` (columns), built without validation or SVDs."""
    Xb = xp.take(X, idx, axis=-1)
    Yb = xp.take(Y, idx, axis=-1)
    b = Xb.shape[-1]
    if isinstance(base, SquaredLoss):
        Sxx = xp.matmul(Xb, Xb.mT) / b
        Syx = xp.matmul(Yb, Xb.mT) / b
        tr_yy = xp.sum(Yb * Yb, axis=(-2, -1)) / b
        return _SquaredStats(Sxx, Syx, tr_yy)
    out = copy.copy(base)  # LpLoss / HuberLoss: same parameters, samples replaced
    out.X, out.Y, out.m = Xb, Yb, b
    if hasattr(out, "_cache"):
        out._cache = {}
    return out


def sgd(
    loss: Loss,
    Ws: Sequence[Array],
    *,
    lr: Any,
    steps: int,
    batch_size: int,
    seed: Any = 0,
    residual: bool = False,
    gtol: Optional[float] = None,
    ftol: Optional[float] = None,
    record_every: int = 1,
    record_steps: Optional[Sequence[int]] = None,
    keep_history: bool = False,
    check_every: int = 10,
    lr_per_layer: Optional[Sequence[float]] = None,
) -> Trajectory:
    r"""Minibatch stochastic gradient descent.

    Step :math:`k` draws ``batch_size`` distinct samples :math:`B_k` (uniformly, without replacement within the
    step, independently across steps) on the host from ``seed``, the same minibatch for every net of the batch,
    and takes :math:`W_j \leftarrow W_j - \eta c_j\,\partial L_{B_k}/\partial W_j` with :math:`L_{B_k}` the
    loss of the same kind on those samples (its mean over :math:`B_k`). The minibatch squared loss is built from
    its sufficient statistics, so a step costs :math:`O(d_0^2 b)` once for all nets.

    ``loss`` must carry data: :meth:`SquaredLoss.from_data`, :class:`LpLoss` or :class:`HuberLoss`. The recorded
    loss is the full-data loss; ``gtol``/``ftol`` and divergence are judged on the minibatch loss and gradient of
    the step. With ``batch_size = m`` this is :func:`gd` up to round-off. Other arguments as in :func:`gd`;
    ``seed`` is an int or a ``numpy.random.Generator`` (advanced by the draws, 64 or more steps at a time).

    Examples
    --------
    >>> import numpy as np, linnet as ln
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((3, 40)); Y = np.array([[1.0, -1.0, 0.5]]) @ X
    >>> Ws = ln.init.gaussian((3, 4, 1), scale=0.3, seed=0)
    >>> run = ln.train.sgd(ln.SquaredLoss.from_data(X, Y), Ws, lr=0.05, steps=400, batch_size=8, seed=1)
    >>> bool(run.loss[-1] < 1e-3 * run.loss[0])
    True
    """
    loss = _check_loss(loss)
    loss_fn, xp, opts = _descent_setup(
        loss, Ws, residual, lr, steps, record_every, record_steps, check_every, lr_per_layer, gtol, ftol
    )
    dt = opts["W0"][0].dtype
    X, Y = _data_of(loss, dt, xp)
    m = X.shape[-1]
    b = _check_int(batch_size, "batch_size", minimum=1)
    if b > m:
        raise ValueError(f"`batch_size` must be <= the number of samples m = {m}, got {batch_size!r}")
    rng = host_rng(seed)
    residual = bool(residual)
    # minibatch k is row k % chunk of chunk k // chunk; chunks are drawn in order, so the draws do not depend on
    # chunking, and the previous chunk is kept for a window replayed after a divergence (chunk > check_every)
    chunk = max(64, opts["check_every"] + 1)
    chunks: dict = {}

    def indices(k):
        c = k // chunk
        while c not in chunks:
            nxt = max(chunks, default=-1) + 1
            host = np.stack([rng.choice(m, size=b, replace=False) for _ in range(chunk)])
            chunks[nxt] = xp.asarray(host.astype(np.int64))
            chunks.pop(nxt - 2, None)
        return chunks[c][k % chunk, :]

    def evaluate(k, W):
        return _step.value_and_grads(_minibatch_loss(loss_fn, X, Y, indices(k), xp), W, residual, xp)

    def record_loss(W, L):
        return _step.values(loss_fn, W, residual, xp)

    with _quiet():
        return _descend(
            evaluate=evaluate,
            beta=0.0,
            keep_history=bool(keep_history),
            record_loss=record_loss,
            check_weights_finite=False,
            **opts,
        )


def _check_e2e(loss, We0, depth):
    loss = _check_loss(loss)
    if isinstance(We0, (tuple, list)):
        if len(We0) != 1:
            raise ValueError(f"`We0` must be one end-to-end matrix (or a 1-tuple), got {len(We0)} arrays")
        We0 = We0[0]
    Ws, xp = check_weights((We0,), name="We0")
    N = _check_int(depth, "depth", minimum=1)
    loss_fn, batch = _check_against(loss, Ws[0], "We0")
    return loss_fn, Ws, xp, batch, N


def _e2e_rhs(loss_fn, N, xp):
    """``(W_e,) -> (l(W_e), (velocity,))``: the ACH velocity, with non-finite nets replaced by zeros for the SVD
    (their non-finite loss marks them)."""

    def f(Ws):
        We = Ws[0]
        L = loss_fn.value(We)
        G = loss_fn.grad(We)
        bad = ~(xp.isfinite(L) & _weights_finite((We,), xp) & _weights_finite((G,), xp))
        nan = xp.full(L.shape, float("nan"), dtype=L.dtype)
        L = xp.where(bad, nan, L)
        bad_b = bad[..., None, None]
        We = xp.where(bad_b, xp.zeros_like(We), We)
        G = xp.where(bad_b, xp.zeros_like(G), G)
        return L, (e2e_velocity(We, G, N),)

    return f


def end_to_end_gd(
    loss: Loss,
    We0: Array,
    *,
    depth: int,
    lr: Any,
    steps: int,
    gtol: Optional[float] = None,
    ftol: Optional[float] = None,
    record_every: int = 1,
    record_steps: Optional[Sequence[int]] = None,
    keep_history: bool = False,
    check_every: int = 10,
) -> Trajectory:
    r"""Discrete end-to-end dynamics of Arora, Cohen & Hazan (arXiv:1802.06509; THEOREMS.md §4):

    .. math:: W_e^{(k+1)} = W_e^{(k)} - \eta\sum_{j=1}^N [W_eW_e^\top]^{\frac{j-1}N}\,\nabla\ell(W_e)\,
       [W_e^\top W_e]^{\frac{N-j}N},

    which GD on a balanced depth-``depth`` net follows up to :math:`O(\eta^2)` per step. ``gtol`` applies to the
    Frobenius norm of the preconditioned velocity. PSD powers are thresholded (:func:`linnet.linalg.gram_powers`).

    Returns a :class:`Trajectory` with ``weights = (W_e,)``.

    Examples
    --------
    >>> import numpy as np, linnet as ln
    >>> loss = ln.SquaredLoss.whitened(np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]]))
    >>> run = ln.train.end_to_end_gd(loss, 0.1 * np.ones((2, 3)), depth=3, lr=0.1, steps=300, record_every=100)
    >>> run.steps.tolist(), bool(run.loss[-1] < 1e-12)
    ([0, 100, 200, 300], True)
    """
    loss_fn, Ws, xp, batch, N = _check_e2e(loss, We0, depth)
    dt = Ws[0].dtype
    lr, lr_shape = _check_lr(lr, xp, dt)
    steps = _check_int(steps, "steps", minimum=0)
    batch = _with_lr(batch, lr_shape)
    rhs = _e2e_rhs(loss_fn, N, xp)
    with _quiet():
        return _descend(
            xp=xp,
            W0=_broadcast_weights(Ws, batch, xp),
            batch=batch,
            evaluate=lambda k, W: rhs(W),
            lr=lr,
            lr_shape=lr_shape,
            layer_lr=(1.0,),
            beta=0.0,
            steps=steps,
            gtol=_check_tol(gtol, "gtol"),
            ftol=_check_ftol(ftol),
            schedule=_record_schedule(steps, record_every, record_steps),
            keep_history=bool(keep_history),
            check_every=_check_int(check_every, "check_every", minimum=1),
            check_weights_finite=False,
        )


# ---------------------------------------------------------------------------------------------------------------
# flows: Dormand-Prince 5(4) with per-net step control
# ---------------------------------------------------------------------------------------------------------------

# Dormand & Prince, "A family of embedded Runge-Kutta formulae", J. Comput. Appl. Math. 6 (1980) 19-26;
# Hairer, Norsett & Wanner, Solving ODEs I, 2nd ed., Table II.5.2 (DOPRI5). Nodes c are not needed: the
# dynamics are autonomous.
_DP_A = (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
    (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),  # = b (5th order): FSAL
)
# error weights b - b_hat (b_hat: the embedded 4th-order solution)
_DP_E = (
    35 / 384 - 5179 / 57600,
    0.0,
    500 / 1113 - 7571 / 16695,
    125 / 192 - 393 / 640,
    -2187 / 6784 + 92097 / 339200,
    11 / 84 - 187 / 2100,
    -1 / 40,
)
_SAFETY, _FAC_MIN, _FAC_MAX = 0.9, 0.2, 10.0


def _lincomb(coeffs, ks, j):
    out = None
    for c, k in zip(coeffs, ks):
        if c == 0.0:
            continue
        t = c * k[j]
        out = t if out is None else out + t
    return out


def _check_times(t_final, times):
    T = check_positive(t_final, "t_final")
    if times is None:
        rec = [0.0, T]
    else:
        try:
            rec = [float(t) for t in np.asarray(to_numpy(times), dtype=np.float64).reshape(-1)]
        except (TypeError, ValueError):
            raise ValueError(f"`times` must be a sequence of reals in [0, t_final], got {times!r}") from None
        if not rec:
            raise ValueError("`times` must hold at least one time, got an empty sequence")
        if any(not math.isfinite(t) or t < 0 or t > T for t in rec):
            raise ValueError(f"`times` must lie in [0, t_final={T}], got {rec!r}")
        if any(b < a for a, b in zip(rec, rec[1:])):
            raise ValueError(f"`times` must be non-decreasing, got {rec!r}")
    return T, rec


def _integrate(
    *,
    xp,
    y0: tuple,
    batch: tuple,
    rhs: Callable,
    t_final: float,
    rec_times: list,
    rtol: float,
    atol: float,
    max_steps: int,
    keep_history: bool,
    check_every: int,
) -> Trajectory:
    r"""Integrate :math:`\dot y = v(y)`, ``(L, v) = rhs(y)``, from 0 to ``t_final`` by Dormand-Prince 5(4).

    Per net: error :math:`\|e\|_{\rm rms}` with scale ``atol + rtol * max(|y|, |y_new|)`` over all entries,
    accept when ``<= 1``, new step ``h * clip(0.9 err^{-1/5}, 0.2, 10)``; steps are clipped to land exactly on
    each record time, where the nets wait for one another (one synchronised record for the batch).
    """
    dt = y0[0].dtype
    f64, int64 = xp.float64, xp.int64
    P = sum(math.prod(y.shape[-2:]) for y in y0)
    eps64 = float(np.finfo(np.float64).eps)
    h_floor = 16 * eps64 * t_final
    tiny = float(xp.finfo(dt).smallest_normal)

    y = y0
    L, F = rhs(y)
    thr = _threshold(L, xp)
    alive = xp.isfinite(L) & (xp.abs(L) <= thr)
    status = xp.where(alive, xp.full(batch, CONVERGED, dtype=int64), xp.full(batch, DIVERGED, dtype=int64))
    fail_at = xp.where(alive, xp.full(batch, -1, dtype=int64), xp.zeros(batch, dtype=int64))
    count = xp.zeros(batch, dtype=int64)
    t = xp.zeros(batch, dtype=f64)

    def rms(parts):
        s = None
        for q in parts:
            u = xp.sum(q * q, axis=(-2, -1))
            s = u if s is None else s + u
        return xp.sqrt(xp.astype(s, f64) / P)

    # initial step (Hairer, Norsett & Wanner, Solving ODEs I, §II.4): h0 from |y|, |f|; refine by one Euler step
    sc0 = tuple(xp.maximum(atol + rtol * xp.abs(v), tiny) for v in y)
    d0 = rms(tuple(v / s for v, s in zip(y, sc0)))
    d1 = rms(tuple(v / s for v, s in zip(F, sc0)))
    small = (d0 < 1e-5) | (d1 < 1e-5)
    h0 = xp.where(small, xp.full(batch, 1e-6, dtype=f64), 0.01 * d0 / xp.where(small, xp.ones_like(d1), d1))
    h0 = xp.where(xp.isfinite(h0), h0, xp.full(batch, 1e-6, dtype=f64))
    h0b = xp.astype(h0, dt)[..., None, None]
    _, F1 = rhs(tuple(v + h0b * f for v, f in zip(y, F)))
    d2 = rms(tuple((f1 - f) / s for f1, f, s in zip(F1, F, sc0))) / h0
    dmax = xp.maximum(d1, d2)
    h1 = xp.where(
        dmax <= 1e-15,
        xp.maximum(xp.full(batch, 1e-6, dtype=f64), h0 * 1e-3),
        (0.01 / xp.where(dmax <= 1e-15, xp.ones_like(dmax), dmax)) ** (1 / 5),
    )
    h = xp.minimum(100 * h0, h1)
    h = xp.where(xp.isfinite(h) & (h > 0), h, xp.full(batch, 1e-6, dtype=f64))

    targets = sorted(set(rec_times) | {t_final})
    rec_loss, rec_W, rec_steps, rec_t = [], [], [], []
    it = 0

    def record(tv):
        rec_loss.append(L)
        rec_steps.append(it)
        rec_t.append(tv)
        if keep_history:
            rec_W.append(y)

    for tn in targets:
        while True:
            active = alive & (t < tn)
            if it % check_every == 0 and not bool(xp.any(active)):
                break
            out_of_steps = active & (count >= max_steps)
            status = xp.where(out_of_steps, xp.full(batch, MAX_STEPS, dtype=int64), status)
            fail_at = xp.where(out_of_steps, count, fail_at)
            alive = alive & ~out_of_steps
            active = active & ~out_of_steps

            rest = tn - t
            clipped = h >= rest
            he = xp.where(clipped, rest, h)
            he = xp.where(active, he, xp.zeros_like(he))
            hb = xp.astype(he, dt)[..., None, None]
            ks = [F]
            bad = ~active  # inactive nets are masked out below; keep them out of the error too
            for s in range(1, 7):
                ys = tuple(v + hb * _lincomb(_DP_A[s], ks, j) for j, v in enumerate(y))
                Ls, Ks = rhs(ys)
                bad = bad | ~(xp.isfinite(Ls) & (xp.abs(Ls) <= thr))
                ks.append(Ks)
            y_new = ys  # stage 7 is taken at the 5th-order solution (FSAL)
            L_new, F_new = Ls, ks[6]
            errs = tuple(
                hb * _lincomb(_DP_E, ks, j) / xp.maximum(atol + rtol * xp.maximum(xp.abs(v), xp.abs(vn)), tiny)
                for j, (v, vn) in enumerate(zip(y, y_new))
            )
            err = rms(errs)
            fin = xp.isfinite(err) & ~bad
            accept = active & fin & (err <= 1.0)
            safe = xp.where(fin & (err > 0), err, xp.ones_like(err))
            fac = xp.where(fin & (err > 0), _SAFETY * safe ** (-1 / 5), xp.full(batch, _FAC_MAX, dtype=f64))
            fac = xp.where(fin, xp.clip(fac, _FAC_MIN, _FAC_MAX), xp.full(batch, _FAC_MIN, dtype=f64))
            fac = xp.where(accept, fac, xp.minimum(fac, xp.ones_like(fac)))
            h_next = he * fac
            h_next = xp.where(accept & clipped, xp.maximum(h_next, h), h_next)
            h = xp.where(active, h_next, h)

            acc_b = accept[..., None, None]
            y = tuple(xp.where(acc_b, vn, v) for vn, v in zip(y_new, y))
            F = tuple(xp.where(acc_b, fn, f) for fn, f in zip(F_new, F))
            L = xp.where(accept, L_new, L)
            t = xp.where(accept, xp.where(clipped, xp.full(batch, tn, dtype=f64), t + he), t)
            count = count + xp.astype(active, int64)

            stuck = active & ~accept & (h < h_floor * xp.maximum(t / t_final, xp.ones_like(t)))
            status = xp.where(stuck, xp.full(batch, DIVERGED, dtype=int64), status)
            fail_at = xp.where(stuck, count, fail_at)
            alive = alive & ~stuck
            it += 1
        if tn in rec_times:
            for _ in range(rec_times.count(tn)):
                record(tn)

    history = tuple(xp.stack([r[j] for r in rec_W], axis=0) for j in range(len(y))) if keep_history else None
    return Trajectory(
        weights=tuple(y),
        loss=xp.stack(rec_loss, axis=0),
        steps=xp.asarray(rec_steps, dtype=int64),
        times=xp.asarray(rec_t, dtype=f64),
        status=status,
        diverged_at=fail_at,
        history=history,
        n_steps=it,
    )


def _flow_options(rtol, atol, max_steps, check_every, dt):
    eps = float(np.finfo(dtype_name(dt)).eps)
    r = check_positive(rtol, "rtol")
    a = check_positive(atol, "atol", allow_zero=True)
    return dict(
        rtol=max(r, 100 * eps),  # below ~100 eps the error estimate is round-off (SciPy's floor too)
        atol=a,
        max_steps=_check_int(max_steps, "max_steps", minimum=1),
        check_every=_check_int(check_every, "check_every", minimum=1),
    )


def gradient_flow(
    loss: Loss,
    Ws: Sequence[Array],
    *,
    t_final: float,
    times: Optional[Sequence[float]] = None,
    rtol: float = 1e-8,
    atol: float = 1e-10,
    residual: bool = False,
    max_steps: int = 100_000,
    keep_history: bool = False,
    check_every: int = 1,
) -> Trajectory:
    r"""Gradient flow :math:`\dot W_j = -\partial L/\partial W_j` on a batch of nets, to time ``t_final``.

    Integrated by the embedded Runge–Kutta pair of Dormand & Prince (order 5 with a 4th-order error estimate,
    first-same-as-last), in batched array code where **each net has its own step size** and accept/reject
    decision: its error :math:`\big(\frac1P\sum_i (e_i/(\mathrm{atol} + \mathrm{rtol}\max(|y_i|,|\tilde y_i|)))^2
    \big)^{1/2}` over its :math:`P` parameters must be :math:`\le 1`. Steps are clipped to land exactly on every
    record time. Under this flow the balancedness gaps :math:`W_{j+1}^\top W_{j+1} - W_jW_j^\top` are conserved
    (THEOREMS.md §2), which the tests check.

    Parameters
    ----------
    loss, Ws, residual
        As in :func:`gd`.
    t_final : float
        Final time (``> 0``); time is in units where :math:`\eta k` is GD's time.
    times : sequence of float, optional
        Non-decreasing record times in ``[0, t_final]`` (default ``(0, t_final)``).
    rtol, atol : float
        Error tolerances (``rtol`` is floored at ``100 eps`` of the weights' dtype).
    max_steps : int
        Attempted steps allowed per net; a net that needs more stops with status :data:`MAX_STEPS`.
    keep_history : bool
        Also record the weights at ``times``.
    check_every : int
        Iterations between host-side checks of whether every net reached the next record time.

    Returns
    -------
    Trajectory
        ``status`` is :data:`CONVERGED` for a net that reached ``t_final``, :data:`MAX_STEPS` for one that ran out
        of steps, :data:`DIVERGED` when its state stopped being finite (its step size collapsed); a failed net
        keeps its last accepted state, which later records repeat, and ``diverged_at`` holds its number of
        attempted steps.

    References
    ----------
    Dormand & Prince, A family of embedded Runge–Kutta formulae, J. Comput. Appl. Math. 6, 1980;
    Hairer, Nørsett & Wanner, Solving Ordinary Differential Equations I, §II.4–II.5.

    Examples
    --------
    >>> import numpy as np, linnet as ln
    >>> loss = ln.SquaredLoss.whitened(np.array([[1.0]]))
    >>> Ws = (np.array([[0.5]]), np.array([[0.5]]))     # balanced scalar net, u = ab = 0.25
    >>> run = ln.train.gradient_flow(loss, Ws, t_final=2.0, times=[0.0, 1.0, 2.0], rtol=1e-10, atol=1e-12)
    >>> u = ln.end_to_end(run.weights)[0, 0]            # Saxe eq. 12 with s = 1: u = e^{2t}/(e^{2t} - 1 + 1/u0)
    >>> bool(abs(u - np.exp(4) / (np.exp(4) - 1 + 4)) < 1e-8), str(run.status_names)
    (True, 'converged')
    """
    loss_fn, Ws, xp, batch = _prepare(loss, Ws, residual)
    batch = _broadcast_shapes(batch, *(tuple(W.shape[:-2]) for W in Ws))
    T, rec = _check_times(t_final, times)
    opts = _flow_options(rtol, atol, max_steps, check_every, Ws[0].dtype)
    residual = bool(residual)

    def rhs(W):
        L, G = _step.value_and_grads(loss_fn, W, residual, xp)
        return L, tuple(-g for g in G)

    with _quiet():
        return _integrate(
            xp=xp,
            y0=_broadcast_weights(Ws, batch, xp),
            batch=batch,
            rhs=rhs,
            t_final=T,
            rec_times=rec,
            keep_history=bool(keep_history),
            **opts,
        )


def end_to_end_flow(
    loss: Loss,
    We0: Array,
    *,
    depth: int,
    t_final: float,
    times: Optional[Sequence[float]] = None,
    rtol: float = 1e-8,
    atol: float = 1e-10,
    max_steps: int = 100_000,
    keep_history: bool = False,
    check_every: int = 1,
) -> Trajectory:
    r"""The end-to-end ODE of Arora, Cohen & Hazan (arXiv:1802.06509; THEOREMS.md §4):

    .. math:: \dot W_e = -\sum_{j=1}^N [W_eW_e^\top]^{\frac{j-1}N}\,\nabla\ell(W_e)\,[W_e^\top W_e]^{\frac{N-j}N},

    which the end-to-end matrix of gradient flow on a depth-``depth`` net follows exactly from a balanced
    initialization, whatever the hidden widths. Integrated as in :func:`gradient_flow` (per-net Dormand–Prince
    5(4)); PSD powers from the thresholded SVD (:func:`linnet.linalg.gram_powers`).

    Returns a :class:`Trajectory` with ``weights = (W_e,)``.

    Examples
    --------
    >>> import numpy as np, linnet as ln
    >>> loss = ln.SquaredLoss.whitened(np.array([[1.0]]))
    >>> run = ln.train.end_to_end_flow(loss, np.array([[0.25]]), depth=2, t_final=2.0, rtol=1e-10, atol=1e-12)
    >>> bool(abs(run.weights[0][0, 0] - np.exp(4) / (np.exp(4) - 1 + 4)) < 1e-8)
    True
    """
    loss_fn, Ws, xp, batch, N = _check_e2e(loss, We0, depth)
    batch = _broadcast_shapes(batch, tuple(Ws[0].shape[:-2]))
    T, rec = _check_times(t_final, times)
    opts = _flow_options(rtol, atol, max_steps, check_every, Ws[0].dtype)
    vel = _e2e_rhs(loss_fn, N, xp)

    def rhs(W):
        L, (V,) = vel(W)
        return L, (-V,)

    with _quiet():
        return _integrate(
            xp=xp,
            y0=_broadcast_weights(Ws, batch, xp),
            batch=batch,
            rhs=rhs,
            t_final=T,
            rec_times=rec,
            keep_history=bool(keep_history),
            **opts,
        )
