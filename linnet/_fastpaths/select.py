"""The one place that decides which code runs: the NumPy kernels or the generic array-API code.

Like lineax's ``AutoLinearSolver`` / ``select_solver``, the choice is made from what the loss can do (its
:meth:`~linnet.losses.Loss.quadratic_form` capability), the namespace and the arrays, never from the loss's type,
and :func:`select_path` says which path a call takes. ``LINNET_FASTPATHS=0`` in the environment (read at import)
or :func:`fastpaths` (a context manager) turns every fast path off, so the array-API code runs on NumPy too.
"""

from __future__ import annotations

import contextlib
import os
import threading

from .. import _backend
from .._backend import is_numpy_namespace

__all__ = ["enabled", "fastpaths", "select_path", "PATHS"]

_np = _backend.np

#: The execution paths :func:`select_path` can name.
PATHS = ("numpy-quadratic", "numpy", "generic")


def _env_default() -> bool:
    raw = os.environ.get("LINNET_FASTPATHS", "1").strip().lower()
    if raw in ("0", "false", "off", "no"):
        return False
    if raw in ("", "1", "true", "on", "yes"):
        return True
    raise ValueError(f"environment variable LINNET_FASTPATHS must be 0 or 1, got {raw!r}")


_state = {"on": _env_default()}
_lock = threading.Lock()


def enabled() -> bool:
    """Whether the NumPy fast paths may run (``LINNET_FASTPATHS``, overridden inside :func:`fastpaths`)."""
    return _state["on"]


@contextlib.contextmanager
def fastpaths(on: bool = True):
    """Within the block, fast paths are on (``True``) or off (``False``: the array-API code runs on NumPy too).

    Process-wide (the engine's own threads see it too); restores the previous setting on exit.
    """
    if not isinstance(on, bool):
        raise ValueError(f"`on` must be a bool, got {on!r}")
    with _lock:
        before = _state["on"]
        _state["on"] = on
    try:
        yield
    finally:
        with _lock:
            _state["on"] = before


def _numpy_arrays(Ws, xp) -> bool:
    return is_numpy_namespace(xp) and all(type(W) is _np.ndarray for W in Ws)


def select_path(loss_fn, Ws, xp=None) -> str:
    """The path a training step of ``loss_fn`` at weights ``Ws`` takes: one of :data:`PATHS`.

    ``"numpy-quadratic"``: the fused NumPy kernel of :mod:`linnet._fastpaths.quadratic` (fast paths on, NumPy
    arrays, a loss whose ``quadratic_form()`` is not ``None`` with a batch absent or equal to the nets', one
    batch shape for all layers); ``"numpy"``: the generic recursion with NumPy's in-place buffers of the driver;
    ``"generic"``: array-API code only (fast paths off, or another namespace).
    """
    if xp is None:
        xp = _backend.namespace(*Ws)
    if not enabled() or not _numpy_arrays(Ws, xp):
        return "generic"
    form = loss_fn.quadratic_form() if hasattr(loss_fn, "quadratic_form") else None
    if form is None:
        return "numpy"
    bs = tuple(Ws[0].shape[:-2])
    if any(tuple(W.shape[:-2]) != bs for W in Ws) or 0 in bs:
        return "numpy"
    lb = tuple(form.batch_shape)
    if lb not in ((), bs):
        return "numpy"
    return "numpy-quadratic"
