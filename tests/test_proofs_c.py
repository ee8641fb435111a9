"""Checks of THEOREMS.md §5-§8 (proofs_check group C): each theorem holds and each negative control fails."""

import math

import numpy as np
import pytest

import linnet as ln
from proofs_check import REGISTRY, Context
from proofs_check.checks import s05_no_bad_minima as s05
from proofs_check.checks import s05b_saddles as s05b
from proofs_check.checks import s06_baldi_hornik as s06

CTX = Context()


def _parts(m):
    return {k: v for k, v in m.details.items() if isinstance(v, dict) and "holds" in v}


# ---- §5 no bad minima -------------------------------------------------------------------------------------
def test_no_bad_minima_small_ensemble_all_global():
    """A small batched ensemble (with a bottleneck) has no non-global second-order stationary end point."""
    check = REGISTRY["no-bad-minima"]
    ens = check.ensembles(CTX, configs=((5, 2, 4), (4, 4, 4, 3)), per_config=24)
    assert sum(e.violations for e in ens) == 0
    assert sum(e.global_ for e in ens) == 48
    assert max(e.max_global_gap for e in ens) <= 1e-8


def test_no_bad_minima_closed_form_and_brute_force():
    """global_min matches the host reduced-rank formula and no rank-r competitor beats it."""
    closed, brute = REGISTRY["no-bad-minima"].closed_form(CTX)
    assert closed.holds and closed.figure <= 1e-12
    assert brute.holds and brute.figure >= -1e-10


def test_no_bad_minima_control_fails():
    """The double well lifted to l(w2 w1) has non-global second-order stationary end points."""
    m = REGISTRY["no-bad-minima"].control(CTX)
    assert not m.holds
    assert m.figure >= 1


def test_double_well_min_is_the_left_well():
    """The brute-force minimum of the double well is at z ~ -1.036, below the local well at z ~ 0.96."""
    z = np.linspace(-2, 2, 400_001)
    assert s05.double_well_min(1) == pytest.approx(float(np.min((z * z - 1) ** 2 + 0.3 * z)), abs=1e-9)


def test_rrr_value_matches_engine_rrr():
    """The host reduced-rank value used as reference equals ln.theory.rrr on a bottleneck instance."""
    X, Y = s05.regression_data(np.random.default_rng(3), 6, 5, 48)
    loss = ln.SquaredLoss.from_data(X, Y)
    assert s05.rrr_value(X, Y, 2) == pytest.approx(float(ln.theory.rrr(loss, 2).value), rel=1e-12)


# ---- §5 saddles -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def saddles():
    check = REGISTRY["saddles"]
    return check.measure(CTX), check.control(CTX)


def test_saddles_hold(saddles):
    m, _ = saddles
    assert m.holds, m.details


def test_saddles_control_fails_on_both_conclusions(saddles):
    _, c = saddles
    parts = _parts(c)
    assert not c.holds
    assert not parts["depth 2 origin strict"]["holds"]
    assert not parts["depth>=3 descent ~ t^N"]["holds"]
    # the aligned path never goes down (it rises like t^(2N), below round-off at the smallest t)
    assert not parts["depth>=3 aligned path descends"]["holds"]


def test_walsh_data_is_exactly_uncorrelated():
    X, Y = s05b.walsh_uncorrelated(5, 4)
    assert np.all(Y @ X.T == 0)
    assert np.linalg.matrix_rank(X) == 5


# ---- §6 Baldi-Hornik --------------------------------------------------------------------------------------
def test_baldi_hornik_holds():
    m = REGISTRY["baldi-hornik"].measure(CTX)
    assert m.holds, m.details


def test_baldi_hornik_control_fails():
    c = REGISTRY["baldi-hornik"].control(CTX)
    assert not c.holds
    assert c.figure > 1e-6  # every slipped point has a clearly nonzero gradient


def test_index_formula_small_case():
    """Index formula on lambda = (3, 2, 1), p = 1: the origin has index 3 and I = {1} index 0."""
    lam = np.array([3.0, 2.0, 1.0])
    assert [s06.index_formula(I, lam, 1) for I in [(), (0,), (1,), (2,)]] == [3, 0, 1, 2]
    assert math.comb(3, 1) + 1 == 4
