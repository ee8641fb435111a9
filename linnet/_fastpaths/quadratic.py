r"""The NumPy kernel of losses with a :class:`~linnet.losses.QuadraticForm`: values and gradients of a batch of
nets, with an optional fused (heavy-ball) update, split over linnet's thread pool.

The closed form is the one of :mod:`linnet.product` (THEOREMS.md §1): with prefixes
:math:`P_j = F_j\cdots F_1` and :math:`G = \nabla\ell(W_e)`,

.. math::

    \frac{\partial L}{\partial W_j} = S_j^\top G P_{j-1}^\top = \big(P_{j-1} M_j\big)^\top, \qquad
    M_N = G^\top,\quad M_{j-1} = M_j F_j ,

so :math:`M_j = G^\top S_j` is built by a backward recursion and no suffix product is formed: a step costs
:math:`3(N-1)` matrix products (plus the loss's own), against :math:`4N-5` for prefixes, suffixes and a two-sided
pullback. Every product here is a plain ``A @ B`` of C-contiguous operands, and transposed results are written
straight into ``out=X.mT`` views: NumPy's stacked ``matmul`` is 2–2.6x slower when only its right operand is a
transposed view. The kernel reads only the loss's :meth:`~linnet.losses.Loss.quadratic_form`, never its class.
"""

from __future__ import annotations

import math
import weakref
from typing import Any, NamedTuple, Optional

from .. import _backend
from . import threads as _threads
from .select import select_path
from .stopping import stop_mask

__all__ = ["value_and_grads", "Update"]

_np = _backend.np  # NumPy, as imported by linnet._backend

_loss_consts: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()


class Update(NamedTuple):
    """A fused gradient step for :func:`linnet._step.value_and_grads` (``update=``).

    ``steps``: one entry or one per layer, each a Python float or an array broadcastable to ``batch + (1, 1)``;
    ``targets``: mutable arrays shaped like the weights (``targets[j] -= steps[j] * M_j``);
    ``momentum``: ``None`` or ``(beta, M)`` (``M[j] = beta * M[j] + G_j`` first, then ``M`` is the direction);
    ``stop``: ``None`` or ``(gtol**2, ftol)``: nets meeting that test at these weights take no step.
    A plain tuple of 2-4 entries in this order is accepted too.
    """

    steps: Any
    targets: Any
    momentum: Any = None
    stop: Any = None


def as_update(update) -> Optional[Update]:
    """``update`` as an :class:`Update` (``None`` stays ``None``); a tuple of 2-4 entries is taken in order."""
    if update is None or isinstance(update, Update):
        return update
    if not isinstance(update, (tuple, list)) or len(update) not in (2, 3, 4):
        raise ValueError(f"`update` must be an Update or a tuple of 2-4 entries, got {update!r}")
    return Update(*update)


# ---- loss constants ---------------------------------------------------------------------------------------------


def _consts(loss_fn) -> dict:
    r"""Contiguous transposed statistics of a quadratic loss, computed once per loss object.

    ``PhiT`` = :math:`\Phi^\top`; with :math:`\Lambda_{xx}`, ``SxxT`` = :math:`\Lambda_{xx}^\top` and
    ``KT`` = :math:`(\Phi\Lambda_{xx} - \Lambda_{yx})^\top` (zero in exact arithmetic), so that
    :math:`G^\top = \Lambda_{xx}^\top E^\top + K^\top` with :math:`E = W_e - \Phi` uses the one product
    :math:`\Lambda_{xx}^\top E^\top` that the centred value :math:`\tfrac12\langle E\Lambda_{xx}, E\rangle` needs too.
    Raw statistics (no :math:`\Phi`) get ``SxxT``, ``SyxT`` and ``c0`` = :math:`\tfrac12\operatorname{tr}\Lambda_{yy}`
    for the uncentred form.
    """
    c = _loss_consts.get(loss_fn)
    if c is not None:
        return c
    q = loss_fn.quadratic_form()
    T = lambda a: _np.ascontiguousarray(_np.swapaxes(_np.asarray(a), -1, -2))  # noqa: E731
    c = {"batch": tuple(q.batch_shape)}
    if q.kind == "raw":  # a minibatch of SGD: the uncentred form, as the loss computes it
        c |= {"raw": True, "SxxT": T(q.Sxx), "SyxT": T(q.Syx), "c0": 0.5 * _np.asarray(q.tr_yy)}
    else:
        Phi = _np.asarray(q.Phi)
        c |= {"PhiT": T(Phi), "c0": _np.asarray(q.c0)}
        if q.kind == "centred":
            Sxx = _np.asarray(q.Sxx)
            c["SxxT"] = T(Sxx)
            c["KT"] = T(_np.matmul(Phi, Sxx) - _np.asarray(q.Syx))
            if q.factor is not None:  # the value as 0.5 w ||F^T E^T||^2: accurate and >= c0 for singular Sxx
                c["FT"], c["fw"] = T(q.factor), q.factor_weight
    _loss_consts[loss_fn] = c
    return c


def _flat_loss(c: dict, bs: tuple, B: int) -> dict:
    """The loss constants with their batch flattened to ``(B,)`` (or left unbatched)."""
    lb = c["batch"]
    if lb == ():
        return {k: v for k, v in c.items() if k != "batch"} | {"batched": False}
    out = {"batched": True}
    for k, v in c.items():
        if k == "batch":
            continue
        if k in ("fw", "raw"):  # Python scalars, shared by the batch
            out[k] = v
        elif k == "c0":
            out[k] = _np.ascontiguousarray(_np.broadcast_to(v, lb)).reshape(B)
        else:
            out[k] = _np.ascontiguousarray(_np.broadcast_to(v, lb + v.shape[-2:])).reshape((B,) + v.shape[-2:])
    return out


# ---- the kernel, on one block of nets ---------------------------------------------------------------------------


def _block_shapes(dims: list, b: int, residual: bool, lc: dict) -> list:
    """Scratch shapes of :func:`_chunk`, in the order its steps take them."""
    N, d0, dN = len(dims) - 1, dims[0], dims[-1]
    shapes = []
    if residual:
        shapes += [(b, dims[j], dims[j - 1]) for j in range(1, N + 1)]  # F_j = I + W_j
    shapes += [(b, dims[j], d0) for j in range(2, N)]  # P_2 .. P_{N-1}
    shapes += [(b, d0, dN), (b, d0, dN)]  # W_e^T, E^T (raw statistics: Lxx^T W_e^T)
    if "SxxT" in lc and "raw" not in lc:
        shapes += [(b, d0, dN)]  # Lxx^T E^T
    shapes += [(b, d0, dims[j]) for j in range(N - 1, 1, -1)]  # M_{N-1} .. M_2, in the order used
    return shapes


def _forward(Ws, residual: bool, lo: int, hi: int, bufs):
    """The factors ``F_j`` of nets ``lo:hi``, their prefixes ``P`` (``P[j] = F_j...F_1``, ``P[0]`` unused) up to
    ``P_{N-1}``, and ``W_e^T`` written into a scratch buffer."""
    b = hi - lo
    if residual:
        Fs = []
        for W in Ws:
            F = next(bufs)
            _np.copyto(F, W[lo:hi])
            d = F.shape[-1]
            F.reshape(b, d * d)[:, :: d + 1] += 1  # the diagonal of each F_j, in place
            Fs.append(F)
    else:
        Fs = [W[lo:hi] for W in Ws]
    N = len(Fs)
    P = [None, Fs[0]]
    for j in range(2, N):
        P.append(_np.matmul(Fs[j - 1], P[-1], out=next(bufs)))
    WeT = next(bufs)
    if N == 1:
        _np.copyto(WeT, _np.swapaxes(Fs[0], -1, -2))
    else:
        _np.matmul(Fs[-1], P[-1], out=_np.swapaxes(WeT, -1, -2))
    return Fs, P, WeT


def _loss_block(WeT, lc: dict, lo: int, hi: int, bufs, fast_value: bool):
    """``(value, G^T)`` of the block from ``W_e^T`` (``G^T`` in a scratch buffer)."""
    sl = slice(lo, hi) if lc["batched"] else slice(None)
    if "raw" in lc:  # G^T = Lxx^T W_e^T - Lyx^T; value 0.5 (<W_e, W_e Lxx> - 2 <W_e, Lyx>) + 0.5 tr Lyy
        St = _np.matmul(lc["SxxT"][sl], WeT, out=next(bufs))
        v = _np.einsum("bij,bij->b", WeT, St)
        v -= 2.0 * _np.einsum("bij,bij->b", WeT, _np.broadcast_to(lc["SyxT"][sl], WeT.shape))
        Gt = _np.subtract(St, lc["SyxT"][sl], out=St)
    elif "SxxT" in lc:
        Et = _np.subtract(WeT, lc["PhiT"][sl], out=next(bufs))
        ESt = _np.matmul(lc["SxxT"][sl], Et, out=next(bufs))
        if "FT" in lc and not fast_value:
            EFt = _np.matmul(lc["FT"][sl], Et)
            v = _np.einsum("bij,bij->b", EFt, EFt)
            v *= lc["fw"]
        else:
            v = _np.einsum("bij,bij->b", Et, ESt)
        Gt = _np.add(ESt, lc["KT"][sl], out=ESt)
    else:
        Et = _np.subtract(WeT, lc["PhiT"][sl], out=next(bufs))
        v = _np.einsum("bij,bij->b", Et, Et)
        Gt = Et
    v *= 0.5
    v += lc["c0"][sl] if lc["batched"] else lc["c0"]
    return v, Gt


def _backward(Fs, P, Gt, grads, lo: int, hi: int, bufs) -> None:
    """``grads[j][lo:hi]``: :math:`M_N = G^\\top`, grad_j = :math:`(P_{j-1}M_j)^\\top`,
    :math:`M_{j-1} = M_jF_j` (:math:`M_1^\\top` is grad_1)."""
    N = len(Fs)
    M = Gt
    for j in range(N, 1, -1):
        _np.matmul(P[j - 1], M, out=_np.swapaxes(grads[j - 1][lo:hi], -1, -2))
        out = _np.swapaxes(grads[0][lo:hi], -1, -2) if j == 2 else next(bufs)
        M = _np.matmul(M, Fs[j - 1], out=out)
    if N == 1:
        _np.copyto(grads[0][lo:hi], _np.swapaxes(Gt, -1, -2))


def _fused_update(upd: Update, grads, vals, lo: int, hi: int, key: tuple, dt) -> None:
    """``targets[j][lo:hi] -= steps[j] * grads[j][lo:hi]`` in place, the product first rounded on its own (the two
    roundings of ``w - s * g``); with momentum ``M_j = beta * M_j + G_j`` in place first and ``M_j`` takes the
    place of ``G_j``; nets meeting ``stop`` take a zero step."""
    b = hi - lo
    xs = _threads.workspace(key + ("update",), [(b,) + g.shape[1:] for g in grads], dt)
    keep = None
    if upd.stop is not None:  # nets that meet the stopping test at this evaluation take no step (factor 0)
        conv = stop_mask([g[lo:hi] for g in grads], vals[lo:hi], upd.stop, _np)
        if conv is not None and conv.any():
            keep = (~conv).astype(dt)[:, None, None]
    for j in range(len(grads)):
        s = upd.steps[j] if isinstance(upd.steps[j], float) else upd.steps[j][lo:hi]
        if keep is not None:  # s * 1 = s and s * 0 = 0 exactly: the array code's (s a) with a = 0 for them
            s = s * keep
        src = grads[j][lo:hi]
        if upd.momentum is not None:  # heavy ball: M <- beta M + G (two roundings, as beta * m + g), then W -= s M
            beta, Ms = upd.momentum
            mj = Ms[j][lo:hi]
            _np.multiply(mj, beta, out=mj)
            src = _np.add(mj, src, out=mj)
        x = _np.multiply(src, s, out=xs[j])
        t = upd.targets[j][lo:hi]
        _np.subtract(t, x, out=t)


def _chunk(Ws, lc, residual, lo, hi, vals, grads, upd=None, fast_value=False):
    """Loss values and gradients of nets ``lo:hi`` written into ``vals[lo:hi]`` and ``grads[j][lo:hi]``, then the
    fused update ``upd`` (flat :class:`Update`, see :func:`_flat_update`) of the block while it is in cache. The
    targets may be ``Ws`` themselves: the block's weights are not read again after its gradients.
    ``fast_value``: the value from the product the gradient needs (see :func:`linnet._step.value_and_grads`),
    not from the loss's factor."""
    b = hi - lo
    dt = Ws[0].dtype
    dims = [Ws[0].shape[-1]] + [W.shape[-2] for W in Ws]  # d_0 .. d_N
    key = (b, tuple(dims), residual, "SxxT" in lc, "raw" in lc)
    bufs = iter(_threads.workspace(key, _block_shapes(dims, b, residual, lc), dt))
    Fs, P, WeT = _forward(Ws, residual, lo, hi, bufs)
    vals[lo:hi], Gt = _loss_block(WeT, lc, lo, hi, bufs, fast_value)
    _backward(Fs, P, Gt, grads, lo, hi, bufs)
    if upd is not None:
        _fused_update(upd, grads, vals, lo, hi, (b, tuple(dims)), dt)


# ---- the entry point --------------------------------------------------------------------------------------------


def _out_ok(out, Ws, bs, dt) -> bool:
    return (
        isinstance(out, (tuple, list))
        and len(out) == len(Ws)
        and all(
            type(g) is _np.ndarray
            and g.dtype == dt
            and tuple(g.shape) == bs + tuple(W.shape[-2:])
            and g.flags.c_contiguous
            and g.flags.writeable
            for g, W in zip(out, Ws)
        )
    )


def _flat_steps(steps, bs: tuple, B: int) -> Optional[list]:
    flat_s = []
    for s in steps:
        if isinstance(s, float):
            flat_s.append(s)
            continue
        if type(s) is not _np.ndarray:
            return None
        try:
            sb = _np.broadcast_to(s, bs + (1, 1))
        except ValueError:
            return None
        flat_s.append(_np.ascontiguousarray(sb).reshape(B, 1, 1))  # no copy for a contiguous bs + (1, 1) array
    return flat_s


def _flat_update(update: Update, Ws, bs: tuple, B: int, dt) -> Optional[Update]:
    """``update`` flattened to the batch ``(B,)`` for :func:`_chunk`; ``None`` if the kernel cannot do it here
    (steps: Python floats or NumPy arrays broadcastable to ``bs + (1, 1)``; targets and momenta C-contiguous,
    writeable, shaped and typed like ``Ws``; ``beta``, ``gtol**2`` and ``ftol`` Python floats)."""
    steps, targets, mom, stop = update
    if stop is not None and (
        not isinstance(stop, tuple) or len(stop) != 2 or not all(x is None or isinstance(x, float) for x in stop)
    ):
        return None
    N = len(Ws)
    if not isinstance(steps, (tuple, list)):
        steps = (steps,) * N
    if not isinstance(targets, (tuple, list)) or len(steps) != N or len(targets) != N:
        return None
    if not _out_ok(targets, Ws, bs, dt):
        return None
    if mom is not None:
        if not isinstance(mom, (tuple, list)) or len(mom) != 2 or not isinstance(mom[0], float):
            return None
        if not _out_ok(mom[1], Ws, bs, dt):
            return None
        mom = (mom[0], [m.reshape((B,) + m.shape[-2:]) for m in mom[1]])
    flat_s = _flat_steps(steps, bs, B)
    if flat_s is None:
        return None
    return Update(flat_s, [t.reshape((B,) + t.shape[-2:]) for t in targets], mom, stop)


#: Most nets a pool-size calibration (:func:`linnet._fastpaths.threads.pool_size`) runs the kernel on.
_CALIBRATION_NETS = 2048


def _split(B: int, Ws, lc=None, residual: bool = False) -> tuple:
    """``(bounds, sub)``: thread chunks of the ``B`` nets and the sub-chunk size each thread runs at once.

    The number of chunks is :func:`linnet._fastpaths.threads.pool_size`'s: with ``lc`` (the flat loss
    constants) given, a kind of step not seen before is timed on (at most :data:`_CALIBRATION_NETS` of) these
    weights, into scratch outputs (the results of the call are computed afterwards, whatever the choice)."""
    # sub-chunks only for small matrices (large ones are BLAS-bound and gain nothing from it)
    sub = max(1, _threads.SUBCHUNK_NETS * 64 // max(W.shape[-1] * W.shape[-2] for W in Ws))
    if B < 2 * _threads.MIN_NETS_PER_CHUNK:
        return [0, B], sub
    d0 = Ws[0].shape[-1]
    dims = [d0] + [W.shape[-2] for W in Ws]
    work = B * sum(W.shape[-1] * W.shape[-2] * d0 for W in Ws)
    n_max = min(_threads.num_threads(), B // _threads.MIN_NETS_PER_CHUNK, int(work // _threads.MIN_WORK_PER_CHUNK))
    if n_max <= 1:
        return [0, B], sub
    # the products of a step: the forward/backward ones d_j d_{j-1} d_0 and the loss's d_N d_0 d_0
    mnk = max([W.shape[-1] * W.shape[-2] * d0 for W in Ws] + [dims[-1] * d0 * d0])
    trial = None
    if lc is not None:
        Bc = min(B, _CALIBRATION_NETS)
        scratch = []

        def trial(n):
            if not scratch:  # scratch outputs, allocated only if a calibration runs
                scratch.append(_np.empty(Bc, dtype=Ws[0].dtype))
                scratch.append([_np.empty((Bc,) + W.shape[-2:], dtype=Ws[0].dtype) for W in Ws])

            def run(lo, hi):
                for a in range(lo, hi, sub):
                    _chunk(Ws, lc, residual, a, min(hi, a + sub), scratch[0], scratch[1])

            _threads.run_split([Bc * i // n for i in range(n + 1)], run)

    key = ("quadratic", tuple(dims), _np.dtype(Ws[0].dtype).str, B.bit_length())
    n = _threads.pool_size(key, n_max, mnk, trial)
    return [B * i // n for i in range(n + 1)], sub


def value_and_grads(loss_fn, Ws, residual: bool, xp, out=None, update=None, fast_value=False):
    """``(L, grads)`` by the NumPy kernel, or ``None`` when :func:`~linnet._fastpaths.select_path` does not pick
    it (the caller falls back to the generic code).

    ``out``: optional tuple of C-contiguous arrays shaped and typed like the gradients, written in place and
    returned (the caller owns them). ``update``: an :class:`Update` (or a tuple of its 2-4 entries) performed
    block by block in the thread that computed the block; when it cannot be done here, this returns ``None`` and
    nothing is updated. ``fast_value``: see :func:`linnet._step.value_and_grads`.
    """
    if select_path(loss_fn, Ws, xp) != "numpy-quadratic":
        return None
    if residual and any(W.shape[-1] != W.shape[-2] for W in Ws):
        return None  # the generic path raises the error
    bs = tuple(Ws[0].shape[:-2])
    B = math.prod(bs)
    lc = _flat_loss(_consts(loss_fn), bs, B)
    dt = Ws[0].dtype
    Wf = [_np.ascontiguousarray(W).reshape((B,) + W.shape[-2:]) for W in Ws]
    vals = _np.empty(B, dtype=dt)
    if out is not None and _out_ok(out, Ws, bs, dt):
        grads = [g.reshape((B,) + g.shape[-2:]) for g in out]
    else:
        out = None
        grads = [_np.empty((B,) + W.shape[-2:], dtype=dt) for W in Ws]
    upd = None
    if update is not None:
        upd = _flat_update(as_update(update), Ws, bs, B, dt)
        if upd is None:
            return None
    bounds, sub = _split(B, Wf, lc, residual)
    blas = 1 if _threads.largest_product(Wf) <= _threads.BLAS_SMALL_MNK else None  # rule 3 of .threads

    def run(lo, hi):
        for a in range(lo, hi, sub):
            _chunk(Wf, lc, residual, a, min(hi, a + sub), vals, grads, upd, fast_value)

    _threads.run_split(bounds, run, blas)
    if out is not None:
        return vals.reshape(bs), tuple(out)
    return vals.reshape(bs), tuple(g.reshape(bs + g.shape[-2:]) for g in grads)
