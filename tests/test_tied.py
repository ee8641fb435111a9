"""The tied factorization W2 = W1^T (end-to-end W1^T W1): gradient and HVP against central differences and
sympy, dtype and batching, validation, and its flow trainer."""

import numpy as np
import pytest
import sympy as sp

import linnet as ln
from linnet._backend import from_host, to_numpy
from linnet.testing import tolerances

FD_RTOL = 1e-6  # central differences, h = eps^(1/3): error O(eps^(2/3)) relative to third derivatives of order 1


def _sensing(rng, n, m):
    """A symmetric-measurement sensing loss as a CallableLoss (sum_k (<A_k, W> - y_k)^2 / (2m))."""
    A = rng.standard_normal((m, n, n))
    A = A + np.swapaxes(A, -1, -2)
    y = rng.standard_normal(m)

    def r(W):
        return np.einsum("kab,...ab->...k", A, W) - y

    return ln.CallableLoss(
        lambda W: 0.5 * np.sum(r(W) ** 2, axis=-1) / m,
        lambda W: np.einsum("...k,kab->...ab", r(W), A) / m,
        lambda W, D: np.einsum("...k,kab->...ab", np.einsum("kab,...ab->...k", A, D), A) / m,
        shape=(n, n),
    )


@pytest.mark.parametrize("shape", [(3, 3), (2, 4)])
def test_grad_and_hvp_against_finite_differences(shape):
    rng = np.random.default_rng(shape[0])
    loss = _sensing(rng, shape[1], 5)
    W1 = rng.standard_normal(shape)
    h = np.finfo(np.float64).eps ** (1 / 3)
    E = np.eye(W1.size).reshape(-1, *shape)
    fd = np.array([(ln.tied.loss(loss, W1 + h * e) - ln.tied.loss(loss, W1 - h * e)) / (2 * h) for e in E])
    g = ln.tied.grad(loss, W1).ravel()
    np.testing.assert_allclose(g, fd, rtol=FD_RTOL, atol=FD_RTOL * np.abs(fd).max())
    V = rng.standard_normal(shape)
    Hv = ln.tied.hvp(loss, W1, V)
    fdh = (ln.tied.grad(loss, W1 + h * V) - ln.tied.grad(loss, W1 - h * V)) / (2 * h)
    np.testing.assert_allclose(Hv, fdh, rtol=FD_RTOL, atol=FD_RTOL * np.abs(fdh).max())
    H = ln.tied.hessian(loss, W1)
    rt, _ = tolerances(np.float64)
    np.testing.assert_allclose(H @ V.ravel(), Hv.ravel(), rtol=rt, atol=rt * np.abs(Hv).max())


def test_against_sympy():
    """Exact gradient and Hessian of 1/2 ||U^T U - Phi||_F^2 at a rational point."""
    rng = np.random.default_rng(1)
    k, n = 2, 2
    U = sp.Matrix(k, n, lambda a, b: sp.Symbol(f"u{a}{b}", real=True))
    Phi = sp.Matrix(n, n, [sp.Rational(int(v), 4) for v in rng.integers(-4, 5, size=n * n)])
    R = U.T * U - Phi
    expr = sum(r**2 for r in R) / 2
    syms = list(U)
    point = {s: sp.Rational(int(v), 3) for s, v in zip(syms, rng.integers(-3, 4, size=len(syms)))}
    g_ex = np.array([float(sp.diff(expr, s).subs(point)) for s in syms])
    H_ex = np.array([[float(sp.diff(expr, a, b).subs(point)) for b in syms] for a in syms])
    loss = ln.SquaredLoss.whitened(np.array(Phi.tolist(), dtype=float))
    W1 = np.array([[float(point[U[a, b]]) for b in range(n)] for a in range(k)])
    rt, at = tolerances(np.float64)
    np.testing.assert_allclose(ln.tied.grad(loss, W1).ravel(), g_ex, rtol=rt, atol=at * max(1, np.abs(g_ex).max()))
    np.testing.assert_allclose(ln.tied.hessian(loss, W1), H_ex, rtol=rt, atol=at * max(1, np.abs(H_ex).max()))


def test_dtype_and_batch_on_every_backend(xp, dtype_name):
    rng = np.random.default_rng(2)
    Phi = rng.standard_normal((3, 3))
    W1 = rng.standard_normal((4, 2, 3))
    loss = ln.SquaredLoss.whitened(from_host(Phi, xp, dtype_name))
    Wx = from_host(W1, xp, dtype_name)
    g = ln.tied.grad(loss, Wx)
    assert g.dtype == Wx.dtype and tuple(g.shape) == (4, 2, 3)
    assert tuple(ln.tied.hessian(loss, Wx).shape) == (4, 6, 6)
    ref = ln.tied.grad(ln.SquaredLoss.whitened(Phi), W1[2])
    rt, _ = tolerances(Wx.dtype)
    np.testing.assert_allclose(to_numpy(g)[2], ref, rtol=rt, atol=rt * np.abs(ref).max())


def test_validation():
    loss = ln.SquaredLoss.whitened(np.eye(2))
    with pytest.raises(ValueError, match="`W1` must be one array"):
        ln.tied.loss(loss, (np.ones((2, 2)),))
    with pytest.raises(ValueError, match="`W1` must be finite"):
        ln.tied.grad(loss, np.full((2, 2), np.inf))
    with pytest.raises(ValueError, match="disagree"):
        ln.tied.grad(loss, np.ones((2, 3)))
    with pytest.raises(ValueError, match="`V` must have shape"):
        ln.tied.hvp(loss, np.ones((2, 2)), np.ones((3, 2)))
    with pytest.raises(ValueError, match="`t_max` must be finite and > 0"):
        ln.tied.flow(loss, np.ones((2, 2)), t_max=-1.0)


def test_flow_against_closed_form():
    """Scalar tied net u: d(u^2)/dt = 4 u^2 (y - u^2), a logistic ODE with closed form."""
    y, a, T = 1.5, 0.2, 1.0
    run = ln.tied.flow(ln.SquaredLoss.whitened(np.array([[y]])), np.array([[a]]), t_max=T, rtol=1e-12, atol=1e-14)
    x = y / (1 + (y / a**2 - 1) * np.exp(-4 * y * T))
    np.testing.assert_allclose(run.weights[0][0, 0] ** 2, x, rtol=1e-9)
