"""Low-rank helpers (linnet.theory.lowrank): effective/stable rank against direct formulas, generators, and the
nuclear-norm reference against its own certificate and feasible perturbations (THEOREMS2.md §15)."""

import numpy as np
import pytest

import linnet as ln
from linnet._backend import from_host, to_numpy
from linnet.theory import lowrank as lr


def test_effective_and_stable_rank_match_the_definitions(xp, dtype_name):
    rng = np.random.default_rng(0)
    W = rng.standard_normal((3, 4, 5)) * np.array([1.0, 1e-3, 10.0])[:, None, None]
    er = np.asarray(to_numpy(lr.effective_rank(from_host(W, xp, dtype_name))), dtype=np.float64)
    sr = np.asarray(to_numpy(lr.stable_rank(from_host(W, xp, dtype_name))), dtype=np.float64)
    tol = 1e3 * float(np.finfo(dtype_name).eps)
    for i in range(3):
        s = np.linalg.svd(W[i], compute_uv=False)
        p = s / s.sum()
        np.testing.assert_allclose(er[i], np.exp(-np.sum(p * np.log(p))), rtol=tol)
        np.testing.assert_allclose(sr[i], np.sum(s**2) / s[0] ** 2, rtol=tol)
    assert float(lr.effective_rank(np.diag([3.0, 3.0, 3.0, 0.0]))) == pytest.approx(3.0, rel=1e-14)
    assert float(lr.effective_rank(np.outer([1.0, 2.0], [3.0, 1.0, 1.0]))) == pytest.approx(1.0, rel=1e-12)
    assert float(lr.effective_rank(np.zeros((3, 3)))) == 0.0 and float(lr.stable_rank(np.zeros((2, 2)))) == 0.0


def test_generators_are_seeded_and_exact():
    M = lr.low_rank_matrix((6, 7), 2, singular_values=[3.0, 1.5], seed=4)
    s = np.linalg.svd(M, compute_uv=False)
    np.testing.assert_allclose(s[:2], [3.0, 1.5], rtol=1e-13)
    assert s[2] < 1e-13
    np.testing.assert_array_equal(M, lr.low_rank_matrix((6, 7), 2, singular_values=[3.0, 1.5], seed=4))
    mask = lr.random_mask((6, 7), 20, seed=1)
    assert mask.dtype == bool and mask.sum() == 20
    np.testing.assert_array_equal(mask, lr.random_mask((6, 7), 20, seed=1))
    assert not np.array_equal(mask, lr.random_mask((6, 7), 20, seed=2))
    A, y = lr.gaussian_measurements(M, 9, seed=3)
    np.testing.assert_allclose(y, np.einsum("kij,ij->k", A, M), rtol=1e-12)
    assert float(ln.LinearMeasurementLoss(A, y).value(M)) < 1e-25


def test_unobserved_error():
    M = np.arange(1.0, 7.0).reshape(2, 3)
    mask = np.array([[True, False, True], [False, True, True]])
    W = M.copy()
    W[0, 1] += 3.0
    W[0, 0] += 100.0  # observed: ignored
    assert float(lr.unobserved_error(W, M, mask)) == pytest.approx(3.0 / np.hypot(2.0, 4.0), rel=1e-14)
    with pytest.raises(ValueError, match="`mask`"):
        lr.unobserved_error(W, M, np.ones((2, 3), dtype=bool))


def test_min_nuclear_norm_is_certified_and_beats_feasible_perturbations():
    n = 8
    M = lr.low_rank_matrix((n, n), 2, singular_values=[2.0, 1.0], seed=5)
    mask = lr.random_mask((n, n), 30, seed=6)
    loss = ln.MatrixCompletionLoss(M, mask)
    sol = lr.min_nuclear_norm(loss, None, tol=1e-9)
    assert sol.gap <= 1e-9 * sol.nuclear_norm and sol.gap >= -1e-12
    assert sol.residual < 1e-10
    np.testing.assert_allclose(sol.X[mask], M[mask], atol=1e-10)
    rng = np.random.default_rng(7)
    for _ in range(50):  # moving the unobserved entries never lowers the nuclear norm below the certified bound
        N = rng.standard_normal((n, n)) * (~mask) * 0.1
        assert np.linalg.svd(sol.X + N, compute_uv=False).sum() >= sol.dual_bound - 1e-12
    # with every entry observed the minimizer is M itself
    full = lr.min_nuclear_norm(ln.MatrixCompletionLoss(M, np.ones((n, n), dtype=bool)), None)
    np.testing.assert_allclose(full.X, M, atol=1e-9)
    # well-posed Gaussian sensing (m = 3 r (2n - r)) recovers the rank-2 matrix (Recht, Fazel & Parrilo 2010)
    A, y = lr.gaussian_measurements(M, 3 * 2 * (2 * n - 2), seed=8)
    np.testing.assert_allclose(lr.min_nuclear_norm(A, y, tol=1e-10).X, M, atol=1e-6)


@pytest.mark.parametrize(
    "call, arg",
    [
        (lambda: lr.low_rank_matrix((3, 3), 4), "`rank`"),
        (lambda: lr.low_rank_matrix((3, 3), 2, singular_values=[1.0]), "`singular_values`"),
        (lambda: lr.random_mask((3, 3), 10), "`m`"),
        (lambda: lr.gaussian_measurements(np.ones((2, 2)), 0), "`m`"),
        (lambda: lr.min_nuclear_norm(np.ones((3, 2, 2)), np.ones(2)), "`A`"),
        (lambda: lr.min_nuclear_norm(np.ones((3, 2, 2)), None), "`A`"),
        (lambda: lr.effective_rank(np.ones(3)), "`W`"),
    ],
)
def test_bad_input(call, arg):
    with pytest.raises(ValueError, match=arg):
        call()
