r"""The one descent driver of :func:`linnet.train.gd`, :func:`~linnet.train.momentum`, :func:`~linnet.train.sgd`
and :func:`~linnet.train.end_to_end_gd`: windows of steps between host synchronisations, three ways to run a
window (NumPy fast, NumPy exact, array-API), and the reused NumPy buffers.

Descent :math:`W_j \leftarrow W_j - \eta c_j V_j` with ``(L, V) = evaluate(k, W)`` (heavy ball if
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

How a window runs (fast and exact on NumPy, in array-API code), the fused update, runs of fused steps and
fast values: :mod:`linnet.train._windows`.
"""

from __future__ import annotations

from typing import Callable, Optional

from .. import _backend, _fastpaths
from .._backend import is_numpy_namespace, to_numpy
from . import _windows
from ._buffers import _np_buffers
from .observers import ObserverContext, resolve
from .trajectory import (
    _FAST_VALUE_MARGIN,
    CONVERGED,
    DIVERGED,
    MAX_STEPS,
    Trajectory,
    _loss_ok,
    _stack_history,
    _threshold,
    _weights_finite,
)

__all__ = ["descend", "DescentState"]

_np = _backend.np  # NumPy, as imported by linnet._backend (in-place fast windows on the NumPy namespace only)


class DescentState:
    """What a window changes: weights ``W``, loss ``L``, direction ``V``, momentum ``Mom``, per-net ``status``,
    ``div_at``, ``conv_at`` (the step at which a net met the stopping test, -1 if it did not) and ``active``. ``copy()`` is shallow (arrays are replaced, never mutated, except the NumPy
    buffers, which alternate between windows)."""

    __slots__ = ("W", "L", "V", "Mom", "status", "div_at", "active", "conv_at")

    def __init__(self, W, L, V, Mom, status, div_at, active, conv_at):
        self.W, self.L, self.V, self.Mom = W, L, V, Mom
        self.status, self.div_at, self.active, self.conv_at = status, div_at, active, conv_at

    def copy(self) -> "DescentState":
        return DescentState(self.W, self.L, self.V, self.Mom, self.status, self.div_at, self.active, self.conv_at)


class _Env:
    """The constants of one descent run and its records (what every window reads)."""

    def __init__(self, **kw):
        self.__dict__.update(kw)
        self.rec_loss, self.rec_W, self.rec_steps = [], [], []
        self.rec_set = set(self.schedule)
        self.obs_rec = []  # (name, step, value), in order
        self.obs_set = set().union(*(steps for _, _, steps in self.observers))
        # steps whose weights must be intact after their evaluation (no fused update) and whose value is exact
        self.keep_set = (self.rec_set if self.keep_recorded else set()) | self.obs_set
        # steps at which anything but the divergence test happens (a run of fused steps stops before them)
        self.busy_set = self.keep_set | self.rec_set | self.obs_set

    def observe(self, k, W, L, G) -> None:
        if k not in self.obs_set:
            return
        ctx = ObserverContext(k, tuple(W), L, tuple(G), self.loss, self.residual, self.xp)
        for name, obs, steps in self.observers:
            if k in steps:
                self.obs_rec.append((name, k, obs(ctx)))

    def set_threshold(self, thr) -> None:
        """The divergence thresholds: ``thr`` (per net) and ``thr_fast`` for fast values; on NumPy also both
        capped at the dtype's largest finite value (``fast_thr``), so that ``|L| <= cap`` alone is
        :func:`~linnet.train.trajectory._loss_ok` (false for NaN and inf)."""
        self.thr = thr
        self.thr_fast = thr * (1.0 - _FAST_VALUE_MARGIN)
        if self.fast_np is not None:
            top = _np.finfo(_np.asarray(thr).dtype).max
            self.fast_thr = (_np.minimum(self.thr, top), _np.minimum(self.thr_fast, top))

    def ok_mask(self, Lc, Wc, Vc):
        ok = _loss_ok(Lc, self.thr, self.xp)
        if self.check_weights_finite:
            ok = ok & _weights_finite(Wc, self.xp) & _weights_finite(Vc, self.xp)
        return ok

    def settle(self, st: DescentState, Lc, Vc, k: int) -> None:
        """Freeze the running nets that meet the stopping test at step ``k`` (the one the fused update applies
        too)."""
        conv = None if self.stop is None else _fastpaths.stop_mask(Vc, Lc, self.stop, self.xp)
        if conv is not None:
            xp = self.xp
            conv = conv & st.active
            st.status = xp.where(conv, xp.full(self.batch, CONVERGED, dtype=xp.int64), st.status)
            st.conv_at = xp.where(conv, xp.full(self.batch, k, dtype=xp.int64), st.conv_at)
            st.active = st.active & ~conv

    def record(self, k, W, L) -> None:
        self.rec_steps.append(k)
        self.rec_loss.append(L if self.record_loss is None else self.record_loss(W, L))
        if self.keep_history:  # NumPy buffers are reused: copy
            self.rec_W.append(W if self.fast_np is None else tuple(w.copy() for w in W))

    def trim(self, n: int, n_obs: int) -> None:
        del self.rec_steps[n:], self.rec_loss[n:], self.rec_W[n:], self.obs_rec[n_obs:]

    def step_end(self, st: DescentState, kk: int, W, Lc, V, Mom) -> None:
        """After step ``kk + 1``: the running nets' loss, the direction and momentum, the stopping test, records."""
        st.W, st.L = W, self.xp.where(st.active, Lc, st.L)
        st.V, st.Mom = V, Mom
        self.settle(st, Lc, V, kk + 1)
        if kk + 1 in self.rec_set:
            self.record(kk + 1, W, st.L)
        self.observe(kk + 1, W, st.L, V)

    def diverge(self, st: DescentState, ok, kk: int) -> None:
        """Mark the running nets that fail ``ok`` at step ``kk + 1`` as diverged there."""
        xp, new_div = self.xp, st.active & ~ok
        st.status = xp.where(new_div, xp.full(self.batch, DIVERGED, dtype=xp.int64), st.status)
        st.div_at = xp.where(new_div, xp.full(self.batch, kk + 1, dtype=xp.int64), st.div_at)


def _resume(e: _Env, W0, prev) -> DescentState:
    """The state a run ``prev`` ended in, re-evaluated at its weights: what one uninterrupted run holds there
    (the gradient is a function of the weights; frozen nets keep their status; a net that diverged at that
    very step has direction 0)."""
    xp, k0 = e.xp, prev.n_steps
    W = W0 if e.fast_np is None else e.fast_np.W[0]
    L, V = e.evaluate(k0, W)
    e.set_threshold(xp.asarray(prev.state["threshold"]))
    status, div_at = xp.asarray(prev.status), xp.asarray(prev.diverged_at)
    dead = ((status == DIVERGED) & (div_at == k0))[..., None, None]  # zeroed at the step it diverged, as there
    V = tuple(xp.where(dead, e.zero_b, v) for v in V)
    Mom = prev.state.get("momentum")
    if Mom is not None and e.fast_np is not None:  # into the buffers the windows update in place
        Mom = tuple(_np.array(m, dtype=e.dt, order="C", copy=True) for m in Mom)
        e.fast_np._M[e.fast_np.cur] = Mom
    conv_at = xp.full(e.batch, -1, dtype=xp.int64) if prev.converged_at is None else xp.asarray(prev.converged_at)
    st = DescentState(W, xp.asarray(prev.loss[-1]), V, Mom, status, div_at, status == MAX_STEPS, conv_at)
    e.settle(st, L, V, k0)
    e.rec_steps.extend(int(k) for k in to_numpy(prev.steps))
    e.rec_loss.extend(prev.loss[i, ...] for i in range(prev.loss.shape[0]))
    for name in prev.records or {}:
        for i, k in enumerate(to_numpy(prev.record_steps[name])):
            e.obs_rec.append((name, int(k), prev.records[name][i, ...]))
    if e.keep_history:
        if prev.history is None:
            raise ValueError("`resume` must come from a run with keep_history=True when this one keeps history")
        e.rec_W.extend(tuple(h[i, ...] for h in prev.history) for i in range(prev.history[0].shape[0]))
    return st


def _start(e: _Env, W0) -> DescentState:
    """Evaluate the start, set the divergence threshold, mark non-finite starts diverged at step 0."""
    xp, batch, int64 = e.xp, e.batch, e.xp.int64
    W = W0 if e.fast_np is None else e.fast_np.W[0]
    L, V = e.evaluate(0, W)
    e.set_threshold(_threshold(L, xp))
    ok0 = e.ok_mask(L, W, V)
    if not bool(xp.all(ok0)):  # a frozen net needs a finite V (where(True, v, 0) is v: skipped when all are ok)
        V = tuple(xp.where(ok0[..., None, None], v, e.zero_b) for v in V)
    status = xp.where(ok0, xp.full(batch, MAX_STEPS, dtype=int64), xp.full(batch, DIVERGED, dtype=int64))
    div_at = xp.where(ok0, xp.full(batch, -1, dtype=int64), xp.zeros(batch, dtype=int64))
    st = DescentState(W, L, V, None, status, div_at, ok0, xp.full(batch, -1, dtype=int64))
    e.settle(st, L, V, 0)
    if 0 in e.rec_set:
        e.record(0, W, L)
    e.observe(0, W, st.L, st.V)
    return st


def _run_windows(e: _Env, st: DescentState, steps: int, check_every: int, k0: int = 0):
    """The window loop: each window runs fast when it may and is replayed exactly after an event; ``(state,
    steps run)``. On NumPy a window right after one in which a net diverged starts exact (divergences come in
    runs); after three replays that froze no net (false alarms) the run stays exact."""
    xp, numpy_buffers = e.xp, e.fast_np is not None
    k, false_alarms, always_exact, froze_last = k0, 0, False, False
    steps = k0 + steps
    while k < steps and bool(xp.any(st.active)):  # one host synchronisation per window
        kend = min(k + check_every, steps)
        start, n_rec, n_obs = st, len(e.rec_steps), len(e.obs_rec)
        exact = always_exact or (froze_last and numpy_buffers)
        replayed = False
        while True:
            st = start.copy()
            e.trim(n_rec, n_obs)
            if numpy_buffers and not exact:
                if not _windows.fast_numpy_window(e, st, k, kend):
                    break
                event_any = True
            elif numpy_buffers:
                event_any = _windows.exact_numpy_window(e, st, k, kend)
            else:
                event_any = _windows.array_window(e, st, k, kend, exact)
            if exact or not event_any:
                froze_last = exact and bool(xp.any((st.status == DIVERGED) & (start.status != DIVERGED)))
                if exact and replayed and not froze_last:  # a false alarm (a fast value within the margin, ...)
                    false_alarms += 1
                    always_exact = always_exact or false_alarms >= 3
                break
            replayed, exact = True, True  # a net diverged in this window: replay it with roll-back masks
        k = kend
    return st, k


def _trajectory(e: _Env, st: DescentState, n: int, lr, lr_shape: tuple) -> Trajectory:
    xp, batch, int64 = e.xp, e.batch, e.xp.int64
    if not e.rec_steps or e.rec_steps[-1] != n:
        e.record(n, st.W, st.L)  # stopped early: every net is frozen, so this state holds at every later step
    steps_arr = xp.asarray(e.rec_steps, dtype=int64)
    steps_f = xp.asarray([float(s) for s in e.rec_steps], dtype=xp.float64)
    if lr_shape:
        lr64 = xp.broadcast_to(xp.astype(lr, xp.float64), batch)
        times = xp.reshape(steps_f, (len(e.rec_steps),) + (1,) * len(batch)) * lr64
    else:
        times = steps_f * lr
    return Trajectory(
        weights=tuple(st.W),
        loss=xp.stack(e.rec_loss, axis=0),
        steps=steps_arr,
        times=times,
        status=st.status,
        diverged_at=st.div_at,
        converged_at=st.conv_at,
        history=_stack_history(e.rec_W, e.keep_history, xp),
        n_steps=n,
        state={
            "threshold": e.thr,
            "momentum": None if st.Mom is None else tuple(xp.asarray(m, copy=True) for m in st.Mom),
        },
        **_observed(e),
    )


def _observed(e: _Env) -> dict:
    """The ``records`` and ``record_steps`` fields from the observations (empty dicts -> ``None``)."""
    if not e.obs_rec:
        return {}
    names = list(dict.fromkeys(name for name, _, _ in e.obs_rec))
    xp = e.xp
    return {
        "records": {n: xp.stack([v for m, _, v in e.obs_rec if m == n], axis=0) for n in names},
        "record_steps": {n: xp.asarray([k for m, k, _ in e.obs_rec if m == n], dtype=xp.int64) for n in names},
    }


def descend(
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
    evaluate_fused_run: Optional[Callable] = None,
    resume=None,
    observe=None,
    problem=None,
) -> Trajectory:
    r"""Descent :math:`W_j \leftarrow W_j - \eta c_j V_j` with ``(L, V) = evaluate(k, W)`` (heavy ball if
    ``beta > 0``: :math:`M \leftarrow \beta M + V`, :math:`W \leftarrow W - \eta c_j M`); see the module
    docstring and ``linnet.train._windows`` for the windows, the fused update (``evaluate_into``,
    ``evaluate_fused``), runs of fused steps (``evaluate_fused_run``) and fast values. ``resume``: a :class:`~linnet.train.Trajectory` of the same
    method whose weights are ``W0``; the run continues it (steps, records, threshold, momentum) so that two
    chained runs equal one run bit for bit; ``schedule`` is then counted from its last step. ``observe``: the
    ``observe=`` mapping of the trainers (:mod:`linnet.train.observers`), ``problem = (loss, residual)`` for
    them."""
    k0 = 0 if resume is None else resume.n_steps
    observers = [(n, o, {k0 + k for k in ks if resume is None or k > 0}) for n, o, ks in resolve(observe, steps)]
    dt = W0[0].dtype
    if lr_shape:
        steps_lr = tuple(lr[..., None, None] * c for c in layer_lr)
    else:
        steps_lr = tuple(lr * c for c in layer_lr)
    # the stopping test, (gtol**2, ftol); a fused update applies it too: a net that meets it takes no step
    stop = None if gtol is None and ftol is None else (None if gtol is None else gtol * gtol, ftol)
    e = _Env(
        xp=xp,
        batch=batch,
        dt=dt,
        beta=beta,
        steps_lr=steps_lr,
        stop=stop,
        schedule=schedule if resume is None else [resume.n_steps + k for k in schedule if k > 0],
        keep_history=keep_history,
        record_loss=record_loss,
        check_weights_finite=check_weights_finite,
        evaluate=evaluate,
        evaluate_into=evaluate_into,
        evaluate_fused=evaluate_fused,
        evaluate_fused_run=evaluate_fused_run if evaluate_fused is not None else None,
        fast_np=_np_buffers(W0, batch) if is_numpy_namespace(xp) else None,
        fuse=evaluate_fused is not None,
        keep_recorded=keep_history or record_loss is not None,  # recorded steps need their weights intact
        # fast values only where a value serves nothing but the divergence test
        fast_values=gtol is None and ftol is None and record_loss is None,
        zero_b=xp.zeros((1,) * (len(batch) + 2), dtype=dt),
        observers=observers,
        loss=None if problem is None else problem[0],
        residual=False if problem is None else problem[1],
    )
    with _fastpaths.threads.small_step_blas(W0):  # no BLAS threads on small products (linnet._fastpaths.threads)
        st = _start(e, W0) if resume is None else _resume(e, W0, resume)
        st, n = _run_windows(e, st, steps, check_every, 0 if resume is None else resume.n_steps)
        return _trajectory(e, st, n, lr, lr_shape)


_descend = descend  # the name the trainers use
