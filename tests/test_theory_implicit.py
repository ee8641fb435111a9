"""Implicit-regularization closed forms (THEOREMS2 §16a, §20, §22) against independent computations."""

import numpy as np
import pytest
from scipy.linalg import null_space

import linnet as ln


def _problem(seed=0, m=5, d=12):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, d))
    b = np.zeros(d)
    b[:2] = (1.5, -1.0)
    return X, X @ b


def test_q2_closed_form_and_derivative():
    """Q^2_alpha equals alpha^2 sum q_2(beta/alpha^2) with q_2(z) = 2 - sqrt(4+z^2) + z arcsinh(z/2), and its
    central-difference derivative is arcsinh(z/2)."""
    z = np.linspace(-5, 5, 11)
    q = np.array([float(ln.theory.q_alpha(np.array([zi]), 1.0, 2)) for zi in z])
    np.testing.assert_allclose(q, 2 - np.sqrt(4 + z**2) + z * np.arcsinh(z / 2), rtol=1e-13, atol=1e-14)
    h = 1e-5
    for D in (2, 3, 4):
        zs = np.array([-3.0, -0.4, 0.7, 2.5])
        fd = (ln.theory.q_alpha(zs[:, None] + h, 1.0, D) - ln.theory.q_alpha(zs[:, None] - h, 1.0, D)) / (2 * h)
        # q' = h^{-1}: h(q'(z)) = z
        np.testing.assert_allclose(ln.theory.h_depth(fd, D), zs, rtol=1e-7)


@pytest.mark.parametrize("D", [2, 3])
@pytest.mark.parametrize("alpha", [2.0, 0.3, 0.01])
def test_argmin_is_feasible_and_minimal(D, alpha):
    X, y = _problem()
    b = ln.theory.q_alpha_argmin(X, y, alpha, D)
    np.testing.assert_allclose(X @ b, y, atol=1e-10)
    Z = null_space(X)
    rng = np.random.default_rng(1)
    q0 = float(ln.theory.q_alpha(b, alpha, D))
    for _ in range(20):
        z = Z @ rng.standard_normal(Z.shape[1])
        z *= 1e-2 * np.abs(b).max() / np.abs(z).max()
        assert float(ln.theory.q_alpha(b + z, alpha, D)) >= q0 * (1 - 1e-12)


def test_limits_kernel_and_rich():
    X, y = _problem()
    l1, l2 = ln.theory.min_l1_interpolant(X, y), ln.theory.min_l2_interpolant(X, y)
    assert np.abs(ln.theory.q_alpha_argmin(X, y, 30.0, 2) - l2).max() < 1e-5
    assert np.abs(ln.theory.q_alpha_argmin(X, y, 1e-4, 3) - l1).max() < 1e-4
    assert np.abs(l1).sum() <= np.abs(l2).sum()


def test_entropy_argmin_kkt():
    rng = np.random.default_rng(2)
    A = rng.standard_normal((3, 6))
    y = A @ np.array([1.0, 0.5, 0, 0, 0, 0])
    for alpha in (1.0, 0.1, 1e-4):
        x = ln.theory.entropy_argmin(A, y, alpha)
        np.testing.assert_allclose(A @ x, y, atol=1e-10)
        # log(x / alpha^2) lies in the row space of A
        r = np.log(x / alpha**2)
        coef = np.linalg.lstsq(A.T, r, rcond=None)[0]
        np.testing.assert_allclose(A.T @ coef, r, atol=1e-7 * max(1, np.abs(r).max()))


def test_gfs_sharpness_against_the_flow():
    y = 1.5
    for w in ([2.0, 0.5], [0.3, 1.2, 2.0]):
        Ws = tuple(np.array([[v]]) for v in w)
        run = ln.diagonal.flow(ln.SquaredLoss.whitened(np.array([[y]])), Ws, t_max=200.0, rtol=1e-12, atol=1e-14)
        wf = np.array([float(W[0, 0]) for W in run.weights])
        np.testing.assert_allclose(float(ln.theory.gfs_sharpness(np.array(w), y)), y**2 * np.sum(1 / wf**2), rtol=1e-8)
    N = 3
    assert float(ln.theory.gfs_sharpness(np.ones(N), 8.0)) == pytest.approx(N * 8.0 ** (2 - 2 / N), rel=1e-14)


def test_validation():
    X, y = _problem()
    with pytest.raises(ValueError, match="`depth` must be an int >= 2"):
        ln.theory.q_alpha_argmin(X, y, 1.0, 1)
    with pytest.raises(ValueError, match="`alpha` must be finite and > 0"):
        ln.theory.q_alpha(np.zeros(3), -1.0, 2)
    with pytest.raises(ValueError, match="`y` must be finite and nonzero"):
        ln.theory.gfs_sharpness(np.ones(2), 0.0)
    with pytest.raises(ValueError, match="must lie in"):
        ln.theory.h_depth(np.array([1.5]), 3)
