r"""The three ways :mod:`linnet.train.driver` runs a window of descent steps: *fast* on NumPy (in place, every
proposal kept, stopping at the first event), *exact* on NumPy (the array code's arithmetic in the two buffer sets,
failing nets rolled back), and in array-API code (fast or exact). Each takes the driver's run constants ``e``
(its ``_Env``) and the state ``st`` (a :class:`~linnet.train.driver.DescentState`) it advances.

On NumPy a fast window updates private weight buffers in place and, when ``evaluate_into(k, W, out)`` is
given, has the gradients written into reused buffers (no fresh arrays per step; two buffer sets alternate
between windows, so a window's start state stays intact for a replay). It checks the loss of every step
and, for losses that need it (``check_weights_finite``), the finiteness of weights and ``V`` once at the end
of the window: a non-finite entry of ``W`` stays non-finite under later fast steps, and a non-finite ``V``
makes the next ``W`` non-finite, so a window with an event is detected all the same. Exact windows run the
array-API arithmetic (:func:`array_window`), on NumPy in the two buffer sets taken in turn (each proposal goes into the set not
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
untouched buffer set, so the roll-back never needs the overwritten iterates. With
``evaluate_fused_run(k, W, out, update, n, fast_value, limit)`` given (a capability of the evaluation: ``None``
where it has none, else ``(steps done, L, V)``), a stretch of fused steps at which nothing is recorded,
observed or tested runs as one call that stops after the first loss outside ``limit``: the same evaluations
and updates without the per-step bookkeeping (which changes nothing there but the loss and direction the last
step sets).

Without convergence tests or a ``record_loss``, a NumPy fast window asks for *fast* loss values
(``fast_value`` of :func:`linnet._step.value_and_grads`: one matrix product less for losses from data) at
its inner steps that are not recorded, where the value serves only the divergence test. A fast value counts
as an event already ``_FAST_VALUE_MARGIN`` (:mod:`linnet.train.trajectory`; relative) below the threshold, and an event replays the
window with exact values, so statuses, ``diverged_at``, weights and every recorded loss are those of exact
values.
"""

from __future__ import annotations

from .. import _backend
from .trajectory import _weights_finite

__all__ = ["fast_numpy_window", "exact_numpy_window", "array_window"]

_np = _backend.np  # NumPy, as imported by linnet._backend (in-place fast windows on the NumPy namespace only)


def fast_numpy_window(e, st, k: int, kend: int) -> bool:
    """Steps ``k..kend`` in place on the other NumPy buffer set, every proposal kept (fused into the evaluation
    where allowed); ``True`` at the first event (the window is then replayed exactly)."""
    fast_np, xp, beta = e.fast_np, e.xp, e.beta
    o = 1 - fast_np.cur
    Wn, Gn, Mn = fast_np.W[o], fast_np.G[o], fast_np.M(o) if beta else None
    W, V, Mom = st.W, st.V, st.Mom
    upd = None  # the fused update (:meth:`_NumpyBuffers.fused_step`): again at each step if nets may freeze in it
    proposed = False  # W already holds this step's proposal (fused into the previous evaluation)
    kk = k
    while kk < kend:
        if not proposed:  # M_c = beta M + V (or V); W_n = W - (s_j a) M_c: chunked over the nets, across threads
            fast_np.update(W, V, Mom, Wn, Mn, fast_np.scale(e.steps_lr, st.active, e.dt), beta)
        Mc = Mn if beta else V
        W = Wn
        proposed = e.fuse and kk + 1 < kend and kk + 1 not in e.keep_set
        fv = e.fast_values and kk + 1 < kend and kk + 1 not in e.rec_set and kk + 1 not in e.obs_set
        n = 1  # steps done by this iteration
        if proposed:  # also W <- W - (s_j a) V in place once V is formed (heavy ball: Mn <- beta Mn + V first)
            if upd is None or e.stop is not None:
                upd = fast_np.fused_step(o, e.steps_lr, st.active, e.dt, beta, e.stop)
            run = _fused_run_length(e, kk, kend)
            done = None if run < 2 else e.evaluate_fused_run(kk + 1, W, Gn, upd, run, fv, e.fast_thr[fv])
            if done is not None:  # steps kk .. kk + run - 1 at once (nothing recorded, observed or tested there)
                n, Lc, Vc = done
                if n < run:  # a step's loss failed the divergence test
                    return True
            else:
                Lc, Vc = e.evaluate_fused(kk + 1, W, Gn, upd, fast_value=fv)
        elif e.evaluate_into is not None:
            Lc, Vc = e.evaluate_into(kk + 1, W, Gn, fast_value=fv)
        else:
            Lc, Vc = e.evaluate(kk + 1, W)
        # _loss_ok against finite thresholds (|L| <= cap is false for NaN and inf); a fast value: trusted clear of it
        if not (_np.abs(Lc) <= e.fast_thr[fv]).all():
            return True
        V, Mom = Vc, (Mc if beta else None)
        kk += n
        e.step_end(st, kk - 1, W, Lc, V, Mom)
    if e.check_weights_finite and not bool(xp.all(_weights_finite(st.W, xp) & _weights_finite(st.V, xp))):
        return True
    fast_np.cur = o
    return False


def _fused_run_length(e, kk: int, kend: int) -> int:
    """How many steps from ``kk`` on a fast window may run as one ``evaluate_fused_run`` call: fused steps whose
    evaluations (``kk + 1, ...``) come before ``kend`` and where nothing is recorded, observed or kept, with no
    stopping test (which may freeze a net at any step); their per-step bookkeeping (:meth:`_Env.step_end`) then
    changes nothing but the loss, direction and momentum, which the last step sets. 0 when it cannot."""
    if e.evaluate_fused_run is None or e.stop is not None:
        return 0
    n = 0
    while kk + n + 1 < kend and kk + n + 1 not in e.busy_set:
        n += 1
    return n


def exact_numpy_window(e, st, k: int, kend: int) -> bool:
    """Steps ``k..kend`` with the array code's arithmetic, in the two NumPy buffer sets taken in turn (each
    proposal goes into the set not holding ``W``, so a net that fails rolls back from it)."""
    fast_np, xp, beta = e.fast_np, e.xp, e.beta
    p = fast_np.cur
    W, V, Mom = st.W, st.V, st.Mom
    for kk in range(k, kend):
        q = 1 - p
        Wn, Gn, Mn = fast_np.W[q], fast_np.G[q], fast_np.M(q) if beta else None
        fast_np.update(W, V, Mom, Wn, Mn, fast_np.scale(e.steps_lr, st.active, e.dt), beta)
        Mc = Mn if beta else V
        Lc, Vc = e.evaluate(kk + 1, Wn) if e.evaluate_into is None else e.evaluate_into(kk + 1, Wn, Gn)
        ok = e.ok_mask(Lc, Wn, Vc)
        e.diverge(st, ok, kk)
        keep = ~(st.active & ok)
        if bool(keep.any()):  # W = where(active & ok, W_c, W)
            keep_b = keep[..., None, None]
            for wn, w in zip(Wn, W):
                _np.copyto(wn, w, where=keep_b)
        if not bool(ok.all()):  # failed nets: V and M set to zero
            bad_b = (~ok)[..., None, None]
            Vc = tuple(xp.where(bad_b, e.zero_b, v) for v in Vc)
            if beta:
                for m in Mn:
                    _np.copyto(m, 0, where=bad_b)
        st.active = st.active & ok
        W = Wn
        V, Mom = Vc, (Mc if beta else None)
        e.step_end(st, kk, W, Lc, V, Mom)
        p = q
    fast_np.cur = p
    return False


def array_window(e, st, k: int, kend: int, exact: bool) -> bool:
    """Steps ``k..kend`` in array-API code; ``exact``: roll failing nets back with ``xp.where`` masks, else keep
    every proposal and return whether a net failed (the window is then replayed exactly)."""
    xp, beta = e.xp, e.beta
    event = xp.zeros(e.batch, dtype=xp.bool)
    W, V, Mom = st.W, st.V, st.Mom
    for kk in range(k, kend):
        Mc = V if not beta or Mom is None else tuple(beta * m + v for m, v in zip(Mom, V))
        a = xp.astype(st.active, e.dt)[..., None, None]
        Wc = tuple(w - (s * a) * m for w, s, m in zip(W, e.steps_lr, Mc))
        Lc, Vc = e.evaluate(kk + 1, Wc)
        ok = e.ok_mask(Lc, Wc, Vc)
        if exact:
            e.diverge(st, ok, kk)
            upd_b = (st.active & ok)[..., None, None]
            W = tuple(xp.where(upd_b, wc, w) for wc, w in zip(Wc, W))
            bad_b = (~ok)[..., None, None]
            Vc = tuple(xp.where(bad_b, e.zero_b, v) for v in Vc)
            if beta:
                Mc = tuple(xp.where(bad_b, e.zero_b, m) for m in Mc)
            st.active = st.active & ok
        else:
            event = event | ~ok
            W = Wc
        V, Mom = Vc, (Mc if beta else None)
        e.step_end(st, kk, W, Lc, V, Mom)
    return bool(xp.any(event))
