"""The main job catches a broken engine: each registered fault (tests/faults.py), injected alone, makes a check
whose subject it touches fail. A fast subset runs in CI; every fault under ``-m slow``."""

import importlib.util
import pathlib
import sys

import pytest

from proofs_check import _core, cli


def _load_faults():
    name = "linnet_fault_registry"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, pathlib.Path(__file__).with_name("faults.py"))
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


F = _load_faults()

# cheap faults spread over the areas (each runs only the checks it names, up to the first that fails): about a
# minute in all
FAST = (
    "whitened-value-x2-kernel",
    "lp-hvp-exponent",
    "sgd-minibatch-scaled-by-m",
    "divergence-never-detected",
    "momentum-beta-ignored-numpy",
    "eigsh-largest-magnitude",
    "classify-index1-not-strict",
    "lean-hvp-term-dropped",
    "saxe-deep-exponent",
    "hessian-layer-signs",
    # part 2 (s15-s22)
    "gfs-sharpness-half-log",
    "diagonal-hvp-last-direction-dropped",
    "ivp-tolerances-ignored",
)


def test_registry():
    ids = [c.id for c in _core.all_checks()]
    assert len(F.FAULTS) >= 25
    areas = {f.area for f in F.FAULTS.values()}
    assert {"product", "losses", "calculus", "theory", "trainers", "landscape", "fast path", "init"} <= areas
    assert {"diagonal", "tied", "ivp"} <= areas  # part 2's engine
    part2 = {
        f.name
        for f in F.FAULTS.values()
        if any(p.startswith(("s15", "s16", "s17", "s18", "s19", "s2")) for p in f.checks)
    }
    assert len(part2) >= 12, part2
    for f in F.FAULTS.values():
        assert f.checks, f.name
        for prefix in f.checks:  # every named check exists
            assert any(i.startswith(prefix) for i in ids), (f.name, prefix)
    assert set(FAST) <= set(F.FAULTS)


def test_injection_is_undone():
    """A fault is active inside ``injected`` only (the registry's seams are restored afterwards)."""
    import linnet.product as p

    before = p.pullback
    with F.injected("pullback-sign"):
        assert p.pullback is not before
    assert p.pullback is before


def test_injection_clears_check_caches():
    """Runs a check cached under the clean engine must not answer under a fault, nor the fault's after it."""
    check = _core.REGISTRY["s20-diagonal-nets"]
    check._cache = {"stale": 1}
    with F.injected("diagonal-lift-sign"):
        assert check._cache == {}
        check._cache = {"under the fault": 1}
    assert check._cache == {}


def _caught(name, monkeypatch):
    f = F.FAULTS[name]
    F.clear_check_caches()  # results cached by a check under the clean engine (or another fault) must not answer
    f.inject(monkeypatch)
    ids = [c.id for c in _core.all_checks() if c.id.startswith(f.checks)]
    failing = []
    try:
        for cid in ids:
            rc = cli.main(["-q", "-k", cid], stdout=_Null(), stderr=_Null())
            if rc != 0:
                failing.append(cid)
                break  # one named check failing is enough
    finally:
        F.clear_check_caches()  # nor may results computed under the fault outlive it
    return failing


class _Null:
    def write(self, s):
        return len(s)

    def flush(self):
        pass


@pytest.mark.parametrize("name", FAST)
def test_fast_fault_caught(name, monkeypatch):
    assert _caught(name, monkeypatch), f"fault {name!r} passed every check it names"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(F.FAULTS) - set(FAST)))
def test_fault_caught(name, monkeypatch):
    assert _caught(name, monkeypatch), f"fault {name!r} passed every check it names"
