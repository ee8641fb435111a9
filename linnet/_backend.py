"""Array backends: the only module of linnet that names NumPy or CuPy.

Engine code takes its namespace from its inputs (:func:`namespace`) and uses array-API calls only.
Randomness is drawn on the host with NumPy and moved to the target namespace, so one seed gives the same
numbers on every backend (:func:`host_rng`, :func:`from_host`).
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
from array_api_compat import array_namespace

#: The one type alias for arrays of any supported namespace (NumPy, CuPy, array-api-strict) used across linnet.
Array = Any

__all__ = [
    "namespace",
    "get_namespace",
    "resolve_dtype",
    "dtype_name",
    "from_host",
    "to_numpy",
    "host_rng",
    "is_numpy_namespace",
    "available_backends",
]

_BACKEND_MODULES = {
    "numpy": "array_api_compat.numpy",
    "array_api_strict": "array_api_strict",
    "cupy": "array_api_compat.cupy",
}


def namespace(*arrays: Any):
    """Return the array-API namespace shared by ``arrays`` (``None`` entries are skipped)."""
    arrays = [a for a in arrays if a is not None and not isinstance(a, (int, float, bool))]
    return array_namespace(*arrays)


def get_namespace(xp: Any = None):
    """Return a namespace from ``xp``: ``None`` (NumPy), a backend name, or a module.

    Backend names are ``"numpy"``, ``"array_api_strict"`` and ``"cupy"``.
    """
    if xp is None:
        xp = "numpy"
    if isinstance(xp, str):
        if xp not in _BACKEND_MODULES:
            raise ValueError(f"`xp` must be one of {sorted(_BACKEND_MODULES)} or a namespace, got {xp!r}")
        try:
            mod = importlib.import_module(_BACKEND_MODULES[xp])
        except ImportError as exc:  # pragma: no cover - depends on the machine
            extra = {"array_api_strict": "test", "cupy": "gpu"}.get(xp)
            hint = f' (install the `{extra}` extra: pip install -e ".[{extra}]")' if extra else ""
            raise ValueError(f"backend {xp!r} is not importable here{hint}: {exc}") from exc
        return mod
    if xp is np:
        return importlib.import_module("array_api_compat.numpy")
    name = getattr(xp, "__name__", "")
    if name == "cupy":  # pragma: no cover - GPU only
        return importlib.import_module("array_api_compat.cupy")
    if not all(hasattr(xp, attr) for attr in ("asarray", "matmul", "float64")):
        raise ValueError(
            f"`xp` must be a backend name {sorted(_BACKEND_MODULES)} or an array-API namespace, got {xp!r}"
        )
    return xp


def is_numpy_namespace(xp: Any) -> bool:
    """Whether ``xp`` is NumPy (plain or through array-api-compat)."""
    return getattr(xp, "__name__", "") in ("numpy", "array_api_compat.numpy")


def available_backends() -> list[str]:
    """Backend names importable here (``cupy`` only when it sees a device)."""
    out = ["numpy"]
    try:
        importlib.import_module("array_api_strict")
        out.append("array_api_strict")
    except ImportError:  # pragma: no cover
        pass
    try:  # pragma: no cover - GPU only
        import cupy

        if cupy.cuda.runtime.getDeviceCount() > 0:
            out.append("cupy")
    except Exception:  # noqa: BLE001 - any failure means "no usable GPU"
        pass
    return out


def resolve_dtype(dtype: Any, xp: Any):
    """Return the floating dtype object of ``xp`` named by ``dtype`` (default float64)."""
    if dtype is None:
        return xp.float64
    if isinstance(dtype, str):
        if dtype not in ("float32", "float64"):
            raise ValueError(f"`dtype` must be 'float32' or 'float64', got {dtype!r}")
        return getattr(xp, dtype)
    for name in ("float32", "float64"):
        if dtype == getattr(xp, name):
            return getattr(xp, name)
    if np.dtype(dtype) in (np.float32, np.float64) if _np_dtype_ok(dtype) else False:
        return getattr(xp, np.dtype(dtype).name)
    raise ValueError(f"`dtype` must be float32 or float64, got {dtype!r}")


def _np_dtype_ok(dtype: Any) -> bool:
    try:
        np.dtype(dtype)
    except TypeError:
        return False
    return True


def dtype_name(dtype: Any) -> str:
    """``'float32'`` or ``'float64'`` for a floating dtype of any backend."""
    s = str(dtype)
    for name in ("float32", "float64"):
        if name in s:
            return name
    raise ValueError(f"expected a float32 or float64 dtype, got {dtype!r}")


def from_host(a: Any, xp: Any, dtype: Any = None):
    """Move a NumPy array (or scalar) to namespace ``xp`` with ``dtype`` (default: float64)."""
    dt = resolve_dtype(dtype, xp)
    a = np.asarray(a, dtype=np.dtype(dtype_name(dt)))
    return xp.asarray(a, dtype=dt)


def to_numpy(a: Any) -> np.ndarray:
    """Copy an array of any supported backend to a NumPy array on the host."""
    if isinstance(a, np.ndarray):
        return a
    if hasattr(a, "get") and type(a).__module__.startswith("cupy"):  # pragma: no cover - GPU only
        return a.get()
    try:
        return np.from_dlpack(a)
    except (TypeError, RuntimeError, BufferError, AttributeError):
        return np.asarray(a)


def host_rng(seed: Any) -> np.random.Generator:
    """A NumPy ``Generator`` from an int seed or a ``Generator`` (returned as is)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or isinstance(seed, (int, np.integer)):
        if seed is not None and seed < 0:
            raise ValueError(f"`seed` must be a non-negative int or a numpy Generator, got {seed!r}")
        return np.random.default_rng(seed)
    raise ValueError(f"`seed` must be an int or a numpy.random.Generator, got {type(seed).__name__}")
