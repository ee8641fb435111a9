"""W5: linnet.sweep throughput, in-process against a local Dask cluster of 2 worker processes, and the cost of
one task. The numbers feed the README's paper plan of a 10^6-run sweep."""

from __future__ import annotations

import time

from ._harness import Backend


def _spec(runs: int, steps: int, cells: int = 4) -> dict:
    return {
        "seed": 0,
        "runs": runs,
        "problem": {"loss": "whitened", "d_in": 4, "d_out": 1},
        "grid": {"depth": [3], "width": [4], "init": ["gaussian", "balanced"], "scale": [0.3, 1.0][: cells // 2]},
        "train": {"steps": steps, "tol": 1e-300},  # no run stops early: every run costs `steps` steps
    }


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def w5(be: Backend, sz) -> dict:
    """Runs per second of the same sweep in-process and on 2 local workers; overhead per task from tiny tasks."""
    if be.name != "numpy":
        return {"skipped": "linnet.sweep runs its chunks with NumPy (host) arrays"}
    try:
        import distributed

        import linnet.sweep as sw
    except ImportError as e:  # pragma: no cover - without the sweep extra
        return {"skipped": f"the sweep extra is not installed ({e})"}
    q = sz.quick
    runs, steps, chunk = (32, 50, 16) if q else (1024, 500, 256)
    spec = _spec(runs, steps)
    n = len(sw.load_spec(spec).cells) * runs
    ref, t_in = _timed(lambda: sw.run(spec, chunk_size=chunk, progress=False))
    tiny = {**_spec(8 if q else 64, 1), "train": {"steps": 1, "tol": 1e-300}}
    n_tiny = len(sw.load_spec(tiny).cells) * tiny["runs"]
    _, t_tiny_in = _timed(lambda: sw.run(tiny, chunk_size=1, progress=False))
    t0 = time.perf_counter()
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        client.wait_for_workers(2)
        t_start = time.perf_counter() - t0
        sw.run(_spec(2, 1), client=client, progress=False)  # warm-up: imports on the workers
        res, t_cl = _timed(lambda: sw.run(spec, client=client, chunk_size=chunk, progress=False))
        _, t_tiny_cl = _timed(lambda: sw.run(tiny, client=client, chunk_size=1, progress=False))
    same = bool(res.table.equals(ref.table))
    return {
        "runs": n,
        "steps": steps,
        "chunk_size": chunk,
        "widths": [4, 4, 4, 1],
        "in_process_runs_per_s": n / t_in,
        "cluster2_runs_per_s": n / t_cl,
        "speedup_2_workers": t_in / t_cl,
        "in_process_net_steps_per_s": n * steps / t_in,
        "cost_per_net_step_s": t_in / (n * steps),
        "cluster_start_s": t_start,
        "task_overhead_in_process_s": t_tiny_in / n_tiny,
        "task_overhead_cluster_s": t_tiny_cl / n_tiny,
        "tables_equal": same,
    }
