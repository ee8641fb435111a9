"""The diagonal (Hadamard) product map: gradients and HVPs against central differences and sympy, batching,
dtype, validation, and its GD / flow trainers."""

import numpy as np
import pytest
import sympy as sp

import linnet as ln
from linnet._backend import from_host, to_numpy
from linnet.testing import assert_close, tolerances

# central differences with h = eps^(1/3) have error O(eps^(2/3)) relative to third derivatives of order 1
FD_RTOL = 1e-6


def _problem(rng, N=3, shape=(2, 3), m=4):
    X = rng.standard_normal((shape[1], m))
    Y = rng.standard_normal((shape[0], m))
    Ws = tuple(rng.standard_normal(shape) for _ in range(N))
    return ln.SquaredLoss.from_data(X, Y), Ws


def _flat_loss(loss, Ws, theta):
    shapes = [W.shape for W in Ws]
    n = int(np.prod(shapes[0]))
    return float(ln.diagonal.loss(loss, tuple(theta[j * n : (j + 1) * n].reshape(s) for j, s in enumerate(shapes))))


def test_end_to_end_is_hadamard_product():
    rng = np.random.default_rng(0)
    Ws = tuple(rng.standard_normal((3, 2)) for _ in range(4))
    assert_close(ln.diagonal.end_to_end(Ws), Ws[0] * Ws[1] * Ws[2] * Ws[3])


@pytest.mark.parametrize("N", [1, 2, 3, 5])
def test_grad_and_hvp_against_finite_differences(N):
    rng = np.random.default_rng(N)
    loss, Ws = _problem(rng, N=N)
    theta = np.concatenate([W.ravel() for W in Ws])
    g = np.concatenate([a.ravel() for a in ln.diagonal.grad(loss, Ws)])
    h = np.finfo(np.float64).eps ** (1 / 3)
    fd = np.array(
        [
            (_flat_loss(loss, Ws, theta + h * e) - _flat_loss(loss, Ws, theta - h * e)) / (2 * h)
            for e in np.eye(theta.size)
        ]
    )
    np.testing.assert_allclose(g, fd, rtol=FD_RTOL, atol=FD_RTOL * np.abs(fd).max())
    H = ln.diagonal.hessian(loss, Ws)
    Vs = tuple(rng.standard_normal(W.shape) for W in Ws)
    v = np.concatenate([V.ravel() for V in Vs])
    Hv = np.concatenate([a.ravel() for a in ln.diagonal.hvp(loss, Ws, Vs)])
    rt, _ = tolerances(np.float64)
    np.testing.assert_allclose(H @ v, Hv, rtol=rt, atol=rt * np.abs(Hv).max())
    # HVP against central differences of the gradient
    n = Ws[0].size

    def gflat(t):
        return np.concatenate(
            [
                a.ravel()
                for a in ln.diagonal.grad(loss, tuple(t[j * n : (j + 1) * n].reshape(Ws[0].shape) for j in range(N)))
            ]
        )

    fdh = (gflat(theta + h * v) - gflat(theta - h * v)) / (2 * h)
    np.testing.assert_allclose(Hv, fdh, rtol=FD_RTOL, atol=FD_RTOL * np.abs(fdh).max())


def test_hessian_against_sympy():
    """Exact gradient and Hessian of l(w3*w2*w1) for a 1x2 diagonal net and rational data."""
    rng = np.random.default_rng(3)
    N, d, m = 3, 2, 3
    syms = [[sp.Symbol(f"w{j}_{i}", real=True) for i in range(d)] for j in range(N)]
    Xq = [[sp.Rational(int(k), 4) for k in rng.integers(-4, 5, size=m)] for _ in range(d)]
    Yq = [sp.Rational(int(k), 4) for k in rng.integers(-4, 5, size=m)]
    beta = [syms[0][i] * syms[1][i] * syms[2][i] for i in range(d)]
    expr = sum((sum(beta[i] * Xq[i][s] for i in range(d)) - Yq[s]) ** 2 for s in range(m)) / (2 * m)
    flat = [s for layer in syms for s in layer]
    point = {s: sp.Rational(int(k), 3) for s, k in zip(flat, rng.integers(-3, 4, size=len(flat)))}
    g_ex = np.array([float(sp.diff(expr, s).subs(point)) for s in flat])
    H_ex = np.array([[float(sp.diff(expr, a, b).subs(point)) for b in flat] for a in flat])
    X = np.array([[float(x) for x in row] for row in Xq])
    Y = np.array([[float(y) for y in Yq]])
    loss = ln.SquaredLoss.from_data(X, Y)
    Ws = tuple(np.array([[float(point[s]) for s in layer]]) for layer in syms)
    g = np.concatenate([a.ravel() for a in ln.diagonal.grad(loss, Ws)])
    rt, at = tolerances(np.float64)
    np.testing.assert_allclose(g, g_ex, rtol=rt, atol=at * max(1.0, np.abs(g_ex).max()))
    np.testing.assert_allclose(ln.diagonal.hessian(loss, Ws), H_ex, rtol=rt, atol=at * max(1.0, np.abs(H_ex).max()))


def test_batched_nets_and_dtype_on_every_backend(xp, dtype_name):
    rng = np.random.default_rng(5)
    loss, Ws = _problem(rng, N=3)
    Wb = tuple(np.stack([W, 2 * W]) for W in Ws)  # a batch of 2 nets
    X, Y = loss.data
    lossx = ln.SquaredLoss.from_data(from_host(X, xp, dtype_name), from_host(Y, xp, dtype_name))
    Wx = tuple(from_host(W, xp, dtype_name) for W in Wb)
    gs = ln.diagonal.grad(lossx, Wx)
    assert all(g.dtype == Wx[0].dtype and tuple(g.shape) == (2, 2, 3) for g in gs)
    Hv = ln.diagonal.hvp(lossx, Wx, Wx)
    assert all(h.dtype == Wx[0].dtype for h in Hv)
    ref = ln.diagonal.grad(loss, tuple(W[1] for W in Wb))
    rt, at = tolerances(Wx[0].dtype)
    for a, b in zip(gs, ref):
        np.testing.assert_allclose(to_numpy(a)[1], b, rtol=rt, atol=rt * np.abs(b).max())
    assert tuple(ln.diagonal.loss(lossx, Wx).shape) == (2,)


def test_validation_names_the_argument():
    loss = ln.SquaredLoss.whitened(np.eye(2))
    with pytest.raises(ValueError, match="share one shape"):
        ln.diagonal.grad(loss, (np.ones((2, 2)), np.ones((2, 3))))
    with pytest.raises(ValueError, match=r"`Ws\[1\]` must be finite"):
        ln.diagonal.loss(loss, (np.ones((2, 2)), np.full((2, 2), np.nan)))
    with pytest.raises(ValueError, match="`Ws` must be a tuple"):
        ln.diagonal.loss(loss, np.ones((2, 2)))
    with pytest.raises(ValueError, match="`loss` must be a linnet loss"):
        ln.diagonal.loss("squared", (np.ones((2, 2)),))
    with pytest.raises(ValueError, match="disagree"):
        ln.diagonal.loss(loss, (np.ones((1, 2)),))
    with pytest.raises(ValueError, match="`Vs` must be a tuple of 2"):
        ln.diagonal.hvp(loss, (np.ones((2, 2)),) * 2, (np.ones((2, 2)),))
    with pytest.raises(ValueError, match="`lr` must be finite and > 0"):
        ln.diagonal.gd(loss, (np.ones((2, 2)),), lr=0.0, steps=3)


def test_gd_is_the_explicit_update_and_flow_matches_the_closed_form():
    """GD equals the hand-written update; the flow of a scalar depth-2 net from (a, a) follows the closed
    form w(t)^2 = y / (1 + (y/a^2 - 1) e^{-2 y t}) of the logistic ODE d(w^2)/dt = 2 w^2 (y - w^2)."""
    rng = np.random.default_rng(7)
    loss, Ws = _problem(rng, N=2)
    run = ln.diagonal.gd(loss, Ws, lr=0.01, steps=2)
    W1 = tuple(W - 0.01 * g for W, g in zip(Ws, ln.diagonal.grad(loss, Ws)))
    W2 = tuple(W - 0.01 * g for W, g in zip(W1, ln.diagonal.grad(loss, W1)))
    for a, b in zip(run.weights, W2):
        np.testing.assert_array_equal(a, b)
    assert int(run.steps) == 2 and run.loss.shape == (3,) and int(run.status) == ln.diagonal.RUNNING
    y, a, T = 2.0, 0.1, 3.0
    fl = ln.diagonal.flow(
        ln.SquaredLoss.whitened(np.array([[y]])), (np.array([[a]]), np.array([[a]])), t_max=T, rtol=1e-12, atol=1e-14
    )
    w2 = y / (1 + (y / a**2 - 1) * np.exp(-2 * y * T))
    np.testing.assert_allclose(fl.weights[0][0, 0] ** 2, w2, rtol=1e-9)


def test_lift_gives_the_two_tower_predictor():
    X = np.arange(6.0).reshape(3, 2)
    wp, wm = np.array([[1.0, 2.0, 0.5]]), np.array([[0.5, 1.0, 2.0]])
    lifted = ln.diagonal.lift(X)
    W = np.concatenate([wp, wm], axis=-1) ** 2
    beta = wp**2 - wm**2
    np.testing.assert_allclose(W @ lifted, beta @ X)


def test_gd_per_net_step_sizes_convergence_and_divergence():
    """Per-net lr: a small step converges (frozen at the step it met ftol), a huge one diverges and keeps its
    last finite iterate; the recorded weights reproduce the loss history."""
    loss = ln.SquaredLoss.whitened(np.array([[1.0]]))
    Ws = tuple(np.full((3, 1, 1), 0.5) for _ in range(3))
    lr = np.array([0.1, 0.2, 50.0])
    run = ln.diagonal.gd(loss, Ws, lr=lr, steps=5000, ftol=1e-12, record_weights=True)
    assert list(run.status) == [ln.diagonal.CONVERGED, ln.diagonal.CONVERGED, ln.diagonal.DIVERGED]
    assert run.steps[1] < run.steps[0] < 5000
    assert np.all(np.isfinite(run.weights[0]))
    L = ln.diagonal.loss(loss, tuple(h for h in run.history))
    np.testing.assert_array_equal(L[:, :2], run.loss[:, :2])
    with pytest.raises(ValueError, match="`lr` must"):
        ln.diagonal.gd(loss, Ws, lr=np.array([0.1, -1.0, 0.1]), steps=3)
