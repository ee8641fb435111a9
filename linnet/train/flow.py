r"""Gradient flow :math:`\dot W_j = -\partial L/\partial W_j` by the embedded Runge–Kutta pair of Dormand & Prince.

:func:`gradient_flow` integrates the flow of a batch of nets, each with its own step size and accept/reject
decision (5(4), first-same-as-last); the integrator :func:`_integrate` also drives
:func:`linnet.train.end_to_end_flow`.

References
----------
Dormand & Prince, A family of embedded Runge–Kutta formulae, J. Comput. Appl. Math. 6, 1980;
Hairer, Nørsett & Wanner, Solving Ordinary Differential Equations I, §II.4–II.5.
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import numpy as np  # host side only: argument checks, float64 epsilon

from .. import _backend, _progress, _step
from .._backend import Array, dtype_name, is_numpy_namespace
from .._validate import check_positive, check_real
from ..losses import Loss
from ._args import _broadcast_shapes, _broadcast_weights, _check_int, _prepare
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
)

__all__ = ["gradient_flow"]

_np = _backend.np  # NumPy, as imported by linnet._backend (stage buffers on the NumPy namespace only)


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


class _NumpyStages:
    r"""NumPy stage storage of the integrator: per layer one array ``K_j`` of shape ``(7, nets, d_j, d_{j-1})``
    holding the stage derivatives, so that a combination :math:`\sum_i a_{si}k_i` is one matrix-vector product
    ``a @ K_j[:s]`` (BLAS) instead of ``2s`` elementwise passes; the stage states
    :math:`y_s = y + h\sum_i a_{si}k_i` are formed in place in reused buffers. Same maths as :func:`_lincomb`,
    round-off differs at the ulp level (summation order)."""

    def __init__(self, y0, dt):
        self.shapes = [tuple(y.shape) for y in y0]
        self.nb = math.prod(self.shapes[0][:-2])
        self.K = [_np.empty((7,) + s, dtype=dt) for s in self.shapes]
        self.Y = [_np.empty(s, dtype=dt) for s in self.shapes]
        self.A = [_np.asarray(a, dtype=dt) for a in _DP_A]
        self.E = _np.asarray(_DP_E, dtype=dt)
        self.dt = dt
        self._scratch = None

    def put(self, s, Ks):
        """Store stage ``s``'s derivatives (skipped when the rhs already wrote them into ``K_j[s]``)."""
        for K, k in zip(self.K, Ks):
            if k is not K[s]:
                _np.copyto(K[s], k)
        return tuple(K[s] for K in self.K)

    def combine(self, coeffs, s, j, hcol, out=None):
        """``h * (coeffs @ K_j[:s])`` with ``h`` per net (``hcol`` of shape ``(nets, 1)``)."""
        flat = self.K[j][:s].reshape(s, -1)
        S = _np.matmul(coeffs[None, :s], flat, out=None if out is None else out.reshape(1, -1))  # BLAS (1, s) @ (s, n)
        S2 = S.reshape(self.nb, -1)
        _np.multiply(S2, hcol, out=S2)
        return S.reshape(self.shapes[j])

    def stage(self, s, y, hcol):
        """The state of stage ``s``: ``y_j + h sum_i a_{si} k_i`` (into reused buffers; stage 6 gets fresh ones,
        it is the proposed solution)."""
        out = []
        for j, v in enumerate(y):
            buf = None if s == 6 else self.Y[j]
            S = self.combine(self.A[s], s, j, hcol, out=buf)
            out.append(_np.add(v, S, out=S))
        return tuple(out)

    def error_sq(self, j, hcol, v, vn, atol, rtol, tiny):
        """Per net, the sum of squares of layer ``j``'s scaled error
        ``h sum_i e_i k_i / max(atol + rtol * max(|v|, |vn|), tiny)``: the array code's arithmetic, operation for
        operation, in two reused scratch arrays instead of six fresh ones."""
        if self._scratch is None:
            self._scratch = [(_np.empty(s, dtype=self.dt), _np.empty(s, dtype=self.dt)) for s in self.shapes]
        e_buf, sc = self._scratch[j]
        _np.abs(v, out=sc)
        _np.maximum(sc, _np.abs(vn, out=e_buf), out=sc)
        _np.multiply(sc, rtol, out=sc)
        _np.add(sc, atol, out=sc)
        _np.maximum(sc, tiny, out=sc)
        q = self.combine(self.E, 7, j, hcol, out=e_buf)
        _np.divide(q, sc, out=q)
        _np.multiply(q, q, out=q)
        return _np.sum(q, axis=(-2, -1))


def _check_times(t_final, times):
    T = check_positive(t_final, "t_final")
    if times is None:
        rec = [0.0, T]
    else:
        try:
            rec = [float(t) for t in check_real(times, "times", finite=False).reshape(-1)]
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
    rhs_into: Optional[Callable] = None,
) -> Trajectory:
    r"""Integrate :math:`\dot y = v(y)`, ``(L, v) = rhs(y)``, from 0 to ``t_final`` by Dormand-Prince 5(4).

    Per net: error :math:`\|e\|_{\rm rms}` with scale ``atol + rtol * max(|y|, |y_new|)`` over all entries,
    accept when ``<= 1``, new step ``h * clip(0.9 err^{-1/5}, 0.2, 10)``; steps are clipped to land exactly on
    each record time, where the nets wait for one another (one synchronised record for the batch).

    On NumPy the stage derivatives live in :class:`_NumpyStages` (combined by BLAS matrix-vector products);
    ``rhs_into(y, out, fast_value)``, when given, writes the derivatives into the stage buffers ``out`` itself.
    Stages 1-5, whose values serve only the divergence test, ask it for fast values (``fast_value`` of
    :func:`linnet._step.value_and_grads`); when an active net's fast value is not clear of the threshold by
    the relative margin ``_FAST_VALUE_MARGIN`` (1e-6, shared with descent), the stage is evaluated again with
    exact values, so every decision and every recorded value is that of exact values. Stage 6 (FSAL: the
    accepted state's value) is exact.
    """
    dt = y0[0].dtype
    f64, int64 = xp.float64, xp.int64
    P = sum(math.prod(y.shape[-2:]) for y in y0)
    eps64 = float(np.finfo(np.float64).eps)
    h_floor = 16 * eps64 * t_final
    tiny = float(xp.finfo(dt).smallest_normal)

    y = y0
    stages = _NumpyStages(y0, dt) if is_numpy_namespace(xp) and all(type(v) is _np.ndarray for v in y0) else None
    L, F = rhs(y)
    thr = _threshold(L, xp)
    thr_fast = thr * (1.0 - _FAST_VALUE_MARGIN)
    alive = _loss_ok(L, thr, xp)
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

    if stages is not None:  # private, writable copies: the accepted derivatives are selected into them in place
        F = tuple(_np.array(f, dtype=dt, copy=True) for f in F)
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
            _progress.tick(it)  # a no-op unless a progress display is on (gradient_flow's `progress`)
            active = alive & (t < tn)
            if it % check_every == 0 and not bool(xp.any(active)):
                break
            out_of_steps = active & (count >= max_steps)
            status = xp.where(out_of_steps, xp.full(batch, MAX_STEPS, dtype=int64), status)
            alive = alive & ~out_of_steps
            active = active & ~out_of_steps

            rest = tn - t
            clipped = h >= rest
            he = xp.where(clipped, rest, h)
            he = xp.where(active, he, xp.zeros_like(he))
            hb = xp.astype(he, dt)[..., None, None]
            ks = [F]
            bad = ~active  # inactive nets are masked out below; keep them out of the error too
            if stages is not None:
                hcol = xp.reshape(xp.astype(he, dt), (stages.nb, 1))
                stages.put(0, F)
            for s in range(1, 7):
                if stages is None:
                    ys = tuple(v + hb * _lincomb(_DP_A[s], ks, j) for j, v in enumerate(y))
                    Ls, Ks = rhs(ys)
                else:
                    ys = stages.stage(s, y, hcol)
                    if rhs_into is None:
                        Ls, Ks = rhs(ys)
                    else:
                        outs = tuple(K[s] for K in stages.K)
                        Ls, Ks = rhs_into(ys, outs, s < 6)
                        if s < 6 and bool(xp.any(active & ~_loss_ok(Ls, thr_fast, xp))):
                            Ls, Ks = rhs_into(ys, outs, False)  # near the threshold: decide on exact values
                    Ks = stages.put(s, Ks)
                bad = bad | ~_loss_ok(Ls, thr, xp)
                ks.append(Ks)
            y_new = ys  # stage 7 is taken at the 5th-order solution (FSAL)
            L_new, F_new = Ls, ks[6]
            if stages is None:
                errs = tuple(
                    hb * _lincomb(_DP_E, ks, j) / xp.maximum(atol + rtol * xp.maximum(xp.abs(v), xp.abs(vn)), tiny)
                    for j, (v, vn) in enumerate(zip(y, y_new))
                )
                err = rms(errs)
            else:
                sq = None
                for j, (v, vn) in enumerate(zip(y, y_new)):
                    u = stages.error_sq(j, hcol, v, vn, atol, rtol, tiny)
                    sq = u if sq is None else sq + u
                err = xp.sqrt(xp.astype(sq, f64) / P)
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
            if stages is None:
                y = tuple(xp.where(acc_b, vn, v) for vn, v in zip(y_new, y))
                F = tuple(xp.where(acc_b, fn, f) for fn, f in zip(F_new, F))  # fresh arrays (F_new: stage buffers)
            else:  # the same selections in place: y_new is fresh (stage 6), F is private (never a stage buffer)
                rej_b = ~acc_b
                for vn, v in zip(y_new, y):
                    _np.copyto(vn, v, where=rej_b)
                y = y_new
                for f, fn in zip(F, F_new):
                    _np.copyto(f, fn, where=acc_b)
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

    return Trajectory(
        weights=tuple(y),
        loss=xp.stack(rec_loss, axis=0),
        steps=xp.asarray(rec_steps, dtype=int64),
        times=xp.asarray(rec_t, dtype=f64),
        status=status,
        diverged_at=fail_at,
        history=_stack_history(rec_W, keep_history, xp),
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


def _solve(
    rhs: Callable,
    y0: tuple,
    batch: tuple,
    xp,
    *,
    t_final,
    times,
    rtol,
    atol,
    max_steps,
    keep_history,
    check_every,
    rhs_into: Optional[Callable] = None,
) -> Trajectory:
    r"""Check the flow arguments, then integrate :math:`\dot y = v(y)` from the validated ``y0`` over ``batch``."""
    T, rec = _check_times(t_final, times)
    opts = _flow_options(rtol, atol, max_steps, check_every, y0[0].dtype)
    with _quiet():
        return _integrate(
            xp=xp,
            y0=_broadcast_weights(y0, batch, xp),
            batch=batch,
            rhs=rhs,
            t_final=T,
            rec_times=rec,
            keep_history=bool(keep_history),
            rhs_into=rhs_into,
            **opts,
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
    progress: Optional[bool] = None,
    observe: Optional[dict] = None,
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
    progress : bool, optional
        Show a progress bar on stderr (loop iterations out of ``max_steps``; tqdm if installed, the
        ``progress`` extra). Default: only when stderr is a terminal and the run lasts over 2 s (never under
        pytest; ``LINNET_PROGRESS=0``/``1`` switches it off/on). It never changes the result.
    observe : dict, optional
        Quantities to record (:mod:`linnet.train.observers`), evaluated on the states at the record times
        ``times`` (which the integrator lands on exactly); a schedule counts records, not steps: ``k`` is every
        ``k``-th record time, a sequence selects record indices. ``run.record_steps[name]`` holds those indices
        (``run.times`` maps them to times).

    Returns
    -------
    Trajectory
        ``status`` is :data:`CONVERGED` for a net that reached ``t_final``, :data:`MAX_STEPS` for one that ran out
        of steps, :data:`DIVERGED` when its state stopped being finite (its step size collapsed); a failed net
        keeps its last accepted state, which later records repeat, and ``diverged_at`` holds its number of
        attempted steps (``-1`` for every net that did not diverge, :data:`MAX_STEPS` ones included).

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
    residual = bool(residual)

    def rhs(W):
        L, G = _step.value_and_grads(loss_fn, W, residual, xp)
        return L, tuple(-g for g in G)

    def rhs_into(W, out, fast_value=False):  # NumPy: the gradients into the stage buffers `out`, negated in place
        L, G = _step.value_and_grads(loss_fn, W, residual, xp, out=out, fast_value=fast_value)
        return L, tuple(_np.negative(g, out=o) for g, o in zip(G, out))

    with _progress.task(
        "gradient_flow", total=_check_int(max_steps, "max_steps", minimum=1), unit="step", progress=progress
    ):
        run = _solve(
            rhs,
            Ws,
            batch,
            xp,
            t_final=t_final,
            times=times,
            rtol=rtol,
            atol=atol,
            max_steps=max_steps,
            keep_history=keep_history or observe is not None,
            check_every=check_every,
            rhs_into=rhs_into,
        )
    if observe is None:
        return run
    return _observe_records(run, observe, loss_fn, residual, xp, keep_history)


def _observe_records(run: Trajectory, observe: dict, loss_fn, residual: bool, xp, keep_history: bool) -> Trajectory:
    """Evaluate the observers on the recorded states of a flow (record index ``i`` is the observers' step)."""
    from .observers import ObserverContext, resolve

    n = int(run.loss.shape[0])
    records, steps = {}, {}
    for name, obs, idx in resolve(observe, n - 1):
        vals = []
        for i in idx:
            W = tuple(h[i, ...] for h in run.history)
            G = _step.value_and_grads(loss_fn, W, residual, xp)[1]
            vals.append(obs(ObserverContext(i, W, run.loss[i, ...], G, loss_fn, residual, xp)))
        records[name] = xp.stack(vals, axis=0)
        steps[name] = xp.asarray(idx, dtype=xp.int64)
    return run._replace(records=records, record_steps=steps, history=run.history if keep_history else None)
