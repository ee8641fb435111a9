"""Tests of linnet.train: descent, SGD, momentum, the adaptive gradient flow and the end-to-end (ACH) dynamics."""

import numpy as np
import pytest
from scipy.integrate import solve_ivp

import linnet as ln
from linnet import train
from linnet._backend import from_host, to_numpy
from linnet.testing import assert_close, rel_error

# A whole trajectory of round-off: the same arithmetic in another order (batched vs single matmul, permuted
# samples in a minibatch) differs by a few ulps per step, amplified over the steps.
TRAJ_RTOL = {"float64": 1e-10, "float32": 1e-4}
# Integrator accuracy: our Dormand-Prince at rtol=1e-10 against DOP853 at 1e-13; global error ~ 10-100 rtol.
FLOW_RTOL = 1e-10
FLOW_MATCH = 1e-8
# Stage sums by BLAS (NumPy) vs elementwise (array code): ulp-level differences, accumulated over ~50 steps.
STAGE_ROUNDOFF = 1e-12
# THEOREMS.md §2 check 2 and §4 check 1 bound: 1e-8 relative / max-abs.
THEORY_TOL = 1e-8


def np_(a):
    return np.asarray(to_numpy(a), dtype=np.float64)


def data(m=20, d0=3, dN=2, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((d0, m)), rng.standard_normal((dN, m))


def gaps(Ws):
    """Balancedness gaps D_j = W_{j+1}^T W_{j+1} - W_j W_j^T (THEOREMS.md §2), float64 on the host."""
    W = [np_(w) for w in Ws]
    return [np.swapaxes(W[j + 1], -1, -2) @ W[j + 1] - W[j] @ np.swapaxes(W[j], -1, -2) for j in range(len(W) - 1)]


# ---------------------------------------------------------------------------------------------------------------
# the optimizer battery: lr = 0, dtype, determinism
# ---------------------------------------------------------------------------------------------------------------


def _runs(loss, Ws, lr, **kw):
    yield "gd", train.gd(loss, Ws, lr=lr, steps=5, keep_history=True, **kw)
    yield "momentum", train.momentum(loss, Ws, lr=lr, beta=0.5, steps=5, keep_history=True, **kw)
    yield "sgd", train.sgd(loss, Ws, lr=lr, steps=5, batch_size=7, seed=3, keep_history=True, **kw)


def test_lr_zero_changes_nothing(xp):
    """With lr = 0 every method returns the initial weights exactly and a constant loss record."""
    X, Y = data()
    loss = ln.SquaredLoss.from_data(from_host(X, xp), from_host(Y, xp))
    Ws = ln.init.gaussian((3, 4, 2), scale=0.5, batch=(2,), seed=0, xp=xp)
    L0 = np_(ln.loss(loss, Ws))
    for name, run in _runs(loss, Ws, 0.0):
        for w, w0 in zip(run.weights, Ws):
            assert np.array_equal(np_(w), np_(w0)), name
        assert np.array_equal(np_(run.loss), np.broadcast_to(L0, (6, 2))), name
        assert run.status_names.tolist() == ["max_steps", "max_steps"], name
    We0 = ln.end_to_end(Ws)
    run = train.end_to_end_gd(loss, We0, depth=2, lr=0.0, steps=3)
    assert np.array_equal(np_(run.weights[0]), np_(We0))


def test_dtype_preserved(xp, dtype_name):
    """Weights, losses and history keep the weights' dtype (float32 stays float32) for every method."""
    X, Y = data()
    loss = ln.SquaredLoss.from_data(from_host(X, xp), from_host(Y, xp))  # float64 loss, cast to the weights
    Ws = ln.init.gaussian((3, 4, 2), scale=0.5, batch=(2,), seed=0, xp=xp, dtype=dtype_name)
    dt = Ws[0].dtype
    runs = list(_runs(loss, Ws, 0.05))
    runs.append(("flow", train.gradient_flow(loss, Ws, t_final=0.5, times=[0.0, 0.5], keep_history=True)))
    We0 = ln.end_to_end(Ws)
    runs.append(("e2e_gd", train.end_to_end_gd(loss, We0, depth=2, lr=0.05, steps=3, keep_history=True)))
    runs.append(("e2e_flow", train.end_to_end_flow(loss, We0, depth=2, t_final=0.5, keep_history=True)))
    for name, run in runs:
        assert all(w.dtype == dt for w in run.weights), name
        assert run.loss.dtype == dt, name
        assert all(h.dtype == dt for h in run.history), name
        assert run.status.dtype == xp.int64 and run.diverged_at.dtype == xp.int64, name
        assert run.times.dtype == xp.float64, name
        assert np.all(np.isfinite(np_(run.loss))), name
        assert np.all(np_(run.loss[-1, ...]) < np_(run.loss[0, ...])), name  # it did train


def test_same_seed_same_trajectory(xp):
    """SGD is a function of its seed: the same seed gives the same trajectory, another seed a different one."""
    X, Y = data(m=30)
    loss = ln.SquaredLoss.from_data(from_host(X, xp), from_host(Y, xp))
    Ws = ln.init.gaussian((3, 4, 2), scale=0.5, batch=(3,), seed=0, xp=xp)
    a = train.sgd(loss, Ws, lr=0.05, steps=30, batch_size=5, seed=11)
    b = train.sgd(loss, Ws, lr=0.05, steps=30, batch_size=5, seed=11)
    c = train.sgd(loss, Ws, lr=0.05, steps=30, batch_size=5, seed=12)
    assert np.array_equal(np_(a.loss), np_(b.loss))
    for wa, wb in zip(a.weights, b.weights):
        assert np.array_equal(np_(wa), np_(wb))
    assert rel_error(c.weights[0], a.weights[0]) > 1e-6
    # and gd on the same inputs twice is identical too
    g1, g2 = train.gd(loss, Ws, lr=0.05, steps=10), train.gd(loss, Ws, lr=0.05, steps=10)
    assert np.array_equal(np_(g1.weights[1]), np_(g2.weights[1]))


# ---------------------------------------------------------------------------------------------------------------
# exact descent identities
# ---------------------------------------------------------------------------------------------------------------


def test_one_gd_step_is_w_minus_lr_grad(xp, dtype_name):
    """One GD step equals W - lr * grad(W), layer by layer, and records the loss at steps 0 and 1."""
    X, Y = data()
    loss = ln.SquaredLoss.from_data(from_host(X, xp), from_host(Y, xp))
    Ws = ln.init.gaussian((3, 5, 4, 2), scale=0.6, batch=(2,), seed=4, xp=xp, dtype=dtype_name)
    lr = 0.07
    run = train.gd(loss, Ws, lr=lr, steps=1)
    G = ln.grad(loss, Ws)
    rtol = 10 * float(np.finfo(dtype_name).eps)  # same operations, possibly reordered by the step kernel
    for w, w0, g in zip(run.weights, Ws, G):
        assert_close(w, w0 - lr * g, rtol=rtol, atol=rtol)
    assert np_(run.steps).tolist() == [0, 1]
    assert_close(run.times, from_host(np.array([0.0, lr]), xp))
    assert_close(run.loss[0, ...], ln.loss(loss, Ws))
    assert_close(run.loss[1, ...], ln.loss(loss, run.weights))


def test_gd_one_step_balancedness_drift():
    """THEOREMS.md §2: one GD step changes D_j by exactly lr^2 (G_{j+1}^T G_{j+1} - G_j G_j^T)."""
    X, Y = data(m=25, d0=4, dN=3, seed=5)
    loss = ln.SquaredLoss.from_data(X, Y)
    Ws = ln.init.gaussian((4, 5, 3, 3), scale=0.7, seed=6)
    lr = 0.05
    G = [np_(g) for g in ln.grad(loss, Ws)]
    pred = [d + lr**2 * (G[j + 1].T @ G[j + 1] - G[j] @ G[j].T) for j, d in enumerate(gaps(Ws))]
    after = gaps(train.gd(loss, Ws, lr=lr, steps=1).weights)
    for j, (a, p, d) in enumerate(zip(after, pred, gaps(Ws))):
        scale = np.abs(d).max() + lr**2 * max(np.abs(g).max() ** 2 for g in G) + 1
        assert np.abs(a - p).max() <= 1e-12 * scale, j
    # negative control (§2 (b)): different step sizes per layer give an O(lr) drift, far from the prediction
    bad = gaps(train.gd(loss, Ws, lr=lr, steps=1, lr_per_layer=(1.0, 2.0, 1.0)).weights)
    assert max(np.abs(a - p).max() for a, p in zip(bad, pred)) > 1e-4


def test_momentum_beta_zero_is_gd(xp):
    """Heavy ball with beta = 0 is plain GD, bit for bit."""
    X, Y = data()
    loss = ln.SquaredLoss.from_data(from_host(X, xp), from_host(Y, xp))
    Ws = ln.init.gaussian((3, 4, 2), scale=0.5, batch=(2,), seed=1, xp=xp)
    a = train.momentum(loss, Ws, lr=0.05, beta=0.0, steps=20)
    b = train.gd(loss, Ws, lr=0.05, steps=20)
    for wa, wb in zip(a.weights, b.weights):
        assert np.array_equal(np_(wa), np_(wb))
    # and beta > 0 is the heavy-ball recursion W+ = W - lr g + beta (W - W-)
    beta, lr = 0.6, 0.05
    hb = train.momentum(loss, Ws, lr=lr, beta=beta, steps=3, keep_history=True).history
    ref_loss = ln.SquaredLoss.from_data(X, Y)
    W_prev, W = [np_(w) for w in Ws], [np_(w) for w in Ws]
    for k in range(3):
        g = ln.grad(ref_loss, tuple(W))
        W_new = [w - lr * gj + (beta * (w - wp) if k else 0) for w, gj, wp in zip(W, g, W_prev)]
        W_prev, W = W, W_new
        for j in range(2):
            np.testing.assert_allclose(np_(hb[j][k + 1, ...]), W[j], rtol=1e-12, atol=1e-14)


def test_batched_gd_equals_member_by_member(xp):
    """A batch of nets trained at once equals each net trained alone (per-net lr included)."""
    X, Y = data()
    loss = ln.SquaredLoss.from_data(from_host(X, xp), from_host(Y, xp))
    Ws = ln.init.gaussian((3, 4, 3, 2), scale=0.5, batch=(3,), seed=2, xp=xp)
    lrs = np.array([0.02, 0.05, 0.1])
    run = train.gd(loss, Ws, lr=lrs, steps=25, record_every=5)
    assert tuple(run.loss.shape) == (6, 3) and tuple(run.times.shape) == (6, 3)
    for i in range(3):
        one = train.gd(loss, tuple(w[i, ...] for w in Ws), lr=float(lrs[i]), steps=25, record_every=5)
        for wb, w1 in zip(run.weights, one.weights):
            assert_close(wb[i, ...], w1, rtol=TRAJ_RTOL["float64"], atol=1e-14)
        assert_close(run.loss[:, i], one.loss, rtol=TRAJ_RTOL["float64"], atol=1e-14)
        assert_close(run.times[:, i], one.times)


def test_batched_problem_and_shared_weights():
    """A batch of problems with one shared initial net broadcasts to one net per problem."""
    rng = np.random.default_rng(3)
    Phi = rng.standard_normal((4, 2, 3))
    Ws = ln.init.gaussian((3, 4, 2), scale=0.3, seed=0)
    run = train.gd(ln.SquaredLoss.whitened(Phi), Ws, lr=0.05, steps=10)
    assert tuple(run.weights[0].shape) == (4, 4, 3) and tuple(run.loss.shape) == (11, 4)
    one = train.gd(ln.SquaredLoss.whitened(Phi[2]), Ws, lr=0.05, steps=10)
    assert_close(run.weights[1][2], one.weights[1], rtol=TRAJ_RTOL["float64"], atol=1e-14)


# ---------------------------------------------------------------------------------------------------------------
# status: convergence, divergence, early stopping, records
# ---------------------------------------------------------------------------------------------------------------


def test_divergence_reported_not_nan(xp):
    """A net with a huge lr in a batch is frozen at its last finite iterate and marked diverged; others converge."""
    Phi = from_host(np.array([[2.0, 0.5], [0.0, 1.0]]), xp)
    loss = ln.SquaredLoss.whitened(Phi)
    Ws = ln.init.gaussian((2, 3, 2), scale=0.5, seed=0, xp=xp)
    lrs = from_host(np.array([0.05, 50.0, 0.1]), xp)
    run = train.gd(loss, Ws, lr=lrs, steps=3000, gtol=1e-9, keep_history=True, check_every=7)
    assert run.status_names.tolist() == ["converged", "diverged", "converged"]
    at = np_(run.diverged_at).astype(int)
    assert at[0] == -1 and at[2] == -1 and at[1] >= 1
    for w in run.weights:
        assert np.all(np.isfinite(np_(w)))
    assert np.all(np.isfinite(np_(run.loss)))
    # frozen at the last finite iterate: the recorded history stops changing from step at[1] - 1 on
    h = np_(run.history[0])[:, 1]
    assert np.array_equal(h[at[1] - 1], h[-1]) and not np.array_equal(h[at[1] - 2], h[at[1] - 1])
    # stopped early once every net was settled, with a final record at n_steps
    assert run.n_steps < 3000 and int(np_(run.steps)[-1]) == run.n_steps
    assert np.all(np_(run.loss[-1, ...])[[0, 2]] < 1e-15)


@pytest.mark.parametrize("method", ["gd", "momentum", "sgd"])
def test_check_every_never_changes_the_result(method):
    """Windows between host checks (with replay after a divergence) give bit-identical runs for any check_every."""
    X, Y = data(m=16)
    loss = ln.SquaredLoss.from_data(X, Y)
    Ws = ln.init.gaussian((3, 4, 2), scale=0.5, batch=(4,), seed=3)
    lrs = np.array([0.05, 3.0, 0.1, 40.0])  # two of them diverge, at different steps
    kw = dict(lr=lrs, steps=60, gtol=1e-6, keep_history=True)
    run = {
        "gd": lambda ce: train.gd(loss, Ws, check_every=ce, **kw),
        "momentum": lambda ce: train.momentum(loss, Ws, beta=0.5, check_every=ce, **kw),
        "sgd": lambda ce: train.sgd(loss, Ws, batch_size=8, seed=2, check_every=ce, **kw),
    }[method]
    ref = run(1)
    assert ref.status_names.tolist()[1::2] == ["diverged", "diverged"]
    for ce in (4, 25, 100):
        other = run(ce)
        for name in ("status", "diverged_at"):
            assert np.array_equal(getattr(other, name), getattr(ref, name)), (ce, name)
        n = min(len(ref.steps), len(other.steps))  # the early stop may come later with sparser checks
        assert np.array_equal(other.steps[:n], ref.steps[:n]), ce
        assert np.array_equal(other.loss[:n], ref.loss[:n]), ce
        for h1, h0 in zip(other.history, ref.history):
            assert np.array_equal(h1[:n], h0[:n]), ce
        for w1, w0 in zip(other.weights, ref.weights):
            assert np.array_equal(w1, w0), ce
        assert np.all(np.isfinite(other.loss))


def test_divergence_of_a_callable_loss_checks_weights():
    """With a user loss the weights' finiteness is checked too; a net that blows up is flagged, not NaN."""
    dw = ln.CallableLoss(
        lambda W: np.sum(W**4, axis=(-2, -1)), lambda W: 4 * W**3, lambda W, D: 12 * W**2 * D, shape=(1, 1)
    )
    W0 = (np.array([[[0.5]], [[3.0]]]),)
    run = train.gd(dw, W0, lr=0.1, steps=100)
    assert run.status_names.tolist() == ["max_steps", "diverged"]
    assert np.all(np.isfinite(run.weights[0])) and np.all(np.isfinite(run.loss))


def test_callable_loss_with_finite_loss_of_infinite_weights():
    """A bounded user loss stays finite while the weights overflow: the weight check still flags the net at the
    step its weights stop being finite, whatever ``check_every`` (the NumPy fast windows check them per window)."""
    cl = ln.CallableLoss(
        lambda W: np.arctan(np.sum(W * W, axis=(-2, -1))), lambda W: -3.0 * W, lambda W, D: -3.0 * D, shape=(1, 1)
    )
    W0 = (np.full((4, 1, 1), 0.5),)
    lrs = np.array([0.0, 1.0, 100.0, 1e5])  # growth factors 1, 4, 301, 3e5 per step

    def first_overflow(lr):  # host replay of one net: first k with W_k or its gradient -3 W_k not finite
        w, k = np.float64(0.5), 0
        with np.errstate(over="ignore"):
            while np.isfinite(w) and np.isfinite(-3.0 * w):
                w, k = w - lr * (-3.0 * w), k + 1
        return k

    ref = None
    for ce in (1, 7, 500):
        run = train.gd(cl, W0, lr=lrs, steps=300, check_every=ce)
        at = run.diverged_at.tolist()
        assert at[:2] == [-1, -1]
        assert at[2:] == [first_overflow(lr) for lr in lrs[2:]], (ce, at)
        assert np.all(np.isfinite(run.weights[0]))
        if ref is None:
            ref = run
        assert np.array_equal(run.weights[0], ref.weights[0]) and np.array_equal(run.loss, ref.loss)


@pytest.mark.fastpath
@pytest.mark.parametrize("beta", [0.0, 0.7])
def test_numpy_in_place_descent_is_the_plain_update(beta):
    """The NumPy fast path (reused buffers, in-place updates, threads over the batch) performs exactly the array
    update W - (lr c_j) M, M = beta M + grad, bit for bit, with a per-net lr; the caller's arrays are untouched
    and the result does not alias them."""
    from linnet import _step

    rng = np.random.default_rng(7)
    loss = ln.SquaredLoss.whitened(rng.standard_normal((3, 4)))
    Ws = ln.init.gaussian((4, 5, 6, 3), scale=0.4, batch=(3000,), seed=5)  # several blocks and threads
    before = [w.copy() for w in Ws]
    lr = np.linspace(0.01, 0.06, 3000)
    run = train.momentum(loss, Ws, lr=lr, beta=beta, steps=25, check_every=4, record_every=5, keep_history=True)
    W, M = Ws, None
    hist = [W]
    for _ in range(25):
        _, G = _step.value_and_grads(loss, W, False, np)
        M = G if M is None else tuple(beta * m + g for m, g in zip(M, G))
        W = tuple(w - (lr[:, None, None] * 1.0) * m for w, m in zip(W, M))
        hist.append(W)
    for a, b in zip(run.weights, W):
        assert np.array_equal(a, b)
    for j, H in enumerate(run.history):
        assert np.array_equal(H, np.stack([hist[k][j] for k in range(0, 26, 5)]))
    for w, w0, r in zip(Ws, before, run.weights):
        assert np.array_equal(w, w0) and not np.shares_memory(r, w)
    none = train.gd(loss, Ws, lr=0.1, steps=0)
    assert all(not np.shares_memory(r, w) and np.array_equal(r, w) for r, w in zip(none.weights, Ws))


def test_ftol_and_records():
    """ftol stops a net; record_every / record_steps choose the records; early stop ends with one at n_steps."""
    loss = ln.SquaredLoss.whitened(np.eye(2))
    Ws = ln.init.gaussian((2, 2, 2), scale=0.5, seed=0)
    run = train.gd(loss, Ws, lr=0.1, steps=1000, ftol=1e-6, record_every=50, check_every=3)
    assert str(run.status_names) == "converged"
    k = run.n_steps
    assert 0 < k < 1000 and k % 3 == 0
    assert np_(run.steps).tolist() == list(range(0, k, 50)) + [k]
    assert float(run.loss[-1, ...]) <= 1e-6 < float(run.loss[-2, ...])
    run = train.gd(loss, Ws, lr=0.1, steps=20, record_steps=[20, 0, 7, 7])
    assert np_(run.steps).tolist() == [0, 7, 20] and run.n_steps == 20


# ---------------------------------------------------------------------------------------------------------------
# SGD
# ---------------------------------------------------------------------------------------------------------------


def test_sgd_full_batch_is_gd(xp):
    """With batch_size = m the minibatch mean gradient is the full gradient: SGD follows GD."""
    X, Y = data(m=12)
    loss = ln.SquaredLoss.from_data(from_host(X, xp), from_host(Y, xp))
    Ws = ln.init.gaussian((3, 4, 2), scale=0.5, batch=(2,), seed=1, xp=xp)
    a = train.sgd(loss, Ws, lr=0.05, steps=20, batch_size=12, seed=4)
    b = train.gd(loss, Ws, lr=0.05, steps=20)
    for wa, wb in zip(a.weights, b.weights):
        assert_close(wa, wb, rtol=TRAJ_RTOL["float64"], atol=1e-13)
    assert_close(a.loss, b.loss, rtol=TRAJ_RTOL["float64"], atol=1e-13)


@pytest.mark.parametrize("kind", ["squared", "lp", "huber"])
def test_sgd_step_is_gd_on_the_minibatch(kind):
    """One SGD step is one GD step on the loss rebuilt from the samples it drew (its first draw from `seed`)."""
    X, Y = data(m=15)
    make = {
        "squared": ln.SquaredLoss.from_data,
        "lp": lambda x, y: ln.LpLoss(x, y, p=4),
        "huber": lambda x, y: ln.HuberLoss(x, y, delta=0.7),
    }[kind]
    idx = np.random.default_rng(5).choice(15, size=5, replace=False)  # sgd's first minibatch for seed=5
    Ws = ln.init.gaussian((3, 4, 2), scale=0.5, batch=(2,), seed=1)
    a = train.sgd(make(X, Y), Ws, lr=0.1, steps=1, batch_size=5, seed=5)
    b = train.gd(make(X[:, idx], Y[:, idx]), Ws, lr=0.1, steps=1)
    for wa, wb in zip(a.weights, b.weights):
        assert_close(wa, wb)
    assert not all(np.array_equal(wa, w0) for wa, w0 in zip(a.weights, Ws))


def test_sgd_on_lp_loss_trains():
    """SGD runs on an l_p loss carrying data and lowers the full-data loss it records."""
    X, Y = data(m=40, dN=1)
    Y = np.array([[1.0, -0.5, 0.3]]) @ X
    run = train.sgd(
        ln.LpLoss(X, Y, p=4),
        ln.init.gaussian((3, 3, 1), scale=0.3, seed=2),
        lr=0.02,
        steps=300,
        batch_size=10,
        seed=0,
        record_every=100,
    )
    assert np_(run.steps).tolist() == [0, 100, 200, 300]
    assert float(run.loss[-1, ...]) < 1e-2 * float(run.loss[0, ...])


# ---------------------------------------------------------------------------------------------------------------
# gradient flow
# ---------------------------------------------------------------------------------------------------------------


def test_gradient_flow_matches_scipy_dop853():
    """Our batched Dormand-Prince agrees with SciPy's DOP853 (rtol 1e-12, atol 1e-14) at every record time."""
    X, Y = data(m=20, d0=3, dN=2)
    loss = ln.SquaredLoss.from_data(X, Y)
    widths = (3, 4, 5, 2)
    Ws = ln.init.gaussian(widths, scale=0.7, seed=1)
    ts = [0.0, 0.5, 1.0, 2.0, 3.0]
    run = train.gradient_flow(loss, Ws, t_final=3.0, times=ts, rtol=FLOW_RTOL, atol=1e-12, keep_history=True)
    assert str(run.status_names) == "converged" and np_(run.times).tolist() == ts

    def rhs(t, theta):
        return -ln.flatten(ln.grad(loss, ln.unflatten(theta, widths)))

    ref = solve_ivp(rhs, (0.0, 3.0), ln.flatten(Ws), method="DOP853", t_eval=ts, rtol=1e-12, atol=1e-14).y.T
    ours = np.stack([ln.flatten(tuple(h[i] for h in run.history)) for i in range(len(ts))])
    assert np.abs(ours - ref).max() <= FLOW_MATCH * np.abs(ref).max()
    assert_close(run.loss, ln.loss(loss, tuple(run.history)))


def test_gradient_flow_numpy_stage_buffers_match_array_code():
    """The NumPy integrator (stages combined by BLAS products in reused buffers) takes the same accepted steps as
    the array-API code on array_api_strict and lands on the same weights to round-off."""
    import array_api_strict as xps

    X, Y = data(m=12)
    Ws = ln.init.gaussian((3, 4, 2), scale=0.5, batch=(5,), seed=4)
    runs = []
    for xp in (np, xps):
        loss = ln.SquaredLoss.from_data(from_host(X, xp), from_host(Y, xp))
        runs.append(train.gradient_flow(loss, tuple(from_host(w, xp) for w in Ws), t_final=1.0, times=[0.0, 0.4, 1.0]))
    a, b = runs
    assert a.n_steps == b.n_steps and np.array_equal(np_(a.status), np_(b.status))
    for wa, wb in zip(a.weights, b.weights):
        assert rel_error(np_(wa), np_(wb)) < STAGE_ROUNDOFF


def test_gradient_flow_conserves_balancedness():
    """THEOREMS.md §2: gradient flow conserves every D_j (to 1e-8 relative), from a generic unbalanced init."""
    X, Y = data(m=30, d0=4, dN=3, seed=2)
    Ws = ln.init.gaussian((4, 6, 5, 3), scale=0.6, batch=(2,), seed=3)
    run = train.gradient_flow(ln.SquaredLoss.from_data(X, Y), Ws, t_final=5.0, rtol=FLOW_RTOL, atol=1e-12)
    for d0, d1 in zip(gaps(Ws), gaps(run.weights)):
        assert np.abs(d1 - d0).max() <= THEORY_TOL * max(1.0, np.abs(d0).max())
    # the loss did change a lot, so the conservation is not trivial
    assert np.all(np_(run.loss[-1, ...]) < 0.5 * np_(run.loss[0, ...]))


def test_gradient_flow_saxe_closed_form():
    """Saxe et al. eq. 12 (THEOREMS.md §10, tau = 1, whitened): mode strengths from a decoupled balanced depth-2
    init follow u(t) = s e^{2st} / (e^{2st} - 1 + s/u0), and off-diagonal couplings stay zero."""
    rng = np.random.default_rng(7)
    U, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    V, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    s = np.array([3.0, 1.5, 0.5])
    Phi = U @ np.diag(s) @ V[:, :3].T  # Lambda_yx, (3, 4)
    u0 = np.array([1e-3, 1e-2, 0.2])
    Ws = ln.init.decoupled(U, V[:, :3], u0, (4, 5, 3), seed=1)
    ts = np.linspace(0.0, 6.0, 13)
    run = train.gradient_flow(
        ln.SquaredLoss.whitened(Phi), Ws, t_final=6.0, times=ts, rtol=FLOW_RTOL, atol=1e-14, keep_history=True
    )
    We = np.stack([ln.end_to_end(tuple(h[i] for h in run.history)) for i in range(len(ts))])
    modes = np.einsum("ia,tij,jb->tab", U, We, V[:, :3])
    e = np.exp(2 * s * ts[:, None])
    closed = s * e / (e - 1 + s / u0)
    assert np.abs(np.diagonal(modes, axis1=1, axis2=2) - closed).max() <= THEORY_TOL
    assert np.abs(modes - modes * np.eye(3)).max() <= 1e-10
    assert np.abs(We @ V[:, 3]).max() <= 1e-10  # the null input direction is never learned


def test_gradient_flow_batched_per_net_steps_equal_solo():
    """Each net keeps its own step size: a batch of very different nets gives each net's solo flow."""
    loss = ln.SquaredLoss.whitened(np.array([[1.0, 0.3], [0.0, 2.0]]))
    Ws = ln.init.gaussian((2, 3, 2), scale=1.0, batch=(3,), seed=5)
    Ws = (Ws[0] * np.array([0.05, 1.0, 3.0])[:, None, None], Ws[1])
    run = train.gradient_flow(loss, Ws, t_final=2.0, times=[0.0, 1.0, 2.0], rtol=1e-9, atol=1e-12)
    for i in range(3):
        one = train.gradient_flow(
            loss, tuple(w[i, ...] for w in Ws), t_final=2.0, times=[0.0, 1.0, 2.0], rtol=1e-9, atol=1e-12
        )
        for wb, w1 in zip(run.weights, one.weights):
            assert_close(wb[i, ...], w1, rtol=TRAJ_RTOL["float64"], atol=1e-13)


def test_gradient_flow_failure_statuses():
    """Running out of steps gives MAX_STEPS; a finite-time blow-up gives DIVERGED; both stay finite."""
    loss = ln.SquaredLoss.whitened(np.eye(2))
    Ws = ln.init.gaussian((2, 3, 2), scale=0.5, seed=0)
    run = train.gradient_flow(loss, Ws, t_final=10.0, max_steps=3)
    assert str(run.status_names) == "max_steps" and int(run.diverged_at) == -1  # -1: did not diverge
    assert np.all(np.isfinite(run.loss))
    # w' = w^2 from w0 = 1 blows up at t = 1 (loss -w^3/3); the other net (w0 = -1) is fine
    blow = ln.CallableLoss(
        lambda W: -np.sum(W**3, axis=(-2, -1)) / 3, lambda W: -(W**2), lambda W, D: -2 * W * D, shape=(1, 1)
    )
    run = train.gradient_flow(blow, (np.array([[[1.0]], [[-1.0]]]),), t_final=2.0, max_steps=5000)
    assert run.status_names.tolist() == ["diverged", "converged"]
    assert np.all(np.isfinite(run.weights[0])) and np.all(np.isfinite(run.loss))
    np.testing.assert_allclose(run.weights[0][1, 0, 0], -1.0 / 3.0, rtol=1e-6)  # w(t) = -1/(1+t)


# ---------------------------------------------------------------------------------------------------------------
# end-to-end dynamics (ACH)
# ---------------------------------------------------------------------------------------------------------------


def test_end_to_end_flow_matches_layerwise_flow():
    """THEOREMS.md §4 check 1: from a balanced init (d0 != dN, hidden widths wider than needed) the product of
    the layer-wise gradient flow follows the ACH end-to-end ODE to 1e-8; negative control: unbalanced init."""
    X, Y = data(m=30, d0=3, dN=2, seed=9)
    loss = ln.SquaredLoss.from_data(X, Y)
    A = 0.3 * np.random.default_rng(1).standard_normal((2, 3))
    widths = (3, 5, 6, 2)
    Ws = ln.init.balanced(A, widths)
    opts = dict(t_final=2.0, times=[0.0, 1.0, 2.0], rtol=1e-11, atol=1e-13)
    layers = train.gradient_flow(loss, Ws, **opts)
    e2e = train.end_to_end_flow(loss, A, depth=3, **opts)
    assert np.abs(ln.end_to_end(layers.weights) - e2e.weights[0]).max() <= THEORY_TOL
    assert_close(e2e.loss, layers.loss, rtol=1e-9, atol=1e-12)
    assert rel_error(e2e.weights[0], A) > 0.1  # it moved
    # negative control (§4 (a)): an unbalanced init with the same product does not follow the ODE
    G = np.diag([2.0, 0.5, 1.0, 1.0, 1.0])
    Wu = (G @ Ws[0], Ws[1] @ np.linalg.inv(G), Ws[2])
    np.testing.assert_allclose(ln.end_to_end(Wu), A, atol=1e-14)
    off = train.gradient_flow(loss, Wu, **opts)
    assert np.abs(ln.end_to_end(off.weights) - e2e.weights[0]).max() > 1e-3


def test_end_to_end_gd_tracks_balanced_gd(xp):
    """ACH's discrete rule follows GD on a balanced net up to O(lr^2) per step: the gap halves with lr."""
    Phi = from_host(np.array([[1.0, 0.2, 0.0], [0.0, 0.7, 0.4]]), xp)
    loss = ln.SquaredLoss.whitened(Phi)
    A = from_host(0.2 * np.array([[1.0, 0.0, 0.5], [0.3, 1.0, 0.0]]), xp)
    Ws = ln.init.balanced(A, (3, 4, 2))
    gapsz = []
    for lr in (0.02, 0.01):
        k = round(1.0 / lr)
        layers = train.gd(loss, Ws, lr=lr, steps=k)
        e2e = train.end_to_end_gd(loss, A, depth=2, lr=lr, steps=k)
        gapsz.append(float(np.abs(np_(ln.end_to_end(layers.weights)) - np_(e2e.weights[0])).max()))
    assert 1.6 <= gapsz[0] / gapsz[1] <= 2.5


# ---------------------------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------------------------


def _bad_cases():
    X, Y = data()
    sq = ln.SquaredLoss.from_data(X, Y)
    Ws = ln.init.gaussian((3, 4, 2), scale=0.5, seed=0)
    wh = ln.SquaredLoss.whitened(np.ones((2, 3)))
    wh3 = ln.SquaredLoss.whitened(np.ones((3, 2, 3)))
    return [
        ("lr", lambda: train.gd(sq, Ws, lr=-0.1, steps=1)),
        ("lr", lambda: train.gd(sq, Ws, lr=float("nan"), steps=1)),
        ("lr", lambda: train.gd(sq, Ws, lr=np.array([0.1, -1.0]), steps=1)),
        ("steps", lambda: train.gd(sq, Ws, lr=0.1, steps=-1)),
        ("steps", lambda: train.gd(sq, Ws, lr=0.1, steps=2.5)),
        ("record_every", lambda: train.gd(sq, Ws, lr=0.1, steps=3, record_every=0)),
        ("record_steps", lambda: train.gd(sq, Ws, lr=0.1, steps=3, record_steps=[4])),
        ("lr_per_layer", lambda: train.gd(sq, Ws, lr=0.1, steps=3, lr_per_layer=(1.0,))),
        ("gtol", lambda: train.gd(sq, Ws, lr=0.1, steps=3, gtol=-1.0)),
        ("check_every", lambda: train.gd(sq, Ws, lr=0.1, steps=3, check_every=0)),
        ("beta", lambda: train.momentum(sq, Ws, lr=0.1, steps=3, beta=1.0)),
        ("must carry data", lambda: train.sgd(wh, Ws, lr=0.1, steps=3, batch_size=2)),
        ("batch_size", lambda: train.sgd(sq, Ws, lr=0.1, steps=3, batch_size=21)),
        ("batch_size", lambda: train.sgd(sq, Ws, lr=0.1, steps=3, batch_size=0)),
        ("t_final", lambda: train.gradient_flow(sq, Ws, t_final=0.0)),
        ("t_final", lambda: train.gradient_flow(sq, Ws, t_final=-1.0)),
        ("times", lambda: train.gradient_flow(sq, Ws, t_final=1.0, times=[0.0, 2.0])),
        ("times", lambda: train.gradient_flow(sq, Ws, t_final=1.0, times=[0.5, 0.2])),
        ("rtol", lambda: train.gradient_flow(sq, Ws, t_final=1.0, rtol=0.0)),
        ("max_steps", lambda: train.gradient_flow(sq, Ws, t_final=1.0, max_steps=0)),
        ("mismatched widths", lambda: train.gd(sq, (Ws[0], np.ones((2, 3))), lr=0.1, steps=1)),
        ("loss expects", lambda: train.gd(sq, (np.ones((4, 2)), np.ones((2, 4))), lr=0.1, steps=1)),
        ("Ws", lambda: train.gd(sq, Ws[0], lr=0.1, steps=1)),
        ("`lr` of shape", lambda: train.gd(sq, (np.ones((3, 4, 3)), np.ones((3, 2, 4))), lr=np.ones(2), steps=1)),
        ("batch shape of `Ws`", lambda: train.gd(wh3, (np.ones((4, 4, 3)), np.ones((4, 2, 4))), lr=0.1, steps=1)),
        ("finite", lambda: train.gd(sq, (Ws[0] * np.nan, Ws[1]), lr=0.1, steps=1)),
        ("loss", lambda: train.gd("not a loss", Ws, lr=0.1, steps=1)),
        ("depth", lambda: train.end_to_end_gd(sq, np.ones((2, 3)), depth=0, lr=0.1, steps=1)),
        ("loss expects", lambda: train.end_to_end_flow(sq, np.ones((3, 3)), depth=2, t_final=1.0)),
    ]


@pytest.mark.parametrize("i", range(len(_bad_cases())))
def test_bad_input_raises_value_error_naming_the_argument(i):
    """Each bad argument raises ValueError whose message names it."""
    name, call = _bad_cases()[i]
    with pytest.raises(ValueError, match=name):
        call()


# ---------------------------------------------------------------------------------------------------------------
# the fused in-place update of plain gd on NumPy: bit for bit the separate update
# ---------------------------------------------------------------------------------------------------------------


def _patch_steps(monkeypatch, descent, count=None, exact=False):
    """Wrap the evaluations of descent runs (the step function ``linnet._step.prepare`` makes, and the calls of
    ``linnet._step.value_and_grads`` made directly, as train.sgd's on subsampled losses): ``count(update,
    fast_value, n)`` sees each call (a run of ``n`` fused steps counts ``n``, the steps it did); ``exact``:
    every evaluation computes the exact value, whatever the driver asks for."""
    real = descent._step.prepare

    def prepare(*a, **k):
        step = real(*a, **k)

        def counted(W, out=None, update=None, fast_value=False):
            fast_value = False if exact else fast_value
            if count is not None:
                count(update, fast_value, 1)
            return step(W, out, update, fast_value)

        if hasattr(step, "run"):

            def run(W, out, update, n, fast_value, limit):
                fast_value = False if exact else fast_value
                r = step.run(W, out, update, n, fast_value, limit)
                if r is not None and count is not None:
                    count(update, fast_value, r[0])
                return r

            counted.run = run
        return counted

    real_vg = descent._step.value_and_grads

    def value_and_grads(loss_fn, W, residual, xp, out=None, update=None, fast_value=False):  # train.sgd's calls
        fast_value = False if exact else fast_value
        if count is not None:
            count(update, fast_value, 1)
        return real_vg(loss_fn, W, residual, xp, out=out, update=update, fast_value=fast_value)

    monkeypatch.setattr(descent._step, "prepare", prepare)
    monkeypatch.setattr(descent._step, "value_and_grads", value_and_grads)


def _fused_cases():
    rng = np.random.default_rng(0)
    wl = ln.SquaredLoss.whitened(rng.standard_normal((6, 6)))
    dl = ln.SquaredLoss.from_data(rng.standard_normal((5, 30)), rng.standard_normal((4, 30)))
    W = ln.init.gaussian((6, 6, 6, 6), scale=0.4, batch=(300,), seed=1)
    lrs = np.linspace(0.001, 0.08, 300)
    blow = tuple(w * np.linspace(0.5, 1.8, 300)[:, None, None] for w in W)  # some nets diverge: roll-back
    W32 = tuple(w.astype(np.float32) for w in W)
    W5 = ln.init.gaussian((5, 5, 4), scale=0.3, batch=(200,), seed=2)
    return {
        "scalar": lambda: train.gd(wl, W, lr=0.05, steps=23, record_every=4),
        "per_net_lr": lambda: train.gd(wl, W, lr=lrs, steps=17, check_every=6),
        "lr_per_layer": lambda: train.gd(wl, W, lr=lrs, steps=15, lr_per_layer=(1.0, 0.5, 2.0)),
        "divergence": lambda: train.gd(wl, blow, lr=0.05, steps=25, record_every=2),
        "residual": lambda: train.gd(wl, tuple(0.1 * w for w in W), lr=0.05, steps=14, residual=True),
        "data_float32": lambda: train.gd(
            dl, ln.init.gaussian((5, 5, 4), scale=0.3, batch=(200,), seed=2, dtype="float32"), lr=0.05, steps=19
        ),
        "float32": lambda: train.gd(wl, W32, lr=lrs.astype(np.float32), steps=13),
        "history": lambda: train.gd(wl, W, lr=0.05, steps=12, keep_history=True, record_every=5),
        "momentum": lambda: train.momentum(wl, W, lr=lrs, beta=0.8, steps=21, record_every=4),
        "gtol": lambda: train.gd(wl, W, lr=lrs, steps=400, gtol=1e-3, check_every=25),
        "momentum_ftol": lambda: train.momentum(wl, W, lr=lrs, beta=0.6, steps=300, ftol=1e-2, check_every=20),
        "sgd": lambda: train.sgd(dl, W5, lr=lrs[:200], steps=23, batch_size=7, seed=3, record_every=5),
        "sgd_divergence_history": lambda: train.sgd(
            dl,
            tuple(w * np.linspace(0.5, 2.5, 200)[:, None, None] for w in W5),
            lr=0.3,
            steps=25,
            batch_size=9,
            seed=4,
            keep_history=True,
            record_every=6,
            check_every=7,
        ),
        "momentum_divergence": lambda: train.momentum(wl, blow, lr=0.05, beta=0.5, steps=25, check_every=9),
        "momentum_data_history": lambda: train.momentum(
            dl,
            ln.init.gaussian((5, 5, 4), scale=0.3, batch=(200,), seed=2),
            lr=0.05,
            beta=0.9,
            steps=19,
            keep_history=True,
            record_every=6,
            lr_per_layer=(1.0, 0.5),
        ),
    }


@pytest.mark.fastpath
@pytest.mark.parametrize("case", list(_fused_cases()))
def test_gd_fused_update_is_bitwise_the_unfused_loop(layout, case, monkeypatch):
    """The NumPy gd, heavy-ball and SGD loops with the update fused into the gradient pass give exactly (every bit
    of every field) the trajectory of the separate update, on 1 and 2 threads, with divergence roll-back included."""
    from linnet import _fastpaths
    from linnet.train import descent

    monkeypatch.setattr(_fastpaths.threads, "MIN_NETS_PER_CHUNK", 16)
    monkeypatch.setattr(_fastpaths.threads, "MIN_WORK_PER_CHUNK", 1.0)
    calls = {"fused": 0}

    def counting(update, fast_value, n):
        calls["fused"] += n if update is not None else 0

    real = descent._descend

    def unfused(**kw):
        return real(**(kw | {"evaluate_fused": None}))

    for threads in (1, 2):
        _fastpaths.set_num_threads(threads)
        try:
            with monkeypatch.context() as m:
                _patch_steps(m, descent, counting)
                fused = _fused_cases()[case]()
            with monkeypatch.context() as m:
                m.setattr(descent, "_descend", unfused)
                ref = _fused_cases()[case]()
        finally:
            _fastpaths.set_num_threads(None)
        assert calls["fused"] > 0  # the fused path did run
        _all_fields_equal(fused, ref, case)
    if case in ("gtol", "momentum_ftol"):  # nets stop at many different steps, inside windows
        assert 50 < int((np.asarray(ref.status) == train.CONVERGED).sum()) < 300
    if case in ("divergence", "momentum_divergence", "sgd_divergence_history"):
        assert (np.asarray(ref.status) == train.DIVERGED).any() and (np.asarray(ref.status) != train.DIVERGED).any()


@pytest.mark.fastpath
@pytest.mark.parametrize("method", ["gd", "momentum"])
def test_fast_values_never_change_the_result(layout, method, monkeypatch):
    """Fast loss values (one product less per step for a loss from data) serve only the divergence test inside
    a window: every field of the run, divergence steps included, is that of exact values, for any check_every."""
    from linnet.train import descent

    X, Y = data(m=16)
    loss = ln.SquaredLoss.from_data(X, Y)
    Ws = ln.init.gaussian((3, 4, 2), scale=0.5, batch=(4,), seed=3)
    lrs = np.array([0.05, 3.0, 0.1, 40.0])  # two of them diverge, at different steps
    kw = dict(lr=lrs, steps=60, keep_history=True, record_every=7)
    run = {
        "gd": lambda ce: train.gd(loss, Ws, check_every=ce, **kw),
        "momentum": lambda ce: train.momentum(loss, Ws, beta=0.5, check_every=ce, **kw),
    }[method]
    calls = {"fast": 0}

    def counting(update, fast_value, n):
        calls["fast"] += n if fast_value else 0

    with monkeypatch.context() as m:
        _patch_steps(m, descent, exact=True)
        ref = run(1)
    assert ref.status_names.tolist()[1::2] == ["diverged", "diverged"]
    for ce in (1, 6, 50):
        with monkeypatch.context() as m:
            _patch_steps(m, descent, counting)
            other = run(ce)
        _all_fields_equal(other, ref, f"check_every={ce}")
    assert calls["fast"] > 0  # fast values were used (for check_every > 1)


@pytest.mark.fastpath
def test_divergences_in_many_windows_keep_the_fast_windows(monkeypatch):
    """Each window in which a net diverges is replayed exactly; the run goes back to fast windows afterwards
    (it once stayed exact for good after three replays, halving the speed of learning-rate sweeps)."""
    from linnet.train import descent

    rng = np.random.default_rng(0)
    loss = ln.SquaredLoss.whitened(rng.standard_normal((4, 4)) / 2)
    Ws = ln.init.gaussian((4, 4, 4, 4), scale=0.4, batch=(128,), seed=1)
    lrs = np.linspace(0.05, 1.0, 128)
    calls = {"fused": 0}

    def counting(update, fast_value, n):
        calls["fused"] += n if update is not None else 0

    _patch_steps(monkeypatch, descent, counting)
    run = train.gd(loss, Ws, lr=lrs, steps=300, check_every=10)
    at = np.asarray(run.diverged_at)
    div_windows = {int(a - 1) // 10 for a in at[at > 0]}
    assert len(div_windows) > 3
    # a window right after one with a divergence starts exact; every other window is first run fast, with its
    # evaluations fused but the one at its last step, up to the first divergence in it, where it stops and is
    # replayed exactly
    fast_windows = [w for w in range(30) if w - 1 not in div_windows]
    assert len(fast_windows) > 15
    first = {w: min(int(a) for a in at[at > 0] if (a - 1) // 10 == w) for w in div_windows}
    expected = sum(min(first.get(w, 10 * w + 10), 10 * w + 9) - 10 * w for w in fast_windows)
    assert calls["fused"] == expected


@pytest.mark.fastpath
def test_false_alarms_stay_exact_and_change_nothing(monkeypatch):
    """A fast window whose event the exact replay does not confirm (here: forced by a huge fast-value margin)
    changes nothing in the result; after three such false alarms the run stays exact."""
    from linnet.train import descent

    X, Y = data(m=16)
    loss = ln.SquaredLoss.from_data(X, Y)
    Ws = ln.init.gaussian((3, 4, 2), scale=0.5, batch=(4,), seed=3)
    kw = dict(lr=np.array([0.05, 3.0, 0.1, 40.0]), steps=60, record_every=7, check_every=6)
    ref = train.gd(loss, Ws, **kw)
    monkeypatch.setattr(descent.driver, "_FAST_VALUE_MARGIN", 1.0)  # threshold 0: every fast value is an alarm
    calls = {"fast": 0}

    def counting(update, fast_value, n):
        calls["fast"] += n if fast_value else 0

    _patch_steps(monkeypatch, descent, counting)
    other = train.gd(loss, Ws, **kw)
    assert 3 <= calls["fast"] <= 3 * 6  # alarms in three windows, then exact windows only
    for name in ("status", "diverged_at", "loss", "steps"):
        np.testing.assert_array_equal(np.asarray(getattr(other, name)), np.asarray(getattr(ref, name)), name)
    for a, b in zip(other.weights, ref.weights):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("margin", [None, 1.0])
def test_flow_fast_stage_values_never_change_the_result(margin, monkeypatch):
    """gradient_flow's stages 1-5 use fast values (their values only feed the divergence test); the run is bit
    for bit the one with exact values, also when every stage is re-evaluated exactly (margin 1: threshold 0)."""
    from linnet.train import flow

    X, Y = data(m=16)
    loss = ln.SquaredLoss.from_data(X, Y)
    Ws = ln.init.gaussian((3, 4, 2), scale=0.5, batch=(6,), seed=3)
    kw = dict(t_final=1.5, times=[0.0, 0.5, 1.5], rtol=1e-8, atol=1e-10)
    real_step = flow._step.value_and_grads
    calls = {"fast": 0, "exact": 0}

    def exact_only(*a, fast_value=False, **k):
        return real_step(*a, **k)

    def counting(*a, fast_value=False, **k):
        calls["fast" if fast_value else "exact"] += 1
        return real_step(*a, fast_value=fast_value, **k)

    with monkeypatch.context() as m:
        m.setattr(flow._step, "value_and_grads", exact_only)
        ref = train.gradient_flow(loss, Ws, **kw)
    if margin is not None:
        monkeypatch.setattr(flow, "_FAST_VALUE_MARGIN", margin)
    monkeypatch.setattr(flow._step, "value_and_grads", counting)
    other = train.gradient_flow(loss, Ws, **kw)
    _all_fields_equal(other, ref, f"margin={margin}")
    assert calls["fast"] > 0
    if margin is None:
        assert calls["exact"] < calls["fast"]  # stage 6 and the set-up only
    else:
        assert calls["exact"] > calls["fast"]  # every fast stage was evaluated again


def _all_fields_equal(a, b, msg=""):
    """Every field of two Trajectories equal, bit for bit and dtype for dtype (the ``state`` dict entry by entry)."""
    for name in b._fields:
        _values_equal(getattr(a, name), getattr(b, name), f"{msg}: {name}")


def _values_equal(x, y, msg):
    if isinstance(x, dict):
        assert isinstance(y, dict) and x.keys() == y.keys(), msg
        for key in x:
            _values_equal(x[key], y[key], f"{msg}[{key}]")
    elif isinstance(x, (str, int)):
        assert x == y and type(x) is type(y), msg
    elif isinstance(x, tuple):
        assert len(x) == len(y)
        for u, v in zip(x, y):
            np.testing.assert_array_equal(u, v, err_msg=msg)
            assert np.asarray(u).dtype == np.asarray(v).dtype
    elif x is None or y is None:
        assert x is y, msg
    else:
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=msg)
        assert np.asarray(x).dtype == np.asarray(y).dtype


def _numpy_window_cases():
    rng = np.random.default_rng(0)
    wl = ln.SquaredLoss.whitened(rng.standard_normal((5, 5)) / 2)
    dl = ln.SquaredLoss.from_data(rng.standard_normal((5, 30)), rng.standard_normal((5, 30)))
    W = ln.init.gaussian((5, 5, 5, 5), scale=0.4, batch=(96,), seed=1)
    lrs = np.linspace(0.05, 1.2, 96)  # many nets diverge, at scattered steps
    We0 = 0.3 * rng.standard_normal((96, 5, 5))
    cl = ln.CallableLoss(
        lambda W: np.sum(W**4, axis=(-2, -1)), lambda W: 4 * W**3, lambda W, D: 12 * W**2 * D, shape=(5, 5)
    )
    return {
        "gd": lambda: train.gd(wl, W, lr=lrs, steps=80, record_every=9),
        "gd_history_gtol": lambda: train.gd(
            dl, W, lr=lrs / 1.5, steps=60, keep_history=True, record_every=11, gtol=1e-3
        ),
        "momentum": lambda: train.momentum(dl, W, lr=lrs / 2, beta=0.7, steps=70, record_every=8, check_every=6),
        "sgd": lambda: train.sgd(dl, W, lr=lrs / 2, steps=50, batch_size=9, seed=2, record_every=7),
        "callable": lambda: train.gd(cl, tuple(0.5 * w for w in W), lr=lrs / 10, steps=40, check_every=4),
        "sgd_ftol": lambda: train.sgd(dl, W, lr=lrs / 2, steps=50, batch_size=9, seed=2, ftol=2.0, check_every=6),
        "end_to_end_gd": lambda: train.end_to_end_gd(wl, We0, depth=3, lr=lrs, steps=60, record_every=7),
    }


@pytest.mark.parametrize("case", list(_numpy_window_cases()))
def test_numpy_windows_are_bitwise_the_array_code_loop(case, monkeypatch):
    """On NumPy, descent runs in private buffers with fused updates, fast values and (after a divergence)
    replayed windows; every field of the result is bit for bit that of the plain array-code loop (layer GD,
    heavy ball, SGD with and without stopping tests, a callable loss, the end-to-end dynamics)."""
    from linnet.train import descent

    got = _numpy_window_cases()[case]()
    with monkeypatch.context() as m:
        m.setattr(descent.driver, "_np_buffers", lambda W0, batch: None)  # the array-code loop on NumPy arrays
        ref = _numpy_window_cases()[case]()
    if case != "callable":
        assert (np.asarray(ref.status) == train.DIVERGED).sum() > 3
    _all_fields_equal(got, ref, case)


@pytest.mark.parametrize("keep_history", [False, True])
def test_trajectory_save_load_round_trip(tmp_path, keep_history):
    """Trajectory.save / Trajectory.load: every field back with its dtype and bits, no pickle in the file."""
    loss = ln.SquaredLoss.whitened(np.diag([2.0, 1.0]))
    Ws = ln.init.gaussian((2, 3, 2), scale=0.5, batch=(4,), seed=0, dtype="float32")
    run = train.gd(
        loss,
        Ws,
        lr=np.array([0.05, 0.1, 5.0, 0.2], dtype=np.float32),
        steps=30,
        record_every=7,
        keep_history=keep_history,
    )
    path = tmp_path / "run.npz"
    run.save(path)
    back = train.Trajectory.load(path)
    assert back.n_steps == run.n_steps and type(back.n_steps) is int
    assert (back.history is None) == (not keep_history)
    _all_fields_equal(back, run, "round trip")
    with np.load(path, allow_pickle=False) as z:  # loads without pickle
        assert "weights.0" in z.files


def test_trajectory_load_rejects_other_files(tmp_path):
    bad = tmp_path / "other.npz"
    np.savez(bad, x=np.zeros(3))
    with pytest.raises(ValueError, match="path"):
        train.Trajectory.load(bad)
    with pytest.raises(ValueError, match="path"):
        train.Trajectory.load(tmp_path / "missing.npz")


def _resume_cases():
    X, Y = data(m=24)
    loss = ln.SquaredLoss.from_data(X, Y)
    lrs = np.array([0.05, 0.1, 9.0, 0.2])  # one net diverges
    return {
        "gd": lambda Ws, **k: train.gd(loss, Ws, lr=lrs, **k),
        "gd_gtol": lambda Ws, **k: train.gd(loss, Ws, lr=0.1, gtol=1e-3, **k),
        "momentum": lambda Ws, **k: train.momentum(loss, Ws, lr=lrs, beta=0.7, **k),
        "sgd": lambda Ws, **k: train.sgd(loss, Ws, lr=lrs, batch_size=6, seed=3, **k),
    }


@pytest.mark.parametrize("records", [True, False])
@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("case", list(_resume_cases()))
def test_two_chained_runs_equal_one_run_bit_for_bit(layout, case, fast, records):
    """Run n steps, resume for n more: every field (step counter, records, history, weights, statuses, momentum
    and SGD RNG position) is that of one run of 2n steps, to the last bit, on the fast and the generic path, with
    many records (short stretches of fused steps) or none but the ends (long ones)."""
    import contextlib

    run = _resume_cases()[case]
    Ws = ln.init.gaussian((3, 4, 2), scale=0.5, batch=(4,), seed=3)
    kw = dict(record_every=5, keep_history=True, check_every=7, observe={"grad_norm": 10, "layer_norms": 20})
    if not records:
        kw = dict(record_every=40, check_every=7)
    with contextlib.nullcontext() if fast else ln.backend.fastpaths(False):
        one = run(Ws, steps=80, **kw)
        first = run(Ws, steps=40, **kw)
        two = run(first.weights, steps=40, resume=first, **kw)
    assert two.n_steps == one.n_steps == 80
    _all_fields_equal(two, one, case)
    if case != "gd_gtol":
        assert (np.asarray(one.status) == train.DIVERGED).any()


def test_resume_from_a_saved_file_and_bad_resume(tmp_path):
    X, Y = data(m=24)
    loss = ln.SquaredLoss.from_data(X, Y)
    Ws = ln.init.gaussian((3, 4, 2), scale=0.5, batch=(2,), seed=0)
    one = train.momentum(loss, Ws, lr=0.05, beta=0.5, steps=30)
    first = train.momentum(loss, Ws, lr=0.05, beta=0.5, steps=15)
    first.save(tmp_path / "a.npz")
    back = train.Trajectory.load(tmp_path / "a.npz")
    two = train.momentum(loss, back.weights, lr=0.05, beta=0.5, steps=15, resume=back)
    for u, v in zip(one.weights, two.weights):
        np.testing.assert_array_equal(u, v)
    with pytest.raises(ValueError, match="resume"):
        train.gd(loss, Ws, lr=0.1, steps=3, resume="yes")
    with pytest.raises(ValueError, match="resume"):
        train.gd(loss, ln.init.gaussian((3, 5, 2), scale=0.5, batch=(2,), seed=0), lr=0.1, steps=3, resume=first)


@pytest.mark.parametrize("method", ["gd", "momentum"])
def test_converged_at_is_the_first_step_meeting_the_tolerance(method):
    """``converged_at``: per net the first step whose loss is <= ftol (read off a record at every step), -1 for
    nets that diverged or ran out of steps; it carries over a resumed run; flows leave it None."""
    X, Y = data(m=24)
    loss = ln.SquaredLoss.from_data(X, Y)
    Ws = ln.init.gaussian((3, 4, 2), scale=0.5, batch=(4,), seed=3)
    lrs = np.array([0.05, 0.1, 9.0, 0.2])  # net 2 diverges
    ftol = 0.66705  # just above the least loss 0.6670423... (rank-deficient fit), below every start
    extra = {"momentum": dict(beta=0.5)}.get(method, {})
    fn = getattr(train, method)
    run = fn(loss, Ws, lr=lrs, steps=400, ftol=ftol, check_every=7, **extra)
    status, at, L = np.asarray(run.status), np.asarray(run.converged_at), np.asarray(run.loss)
    assert at.dtype == np.int64 and at.shape == (4,)
    assert status[2] == train.DIVERGED and at[2] == -1
    assert (status == train.CONVERGED).sum() >= 2
    for i in range(4):
        if status[i] == train.CONVERGED:
            k = int(np.argmax(L[:, i] <= ftol))  # records at every step: index = step
            assert L[k, i] <= ftol and at[i] == k > 0, (i, k, at[i])
        else:
            assert at[i] == -1
    first = fn(loss, Ws, lr=lrs, steps=int(at.max()) + 1, ftol=ftol, check_every=7, **extra)
    two = fn(loss, first.weights, lr=lrs, steps=400 - first.n_steps, ftol=ftol, resume=first, check_every=7, **extra)
    np.testing.assert_array_equal(np.asarray(two.converged_at), at)
    assert train.gradient_flow(loss, Ws, t_final=0.1).converged_at is None
