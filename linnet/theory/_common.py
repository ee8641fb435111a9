"""Private helpers shared by the ``linnet.theory`` modules: argument checks and small array utilities.

Every check raises ``ValueError`` naming the argument, the expected and the actual value.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._backend import (
    Array,  # noqa: F401 - Array: the shared alias, re-exported
    get_namespace,
    namespace,
)
from .._validate import broadcast_batch, check_finite, check_int, check_positive, check_real


def _is_array(a) -> bool:
    """An array of some namespace (NumPy scalars such as ``np.float64(1.0)`` count as Python numbers)."""
    return hasattr(a, "shape") and hasattr(a, "dtype") and not isinstance(a, np.generic)


def _fro(A, xp):
    """Frobenius norm over the last two axes, shape ``(...)``."""
    return xp.sqrt(xp.sum(A * A, axis=(-2, -1)))


def _int(value: Any, name: str, lo: int = 1) -> int:
    """An integer ``>= lo`` (bools refused; NumPy integers accepted), returned as ``int``."""
    return check_int(value, name, minimum=lo)


def _depth(depth: Any) -> int:
    """The number of layers, an int ``>= 1``."""
    return _int(depth, "depth")


def _scalars(*args, names):
    """Common namespace and dtype for scalar-or-array arguments; returns ``(xp, arrays...)``.

    Python numbers become 0-d arrays of the arrays' namespace (NumPy when none is an array) and dtype; lists and
    tuples of numbers become arrays. Complex, bool and float16 arrays are refused (never cast to their real part).
    """
    args = [
        a if _is_array(a) or isinstance(a, (int, float, np.generic)) else _as_real_array(a, n)
        for a, n in zip(args, names)
    ]
    arrays = [a for a in args if _is_array(a)]
    try:
        xp = namespace(*arrays) if arrays else get_namespace(None)
    except TypeError:
        named = ", ".join(f"`{n}`" for a, n in zip(args, names) if _is_array(a))
        raise ValueError(f"{named} must be arrays of one array namespace (or Python numbers)") from None
    dt = xp.float64
    for a in arrays:
        if xp.isdtype(a.dtype, "real floating"):
            dt = a.dtype
            break
    out = []
    for a, name in zip(args, names):
        if _is_array(a) and (not xp.isdtype(a.dtype, ("real floating", "integral")) or "float16" in str(a.dtype)):
            raise ValueError(
                f"`{name}` must be a real number or a real (float32/float64/int) array, got dtype {a.dtype}"
            )
        if _is_array(a):
            a = xp.astype(a, dt) if a.dtype != dt else a
        else:
            try:
                a = xp.asarray(float(a), dtype=dt)
            except (TypeError, ValueError):
                raise ValueError(f"`{name}` must be a real number or a real array, got {a!r}") from None
        check_finite(a, name, xp=xp)
        out.append(a)
    broadcast_batch(
        *(tuple(a.shape) for a in out), what=f"the shapes of {', '.join(f'`{n}`' for n in names[: len(out)])}"
    )
    return (xp, *out)


def _as_real_array(a, name: str):
    """A list or tuple of real numbers as a float64 NumPy array (``ValueError`` naming ``name`` otherwise)."""
    if isinstance(a, (list, tuple)):
        return check_real(a, name)
    return a


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
