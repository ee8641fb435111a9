r"""Discrete descent on the layers: :func:`gd`, :func:`momentum`, and the driver every descent method shares.

:math:`W_j \leftarrow W_j - \eta c_j\,\partial L/\partial W_j` (THEOREMS.md §1–§2), heavy ball with
:math:`\beta > 0`. The driver :func:`_descend` (also used by :func:`linnet.train.sgd` and
:func:`linnet.train.end_to_end_gd`) loops on :func:`linnet._step.value_and_grads`, the hot path shared by every
training loop. Host synchronisation happens only every ``check_every`` steps, to stop early once every net is
converged or diverged; per-net freezing itself is exact at every step (a window in which a net diverged is
replayed with ``xp.where`` roll-back masks), so ``check_every`` changes the cost, never the result.
"""

from __future__ import annotations

import math
import threading
from typing import Any, Callable, Optional, Sequence

from .. import _backend, _fastpaths, _step
from .._backend import Array, is_numpy_namespace
from .._fastpaths import threads as _threads
from ..losses import Loss
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
    _FAST_VALUE_MARGIN,
    CONVERGED,
    DIVERGED,
    MAX_STEPS,
    Trajectory,
    _loss_ok,
    _quiet,
    _stack_history,
    _threshold,
    _weights_finite,
)

__all__ = ["gd", "momentum"]

_np = _backend.np  # NumPy, as imported by linnet._backend (in-place fast windows on the NumPy namespace only)


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
    evaluate_into: Optional[Callable] = None,
    evaluate_fused: Optional[Callable] = None,
) -> Trajectory:
    r"""Descent :math:`W_j \leftarrow W_j - \eta c_j V_j` with ``(L, V) = evaluate(k, W)`` (heavy ball if
    ``beta > 0``: :math:`M \leftarrow \beta M + V`, :math:`W \leftarrow W - \eta c_j M`).

    Each step proposes :math:`W - \eta c_j a\,M` (``a`` = 1 for running nets, 0 for frozen ones) and evaluates
    the proposal: its loss decides divergence, its ``V`` drives the next step. Steps run in windows of
    ``check_every`` between host synchronisations. A window first runs *fast*: every proposal is kept (a frozen
    net's proposal is its own weights, exactly). If a net stopped being finite during the window, the window
    is replayed from its start in *exact* mode, where each diverging net is rolled back to its last finite
    iterate by an ``xp.where`` mask. Both modes perform the same arithmetic on running nets, so the result
    does not depend on ``check_every``. A fast window stops at its first event (the rest would be thrown away);
    on NumPy the window after one in which a net diverged starts exact (divergences come in runs), the one
    after that fast again; only after three replays that froze no net (false alarms) does the run stay exact.

    On NumPy a fast window updates private weight buffers in place and, when ``evaluate_into(k, W, out)`` is
    given, has the gradients written into reused buffers (no fresh arrays per step; two buffer sets alternate
    between windows, so a window's start state stays intact for a replay). It checks the loss of every step
    and, for losses that need it (``check_weights_finite``), the finiteness of weights and ``V`` once at the end
    of the window: a non-finite entry of ``W`` stays non-finite under later fast steps, and a non-finite ``V``
    makes the next ``W`` non-finite, so a window with an event is detected all the same. Exact windows run the
    array-API code below, on NumPy in the two buffer sets taken in turn (each proposal goes into the set not
    holding the current weights, from which a failing net is rolled back). The results are bit-for-bit those of
    the array-API loop (tests/test_train.py compares every field).

    Descent with ``evaluate_fused(k, W, out, update)`` given fuses the update into the evaluation: the
    evaluation of step ``k`` also writes the proposal of step ``k + 1`` into ``W`` in place (with momentum, the
    next :math:`M_c = \beta M + V` into the momentum buffer first; nets that meet ``gtol``/``ftol`` at step
    ``k``, and so are frozen by it, take no step: the kernel tests the same numbers with
    :func:`linnet._fastpaths.sq_norm`), block by block while the block is in cache
    (:func:`linnet._step.value_and_grads` with ``update=``), with the same roundings as the separate update.
    It is not fused at the last step of a window (whose weights are the window's end state) nor at a step whose
    weights are recorded (in the history, or by ``record_loss``). A replayed window starts from the other,
    untouched buffer set, so the roll-back never needs the overwritten iterates.

    Without convergence tests or a ``record_loss``, a NumPy fast window asks for *fast* loss values
    (``fast_value`` of :func:`linnet._step.value_and_grads`: one matrix product less for losses from data) at
    its inner steps that are not recorded, where the value serves only the divergence test. A fast value counts
    as an event already :data:`_FAST_VALUE_MARGIN` (relative) below the threshold, and an event replays the
    window with exact values, so statuses, ``diverged_at``, weights and every recorded loss are those of exact
    values.
    """
    dt = W0[0].dtype
    int64 = xp.int64
    if lr_shape:
        lr_b = lr[..., None, None]
        steps_lr = tuple(lr_b * c for c in layer_lr)
    else:
        steps_lr = tuple(lr * c for c in layer_lr)

    def ok_mask(Lc, Wc, Vc):
        ok = _loss_ok(Lc, thr, xp)
        if check_weights_finite:
            ok = ok & _weights_finite(Wc, xp) & _weights_finite(Vc, xp)
        return ok

    # the stopping test, (gtol**2, ftol); a fused update applies it too: a net that meets it takes no step
    stop = None if gtol is None and ftol is None else (None if gtol is None else gtol * gtol, ftol)

    def settle(Lc, Vc, status, active):
        conv = None if stop is None else _fastpaths.stop_mask(Vc, Lc, stop, xp)  # the fused update's test
        if conv is not None:
            conv = conv & active
            status = xp.where(conv, xp.full(batch, CONVERGED, dtype=int64), status)
            active = active & ~conv
        return status, active

    fast_np = _np_buffers(W0, batch) if is_numpy_namespace(xp) else None
    # fused update (not at a step whose weights are recorded: history, or a record_loss of them)
    fuse = evaluate_fused is not None
    keep_recorded = keep_history or record_loss is not None  # recorded steps need their weights intact
    # fast values (one matrix product less per step for losses carrying a factor): only where a value serves
    # nothing but the divergence test, i.e. no convergence tests, inside a window, at steps not recorded
    fast_values = gtol is None and ftol is None and record_loss is None
    W = W0 if fast_np is None else fast_np.W[0]
    L, V = evaluate(0, W)
    thr = _threshold(L, xp)
    thr_fast = thr * (1.0 - _FAST_VALUE_MARGIN)
    ok0 = ok_mask(L, W, V)
    zero_b = xp.zeros((1,) * (len(batch) + 2), dtype=dt)
    if not bool(xp.all(ok0)):  # a frozen net needs a finite V (where(True, v, 0) is v: skipped when all are ok)
        V = tuple(xp.where(ok0[..., None, None], v, zero_b) for v in V)
    status = xp.where(ok0, xp.full(batch, MAX_STEPS, dtype=int64), xp.full(batch, DIVERGED, dtype=int64))
    div_at = xp.where(ok0, xp.full(batch, -1, dtype=int64), xp.zeros(batch, dtype=int64))
    status, active = settle(L, V, status, active=ok0)
    Mom = None

    rec_loss, rec_W, rec_steps = [], [], []
    rec_set = set(schedule)

    def record(k, W, L):
        rec_steps.append(k)
        rec_loss.append(L if record_loss is None else record_loss(W, L))
        if keep_history:
            rec_W.append(W if fast_np is None else tuple(w.copy() for w in W))  # NumPy buffers are reused

    if 0 in rec_set:
        record(0, W, L)
    k, false_alarms, always_exact, froze_last = 0, 0, False, False
    no_event = xp.zeros(batch, dtype=xp.bool)
    while k < steps and bool(xp.any(active)):  # one host synchronisation per window
        kend = min(k + check_every, steps)
        start = (W, L, V, Mom, status, div_at, active, len(rec_steps))
        # on NumPy a window right after one in which a net diverged starts exact (its cost is close to a fast
        # window's, and divergences come in runs): no fast attempt to throw away
        exact = always_exact or (froze_last and fast_np is not None)
        replayed = False
        while True:
            W, L, V, Mom, status, div_at, active, n_rec = start
            del rec_steps[n_rec:], rec_loss[n_rec:], rec_W[n_rec:]
            if fast_np is not None and not exact:
                # NumPy fast window, in place on the other buffer set (the start state stays intact)
                o = 1 - fast_np.cur
                Wn, Gn, Mn = fast_np.W[o], fast_np.G[o], fast_np.M(o) if beta else None
                event_any = False
                proposed = False  # W already holds this step's proposal (fused into the previous evaluation)
                for kk in range(k, kend):
                    if not proposed:
                        # M_c = beta M + V (or V); W_n = W - (s_j a) M_c: chunked over the nets, across threads
                        fast_np.update(W, V, Mom, Wn, Mn, fast_np.scale(steps_lr, active, dt), beta)
                    Mc = Mn if beta else V
                    W = Wn
                    proposed = fuse and kk + 1 < kend and not (keep_recorded and kk + 1 in rec_set)
                    fv = fast_values and kk + 1 < kend and kk + 1 not in rec_set
                    if proposed:  # also W <- W - (s_j a) V in place once V is formed: the next proposal
                        # heavy ball: Mn <- beta Mn + V in place first (Mn holds this step's M_c)
                        mom = (float(beta), Mn) if beta else None
                        upd = (fast_np.batch_scale(steps_lr, active, dt), W, mom, stop)
                        Lc, Vc = evaluate_fused(kk + 1, W, Gn, upd, fast_value=fv)
                    elif evaluate_into is not None:
                        Lc, Vc = evaluate_into(kk + 1, W, Gn, fast_value=fv)
                    else:
                        Lc, Vc = evaluate(kk + 1, W)
                    # a fast value (see above) is trusted only clear of the threshold
                    if not bool(xp.all(_loss_ok(Lc, thr_fast if fv else thr, xp))):
                        event_any = True  # the window is replayed exactly: stop here
                        break
                    L = xp.where(active, Lc, L)
                    V, Mom = Vc, (Mc if beta else None)
                    status, active = settle(Lc, Vc, status, active)
                    if kk + 1 in rec_set:
                        record(kk + 1, W, L)
                if check_weights_finite and not event_any:
                    event_any = not bool(xp.all(_weights_finite(W, xp) & _weights_finite(V, xp)))
                if not event_any:
                    fast_np.cur = o
                    break
            elif fast_np is not None:
                # NumPy exact window: the array code's arithmetic step for step, in the two buffer sets taken in
                # turn (each proposal goes into the set not holding W, so a net that fails rolls back from it)
                p = fast_np.cur
                for kk in range(k, kend):
                    q = 1 - p
                    Wn, Gn, Mn = fast_np.W[q], fast_np.G[q], fast_np.M(q) if beta else None
                    fast_np.update(W, V, Mom, Wn, Mn, fast_np.scale(steps_lr, active, dt), beta)
                    Mc = Mn if beta else V
                    if evaluate_into is not None:
                        Lc, Vc = evaluate_into(kk + 1, Wn, Gn)
                    else:
                        Lc, Vc = evaluate(kk + 1, Wn)
                    ok = ok_mask(Lc, Wn, Vc)
                    new_div = active & ~ok
                    status = xp.where(new_div, xp.full(batch, DIVERGED, dtype=int64), status)
                    div_at = xp.where(new_div, xp.full(batch, kk + 1, dtype=int64), div_at)
                    keep = ~(active & ok)
                    if bool(keep.any()):  # W = where(active & ok, W_c, W)
                        keep_b = keep[..., None, None]
                        for wn, w in zip(Wn, W):
                            _np.copyto(wn, w, where=keep_b)
                    if not bool(ok.all()):  # failed nets: V and M set to zero
                        bad_b = (~ok)[..., None, None]
                        Vc = tuple(xp.where(bad_b, zero_b, v) for v in Vc)
                        if beta:
                            for m in Mn:
                                _np.copyto(m, 0, where=bad_b)
                    active = active & ok
                    W = Wn
                    L = xp.where(active, Lc, L)
                    V, Mom = Vc, (Mc if beta else None)
                    status, active = settle(Lc, Vc, status, active)
                    if kk + 1 in rec_set:
                        record(kk + 1, W, L)
                    p = q
                fast_np.cur = p
                event_any = False
            else:
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
                event_any = bool(xp.any(event))
            if exact or not event_any:
                froze_last = exact and bool(xp.any((status == DIVERGED) & (start[4] != DIVERGED)))
                if exact and replayed and not froze_last:
                    # the replay froze no net: the fast window's event was a false alarm (a fast value within
                    # the margin, a loss that is finite only sometimes); after a few, stay exact
                    false_alarms += 1
                    always_exact = always_exact or false_alarms >= 3
                break
            replayed = True
            exact = True  # a net diverged in this window: replay it with roll-back masks
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


#: Nets per block of the in-place update (its scratch stays in cache), and fewest nets worth a thread.
_UPDATE_BLOCK_NETS = 512
_UPDATE_MIN_NETS_PER_THREAD = 1024


class _NumpyBuffers:
    r"""Private, reused NumPy buffers of a descent run: two sets of weights, gradients and momenta (the current
    state and the one a fast window writes into), and the step factors :math:`\eta c_j a` per net.

    The update :math:`M_c = \beta M + V`, :math:`W_n = W - (s_j a) M_c` runs in blocks of
    :data:`_UPDATE_BLOCK_NETS` nets (the product :math:`(s_j a)M_c` lives in a small per-thread scratch that
    stays in cache) split across the threads of :mod:`linnet._fastpaths` (NumPy's elementwise loops release the
    GIL). Each entry goes through the same two roundings as ``w - (s * a) * m`` in array code.
    """

    def __init__(self, W0, batch):
        self.batch = batch
        self.nb = math.prod(batch)
        self.shapes = [tuple(w.shape) for w in W0]
        self.flat = [(self.nb,) + s[-2:] for s in self.shapes]
        self.dt = W0[0].dtype
        first = tuple(_np.array(w, dtype=self.dt, order="C", copy=True) for w in W0)  # never the caller's arrays
        self.W = [first, self._empty()]
        self.G = [self._empty(), self._empty()]
        self._M = [None, None]
        self._factor_cache = None
        self.cur = 0
        self._local = threading.local()
        n = max(1, min(_threads.num_threads(), self.nb // _UPDATE_MIN_NETS_PER_THREAD))
        self.bounds = [self.nb * i // n for i in range(n + 1)]

    def _empty(self):
        return tuple(_np.empty(s, dtype=self.dt) for s in self.shapes)

    def M(self, i):
        if self._M[i] is None:
            self._M[i] = self._empty()
        return self._M[i]

    def scale(self, steps_lr, active, dt):
        r"""Per layer the factor :math:`s_j a` of the update :math:`W - (s_j a)M` (``a`` = 1 for running nets),
        as the array code computes it: a Python float when every net runs and the step size is a scalar
        (:math:`s \cdot 1 = s` exactly), else an array ``(nets, 1, 1)``."""
        all_active = bool(active.all())
        key = (all_active, None if all_active else active.tobytes())
        if self._factor_cache is not None and self._factor_cache[0] == key:
            return self._factor_cache[1]
        if all_active and all(isinstance(s, float) for s in steps_lr):
            out = tuple(steps_lr)
        else:
            a = active.astype(dt)[..., None, None]
            out = tuple(
                _np.ascontiguousarray(_np.broadcast_to(s * a, self.batch + (1, 1))).reshape(self.nb, 1, 1)
                for s in steps_lr
            )
        self._factor_cache = (key, out)
        return out

    def batch_scale(self, steps_lr, active, dt):
        """:meth:`scale` shaped for :func:`linnet._step.value_and_grads`'s ``update=``: floats, or arrays of
        shape ``batch + (1, 1)`` (views of the cached ones)."""
        return tuple(
            s if isinstance(s, float) else s.reshape(self.batch + (1, 1)) for s in self.scale(steps_lr, active, dt)
        )

    def update(self, W, V, Mom, Wn, Mn, sa, beta):
        """``Mn = beta * Mom + V`` (``V`` if ``Mom`` is None; skipped without momentum) and
        ``Wn = W - sa * (Mn or V)``, in place; ``Wn``/``Mn`` may be ``W``/``Mom`` themselves."""
        fl = self.flat
        W = [w.reshape(f) for w, f in zip(W, fl)]
        V = [_np.reshape(v, f) for v, f in zip(V, fl)]  # a copy only if an evaluate returned a strided array
        Mom = None if Mom is None else [m.reshape(f) for m, f in zip(Mom, fl)]
        Wn = [w.reshape(f) for w, f in zip(Wn, fl)]
        Mn = None if Mn is None else [m.reshape(f) for m, f in zip(Mn, fl)]
        args = (W, V, Mom, Wn, Mn, sa, beta)
        _threads.run_split(self.bounds, lambda lo, hi: self._update_range(lo, hi, *args))

    def _update_range(self, lo, hi, W, V, Mom, Wn, Mn, sa, beta):
        scratch = getattr(self._local, "x", None)
        if scratch is None:
            scratch = self._local.x = [_np.empty((_UPDATE_BLOCK_NETS,) + f[1:], dtype=self.dt) for f in self.flat]
        for a in range(lo, hi, _UPDATE_BLOCK_NETS):
            b = min(hi, a + _UPDATE_BLOCK_NETS)
            for j in range(len(W)):
                if beta:
                    mc = Mn[j][a:b]
                    if Mom is None:
                        _np.copyto(mc, V[j][a:b])
                    else:
                        _np.multiply(Mom[j][a:b], beta, out=mc)
                        _np.add(mc, V[j][a:b], out=mc)
                else:
                    mc = V[j][a:b]
                s = sa[j] if isinstance(sa[j], float) else sa[j][a:b]
                x = scratch[j][: b - a]
                _np.multiply(mc, s, out=x)
                _np.subtract(W[j][a:b], x, out=Wn[j][a:b])


def _np_buffers(W0, batch) -> Optional[_NumpyBuffers]:
    if not _fastpaths.enabled() or not all(type(w) is _np.ndarray for w in W0):
        return None
    return _NumpyBuffers(W0, batch)


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

    def evaluate_into(k, W, out, fast_value=False):  # NumPy: gradients written into the buffers `out` if possible
        return _step.value_and_grads(loss_fn, W, residual, xp, out=out, fast_value=fast_value)

    def evaluate_fused(k, W, out, update, fast_value=False):  # NumPy: and the next gradient step fused in, in place
        return _step.value_and_grads(loss_fn, W, residual, xp, out=out, update=update, fast_value=fast_value)

    with _quiet():
        return _descend(
            evaluate=evaluate,
            evaluate_into=evaluate_into,
            evaluate_fused=evaluate_fused,
            beta=beta,
            check_weights_finite=not loss_fn.finite_value_implies_finite_weights,
            **opts,
        )


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
