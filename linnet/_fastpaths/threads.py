"""linnet's own thread pool: a batch of nets split into chunks, and per-thread scratch buffers.

NumPy's stacked small-matrix ``matmul`` runs on one core whatever the BLAS thread count, and it releases the GIL,
so a batch of nets is split into chunks run by a thread pool. Scratch buffers are kept per thread and reused
across calls (``out=``), so a training loop does not grow its memory step after step.

How many threads split a batch (``pool_size``)
--------------------------------------------------
``LINNET_NUM_THREADS`` or :func:`set_num_threads` fix the pool size (an upper bound: a batch is never cut into
chunks smaller than ``MIN_NETS_PER_CHUNK`` nets or ``MIN_WORK_PER_CHUNK`` multiply-adds). Otherwise the
default rule is:

1. *Never together with a threaded BLAS.* The pool may split a step only when every matrix product of it is
   small enough that OpenBLAS runs it on one thread anyway (:data:`BLAS_SERIAL_MNK`: ``m n k`` at most
   ``4 * 65536``, OpenBLAS's ``GEMM_MULTITHREAD_THRESHOLD`` times ``SMP_THRESHOLD_MIN`` in ``interface/gemm.c``;
   UNCONFIRMED: recalled from OpenBLAS 0.3's source, not re-read; a smaller true threshold only means that the
   cap below is what keeps pool x BLAS within the cores).
   Larger products (one net of width 100, say) run on the calling thread and BLAS threads them as it is set
   to. While the pool runs ``n`` chunks, the BLAS libraries that threadpoolctl finds are capped at
   ``usable_cores() // n`` threads (pool x BLAS <= cores); without threadpoolctl the cap is skipped (rule 1
   alone keeps OpenBLAS serial there).
2. *Only where it helps.* The first time a kind of step (widths, dtype, batch size to a power of two) could be
   split, it is timed on its own inputs (at most 2048 nets) -- all nets in one thread against the split, a
   warm-up and :data:`CALIBRATION_REPEATS` alternating runs each, in all 10-60 ms for W2's nets of width 8 on
   two loaded cores -- and the split is kept only if it is at least :data:`MIN_GAIN` faster.
   The choice is cached for the process (:func:`plans` shows it); a choice of one thread is timed once more
   after ``RETIME_AFTER`` (256) further uses, so a calibration that fell in a short burst of other work does not
   keep the pool off for good. On two cores of which one is busy, or with a slow generic BLAS kernel that leaves
   nothing to gain, this picks one thread.
3. *No BLAS threads on small products.* A descent run (gd, momentum, sgd, end-to-end GD: its validation and
   every step), and each call of the squared-loss kernel, whose products are all at most
   :data:`BLAS_SMALL_MNK` (``100**3``: one net of width 100) runs with BLAS capped at one thread, as OpenBLAS's
   AVX-512 small-matrix kernels run such products anyway (``M N K <= 10**6``: UNCONFIRMED as a quote of
   OpenBLAS's ``dgemm_small_kernel_permit_skylakex.c``; measured here: a 100 x 100 product takes the same time
   on 1 and 2 BLAS threads with those kernels): beside a busy core, BLAS threads on products this small cost
   2-7x per step with OpenBLAS's Haswell kernels (benchmark W7). This rule is not timed, so a run does not
   depend on the load of the machine.

Results do not depend on the pool size: the chunks are independent nets, each computed by the same code in
the same order (tests/test_threads.py compares them bit for bit), so timing a choice never changes a result.
The BLAS thread count can change the last bits of large products (OpenBLAS splits them differently); rules 1
and 3 are fixed by the shapes alone, so the same run gives the same bits on the same machine whatever its load
(measured with OpenBLAS 0.3.31, SkylakeX and Haswell kernels: the plain ``A @ B`` that the squared-loss kernel
runs gives the same bits on 1 and 2 threads up to size 128, from 300 on it does not; ``A @ B.T`` of size 100,
as the generic path runs, differs on SkylakeX, so there rule 3 can change the last bits against a run with
BLAS threads as set).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional

from .. import _backend

__all__ = [
    "usable_cores",
    "set_num_threads",
    "num_threads",
    "pool_size",
    "plans",
    "blas_threads",
    "small_step_blas",
    "run_split",
    "workspace",
]

_np = _backend.np  # NumPy, as imported by linnet._backend

#: Fewest nets per thread chunk: below this the thread hand-off costs more than it saves.
MIN_NETS_PER_CHUNK = 128
#: Most nets processed at once by one thread: keeps a sub-chunk's working set in cache (measured: 512-1024
#: nets of width 8 run ~12% faster per net than 4096 at once).
SUBCHUNK_NETS = 512
#: Fewest multiply-adds per chunk and step (sum over layers of d_j d_{j-1} d_0 per net) worth a thread.
MIN_WORK_PER_CHUNK = 2.0e5
#: Largest matrix product (``m n k`` multiply-adds) OpenBLAS runs on one thread whatever its setting
#: (``GEMM_MULTITHREAD_THRESHOLD`` = 4 times ``SMP_THRESHOLD_MIN`` = 65536, OpenBLAS ``interface/gemm.c``): the
#: default rule splits a batch across the pool only when every product of the step is at most this.
BLAS_SERIAL_MNK = 4 * 65536
#: Products up to this ``m n k`` run with BLAS capped at one thread in descent runs and linnet's kernel (rule 3
#: of the module docstring); with OpenBLAS's Haswell kernels two threads beside one busy core made one
#: 100 x 100 net of depth 2-4 2-7x slower per step (W7).
BLAS_SMALL_MNK = 100**3
#: A split is kept by the calibration only if it takes at most this fraction of the one-thread time.
MIN_GAIN = 0.9
#: Alternating timed runs per candidate in a calibration.
CALIBRATION_REPEATS = 3
#: A kind of step whose calibration chose one thread is timed once more after this many further uses: a
#: calibration of ~10 ms can fall in a burst of another process's work, which would otherwise keep the pool
#: off for the whole process (measured: W2's train.gd at 0.95 M net·steps/s after such a mis-pick, 1.2 M with
#: the split, 2 cores).
RETIME_AFTER = 256

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
    """Threads of linnet's own pool that split a batch of nets.

    Parameters
    ----------
    n : int or None
        ``1``: no splitting; ``k > 1``: split into up to ``k`` chunks (never below
        ``MIN_NETS_PER_CHUNK`` nets or ``MIN_WORK_PER_CHUNK`` multiply-adds per chunk); ``None``: the
        default, ``LINNET_NUM_THREADS`` from the environment if set, else the rule of this module's docstring
        (pool and BLAS threads together never more than the usable cores, a split only where a short
        calibration shows that it helps). An explicit setting always overrides the rule.

    Notes
    -----
    BLAS threads are set apart (``OPENBLAS_NUM_THREADS`` / ``OMP_NUM_THREADS`` or threadpoolctl); while the pool
    runs ``k`` chunks linnet caps them at ``usable_cores() // k`` (when threadpoolctl is installed).
    """
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


def explicit_threads() -> Optional[int]:
    """The pool size set by :func:`set_num_threads` or ``LINNET_NUM_THREADS`` (in this order), else ``None``."""
    if _n_threads is not None:
        return _n_threads
    return _env_threads()


def num_threads() -> int:
    """The most threads a batch of nets is split over: the explicit setting (see :func:`set_num_threads`), else
    all usable cores (the default rule may then use fewer: ``pool_size``)."""
    n = explicit_threads()
    return n if n is not None else usable_cores()


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


def run_split(bounds: list, fn: Callable[[int, int], None], blas_limit: Optional[int] = None) -> None:
    """``fn(bounds[i], bounds[i + 1])`` for each consecutive pair, the first in this thread, the others in the
    pool; returns when all are done (re-raising the first error). While more than one chunk runs, BLAS threads
    are capped at ``usable_cores() // chunks`` (:func:`blas_threads`), and at ``blas_limit`` if given."""
    if len(bounds) <= 2:
        if blas_limit is None:
            fn(bounds[0], bounds[-1])
        else:
            with blas_threads(blas_limit):
                fn(bounds[0], bounds[-1])
        return
    n = len(bounds) - 1
    pool = _get_pool(n - 1)
    cap = max(1, usable_cores() // n)
    with blas_threads(cap if blas_limit is None else min(cap, blas_limit)):
        futs = [pool.submit(fn, bounds[i], bounds[i + 1]) for i in range(1, n)]
        try:
            fn(bounds[0], bounds[1])
        finally:
            for f in futs:
                f.exception()  # wait for every chunk before the cap is lifted
        for f in futs:
            f.result()


# ---- BLAS threads -----------------------------------------------------------------------------------------------

_blas_state: dict = {}
_blas_lock = threading.Lock()


def _blas_controllers() -> list:
    """threadpoolctl's controllers of the loaded BLAS libraries (``[]`` without threadpoolctl), looked up again
    whenever modules were imported since the last look: a library such as SciPy's own OpenBLAS loads with the
    first import that needs it, after linnet's first cap (a look costs ~2 ms; counting ``sys.modules`` nothing)."""
    n_modules = len(sys.modules)
    libs = _blas_state.get("libs")
    if libs is None or _blas_state.get("modules") != n_modules:
        try:
            from threadpoolctl import ThreadpoolController

            libs = [lc for lc in ThreadpoolController().lib_controllers if lc.user_api == "blas"]
        except Exception:  # pragma: no cover - threadpoolctl absent or failing: no cap, rule 1 still holds
            libs = []
        _blas_state["libs"], _blas_state["modules"] = libs, n_modules
    return libs


@contextlib.contextmanager
def blas_threads(limit: int):
    """Within the block, every BLAS library threadpoolctl finds runs at most ``limit`` threads (process-wide;
    nested and concurrent uses keep the smallest cap and restore the setting the first one found)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"`limit` must be a positive int, got {limit!r}")
    with _blas_lock:
        depth = _blas_state.get("depth", 0)
        if depth == 0:  # the libraries are looked up by the outermost use; nested ones cap and restore the same
            _blas_state["held"] = _blas_controllers()
            _blas_state["saved"] = [lc.get_num_threads() for lc in _blas_state["held"]]
            _blas_state["cap"] = None
        libs = _blas_state["held"]
        _blas_state["depth"] = depth + 1
        cap = _blas_state["cap"]
        if cap is None or limit < cap:  # a cap already in force at or below `limit` needs no library call
            _blas_state["cap"] = limit
            for lc, was in zip(libs, _blas_state["saved"]):
                if was is not None and lc.get_num_threads() > limit:
                    lc.set_num_threads(limit)
    try:
        yield
    finally:
        with _blas_lock:
            _blas_state["depth"] -= 1
            if _blas_state["depth"] == 0:
                _blas_state["cap"] = None
                for lc, was in zip(_blas_state.pop("held"), _blas_state.pop("saved")):
                    if was is not None:
                        lc.set_num_threads(was)


def capped(limit: Optional[int]) -> bool:
    """Whether a :func:`blas_threads` cap at or below ``limit`` is in force already (then another one would
    change nothing and can be skipped; ``None``: no cap wanted, so ``True``). Read without the lock: a stale
    answer costs speed, never a result."""
    if limit is None:
        return True
    cap = _blas_state.get("cap") if _blas_state.get("depth", 0) > 0 else None
    return cap is not None and cap <= limit


def largest_product(Ws) -> float:
    """The largest ``m n k`` of a training step of nets ``Ws`` (layers ``(..., d_j, d_{j-1})``): the products
    ``F_j P_{j-1}`` (``d_j d_{j-1} d_0``) and a loss's ``E Lambda_xx`` (``d_N d_0 d_0``); ``inf`` when the
    shapes cannot be read (nothing is capped then)."""
    try:
        d0 = int(Ws[0].shape[-1])
        dims = [(int(W.shape[-2]), int(W.shape[-1])) for W in Ws]
        return float(max([a * b * d0 for a, b in dims] + [dims[-1][0] * d0 * d0]))
    except Exception:
        return float("inf")


def small_step_blas(Ws):
    """Rule 3 for a whole run: a context capping BLAS at one thread while nets ``Ws`` train, when every product
    of their step is at most :data:`BLAS_SMALL_MNK` (otherwise it changes nothing)."""
    if largest_product(Ws) <= BLAS_SMALL_MNK:
        return blas_threads(1)
    return contextlib.nullcontext()


# ---- the pool size of a kind of step ----------------------------------------------------------------------------

_plans: dict = {}


def plans() -> dict:
    """The pool sizes the default rule chose in this process: ``{key: {"threads": n, "times_s": {k: t},
    "retimed": bool}}``, one entry per kind of step it timed (a copy; ``retimed``: a one-thread choice timed
    again after ``RETIME_AFTER`` (256) uses)."""
    with _lock:
        return {
            k: {"threads": v["threads"], "times_s": dict(v["times_s"]), "retimed": v["retimed"]}
            for k, v in _plans.items()
        }


def clear_plans() -> None:
    """Forget the cached choices (the next step of each kind is timed again)."""
    with _lock:
        _plans.clear()


def _calibrate(candidates: list, trial: Callable[[int], None]) -> dict:
    for n in candidates:  # warm-up: pool threads started, their scratch buffers allocated
        trial(n)
    best = {n: float("inf") for n in candidates}
    for _ in range(CALIBRATION_REPEATS):
        for n in candidates:
            t0 = time.perf_counter()
            trial(n)
            best[n] = min(best[n], time.perf_counter() - t0)
    return best


def pool_size(key, n_max: int, largest_mnk: float, trial: Optional[Callable[[int], None]] = None) -> int:
    """How many chunks a step of kind ``key`` is split into (see this module's docstring).

    Parameters
    ----------
    key : hashable
        The kind of step (what its cost depends on: widths, dtype, batch size class); the choice is cached
        under it.
    n_max : int
        The most chunks the batch allows (nets and work per chunk); at most this is returned.
    largest_mnk : float
        The largest ``m n k`` of the step's matrix products: above :data:`BLAS_SERIAL_MNK` the default is 1.
    trial : callable, optional
        ``trial(n)`` runs the step (without side effects on results) split into ``n`` chunks; the default rule
        times it on first use. Without it, the default is 1 until a choice is cached under ``key``.
    """
    if n_max <= 1:
        return 1
    explicit = explicit_threads()
    if explicit is not None:
        return min(explicit, n_max)
    if largest_mnk > BLAS_SERIAL_MNK:
        return 1
    with _lock:
        plan = _plans.get(key)
        retime = plan is not None and plan["threads"] == 1 and plan["uses"] == RETIME_AFTER and trial is not None
        if plan is not None:
            plan["uses"] += 1
    if plan is None or retime:
        if trial is None:
            return 1
        n = min(usable_cores(), n_max)
        candidates = sorted({1, n, max(1, n // 2)})
        times = _calibrate(candidates, trial)
        best = min(candidates, key=lambda c: times[c])
        if best != 1 and times[best] > MIN_GAIN * times[1]:
            best = 1
        with _lock:
            if retime:
                plan.update(threads=best, times_s=times, retimed=True)
            else:
                plan = _plans.setdefault(key, {"threads": best, "times_s": times, "uses": 0, "retimed": False})
    return min(plan["threads"], n_max)


def workspace(key: tuple, shapes, dtype) -> list:
    """Per-thread scratch buffers for ``key`` and ``dtype``, reused across calls (at most 8 keys per thread).
    ``shapes``: their shapes, or a function returning them (called only when the buffers are first made).

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
        bufs = ws[key] = [_np.empty(s, dtype=dtype) for s in (shapes() if callable(shapes) else shapes)]
    return bufs
