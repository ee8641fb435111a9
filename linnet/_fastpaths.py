r"""NumPy fast paths of the training hot path (used by :mod:`linnet._step`), and an HVP-lean eigensolver.

The closed form is the one of :mod:`linnet.product` (THEOREMS.md §1): with prefixes
:math:`P_j = F_j\cdots F_1` and :math:`G = \nabla\ell(W_e)`,

.. math::

    \frac{\partial L}{\partial W_j} = S_j^\top G P_{j-1}^\top = \big(P_{j-1} M_j\big)^\top, \qquad
    M_N = G^\top,\quad M_{j-1} = M_j F_j ,

so :math:`M_j = G^\top S_j` is built by a backward recursion and no suffix product is formed: a step costs
:math:`3(N-1)` matrix products (plus the loss's own), against :math:`4N-5` for prefixes, suffixes and a two-sided
pullback. Every product here is a plain ``A @ B`` of C-contiguous operands, and transposed results are written
straight into ``out=X.mT`` views: NumPy's stacked ``matmul`` is 2–2.6x slower when only its right operand is a
transposed view.

NumPy's stacked small-matrix ``matmul`` runs on one core whatever the BLAS thread count, and it releases the GIL,
so a batch of nets is split into chunks run by a thread pool. Scratch buffers are kept per thread and reused
across calls (``out=``), so a training loop does not grow its memory step after step; the returned arrays are
always fresh.

This module is NumPy-only (the namespace is checked with :func:`linnet._backend.is_numpy_namespace`; other
backends take the generic array-API path of :mod:`linnet._step`). It takes the NumPy module from
:mod:`linnet._backend`, the one module that imports it.
"""

from __future__ import annotations

import math
import os
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple, Optional

from . import _backend, _progress
from ._backend import is_numpy_namespace
from .losses import SquaredLoss

__all__ = ["value_and_grads", "usable_cores", "set_num_threads", "top_eigenvalue", "TopEigen", "LeanHVP"]

_np = _backend.np  # NumPy, as imported by linnet._backend

#: Fewest nets per thread chunk: below this the thread hand-off costs more than it saves.
MIN_NETS_PER_CHUNK = 128
#: Most nets processed at once by one thread: keeps a sub-chunk's working set in cache (measured: 512-1024
#: nets of width 8 run ~12% faster per net than 4096 at once).
SUBCHUNK_NETS = 512
#: Fewest multiply-adds per chunk and step (sum over layers of d_j d_{j-1} d_0 per net) worth a thread.
MIN_WORK_PER_CHUNK = 2.0e5

_lock = threading.Lock()
_pool: Optional[ThreadPoolExecutor] = None
_pool_size = 0
_n_threads: Optional[int] = None
_local = threading.local()
_loss_consts: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()


def usable_cores() -> int:
    """Number of CPU cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def set_num_threads(n: Optional[int]) -> None:
    """Threads used to split a batch of nets (``None``: all usable cores; ``1``: no splitting)."""
    global _n_threads
    if n is not None and (not isinstance(n, int) or n < 1):
        raise ValueError(f"`n` must be a positive int or None, got {n!r}")
    _n_threads = n


def _threads() -> int:
    return _n_threads if _n_threads is not None else usable_cores()


def _get_pool(n: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    with _lock:
        if _pool is None or _pool_size < n:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="linnet-step")
            _pool_size = n
        return _pool


# ---- loss constants ---------------------------------------------------------------------------------------------


def _squared_consts(loss_fn: SquaredLoss) -> dict:
    r"""Contiguous transposed statistics of a squared loss, computed once per loss object.

    ``PhiT`` = :math:`\Phi^\top`; with data, ``SxxT`` = :math:`\Lambda_{xx}^\top` and
    ``KT`` = :math:`(\Phi\Lambda_{xx} - \Lambda_{yx})^\top` (zero in exact arithmetic), so that
    :math:`G^\top = \Lambda_{xx}^\top E^\top + K^\top` with :math:`E = W_e - \Phi` uses the one product
    :math:`\Lambda_{xx}^\top E^\top` that the centred value :math:`\tfrac12\langle E\Lambda_{xx}, E\rangle` needs too.
    Raw statistics (a minibatch loss of :func:`linnet.train.sgd`, no :math:`\Phi`) get ``SxxT``, ``SyxT`` and
    ``c0`` = :math:`\tfrac12\operatorname{tr}\Lambda_{yy}` for the uncentred form the loss itself uses.
    """
    c = _loss_consts.get(loss_fn)
    if c is None:
        if loss_fn.Phi is None:  # raw statistics (a minibatch of SGD): the uncentred form, as the loss computes it
            Sxx, Syx = _np.asarray(loss_fn.Sxx), _np.asarray(loss_fn.Syx)
            c = {
                "raw": True,
                "SxxT": _np.ascontiguousarray(_np.swapaxes(Sxx, -1, -2)),
                "SyxT": _np.ascontiguousarray(_np.swapaxes(Syx, -1, -2)),
                "c0": 0.5 * _np.asarray(loss_fn.tr_yy),  # the constant term of the uncentred value
            }
            c["batch"] = _np.broadcast_shapes(Sxx.shape[:-2], Syx.shape[:-2], c["c0"].shape)
            _loss_consts[loss_fn] = c
            return c
        Phi = _np.asarray(loss_fn.Phi)
        lb = Phi.shape[:-2]
        c = {"batch": lb, "PhiT": _np.ascontiguousarray(_np.swapaxes(Phi, -1, -2)), "c0": _np.asarray(loss_fn.c0)}
        if loss_fn.Sxx is not None:
            Sxx = _np.asarray(loss_fn.Sxx)
            Syx = _np.asarray(loss_fn.Syx)
            c["SxxT"] = _np.ascontiguousarray(_np.swapaxes(Sxx, -1, -2))
            K = _np.matmul(Phi, Sxx) - Syx
            c["KT"] = _np.ascontiguousarray(_np.swapaxes(K, -1, -2))
            if loss_fn.factor is not None:  # the value as 0.5 ||F^T E^T||^2: accurate and >= c0 for singular Sxx
                c["FT"] = _np.ascontiguousarray(_np.swapaxes(_np.asarray(loss_fn.factor), -1, -2))
                c["fw"] = loss_fn.factor_weight
            c["batch"] = _np.broadcast_shapes(lb, Sxx.shape[:-2], Syx.shape[:-2], c["c0"].shape)
        else:
            c["batch"] = _np.broadcast_shapes(lb, c["c0"].shape)
        _loss_consts[loss_fn] = c
    return c


def _flat_loss(c: dict, bs: tuple, B: int) -> Optional[dict]:
    """The loss constants with their batch flattened to ``(B,)`` (or left unbatched); ``None`` if unsupported."""
    lb = c["batch"]
    if lb == ():
        return {k: v for k, v in c.items() if k != "batch"} | {"batched": False}
    if lb != bs:
        return None
    out = {"batched": True}
    for k, v in c.items():
        if k == "batch":
            continue
        if k in ("fw", "raw"):  # Python scalars, shared by the batch
            out[k] = v
            continue
        if k == "c0":
            out[k] = _np.ascontiguousarray(_np.broadcast_to(v, lb)).reshape(B)
        else:
            out[k] = _np.ascontiguousarray(_np.broadcast_to(v, lb + v.shape[-2:])).reshape((B,) + v.shape[-2:])
    return out


# ---- the kernel -------------------------------------------------------------------------------------------------


def _rowdot(r):
    """Per row of a 2-D array, the sum of squares: each row on its own, so the result for a net does not depend
    on how many nets are in the call (``numpy.einsum`` over a 3-D block does, in the last bit, for large layers)."""
    if hasattr(_np, "vecdot"):  # NumPy >= 2.0: one pass, no temporary
        return _np.vecdot(r, r)
    return _np.sum(r * r, axis=-1)  # pragma: no cover - NumPy 1.26


def sq_norm(Vs, xp):
    """Per net (the batch shape of ``Vs``), the squared norm of a tuple of layer arrays: :func:`sq_norms` on
    NumPy arrays, ``sum(v * v)`` over the last two axes elsewhere. What every stopping test on a gradient norm
    uses (:mod:`linnet.train` and the fused update of :mod:`linnet._step`), so their decisions agree bit for bit."""
    if is_numpy_namespace(xp) and all(type(v) is _np.ndarray for v in Vs):
        bs = tuple(Vs[0].shape[:-2])
        return sq_norms(Vs, math.prod(bs)).reshape(bs)
    g2 = None
    for v in Vs:
        t = xp.sum(v * v, axis=(-2, -1))
        g2 = t if g2 is None else g2 + t
    return g2


def stop_mask(Vs, value, stop, xp):
    """Per net, whether the stopping test ``stop = (gtol**2, ftol)`` (Python floats or ``None``) holds for the
    gradient ``Vs`` (norm by :func:`sq_norm`) and the loss ``value``; ``None`` when ``stop`` tests nothing. The
    one test that :mod:`linnet.train` settles nets by and that the fused updates (NumPy kernel, generic path)
    apply, so they agree bit for bit."""
    gtol2, ftol = stop
    conv = None
    if gtol2 is not None:
        conv = sq_norm(Vs, xp) <= gtol2
    if ftol is not None:
        f = value <= ftol
        conv = f if conv is None else conv | f
    return conv


def sq_norms(Vs, n: int):
    """Per net, the sum over layers of squared Frobenius norms of ``Vs`` (arrays of ``n`` nets, any batch shape
    flattened to ``n``), layer by layer in order. The one computation of a gradient norm that the kernel (for
    ``gtol`` inside a fused update) and :mod:`linnet.train` (for its stopping test) share, bit for bit."""
    g2 = None
    for v in Vs:
        t = _rowdot(_np.reshape(v, (n, -1)))
        g2 = t if g2 is None else g2 + t
    return g2


def _workspace(key: tuple, shapes: list, dtype) -> list:
    """Per-thread scratch buffers for ``key`` and ``dtype``, reused across calls (at most 8 keys per thread).

    The dtype is part of the key: a float32 run after a float64 one of the same shapes must not compute in the
    float64 buffers left over (that would round differently and depend on what ran before).
    """
    key = key + (_np.dtype(dtype).str,)
    ws = getattr(_local, "ws", None)
    if ws is None:
        ws = _local.ws = {}
    bufs = ws.get(key)
    if bufs is None:
        if len(ws) >= 8:
            ws.clear()
        bufs = ws[key] = [_np.empty(s, dtype=dtype) for s in shapes]
    return bufs


def _chunk(Ws, lc, residual, lo, hi, vals, grads, upd=None, fast_value=False):
    """Loss values and gradients of nets ``lo:hi`` written into ``vals[lo:hi]`` and ``grads[j][lo:hi]``.

    ``upd = (steps, targets, mom, stop)`` (flat per layer: a float or a ``(B, 1, 1)`` array, and
    ``(B, d_j, d_{j-1})`` arrays; ``mom`` is ``None`` or ``(beta, M)``; ``stop`` is ``None`` or
    ``(gtol**2, ftol)``): once the block's gradients are formed, ``targets[j][lo:hi] -= steps[j] *
    grads[j][lo:hi]`` in place, the product first rounded on its own (the two roundings of ``w - s * g``), while
    the block is in cache; with ``mom``, first ``M_j = beta * M_j + G_j`` in place and ``M_j`` takes the place
    of ``G_j``; with ``stop``, the nets meeting it take a zero step. The targets may be ``Ws`` themselves: the
    block's weights are not read again after its gradients.
    ``fast_value``: the value from the product the gradient needs (see :func:`linnet._step.value_and_grads`),
    not from the loss's factor.
    """
    N = len(Ws)
    b = hi - lo
    dt = Ws[0].dtype
    dims = [Ws[0].shape[-1]] + [W.shape[-2] for W in Ws]  # d_0 .. d_N
    d0, dN = dims[0], dims[-1]
    shapes = []
    if residual:
        shapes += [(b, dims[j], dims[j - 1]) for j in range(1, N + 1)]  # F_j = I + W_j
    shapes += [(b, dims[j], d0) for j in range(2, N)]  # P_2 .. P_{N-1}
    raw = "raw" in lc
    shapes += [(b, d0, dN), (b, d0, dN)]  # W_e^T, E^T (raw statistics: Lxx^T W_e^T)
    if "SxxT" in lc and not raw:
        shapes += [(b, d0, dN)]  # Lxx^T E^T
    shapes += [(b, d0, dims[j]) for j in range(N - 1, 1, -1)]  # M_{N-1} .. M_2, in the order used
    bufs = iter(_workspace((b, tuple(dims), residual, "SxxT" in lc, raw), shapes, dt))

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

    # prefixes P_1 = F_1, P_j = F_j P_{j-1}; the last one (W_e) is written transposed
    P = [None, Fs[0]]
    for j in range(2, N):
        P.append(_np.matmul(Fs[j - 1], P[-1], out=next(bufs)))
    WeT = next(bufs)
    if N == 1:
        _np.copyto(WeT, _np.swapaxes(Fs[0], -1, -2))
    else:
        _np.matmul(Fs[-1], P[-1], out=_np.swapaxes(WeT, -1, -2))

    # the loss: E^T = W_e^T - Phi^T, value and G^T
    sl = slice(lo, hi) if lc["batched"] else slice(None)
    if raw:  # G^T = Lxx^T W_e^T - Lyx^T; value 0.5 (<W_e, W_e Lxx> - 2 <W_e, Lyx>) + 0.5 tr Lyy
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
    vals[lo:hi] = v

    # backward: M_N = G^T, grad_j = (P_{j-1} M_j)^T, M_{j-1} = M_j F_j; M_1^T is grad_1
    M = Gt
    for j in range(N, 1, -1):
        _np.matmul(P[j - 1], M, out=_np.swapaxes(grads[j - 1][lo:hi], -1, -2))
        out = _np.swapaxes(grads[0][lo:hi], -1, -2) if j == 2 else next(bufs)
        M = _np.matmul(M, Fs[j - 1], out=out)
    if N == 1:
        _np.copyto(grads[0][lo:hi], _np.swapaxes(Gt, -1, -2))

    if upd is not None:  # fused update W_j <- W_j - s_j G_j (or M_j <- beta M_j + G_j first) of this block
        steps, targets, mom, stop = upd
        xs = _workspace((b, tuple(dims), "update"), [(b,) + g.shape[1:] for g in grads], dt)
        keep = None
        if stop is not None:  # nets that meet the stopping test at this evaluation take no step (factor 0)
            conv = stop_mask([g[lo:hi] for g in grads], vals[lo:hi], stop, _np)
            if conv is not None and conv.any():
                keep = (~conv).astype(dt)[:, None, None]
        for j in range(N):
            s = steps[j] if isinstance(steps[j], float) else steps[j][lo:hi]
            if keep is not None:  # s * 1 = s and s * 0 = 0 exactly: the array code's (s a) with a = 0 for them
                s = s * keep
            src = grads[j][lo:hi]
            if mom is not None:  # heavy ball: M <- beta M + G (two roundings, as beta * m + g), then W -= s M
                beta, Ms = mom
                mj = Ms[j][lo:hi]
                _np.multiply(mj, beta, out=mj)
                src = _np.add(mj, src, out=mj)
            x = _np.multiply(src, s, out=xs[j])
            t = targets[j][lo:hi]
            _np.subtract(t, x, out=t)


def _flat_update(update, Ws, bs: tuple, B: int, dt):
    """``update = (steps, targets)`` flattened to the batch ``(B,)`` for :func:`_chunk`; ``None`` if unsupported.

    ``steps``: one entry or a tuple of one per layer, each a Python float or a NumPy array broadcastable to
    ``bs + (1, 1)`` (per-net step sizes); ``targets``: C-contiguous writeable arrays shaped and typed like ``Ws``;
    an optional third entry ``(beta, M)`` (or ``None``): a Python float and momentum arrays like ``targets``;
    an optional fourth ``(gtol**2, ftol)`` (each a Python float or ``None``): nets whose gradient norm (by
    :func:`sq_norms`) or value meets it at this evaluation are not updated.
    """
    if not isinstance(update, (tuple, list)) or len(update) not in (2, 3, 4):
        return None
    steps, targets = update[0], update[1]
    mom = update[2] if len(update) >= 3 else None
    stop = update[3] if len(update) == 4 else None
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
    return flat_s, [t.reshape((B,) + t.shape[-2:]) for t in targets], mom, stop


def value_and_grads(loss_fn, Ws, residual: bool, xp, out=None, update=None, fast_value=False):
    """``(L, grads)`` by the NumPy fast path, or ``None`` when it does not apply (the caller falls back).

    It applies on the NumPy namespace to a :class:`~linnet.losses.SquaredLoss` whose batch is absent or equals the
    nets' batch, with all layers sharing one batch shape. Results agree with the generic path to round-off.
    ``out``: optional tuple of C-contiguous arrays shaped and typed like the gradients, written in place and
    returned (saves the page faults of fresh large arrays; the caller owns them).
    ``update = (steps, targets)``: also performs ``targets[j] -= steps[j] * grads[j]`` in place, block by block
    in the thread that computed the block (see :func:`_flat_update` for the accepted forms). When it is given
    and cannot be done here, this returns ``None`` and nothing is updated (the caller falls back).
    ``fast_value``: see :func:`linnet._step.value_and_grads`.
    """
    if not is_numpy_namespace(xp) or type(loss_fn) is not SquaredLoss:
        return None
    if not all(type(W) is _np.ndarray for W in Ws):
        return None
    if residual and any(W.shape[-1] != W.shape[-2] for W in Ws):
        return None  # the generic path raises the error
    bs = tuple(Ws[0].shape[:-2])
    if any(tuple(W.shape[:-2]) != bs for W in Ws):
        return None
    c = _squared_consts(loss_fn)
    if c is None:
        return None
    B = math.prod(bs)
    if B == 0:
        return None
    lc = _flat_loss(c, bs, B)
    if lc is None:
        return None
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
        upd = _flat_update(update, Ws, bs, B, dt)
        if upd is None:
            return None

    d0 = Ws[0].shape[-1]
    work = B * sum(W.shape[-1] * W.shape[-2] * d0 for W in Ws)
    n = min(_threads(), B // MIN_NETS_PER_CHUNK, int(work // MIN_WORK_PER_CHUNK))
    # sub-chunks only for small matrices (large ones are BLAS-bound and gain nothing from it)
    sub = max(1, SUBCHUNK_NETS * 64 // max(W.shape[-1] * W.shape[-2] for W in Ws))

    def run(lo, hi):
        for a in range(lo, hi, sub):
            _chunk(Wf, lc, residual, a, min(hi, a + sub), vals, grads, upd, fast_value)

    if n <= 1:
        run(0, B)
    else:
        bounds = [B * i // n for i in range(n + 1)]
        pool = _get_pool(n - 1)
        futs = [pool.submit(run, bounds[i], bounds[i + 1]) for i in range(1, n)]
        run(bounds[0], bounds[1])
        for f in futs:
            f.result()
    if out is not None:
        return vals.reshape(bs), tuple(out)
    return vals.reshape(bs), tuple(g.reshape(bs + g.shape[-2:]) for g in grads)


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


# ---- curvature: a lean exact HVP and the top eigenvalue ---------------------------------------------------------


class TopEigen(NamedTuple):
    """Top Hessian eigenvalue by an eigensolver on exact HVPs.

    ``value`` (float), ``vector`` (flat, length P, host NumPy float64), ``n_hvp`` (exact HVPs used).
    """

    value: float
    vector: Any
    n_hvp: int


class LeanHVP:
    r"""Exact Hessian-vector products of one net at fixed weights, with everything independent of the direction
    precomputed (partials, :math:`\nabla\ell`, the suffix products).

    ``H @ v`` on flat parameter vectors (layers row-major, :func:`linnet.flatten` order). Same maths as
    :func:`linnet.hvp` (THEOREMS.md §1):
    :math:`(HV)_j = S_j^\top\nabla^2\ell[\dot P_N]P_{j-1}^\top + \dot S_j^\top G P_{j-1}^\top + S_j^\top G\dot P_{j-1}^\top`.
    Works in any namespace (array-API calls only); ``matvec`` takes and returns host NumPy float64 vectors for
    scipy's eigensolvers.
    """

    def __init__(self, loss_fn, Ws, residual: bool = False):
        from . import product as _p
        from .calculus import _prepare

        loss_fn, Ws, xp, parts = _prepare(loss_fn, Ws, residual)
        self.numpy = is_numpy_namespace(xp)
        self.loss, self.Ws, self.xp, self.parts = loss_fn, Ws, xp, parts
        self.G = loss_fn.grad(parts.prefix[-1])
        self.shapes = [tuple(W.shape) for W in Ws]
        self.sizes = [math.prod(s[-2:]) for s in self.shapes]
        self.P = sum(self.sizes)
        self.n_calls = 0
        # on NumPy, call numpy.matmul directly (no wrapper: these are tiny products)
        self.ops = _RawNumpy if self.numpy else xp
        N = len(Ws)
        p = parts
        # direction-independent pieces: S_j^T (left), P_{j-1}^T (right), S_j^T G and G P_{j-1}^T
        self.St = [None if p.suffix[j] is None else p.suffix[j].mT for j in range(N + 1)]
        self.Pt = [None if p.prefix[j] is None else p.prefix[j].mT for j in range(N + 1)]
        self.StG = [_p._mm(self.St[j], self.G, xp) for j in range(N + 1)]
        self.GPt = [_p._mm(self.G, self.Pt[j], xp) for j in range(N + 1)]
        self.Sxx = loss_fn.Sxx if type(loss_fn) is SquaredLoss else None
        self.squared = type(loss_fn) is SquaredLoss

    def hvp(self, Vs) -> tuple:
        """Exact HVP on a tuple of layer directions (arrays of the weights' namespace).

        The recursions of :func:`linnet.product.pushforward_prefixes` and ``pushforward_suffixes`` written out
        with the identities resolved here (same products and sums in the same order): the HVP of a small net is
        mostly call overhead."""
        mm, p = self.ops.matmul, self.parts
        F, Pre, Suf = p.factors, p.prefix, p.suffix
        N = len(Vs)
        self.n_calls += 1
        dP = [None, Vs[0]]  # dP_j = F_j dP_{j-1} + V_j P_{j-1}
        for j in range(2, N + 1):
            dP.append(mm(F[j - 1], dP[-1]) + mm(Vs[j - 1], Pre[j - 1]))
        dS = [None] * (N + 1)  # dS_j = dS_{j+1} F_{j+1} + S_{j+1} V_{j+1}; dS_N = 0
        dS[N - 1] = Vs[N - 1]
        for j in range(N - 2, -1, -1):
            dS[j] = mm(dS[j + 1], F[j]) + mm(Suf[j + 1], Vs[j])
        if self.squared:
            D = dP[N] if self.Sxx is None else mm(dP[N], self.Sxx)
        else:
            D = self.loss.hvp(Pre[N], dP[N])
        out = []
        for j in range(1, N + 1):
            h = D if self.St[j] is None else mm(self.St[j], D)
            if self.Pt[j - 1] is not None:
                h = mm(h, self.Pt[j - 1])
            if dS[j] is not None:
                h = h + mm(dS[j].mT, self.GPt[j - 1])
            if dP[j - 1] is not None:
                h = h + mm(self.StG[j], dP[j - 1].mT)
            out.append(h)
        return tuple(out)

    def matvec(self, v):
        """``H v`` for a flat host vector ``v`` (length P), as float64 NumPy."""
        _progress.tick()  # a no-op unless top_hessian_eigenvalue shows progress
        v = _np.asarray(v, dtype=_np.float64).reshape(-1)
        Vs, k = [], 0
        for s, n in zip(self.shapes, self.sizes):
            blk = v[k : k + n].reshape(s)
            Vs.append(
                blk.astype(self.Ws[0].dtype, copy=False)
                if self.numpy
                else _backend.from_host(blk, self.xp, self.Ws[0].dtype)
            )
            k += n
        Hs = self.hvp(tuple(Vs))
        if self.numpy:
            return _np.concatenate([h.reshape(-1) for h in Hs]).astype(_np.float64, copy=False)
        return _np.concatenate([_np.asarray(_backend.to_numpy(h), dtype=_np.float64).reshape(-1) for h in Hs])


class _RawNumpy:
    """The one call the HVP recursions need, straight to NumPy."""

    matmul = staticmethod(_np.matmul)


def top_eigenvalue(loss_fn, Ws, *, residual: bool = False, tol: float = 1e-10, v0=None, seed: int = 0) -> TopEigen:
    r"""Largest (algebraic) Hessian eigenvalue of one net by scipy's ``eigsh`` (ARPACK Lanczos) on exact HVPs.

    Parameters
    ----------
    loss_fn : Loss
    Ws : tuple of arrays, one net (no batch dimensions)
    residual : bool
    tol : float
        ARPACK's relative accuracy of the Ritz value.
    v0 : host array of length P, optional
        Start vector (default: Gaussian from ``seed``).

    Returns
    -------
    TopEigen(value, vector, n_hvp)

    Examples
    --------
    >>> import numpy as np, linnet as ln
    >>> from linnet._fastpaths import top_eigenvalue
    >>> Ws = ln.init.gaussian((3, 3, 3), scale=0.5, seed=1)
    >>> loss = ln.SquaredLoss.whitened(np.eye(3))
    >>> r = top_eigenvalue(loss, Ws)
    >>> bool(abs(r.value - np.linalg.eigvalsh(ln.hessian(loss, Ws))[-1]) < 1e-9)
    True
    """
    from scipy.sparse.linalg import LinearOperator, eigsh

    op = LeanHVP(loss_fn, Ws, residual)
    if any(len(s) != 2 for s in op.shapes):
        raise ValueError(f"`Ws` must be one net (2-D layers), got layer shapes {op.shapes}")
    n = op.P
    if v0 is None:
        v0 = _backend.host_rng(seed).standard_normal(n)
    if n <= 2:  # ARPACK needs k < n; tiny problems go dense
        H = _np.stack([op.matvec(e) for e in _np.eye(n)], axis=1)
        w, V = _np.linalg.eigh(0.5 * (H + H.T))
        return TopEigen(float(w[-1]), V[:, -1], op.n_calls)
    A = LinearOperator((n, n), matvec=op.matvec, dtype=_np.float64)
    w, V = eigsh(A, k=1, which="LA", tol=tol, v0=v0, ncv=min(n, 12))
    return TopEigen(float(w[0]), V[:, 0], op.n_calls)


# ---- dense Hessian of a squared loss in closed form ------------------------------------------------------------


def _outer4(A, B, xp, order: str):
    r"""Block of a Hessian from two matrices, as ``(..., r, c)`` with rows ``(a, b)`` and columns ``(e, c)``.

    ``order="ac,be"``: ``H[(a,b),(c,e)] = A[a,c] B[b,e]`` (a Kronecker product);
    ``order="ac,be->abec"``: ``H[(a,b),(e,c)] = A[a,c] B[b,e]``.
    """
    da, dc = A.shape[-2:]
    db, de = B.shape[-2:]
    if order == "ac,be":
        blk = xp.reshape(A, A.shape[:-2] + (da, 1, dc, 1)) * xp.reshape(B, B.shape[:-2] + (1, db, 1, de))
        return xp.reshape(blk, blk.shape[:-4] + (da * db, dc * de))
    blk = xp.reshape(A, A.shape[:-2] + (da, 1, 1, dc)) * xp.reshape(B, B.shape[:-2] + (1, db, de, 1))
    return xp.reshape(blk, blk.shape[:-4] + (da * db, de * dc))


def _assemble_numpy(factors: dict, dims: list, batch: tuple, dt):
    """The dense Hessian of :func:`squared_hessian` written block by block into one preallocated array: each
    upper block's products go straight into a 4-D view of its place (``multiply(..., out=)``), each lower block
    is the transposed copy of its upper one. The same products and sums as the generic assembly, so the same
    bits, without its temporaries and concatenations (it was 2-3x slower per net on batches)."""
    N = len(dims) - 1
    sizes = [dims[j] * dims[j - 1] for j in range(1, N + 1)]
    off = [0]
    for n in sizes:
        off.append(off[-1] + n)
    H = _np.empty(batch + (off[-1], off[-1]), dtype=dt)

    def view(j, k):  # rows (a, b) of layer j, columns (c, e) of layer k, as a 4-D view
        blk = H[..., off[j - 1] : off[j], off[k - 1] : off[k]]
        v = blk.reshape(batch + (dims[j], dims[j - 1], dims[k], dims[k - 1]))  # splits axes: always a view
        assert v.base is not None and _np.shares_memory(v, H)
        return v

    for (j, k), (A, B, XY) in factors.items():
        v = view(j, k)
        _np.multiply(A[..., :, None, :, None], B[..., None, :, None, :], out=v)  # A[a,c] B[b,e]
        if XY is not None:  # + X[a,c] Y[b,e] at column (e, c)
            X, Y = XY
            v += X[..., :, None, None, :] * Y[..., None, :, :, None]
        if k > j:
            lower = H[..., off[k - 1] : off[k], off[j - 1] : off[j]]
            _np.copyto(lower, _np.swapaxes(H[..., off[j - 1] : off[j], off[k - 1] : off[k]], -1, -2))
    return H


def squared_hessian(loss_fn: SquaredLoss, Fs, xp, batch: tuple):
    r"""Dense Hessian of :math:`L = \ell(F_N\cdots F_1)` for a squared loss, block by block in closed form.

    With :math:`J_j = S_j\otimes P_{j-1}^\top` (row-major vectorisation, :math:`\mathrm{vec}(AXB) =
    (A\otimes B^\top)\mathrm{vec}X`) and :math:`\nabla^2\ell = I\otimes\Lambda_{xx}`, the Gauss–Newton block is
    :math:`(S_j^\top S_k)\otimes(P_{j-1}\Lambda_{xx}P_{k-1}^\top)`. The part with :math:`G = \nabla\ell(W_e)`
    (THEOREMS.md §1, derivative of :math:`S_j^\top G P_{j-1}^\top` along layer :math:`k`) is, entrywise with
    rows :math:`(a,b)` of layer :math:`j` and columns :math:`(e,c)` of layer :math:`k`,

    .. math::

        k<j:\ (S_j^\top G P_{k-1}^\top)_{ac}\,(F_{j-1}\cdots F_{k+1})_{be}, \qquad
        k>j:\ (F_{k-1}\cdots F_{j+1})_{ca}\,(S_k^\top G P_{j-1}^\top)_{eb},

    and zero for :math:`k=j`; only blocks :math:`k \ge j` are formed (:math:`H_{kj} = H_{jk}^\top`). Costs :math:`O(N^2)` small products plus one pass over the :math:`P\times P`
    output (against :math:`P` HVPs). Array-API calls only.
    """
    N = len(Fs)
    dt = Fs[0].dtype
    dims = [Fs[0].shape[-1]] + [F.shape[-2] for F in Fs]
    eye = [xp.eye(d, dtype=dt) for d in dims]
    P = [eye[0]]
    for j in range(N):
        P.append(xp.matmul(Fs[j], P[-1]))
    S = [None] * (N + 1)
    S[N] = eye[N]
    for j in range(N, 0, -1):
        S[j - 1] = xp.matmul(S[j], Fs[j - 1])
    We = P[N]
    G = loss_fn.grad(We)
    Sxx = loss_fn.Sxx
    PS = [P[k] if Sxx is None else xp.matmul(P[k], Sxx) for k in range(N)]  # P_k Lxx
    StG = [xp.matmul(S[j].mT, G) for j in range(N + 1)]  # S_j^T G

    def between(hi, lo):  # F_hi ... F_lo (identity of width d_{lo-1} if hi < lo)
        out = eye[lo - 1]
        for i in range(lo, hi + 1):
            out = xp.matmul(Fs[i - 1], out)
        return out

    def sym(A):
        return 0.5 * (A + A.mT)

    # upper blocks k >= j; H_kj = H_jk^T. Diagonal blocks are Kronecker products of exactly symmetric factors,
    # so the whole matrix comes out exactly symmetric.
    factors = {}
    for j in range(1, N + 1):
        for k in range(j, N + 1):
            A = xp.matmul(S[j].mT, S[k])
            B = xp.matmul(PS[j - 1], P[k - 1].mT)
            if k == j:
                A, B = sym(A), sym(B)
            XY = None
            if k > j:
                Y = xp.matmul(StG[k], P[j - 1].mT)
                XY = (between(k - 1, j + 1).mT, Y.mT)
            factors[j, k] = (A, B, XY)
    if is_numpy_namespace(xp) and all(type(F) is _np.ndarray for F in Fs):
        return _assemble_numpy(factors, dims, batch, dt)
    blocks = {}
    for (j, k), (A, B, XY) in factors.items():
        blk = _outer4(A, B, xp, "ac,be")
        if XY is not None:
            blk = blk + _outer4(XY[0], XY[1], xp, "ac,be->abec")
        blocks[j, k] = xp.broadcast_to(blk, batch + tuple(blk.shape[-2:]))
    rows = [
        xp.concat([blocks[j, k] if k >= j else blocks[k, j].mT for k in range(1, N + 1)], axis=-1)
        for j in range(1, N + 1)
    ]
    return xp.concat(rows, axis=-2)
