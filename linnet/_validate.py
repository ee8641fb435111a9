"""Argument checks at the public edge: every failure is a ``ValueError`` naming the argument."""

from __future__ import annotations

import math
from typing import Any, Sequence

from ._backend import dtype_name, namespace
from ._backend import np as _np

__all__ = [
    "check_weights",
    "check_finite",
    "check_positive",
    "check_widths",
    "check_bool",
    "check_loss",
    "check_matrix",
    "broadcast_batch",
]


def check_weights(Ws: Any, *, name: str = "Ws", finite: bool = True):
    """Validate a sequence of layer matrices and return ``(tuple(Ws), xp)``.

    Each ``W_j`` must have shape ``(..., d_j, d_{j-1})``, consecutive widths must match, all layers share one
    real floating dtype, and (when ``finite``) every entry is finite.
    """
    if not isinstance(Ws, (tuple, list)):
        raise ValueError(f"`{name}` must be a tuple or list of arrays (one per layer), got {type(Ws).__name__}")
    if len(Ws) < 1:
        raise ValueError(f"`{name}` must have at least 1 layer, got 0")
    Ws = tuple(Ws)
    try:
        xp = namespace(*Ws)
    except TypeError as exc:
        raise ValueError(f"`{name}` must hold arrays of one array-API namespace: {exc}") from exc
    dt = Ws[0].dtype
    for j, W in enumerate(Ws, start=1):
        if W.ndim < 2:
            raise ValueError(
                f"`{name}[{j - 1}]` (layer {j}) must have shape (..., d_{j}, d_{j - 1}), got {tuple(W.shape)}"
            )
        if W.dtype != dt:
            raise ValueError(f"`{name}` must share one dtype: layer 1 is {dt}, layer {j} is {W.dtype}")
        if j > 1 and W.shape[-1] != Ws[j - 2].shape[-2]:
            raise ValueError(
                f"`{name}`: mismatched widths: layer {j} expects input width {W.shape[-1]}, "
                f"layer {j - 1} gives {Ws[j - 2].shape[-2]}"
            )
    try:
        dtype_name(dt)
    except ValueError:
        raise ValueError(f"`{name}` must have dtype float32 or float64, got {dt}") from None
    if finite:
        for j, W in enumerate(Ws, start=1):
            check_finite(W, f"{name}[{j - 1}]", xp=xp)
    return Ws, xp


def check_finite(a: Any, name: str, *, xp=None) -> None:
    """Raise if ``a`` has a non-finite entry."""
    xp = xp or namespace(a)
    if not bool(xp.all(xp.isfinite(a))):
        raise ValueError(f"`{name}` must be finite, got an array with NaN or inf entries")


def check_positive(value: Any, name: str, *, allow_zero: bool = False) -> float:
    """Return ``float(value)`` after checking it is a finite real > 0 (or >= 0)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a real number, got {value!r}") from None
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"`{name}` must be finite and {bound}, got {value!r}")
    return v


def check_widths(widths: Any, *, name: str = "widths", min_len: int = 2) -> tuple[int, ...]:
    """Validate widths ``(d_0, d_1, ..., d_N)``: positive ints, at least ``min_len`` of them."""
    if isinstance(widths, int) or not isinstance(widths, Sequence):
        raise ValueError(f"`{name}` must be a sequence of positive ints (d_0, ..., d_N), got {widths!r}")
    widths = tuple(widths)
    if len(widths) < min_len:
        raise ValueError(f"`{name}` must have length >= {min_len}, got {widths!r}")
    for w in widths:
        if isinstance(w, bool) or not isinstance(w, int) or w < 1:
            # accept numpy integers too
            if hasattr(w, "__index__") and not isinstance(w, bool) and int(w) >= 1:
                continue
            raise ValueError(f"`{name}` must hold positive ints, got {widths!r}")
    return tuple(int(w) for w in widths)


def check_bool(value: Any, name: str) -> bool:
    """``value`` as a Python bool: ``True``/``False`` or a NumPy bool (``np.bool_``); anything else (``0``, the
    string ``"False"``) is a ``ValueError`` naming ``name``."""
    if isinstance(value, bool):
        return value
    if isinstance(value, _np.bool_):
        return bool(value)
    raise ValueError(f"`{name}` must be a bool (True or False), got {value!r} of type {type(value).__name__}")


#: What a loss must provide (the protocol of :class:`linnet.losses.Loss`), checked without importing it.
_LOSS_PROTOCOL = ("value", "grad", "hvp", "check", "astype", "quadratic_form")


def check_loss(loss: Any):
    """Return ``loss`` after checking it is a linnet loss: it has ``shape`` and the methods of the loss protocol
    (:class:`linnet.losses.Loss` and its subclasses do)."""
    if isinstance(loss, type) or not all(callable(getattr(loss, m, None)) for m in _LOSS_PROTOCOL) or not hasattr(
        loss, "shape"
    ):
        raise ValueError(f"`loss` must be a linnet loss (e.g. SquaredLoss), got {type(loss).__name__}")
    return loss


def broadcast_batch(*shapes: tuple, what: str = "batch shapes") -> tuple:
    """The broadcast of batch shapes (matmul rules), or ``ValueError`` saying ``what`` does not broadcast."""
    nd = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(nd):
        dims = {s[len(s) - nd + i] for s in shapes if len(s) - nd + i >= 0} - {1}
        if len(dims) > 1:
            raise ValueError(f"{what} must broadcast, got batch shapes {', '.join(str(tuple(s)) for s in shapes)}")
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def check_matrix(a: Any, name: str, *, xp=None):
    """Validate a real floating, finite array of shape ``(..., rows, cols)`` and return ``(a, xp)``.

    Host inputs such as lists become float64 NumPy arrays; arrays keep their namespace.
    """
    if a is None:
        raise ValueError(f"`{name}` must be an array, got None")
    if not hasattr(a, "shape") or not hasattr(a, "dtype"):
        import numpy as np

        a = np.asarray(a, dtype=np.float64)
    xp = xp or namespace(a)
    if a.ndim < 2:
        raise ValueError(f"`{name}` must have at least 2 dimensions (..., rows, cols), got shape {tuple(a.shape)}")
    if not xp.isdtype(a.dtype, "real floating"):
        raise ValueError(f"`{name}` must have a real floating dtype (float32 or float64), got {a.dtype}")
    check_finite(a, name, xp=xp)
    return a, xp
