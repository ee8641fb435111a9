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
    assert "W2 ensemble" in capsys.readouterr().out


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
