"""linnet.sweep in-process: spec validation, seeding independent of chunking, resume, refusal, columns vs references."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")

import linnet as ln  # noqa: E402
import linnet.sweep as sw  # noqa: E402
from linnet.sweep import api as sweep_api  # noqa: E402
from linnet.sweep.seeding import run_rng  # noqa: E402

SPEC = {
    "seed": 3,
    "runs": 7,
    "summaries": ["init_margin", "final_sigma_min"],
    "problem": {"loss": "whitened", "d_in": 3, "d_out": 1},
    "grid": {"depth": [2, 3], "init": ["gaussian", "balanced"], "scale": [0.2, 1.5]},
    "train": {"steps": 200, "tol": 1e-6},
}


@pytest.fixture(scope="module")
def ref():
    return sw.run(SPEC, chunk_size=7, progress=False).table


# --------------------------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------------------------
BAD = [
    ({"colour": 1}, "`colour`"),
    ({"runs": 0}, "`runs`"),
    ({"runs": -3}, "`runs`"),
    ({"seed": -1}, "`seed`"),
    ({"grid": {"depht": [2]}}, "`grid.depht`"),
    ({"grid": {"depth": []}}, "`grid.depth`"),
    ({"grid": {"depth": [0]}}, "`grid.depth`"),
    ({"grid": {"width": [-2]}}, "`grid.width`"),
    ({"grid": {"init": ["xavier"]}}, "`grid.init`"),
    ({"grid": {"lr": [0.0]}}, "`grid.lr`"),
    ({"grid": {"lr": [-0.1]}}, "`grid.lr`"),
    ({"grid": {"scale": [float("nan")]}}, "`grid.scale`"),
    ({"grid": {"init": ["balanced"], "width": [1]}, "problem": {"d_in": 3, "d_out": 2}}, "`grid.width`"),
    ({"problem": {"loss": "hinge"}}, "`problem.loss`"),
    ({"problem": {"d_in": 0}}, "`problem.d_in`"),
    ({"problem": {"n_sample": 3}}, "`problem.n_sample`"),
    ({"train": {"steps": 0}}, "`train.steps`"),
    ({"train": {"optimizer": "adam"}}, "`train.optimizer`"),
    ({"train": {"tol": 0}}, "`train.tol`"),
    ({"train": {"beta": 1.0}}, "`train.beta`"),
    ({"train": {"backend": "torch"}}, "`train.backend`"),
    ({"summaries": ["nope"]}, "`summaries`"),
    ({"sample": {"n": 4}}, "`sample`"),
    ({"sample": {"n": 0, "scale": [0.1, 1.0]}}, "`sample.n`"),
    ({"sample": {"n": 4, "scale": [1.0, 0.1]}}, "`sample.scale`"),
    ({"sample": {"n": 4, "method": "sobol", "scale": [0.1, 1.0]}}, "`sample.method`"),
    ({"sample": {"n": 4, "scale": [0.1, 1.0]}, "grid": {"scale": [0.1]}}, "`grid.scale`"),
]


@pytest.mark.parametrize("patch, key", BAD, ids=[k for _, k in BAD])
def test_bad_spec_names_the_key_before_any_work(patch, key, monkeypatch):
    """A bad spec raises ValueError naming its key, and no backend is even created."""
    made = []
    monkeypatch.setattr(sweep_api, "make_backend", lambda **kw: made.append(kw))
    spec = {**SPEC, **patch}
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        sw.run(spec, progress=False)
    assert made == []


def test_good_spec_counts():
    s = sw.load_spec(SPEC)
    assert len(s.cells) == 8 and s.n_runs == 56
    assert [c.index for c in s.cells] == list(range(8))
    assert s.widths(s.cells[-1]) == (3, 4, 4, 1)


@pytest.mark.parametrize("method", ["random", "lhs"])
def test_samples_in_range_and_reproducible(method):
    spec = {"runs": 1, "sample": {"method": method, "n": 10, "scale": [0.01, 1.0], "log": True}}
    a, b = sw.load_spec(spec), sw.load_spec(spec)
    scales = np.array([c.scale for c in a.cells])
    assert np.array_equal(scales, [c.scale for c in b.cells])
    assert np.all((scales >= 0.01) & (scales <= 1.0))
    if method == "lhs":  # one point per stratum of log-scale
        strata = np.floor((np.log(scales) - np.log(0.01)) / (np.log(100.0) / 10)).astype(int)
        assert sorted(strata) == list(range(10))


# --------------------------------------------------------------------------------------------------------------
# determinism: the table does not depend on the chunking
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("chunk_size", [1, 3, 100])
def test_table_independent_of_chunk_size(ref, chunk_size):
    pd.testing.assert_frame_equal(sw.run(SPEC, chunk_size=chunk_size, progress=False).table, ref)


MIXED = {
    "seed": 5,
    "runs": 5,
    "problem": {"loss": "squared", "d_in": 3, "d_out": 2, "n_samples": 20, "noise": 0.05},
    "grid": {"depth": [1, 2, 4], "width": [1, 3], "init": ["gaussian", "orthogonal", "balanced", "identity"]},
    "sample": {"method": "lhs", "n": 2, "scale": [0.05, 0.8], "log": True},
    "train": {"optimizer": "momentum", "beta": 0.5, "steps": 60, "tol": 1e-4},
}


def test_every_init_optimizer_and_sampling_independent_of_chunks():
    """Squared loss with a bottleneck, depth 1 to 4, all inits, momentum, LHS scales: chunking changes nothing."""
    bad = {**MIXED, "grid": {**MIXED["grid"], "width": [1]}}
    with pytest.raises(ValueError, match="`grid.width`"):  # balanced init needs width >= min(d_in, d_out) = 2
        sw.load_spec(bad)
    spec = {**MIXED, "grid": {**MIXED["grid"], "width": [2, 3]}}
    a = sw.run(spec, chunk_size=2, progress=False).table
    b = sw.run(spec, chunk_size=5, progress=False).table
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == 3 * 2 * 4 * 2 * 5 and set(a["init"]) == {"gaussian", "orthogonal", "balanced", "identity"}
    assert (a["gap"] > -1e-9).all()
    # momentum wiring: a run that used all 60 steps against ln.train.momentum on the same net
    s = sw.load_spec(spec)
    row = a[(a["status"] == "max_steps") & (a["depth"] == 4) & (a["init"] == "balanced")].iloc[0]
    cell = s.cells[row["cell"]]
    loss, _ = sw.runner.make_problem(s.problem, s.seed)
    W = sw.runner.initial_weights(cell.init, s.widths(cell), cell.scale, run_rng(s.seed, cell.index, row["run"]))
    t = ln.train.momentum(loss, W, lr=cell.lr, beta=0.5, steps=60)
    np.testing.assert_allclose(row["final_loss"], float(ln.loss(loss, t.weights)), rtol=1e-12)
    assert row["final_loss"] > 1.0  # and far from the optimum: a wiring to gd would not match


def test_identity_init_is_identity_plus_scaled_noise():
    s = sw.load_spec({"runs": 1, "grid": {"init": ["identity"], "scale": [0.0]}})
    W = sw.runner.initial_weights("identity", (3, 4, 2), 0.0, run_rng(0, 0, 0))
    assert np.array_equal(W[0], np.eye(4, 3)) and np.array_equal(W[1], np.eye(2, 4))
    W = sw.runner.initial_weights("identity", (3, 4, 2), 0.1, run_rng(0, 0, 0))
    G = ln.init.gaussian((3, 4, 2), 0.1, seed=run_rng(0, 0, 0))
    np.testing.assert_allclose(W[0] - np.eye(4, 3), G[0], rtol=0, atol=1e-15)
    assert len(s.cells) == 1


def test_custom_summary(monkeypatch):
    """A registered summary becomes a column; a name cannot be registered twice."""
    monkeypatch.setitem(
        sw.SUMMARIES, "n_steps_run", lambda ctx: np.full(ctx.trajectory.status.shape, ctx.trajectory.n_steps)
    )
    t = sw.run({"runs": 3, "summaries": ["n_steps_run"], "train": {"steps": 40, "tol": 1e-30}}, progress=False).table
    assert list(t["n_steps_run"]) == [40, 40, 40] and t["n_steps_run"].dtype == np.int64
    with pytest.raises(ValueError, match="already"):
        sw.register("init_margin")(lambda ctx: None)


def test_rows_independent_of_run_count(ref):
    """Run k of cell c is the same row whether the sweep has 7 or 3 runs per cell (seed from (seed, cell, k))."""
    small = sw.run({**SPEC, "runs": 3}, progress=False).table
    pd.testing.assert_frame_equal(small, ref[ref["run"] < 3].reset_index(drop=True))


def test_other_seed_other_table(ref):
    other = sw.run({**SPEC, "seed": 4}, progress=False).table
    assert not np.array_equal(other["final_loss"].to_numpy(), ref["final_loss"].to_numpy())


def test_table_columns_and_dtypes(ref):
    assert list(ref.columns) == list(sw.runner.COLUMNS) + ["init_margin", "final_sigma_min"]
    assert ref["cell"].dtype == np.int64 and ref["steps"].dtype == np.int64
    assert ref["final_loss"].dtype == np.float64
    assert set(ref["status"]) <= {"converged", "max_steps", "diverged"}
    cells = sw.load_spec(SPEC).cells
    for col in ("depth", "width", "init", "scale", "lr"):  # every row carries its cell's configuration
        assert list(ref[col]) == [getattr(cells[c], col) for c in ref["cell"]]
    assert len(ref) == 56 and not ref.duplicated(["cell", "run"]).any()


# --------------------------------------------------------------------------------------------------------------
# columns against independent references
# --------------------------------------------------------------------------------------------------------------
def _plain_gd_depth2(W1, W2, Phi, lr, steps, ftol):
    """Plain NumPy GD on 1/2 ||W2 W1 - Phi||^2: final loss and first step with loss <= ftol."""
    first = -1
    for k in range(steps + 1):
        E = W2 @ W1 - Phi
        L = 0.5 * float(np.sum(E * E))
        if L <= ftol:
            first = k
            break
        if k == steps:
            break
        W1, W2 = W1 - lr * W2.T @ E, W2 - lr * E @ W1.T
    return L, first


def test_final_loss_and_steps_match_plain_gd(ref):
    s = sw.load_spec(SPEC)
    loss, Phi = sw.runner.make_problem(s.problem, s.seed)
    for cell in s.cells:
        if cell.depth != 2:
            continue
        rows = ref[ref["cell"] == cell.index]
        for run in (0, 4):
            W1, W2 = sw.runner.initial_weights(cell.init, s.widths(cell), cell.scale, run_rng(s.seed, cell.index, run))
            L, first = _plain_gd_depth2(W1, W2, Phi, cell.lr, s.train["steps"], s.train["tol"])
            row = rows[rows["run"] == run].iloc[0]
            assert row["steps"] == first
            np.testing.assert_allclose(row["final_loss"], L, rtol=1e-9, atol=1e-14)
            assert row["gap"] == row["final_loss"]  # L* = 0 without bottleneck
            assert (row["status"] == "converged") == (first >= 0)


def test_init_margin_matches_balanced_draw(ref):
    """init_margin = sigma_min(Phi) - ||A - Phi|| with A the balanced init's end-to-end draw (THEOREMS.md §3)."""
    s = sw.load_spec(SPEC)
    _, Phi = sw.runner.make_problem(s.problem, s.seed)
    for cell in s.cells:
        if cell.init != "balanced":
            continue
        for run in range(s.runs):
            A = cell.scale * run_rng(s.seed, cell.index, run).standard_normal((1, 3))
            want = np.linalg.norm(Phi) - np.linalg.norm(A - Phi)
            got = ref[(ref["cell"] == cell.index) & (ref["run"] == run)]["init_margin"].iloc[0]
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_backend_array_api_strict_same_runs(ref):
    """Tasks on another array namespace (array-api-strict: the CPU stand-in for CuPy) train the same nets."""
    pytest.importorskip("array_api_strict")
    t = sw.run({**SPEC, "train": {**SPEC["train"], "backend": "array_api_strict"}}, progress=False).table
    for col in ("cell", "run", "init", "status", "steps"):
        assert list(t[col]) == list(ref[col]), col
    ok = ref["status"] != "diverged"
    for col in ("final_loss", "gap", "init_margin", "final_sigma_min"):
        np.testing.assert_allclose(t[col][ok], ref[col][ok], rtol=1e-9, atol=1e-12, err_msg=col)


def test_gap_uses_rank_constrained_optimum():
    """With a bottleneck the gap is measured from the reduced-rank optimum (ln.theory.global_min), so it is >= 0."""
    spec = {"runs": 4, "problem": {"loss": "squared", "d_in": 3, "d_out": 3, "noise": 0.1},
            "grid": {"width": [1], "lr": [0.02]}, "train": {"steps": 3000, "tol": 1e-7}}  # fmt: skip
    t = sw.run(spec, progress=False).table
    s = sw.load_spec(spec)
    loss, _ = sw.runner.make_problem(s.problem, s.seed)
    Lstar = float(ln.theory.global_min(loss, (3, 1, 3)).value)
    assert Lstar > 0.05  # the bottleneck matters: L* is far above zero
    np.testing.assert_allclose(t["gap"], t["final_loss"] - Lstar, rtol=0, atol=1e-12)
    assert (t["gap"] > -1e-9).all() and (t["status"] == "converged").all()


def test_classify_labels_the_final_point():
    spec = {"runs": 3, "grid": {"scale": [0.5]}, "train": {"steps": 4000, "tol": 1e-24, "classify": True}}
    t = sw.run(spec, progress=False).table
    assert (t["status"] == "converged").all() and (t["label"] == "global minimum").all()
    # control: after one step the nets are nowhere near a critical point
    t = sw.run({**spec, "train": {"steps": 1, "classify": True}}, progress=False).table
    assert (t["label"] == "not critical").all()


def test_summarize_counts(ref):
    summ = sw.summarize(ref)
    assert len(summ) == 8 and (summ["n"] == 7).all()
    for _, r in summ.iterrows():
        g = ref[ref["cell"] == r["cell"]]
        assert r["frac_global"] == (g["status"] == "converged").mean()
        ok = g["status"] == "converged"
        if ok.any():
            assert r["median_steps"] == np.median(g["steps"][ok])
        assert r["gap_q50"] == np.quantile(g["gap"], 0.5)


def test_phase_diagram(ref, tmp_path):
    fig = sw.phase_diagram(sw.summarize(ref), path=tmp_path / "p.png")
    assert len(fig.axes) == 4  # two panels + two colorbars
    assert (tmp_path / "p.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="`colour`"):
        sw.phase_diagram(sw.summarize(ref), value="colour")


# --------------------------------------------------------------------------------------------------------------
# storage: written as finished, resume, refusal
# --------------------------------------------------------------------------------------------------------------
class Stop(Exception):
    pass


def test_interrupted_sweep_resumes_only_missing_chunks(ref, tmp_path):
    n_total = 8 * 3  # 8 cells, 7 runs in chunks of 3 -> 3 chunks per cell

    def stop_after(k):
        seen = []

        def hook(ch):
            seen.append(ch)
            assert (tmp_path / "chunks" / f"{ch.name}.parquet").is_file()  # written as it finished
            if len(seen) == k:
                raise Stop

        return hook

    with pytest.raises(Stop):
        sw.run(SPEC, out=tmp_path, chunk_size=3, progress=False, on_chunk=stop_after(5))
    assert len(list((tmp_path / "chunks").glob("*.parquet"))) == 5
    res = sw.run(SPEC, out=tmp_path, chunk_size=3, progress=False)
    assert len(res.reused) == 5 and len(res.computed) == n_total - 5
    pd.testing.assert_frame_equal(res.table, ref)
    # nothing missing: nothing recomputed
    again = sw.run(SPEC, out=tmp_path, chunk_size=3, progress=False)
    assert len(again.computed) == 0 and len(again.reused) == n_total
    # two chunks lost: exactly those recomputed, even with another chunk size
    lost = sorted((tmp_path / "chunks").glob("*.parquet"))[2:4]
    for p in lost:
        p.unlink()
    sizes = [int(p.stem.split("-")[3]) - int(p.stem.split("-")[2]) for p in lost]
    res = sw.run(SPEC, out=tmp_path, chunk_size=2, progress=False)
    assert sum(c.n for c in res.computed) == sum(sizes)
    assert len(res.computed) == sum(-(-n // 2) for n in sizes)
    pd.testing.assert_frame_equal(res.table, ref)


def test_changed_spec_is_refused(tmp_path):
    small = {**SPEC, "runs": 2, "grid": {"depth": [2]}}
    sw.run(small, out=tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"spec changed.*train"):
        sw.run({**small, "train": {"steps": 201, "tol": 1e-6}}, out=tmp_path, progress=False)
    assert sw.run(small, out=tmp_path, progress=False).computed == ()


def test_progress_on_stderr(capsys):
    sw.run({**SPEC, "runs": 2, "grid": {"depth": [2]}}, chunk_size=1, progress=True)
    err = capsys.readouterr().err
    assert "2/2 chunks" in err and "runs/s" in err and "ETA" in err


def test_auto_chunk_size_follows_memory(monkeypatch):
    from linnet.sweep import chunking

    s = sw.load_spec({**SPEC, "runs": 5000})
    big = sw.load_spec({**SPEC, "runs": 5000, "train": {"steps": 200, "tol": 1e-6, "classify": True}})
    assert chunking.auto_chunk_size(s) == chunking.MAX_CHUNK
    monkeypatch.setattr(chunking, "MEMORY_BUDGET", 2**20)
    a, b = chunking.auto_chunk_size(s), chunking.auto_chunk_size(big)
    assert 1 <= b < a < chunking.MAX_CHUNK
    P = 3 * 4 + 4 * 4 + 4  # the largest net of SPEC, widths (3, 4, 4, 1)
    assert a == 2**20 // (8 * (6 * P + 201)) and b == 2**20 // (8 * (6 * P + 201 + 2 * P * P))
    assert chunking.plan(s, a) and sum(c.n for c in chunking.plan(s, a)) == s.n_runs


def test_bad_options():
    with pytest.raises(ValueError, match="`chunk_size`"):
        sw.run(SPEC, chunk_size=0, progress=False)
    with pytest.raises(ValueError, match="`workers`"):
        sw.run(SPEC, workers=0, progress=False)
    with pytest.raises(ValueError, match="at most one"):
        sw.run(SPEC, workers=2, scheduler="tcp://127.0.0.1:1", progress=False)


def test_cli(tmp_path, capsys):
    from linnet.sweep.__main__ import main

    toml = tmp_path / "s.toml"
    toml.write_text("seed = 1\nruns = 3\n[grid]\ndepth = [2, 3]\nscale = [0.1, 0.5]\n[train]\nsteps = 100\n")
    assert main([str(toml), "--out", str(tmp_path / "o"), "--chunk-size", "2", "--quiet"]) == 0
    for f in ("manifest.json", "table.parquet", "summary.csv", "phase_diagram.png"):
        assert (tmp_path / "o" / f).is_file()
    t = pd.read_parquet(tmp_path / "o" / "table.parquet")
    pd.testing.assert_frame_equal(t, sw.run(toml, progress=False).table)
    toml.write_text("runs = 3\n[grid]\ninit = ['xavier']\n")
    assert main([str(toml), "--out", str(tmp_path / "p")]) == 2
    assert "`grid.init`" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()


def test_cli_interrupt_then_resume(tmp_path, capsys, monkeypatch):
    """Ctrl-C in the CLI keeps the finished chunks and says how to resume; the rerun computes only the rest."""
    from linnet.sweep import __main__ as cli

    toml = tmp_path / "s.toml"
    toml.write_text("runs = 4\n[grid]\ndepth = [2, 3]\n[train]\nsteps = 30\n")
    real = sw.run
    calls = []

    def interrupted(*a, **kw):
        def hook(ch):
            if len(calls) == 3:
                raise KeyboardInterrupt
            calls.append(ch)

        return real(*a, **kw, on_chunk=hook)

    monkeypatch.setattr(sw, "run", interrupted)
    assert cli.main([str(toml), "--out", str(tmp_path / "o"), "--chunk-size", "1", "--quiet"]) == 130
    assert "interrupted: 4 chunks" in capsys.readouterr().err
    monkeypatch.setattr(sw, "run", real)
    assert cli.main([str(toml), "--out", str(tmp_path / "o"), "--chunk-size", "1", "--quiet", "--no-plot"]) == 0
    assert "(4 chunks computed, 4 reused)" in capsys.readouterr().out


def test_import_linnet_does_not_import_dask_or_pandas():
    code = "import sys, linnet, linnet.train, linnet.theory, linnet.landscape; " \
           "print(sorted(m for m in ('dask', 'distributed', 'pandas', 'pyarrow') if m in sys.modules))"  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
