"""Timing, memory and machine-description helpers shared by the workloads."""

from __future__ import annotations

import datetime
import os
import platform
import resource
import sys
import time
import tracemalloc
from contextlib import contextmanager
from typing import Callable

import numpy as np


class Backend:
    """The array backend under test: namespace, host<->device moves, synchronisation, memory accounting."""

    def __init__(self, name: str):
        from linnet.backend import get_namespace

        self.name = name
        self.xp = get_namespace(name)
        self.gpu = name == "cupy"
        if self.gpu:  # pragma: no cover - GPU only
            import cupy

            self._cp = cupy
            self.raw = cupy
        else:
            self.raw = np

    def matmul_into(self, A, B, C) -> None:
        """``C = A @ B`` by the library's own matmul with ``out=`` (NumPy, CuPy); a fresh product elsewhere
        (array-api-strict, used as a dry run of the device code paths, has no ``out=``)."""
        if self.raw is np and not isinstance(A, np.ndarray):
            self.xp.matmul(A, B)
        else:
            self.raw.matmul(A, B, out=C)

    def asarray(self, a, dtype="float64"):
        from linnet.backend import from_host

        return from_host(np.asarray(a), self.xp, dtype)

    def sync(self) -> None:
        if self.gpu:  # pragma: no cover - GPU only
            self._cp.cuda.Device().synchronize()

    @contextmanager
    def peak_memory(self, out: dict):
        """Record ``out['peak_bytes']``: tracemalloc peak (NumPy host) or the CuPy pool's held bytes (GPU)."""
        if self.gpu:  # pragma: no cover - GPU only
            pool = self._cp.get_default_memory_pool()
            self.sync()
            pool.free_all_blocks()
            base = pool.total_bytes()
            try:
                yield
            finally:
                self.sync()
                out["peak_bytes"] = int(pool.total_bytes() - base)
                out["memory_method"] = "cupy default memory pool: bytes held after the run minus before"
            return
        was = tracemalloc.is_tracing()
        if not was:
            tracemalloc.start()
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        rss0 = _rss_peak()
        try:
            yield
        finally:
            out["peak_bytes"] = int(tracemalloc.get_traced_memory()[1] - base)
            out["rss_peak_growth_bytes"] = int(_rss_peak() - rss0)
            out["memory_method"] = "tracemalloc peak (NumPy host allocations) above the start"
            if not was:
                tracemalloc.stop()


def _rss_peak() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def race(fns: dict[str, Callable[[], object]], *, repeats: int, sync: Callable[[], None] = lambda: None) -> dict:
    """Time each function ``repeats`` times, interleaved (so load changes hit all alike); best and median seconds."""
    times: dict[str, list] = {k: [] for k in fns}
    t_start = time.perf_counter()
    print(f"  timing {', '.join(fns)} ({repeats} repeats) ...", end="", file=sys.stderr, flush=True)
    for f in fns.values():  # warm-up (buffers, caches, thread pool)
        f()
    sync()
    for _ in range(repeats):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            sync()
            times[k].append(time.perf_counter() - t0)
    print(f" {time.perf_counter() - t_start:.1f} s", file=sys.stderr, flush=True)
    return {k: {"best_s": min(v), "median_s": float(np.median(v)), "repeats": len(v)} for k, v in times.items()}


def matmul_rate(backend: Backend, shape_a: tuple, shape_b: tuple, *, repeats: int, dtype="float64") -> dict:
    """GFLOP/s of the backend's own ``matmul`` on operands of these shapes (best of ``repeats``)."""
    rng = np.random.default_rng(0)
    xp = backend.xp
    A = backend.asarray(rng.standard_normal(shape_a), dtype)
    B = backend.asarray(rng.standard_normal(shape_b), dtype)
    batch = int(np.prod(np.broadcast_shapes(shape_a[:-2], shape_b[:-2]))) if len(shape_a) > 2 else 1
    flops = 2.0 * batch * shape_a[-2] * shape_a[-1] * shape_b[-1]
    r = race({"mm": lambda: xp.matmul(A, B)}, repeats=repeats, sync=backend.sync)["mm"]
    return {
        "shape_a": list(shape_a),
        "shape_b": list(shape_b),
        "best_s": r["best_s"],
        "gflops": flops / r["best_s"] / 1e9,
    }


def machine(backend: Backend) -> dict:
    """Date, CPU, core count, load, library versions (threadpoolctl's BLAS report when installed)."""
    import scipy

    import linnet
    from linnet.backend import usable_cores

    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "nproc": os.cpu_count(),
        "usable_cores": usable_cores(),
        "cpu_model": _cpu_model(),
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "linnet": linnet.__version__,
        "backend": backend.name,
    }
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = [
            {k: d.get(k) for k in ("internal_api", "version", "num_threads", "architecture", "threading_layer")}
            for d in threadpool_info()
            if d.get("user_api") == "blas"
        ]
    except ImportError:  # pragma: no cover
        info["blas"] = None
    if backend.gpu:  # pragma: no cover - GPU only
        cp = backend._cp
        props = cp.cuda.runtime.getDeviceProperties(0)
        info["gpu"] = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
        info["cupy"] = cp.__version__
        info["cuda_runtime"] = cp.cuda.runtime.runtimeGetVersion()
    for mod in ("torch", "jax"):  # versions only: the frameworks run in child processes (extra_column)
        info[mod] = installed_version(mod)
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:  # pragma: no cover
        pass
    return platform.processor() or "unknown"


def installed_version(name: str):
    """The installed version of distribution ``name`` (``None`` if absent), without importing it."""
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def extra_column(name: str, arrays: dict, params: dict, *, timeout: float = 900.0):
    """Run extra column ``name`` of :mod:`benchmarks._extra_columns` (``torch_w2``, ``jax_w2``, ``torch_w3``) in a
    child process, on ``arrays`` (saved to a temporary ``.npz``) and JSON ``params``.

    ``None`` when the framework (the part of ``name`` before ``_``) is not installed; a dict with ``error``
    when the child fails, so an extra column never breaks a run.
    """
    import importlib.util
    import json
    import pathlib
    import subprocess
    import sys
    import tempfile

    framework = name.split("_")[0]
    if importlib.util.find_spec(framework) is None:
        return None
    root = pathlib.Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "arrays.npz"
        np.savez(path, **arrays)
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "benchmarks._extra_columns", name, str(path), json.dumps(params)],
                cwd=root,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout:.0f} s"}
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["exit code %d" % proc.returncode])[-1]}
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {"error": "no JSON result in the child's output"}
