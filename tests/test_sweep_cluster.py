"""linnet.sweep on a local Dask cluster (2 worker processes on 127.0.0.1): same table as in-process, a worker
killed mid-sweep, an interrupted sweep resumed, bad specs refused before any task is submitted."""

from __future__ import annotations

import os
import signal

import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")
distributed = pytest.importorskip("distributed")

import linnet.sweep as sw  # noqa: E402

SPEC = {
    "seed": 11,
    "runs": 9,
    "summaries": ["init_margin"],
    "problem": {"d_in": 3, "d_out": 2},
    "grid": {"depth": [2, 3], "init": ["gaussian", "balanced"], "scale": [0.3, 1.0]},
    "train": {"steps": 150, "tol": 1e-6},
}


@pytest.fixture(scope="module")
def ref():
    return sw.run(SPEC, progress=False).table


@pytest.fixture(scope="module")
def client():
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        c.wait_for_workers(2)
        yield c


def _scheduler_keys(client):
    return set(client.run_on_scheduler(lambda dask_scheduler: [str(k) for k in dask_scheduler.tasks]))


def test_cluster_table_equals_in_process(ref, client, capsys):
    res = sw.run(SPEC, client=client, chunk_size=4, progress=True)
    pd.testing.assert_frame_equal(res.table, ref)
    err = capsys.readouterr().err
    assert res.dashboard and f"Dask dashboard: {res.dashboard}" in err
    assert "24/24 chunks" in err  # 8 cells x ceil(9/4)


def test_worker_killed_mid_sweep(ref, client, tmp_path):
    """SIGKILL one worker after the first chunk: its tasks are rerun elsewhere, every run is in the table once."""
    pids = list(client.run(os.getpid).values())
    assert len(pids) == 2 and os.getpid() not in pids
    killed = []

    def kill_first(ch):
        if not killed:
            os.kill(pids[0], signal.SIGKILL)
            killed.append(ch)

    res = sw.run(SPEC, client=client, out=tmp_path, chunk_size=1, progress=False, on_chunk=kill_first)
    assert killed
    assert len(res.computed) == 72 and len(set(res.computed)) == 72  # each chunk stored once
    assert not res.table.duplicated(["cell", "run"]).any()
    pd.testing.assert_frame_equal(res.table, ref)
    client.wait_for_workers(2, timeout=60)  # the nanny restarted it
    assert pids[0] not in client.run(os.getpid).values()


class Stop(Exception):
    pass


def test_interrupted_cluster_sweep_resumes(ref, client, tmp_path):
    seen = []

    def stop(ch):
        seen.append(ch)
        if len(seen) == 7:
            raise Stop

    with pytest.raises(Stop):
        sw.run(SPEC, client=client, out=tmp_path, chunk_size=3, progress=False, on_chunk=stop)
    on_disk = len(list((tmp_path / "chunks").glob("*.parquet")))
    assert on_disk == 7
    res = sw.run(SPEC, client=client, out=tmp_path, chunk_size=3, progress=False)
    assert len(res.reused) == 7 and len(res.computed) == 24 - 7
    pd.testing.assert_frame_equal(res.table, ref)


@pytest.mark.parametrize("patch", [{"grid": {"init": ["xavier"]}}, {"runs": 0}, {"grid": {"lr": [0.0]}}])
def test_bad_spec_submits_nothing(client, patch):
    before = _scheduler_keys(client)
    with pytest.raises(ValueError, match="sweep spec"):
        sw.run({**SPEC, **patch}, client=client, progress=False)
    assert _scheduler_keys(client) - before == set()
    # control: the same probe sees the tasks of a good sweep while it runs
    seen = []
    sw.run({**SPEC, "runs": 2}, client=client, progress=False, on_chunk=lambda ch: seen.append(_scheduler_keys(client)))
    assert any(k.startswith("linnet-sweep-") for keys in seen for k in keys - before)


def test_workers_option_starts_a_local_cluster(ref):
    res = sw.run(SPEC, workers=2, chunk_size=9, progress=False)
    assert res.dashboard and res.dashboard.startswith("http://127.0.0.1")
    pd.testing.assert_frame_equal(res.table, ref)


def test_cli_workers(tmp_path, capsys):
    """``python -m linnet.sweep SPEC --workers 2`` prints the dashboard address and progress, and the same table."""
    from linnet.sweep.__main__ import main

    toml = tmp_path / "s.toml"
    toml.write_text("seed = 2\nruns = 4\n[grid]\ndepth = [2, 3]\n[train]\nsteps = 50\n")
    assert main([str(toml), "--workers", "2", "--out", str(tmp_path / "o"), "--chunk-size", "2", "--no-plot"]) == 0
    err = capsys.readouterr().err
    assert "Dask dashboard: http://127.0.0.1" in err and "4/4 chunks" in err and "ETA" in err
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "o" / "table.parquet"), sw.run(toml, progress=False).table)


@pytest.mark.slow
def test_held_out_scenario_larger(tmp_path):
    """The issue's acceptance scenario on a larger spec: in-process table; on 2 local workers one worker is killed,
    the sweep is interrupted, then resumed; the tables agree row by row."""
    spec = {
        **SPEC,
        "runs": 200,
        "grid": {"depth": [2, 3, 4], "init": ["gaussian", "balanced", "orthogonal"], "scale": [0.1, 0.5, 1.5]},
        "train": {"steps": 400, "tol": 1e-8, "optimizer": "momentum", "beta": 0.3},
    }
    ref = sw.run(spec, chunk_size=64, progress=False).table
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        pids = list(client.run(os.getpid).values())
        seen = []

        def hook(ch):
            seen.append(ch)
            if len(seen) == 3:
                os.kill(pids[1], signal.SIGKILL)
            if len(seen) == 40:
                raise Stop

        with pytest.raises(Stop):
            sw.run(spec, client=client, out=tmp_path, chunk_size=10, progress=False, on_chunk=hook)
        res = sw.run(spec, client=client, out=tmp_path, chunk_size=25, progress=False)
    assert len(res.reused) == 40 and sum(c.n for c in res.computed) == len(ref) - 400
    pd.testing.assert_frame_equal(res.table, ref)
