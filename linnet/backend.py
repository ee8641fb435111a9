"""The public helpers around arrays, backends and execution that scripts, figures and checks need.

Arrays move between backends through the host: :func:`to_numpy` copies any supported array to NumPy,
:func:`from_host` moves NumPy data to a namespace with a dtype, and :func:`host_rng` gives the NumPy generator
that every seeded draw of linnet uses (so a seed gives the same numbers on every backend). :func:`fastpaths`
switches linnet's NumPy kernels off (the array-API code then runs on NumPy too; ``LINNET_FASTPATHS=0`` in the
environment does the same for a whole process), and :func:`select_path` says which path a training step takes.

Examples
--------
>>> import numpy as np, linnet as ln
>>> Ws = ln.init.gaussian((3, 4, 2), scale=0.5, seed=0)
>>> ln.backend.widths(Ws)
(3, 4, 2)
>>> loss = ln.SquaredLoss.whitened(np.ones((2, 3)))
>>> ln.backend.select_path(loss, Ws)
'numpy-quadratic'
>>> with ln.backend.fastpaths(False):
...     ln.backend.select_path(loss, Ws)
'generic'
"""

from __future__ import annotations

from typing import Any, Sequence

from ._backend import (
    Array,
    available_backends,
    dtype_name,
    from_host,
    get_namespace,
    host_rng,
    is_numpy_namespace,
    namespace,
    to_numpy,
)
from ._fastpaths.select import PATHS, enabled, fastpaths
from ._fastpaths.select import select_path as _select_path
from ._fastpaths.threads import num_threads, set_num_threads, usable_cores
from ._fastpaths.threads import plans as thread_plans

__all__ = [
    "Array",
    "available_backends",
    "dtype_name",
    "from_host",
    "get_namespace",
    "host_rng",
    "is_numpy_namespace",
    "namespace",
    "to_numpy",
    "widths",
    "fastpaths",
    "fastpaths_enabled",
    "select_path",
    "PATHS",
    "set_num_threads",
    "num_threads",
    "usable_cores",
    "thread_plans",
]

fastpaths_enabled = enabled


def widths(Ws: Sequence[Array]) -> tuple:
    """The widths ``(d_0, d_1, ..., d_N)`` of a net (or batch of nets) given as layers ``(..., d_j, d_{j-1})``.

    Raises ``ValueError`` when ``Ws`` is not a non-empty sequence of matrices with matching widths.
    """
    if not isinstance(Ws, (tuple, list)) or len(Ws) == 0:
        raise ValueError(f"`Ws` must be a non-empty tuple or list of layer arrays, got {type(Ws).__name__}")
    for j, W in enumerate(Ws):
        if len(getattr(W, "shape", ())) < 2:
            raise ValueError(f"`Ws[{j}]` must have shape (..., d_{j + 1}, d_{j}), got {getattr(W, 'shape', W)!r}")
        if j and W.shape[-1] != Ws[j - 1].shape[-2]:
            raise ValueError(
                f"`Ws`: mismatched widths: layer {j + 1} expects input width {W.shape[-1]}, "
                f"layer {j} gives {Ws[j - 1].shape[-2]}"
            )
    return (int(Ws[0].shape[-1]),) + tuple(int(W.shape[-2]) for W in Ws)


def select_path(loss: Any, Ws: Sequence[Array]) -> str:
    """Which path a training step of ``loss`` at weights ``Ws`` takes, one of :data:`PATHS`:
    ``'numpy-quadratic'`` (the fused NumPy kernel, for losses with a
    :meth:`~linnet.losses.Loss.quadratic_form`), ``'numpy'`` (generic recursion, NumPy buffers) or ``'generic'``
    (array-API code only)."""
    return _select_path(loss, tuple(Ws))
