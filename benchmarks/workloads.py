"""Workloads W1-W7 (the engine's speed targets), each timed side by side with its baseline(s) in the same run."""

from __future__ import annotations

import math
import time
import tracemalloc

import numpy as np

import linnet as ln
from linnet import _fastpaths, _step

from ._harness import Backend, extra_column, matmul_rate, race
from .sweep_workload import w5 as _sweep_w5


class Sizes:
    """Problem sizes: the full ones (``quick=False``) or tiny ones for a smoke run (``quick=True``)."""

    def __init__(self, quick: bool, gpu: bool):
        q = quick
        self.quick = quick
        self.repeats = 2 if q else 5
        self.w1_width = 32 if q else 256
        self.w1_m = 256 if q else 4096
        self.w1_depths = (2, 4) if q else ((2, 4, 8, 16) if not gpu else (2, 4, 8, 16))
        self.w2_batch = 64 if q else 4096
        self.w2_steps = 8 if q else 1000
        self.w2_chunk = 4 if q else 50  # steps per timed call
        self.w2_big_batch = 512 if q else 65536
        self.w2_growth_steps = 50 if q else 10_000
        self.w2_growth_batch = 32 if q else 256
        self.w2_loop_nets = 8 if q else 64
        self.w3_width = 4 if q else 16
        self.w3_batch = 4 if q else 256
        self.w3_chunk = 4 if q else 32
        self.w4_batch = 16 if q else 4096
        self.w4_t = 0.2 if q else 2.0
        self.w7_depths = (2, 3, 4)
        # GD steps per timed call: a call's fixed cost (validation, the step-0 evaluation, buffers: ~1 ms, timed
        # on its own as "call_overhead_s") is then ~2% of it, not a quarter as with calls of 20 steps
        self.w7_steps = 5 if q else 200
        self.w7_repeats = 2 if q else 9
        self.w7_haswell_batch = 256 if q else 4096
        self.w7_haswell_steps = 4 if q else 10
        self.w7_haswell_repeats = 2 if q else 5


# ---------------------------------------------------------------------------------------------------------------
# shared pieces
# ---------------------------------------------------------------------------------------------------------------


#: The workloads, registered by :func:`workload` where they are defined (name -> function(be, sz) -> dict).
WORKLOADS: dict = {}
#: Per workload, the rough cost of a full run (``"light"`` or ``"heavy"``): tests smoke-run the light ones only.
COST: dict = {}


def workload(name: str, *, cost: str = "heavy"):
    """Register ``fn(be, sz) -> dict`` as workload ``name`` (a new workload is one decorated function here and
    one ``@table(name)`` formatter in ``__main__``; nothing else lists it)."""

    def deco(fn):
        if name in WORKLOADS:
            raise ValueError(f"workload {name!r} registered twice")
        WORKLOADS[name], COST[name] = fn, cost
        return fn

    return deco


def _gd_loop(loss, residual, xp, lr):
    """The engine's hot path in a minimal GD loop (what linnet.train does per step, without its bookkeeping)."""

    def run(Ws, steps):
        for _ in range(steps):
            _, G = _step.value_and_grads(loss, Ws, residual, xp)
            Ws = tuple(W - lr * g for W, g in zip(Ws, G))
        return Ws

    return run


def _train_gd(loss, lr):
    train = getattr(ln, "train", None)
    if train is None or not hasattr(train, "gd"):
        return None

    def run(Ws, steps):
        return train.gd(loss, Ws, lr=lr, steps=steps, record_every=steps).weights

    return run


def _stat(r: dict, per: float) -> float:
    return r["best_s"] / per


# ---------------------------------------------------------------------------------------------------------------
# W1: one large net
# ---------------------------------------------------------------------------------------------------------------


@workload("W1", cost="heavy")
def w1(be: Backend, sz: Sizes) -> dict:
    """One full-batch GD step of a width-``d`` net of depth N on a squared loss from data.

    Three NumPy (CuPy) matmul baselines run in the same race, each the same number ``3N - 2`` of ``d x d``
    products back to back, and each step time is reported as a fraction of each:

    * ``mm_hot``: ``matmul(A, B, out=C)`` on the same two operands (cache-resident): the BLAS kernel's best rate;
    * ``mm_distinct``: operands cycling through ``2N + 2`` distinct matrices, outputs through ``N + 1`` buffers,
      the working set of the closed form (operands come from memory, as in any chain of products);
    * ``mm_fresh``: ``A @ B`` on the same two operands, a fresh output each time (NumPy's default call).

    Step variants: ``step`` = what :func:`linnet.train.gd` runs per inner step on NumPy (gradients into reused
    buffers, the update fused in place, the fast loss value); ``kernel`` = loss and gradients only, same
    buffers; ``engine_fresh`` = loss and gradients as fresh arrays, then ``W - lr * g`` (array-code style);
    ``train_gd`` = :func:`linnet.train.gd` itself, 20 steps per call (its validation, the step-0 evaluation and
    the buffer set-up included).
    """
    xp, d, m = be.xp, sz.w1_width, sz.w1_m
    rng = np.random.default_rng(1)
    X = rng.standard_normal((d, m))
    Y = rng.standard_normal((d, d)) @ X / math.sqrt(d) + 0.1 * rng.standard_normal((d, m))
    Xb, Yb = be.asarray(X), be.asarray(Y)
    loss = ln.SquaredLoss.from_data(Xb, Yb)
    loss4 = ln.SquaredLoss.from_data(be.asarray(np.tile(X, 4)), be.asarray(np.tile(Y, 4)))  # same stats, 4m samples
    mm = matmul_rate(be, (d, d), (d, d), repeats=max(20, 4 * sz.repeats))
    mm_m = matmul_rate(be, (d, d), (d, m), repeats=max(5, sz.repeats))
    lr = 1e-3
    gd_steps = 20
    rows = []
    for N in sz.w1_depths:
        Ws = tuple(be.asarray(rng.standard_normal((d, d)) / math.sqrt(d)) for _ in range(N))
        n_mm = 3 * N - 2  # prefixes N-1, backward N-1, gradients N-1, the loss's E Lxx 1
        flops = n_mm * 2.0 * d**3
        raw_flops = (3 * N - 1) * 2.0 * d * d * m

        def engine_fresh(Ws=Ws):
            _, G = _step.value_and_grads(loss, Ws, False, xp)
            return tuple(W - lr * g for W, g in zip(Ws, G))

        Wi = tuple(xp.asarray(W, copy=True) for W in Ws)
        Gi = tuple(xp.zeros_like(W) for W in Ws)

        def step(Wi=Wi, Gi=Gi):  # train.gd's inner step: update fused in place, reused gradient buffers
            return _step.value_and_grads(loss, Wi, False, xp, out=Gi, update=(lr, Wi), fast_value=True)

        def kernel(Ws=Ws, Gi=Gi):
            return _step.value_and_grads(loss, Ws, False, xp, out=Gi, fast_value=True)

        def kernel_4m(Ws=Ws, Gi=Gi):  # the same statistics from 4m samples
            return _step.value_and_grads(loss4, Ws, False, xp, out=Gi, fast_value=True)

        def raw(Ws=Ws):
            H = [Xb]
            for W in Ws:
                H.append(xp.matmul(W, H[-1]))
            R = H[-1] - Yb
            _ = 0.5 * xp.sum(R * R) / m
            D = R / m
            G = [None] * len(Ws)
            for j in range(len(Ws), 0, -1):
                G[j - 1] = xp.matmul(D, H[j - 1].mT)
                if j > 1:
                    D = xp.matmul(Ws[j - 1].mT, D)
            return tuple(W - lr * g for W, g in zip(Ws, G))

        A_mm, B_mm = Ws[0], Ws[-1]
        C_mm = xp.empty_like(A_mm)
        pool = [be.asarray(rng.standard_normal((d, d))) for _ in range(2 * N + 2)]
        outs = [xp.empty_like(A_mm) for _ in range(N + 1)]

        def mm_hot(n_mm=n_mm, A=A_mm, B=B_mm, C=C_mm):
            for _ in range(n_mm):
                be.matmul_into(A, B, C)

        def mm_distinct(n_mm=n_mm, pool=pool, outs=outs):
            k = len(pool)
            for i in range(n_mm):
                be.matmul_into(pool[(2 * i) % k], pool[(2 * i + 1) % k], outs[i % len(outs)])

        def mm_fresh(n_mm=n_mm, A=A_mm, B=B_mm):
            for _ in range(n_mm):
                xp.matmul(A, B)

        fns = {
            "step": step,
            "kernel": kernel,
            "engine_fresh": engine_fresh,
            "mm_hot": mm_hot,
            "mm_distinct": mm_distinct,
            "mm_fresh": mm_fresh,
            "kernel_4m": kernel_4m,
            "raw_data": raw,
        }
        tgd = _train_gd(loss, lr)
        if tgd is not None:
            fns["train_gd"] = lambda Ws=Ws, tgd=tgd: tgd(Ws, gd_steps)
        r = race(fns, repeats=sz.repeats * (4 if N <= 4 else 2), sync=be.sync)
        mem = {}
        with be.peak_memory(mem):
            step()
        best = {k: v["best_s"] for k, v in r.items()}
        if "train_gd" in best:
            best["train_gd"] /= gd_steps
        t = best["step"]
        fractions = {
            f"{v}_of_{b}": best[b] / best[v]
            for v in ("step", "kernel", "engine_fresh", "train_gd")
            if v in best
            for b in ("mm_hot", "mm_distinct", "mm_fresh")
        }
        rows.append(
            {
                "depth": N,
                "time_per_step_s": t,
                "gflops": flops / t / 1e9,
                "gflops_mm_hot": flops / best["mm_hot"] / 1e9,
                "fraction_of_matmul": best["mm_hot"] / t,
                "fractions": fractions,
                "kernel_time_s": best["kernel"],
                "engine_fresh_time_s": best["engine_fresh"],
                "m_independence_ratio": best["kernel_4m"] / best["kernel"],
                "raw_data_time_s": best["raw_data"],
                "raw_data_gflops": raw_flops / best["raw_data"] / 1e9,
                "speedup_vs_raw_data": best["raw_data"] / t,
                "train_gd_time_per_step_s": best.get("train_gd"),
                "peak_bytes": mem["peak_bytes"],
                "timings": r,
            }
        )
    return {
        "width": d,
        "m": m,
        "flops_counted": "(3N-2) products of d x d matrices: prefixes, backward recursion, gradients, E Lxx",
        "fraction_of_matmul": "time of (3N-2) back-to-back matmuls (mm_hot: out=, same operands) / time of one "
        "step (loss, gradients, update fused in place), interleaved in the same run; 'fractions' against every "
        "baseline",
        "matmul_same_size": mm,
        "matmul_d_by_m": mm_m,
        "rows": rows,
    }


# ---------------------------------------------------------------------------------------------------------------
# W2: an ensemble of small nets
# ---------------------------------------------------------------------------------------------------------------


def _w2_problem(be: Backend, B: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    d, N = 8, 4
    Q = np.linalg.qr(rng.standard_normal((d, d)))[0]
    Phi = Q * np.linspace(0.5, 1.5, d)
    Ws = tuple(be.asarray(rng.standard_normal((B, d, d)) * (0.9 / math.sqrt(d))) for _ in range(N))
    return ln.SquaredLoss.whitened(be.asarray(Phi)), Ws, Phi


def _plain_batched(be: Backend, Phi, lr):
    """The closed form written the obvious way with stacked matmul (suffixes, two-sided pullback, ``.mT``)."""
    xp = be.xp
    Phib = be.asarray(Phi)

    def run(Ws, steps):
        N = len(Ws)
        for _ in range(steps):
            P = [None, Ws[0]]
            for j in range(1, N):
                P.append(xp.matmul(Ws[j], P[-1]))
            G = P[-1] - Phib
            _ = 0.5 * xp.sum(G * G, axis=(-2, -1))
            S = [None] * (N + 1)
            for j in range(N, 1, -1):
                S[j - 1] = Ws[j - 1] if S[j] is None else xp.matmul(S[j], Ws[j - 1])
            grads = []
            for j in range(1, N + 1):
                Lj = G if S[j] is None else xp.matmul(S[j].mT, G)
                grads.append(Lj if P[j - 1] is None else xp.matmul(Lj, P[j - 1].mT))
            Ws = tuple(W - lr * g for W, g in zip(Ws, grads))
        return Ws

    return run


def _python_loop(Phi, lr):
    """A Python loop over the nets, NumPy 2-D matmuls per net (host)."""

    def run(Ws_host, steps):
        out = []
        for k in range(Ws_host[0].shape[0]):
            Ws = [W[k] for W in Ws_host]
            N = len(Ws)
            for _ in range(steps):
                P = [None, Ws[0]]
                for j in range(1, N):
                    P.append(Ws[j] @ P[-1])
                G = P[-1] - Phi
                _ = 0.5 * float(np.sum(G * G))
                grads, L = [None] * N, G
                for j in range(N, 0, -1):
                    grads[j - 1] = L if j == 1 else L @ P[j - 1].T
                    if j > 1:
                        L = Ws[j - 1].T @ L
                Ws = [W - lr * g for W, g in zip(Ws, grads)]
            out.append(Ws)
        return out

    return run


@workload("W2", cost="light")
def w2(be: Backend, sz: Sizes) -> dict:
    """B nets (depth 4, width 8) on one shared whitened problem: GD net·steps per second, memory."""
    xp = be.xp
    B, lr, k = sz.w2_batch, 0.05, sz.w2_chunk
    loss, Ws0, Phi = _w2_problem(be, B)
    flops_net_step = 9 * 2.0 * 8**3  # 3(N-1) products of 8x8 matrices
    engine = _gd_loop(loss, False, xp, lr)
    plain = _plain_batched(be, Phi, lr)
    Wi = tuple(xp.asarray(W, copy=True) for W in Ws0)
    Gi = tuple(xp.zeros_like(W) for W in Ws0)

    def engine_inplace():  # caller-owned gradient buffers (out=) and in-place updates: no fresh arrays per step
        for _ in range(k):
            _, G = _step.value_and_grads(loss, Wi, False, xp, out=Gi)
            for W, g in zip(Wi, G):
                g *= lr
                W -= g

    fns = {"engine": lambda: engine(Ws0, k), "engine_inplace": engine_inplace, "plain_batched": lambda: plain(Ws0, k)}
    tgd = _train_gd(loss, lr)
    if tgd is not None:
        fns["train_gd"] = lambda: tgd(Ws0, k)
        # the other descent loops users run: heavy ball, and gd with a gradient-norm stopping test
        # (beta = 0.5: with 0.9 at this lr some nets diverge, and the windows they diverge in are replayed)
        fns["train_momentum"] = lambda: ln.train.momentum(loss, Ws0, lr=lr, beta=0.5, steps=k, record_every=k)
        fns["train_gd_gtol"] = lambda: ln.train.gd(loss, Ws0, lr=lr, steps=k, record_every=k, gtol=1e-12)
        # SGD needs data: 256 whitened-ish samples of the same map, minibatches of 32 (the same for every net)
        rng = np.random.default_rng(5)
        Xs = rng.standard_normal((8, 256))
        data_loss = ln.SquaredLoss.from_data(be.asarray(Xs), be.asarray(Phi @ Xs))
        fns["train_sgd"] = lambda: ln.train.sgd(data_loss, Ws0, lr=lr, batch_size=32, steps=k, record_every=k, seed=0)
        # a learning-rate sweep in which 1/16 of the nets diverge at scattered steps, and the same without
        lr_flat = np.full(B, lr)
        lr_sweep = lr_flat.copy()
        lr_sweep[: B // 16] = np.linspace(lr, 1.0, B // 16)
        lr_flat_b, lr_sweep_b = be.asarray(lr_flat), be.asarray(lr_sweep)
        fns["train_gd_lrs"] = lambda: ln.train.gd(loss, Ws0, lr=lr_flat_b, steps=k, record_every=k)
        fns["train_gd_sweep"] = lambda: ln.train.gd(loss, Ws0, lr=lr_sweep_b, steps=k, record_every=k)
    reps = max(2, sz.w2_steps // k)
    r = race(fns, repeats=reps, sync=be.sync)
    ns = {name: B * k / v["best_s"] for name, v in r.items()}
    ns_median = {name: B * k / v["median_s"] for name, v in r.items()}

    # Python loop over a few nets (host NumPy), scaled per net·step
    host = [np.asarray(ln._backend.to_numpy(W[: sz.w2_loop_nets, ...])) for W in Ws0]
    loop = _python_loop(Phi, lr)
    steps_loop = 5
    rl = race({"python_loop": lambda: loop(host, steps_loop)}, repeats=sz.repeats)["python_loop"]
    ns["python_loop"] = sz.w2_loop_nets * steps_loop / rl["best_s"]

    mm = matmul_rate(be, (B, 8, 8), (B, 8, 8), repeats=max(10, 2 * sz.repeats))
    # thread scaling of the engine (NumPy only): one thread vs all usable cores
    scaling = None
    if not be.gpu:
        _fastpaths.set_num_threads(1)
        try:
            r1 = race({"engine_1_thread": lambda: engine(Ws0, k)}, repeats=max(2, reps // 2))
        finally:
            _fastpaths.set_num_threads(None)
        scaling = {
            "threads": _fastpaths.usable_cores(),
            "one_thread_net_steps_per_s": B * k / r1["engine_1_thread"]["best_s"],
        }

    # sanity: the engine really descends
    W_end = engine(Ws0, 20)
    L0 = float(np.max(ln._backend.to_numpy(_step.values(loss, Ws0, False, xp))))
    L1 = float(np.max(ln._backend.to_numpy(_step.values(loss, W_end, False, xp))))

    extras = {}
    Ws_host_full = [np.asarray(ln._backend.to_numpy(W)) for W in Ws0]
    arrays = {"Phi": np.asarray(ln._backend.to_numpy(Phi))} | {f"W{j}": W for j, W in enumerate(Ws_host_full)}
    for name in ("torch", "jax"):
        col = extra_column(f"{name}_w2", arrays, {"lr": lr, "steps": k, "repeats": max(2, reps // 4)})
        if col is not None:
            if "best_s_per_step" in col:
                col["net_steps_per_s"] = B / col["best_s_per_step"]
            extras[name] = col

    return {
        "batch": B,
        "depth": 4,
        "width": 8,
        "steps_timed_per_variant": k * reps,
        "net_steps_per_s": ns,
        "speedup_vs_plain_batched": ns["engine"] / ns["plain_batched"],
        "speedup_vs_plain_batched_medians": ns_median["engine"] / ns_median["plain_batched"],
        "inplace_speedup_vs_plain_batched": ns["engine_inplace"] / ns["plain_batched"],
        "speedup_vs_python_loop": ns["engine"] / ns["python_loop"],
        "train_gd_speedup_vs_plain_batched": ns["train_gd"] / ns["plain_batched"] if "train_gd" in ns else None,
        "gflops": ns["engine"] * flops_net_step / 1e9,
        "flops_counted": "9 products of 8x8 matrices per net and step",
        "matmul_same_size": mm,
        "fraction_of_stacked_matmul": ns["engine"] * flops_net_step / 1e9 / mm["gflops"],
        "thread_scaling": scaling,
        "loss_max_before_after_20_steps": [L0, L1],
        "extra_columns": extras,
        "memory": w2_memory(be, sz),
        "timings": r,
    }


def w2_memory(be: Backend, sz: Sizes) -> dict:
    """Peak memory of W2 at a large batch, and allocation growth over many steps."""
    xp, lr = be.xp, 0.05
    out = {"big_batch": sz.w2_big_batch}
    loss, Ws, _ = _w2_problem(be, sz.w2_big_batch, seed=1)
    engine = _gd_loop(loss, False, xp, lr)
    engine(Ws, 1)
    weights_bytes = sum(int(np.prod(W.shape)) * 8 for W in Ws)
    m = {}
    with be.peak_memory(m):
        engine(Ws, 5)
    out["engine_peak_bytes"] = m["peak_bytes"]
    out["weights_bytes"] = weights_bytes
    tgd = _train_gd(loss, lr)
    if tgd is not None:
        m2 = {}
        with be.peak_memory(m2):
            tgd(Ws, 5)
        out["train_gd_peak_bytes"] = m2["peak_bytes"]
    del Ws
    # growth: heap in use after a warm-up vs after many more steps (host NumPy; on GPU the pool's held bytes)
    loss, Ws, _ = _w2_problem(be, sz.w2_growth_batch, seed=2)
    engine = _gd_loop(loss, False, xp, 1e-3)
    n = sz.w2_growth_steps
    if be.gpu:  # pragma: no cover - GPU only
        pool = be._cp.get_default_memory_pool()
        Ws = engine(Ws, 100)
        be.sync()
        a = pool.used_bytes()
        Ws = engine(Ws, n)
        be.sync()
        out.update(growth_steps=n, growth_bytes=int(pool.used_bytes() - a), growth_method="cupy pool used bytes")
        return out
    tracemalloc.start()
    try:
        Ws = engine(Ws, 100)
        a = tracemalloc.get_traced_memory()[0]
        Ws = engine(Ws, n)
        b = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    out.update(growth_steps=n, growth_batch=sz.w2_growth_batch, growth_bytes=int(b - a), growth_method="tracemalloc")
    return out


# ---------------------------------------------------------------------------------------------------------------
# W3: curvature
# ---------------------------------------------------------------------------------------------------------------


def _w3_problem(be: Backend, d: int, batch=()):
    rng = np.random.default_rng(3)
    X = be.asarray(rng.standard_normal((d, 4 * d)))
    Y = be.asarray(rng.standard_normal((d, 4 * d)))
    loss = ln.SquaredLoss.from_data(X, Y)
    Ws = ln.init.gaussian((d,) * 4, scale=0.6 / math.sqrt(d), batch=batch, seed=4, xp=be.xp)
    return loss, Ws


@workload("W3", cost="heavy")
def w3(be: Backend, sz: Sizes) -> dict:
    """Dense Hessian (depth 3, widths d: 3 d^2 parameters) and its top eigenvalue by eigsh on exact HVPs."""
    from linnet.backend import to_numpy

    d = sz.w3_width
    loss, Ws = _w3_problem(be, d)
    P = ln.num_params(Ws)
    widths = (d,) * 4

    def column_loop():
        E = np.eye(P)
        return [ln.hvp(loss, Ws, ln.unflatten(be.asarray(E[k]), widths)) for k in range(P)]

    def fd_grads():  # central differences of the exact gradient, h ~ eps^(1/3)
        th = to_numpy(ln.flatten(Ws))
        h = 1e-5
        cols = []
        for k in range(P):
            e = np.zeros(P)
            e[k] = h
            gp = ln.grad(loss, ln.unflatten(be.asarray(th + e), widths))
            gm = ln.grad(loss, ln.unflatten(be.asarray(th - e), widths))
            cols.append((to_numpy(ln.flatten(gp)) - to_numpy(ln.flatten(gm))) / (2 * h))
        return np.stack(cols, axis=1)

    H = to_numpy(ln.hessian(loss, Ws))
    w = np.linalg.eigvalsh(H)
    top = float(w[-1])
    r = race(
        {"hessian": lambda: ln.hessian(loss, Ws), "hvp_column_loop": column_loop},
        repeats=sz.repeats,
        sync=be.sync,
    )
    rfd = race({"finite_differences": fd_grads}, repeats=1, sync=be.sync)
    H_fd = fd_grads()
    eig = {}
    if not be.gpu:
        res = _fastpaths.top_eigenvalue(loss, Ws)
        re = race({"eigsh_lean_hvp": lambda: _fastpaths.top_eigenvalue(loss, Ws)}, repeats=4 * sz.repeats)
        rd = race({"eigvalsh_dense": lambda: np.linalg.eigvalsh(to_numpy(ln.hessian(loss, Ws)))}, repeats=sz.repeats)
        eig = {
            "value": res.value,
            "dense_reference": top,
            "rel_error": abs(res.value - top) / abs(top),
            "n_hvp": res.n_hvp,
            "time_s": re["eigsh_lean_hvp"]["best_s"],
            "dense_hessian_plus_eigvalsh_s": rd["eigvalsh_dense"]["best_s"],
        }
    extra = {}
    if not be.gpu:
        rng = np.random.default_rng(3)  # the data of _w3_problem, on the host
        Xh, Yh = rng.standard_normal((d, 4 * d)), rng.standard_normal((d, 4 * d))
        arrays = {"X": Xh, "Y": Yh, "H": H} | {f"W{j}": to_numpy(W) for j, W in enumerate(Ws)}
        col = extra_column("torch_w3", arrays, {"repeats": sz.repeats})
        if col is not None:
            extra["torch_hessian"] = col
    # batched over many nets: dense Hessians in chunks, top eigenvalue per net
    lossb, Wsb = _w3_problem(be, d, batch=(sz.w3_batch,))
    c = sz.w3_chunk

    def hess_batched():
        for i in range(0, sz.w3_batch, c):
            ln.hessian(lossb, tuple(W[i : i + c, ...] for W in Wsb))

    rb = race({"hessian_batched": hess_batched}, repeats=max(1, sz.repeats // 2), sync=be.sync)
    batched = {"nets": sz.w3_batch, "chunk": c, "hessian_time_per_net_s": rb["hessian_batched"]["best_s"] / sz.w3_batch}
    if not be.gpu:
        t0 = time.perf_counter()
        counts = [_fastpaths.top_eigenvalue(lossb, tuple(W[i, ...] for W in Wsb)).n_hvp for i in range(sz.w3_batch)]
        batched["eigsh_time_per_net_s"] = (time.perf_counter() - t0) / sz.w3_batch
        batched["eigsh_max_hvp"] = int(max(counts))
    return {
        "params": P,
        "hessian_time_s": r["hessian"]["best_s"],
        "hvp_column_loop_time_s": r["hvp_column_loop"]["best_s"],
        "finite_differences_time_s": rfd["finite_differences"]["best_s"],
        "finite_differences_rel_error": float(np.linalg.norm(H_fd - H) / np.linalg.norm(H)),
        "speedup_vs_column_loop": r["hvp_column_loop"]["best_s"] / r["hessian"]["best_s"],
        "top_eigenvalue": eig,
        "batched": batched,
        "extra_columns": extra,
    }


# ---------------------------------------------------------------------------------------------------------------
# W4: gradient flow
# ---------------------------------------------------------------------------------------------------------------


@workload("W4", cost="heavy")
def w4(be: Backend, sz: Sizes) -> dict:
    """The adaptive integrator on a W2-sized ensemble to a fixed time; baseline: scipy RK45 on the whole batch."""
    train = getattr(ln, "train", None)
    if train is None or not hasattr(train, "gradient_flow"):
        return {"skipped": "linnet.train.gradient_flow is not available"}
    from scipy.integrate import solve_ivp

    from linnet.backend import to_numpy

    B, T = sz.w4_batch, sz.w4_t
    loss, Ws, Phi = _w2_problem(be, B, seed=5)
    rtol, atol = 1e-8, 1e-10

    def linnet_flow():
        return train.gradient_flow(loss, Ws, t_final=T, rtol=rtol, atol=atol)

    host = [to_numpy(W) for W in Ws]
    shapes = [W.shape for W in host]
    sizes = [W.size for W in host]
    nfev = {"n": 0}

    def rhs(t, y):
        nfev["n"] += 1
        parts, k = [], 0
        for s, n in zip(shapes, sizes):
            parts.append(y[k : k + n].reshape(s))
            k += n
        P = [parts[0]]
        for W in parts[1:]:
            P.append(W @ P[-1])
        L = P[-1] - Phi
        out, Lj = [None] * len(parts), L
        for j in range(len(parts), 0, -1):
            out[j - 1] = Lj if j == 1 else Lj @ np.swapaxes(P[j - 2], -1, -2)
            if j > 1:
                Lj = np.swapaxes(parts[j - 1], -1, -2) @ Lj
        return -np.concatenate([o.reshape(-1) for o in out])

    y0 = np.concatenate([W.reshape(-1) for W in host])

    def scipy_rk45():
        nfev["n"] = 0
        return solve_ivp(rhs, (0.0, T), y0, method="RK45", rtol=rtol, atol=atol)

    r = race(
        {"linnet_gradient_flow": linnet_flow, "scipy_rk45_whole_batch": scipy_rk45}, repeats=max(1, sz.repeats // 2)
    )
    sol = scipy_rk45()
    traj = linnet_flow()
    Wl = [to_numpy(W) for W in traj.weights]
    k, diff = 0, 0.0
    for W, n in zip(Wl, sizes):
        diff = max(diff, float(np.max(np.abs(W.reshape(-1) - sol.y[k : k + n, -1]))))
        k += n
    return {
        "batch": B,
        "t_final": T,
        "rtol": rtol,
        "atol": atol,
        "linnet_time_s": r["linnet_gradient_flow"]["best_s"],
        "scipy_time_s": r["scipy_rk45_whole_batch"]["best_s"],
        "speedup_vs_scipy": r["scipy_rk45_whole_batch"]["best_s"] / r["linnet_gradient_flow"]["best_s"],
        "net_time_units_per_s": B * T / r["linnet_gradient_flow"]["best_s"],
        "scipy_nfev": int(sol.nfev),
        "max_abs_difference_final_weights": diff,
    }


@workload("W6", cost="light")
def w6(be: Backend, sz: Sizes) -> dict:
    """Sharpness along a trajectory: one depth-3 net of width 10 trained by GD, with and without the
    top Hessian eigenvalue recorded every 10 steps (exact HVPs, warm-started); the target is observed run time
    <= 5x the GD steps it observes... measured as (observed - plain) / plain."""
    steps = 100 if sz.quick else 1000
    rng = np.random.default_rng(0)
    Phi = be.asarray(rng.standard_normal((10, 10)) / 3)
    loss = ln.SquaredLoss.whitened(Phi)
    Ws = ln.init.gaussian((10, 10, 10, 10), scale=0.3, seed=1, xp=be.xp)
    every = 10

    def plain():
        return ln.train.gd(loss, Ws, lr=0.02, steps=steps)

    def observed():
        return ln.train.gd(loss, Ws, lr=0.02, steps=steps, observe={"sharpness": every})

    r = race({"gd": plain, "gd_sharpness": observed}, repeats=sz.repeats)
    t_gd, t_obs = r["gd"]["best_s"], r["gd_sharpness"]["best_s"]
    return {
        "steps": steps,
        "every": every,
        "gd_time_s": t_gd,
        "gd_sharpness_time_s": t_obs,
        "overhead_over_gd": (t_obs - t_gd) / t_gd,
        "records": steps // every + 1,
    }


# W5 (linnet.sweep in-process vs 2 local workers) lives in sweep_workload.py; registered here.
workload("W5", cost="light")(_sweep_w5)


# ---------------------------------------------------------------------------------------------------------------
# W7: contention (one core kept busy by another process)
# ---------------------------------------------------------------------------------------------------------------


def _spinner():
    """Another process keeping one core busy (a Python busy loop), started here, killed by the caller."""
    import subprocess
    import sys

    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def _numpy_loop_covariance(xp, Sxx, Syx, lr):
    """The closed form written the obvious way for one net on a loss from data (its covariances ``Sxx``,
    ``Syx``): prefixes, ``G = W_e Sxx - Syx``, a backward recursion with ``.mT``, ``W - lr * g``; 2-D ``@``."""

    def run(Ws, steps):
        N = len(Ws)
        for _ in range(steps):
            P = [Ws[0]]
            for W in Ws[1:]:
                P.append(W @ P[-1])
            G = P[-1] @ Sxx - Syx
            grads, L = [None] * N, G
            for j in range(N, 0, -1):
                grads[j - 1] = L if j == 1 else L @ P[j - 2].mT
                if j > 1:
                    L = Ws[j - 1].mT @ L
            Ws = tuple(W - lr * g for W, g in zip(Ws, grads))
        return Ws

    return run


_W7_HASWELL_CHILD = r"""
import json, sys, time
import numpy as np
import linnet as ln
from linnet._fastpaths import threads
from benchmarks._harness import Backend, race
from benchmarks.workloads import Sizes, _plain_batched, _w2_problem, _w7_rows
p = json.loads(sys.argv[1])
be = Backend("numpy")
single = _w7_rows(be, Sizes(p["quick"], False))
B, k, lr = p["batch"], p["steps"], 0.05
loss, Ws, Phi = _w2_problem(be, B)
plain = _plain_batched(be, Phi, lr)
def gd(n):
    def f():
        ln.set_num_threads(n)
        try:
            ln.train.gd(loss, Ws, lr=lr, steps=k, record_every=k)
        finally:
            ln.set_num_threads(None)
    return f
fns = {"train_gd_default": gd(None), "train_gd_1_thread": gd(1), "train_gd_2_threads": gd(2),
       "plain_batched": lambda: plain(Ws, k)}
r = race(fns, repeats=p["repeats"])
try:
    from threadpoolctl import threadpool_info
    blas = [{q: d.get(q) for q in ("internal_api", "version", "num_threads", "architecture")}
            for d in threadpool_info() if d.get("user_api") == "blas"]
except ImportError:
    blas = None
out = {"single_net": single, "batch": B, "blas": blas, "plans": {str(key): v for key, v in threads.plans().items()},
       "net_steps_per_s": {n: B * k / v["best_s"] for n, v in r.items()}}
print(json.dumps(out))
"""


def _w7_haswell(sz: Sizes) -> dict:
    """In a child process with ``OPENBLAS_CORETYPE=Haswell`` (OpenBLAS's AVX2 kernels, no small-matrix path):
    the single-net rows of W7, then W2's ensemble: train.gd with the default pool size, 1 and 2 threads, and
    plain batched NumPy."""
    import json
    import os
    import pathlib
    import subprocess
    import sys

    root = str(pathlib.Path(__file__).resolve().parents[1])
    env = dict(os.environ, OPENBLAS_CORETYPE="Haswell")
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("LINNET_NUM_THREADS", None)
    params = {
        "batch": sz.w7_haswell_batch,
        "steps": sz.w7_haswell_steps,
        "repeats": sz.w7_haswell_repeats,
        "quick": sz.quick,
    }
    try:
        cp = subprocess.run(
            [sys.executable, "-c", _W7_HASWELL_CHILD, json.dumps(params)],
            env=env,
            cwd=root,
            capture_output=True,
            text=True,
            timeout=600,
        )
    except subprocess.TimeoutExpired:
        return {"error": "timed out"}
    if cp.returncode != 0:
        return {"error": cp.stderr.strip().splitlines()[-1] if cp.stderr.strip() else f"exit {cp.returncode}"}
    out = json.loads(cp.stdout.strip().splitlines()[-1])
    ns = out["net_steps_per_s"]
    out["default_over_plain"] = ns["train_gd_default"] / ns["plain_batched"]
    out["default_over_best_fixed"] = ns["train_gd_default"] / max(ns["train_gd_1_thread"], ns["train_gd_2_threads"])
    return out


def _w7_rows(be: Backend, sz: Sizes) -> list:
    """Per depth, ms per GD step of linnet and of the NumPy loop (interleaved), their ratio and weights gap."""
    xp, d, m, lr = be.xp, 100, 400, 1e-3
    k = sz.w7_steps
    rng = np.random.default_rng(7)
    X = rng.standard_normal((d, m))
    Y = rng.standard_normal((d, d)) @ X / math.sqrt(d) + 0.1 * rng.standard_normal((d, m))
    loss = ln.SquaredLoss.from_data(be.asarray(X), be.asarray(Y))
    Sxx, Syx = be.asarray(X @ X.T / m), be.asarray(Y @ X.T / m)
    plain = _numpy_loop_covariance(xp, Sxx, Syx, lr)
    limit = None
    if be.name == "numpy":
        try:
            from threadpoolctl import threadpool_limits as limit
        except ImportError:  # pragma: no cover
            limit = None
    rows = []
    for N in sz.w7_depths:
        Ws = tuple(be.asarray(rng.standard_normal((d, d)) / math.sqrt(d)) for _ in range(N))
        fns = {
            "linnet_gd": lambda Ws=Ws: ln.train.gd(loss, Ws, lr=lr, steps=k, record_every=k),
            "numpy_loop": lambda Ws=Ws: plain(Ws, k),
            "linnet_gd_0_steps": lambda Ws=Ws: ln.train.gd(loss, Ws, lr=lr, steps=0),  # a call's fixed cost
        }

        def linnet_without_rule_3(Ws=Ws):  # BLAS threads left as set (linnet._fastpaths.threads, rule 3 off)
            was, _fastpaths.threads.BLAS_SMALL_MNK = _fastpaths.threads.BLAS_SMALL_MNK, 0
            try:
                return ln.train.gd(loss, Ws, lr=lr, steps=k, record_every=k)
            finally:
                _fastpaths.threads.BLAS_SMALL_MNK = was

        fns["linnet_gd_blas_threads_as_set"] = linnet_without_rule_3
        if limit is not None:

            def numpy_1_blas(Ws=Ws):
                with limit(1, user_api="blas"):
                    return plain(Ws, k)

            fns["numpy_loop_1_blas_thread"] = numpy_1_blas
        r = race(fns, repeats=sz.w7_repeats, sync=be.sync)
        overhead = r.pop("linnet_gd_0_steps")["best_s"]
        per = {n: v["best_s"] / k for n, v in r.items()}
        med = {n: v["median_s"] / k for n, v in r.items()}
        W_lin = ln.train.gd(loss, Ws, lr=lr, steps=k, record_every=k).weights
        W_np = plain(Ws, k)
        diff = max(float(np.max(np.abs(ln.backend.to_numpy(a) - ln.backend.to_numpy(b)))) for a, b in zip(W_lin, W_np))
        one = per.get("numpy_loop_1_blas_thread")
        rows.append(
            {
                "depth": N,
                "time_per_step_s": per,
                "median_time_per_step_s": med,
                "linnet_over_numpy": per["linnet_gd"] / per["numpy_loop"],
                "linnet_over_numpy_medians": med["linnet_gd"] / med["numpy_loop"],
                "linnet_over_numpy_1_blas": None if one is None else per["linnet_gd"] / one,
                "rule_3_speedup": per["linnet_gd_blas_threads_as_set"] / per["linnet_gd"],
                "call_overhead_s": overhead,
                "max_abs_difference_weights": diff,
            }
        )
    return {"width": d, "samples": m, "steps_per_call": k, "rows": rows}


@workload("W7", cost="light")
def w7(be: Backend, sz: Sizes) -> dict:
    """Contention: one net of width 100 and depth 2, 3, 4 (a squared loss from 400 samples), another process
    keeping one core busy. Per GD step, interleaved in the same run: :func:`linnet.train.gd` (default threads)
    against a plain NumPy loop of the same closed form (default BLAS threads, and capped at one BLAS thread by
    threadpoolctl where installed); the ratio linnet / NumPy (target <= 1). Then the same, and W2's ensemble,
    under ``OPENBLAS_CORETYPE=Haswell`` in a child process (NumPy backend only), still under contention."""
    from ._harness import _cpu_model

    spin = _spinner()
    try:
        time.sleep(0.2)  # let the spinner take its core
        out = _w7_rows(be, sz)
        haswell = _w7_haswell(sz) if be.name == "numpy" else {"skipped": "NumPy backend only"}
    finally:
        spin.kill()
        spin.wait()
    return out | {
        "cpu_model": _cpu_model(),
        "usable_cores": _fastpaths.usable_cores(),
        "busy_cores_added": 1,
        "spinner_pid": spin.pid,
        "haswell": haswell,
    }
