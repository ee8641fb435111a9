"""The engine's structure: no private reach from outside, no import cycles, no dispatch on loss types, one path
selector that a new quadratic loss reaches through its capability alone, one switch for the generic path, and
registries that the README agrees with."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import linnet as ln
from linnet import _fastpaths, _step
from linnet.backend import from_host, get_namespace, to_numpy

ROOT = Path(__file__).resolve().parents[1]
ENGINE = ROOT / "linnet"


def _py_files(*dirs):
    for d in dirs:
        yield from sorted((ROOT / d).rglob("*.py"))


def _imported(path: Path):
    """``(module, names)`` of every import statement in ``path`` (relative imports resolved), function-level too."""
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    pkg = parts if parts[-1] == "__init__" else parts[:-1]
    if pkg and pkg[-1] == "__init__":
        pkg = pkg[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, ()
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[: len(pkg) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            yield mod, tuple(a.name for a in node.names)


def test_no_private_linnet_imports_outside_the_engine_tests_and_benchmarks():
    """Figures, checks, demos and docs use only public names of linnet (``linnet.backend`` for array helpers)."""
    offenders = []
    for path in _py_files("figures", "proofs_check", "demos", "docs"):
        for mod, names in _imported(path):
            private_mod = mod.startswith("linnet") and any(p.startswith("_") for p in mod.split(".")[1:])
            private_name = mod == "linnet" and any(n.startswith("_") for n in names)
            if private_mod or private_name:
                offenders.append(f"{path.relative_to(ROOT)}: {mod} {names}")
    assert offenders == []


def _module_graph() -> dict:
    mods = {}
    for path in _py_files("linnet"):
        rel = path.relative_to(ROOT).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.parts[-1] == "__init__" else rel.parts)
        mods[name] = path
    graph = {}
    for name, path in mods.items():
        deps = set()
        for mod, names in _imported(path):
            for n in names:  # `from pkg import module` imports the module
                if f"{mod}.{n}" in mods:
                    deps.add(f"{mod}.{n}")
            if mod in mods and not (names and all(f"{mod}.{n}" in mods for n in names)):
                deps.add(mod)
        graph[name] = deps - {name}
    return graph


def _cycles(graph: dict) -> list:
    found, state = [], {}

    def visit(n, stack):
        state[n] = 1
        stack.append(n)
        for d in sorted(graph.get(n, ())):
            if state.get(d) == 1:
                found.append(stack[stack.index(d) :] + [d])
            elif d not in state:
                visit(d, stack)
        stack.pop()
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n, [])
    return found


def test_engine_imports_have_no_cycle():
    """A walk of every import in linnet/ (function-level ones included) finds no cycle between its modules
    (a package's ``__init__`` importing its own submodules is not a cycle unless a submodule imports it back)."""
    graph = _module_graph()
    assert "linnet.calculus" in graph and "linnet._fastpaths.quadratic" in graph
    assert _cycles(graph) == []


def test_cycle_walk_can_fail():
    """Negative control: the walk reports a cycle that is there."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]


_TYPE_DISPATCH = re.compile(r"(type\([^)]*\)\s+is\s+\w*Loss)|(isinstance\([^)]*\b(SquaredLoss|LpLoss|HuberLoss)\b)")


def test_no_dispatch_on_loss_types_outside_losses_and_theory():
    offenders = []
    for path in _py_files("linnet"):
        rel = path.relative_to(ROOT).as_posix()
        if rel == "linnet/losses.py" or rel.startswith("linnet/theory/"):
            continue
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if _TYPE_DISPATCH.search(line):
                offenders.append(f"{rel}:{i}: {line.strip()}")
    assert offenders == []
    assert _TYPE_DISPATCH.search("if type(loss_fn) is SquaredLoss:")  # the pattern can fail


def test_fastpath_modules_and_functions_are_small():
    """One concept per module of linnet._fastpaths: at most 400 lines each, no function over 80 lines."""
    for path in _py_files("linnet/_fastpaths"):
        text = path.read_text(encoding="utf-8")
        assert len(text.splitlines()) <= 400, path.name
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef):
                assert node.end_lineno - node.lineno + 1 <= 80, f"{path.name}:{node.name}"


# ---- capabilities: a throw-away quadratic loss gets the fast path -----------------------------------------------


class _WeightedTarget(ln.Loss):
    r"""A quadratic loss no part of linnet knows: :math:`\ell(W) = \tfrac12\|(W - T)C\|_F^2`, i.e.
    :math:`\Lambda_{xx} = CC^\top`, :math:`\Lambda_{yx} = TCC^\top`, minimum 0 at :math:`W = T`."""

    finite_value_implies_finite_weights = True

    def __init__(self, T, C):
        self.T, self.C = T, C
        self.shape = tuple(T.shape)
        self.S = C @ C.T

    def value(self, W):
        E = (W - self.T) @ self.C
        return 0.5 * np.sum(E * E, axis=(-2, -1))

    def grad(self, W):
        return (W - self.T) @ self.S

    def hvp(self, W, D):
        return D @ self.S

    def astype(self, dtype):
        return self

    def quadratic_form(self):
        z = np.zeros(())
        return ln.QuadraticForm(self.S, self.T @ self.S, self.T, z, np.sum((self.T @ self.C) ** 2), None, 1.0, ())


def _weighted_target():
    rng = np.random.default_rng(0)
    return _WeightedTarget(rng.standard_normal((3, 4)), rng.standard_normal((4, 4)))


@pytest.mark.fastpath
def test_a_new_quadratic_loss_takes_the_fast_path_by_its_capability():
    """The kernel serves a loss it has never seen, through ``quadratic_form()`` alone, and agrees with the loss's
    own value/grad through the generic code."""
    loss = _weighted_target()
    Ws = ln.init.gaussian((4, 5, 5, 3), scale=0.5, batch=(300,), seed=1)
    xp = get_namespace("numpy")
    assert ln.backend.select_path(loss, Ws) == "numpy-quadratic"
    fast = _fastpaths.value_and_grads(loss, Ws, False, xp)
    assert fast is not None
    with ln.backend.fastpaths(False):
        assert ln.backend.select_path(loss, Ws) == "generic"
        ref = _step.value_and_grads(loss, Ws, False, xp)
    ln.testing.assert_close(fast[0], ref[0])
    for g, r in zip(fast[1], ref[1]):
        ln.testing.assert_close(g, r)
    H = ln.hessian(loss, tuple(W[0] for W in Ws))  # closed-form blocks from the same capability
    with ln.backend.fastpaths(False):
        H_ref = ln.hessian(ln.CallableLoss(loss.value, loss.grad, loss.hvp, shape=loss.shape), tuple(W[0] for W in Ws))
    ln.testing.assert_close(H, H_ref)
    run = ln.train.gd(loss, Ws, lr=0.02, steps=300)
    assert float(np.max(run.loss[-1])) < 0.5 * float(np.min(run.loss[0]))


@pytest.mark.fastpath
def test_a_loss_without_the_capability_stays_generic():
    loss = _weighted_target()
    plain = ln.CallableLoss(loss.value, loss.grad, loss.hvp, shape=loss.shape)
    Ws = ln.init.gaussian((4, 5, 3), scale=0.5, batch=(3,), seed=1)
    assert ln.backend.select_path(plain, Ws) == "numpy"
    assert ln.backend.select_path(
        loss, tuple(from_host(to_numpy(W), get_namespace("array_api_strict")) for W in Ws)
    ) == ("generic")


# ---- the switch -------------------------------------------------------------------------------------------------


def test_fastpaths_context_manager_restores_and_validates():
    before = ln.backend.fastpaths_enabled()
    with ln.backend.fastpaths(False):
        assert not ln.backend.fastpaths_enabled()
        with ln.backend.fastpaths(True):
            assert ln.backend.fastpaths_enabled()
        assert not ln.backend.fastpaths_enabled()
    assert ln.backend.fastpaths_enabled() == before
    with pytest.raises(ValueError, match="on"):
        with ln.backend.fastpaths("no"):
            pass


@pytest.mark.parametrize("value, expected", [("0", "generic"), ("1", "numpy-quadratic")])
def test_environment_variable_turns_fast_paths_off(value, expected):
    code = (
        "import numpy as np, linnet as ln; Ws = ln.init.gaussian((2, 3, 2), scale=0.5, seed=0);"
        "print(ln.backend.select_path(ln.SquaredLoss.whitened(np.eye(2)), Ws))"
    )
    env = dict(os.environ, LINNET_FASTPATHS=value, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == expected


def test_generic_and_fast_training_agree_bit_for_bit_under_the_switch():
    """gd through the NumPy kernel and buffers and gd through the array-API code on NumPy (the switch) give the
    same weights to the last bit (the kernel keeps the array code's roundings); the loss values, summed in another
    order by the kernel, agree to round-off."""
    loss = ln.SquaredLoss.whitened(np.diag([2.0, 1.0]))
    Ws = ln.init.gaussian((2, 4, 2), scale=0.5, batch=(5,), seed=0)
    fast = ln.train.gd(loss, Ws, lr=0.05, steps=40)
    with ln.backend.fastpaths(False):
        slow = ln.train.gd(loss, Ws, lr=0.05, steps=40)
    for a, b in zip(fast.weights, slow.weights):
        np.testing.assert_array_equal(a, b)
    ln.testing.assert_close(fast.loss, slow.loss)


# ---- residual must be a bool ------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["False", 0, 1.0, None])
def test_residual_must_be_a_real_bool(bad):
    loss = ln.SquaredLoss.whitened(np.eye(2))
    Ws = ln.init.gaussian((2, 2, 2), scale=0.5, seed=0)
    for call in (
        lambda: ln.loss(loss, Ws, residual=bad),
        lambda: ln.train.gd(loss, Ws, lr=0.1, steps=1, residual=bad),
        lambda: ln.landscape.classify(loss, Ws, residual=bad),
    ):
        with pytest.raises(ValueError, match="residual"):
            call()
    assert float(ln.loss(loss, Ws, residual=np.bool_(False))) == float(ln.loss(loss, Ws))


# ---- registries and the README ----------------------------------------------------------------------------------


def test_figure_registry_is_discovered_and_in_the_readme():
    import figures

    on_disk = {p.stem for p in (ROOT / "figures").glob("*.py") if not p.stem.startswith("_")}
    assert set(figures.NAMES) == on_disk
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [n for n in figures.NAMES if f'alt="{n}"' not in readme]
    assert missing == []


def test_check_registry_is_in_the_readme():
    from proofs_check._core import all_checks

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ids = [c.id for c in all_checks()]
    assert len(ids) >= 14
    assert [i for i in ids if f"| `{i}` |" not in readme] == []


def _check_ids():
    from proofs_check._core import all_checks

    return [c.id for c in all_checks()]


@pytest.mark.parametrize("check_id", _check_ids())
def test_every_registered_check_states_its_contract(check_id):
    """Parametrized over the registry: a new check module is picked up with nothing listed by hand."""
    from proofs_check import REGISTRY

    ch = REGISTRY[check_id]
    assert ch.title and ch.claim and ch.control_description
    assert ch.source and ch.id
    assert ch.status in ("CONFIRMED", "DERIVED+VERIFIED", "UNCONFIRMED", "MIXED")
    assert callable(ch.measure) and callable(ch.control)


@pytest.mark.parametrize("name", __import__("figures").discover())
def test_every_registered_figure_states_its_contract(name):
    import figures

    mod = figures.get(name)
    assert mod.NAME == name and isinstance(mod.ORDER, int)
    assert mod.TITLE and mod.SOURCE.startswith("THEOREMS.md") and mod.CAPTION.endswith(".")
    assert callable(mod.data) and callable(mod.make)


def test_num_threads_setting_and_environment(monkeypatch):
    from linnet._fastpaths import threads

    monkeypatch.setenv("LINNET_NUM_THREADS", "3")
    assert threads.num_threads() == 3
    ln.set_num_threads(2)
    try:
        assert threads.num_threads() == 2
    finally:
        ln.set_num_threads(None)
    monkeypatch.setenv("LINNET_NUM_THREADS", "zero")
    with pytest.raises(ValueError, match="LINNET_NUM_THREADS"):
        threads.num_threads()
    monkeypatch.delenv("LINNET_NUM_THREADS")
    assert threads.num_threads() == threads.usable_cores()
    with pytest.raises(ValueError, match="`n`"):
        ln.set_num_threads(0)
