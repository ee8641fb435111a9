"""Testing helpers: the one tolerance table, and a strict ``assert_close`` for any backend.

Tolerances derive from the dtype (SciPy's ``xp_assert_close`` habit): ``rtol = 4 sqrt(eps)``,
``atol = 100 eps``. Looser tolerances in tests are named constants with a reason beside them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._backend import dtype_name, to_numpy

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


def assert_close(
    actual: Any,
    desired: Any,
    *,
    rtol: float | None = None,
    atol: float | None = None,
    check_dtype: bool = True,
    check_shape: bool = True,
    err_msg: str = "",
) -> None:
    """Assert ``actual`` equals ``desired`` within tolerances; dtype and shape checked too.

    ``desired`` may be a NumPy array (a float64 reference); then only ``actual``'s dtype is compared to the
    dtype given by ``actual`` itself and the tolerances come from ``actual``'s dtype.
    """
    if check_shape and tuple(getattr(actual, "shape", ())) != tuple(getattr(desired, "shape", ())):
        raise AssertionError(f"shape mismatch: {tuple(actual.shape)} vs {tuple(desired.shape)} {err_msg}")
    if check_dtype and hasattr(desired, "dtype") and not isinstance(desired, np.ndarray):
        if dtype_name(actual.dtype) != dtype_name(desired.dtype):
            raise AssertionError(f"dtype mismatch: {actual.dtype} vs {desired.dtype} {err_msg}")
    r0, a0 = tolerances(actual.dtype if hasattr(actual, "dtype") else np.float64)
    np.testing.assert_allclose(
        np.asarray(to_numpy(actual), dtype=np.float64),
        np.asarray(to_numpy(desired), dtype=np.float64),
        rtol=r0 if rtol is None else rtol,
        atol=a0 if atol is None else atol,
        err_msg=err_msg,
    )
