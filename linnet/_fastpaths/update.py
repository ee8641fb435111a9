"""The fused gradient step of the NumPy kernels (:func:`linnet._step.value_and_grads` with ``update=``): its
argument, :class:`Update`, flattened to the kernel's batch, and performed on a block of nets while the block's
gradients are in cache, with the two roundings of the array code's ``w - s * g``."""

from __future__ import annotations

from functools import partial as _partial
from typing import Any, NamedTuple, Optional

from .. import _backend
from . import threads as _threads
from .stopping import stop_mask

__all__ = ["Update", "as_update", "update_ops", "fused_update", "flat_update", "out_ok"]

_np = _backend.np


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


def update_ops(upd: Update, grads, at, xs, keep=None) -> list:
    """The fused step of the nets ``at`` (an index or a slice of the flat batch) as a list of calls with every
    operand bound: ``targets[j] -= steps[j] * grads[j]``, the product first rounded on its own into ``xs[j]``
    (the two roundings of ``w - s * g``); with momentum ``M_j = beta * M_j + G_j`` in place first (two
    roundings, as ``beta * m + g``) and ``M_j`` takes the place of ``G_j``; ``keep``: per net 1 or 0 (nets that
    take no step: ``s * 1 = s`` and ``s * 0 = 0`` exactly, the array code's ``(s a)``)."""
    ops = []
    for j in range(len(grads)):
        s = upd.steps[j] if isinstance(upd.steps[j], float) else upd.steps[j][at]
        if keep is not None:
            s = s * keep
        src = grads[j][at]
        if upd.momentum is not None:
            beta, Ms = upd.momentum
            mj = Ms[j][at]
            ops += [_partial(_np.multiply, mj, beta, out=mj), _partial(_np.add, mj, src, out=mj)]
            src = mj
        t = upd.targets[j][at]
        ops += [_partial(_np.multiply, src, s, out=xs[j]), _partial(_np.subtract, t, xs[j], out=t)]
    return ops


def scratch(grads, b: int, key: tuple, dt) -> list:
    """This thread's buffers for the rounded products ``s * G_j`` of a block of ``b`` nets (2-D for one net)."""
    return _threads.workspace(
        key + ("update",), lambda: [g.shape[1:] if b == 1 else (b,) + g.shape[1:] for g in grads], dt
    )


def fused_update(upd: Update, grads, vals, lo: int, hi: int, key: tuple, dt) -> None:
    """Run :func:`update_ops` of nets ``lo:hi`` once (one net: on its 2-D views), in this thread's scratch; nets
    meeting ``upd.stop`` at these gradients and values take a zero step."""
    b = hi - lo
    at = lo if b == 1 else slice(lo, hi)
    xs = scratch(grads, b, key, dt)
    keep = None
    if upd.stop is not None:  # nets that meet the stopping test at this evaluation take no step (factor 0)
        conv = stop_mask([g[lo:hi] for g in grads], vals[lo:hi], upd.stop, _np)
        if conv is not None and conv.any():
            keep = (~conv).astype(dt)[:, None, None]
            at = slice(lo, hi)
            xs = [x.reshape((b,) + x.shape[-2:]) for x in xs]
    for op in update_ops(upd, grads, at, xs, keep):
        op()


def out_ok(out, Ws, bs, dt) -> bool:
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


def flat_update(update: Update, Ws, bs: tuple, B: int, dt) -> Optional[Update]:
    """``update`` flattened to the batch ``(B,)`` for :func:`linnet._fastpaths.quadratic._chunk`; ``None`` if the kernel cannot do it here
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
    if not out_ok(targets, Ws, bs, dt):
        return None
    if mom is not None:
        if not isinstance(mom, (tuple, list)) or len(mom) != 2 or not isinstance(mom[0], float):
            return None
        if not out_ok(mom[1], Ws, bs, dt):
            return None
        mom = (mom[0], [m.reshape((B,) + m.shape[-2:]) for m in mom[1]])
    flat_s = _flat_steps(steps, bs, B)
    if flat_s is None:
        return None
    return Update(flat_s, [t.reshape((B,) + t.shape[-2:]) for t in targets], mom, stop)
