r"""Reused NumPy buffers of a descent run (:mod:`linnet.train.driver`): two sets of weights, gradients and
momenta, and the in-place update :math:`M_c = \beta M + V`, :math:`W_n = W - (s_j a) M_c` split over linnet's
thread pool. Used only on NumPy arrays with fast paths on (``LINNET_FASTPATHS``)."""

from __future__ import annotations

import math
import threading
from typing import Optional

from .. import _backend, _fastpaths
from .._fastpaths import threads as _threads
from .._fastpaths.update import Update

_np = _backend.np

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
        self._fused = {}  # buffer set -> (step factors, the fused Update on it): see fused_step
        self.cur = 0
        self._local = threading.local()
        self._bounds = None

    @property
    def bounds(self) -> list:
        """The thread chunks of the update: :func:`linnet._fastpaths.threads.pool_size` of this kind of update
        (timed once per process on scratch outputs of up to 2048 nets; an explicit thread setting overrides)."""
        if self._bounds is None:
            n_max = max(1, min(_threads.num_threads(), self.nb // _UPDATE_MIN_NETS_PER_THREAD))
            nc = min(self.nb, 2 * _UPDATE_MIN_NETS_PER_THREAD)
            W = [w.reshape(f)[:nc] for w, f in zip(self.W[0], self.flat)]
            out = [_np.empty_like(w) for w in W]
            ones = (1.0,) * len(W)

            def trial(n):  # W - 1.0 * W into scratch: the update's memory traffic, no result touched
                _threads.run_split(
                    [nc * i // n for i in range(n + 1)],
                    lambda lo, hi: self._update_range(lo, hi, W, W, None, out, None, ones, 0.0),
                )

            key = ("update", tuple(f[1:] for f in self.flat), self.dt.str, self.nb.bit_length())
            n = _threads.pool_size(key, n_max, 0, trial if n_max > 1 else None)
            self._bounds = [self.nb * i // n for i in range(n + 1)]
        return self._bounds

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

    def fused_step(self, i: int, steps_lr, active, dt, beta, stop) -> Update:
        """The fused step on buffer set ``i`` for :func:`linnet._step.value_and_grads`'s ``update=``: targets
        ``W[i]``, factors :meth:`batch_scale`, heavy ball on ``M(i)`` if ``beta``, ``stop``. Without a stopping
        test one object serves every window while the step factors stay the same (:meth:`scale` returns the same
        tuple then), so a kernel can keep what it bound to it (:class:`linnet._fastpaths.quadratic.Plan`)."""
        sa = self.scale(steps_lr, active, dt)
        hit = self._fused.get(i)
        if stop is None and hit is not None and hit[0] is sa:
            return hit[1]
        mom = (float(beta), self.M(i)) if beta else None
        upd = Update(self.batch_scale(steps_lr, active, dt), self.W[i], mom, stop)
        if stop is None:
            self._fused[i] = (sa, upd)
        return upd

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
