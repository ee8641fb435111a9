"""Private helpers shared by the ``linnet.theory`` modules: argument checks and small array utilities.

Every check raises ``ValueError`` naming the argument, the expected and the actual value.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._backend import Array, get_namespace, namespace  # noqa: F401 - Array: the shared alias, re-exported
from .._validate import check_finite, check_positive


def _is_array(a) -> bool:
    """An array of some namespace (NumPy scalars such as ``np.float64(1.0)`` count as Python numbers)."""
    return hasattr(a, "shape") and hasattr(a, "dtype") and not isinstance(a, np.generic)


def _fro(A, xp):
    """Frobenius norm over the last two axes, shape ``(...)``."""
    return xp.sqrt(xp.sum(A * A, axis=(-2, -1)))


def _int(value: Any, name: str, lo: int = 1) -> int:
    """An integer ``>= lo`` (bools refused; NumPy integers accepted), returned as ``int``."""
    if isinstance(value, bool) or not hasattr(value, "__index__") or int(value) < lo:
        raise ValueError(f"`{name}` must be an int >= {lo}, got {value!r}")
    return int(value)


def _depth(depth: Any) -> int:
    """The number of layers, an int ``>= 1``."""
    return _int(depth, "depth")


def _scalars(*args, names):
    """Common namespace and dtype for scalar-or-array arguments; returns ``(xp, arrays...)``.

    Python numbers become 0-d arrays of the arrays' namespace (NumPy when none is an array) and dtype.
    """
    arrays = [a for a in args if _is_array(a)]
    xp = namespace(*arrays) if arrays else get_namespace(None)
    dt = xp.float64
    for a in arrays:
        if xp.isdtype(a.dtype, "real floating"):
            dt = a.dtype
            break
    out = []
    for a, name in zip(args, names):
        if _is_array(a):
            a = xp.astype(a, dt) if a.dtype != dt else a
        else:
            try:
                a = xp.asarray(float(a), dtype=dt)
            except (TypeError, ValueError):
                raise ValueError(f"`{name}` must be a real number or a real array, got {a!r}") from None
        check_finite(a, name, xp=xp)
        out.append(a)
    return (xp, *out)


def _check_all(cond, name: str, expected: str, value) -> None:
    """Raise unless every entry of the boolean array ``cond`` holds."""
    if not bool(namespace(cond).all(cond)):
        raise ValueError(f"`{name}` must be {expected}, got {value!r}")


def _all_positive(**arrays) -> None:
    """Raise unless every entry of each named array is ``> 0`` (checked in the order given)."""
    for name, a in arrays.items():
        _check_all(a > 0, name, "> 0", a)


def _positive(value: Any, name: str):
    """A step size or margin: an array with all entries ``> 0`` (returned as is) or a finite real ``> 0`` (float)."""
    if _is_array(value):
        _check_all(value > 0, name, "> 0", value)
        return value
    return check_positive(value, name)
