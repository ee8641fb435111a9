"""Testing helpers: the one tolerance table, and a strict ``assert_close`` for any backend.

Tolerances derive from the dtype (SciPy's ``xp_assert_close`` habit): ``rtol = 4 sqrt(eps)``,
``atol = 100 eps``. Looser tolerances in tests are named constants with a reason beside them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._backend import dtype_name, namespace, to_numpy

__all__ = ["tolerances", "assert_close", "rel_error"]


def tolerances(dtype: Any) -> tuple[float, float]:
    """``(rtol, atol)`` for ``dtype``: ``(4 sqrt(eps), 100 eps)``."""
    eps = float(np.finfo(dtype_name(dtype)).eps)
    return 4 * math.sqrt(eps), 100 * eps


def rel_error(actual: Any, desired: Any) -> float:
    """Relative Frobenius error ``||a - d|| / max(||d||, tiny)`` on the host, in float64."""
    a = np.asarray(to_numpy(actual), dtype=np.float64)
    d = np.asarray(to_numpy(desired), dtype=np.float64)
    den = max(float(np.linalg.norm(d)), np.finfo(np.float64).tiny)
    return float(np.linalg.norm(a - d)) / den


def _namespace_name(a: Any) -> str:
    if isinstance(a, (int, float, np.generic)):
        return "numpy"
    name = namespace(a).__name__
    return "numpy" if name in ("numpy", "array_api_compat.numpy") else name


def assert_close(
    actual: Any,
    desired: Any,
    *,
    rtol: float | None = None,
    atol: float | None = None,
    check_dtype: bool = True,
    check_shape: bool = True,
    check_namespace: bool = True,
    err_msg: str = "",
) -> None:
    """Assert ``actual`` equals ``desired`` within tolerances; shape, dtype and namespace checked too.

    Tolerances default to those of ``actual``'s dtype (:func:`tolerances`). ``check_dtype``: both have the same
    dtype (a float64 NumPy reference for a float32 result needs ``check_dtype=False``); ``check_namespace``: both
    live in the same array namespace (NumPy through array-api-compat counts as NumPy); Python scalars count as
    NumPy float64.
    """
    if check_shape and tuple(getattr(actual, "shape", ())) != tuple(getattr(desired, "shape", ())):
        raise AssertionError(f"shape mismatch: {tuple(actual.shape)} vs {tuple(desired.shape)} {err_msg}")
    if check_dtype:
        da = dtype_name(getattr(actual, "dtype", np.float64))
        dd = dtype_name(getattr(desired, "dtype", np.float64))
        if da != dd:
            raise AssertionError(f"dtype mismatch: {da} vs {dd} {err_msg}")
    if check_namespace and _namespace_name(actual) != _namespace_name(desired):
        raise AssertionError(f"namespace mismatch: {_namespace_name(actual)} vs {_namespace_name(desired)} {err_msg}")
    r0, a0 = tolerances(actual.dtype if hasattr(actual, "dtype") else np.float64)
    np.testing.assert_allclose(
        np.asarray(to_numpy(actual), dtype=np.float64),
        np.asarray(to_numpy(desired), dtype=np.float64),
        rtol=r0 if rtol is None else rtol,
        atol=a0 if atol is None else atol,
        err_msg=err_msg,
    )
