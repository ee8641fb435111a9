"""The diagonal (Hadamard) product map: gradients and HVPs against central differences and sympy, batching,
dtype, validation, and its GD / momentum / SGD / flow trainers."""

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


def _reference_gd(loss, Ws, lr, steps, ftol, record_every):
    """GD on diagonal nets written out step by step (per-net freezing at ftol; a non-finite or huge loss
    freezes a net at its previous iterate), records at multiples of ``record_every`` while a net runs."""
    W = [np.array(w, dtype=float) for w in Ws]
    L = ln.diagonal.loss(loss, W)
    limit = 1e100 * np.maximum(np.abs(L), 1.0)
    n = L.shape[0]
    status, at = np.zeros(n, dtype=np.int8), np.full(n, steps, dtype=np.int64)
    rec, k, prev = [], 0, W
    while True:
        run = status == ln.diagonal.RUNNING
        bad = run & ~(np.isfinite(L) & (np.abs(L) <= limit))
        if bad.any():
            status[bad], at[bad] = ln.diagonal.DIVERGED, k
            W = [np.where(bad[:, None, None], p, w) for p, w in zip(prev, W)]
            L = np.where(bad, ln.diagonal.loss(loss, tuple(W)), L)
        hit = run & ~bad & (L <= ftol)
        status[hit], at[hit] = ln.diagonal.CONVERGED, k
        if k % record_every == 0:
            rec.append(L.copy())
        run = status == ln.diagonal.RUNNING
        if k == steps or not run.any():
            break
        G = ln.diagonal.grad(loss, tuple(W))
        prev = W
        W = [np.where(run[:, None, None], w - lr[:, None, None] * g, w) for w, g in zip(W, G)]
        L = np.where(run, ln.diagonal.loss(loss, tuple(W)), L)
        k += 1
    return W, np.array(rec), at, status


@pytest.mark.parametrize("slow_net", [True, False])
@pytest.mark.parametrize("record_every", [1, 7])
def test_gd_on_the_driver_matches_a_step_by_step_reference(record_every, slow_net, monkeypatch):
    """ln.diagonal.gd (the diagonal map on linnet.train's driver) against the update written out net by net:
    weights, loss records, per-net stop steps and statuses to the last bit, with nets that converge at
    different steps, one that diverges and (``slow_net``) one that runs out of steps, else an early end;
    independent of the driver's window."""
    rng = np.random.default_rng(11)
    loss, _ = _problem(rng, N=3, shape=(1, 3), m=3)
    W0 = tuple(0.6 + 0.1 * rng.standard_normal((5, 1, 3)) for _ in range(3))
    lr = np.array([0.15, 0.1, 0.2, 40.0, 0.001])
    ftol = np.array([1e-10, 1e-10, 1e-8, 1e-10, 1e-10])
    n = 5 if slow_net else 4
    W0, lr, ftol = tuple(w[:n] for w in W0), lr[:n], ftol[:n]
    W, rec, at, status = _reference_gd(loss, W0, lr, 3000, ftol, record_every)
    expected = {ln.diagonal.CONVERGED, ln.diagonal.DIVERGED} | ({ln.diagonal.RUNNING} if slow_net else set())
    assert set(status.tolist()) == expected and len(set(at.tolist())) == n
    if not slow_net:  # the run ends early, at a step that is not a multiple of record_every
        assert at.max() < 3000 and (record_every == 1 or at.max() % record_every != 0)
    for every in (1, 10):
        monkeypatch.setattr(ln.diagonal.training, "_CHECK_EVERY", every)
        run = ln.diagonal.gd(loss, W0, lr=lr, steps=3000, ftol=ftol, record_every=record_every)
        for a, b in zip(run.weights, W):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(run.loss, rec)
        np.testing.assert_array_equal(run.steps, at)
        np.testing.assert_array_equal(run.status, status)
        assert run.status.dtype == np.int8 and run.steps.dtype == np.int64


def test_momentum_is_the_heavy_ball_written_out():
    """ln.diagonal.momentum: m <- beta m + grad, w <- w - eta m (m_0 = 0), per-net eta, bit for bit against the
    recursion written out; beta = 0 is gd bit for bit; beta outside [0, 1) is refused."""
    rng = np.random.default_rng(5)
    loss, _ = _problem(rng, N=2, shape=(2, 3), m=4)
    W0 = tuple(0.5 * rng.standard_normal((3, 2, 3)) for _ in range(2))
    lr, beta = np.array([0.01, 0.02, 0.05]), 0.7
    W, M = list(W0), [np.zeros_like(w) for w in W0]
    losses = [ln.diagonal.loss(loss, tuple(W))]
    for _ in range(40):
        G = ln.diagonal.grad(loss, tuple(W))
        M = [beta * m + g for m, g in zip(M, G)]
        W = [w - lr[:, None, None] * m for w, m in zip(W, M)]
        losses.append(ln.diagonal.loss(loss, tuple(W)))
    run = ln.diagonal.momentum(loss, W0, lr=lr, beta=beta, steps=40, record_weights=True)
    for a, b in zip(run.weights, W):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(run.loss, np.array(losses))
    assert np.all(run.status == ln.diagonal.RUNNING) and np.all(run.steps == 40)
    gd = ln.diagonal.gd(loss, W0, lr=lr, steps=40)
    hb0 = ln.diagonal.momentum(loss, W0, lr=lr, beta=0.0, steps=40)
    for a, b in zip(hb0.weights, gd.weights):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(run.weights[0], gd.weights[0])
    for bad in (1.0, -0.1, "x"):
        with pytest.raises(ValueError, match="`beta` must be a real in"):
            ln.diagonal.momentum(loss, W0, lr=lr, beta=bad, steps=3)


def test_sgd_with_the_whole_sample_is_gd(xp, dtype_name):
    """ln.diagonal.sgd with batch_size = m (every step's minibatch is the whole sample, permuted) equals
    ln.diagonal.gd to round-off: weights, recorded losses, statuses and stop steps, per-net step sizes."""
    rng = np.random.default_rng(3)
    loss, _ = _problem(rng, N=3, shape=(2, 3), m=6)
    X, Y = loss.data
    lossx = ln.SquaredLoss.from_data(from_host(X, xp, dtype_name), from_host(Y, xp, dtype_name))
    W0 = tuple(from_host(0.5 + 0.2 * rng.standard_normal((2, 2, 3)), xp, dtype_name) for _ in range(3))
    lr = from_host(np.array([0.05, 0.1]), xp, dtype_name)
    kw = dict(lr=lr, steps=30, record_every=3, record_weights=True)
    sgd = ln.diagonal.sgd(lossx, W0, batch_size=6, seed=4, **kw)
    gd = ln.diagonal.gd(lossx, W0, **kw)
    rt, at = tolerances(W0[0].dtype)
    for a, b in zip(sgd.weights + sgd.history, gd.weights + gd.history):
        assert a.dtype == b.dtype and tuple(a.shape) == tuple(b.shape)
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=rt, atol=at)
    assert sgd.loss.dtype == gd.loss.dtype and tuple(sgd.loss.shape) == (11, 2)
    np.testing.assert_allclose(to_numpy(sgd.loss), to_numpy(gd.loss), rtol=rt, atol=at)
    np.testing.assert_array_equal(to_numpy(sgd.status), to_numpy(gd.status))
    np.testing.assert_array_equal(to_numpy(sgd.steps), to_numpy(gd.steps))


def _reference_sgd(X, Y, Ws, lr, steps, batch_size, seed, p):
    """Minibatch SGD on diagonal nets written out in NumPy: step k draws rng.choice(m, batch_size, replace=False)
    from default_rng(seed) (the documented draw), the residual R = W X_B - Y_B of the minibatch gives
    G = sign(R)|R|^(p-1) X_B^T / b (p = 2: the squared loss (1/2b)||R||^2), and w_j <- w_j - lr G ⊙ prod_{i≠j} w_i.
    Returns the weights and the full-data loss (1/pm) sum |W X - Y|^p after each step (and at 0)."""
    rng = np.random.default_rng(seed)
    m = X.shape[-1]
    W = [np.array(w, dtype=float) for w in Ws]

    def full_loss(W):
        return np.sum(np.abs(np.prod(W, axis=0) @ X - Y) ** p, axis=(-2, -1)) / (p * m)

    losses = [full_loss(W)]
    for _ in range(steps):
        idx = rng.choice(m, size=batch_size, replace=False)
        Xb, Yb = X[:, idx], Y[:, idx]
        R = np.prod(W, axis=0) @ Xb - Yb
        G = np.sign(R) * np.abs(R) ** (p - 1) @ Xb.T / batch_size
        others = [np.prod([w for i, w in enumerate(W) if i != j], axis=0) for j in range(len(W))]
        W = [w - lr[:, None, None] * G * c for w, c in zip(W, others)]
        losses.append(full_loss(W))
    return W, np.array(losses)


@pytest.mark.parametrize("p", [2.0, 4.0])
def test_sgd_matches_a_numpy_reference(p):
    """ln.diagonal.sgd against minibatch SGD written out in NumPy from the documented draws and the diagonal
    map's gradient G ⊙ prod_{i≠j} w_i, over 70 steps (two chunks of draws), two nets on one minibatch each step:
    weights and the recorded full-data loss."""
    rng = np.random.default_rng(8)
    X, Y = rng.standard_normal((3, 12)), rng.standard_normal((2, 12))
    loss = ln.SquaredLoss.from_data(X, Y) if p == 2.0 else ln.LpLoss(X, Y, p=p)
    W0 = tuple(0.6 + 0.1 * rng.standard_normal((2, 2, 3)) for _ in range(3))
    lr = np.array([0.02, 0.05])
    W, losses = _reference_sgd(X, Y, W0, lr, 70, 5, 9, p)
    run = ln.diagonal.sgd(loss, W0, lr=lr, steps=70, batch_size=5, seed=9, record_every=7)
    rt, at = tolerances(np.float64)
    for a, b in zip(run.weights, W):
        np.testing.assert_allclose(a, b, rtol=rt, atol=at)
    np.testing.assert_allclose(run.loss, losses[::7], rtol=rt, atol=at)
    assert np.all(run.status == ln.diagonal.RUNNING) and np.all(run.steps == 70)


def test_sgd_seeds_and_the_draws_of_train_sgd():
    """The same seed (an int, or a Generator seeded with it) gives the same run bit for bit, another seed another
    run; a depth-1 diagonal net is a depth-1 dense net, and ln.diagonal.sgd then follows ln.train.sgd (the same
    minibatches) to round-off."""
    rng = np.random.default_rng(2)
    loss, _ = _problem(rng, N=1, shape=(2, 3), m=10)
    W0 = (0.3 * rng.standard_normal((2, 3)),)
    kw = dict(lr=0.1, steps=80, batch_size=3)
    a = ln.diagonal.sgd(loss, W0, seed=5, **kw)
    b = ln.diagonal.sgd(loss, W0, seed=np.random.default_rng(5), **kw)
    c = ln.diagonal.sgd(loss, W0, seed=6, **kw)
    for f in ("loss", "steps", "status"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    np.testing.assert_array_equal(a.weights[0], b.weights[0])
    assert not np.array_equal(a.weights[0], c.weights[0]) and not np.array_equal(a.loss, c.loss)
    dense = ln.train.sgd(loss, W0, seed=5, **kw)
    rt, at = tolerances(np.float64)
    np.testing.assert_allclose(a.weights[0], dense.weights[0], rtol=rt, atol=at)
    np.testing.assert_allclose(a.loss, dense.loss, rtol=rt, atol=at)


def test_sgd_validation_names_the_argument():
    rng = np.random.default_rng(1)
    loss, Ws = _problem(rng, N=2, shape=(2, 3), m=4)
    kw = dict(lr=0.1, steps=3)
    with pytest.raises(ValueError, match="`loss` must carry data for sgd"):
        ln.diagonal.sgd(ln.SquaredLoss.whitened(np.ones((2, 3))), Ws, batch_size=2, **kw)
    for bad in (0, 2.5, True, None):
        with pytest.raises(ValueError, match="`batch_size` must be an int >= 1"):
            ln.diagonal.sgd(loss, Ws, batch_size=bad, **kw)
    with pytest.raises(ValueError, match="`batch_size` must be <= the number of samples m = 4"):
        ln.diagonal.sgd(loss, Ws, batch_size=5, **kw)
    for bad in (-1, "a", 1.5):
        with pytest.raises(ValueError, match="`seed` must"):
            ln.diagonal.sgd(loss, Ws, batch_size=2, seed=bad, **kw)
    with pytest.raises(ValueError, match="`lr` must"):
        ln.diagonal.sgd(loss, Ws, lr=-0.1, steps=3, batch_size=2)
    with pytest.raises(ValueError, match="`steps` must"):
        ln.diagonal.sgd(loss, Ws, lr=0.1, steps=-1, batch_size=2)
    with pytest.raises(ValueError, match="`ftol` must"):
        ln.diagonal.sgd(loss, Ws, batch_size=2, ftol=-1.0, **kw)
    with pytest.raises(ValueError, match="`Ws` must be a tuple"):
        ln.diagonal.sgd(loss, np.ones((2, 3)), batch_size=2, **kw)
