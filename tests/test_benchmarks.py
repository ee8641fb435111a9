"""The benchmark runner: a quick smoke run writes valid JSON (no timing assertions: speed is never a test)."""

import json
import math
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # benchmarks/ lives beside tests/, not installed

from benchmarks.__main__ import main  # noqa: E402


def test_quick_run_writes_json(tmp_path, capsys):
    """One tiny W2 run in --quick mode prints a table and writes finite throughput figures."""
    out = tmp_path / "bench.json"
    assert main(["--quick", "-k", "W2", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert set(res) >= {"machine", "peak", "workloads", "quick"}
    assert res["quick"] is True and res["peak"]["gflops"] > 0
    w2 = res["workloads"]["W2"]
    for name in ("engine", "plain_batched", "python_loop"):
        v = w2["net_steps_per_s"][name]
        assert math.isfinite(v) and v > 0, name
    assert w2["loss_max_before_after_20_steps"][1] < w2["loss_max_before_after_20_steps"][0]
    assert w2["memory"]["engine_peak_bytes"] > 0
    captured = capsys.readouterr()
    assert "W2 ensemble" in captured.out
    # progress on stderr: what runs, each timed comparison, and the elapsed time
    assert "[1/1] W2 ..." in captured.err and "[1/1] W2 done in" in captured.err and "timing " in captured.err


def test_unknown_workload_is_rejected(capsys):
    import pytest

    with pytest.raises(SystemExit):
        main(["--quick", "-k", "W9"])
    assert "unknown workload" in capsys.readouterr().err


def test_extra_columns_run_in_a_child_and_never_break_the_run():
    """An absent framework gives no column; a failing child gives an error entry, not an exception."""
    import numpy as np

    from benchmarks._harness import extra_column

    assert extra_column("surely_not_installed_w2", {"a": np.zeros(2)}, {}) is None
    out = extra_column("numpy_w2", {"a": np.zeros(2)}, {})  # numpy is importable, but has no such column
    assert set(out) == {"error"} and "numpy_w2" in out["error"]


def test_quick_run_on_a_strict_backend_as_a_dry_run_of_the_device_paths(tmp_path):
    """Every registered workload runs on array-api-strict (no NumPy-only calls on device arrays), so a GPU session does
    not spend its device time on a wrong call: each writes its figures."""
    out = tmp_path / "strict.json"
    assert main(["--backend", "array_api_strict", "--quick", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    w = res["workloads"]
    from benchmarks.workloads import WORKLOADS

    assert set(w) == set(WORKLOADS) >= {"W1", "W2", "W3", "W4"}
    assert all(math.isfinite(row["time_per_step_s"]) for row in w["W1"]["rows"])
    assert w["W2"]["net_steps_per_s"]["train_gd"] > 0
    assert w["W3"]["finite_differences_rel_error"] < 1e-6
    assert w["W4"]["max_abs_difference_final_weights"] < 1e-6


def test_quick_sweep_workload(tmp_path):
    """W5 (linnet.sweep in-process vs 2 local Dask workers) writes finite rates, and both give the same table."""
    import pytest

    pytest.importorskip("distributed")
    pytest.importorskip("pandas")
    out = tmp_path / "w5.json"
    assert main(["--quick", "-k", "W5", "--json", str(out)]) == 0
    r = json.loads(out.read_text())["workloads"]["W5"]
    for k in ("in_process_runs_per_s", "cluster2_runs_per_s", "task_overhead_cluster_s", "cost_per_net_step_s"):
        assert math.isfinite(r[k]) and r[k] > 0, k
    assert r["tables_equal"] is True


def test_benchmark_texts_have_no_tracker_jargon():
    """User-facing benchmark texts say what a workload is, not which tracker issue asked for it."""
    import re

    root = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"
    for path in [*root.glob("*.py"), root / "RESULTS.md", root / "gpu.sh"]:
        assert not re.search(r"\bissue \d", path.read_text()), path.name


def _registry():
    from benchmarks import __main__ as cli
    from benchmarks.workloads import COST, WORKLOADS

    return cli, COST, WORKLOADS


def test_every_registered_workload_has_a_table_and_a_cost():
    """Workloads are registered where they are defined; each has a table formatter and a cost, and -k lists them."""
    cli, cost, workloads = _registry()
    assert set(workloads) >= {"W1", "W2", "W3", "W4"}
    assert set(workloads) == set(cli.TABLES) == set(cost)
    assert all(c in ("light", "heavy") for c in cost.values())


def test_registering_a_workload_twice_is_refused():
    import pytest

    from benchmarks.workloads import workload

    with pytest.raises(ValueError, match="W2"):
        workload("W2")(lambda be, sz: {})


def test_quick_contention_workload(tmp_path, capsys):
    """W7 (one net of width 100 beside a busy core) times linnet and the NumPy loop per step, both descend to the
    same weights, the spinning process is gone afterwards, and the Haswell-kernel child reports its rates."""
    import os

    import pytest

    out = tmp_path / "w7.json"
    assert main(["--quick", "-k", "W7", "--json", str(out)]) == 0
    r = json.loads(out.read_text())["workloads"]["W7"]
    assert [row["depth"] for row in r["rows"]] == [2, 3, 4]
    for row in r["rows"]:
        for name in ("linnet_gd", "numpy_loop"):
            t = row["time_per_step_s"][name]
            assert math.isfinite(t) and t > 0, name
        assert row["linnet_over_numpy"] > 0 and row["rule_3_speedup"] > 0
        assert row["max_abs_difference_weights"] < 1e-10  # the same descent, up to rounding
    with pytest.raises(ProcessLookupError):
        os.kill(r["spinner_pid"], 0)
    h = r["haswell"]
    assert "net_steps_per_s" in h, h
    assert [row["depth"] for row in h["single_net"]["rows"]] == [2, 3, 4]
    assert all(math.isfinite(v) and v > 0 for v in h["net_steps_per_s"].values())
    assert "W7 contention" in capsys.readouterr().out
