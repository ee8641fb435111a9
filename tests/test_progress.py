"""Progress display of long computations: on stderr only when asked or in a terminal, never changing a result."""

import numpy as np
import pytest

import linnet as ln
from linnet import _progress

LOSS = ln.SquaredLoss.whitened(np.diag([1.0, 0.5]))
WS = ln.init.gaussian((2, 4, 2), scale=0.3, seed=0)


def _flow(**kw):
    return ln.train.gradient_flow(LOSS, WS, t_final=3.0, max_steps=500, **kw)


def test_off_by_default_under_pytest(capsys):
    """Without `progress`, nothing is written (pytest is not a terminal, and PYTEST_CURRENT_TEST is set)."""
    _flow()
    ln.landscape.top_hessian_eigenvalue(LOSS, WS)
    assert capsys.readouterr().err == ""
    assert not _progress.wanted(None)


def test_progress_true_writes_to_stderr_and_changes_nothing(capsys):
    """`progress=True` shows a display on stderr (tqdm or the plain counter) and the results stay bit for bit."""
    quiet = _flow()
    shown = _flow(progress=True)
    err = capsys.readouterr().err
    assert "gradient_flow" in err
    for a, b in zip(quiet.weights, shown.weights):
        assert np.array_equal(a, b)
    assert np.array_equal(quiet.loss, shown.loss)
    e1 = ln.landscape.top_hessian_eigenvalue(LOSS, WS)
    e2 = ln.landscape.top_hessian_eigenvalue(LOSS, WS, method="lanczos", progress=True)
    assert "top_hessian_eigenvalue" in capsys.readouterr().err
    assert abs(float(e1.value) - float(e2.value)) <= 1e-8 * abs(float(e1.value))


def test_plain_counter_without_tqdm(monkeypatch, capsys):
    """Without tqdm the fallback counter writes `desc: n/total` once the delay has passed."""
    monkeypatch.setitem(__import__("sys").modules, "tqdm.auto", None)  # `from tqdm.auto import tqdm` fails
    monkeypatch.setattr(_progress, "DELAY", 0.0)
    with _progress.task("demo", total=5, unit="step", progress=True):
        for k in range(1, 6):
            _progress.tick(k)
    assert "demo: " in capsys.readouterr().err


def test_environment_switch(monkeypatch):
    """LINNET_PROGRESS=1 forces the display on, =0 off; an explicit argument wins."""
    monkeypatch.setenv("LINNET_PROGRESS", "1")
    assert _progress.wanted(None) and not _progress.wanted(False)
    monkeypatch.setenv("LINNET_PROGRESS", "0")
    assert not _progress.wanted(None) and _progress.wanted(True)


@pytest.mark.parametrize("bad", ["yes", 1, 0.0])
def test_progress_must_be_a_bool(bad):
    """`progress` is validated like every flag: ValueError naming it."""
    with pytest.raises(ValueError, match="`progress` must be a bool"):
        _flow(progress=bad)
    with pytest.raises(ValueError, match="`progress` must be a bool"):
        ln.landscape.top_hessian_eigenvalue(LOSS, WS, progress=bad)
