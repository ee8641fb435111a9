"""The one stopping test on gradient norms and loss values, shared bit for bit by :mod:`linnet.train` (which
settles nets by it) and the fused updates of the NumPy kernel and of the generic path (which skip those nets)."""

from __future__ import annotations

import math

from .. import _backend
from .._backend import is_numpy_namespace

__all__ = ["sq_norm", "sq_norms", "stop_mask"]

_np = _backend.np  # NumPy, as imported by linnet._backend


def _rowdot(r):
    """Per row of a 2-D array, the sum of squares: each row on its own, so the result for a net does not depend
    on how many nets are in the call (``numpy.einsum`` over a 3-D block does, in the last bit, for large layers)."""
    if hasattr(_np, "vecdot"):  # NumPy >= 2.0: one pass, no temporary
        return _np.vecdot(r, r)
    return _np.sum(r * r, axis=-1)  # pragma: no cover - NumPy 1.26


def sq_norms(Vs, n: int):
    """Per net, the sum over layers of squared Frobenius norms of ``Vs`` (NumPy arrays of ``n`` nets, any batch
    shape flattened to ``n``), layer by layer in order."""
    g2 = None
    for v in Vs:
        t = _rowdot(_np.reshape(v, (n, -1)))
        g2 = t if g2 is None else g2 + t
    return g2


def sq_norm(Vs, xp):
    """Per net (the batch shape of ``Vs``), the squared norm of a tuple of layer arrays: :func:`sq_norms` on
    NumPy arrays, ``sum(v * v)`` over the last two axes elsewhere."""
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
    gradient ``Vs`` (norm by :func:`sq_norm`) and the loss ``value``; ``None`` when ``stop`` tests nothing."""
    gtol2, ftol = stop
    conv = None
    if gtol2 is not None:
        conv = sq_norm(Vs, xp) <= gtol2
    if ftol is not None:
        f = value <= ftol
        conv = f if conv is None else conv | f
    return conv
