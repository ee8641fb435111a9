"""The ``python -m proofs_check`` command line, on small fake checks in a temporary registry (fast)."""

import io
import json
import re
import subprocess
import sys

import pytest

from proofs_check import _core, cli, report
from proofs_check._core import Check, Measurement, register


def _fake(id_, title, *, holds=True, control_holds=False, crash=False, status="CONFIRMED"):
    class Fake(Check):
        """Fake theorem: hypotheses => conclusion (a statement for the report)."""

        def measure(self, ctx):
            if crash:
                raise RuntimeError("boom in measure")
            parts = {
                "main part": Measurement.compare(1e-9 if holds else 1.0, 1e-6, note="first"),
                "seed echo": Measurement.compare(ctx.seed, 0, ">="),
            }
            return Measurement.all_of(parts)

        def control(self, ctx):
            return Measurement.compare(1e-9 if control_holds else 0.5, 1e-6, note="broken formula")

    Fake.id, Fake.title, Fake.claim = id_, title, f"claim of {id_}"
    Fake.source, Fake.status, Fake.control_description = "arXiv 0000.00000, Thm 1", status, "a wrong formula"
    return Fake


@pytest.fixture
def registry(monkeypatch):
    """An empty registry in place of the real one; returns a function registering fake checks.

    ``all_checks`` is patched too, so that the real check modules are never imported here (these tests stay fast
    and independent of them).
    """
    monkeypatch.setattr(_core, "REGISTRY", {})
    monkeypatch.setattr(_core, "all_checks", lambda: list(_core.REGISTRY.values()))

    def add(*args, **kw):
        register(_fake(*args, **kw))

    return add


def run(argv):
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(argv, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_all_pass_exit_zero_and_table(registry):
    registry("alpha", "First theorem")
    registry("beta", "Second theorem")
    code, out, err = run([])
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["id", "claim"]
    assert any(line.startswith("alpha") and "holds" in line and "failed (ok)" in line for line in lines)
    assert "1e-09 ≤ 1e-06" in out
    assert "ALL OK: 2 checks, 2 ok" in out
    # progress: a start and an end line per check, on stderr only
    assert "[1/2] alpha ... First theorem" in err and "[2/2] beta: holds" in err
    assert "[1/2]" not in out


def test_quiet_silences_progress(registry):
    registry("alpha", "First theorem")
    code, out, err = run(["-q"])
    assert code == 0 and err == ""


def test_failing_check_exit_one(registry):
    registry("alpha", "First theorem")
    registry("bad", "Broken theorem", holds=False)
    code, out, _ = run([])
    assert code == 1
    assert any(line.startswith("bad") and "FAILS" in line for line in out.splitlines())
    assert "1 failed" in out


def test_control_that_holds_is_a_defect(registry):
    registry("weak", "Toothless check", control_holds=True)
    code, out, _ = run([])
    assert code == 1
    assert "HELD (defect)" in out and "1 controls held" in out


def test_crashing_check_is_a_failure(registry):
    registry("alpha", "First theorem")
    registry("crash", "Crashing theorem", crash=True)
    code, out, err = run([])
    assert code == 1
    row = next(line for line in out.splitlines() if line.startswith("crash"))
    assert "ERROR" in row and "not run" in row
    assert "RuntimeError: boom in measure" in err  # the traceback is shown
    assert "1 errors" in out


def test_list(registry):
    registry("alpha", "First theorem")
    registry("beta", "Second theorem", status="MIXED")
    code, out, _ = run(["--list"])
    assert code == 0
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == ["alpha", "beta"]
    assert "MIXED" in lines[1] and "arXiv 0000.00000" in lines[1]


def test_select_by_id_title_and_comma_list(registry):
    registry("alpha", "First theorem")
    registry("beta", "Second theorem")
    registry("gamma", "Third result")
    ids = lambda argv: [line.split()[0] for line in run(argv + ["--list"])[1].splitlines()]
    assert ids(["-k", "alp"]) == ["alpha"]
    assert ids(["-k", "THEOREM"]) == ["alpha", "beta"]  # title, case-insensitive
    assert ids(["-k", "alpha,gamma"]) == ["alpha", "gamma"]
    assert ids(["-k", "beta", "-k", "gam"]) == ["beta", "gamma"]
    code, _, err = run(["-k", "nothing-matches"])
    assert code == 2 and "no check matches" in err


def test_select_runs_only_selected(registry):
    registry("alpha", "First theorem")
    registry("bad", "Broken theorem", holds=False)
    code, out, _ = run(["-k", "alpha"])
    assert code == 0 and "bad" not in out


def test_json_content(registry, tmp_path):
    registry("alpha", "First theorem")
    registry("crash", "Crashing theorem", crash=True)
    path = tmp_path / "out.json"
    code, _, _ = run(["--json", str(path), "--seed", "3", "--dtype", "float32", "--backend", "array_api_strict", "-q"])
    assert code == 1
    doc = json.loads(path.read_text())  # standard JSON: NaN written as a string, never a bare NaN
    meta = doc["meta"]
    assert (meta["seed"], meta["dtype"], meta["backend"], meta["scale"]) == (3, "float32", "array_api_strict", "quick")
    assert meta["versions"]["numpy"] and meta["versions"]["linnet"] and meta["date"]
    assert doc["summary"]["checks"] == 2 and doc["summary"]["ok"] == 1 and doc["summary"]["errors"] == 1
    a, c = doc["checks"]
    assert a["id"] == "alpha" and a["ok"] is True and a["control_failed"] is True
    assert a["result"]["figure"] == pytest.approx(1e-9) and a["result"]["bound"] == pytest.approx(1e-6)
    assert a["result"]["details"]["seed echo"]["figure"] == 3  # the context reached the check
    assert a["control"]["note"] == "broken formula"
    assert c["ok"] is False and c["verdict"] == "ERROR" and c["result"]["figure"] == "nan"
    assert "boom in measure" in c["traceback"]


def test_report_content(registry, tmp_path):
    registry("alpha", "First theorem")
    registry("weak", "Toothless check", control_holds=True)
    path = tmp_path / "report.md"
    code, _, _ = run(["--report", str(path), "-q"])
    assert code == 1
    text = path.read_text()
    assert text.startswith("# proofs_check report")
    assert "## `alpha`: First theorem" in text and "## `weak`: Toothless check" in text
    assert "Fake theorem: hypotheses => conclusion" in text  # the statement
    assert "**source:** arXiv 0000.00000, Thm 1" in text and "**status:** CONFIRMED" in text
    assert "| main part | 1e-09 ≤ 1e-06 | holds | first |" in text  # sub-details
    assert "a wrong formula" in text and "HELD (defect)" in text


def test_unavailable_backend_is_a_usage_error(registry, monkeypatch):
    registry("alpha", "First theorem")
    monkeypatch.setattr(cli, "_backend_ok", lambda name: f"backend {name!r} is not available here")
    code, _, err = run(["--backend", "cupy"])
    assert code == 2 and "not available" in err


def test_empty_registry(registry):
    code, _, err = run([])
    assert code == 2 and "no check is registered" in err


def test_jsonable_handles_numpy_and_nonfinite():
    import numpy as np

    doc = report._jsonable({"a": np.float64(1.5), "b": np.int64(2), "c": np.bool_(True), "d": float("inf"), "e": (1,)})
    assert doc == {"a": 1.5, "b": 2, "c": True, "d": "inf", "e": [1]}
    json.dumps(doc, allow_nan=False)


def test_module_entry_point_lists_checks():
    """``python -m proofs_check --list`` runs as a program and exits 0."""
    res = subprocess.run([sys.executable, "-m", "proofs_check", "--list"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "s01-calculus" in res.stdout.split()


def test_check_module_that_does_not_import_is_a_failure(registry, monkeypatch):
    def broken():
        raise ImportError("no module named linnet.missing")

    monkeypatch.setattr(_core, "all_checks", broken)
    code, _, err = run([])
    assert code == 1 and "failed to import" in err and "linnet.missing" in err


# ---- --workers / --scheduler: the checks as Dask tasks (issue 15) ----------------------------------------------
def _same_apart_from_timings(doc):
    """A JSON report without what may differ between two runs of the same checks: timings, date and argv."""
    if isinstance(doc, dict):
        return {k: _same_apart_from_timings(v) for k, v in doc.items() if k not in ("seconds", "date", "argv")}
    if isinstance(doc, list):
        return [_same_apart_from_timings(v) for v in doc]
    return doc


def _without_seconds(text):
    """Table or Markdown report lines with the timings (a last column of seconds, "; 1.2 s") and the date cut off."""
    lines = []
    for line in text.splitlines():
        line = re.sub(r"(\s+|\| |; )[0-9.]+( s| \|)?$", "", line.rstrip())
        lines.append(re.sub(r"^- date: .*", "- date:", line))
    return lines


@pytest.fixture(scope="module")
def dask_cluster():
    """A LocalCluster of 2 single-threaded worker processes on loopback, shared by the tests of this section."""
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0"
    )
    yield cluster
    cluster.close()


def test_workers_gives_the_in_process_verdicts(tmp_path):
    """Real light checks on ``--workers 2`` (a cluster the CLI starts): same table and JSON as in-process."""
    pytest.importorskip("distributed")
    sel = ["-k", "s01-calculus,s12-symmetry", "--seed", "1"]
    code_a, out_a, _ = run(sel + ["-q", "--json", str(tmp_path / "a.json")])
    code_b, out_b, err_b = run(sel + ["--workers", "2", "--json", str(tmp_path / "b.json")])
    assert code_a == code_b == 0
    a, b = (json.loads((tmp_path / n).read_text()) for n in ("a.json", "b.json"))
    assert [c["id"] for c in b["checks"]] == ["s01-calculus", "s12-symmetry"]  # registry order
    assert _same_apart_from_timings(a) == _same_apart_from_timings(b)
    assert b["checks"][0]["result"]["figure"] == a["checks"][0]["result"]["figure"]  # bit for bit
    assert _without_seconds(out_a) == _without_seconds(out_b)
    assert "2 local workers" in err_b and "dashboard" in err_b and "s12-symmetry: holds" in err_b


def test_scheduler_reports_failures_and_crashes_as_in_process(registry, dask_cluster, tmp_path):
    """On an existing scheduler, a failing check, a held control and a crash show as the in-process run shows them."""
    registry("alpha", "First theorem")
    registry("bad", "Broken theorem", holds=False)
    registry("weak", "Toothless check", control_holds=True)
    registry("crash", "Crashing theorem", crash=True)
    code_a, out_a, _ = run(
        ["-q", "--seed", "2", "--json", str(tmp_path / "a.json"), "--report", str(tmp_path / "a.md")]
    )
    argv = ["--seed", "2", "--scheduler", dask_cluster.scheduler_address, "--json", str(tmp_path / "b.json")]
    code_b, out_b, err_b = run(argv + ["--report", str(tmp_path / "b.md")])
    assert code_a == code_b == 1
    assert _without_seconds(out_a) == _without_seconds(out_b)
    row = next(line for line in out_b.splitlines() if line.startswith("crash"))
    assert "ERROR" in row and "not run" in row
    assert "RuntimeError: boom in measure" in err_b  # the worker's traceback reaches stderr
    a, b = (json.loads((tmp_path / n).read_text()) for n in ("a.json", "b.json"))
    assert [c["id"] for c in b["checks"]] == ["alpha", "bad", "weak", "crash"]
    tb_a, tb_b = a["checks"][3].pop("traceback"), b["checks"][3].pop("traceback")
    # the test's fake class travels by value, so the worker's traceback names "<dynamic-code>" for its file
    assert tb_a.splitlines()[-1] == tb_b.splitlines()[-1] == "RuntimeError: boom in measure"
    assert _same_apart_from_timings(a) == _same_apart_from_timings(b)
    md_a, md_b = ((tmp_path / n).read_text() for n in ("a.md", "b.md"))
    assert _without_seconds(md_a) == _without_seconds(md_b)
    assert md_a.count("\n") > 20 and "HELD (defect)" in md_b


def test_workers_and_scheduler_are_mutually_exclusive(registry, capsys):
    registry("alpha", "First theorem")
    with pytest.raises(SystemExit) as e:
        cli.main(["--workers", "2", "--scheduler", "tcp://127.0.0.1:8786"])
    assert e.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


@pytest.mark.parametrize("k", ["0", "-1", "two", "1.5"])
def test_bad_worker_count_is_a_usage_error(registry, capsys, k):
    registry("alpha", "First theorem")
    with pytest.raises(SystemExit) as e:
        cli.main(["--workers", k])
    assert e.value.code == 2 and "expected an int >= 1" in capsys.readouterr().err


def test_workers_without_the_sweep_extra_names_it(registry, monkeypatch):
    registry("alpha", "First theorem")
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` raises ImportError
    code, out, err = run(["--workers", "2"])
    assert code == 2 and out == ""
    assert "sweep" in err and "pip install 'linnet[sweep]'" in err


def test_scheduler_that_does_not_answer_is_a_usage_error(registry):
    """No scheduler at the address: exit 2 with a message naming it (after the connect timeout, shortened here)."""
    dask = pytest.importorskip("dask")
    pytest.importorskip("distributed")
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    registry("alpha", "First theorem")
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        code, out, err = run(["--scheduler", f"tcp://127.0.0.1:{port}"])
    assert code == 2 and out == ""
    assert f"no Dask scheduler answers at 'tcp://127.0.0.1:{port}'" in err
