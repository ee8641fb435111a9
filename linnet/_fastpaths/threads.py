"""linnet's own thread pool: a batch of nets split into chunks, and per-thread scratch buffers.

NumPy's stacked small-matrix ``matmul`` runs on one core whatever the BLAS thread count, and it releases the GIL,
so a batch of nets is split into chunks run by a thread pool. Scratch buffers are kept per thread and reused
across calls (``out=``), so a training loop does not grow its memory step after step.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional

from .. import _backend

__all__ = ["usable_cores", "set_num_threads", "num_threads", "run_split", "workspace"]

_np = _backend.np  # NumPy, as imported by linnet._backend

#: Fewest nets per thread chunk: below this the thread hand-off costs more than it saves.
MIN_NETS_PER_CHUNK = 128
#: Most nets processed at once by one thread: keeps a sub-chunk's working set in cache (measured: 512-1024
#: nets of width 8 run ~12% faster per net than 4096 at once).
SUBCHUNK_NETS = 512
#: Fewest multiply-adds per chunk and step (sum over layers of d_j d_{j-1} d_0 per net) worth a thread.
MIN_WORK_PER_CHUNK = 2.0e5

_lock = threading.Lock()
_pool: Optional[ThreadPoolExecutor] = None
_pool_size = 0
_n_threads: Optional[int] = None
_local = threading.local()


def usable_cores() -> int:
    """Number of CPU cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def set_num_threads(n: Optional[int]) -> None:
    """Threads of linnet's own pool that split a batch of nets (``1``: no splitting; ``None``: the default, which
    is ``LINNET_NUM_THREADS`` from the environment if set, else all usable cores). BLAS threads are separate:
    set them with ``OPENBLAS_NUM_THREADS`` / ``OMP_NUM_THREADS`` or threadpoolctl."""
    global _n_threads
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"`n` must be a positive int or None, got {n!r}")
    _n_threads = n


def _env_threads() -> Optional[int]:
    raw = os.environ.get("LINNET_NUM_THREADS", "").strip()
    if not raw:
        return None
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"environment variable LINNET_NUM_THREADS must be a positive int, got {raw!r}")
    return n


def num_threads() -> int:
    """The number of threads a batch of nets is split over (see :func:`set_num_threads`)."""
    if _n_threads is not None:
        return _n_threads
    env = _env_threads()
    return env if env is not None else usable_cores()


_threads = num_threads  # the name the rest of the engine used


def _get_pool(n: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    with _lock:
        if _pool is None or _pool_size < n:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="linnet-step")
            _pool_size = n
        return _pool


def run_split(bounds: list, fn: Callable[[int, int], None]) -> None:
    """``fn(bounds[i], bounds[i + 1])`` for each consecutive pair, the first in this thread, the others in the
    pool; returns when all are done (re-raising the first error)."""
    if len(bounds) <= 2:
        fn(bounds[0], bounds[-1])
        return
    pool = _get_pool(len(bounds) - 2)
    futs = [pool.submit(fn, bounds[i], bounds[i + 1]) for i in range(1, len(bounds) - 1)]
    fn(bounds[0], bounds[1])
    for f in futs:
        f.result()


def workspace(key: tuple, shapes: list, dtype) -> list:
    """Per-thread scratch buffers for ``key`` and ``dtype``, reused across calls (at most 8 keys per thread).

    The dtype is part of the key: a float32 run after a float64 one of the same shapes must not compute in the
    float64 buffers left over (that would round differently and depend on what ran before).
    """
    key = key + (_np.dtype(dtype).str,)
    ws = getattr(_local, "ws", None)
    if ws is None:
        ws = _local.ws = {}
    bufs = ws.get(key)
    if bufs is None:
        if len(ws) >= 8:
            ws.clear()
        bufs = ws[key] = [_np.empty(s, dtype=dtype) for s in shapes]
    return bufs
