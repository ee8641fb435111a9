"""The README keeps its promises: the two set-up commands come first and the API example runs as written."""

import pathlib
import re

README = (pathlib.Path(__file__).resolve().parent.parent / "README.md").read_text()


def _blocks(lang):
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_first_lines_give_the_two_commands():
    """The first code block holds the main-job command and the test command, the latter as .ci/run runs it."""
    first = _blocks("bash")[0]
    assert "python -m proofs_check" in first
    assert 'pip install -e ".[test]" && python -m pytest -q -m "not slow"' in first
    ci = (pathlib.Path(__file__).resolve().parent.parent / ".ci" / "run").read_text()
    assert 'python -m pytest -q -m "not slow"' in ci
    assert README.index("```bash") < README.index("## ")


def test_api_at_a_glance_runs():
    """The API example executes and its shapes are what the comments say."""
    code = next(b for b in _blocks("python") if "import linnet as ln" in b)
    ns = {}
    exec(compile(code, "README.md", "exec"), ns)
    assert ns["L"].shape == (256,)
    assert ln_shape(ns) == (256, 3, 4)
    assert len(ns["labels"]) == 4
    # what the comments promise a user: converged nets, classified as the global minima they are
    assert list(ns["run"].status_names[:4]) == ["converged"] * 4
    assert list(ns["labels"]) == ["global minimum"] * 4


def ln_shape(ns):
    return tuple(ns["ln"].end_to_end(ns["Ws"]).shape)
