r"""The NumPy kernel of losses with a :class:`~linnet.losses.QuadraticForm`: values and gradients of a batch of
nets, with an optional fused (heavy-ball) update (:mod:`.update`), split over linnet's thread pool.

The closed form is the one of :mod:`linnet.product` (THEOREMS.md §1): with prefixes
:math:`P_j = F_j\cdots F_1` and :math:`G = \nabla\ell(W_e)`, the gradient
:math:`\partial L/\partial W_j = S_j^\top G P_{j-1}^\top` comes from a backward recursion and no suffix product is
formed: a step costs :math:`3(N-1)` matrix products (plus the loss's own), against :math:`4N-5` for prefixes,
suffixes and a two-sided pullback. A block of nets runs in one of two layouts, chosen from the shapes alone (so a
net gets the same bits alone and in any batch): :mod:`.transposed` for small matrices (transposed products into
reused buffers, which suits stacked ``matmul``), :mod:`.natural` for large ones (the products as a loop written by
hand has them, bound once per buffer set by a :class:`Plan`). The kernel reads only the loss's
:meth:`~linnet.losses.Loss.quadratic_form`, never its class.
"""

from __future__ import annotations

import math
import weakref
from contextlib import nullcontext as _nullcontext
from typing import Any, Optional

from .. import _backend
from . import natural as _natural
from . import threads as _threads
from . import transposed as _tr
from . import update as _upd
from .select import select_path
from .update import Update, as_update

__all__ = ["value_and_grads", "prepare", "Plan", "Update"]

_np = _backend.np  # NumPy, as imported by linnet._backend

_loss_consts: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()


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
    C = lambda a: _np.ascontiguousarray(_np.asarray(a))  # noqa: E731  (the natural layout's, .natural)
    c = {"batch": tuple(q.batch_shape)}
    if q.kind == "raw":  # a minibatch of SGD: the uncentred form, as the loss computes it
        c |= {"raw": True, "SxxT": T(q.Sxx), "SyxT": T(q.Syx), "c0": 0.5 * _np.asarray(q.tr_yy)}
        c |= {"Sxx": C(q.Sxx), "Syx": C(q.Syx)}
    else:
        Phi = _np.asarray(q.Phi)
        c |= {"PhiT": T(Phi), "Phi": C(Phi), "c0": _np.asarray(q.c0)}
        if q.kind == "centred":
            Sxx = _np.asarray(q.Sxx)
            c["SxxT"], c["Sxx"] = T(Sxx), C(Sxx)
            c["K"] = C(_np.matmul(Phi, Sxx) - _np.asarray(q.Syx))
            c["KT"] = T(c["K"])
            if q.factor is not None:  # the value as 0.5 w ||F^T E^T||^2: accurate and >= c0 for singular Sxx
                c["FT"], c["F"], c["fw"] = T(q.factor), C(q.factor), q.factor_weight
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


# ---- one block of nets, in the layout its shapes call for (.transposed or .natural) ----------------------


def _chunk(Ws, lc, residual, lo, hi, vals, grads, upd=None, fast_value=False, dims=None):
    """Loss values and gradients of nets ``lo:hi`` written into ``vals[lo:hi]`` and ``grads[j][lo:hi]``, then the
    fused update ``upd`` (flat :class:`Update`, see :func:`.update.flat_update`) of the block while it is in
    cache. The targets may be ``Ws`` themselves: the block's weights are not read again after its gradients.
    ``fast_value``: the value from the product the gradient needs (see :func:`linnet._step.value_and_grads`),
    not from the loss's factor. ``dims``: the widths ``(d_0, ..., d_N)`` if the caller has them."""
    b = hi - lo
    dt = Ws[0].dtype
    if dims is None:
        dims = (Ws[0].shape[-1],) + tuple(W.shape[-2] for W in Ws)  # d_0 .. d_N
    if _natural.use_natural(dims):  # large matrices: the natural layout (a choice made from the shapes alone)
        _natural.evaluate_block(Ws, lc, residual, lo, hi, vals, grads, fast_value, dims)
    else:
        key = (b, dims, residual, "SxxT" in lc, "raw" in lc)
        bufs = iter(_threads.workspace(key, lambda: _tr.block_shapes(dims, b, residual, lc), dt))
        Fs, P, WeT = _tr.forward(Ws, residual, lo, hi, bufs)
        vals[lo:hi], Gt = _tr.loss_block(WeT, lc, lo, hi, bufs, fast_value)
        _tr.backward(Fs, P, Gt, grads, lo, hi, bufs)
    if upd is not None:
        _upd.fused_update(upd, grads, vals, lo, hi, (b, dims), dt)


# ---- the entry point --------------------------------------------------------------------------------------------


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


def _fixed(Ws, out, update) -> bool:
    """Whether ``Ws``, ``out`` and ``update`` are immutable containers (tuples, an :class:`Update` of tuples), so
    that while they live their ids name the same arrays: only then is a bound :class:`_Program` kept for them."""
    if type(Ws) is not tuple or type(out) is not tuple:
        return False
    if update is None:
        return True
    if type(update) is not Update or type(update.targets) is not tuple or isinstance(update.steps, list):
        return False
    mom = update.momentum
    return mom is None or (type(mom) is tuple and type(mom[1]) is tuple)


def _within(L, limit) -> bool:
    """The fast windows' divergence test: ``|L| <= limit`` for every net (``limit`` finite, so NaN and inf fail)."""
    return bool((_np.abs(L) <= limit).all())


class _Program:
    """One step of one block as bound calls (:func:`.natural.block_ops`, :func:`.update.update_ops`), the values
    written into ``vals``; calling it runs the calls and returns ``(L, grads)`` with a fresh ``L``."""

    __slots__ = ("ops", "vals", "bs", "grads")

    def __init__(self, ops, vals, bs, grads):
        self.ops, self.vals, self.bs, self.grads = ops, vals, bs, grads

    def __call__(self):
        for op in self.ops:
            op()
        return self.vals.reshape(self.bs).copy(), self.grads

    def repeat(self, n: int, limit):
        """Run up to ``n`` times, stopping after the first whose values fail ``|L| <= limit``; ``(runs, L,
        grads)`` of the last."""
        ops, vals, i = self.ops, self.vals.reshape(self.bs), 0
        while i < n:
            for op in ops:
                op()
            i += 1
            if not _within(vals, limit):
                break
        return i, vals.copy(), self.grads


class Plan:
    """:func:`value_and_grads` for one loss and one kind of weights (shapes, dtype, ``residual``), with what
    stays the same from one step of a run to the next worked out once: the path, the loss constants flattened to
    the batch, the BLAS cap (rule 3 of :mod:`.threads`), and the flat form of the last ``update`` argument.
    Nets in the natural layout (:mod:`.natural`) that run as one block in the calling thread go further: the
    step is bound to the very arrays of the call (a :class:`_Program`, at most 8 kept), and a later call with
    the same weight, gradient and update objects (a training loop's reused buffers) runs only those calls,
    the per-step Python work of a loop written by hand. Built by :func:`prepare`, used by one thread at a time;
    weights of other shapes or dtype are handed to :func:`value_and_grads`."""

    def __init__(self, loss_fn, Ws, residual: bool):
        self.loss_fn, self.residual = loss_fn, residual
        self.shapes = tuple(tuple(W.shape) for W in Ws)
        self.bs = self.shapes[0][:-2]
        self.B = math.prod(self.bs)
        self.flat = tuple((self.B,) + s[-2:] for s in self.shapes)
        self.dt = Ws[0].dtype
        self.dims = (self.shapes[0][-1],) + tuple(sh[-2] for sh in self.shapes)
        self.lc = _flat_loss(_consts(loss_fn), self.bs, self.B)
        self.blas = 1 if _threads.largest_product(Ws) <= _threads.BLAS_SMALL_MNK else None
        self.natural = _natural.use_natural(self.dims)
        self._last_update = (None, None)  # (update argument, its flat form)
        # (id(Ws), id(out), id(update), fast_value) -> (Ws, out, update, program): the entry keeps the keyed
        # objects alive, so their ids stay theirs while it lives
        self._programs: dict = {}

    def _fits(self, Ws) -> bool:
        return len(Ws) == len(self.shapes) and all(
            type(W) is _np.ndarray and W.shape == s and W.dtype == self.dt for W, s in zip(Ws, self.shapes)
        )

    def _flat_update(self, update, Ws):
        last, flat = self._last_update
        if update is not last:
            flat = _upd.flat_update(as_update(update), Ws, self.bs, self.B, self.dt)
            self._last_update = (update, flat)
        return flat

    def _blas_cap(self):
        """Rule 3's BLAS cap as a context; nothing to set when one at or below it is in force already."""
        return _nullcontext() if _threads.capped(self.blas) else _threads.blas_threads(self.blas)

    def _bound(self, Ws, out, update, fast_value):
        """The :class:`_Program` bound to these very objects, if one was made."""
        hit = self._programs.get((id(Ws), id(out), id(update), bool(fast_value)))
        return None if hit is None else hit[3]

    def __call__(self, Ws, out=None, update=None, fast_value: bool = False):
        """``(L, grads)`` at ``Ws``, or ``None`` when ``update`` cannot be done here (nothing is updated then)."""
        prog = self._bound(Ws, out, update, fast_value)
        if prog is not None:
            with self._blas_cap():
                return prog()
        if not self._fits(Ws):
            return value_and_grads(self.loss_fn, Ws, self.residual, _np, out, update, fast_value)
        B, bs, dt, lc, residual = self.B, self.bs, self.dt, self.lc, self.residual
        Wf = [_np.ascontiguousarray(W).reshape(f) for W, f in zip(Ws, self.flat)]
        vals = _np.empty(B, dtype=dt)
        if out is not None and _upd.out_ok(out, Ws, bs, dt):
            grads = [g.reshape(f) for g, f in zip(out, self.flat)]
        else:
            out = None
            grads = [_np.empty(f, dtype=dt) for f in self.flat]
        upd = None
        if update is not None:
            upd = self._flat_update(update, Ws)
            if upd is None:
                return None
        bounds, sub = _split(B, Wf, lc, residual)
        if len(bounds) == 2 and sub >= B:  # one block in this thread
            with self._blas_cap():
                if self.natural and (upd is None or upd.stop is None) and _fixed(Ws, out, update):
                    return self._program(Ws, Wf, out, grads, update, upd, fast_value)()
                _chunk(Wf, lc, residual, 0, B, vals, grads, upd, fast_value, self.dims)
        else:

            def run(lo, hi):
                for a in range(lo, hi, sub):
                    _chunk(Wf, lc, residual, a, min(hi, a + sub), vals, grads, upd, fast_value, self.dims)

            _threads.run_split(bounds, run, self.blas)
        if out is not None:
            return vals.reshape(bs), tuple(out)
        return vals.reshape(bs), tuple(g.reshape(s) for g, s in zip(grads, self.shapes))

    def run(self, Ws, out, update, n: int, fast_value: bool, limit):
        """``n`` fused steps in a row: ``self(Ws, out, update, fast_value)`` ``n`` times, stopping after the
        first whose value is not within ``limit`` (``|L| <= limit``, a finite threshold per net, so NaN and inf
        fail too). ``(steps done, L, grads)`` of the last, or ``None`` when ``update`` cannot be fused here
        (nothing is updated then). Where a bound program runs, only its calls and the test run per step."""
        r = self(Ws, out, update, fast_value)
        if r is None:
            return None
        prog = self._bound(Ws, out, update, fast_value)
        if prog is not None and n > 1 and _within(r[0], limit):
            with self._blas_cap():
                i, L, grads = prog.repeat(n - 1, limit)
            return i + 1, L, grads
        i = 1
        while i < n and _within(r[0], limit):
            r = self(Ws, out, update, fast_value)
            i += 1
        return i, r[0], r[1]

    def _program(self, Ws, Wf, out, grads, update, upd, fast_value: bool) -> _Program:
        """The step on these arrays as a :class:`_Program`: made once, kept under the ids of ``Ws``, ``out``,
        ``update`` and ``fast_value`` (at most 8; the oldest go first)."""
        key = (id(Ws), id(out), id(update), bool(fast_value))
        hit = self._programs.get(key)
        if hit is not None:
            return hit[3]
        B, dt = self.B, self.dt
        vals = _np.empty(B, dtype=dt)
        bufs = _natural.scratch(self.dims, B, self.residual, dt)
        ops = _natural.block_ops(Wf, self.lc, self.residual, 0, B, vals, grads, fast_value, self.dims, bufs)
        if upd is not None:
            at = 0 if B == 1 else slice(0, B)
            ops += _upd.update_ops(upd, grads, at, _upd.scratch(grads, B, (B, self.dims), dt))
        prog = _Program(ops, vals, self.bs, tuple(out))
        if len(self._programs) >= 8:
            del self._programs[next(iter(self._programs))]
        self._programs[key] = (Ws, out, update, prog)
        return prog


def prepare(loss_fn, Ws, residual: bool, xp) -> Optional[Plan]:
    """A :class:`Plan` of the kernel for ``loss_fn`` at weights shaped like ``Ws``, or ``None`` when
    :func:`~linnet._fastpaths.select_path` does not pick it (the caller runs the generic code)."""
    if select_path(loss_fn, Ws, xp) != "numpy-quadratic":
        return None
    if residual and any(W.shape[-1] != W.shape[-2] for W in Ws):
        return None  # the generic path raises the error
    return Plan(loss_fn, Ws, bool(residual))


def value_and_grads(loss_fn, Ws, residual: bool, xp, out=None, update=None, fast_value=False):
    """``(L, grads)`` by the NumPy kernel, or ``None`` when :func:`~linnet._fastpaths.select_path` does not pick
    it (the caller falls back to the generic code).

    ``out``: optional tuple of C-contiguous arrays shaped and typed like the gradients, written in place and
    returned (the caller owns them). ``update``: an :class:`Update` (or a tuple of its 2-4 entries) performed
    block by block in the thread that computed the block; when it cannot be done here, this returns ``None`` and
    nothing is updated. ``fast_value``: see :func:`linnet._step.value_and_grads`. A loop calling this step after
    step on weights of one kind can build the :class:`Plan` once instead (:func:`prepare`).
    """
    plan = prepare(loss_fn, Ws, residual, xp)
    return None if plan is None else plan(Ws, out, update, fast_value)
