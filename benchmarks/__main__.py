"""Command line: ``python -m benchmarks [--backend numpy|cupy] [--json PATH] [-k W1,W2,...] [--quick]``."""

from __future__ import annotations

import argparse
import json
import sys
import time

from ._harness import Backend, machine, matmul_rate
from .workloads import WORKLOADS, Sizes


def _fmt(x, unit=""):
    if x is None:
        return "-"
    if isinstance(x, float):
        if x != 0 and (abs(x) >= 1e5 or abs(x) < 1e-3):
            return f"{x:.3g}{unit}"
        return f"{x:.3f}{unit}"
    return f"{x}{unit}"


#: Per workload, the function formatting its results as text lines (registered with :func:`formatter`).
TABLES: dict = {}


def formatter(name: str):
    """Register ``fn(r) -> list of lines`` as the table of workload ``name``."""

    def deco(fn):
        TABLES[name] = fn
        return fn

    return deco


@formatter("W1")
def _table_w1(r: dict) -> list:
    lines = []
    if "rows" not in r:
        return lines
    lines.append(
        f"\nW1 one net, width {r['width']}, m = {r['m']}; one matmul (best of many) "
        f"{r['matmul_same_size']['gflops']:.1f} GFLOP/s. Fractions = time of the same number (3N-2) of matmuls "
        "/ step time: hot = same operands, out=; dist = distinct operands (the step's working set), out=; "
        "fresh = same operands, fresh output. step = train.gd's inner step (update fused in place); alloc = MiB "
        "allocated by one step"
    )
    lines.append(
        f"{'N':>3} {'ms/step':>9} {'GFLOP/s':>8} {'hot':>5} {'dist':>5} {'fresh':>5} {'kernel':>7} "
        f"{'hot':>5} {'gd ms':>7} {'hot':>5} {'t(4m)/t':>8} {'raw ms':>8} {'x raw':>6} {'alloc':>6}"
    )
    for row in r["rows"]:
        f = row["fractions"]
        tg = row["train_gd_time_per_step_s"]
        lines.append(
            f"{row['depth']:>3} {row['time_per_step_s'] * 1e3:>9.3f} {row['gflops']:>8.1f} "
            f"{f['step_of_mm_hot']:>5.2f} {f['step_of_mm_distinct']:>5.2f} {f['step_of_mm_fresh']:>5.2f} "
            f"{row['kernel_time_s'] * 1e3:>7.3f} {f['kernel_of_mm_hot']:>5.2f} "
            f"{'-' if tg is None else f'{tg * 1e3:.3f}':>7} "
            f"{f['train_gd_of_mm_hot'] if 'train_gd_of_mm_hot' in f else float('nan'):>5.2f} "
            f"{row['m_independence_ratio']:>8.2f} {row['raw_data_time_s'] * 1e3:>8.2f} "
            f"{row['speedup_vs_raw_data']:>6.1f} {row['peak_bytes'] / 2**20:>6.1f}"
        )
    return lines


@formatter("W2")
def _table_w2(r: dict) -> list:
    lines = []
    lines.append(f"\nW2 ensemble B = {r['batch']}, depth 4, width 8 (net·steps/s)")
    for k, v in r["net_steps_per_s"].items():
        lines.append(f"  {k:<16} {v / 1e6:8.3f} M")
    for k, v in r["extra_columns"].items():
        lines.append(f"  {k:<16} {_fmt(v.get('net_steps_per_s'))} {v.get('error', '')}")
    lines.append(
        f"  engine / plain batched = {r['speedup_vs_plain_batched']:.2f}x (medians "
        f"{r['speedup_vs_plain_batched_medians']:.2f}x), / python loop = "
        f"{r['speedup_vs_python_loop']:.1f}x, train.gd / plain = {_fmt(r['train_gd_speedup_vs_plain_batched'])}"
    )
    lines.append(
        f"  engine {r['gflops']:.2f} GFLOP/s = {r['fraction_of_stacked_matmul']:.2f} of stacked matmul "
        f"({r['matmul_same_size']['gflops']:.2f} GFLOP/s, one call)"
    )
    if r["thread_scaling"]:
        s = r["thread_scaling"]
        lines.append(
            f"  engine on 1 thread {s['one_thread_net_steps_per_s'] / 1e6:.3f} M ({s['threads']} usable cores)"
        )
    m = r["memory"]
    lines.append(
        f"  B = {m['big_batch']}: engine peak {m['engine_peak_bytes'] / 2**20:.0f} MiB"
        + (f", train.gd peak {m['train_gd_peak_bytes'] / 2**20:.0f} MiB" if "train_gd_peak_bytes" in m else "")
        + f" (weights {m['weights_bytes'] / 2**20:.0f} MiB); growth over {m['growth_steps']} steps: {m['growth_bytes']} B"
    )
    return lines


@formatter("W3")
def _table_w3(r: dict) -> list:
    lines = []
    lines.append(f"\nW3 curvature, {r['params']} parameters")
    lines.append(
        f"  dense Hessian {r['hessian_time_s'] * 1e3:.2f} ms (HVP column loop {r['hvp_column_loop_time_s'] * 1e3:.1f} ms,"
        f" finite differences {r['finite_differences_time_s'] * 1e3:.1f} ms, rel err {r['finite_differences_rel_error']:.1e})"
    )
    for k, v in r.get("extra_columns", {}).items():
        if "error" in v:
            lines.append(f"  {k}: {v['error']}")
        else:
            lines.append(
                f"  {k} (torch {v['version']}) {v['best_s'] * 1e3:.2f} ms, rel. difference to linnet's "
                f"{v['rel_diff_to_linnet']:.1e}"
            )
    e = r["top_eigenvalue"]
    if e:
        lines.append(
            f"  top eigenvalue {e['value']:.10g}: {e['n_hvp']} HVPs, {e['time_s'] * 1e3:.2f} ms, rel err {e['rel_error']:.1e}"
            f" (dense + eigvalsh {e['dense_hessian_plus_eigvalsh_s'] * 1e3:.1f} ms)"
        )
    b = r["batched"]
    lines.append(
        f"  batched over {b['nets']} nets: Hessian {b['hessian_time_per_net_s'] * 1e3:.2f} ms/net"
        + (
            f", eigsh {b['eigsh_time_per_net_s'] * 1e3:.2f} ms/net (max {b['eigsh_max_hvp']} HVPs)"
            if "eigsh_max_hvp" in b
            else ""
        )
    )
    return lines


@formatter("W4")
def _table_w4(r: dict) -> list:
    return [
        f"\nW4 gradient flow B = {r['batch']} to t = {r['t_final']}: linnet {r['linnet_time_s']:.2f} s, "
        f"scipy RK45 on the whole batch {r['scipy_time_s']:.2f} s ({r['speedup_vs_scipy']:.1f}x), "
        f"max |dW| {r['max_abs_difference_final_weights']:.1e}"
    ]


@formatter("W6")
def _table_w6(r: dict) -> list:
    return [
        f"\nW6 sharpness every {r['every']} steps over {r['steps']} GD steps (one net, depth 3, width 10): "
        f"gd {r['gd_time_s'] * 1e3:.1f} ms, with sharpness {r['gd_sharpness_time_s'] * 1e3:.1f} ms, "
        f"observer cost = {r['overhead_over_gd']:.2f}x the GD steps (target <= 5x)"
    ]


@formatter("W5")
def _table_w5(r: dict) -> list:
    return [
        f"\nW5 sweep, {r['runs']} runs x {r['steps']} steps, widths {r['widths']}, chunks of {r['chunk_size']}: "
        f"in-process {r['in_process_runs_per_s']:.0f} runs/s, 2 local workers {r['cluster2_runs_per_s']:.0f} "
        f"runs/s ({r['speedup_2_workers']:.2f}x); {r['cost_per_net_step_s'] * 1e6:.2f} us per net-step; "
        f"overhead per task {r['task_overhead_in_process_s'] * 1e3:.1f} ms in-process, "
        f"{r['task_overhead_cluster_s'] * 1e3:.1f} ms on the cluster; cluster start {r['cluster_start_s']:.1f} s; "
        f"tables equal: {r['tables_equal']}"
    ]


def _w7_rows_table(rows: list) -> list:
    lines = [
        f"{'N':>3} {'linnet':>8} {'numpy':>8} {'np 1 BLAS':>9} {'ratio':>6} {'(median)':>8} {'vs 1 BLAS':>9} "
        f"{'no rule 3':>9} {'call':>6}"
    ]
    for row in rows:
        t = row["time_per_step_s"]
        one = t.get("numpy_loop_1_blas_thread")
        lines.append(
            f"{row['depth']:>3} {t['linnet_gd'] * 1e3:>8.3f} {t['numpy_loop'] * 1e3:>8.3f} "
            f"{'-' if one is None else f'{one * 1e3:.3f}':>9} {row['linnet_over_numpy']:>6.2f} "
            f"{row['linnet_over_numpy_medians']:>8.2f} {_fmt(row['linnet_over_numpy_1_blas']):>9} "
            f"{t['linnet_gd_blas_threads_as_set'] * 1e3:>9.3f} {row['call_overhead_s'] * 1e3:>6.2f}"
        )
    return lines


@formatter("W7")
def _table_w7(r: dict) -> list:
    lines = [
        f"\nW7 contention: one net, width {r['width']}, {r['samples']} samples, one core of {r['usable_cores']} kept "
        f"busy by another process ({r['cpu_model']}); ms per GD step (best of the interleaved calls of "
        f"{r['steps_per_call']} steps), linnet / NumPy loop (target <= 1; median ratio beside it), linnet / NumPy "
        "loop on one BLAS thread, ms per step of linnet with BLAS threads as set (rule 3 of the thread setting "
        "off), ms of a call's fixed cost (gd with steps=0: validation, step-0 evaluation, buffers)"
    ]
    lines += _w7_rows_table(r["rows"])
    h = r["haswell"]
    if "net_steps_per_s" in h:
        ns = h["net_steps_per_s"]
        arch = ", ".join(f"{b['internal_api']} {b['architecture']}" for b in (h["blas"] or [])) or "BLAS unknown"
        lines.append(f"  the same under OPENBLAS_CORETYPE=Haswell ({arch}), in a child process:")
        lines += ["  " + line for line in _w7_rows_table(h["single_net"]["rows"])]
        lines.append(
            f"  W2 ensemble B = {h['batch']}, Haswell kernels, M net·steps/s: train.gd default "
            f"{ns['train_gd_default'] / 1e6:.3f}, 1 thread {ns['train_gd_1_thread'] / 1e6:.3f}, 2 threads "
            f"{ns['train_gd_2_threads'] / 1e6:.3f}, plain batched {ns['plain_batched'] / 1e6:.3f}; default / plain = "
            f"{h['default_over_plain']:.2f}x, default / best fixed = {h['default_over_best_fixed']:.2f}"
        )
    else:
        lines.append(f"  under OPENBLAS_CORETYPE=Haswell: {h.get('skipped') or h.get('error')}")
    return lines


def table(res: dict) -> str:
    """A plain-text summary of the results, one registered table per workload run."""
    lines = [f"machine matmul peak (float64, {res['peak']['shape_a']}): {res['peak']['gflops']:.1f} GFLOP/s"]
    for name, r in res["workloads"].items():
        fmt = TABLES.get(name)
        if "skipped" in r:  # any workload may be skipped (a missing extra, another backend): said once, here
            lines.append(f"\n{name} skipped: {r['skipped']}")
        else:
            lines += fmt(r) if fmt is not None else [f"\n{name}: " + json.dumps(r, default=float)]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    ap.add_argument("--backend", default="numpy", choices=["numpy", "cupy", "array_api_strict"])
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("-k", default=",".join(WORKLOADS), help=f"comma-separated workloads ({','.join(WORKLOADS)})")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run, not a measurement")
    ap.add_argument("--w2-batch", type=int, default=None, help="override W2's batch size")
    ap.add_argument("--w1-depths", default=None, help="override W1's depths, e.g. 8 or 2,4,8,16")
    args = ap.parse_args(argv)
    names = [s.strip().upper() for s in args.k.split(",") if s.strip()]
    bad = [n for n in names if n not in WORKLOADS]
    if bad:
        ap.error(f"-k: unknown workload(s) {bad}; choose from {sorted(WORKLOADS)}")
    be = Backend(args.backend)
    sz = Sizes(args.quick, be.gpu)
    if args.w2_batch:
        sz.w2_batch = args.w2_batch
    if args.w1_depths:
        sz.w1_depths = tuple(int(x) for x in args.w1_depths.split(","))
    n = 64 if args.quick else (1024 if not be.gpu else 8192)
    res = {
        "machine": machine(be),
        "quick": args.quick,
        "peak": matmul_rate(be, (n, n), (n, n), repeats=3 if args.quick else 10),
        "workloads": {},
    }
    print(
        f"benchmarks {','.join(names)} on {args.backend}{' (quick)' if args.quick else ''}: the run time depends on "
        "the cores, their load and the BLAS (about 3.5 min for all four on 2 idle cores); progress below",
        file=sys.stderr,
        flush=True,
    )
    t_all = time.perf_counter()
    for i, name in enumerate(names, start=1):
        t0 = time.perf_counter()
        print(f"[{i}/{len(names)}] {name} ...", file=sys.stderr, flush=True)
        res["workloads"][name] = WORKLOADS[name](be, sz)
        res["workloads"][name]["wall_s"] = time.perf_counter() - t0
        done = time.perf_counter() - t_all
        print(
            f"[{i}/{len(names)}] {name} done in {res['workloads'][name]['wall_s']:.1f} s ({done:.0f} s so far)",
            file=sys.stderr,
            flush=True,
        )
    import os

    res["machine"]["load_average_at_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    print(table(res))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1, default=float)
        print(f"\nwrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
