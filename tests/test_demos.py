"""Every demo runs top to bottom as a plain script, ends by asserting what it taught, and round-trips as a notebook."""

import os
import pathlib
import subprocess
import sys

import pytest

DEMOS = sorted((pathlib.Path(__file__).resolve().parent.parent / "demos").glob("[0-9][0-9]_*.py"))


def test_there_are_at_least_eight_demos():
    """The teaching set has at least eight demos."""
    assert len(DEMOS) >= 8, [d.name for d in DEMOS]


@pytest.mark.parametrize("path", DEMOS, ids=lambda p: p.stem)
def test_demo_runs_as_a_script(path, tmp_path):
    """A demo runs headless as a script and its closing assertions pass."""
    env = dict(os.environ, MPLBACKEND="Agg")
    proc = subprocess.run(
        [sys.executable, str(path)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "all claims hold" in proc.stdout


@pytest.mark.parametrize("path", DEMOS, ids=lambda p: p.stem)
def test_demo_is_a_notebook(path):
    """A demo converts to a notebook with prose and code cells, exercises and final assertions, and back unchanged."""
    jupytext = pytest.importorskip("jupytext")
    text = path.read_text()
    nb = jupytext.reads(text, fmt="py:percent")
    kinds = [c.cell_type for c in nb.cells]
    assert kinds.count("markdown") >= 3 and kinds.count("code") >= 3
    assert nb.cells[0].cell_type == "markdown" and "Claim" in nb.cells[0].source
    assert any("Exercises" in c.source for c in nb.cells if c.cell_type == "markdown")
    assert "assert " in nb.cells[-1].source, "a demo ends with assertions of what it taught"
    again = jupytext.reads(jupytext.writes(nb, fmt="py:percent"), fmt="py:percent")
    assert [(c.cell_type, c.source) for c in again.cells] == [(c.cell_type, c.source) for c in nb.cells]


@pytest.mark.parametrize("path", DEMOS, ids=lambda p: p.stem)
def test_demo_uses_only_the_public_api(path):
    """Demos import linnet's public API only (no private modules)."""
    text = path.read_text()
    assert "linnet._" not in text and "from linnet." not in text


@pytest.mark.parametrize("path", DEMOS, ids=lambda p: p.stem)
def test_demo_leaves_the_backend_to_its_host(path):
    """No demo forces a Matplotlib backend: Jupyter shows its figures inline, scripts and tests choose their own
    (the tests set ``MPLBACKEND=Agg``; a headless script falls back to Agg by itself)."""
    text = path.read_text()
    assert "matplotlib.use(" not in text and "plt.switch_backend" not in text


def _figures_drawn(text):
    return text.count("plt.subplots(") + text.count("plt.figure(")


@pytest.mark.slow
@pytest.mark.parametrize("path", DEMOS, ids=lambda p: p.stem)
def test_demo_as_executed_notebook_shows_its_figures_inline(path, tmp_path):
    """Converted to a notebook and executed in a Jupyter kernel, a demo shows one inline PNG per figure it draws."""
    jupytext = pytest.importorskip("jupytext")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nb = jupytext.reads(path.read_text(), fmt="py:percent")
    env_backend = os.environ.pop("MPLBACKEND", None)  # the kernel must pick Jupyter's inline backend
    try:
        nbclient.NotebookClient(
            nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
        ).execute()
    finally:
        if env_backend is not None:
            os.environ["MPLBACKEND"] = env_backend
    images = sum(
        1 for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if "image/png" in o.get("data", {})
    )
    assert images >= _figures_drawn(path.read_text()) >= 1, images
