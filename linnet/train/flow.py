r"""Gradient flow :math:`\dot W_j = -\partial L/\partial W_j` by the embedded Runge–Kutta pair of Dormand & Prince.

:func:`gradient_flow` integrates the flow of a batch of nets, each with its own step size and accept/reject
decision (5(4), first-same-as-last); the integrator (:func:`_solve`) also drives :func:`linnet.train.end_to_end_flow`.
Here: the step control (:func:`_initial_step`, :func:`_control`), the stage evaluation (:func:`_try_step`) and the
loop over record times (:func:`_integrate`); the tableau and the stage arithmetic are in
:mod:`linnet.train._stages`.

References
----------
Dormand & Prince, A family of embedded Runge–Kutta formulae, J. Comput. Appl. Math. 6, 1980;
Hairer, Nørsett & Wanner, Solving Ordinary Differential Equations I, §II.4–II.5.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Optional, Sequence

import numpy as np  # host side only: argument checks, float64 epsilon

from .. import _backend, _progress, _step
from .._backend import Array
from ..losses import Loss
from ._args import _broadcast_shapes, _broadcast_weights, _check_int, _check_times, _flow_options, _prepare
from ._stages import _stages_for
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

_np = _backend.np  # NumPy, as imported by linnet._backend (rhs_into writes into NumPy stage buffers)

# step control (Hairer, Norsett & Wanner, Solving ODEs I, §II.4): new step h * clip(0.9 err^(-1/5), 0.2, 10)
_SAFETY, _FAC_MIN, _FAC_MAX = 0.9, 0.2, 10.0


class _Setup(NamedTuple):
    """The constants of one integration."""

    xp: Any
    batch: tuple
    rhs: Callable
    rhs_into: Optional[Callable]  # only with NumPy stage buffers
    stages: Any  # _ArrayStages or _NumpyStages
    n_params: int  # P, parameters per net (the error is an rms over them)
    rtol: float
    atol: float
    tiny: float  # smallest normal of the weights' dtype
    thr: Array  # per-net divergence threshold
    thr_fast: Array  # the threshold less the fast-value margin
    t_final: float
    h_floor: float  # a rejected step below h_floor * max(t / t_final, 1) means the net diverged


class _State(NamedTuple):
    """Per net: the accepted state ``y``, its derivatives ``F`` and loss ``L``, the next step size ``h``, the time
    ``t``, the attempted steps ``count``, and the status (``status``, ``fail_at``, ``alive``). With NumPy stage
    buffers ``F`` is private to the run and the next state's ``F`` is the same arrays, updated in place."""

    y: tuple
    F: tuple
    L: Array
    h: Array
    t: Array
    count: Array
    status: Array
    fail_at: Array
    alive: Array


def _rms(parts, n_params, xp):
    """Per net, the root mean square of the entries of the layers ``parts`` over ``n_params`` parameters."""
    s = None
    for q in parts:
        u = xp.sum(q * q, axis=(-2, -1))
        s = u if s is None else s + u
    return xp.sqrt(xp.astype(s, xp.float64) / n_params)


def _initial_step(y, F, setup: _Setup):
    """The first step size per net (Hairer, Norsett & Wanner, Solving ODEs I, §II.4): ``h0`` from ``|y|``,
    ``|f|``, refined by one Euler step."""
    xp, batch, f64, P = setup.xp, setup.batch, setup.xp.float64, setup.n_params
    sc0 = tuple(xp.maximum(setup.atol + setup.rtol * xp.abs(v), setup.tiny) for v in y)
    d0 = _rms(tuple(v / s for v, s in zip(y, sc0)), P, xp)
    d1 = _rms(tuple(v / s for v, s in zip(F, sc0)), P, xp)
    small = (d0 < 1e-5) | (d1 < 1e-5)
    h0 = xp.where(small, xp.full(batch, 1e-6, dtype=f64), 0.01 * d0 / xp.where(small, xp.ones_like(d1), d1))
    h0 = xp.where(xp.isfinite(h0), h0, xp.full(batch, 1e-6, dtype=f64))
    h0b = xp.astype(h0, y[0].dtype)[..., None, None]
    _, F1 = setup.rhs(tuple(v + h0b * f for v, f in zip(y, F)))
    d2 = _rms(tuple((f1 - f) / s for f1, f, s in zip(F1, F, sc0)), P, xp) / h0
    dmax = xp.maximum(d1, d2)
    h1 = xp.where(
        dmax <= 1e-15,
        xp.maximum(xp.full(batch, 1e-6, dtype=f64), h0 * 1e-3),
        (0.01 / xp.where(dmax <= 1e-15, xp.ones_like(dmax), dmax)) ** (1 / 5),
    )
    h = xp.minimum(100 * h0, h1)
    return xp.where(xp.isfinite(h) & (h > 0), h, xp.full(batch, 1e-6, dtype=f64))


def _start(xp, y0, batch, rhs, rhs_into, t_final, rtol, atol) -> tuple:
    """The constants of a run from ``y0`` and its first state: loss, derivatives, status and step size."""
    int64 = xp.int64
    stages = _stages_for(y0, xp)
    L, F = rhs(y0)
    thr = _threshold(L, xp)
    setup = _Setup(
        xp=xp,
        batch=batch,
        rhs=rhs,
        rhs_into=rhs_into if stages.buffered else None,
        stages=stages,
        n_params=sum(math.prod(y.shape[-2:]) for y in y0),
        rtol=rtol,
        atol=atol,
        tiny=float(xp.finfo(y0[0].dtype).smallest_normal),
        thr=thr,
        thr_fast=thr * (1.0 - _FAST_VALUE_MARGIN),
        t_final=t_final,
        h_floor=16 * float(np.finfo(np.float64).eps) * t_final,
    )
    alive = _loss_ok(L, thr, xp)
    status = xp.where(alive, xp.full(batch, CONVERGED, dtype=int64), xp.full(batch, DIVERGED, dtype=int64))
    fail_at = xp.where(alive, xp.full(batch, -1, dtype=int64), xp.zeros(batch, dtype=int64))
    h = _initial_step(y0, F, setup)
    zero_t, zero_count = xp.zeros(batch, dtype=xp.float64), xp.zeros(batch, dtype=int64)
    return setup, _State(y0, stages.private(F), L, h, zero_t, zero_count, status, fail_at, alive)


def _stage_value(s, ys, active, setup: _Setup):
    """Loss and derivatives at the state of stage ``s``. With ``rhs_into``, stages 1-5 (whose values only feed
    the divergence test) ask for fast values, and again for exact ones when an active net's fast value is not
    clear of the threshold by the margin; stage 6 is exact (FSAL: the accepted state's value)."""
    if setup.rhs_into is None:
        return setup.rhs(ys)
    xp, outs = setup.xp, setup.stages.outs(s)
    Ls, Ks = setup.rhs_into(ys, outs, s < 6)
    if s < 6 and bool(xp.any(active & ~_loss_ok(Ls, setup.thr_fast, xp))):
        Ls, Ks = setup.rhs_into(ys, outs, False)  # near the threshold: decide on exact values
    return Ls, Ks


def _try_step(st: _State, he, active, setup: _Setup) -> tuple:
    """Stages 1-6 of a step of sizes ``he`` from ``st``: the proposed state (5th order), its loss, the error
    norm per net and which nets met a non-finite or huge stage value (inactive nets count as bad)."""
    xp, stages = setup.xp, setup.stages
    stages.begin(st.F, he)
    bad = ~active  # inactive nets are masked out below; keep them out of the error too
    for s in range(1, 7):
        ys = stages.state(s, st.y)
        Ls, Ks = _stage_value(s, ys, active, setup)
        stages.put(s, Ks)
        bad = bad | ~_loss_ok(Ls, setup.thr, xp)
    sq = None  # stage 7 is taken at the 5th-order solution ys (FSAL)
    for j, (v, vn) in enumerate(zip(st.y, ys)):
        u = stages.error_sq(j, v, vn, setup.atol, setup.rtol, setup.tiny)
        sq = u if sq is None else sq + u
    return ys, Ls, xp.sqrt(xp.astype(sq, xp.float64) / setup.n_params), bad


def _control(err, bad, active, he, h, clipped, setup: _Setup) -> tuple:
    """Accept a net's step when its error norm is finite and ``<= 1``; its next step size
    ``he * clip(0.9 err^{-1/5}, 0.2, 10)``, at most ``he`` after a rejection and at least ``h`` after an accepted
    step clipped to a record time. Returns ``(accept, h_next)``."""
    xp, batch, f64 = setup.xp, setup.batch, setup.xp.float64
    fin = xp.isfinite(err) & ~bad
    accept = active & fin & (err <= 1.0)
    safe = xp.where(fin & (err > 0), err, xp.ones_like(err))
    fac = xp.where(fin & (err > 0), _SAFETY * safe ** (-1 / 5), xp.full(batch, _FAC_MAX, dtype=f64))
    fac = xp.where(fin, xp.clip(fac, _FAC_MIN, _FAC_MAX), xp.full(batch, _FAC_MIN, dtype=f64))
    fac = xp.where(accept, fac, xp.minimum(fac, xp.ones_like(fac)))
    h_next = he * fac
    h_next = xp.where(accept & clipped, xp.maximum(h_next, h), h_next)
    return accept, xp.where(active, h_next, h)


def _advance(st: _State, tn: float, max_steps: int, setup: _Setup) -> _State:
    """One attempted step of every active net toward the record time ``tn`` (clipped to land on it)."""
    xp, batch, f64, int64 = setup.xp, setup.batch, setup.xp.float64, setup.xp.int64
    active = st.alive & (st.t < tn)
    out_of_steps = active & (st.count >= max_steps)
    status = xp.where(out_of_steps, xp.full(batch, MAX_STEPS, dtype=int64), st.status)
    alive = st.alive & ~out_of_steps
    active = active & ~out_of_steps

    rest = tn - st.t
    clipped = st.h >= rest
    he = xp.where(clipped, rest, st.h)
    he = xp.where(active, he, xp.zeros_like(he))
    y_new, L_new, err, bad = _try_step(st, he, active, setup)
    accept, h = _control(err, bad, active, he, st.h, clipped, setup)
    y, F = setup.stages.take(st.y, st.F, y_new, accept)
    L = xp.where(accept, L_new, st.L)
    t = xp.where(accept, xp.where(clipped, xp.full(batch, tn, dtype=f64), st.t + he), st.t)
    count = st.count + xp.astype(active, int64)

    stuck = active & ~accept & (h < setup.h_floor * xp.maximum(t / setup.t_final, xp.ones_like(t)))
    status = xp.where(stuck, xp.full(batch, DIVERGED, dtype=int64), status)
    fail_at = xp.where(stuck, count, st.fail_at)
    return _State(y, F, L, h, t, count, status, fail_at, alive & ~stuck)


def _integrate(setup: _Setup, st: _State, rec_times: list, max_steps, check_every, keep_history) -> Trajectory:
    """Step every net from ``st`` to each record time in turn (the nets wait for one another there: one
    synchronised record for the batch), then assemble the :class:`Trajectory`."""
    xp = setup.xp
    records = []  # (loss, iteration, time, weights or None) at each record time
    it = 0
    for tn in sorted(set(rec_times) | {setup.t_final}):
        while True:
            _progress.tick(it)  # a no-op unless a progress display is on (gradient_flow's `progress`)
            if it % check_every == 0 and not bool(xp.any(st.alive & (st.t < tn))):
                break
            st = _advance(st, tn, max_steps, setup)
            it += 1
        records += [(st.L, it, tn, st.y if keep_history else None)] * rec_times.count(tn)
    return Trajectory(
        weights=tuple(st.y),
        loss=xp.stack([r[0] for r in records], axis=0),
        steps=xp.asarray([r[1] for r in records], dtype=xp.int64),
        times=xp.asarray([r[2] for r in records], dtype=xp.float64),
        status=st.status,
        diverged_at=st.fail_at,
        history=_stack_history([r[3] for r in records], keep_history, xp),
        n_steps=it,
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
    r"""Check the flow arguments, then integrate :math:`\dot y = v(y)`, ``(L, v) = rhs(y)``, from the validated
    ``y0`` (broadcast to ``batch``) to ``t_final`` by Dormand-Prince 5(4).

    Per net: error :math:`\|e\|_{\rm rms}` with scale ``atol + rtol * max(|y|, |y_new|)`` over all entries,
    accept when ``<= 1``, new step ``h * clip(0.9 err^{-1/5}, 0.2, 10)`` (:func:`_control`); steps are clipped
    to land exactly on each record time (:func:`_integrate`).

    On NumPy the stage derivatives live in :class:`linnet.train._stages._NumpyStages` (combined by BLAS
    matrix-vector products); ``rhs_into(y, out, fast_value)``, when given, writes the derivatives into the stage
    buffers ``out`` itself. Stages 1-5, whose values serve only the divergence test, ask it for fast values
    (``fast_value`` of :func:`linnet._step.value_and_grads`); when an active net's fast value is not clear of the
    threshold by the relative margin ``_FAST_VALUE_MARGIN`` (1e-6, shared with descent), the stage is evaluated
    again with exact values, so every decision and every recorded value is that of exact values
    (:func:`_stage_value`). Stage 6 (FSAL: the accepted state's value) is exact.
    """
    T, rec = _check_times(t_final, times)
    opts = _flow_options(rtol, atol, max_steps, check_every, y0[0].dtype)
    with _quiet():
        y0 = _broadcast_weights(y0, batch, xp)
        setup, st = _start(xp, y0, batch, rhs, rhs_into, T, opts["rtol"], opts["atol"])
        return _integrate(setup, st, rec, opts["max_steps"], opts["check_every"], bool(keep_history))


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
