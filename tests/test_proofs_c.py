"""Checks of THEOREMS.md §5-§8 (proofs_check group C): each theorem holds and each negative control fails."""

import math

import numpy as np
import pytest

import linnet as ln
from proofs_check import REGISTRY, Context
from proofs_check.checks import s05_no_bad_minima as s05
from proofs_check.checks import s05b_saddles as s05b
from proofs_check.checks import s06_baldi_hornik as s06
from proofs_check.checks import s07_laurent_von_brecht as s07
from proofs_check.checks import s08_hardt_ma as s08

CTX = Context()


def _parts(m):
    return {k: v for k, v in m.details.items() if isinstance(v, dict) and "holds" in v}


# ---- §5 no bad minima -------------------------------------------------------------------------------------
def test_no_bad_minima_small_ensemble_all_global():
    """A small batched ensemble (with a bottleneck) has no non-global second-order stationary end point."""
    check = REGISTRY["s05-no-bad-minima"]
    ens = check.ensembles(CTX, configs=((5, 2, 4), (4, 4, 4, 3)), per_config=24)
    assert sum(e.violations for e in ens) == 0
    assert sum(e.global_ for e in ens) == 48
    assert max(e.max_global_gap for e in ens) <= 1e-8
    # two planted strict saddles per configuration, each found to be one
    assert sum(e.planted for e in ens) == 4
    assert sum(e.planted_strict for e in ens) == 4 == sum(e.strict_saddle for e in ens)


def test_no_bad_minima_saddle_branch_can_fail(monkeypatch):
    """A Hessian that reports no negative curvature turns the planted saddles into violations."""
    monkeypatch.setattr(s05, "hessian_extremes", lambda loss, Ws, idx, xp: (np.zeros(len(idx)), np.ones(len(idx))))
    ens = REGISTRY["s05-no-bad-minima"].ensembles(CTX, configs=((5, 2, 4),), per_config=8)
    assert ens[0].planted == 2 and ens[0].planted_strict == 0 and ens[0].violations == 2


def test_no_bad_minima_closed_form_and_brute_force():
    """global_min matches the host reduced-rank formula and no rank-r competitor beats it."""
    closed, brute = REGISTRY["s05-no-bad-minima"].closed_form(CTX)
    assert closed.holds and closed.figure <= 1e-12
    assert brute.holds and brute.figure >= -1e-10


def test_no_bad_minima_control_fails():
    """The double well lifted to l(w2 w1) has non-global second-order stationary end points."""
    m = REGISTRY["s05-no-bad-minima"].control(CTX)
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
    check = REGISTRY["s05b-saddles"]
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


def test_saddles_control_has_no_gap_above_the_global_value(saddles):
    m, c = saddles
    assert _parts(m)["depth>=3 lifted non-top points above L*"]["figure"] > 0.1
    assert not _parts(c)["depth>=3 lifted non-top points above L*"]["holds"]


def test_lifted_point_is_critical_and_swap_rule():
    X, Y = s05.regression_data(np.random.default_rng(5), 4, 3, 32)
    loss = ln.SquaredLoss.from_data(X, Y)
    widths = (4, 2, 3, 3)
    lam = s05b.host_sigma(loss)[0]
    for I, strict in [((0,), False), ((1,), True), ((0, 2), True)]:
        assert s05b.has_swap(I, lam) == strict
        Ws = s05b.lifted_point(CTX, loss, I, widths, np.random.default_rng(0))
        assert s05b.deep_relative_grad(loss, Ws) < 1e3 * np.finfo(np.float64).eps
        e = np.linalg.eigvalsh(ln.hessian(loss, Ws))
        assert (e[0] < -1e-8 * np.max(np.abs(e))) == strict
    # off the critical point (one layer scaled): the relative gradient is O(1), so the criterion can fail
    Ws = list(s05b.lifted_point(CTX, loss, (1,), widths, np.random.default_rng(0)))
    Ws[0] = 1.5 * Ws[0]
    assert s05b.deep_relative_grad(loss, tuple(Ws)) > 1e-3


def test_walsh_data_is_exactly_uncorrelated():
    X, Y = s05b.walsh_uncorrelated(5, 4)
    assert np.all(Y @ X.T == 0)
    assert np.linalg.matrix_rank(X) == 5


# ---- §6 Baldi-Hornik --------------------------------------------------------------------------------------
def test_baldi_hornik_holds():
    m = REGISTRY["s06-baldi-hornik"].measure(CTX)
    assert m.holds, m.details


def test_baldi_hornik_control_fails():
    c = REGISTRY["s06-baldi-hornik"].control(CTX)
    assert not c.holds
    assert c.figure > 1e-6  # every slipped point has a clearly nonzero gradient


def test_index_formula_small_case():
    """Index formula on lambda = (3, 2, 1), p = 1: the origin has index 3 and I = {1} index 0."""
    lam = np.array([3.0, 2.0, 1.0])
    assert [s06.index_formula(I, lam, 1) for I in [(), (0,), (1,), (2,)]] == [3, 0, 1, 2]
    assert math.comb(3, 1) + 1 == 4


def test_index_formula_zero_eigenvalue_clause():
    """q = n + 1: lambda_q = 0 up to round-off must not count as a negative direction of a free hidden unit."""
    lam = np.array([3.0, 2.0, 1e-16])
    assert s06.index_formula((0,), lam, 2) == 2  # the round-off sign decides without a threshold
    assert s06.index_formula((0,), lam, 2, zero=1e-12) == 1
    assert s06.clause_matters((0,), lam, 2, 1e-12) and not s06.clause_matters((0, 2), lam, 2, 1e-12)


def test_baldi_hornik_has_a_q_above_n_instance():
    assert any(q == n + 1 for n, q, _ in s06.INSTANCES)
    details = REGISTRY["s06-baldi-hornik"].measure(CTX).details
    assert details["lambda_j > 0 clause exercised (q = n + 1)"]["figure"] > 0


# ---- §7 Laurent-von Brecht --------------------------------------------------------------------------------
def test_laurent_von_brecht_holds():
    m = REGISTRY["s07-laurent-von-brecht"].measure(CTX)
    assert m.holds, m.details
    assert set(_parts(m)) == {"l4", "Huber", "quadratic (metric Sxx)", "logistic", "trainer_replay (worst problem)"}


def test_laurent_von_brecht_control_fails():
    c = REGISTRY["s07-laurent-von-brecht"].control(CTX)
    assert not c.holds
    assert c.figure > 0.1  # a whole well above the global value, not round-off


def test_logistic_loss_derivatives_match_finite_differences():
    """The logistic CallableLoss: gradient and HVP agree with central differences, and it is convex (HVP PSD)."""
    rng = np.random.default_rng(7)
    X = rng.standard_normal((3, 20))
    Y = np.sign(rng.standard_normal((2, 20)))
    loss = s07.logistic_loss(X, Y)
    W, D = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    h = 1e-6
    fd = (loss.value(W + h * D) - loss.value(W - h * D)) / (2 * h)
    assert float(fd) == pytest.approx(float(np.sum(loss.grad(W) * D)), rel=1e-7)
    fd2 = (loss.grad(W + h * D) - loss.grad(W - h * D)) / (2 * h)
    np.testing.assert_allclose(fd2, loss.hvp(W, D), rtol=1e-6, atol=1e-9)
    assert float(np.sum(D * loss.hvp(W, D))) > 0


def test_convex_min_reference_is_stationary():
    """The host reference minimiser of the l4 problem has a vanishing gradient."""
    host = s07.problems(np.random.default_rng(1), 3, 2, 20)["l4"][1]
    mv, We = s07.convex_min(host, np.random.default_rng(2))
    assert np.max(np.abs(host.grad(We))) <= 1e-10
    assert mv == pytest.approx(float(host.value(We)))


# ---- §8 Hardt-Ma ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hardt_ma():
    check = REGISTRY["s08-hardt-ma"]
    return check.measure(CTX), check.control(CTX)


def test_hardt_ma_holds_with_corrected_inequality(hardt_ma):
    m, _ = hardt_ma
    assert m.holds, m.details
    parts = _parts(m)
    # the printed eq. (2.3) fails at A_i = -tau I by exactly the factor (1 - tau)^(l - 1) = 0.7^5
    assert parts["printed (2.3) FAILS at A_i = -tau I"]["figure"] == pytest.approx(0.7**5, rel=1e-12)
    assert parts["corrected (2.3) tight at A_i = -tau I"]["figure"] <= 1e-12


def test_hardt_ma_both_controls_fail(hardt_ma):
    _, c = hardt_ma
    parts = _parts(c)
    assert not c.holds
    assert not parts["det R < 0: GD from 0 reaches C"]["holds"]
    assert not parts["tau = 1: critical point A_1 = A_2 = -I is global"]["holds"]


def test_hardt_ma_det_negative_floor():
    """For det R < 0, f - C >= sigma_min(Sigma) sigma_min(R)^2 on random points of the open unit ball."""
    rng = np.random.default_rng(5)
    R, Sigma = s08.random_target(rng, 3, 0.5, sign=-1), s08.random_spd(rng, 3)
    assert np.linalg.det(R) < 0
    As = tuple(s08.ball_samples(rng, 4, 3, 0.99, 200))
    excess, _, conv = s08.risk_and_grad(s08.hm_loss(CTX, R, Sigma), As, R, Sigma)
    floor = np.linalg.eigvalsh(Sigma)[0] * np.linalg.svd(R, compute_uv=False)[-1] ** 2
    assert np.min(excess) >= floor
    assert conv <= 1e-13


def test_hardt_ma_tau_one_point_is_critical():
    """A_1 = A_2 = -I zeroes every gradient term exactly."""
    rng = np.random.default_rng(6)
    R, Sigma = s08.random_target(rng, 3, 0.3), s08.random_spd(rng, 3)
    As = (-np.eye(3), -np.eye(3), 0.5 * np.eye(3))
    rel, g = s08.critical_is_global(CTX, R, Sigma, As)
    assert g == 0.0 and rel > 0.1
