"""Matrix sensing / completion and margin losses (linnet.losses_sensing, linnet.losses_classification).

References: central finite differences (h = eps^(1/3)), sympy on tiny cases, member-by-member evaluation of
batches, NumPy against array_api_strict, the KKT conditions of the hard-margin SVM. THEOREMS2.md "Losses used
in this part" and §17.
"""

import numpy as np
import pytest

import linnet as ln
from linnet._backend import from_host, get_namespace, to_numpy
from linnet.testing import assert_close

FD_SAFETY = 50.0  # as tests/test_losses.py: central differences err ~ eps^(2/3) times the scale


def _np(a):
    return np.asarray(to_numpy(a), dtype=np.float64)


def _eps(dtype_name):
    return float(np.finfo(dtype_name).eps)


def _sensing(seed=0, m=7, dN=2, d0=3, batch=()):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(batch + (m, dN, d0)), rng.standard_normal(batch + (m,))


def _completion(seed=0, shape=(4, 5), p=0.5):
    rng = np.random.default_rng(seed)
    M = rng.standard_normal(shape)
    mask = rng.random(shape) < p
    mask[0, 0] = True
    return M, mask


def _classification(seed=0, d0=3, m=9):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((d0, m))
    y = np.where(rng.standard_normal(m) > 0, 1.0, -1.0)
    return X, y


def _losses(xp, dt):
    A, y = _sensing()
    M, mask = _completion()
    X, lab = _classification()
    h = lambda a: from_host(a, xp, dt)  # noqa: E731
    return {
        "sensing": (ln.LinearMeasurementLoss(h(A), h(y)), (2, 3)),
        "sensing-sum": (ln.LinearMeasurementLoss(h(A), h(y), reduction="sum"), (2, 3)),
        "completion": (ln.MatrixCompletionLoss(h(M), mask), (4, 5)),
        "completion-sum": (ln.MatrixCompletionLoss(h(M), mask, reduction="sum"), (4, 5)),
        "logistic": (ln.LogisticLoss(h(X), h(lab)), (1, 3)),
        "exponential": (ln.ExponentialLoss(h(X), h(lab)), (1, 3)),
        "logistic-mean": (ln.LogisticLoss(h(X), h(lab), reduction="mean"), (1, 3)),
    }


NAMES = list(_losses(np, "float64"))


@pytest.mark.parametrize("name", NAMES)
def test_grad_and_hvp_match_central_differences(xp, dtype_name, name):
    loss, shape = _losses(xp, dtype_name)[name]
    rng = np.random.default_rng(1)
    W = from_host(0.5 * rng.standard_normal(shape), xp, dtype_name)
    D = from_host(rng.standard_normal(shape), xp, dtype_name)
    h = _eps(dtype_name) ** (1 / 3)
    tol = FD_SAFETY * _eps(dtype_name) ** (2 / 3)
    for out in (loss.value(W), loss.grad(W), loss.hvp(W, D)):
        assert out.dtype == W.dtype  # float32 stays float32
    fd = (_np(loss.value(W + h * D)) - _np(loss.value(W - h * D))) / (2 * h)
    scale = max(1.0, abs(float(fd)), abs(float(_np(loss.value(W)))))
    assert abs(float(fd) - float(np.sum(_np(loss.grad(W)) * _np(D)))) <= tol * scale
    fdg = (_np(loss.grad(W + h * D)) - _np(loss.grad(W - h * D))) / (2 * h)
    HD = _np(loss.hvp(W, D))
    assert np.max(np.abs(fdg - HD)) <= tol * max(1.0, np.max(np.abs(HD)), np.max(np.abs(_np(loss.grad(W)))))


@pytest.mark.parametrize("name", ["sensing", "completion", "logistic", "exponential"])
def test_deep_grad_matches_central_differences(name):
    """Through the product map (linnet.calculus) with the new losses: <dL/dW, V> against central differences."""
    loss, (dN, d0) = _losses(np, "float64")[name]
    Ws = ln.init.gaussian((d0, 3, 4, dN), scale=0.6, seed=2)
    Vs = ln.init.gaussian((d0, 3, 4, dN), scale=1.0, seed=3)
    h = _eps("float64") ** (1 / 3)
    plus = float(ln.loss(loss, [W + h * V for W, V in zip(Ws, Vs)]))
    minus = float(ln.loss(loss, [W - h * V for W, V in zip(Ws, Vs)]))
    G = ln.grad(loss, Ws)
    exact = sum(float(np.sum(g * v)) for g, v in zip(G, Vs))
    assert abs((plus - minus) / (2 * h) - exact) <= FD_SAFETY * _eps("float64") ** (2 / 3) * max(1.0, abs(exact))
    HV = ln.hvp(loss, Ws, Vs)
    Gp = ln.grad(loss, [W + h * V for W, V in zip(Ws, Vs)])
    Gm = ln.grad(loss, [W - h * V for W, V in zip(Ws, Vs)])
    for a, b, c in zip(HV, Gp, Gm):
        assert np.max(np.abs(a - (b - c) / (2 * h))) <= FD_SAFETY * _eps("float64") ** (2 / 3) * max(
            1.0, np.abs(a).max()
        )


def test_sympy_sensing_and_logistic():
    sp = pytest.importorskip("sympy")
    w = sp.symbols("w0:4")
    Wsym = sp.Matrix(2, 2, w)
    A = [sp.Matrix([[1, 2], [0, -1]]), sp.Matrix([[sp.Rational(1, 2), 0], [3, 1]]), sp.Matrix([[0, 1], [1, 0]])]
    yv = [1, -2, sp.Rational(1, 3)]
    ell = sum((sum(Ak.multiply_elementwise(Wsym)) - yk) ** 2 for Ak, yk in zip(A, yv)) / (2 * 3)
    pt = {w[0]: 0.3, w[1]: -0.7, w[2]: 1.1, w[3]: 0.2}
    An = np.array([np.array(a.tolist(), dtype=float) for a in A])
    loss = ln.LinearMeasurementLoss(An, np.array([float(v) for v in yv]))
    Wn = np.array([[0.3, -0.7], [1.1, 0.2]])
    Dn = np.array([[1.0, 0.5], [-2.0, 0.25]])
    grad = np.array([float(sp.diff(ell, s).subs(pt)) for s in w]).reshape(2, 2)
    H = np.array([[float(sp.diff(ell, a, b).subs(pt)) for b in w] for a in w])
    assert_close(loss.value(Wn), np.array(float(ell.subs(pt))))
    assert_close(loss.grad(Wn), grad)
    assert_close(loss.hvp(Wn, Dn), (H @ Dn.reshape(-1)).reshape(2, 2))

    v = sp.symbols("v0:2")
    Z = [(1.0, 2.0), (-0.5, 1.5), (2.0, -1.0)]
    lab = [1, -1, 1]
    for cls, term in ((ln.LogisticLoss, lambda q: sp.log(1 + sp.exp(-q))), (ln.ExponentialLoss, lambda q: sp.exp(-q))):
        f = sum(term(yi * (v[0] * x0 + v[1] * x1)) for (x0, x1), yi in zip(Z, lab))
        pt = {v[0]: 0.4, v[1]: -0.3}
        lo = cls(np.array(Z).T, np.array(lab, dtype=float))
        Wn = np.array([[0.4, -0.3]])
        Dn = np.array([[0.7, -1.3]])
        g = np.array([[float(sp.diff(f, s).subs(pt)) for s in v]])
        H = np.array([[float(sp.diff(f, a, b).subs(pt)) for b in v] for a in v])
        assert_close(lo.value(Wn), np.array(float(f.subs(pt))))
        assert_close(lo.grad(Wn), g)
        assert_close(lo.hvp(Wn, Dn), Dn @ H)


def test_batches_equal_member_by_member():
    """A batch of problems and a batch of nets give what each (problem, net) pair gives alone."""
    rng = np.random.default_rng(4)
    A, y = _sensing(seed=5, batch=(3,))
    Ws = rng.standard_normal((3, 2, 3))
    D = rng.standard_normal((3, 2, 3))
    M = rng.standard_normal((3, 4, 5))
    mask = rng.random((3, 4, 5)) < 0.5
    mask[:, 0, 0] = True
    Wc, Dc = rng.standard_normal((3, 4, 5)), rng.standard_normal((3, 4, 5))
    X = rng.standard_normal((3, 3, 9))
    lab = np.where(rng.standard_normal((3, 9)) > 0, 1.0, -1.0)
    Wl, Dl = rng.standard_normal((3, 1, 3)), rng.standard_normal((3, 1, 3))
    cases = [
        (ln.LinearMeasurementLoss(A, y), [ln.LinearMeasurementLoss(A[i], y[i]) for i in range(3)], Ws, D),
        (ln.MatrixCompletionLoss(M, mask), [ln.MatrixCompletionLoss(M[i], mask[i]) for i in range(3)], Wc, Dc),
        (ln.LogisticLoss(X, lab), [ln.LogisticLoss(X[i], lab[i]) for i in range(3)], Wl, Dl),
        (ln.ExponentialLoss(X, lab), [ln.ExponentialLoss(X[i], lab[i]) for i in range(3)], Wl, Dl),
    ]
    for batched, single, W, Dd in cases:
        v, g, hv = batched.value(W), batched.grad(W), batched.hvp(W, Dd)
        assert v.shape == (3,) and g.shape == W.shape
        for i, one in enumerate(single):
            assert_close(v[i], one.value(W[i]))
            assert_close(g[i], one.grad(W[i]))
            assert_close(hv[i], one.hvp(W[i], Dd[i]))
        # one problem, a batch of nets: broadcasting over the nets
        one = single[0]
        for i in range(3):
            assert_close(one.value(W)[i], one.value(W[i]))
            assert_close(one.grad(W)[i], one.grad(W[i]))


def test_numpy_equals_array_api_strict():
    pytest.importorskip("array_api_strict")
    xs = get_namespace("array_api_strict")
    rng = np.random.default_rng(6)
    for name in NAMES:
        a, shape = _losses(np, "float64")[name]
        b, _ = _losses(xs, "float64")[name]
        W, D = 0.5 * rng.standard_normal(shape), rng.standard_normal(shape)
        Wx, Dx = from_host(W, xs), from_host(D, xs)
        np.testing.assert_allclose(_np(b.value(Wx)), a.value(W), rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(_np(b.grad(Wx)), a.grad(W), rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(_np(b.hvp(Wx, Dx)), a.hvp(W, D), rtol=1e-13, atol=1e-14)


def test_completion_is_sensing_with_unit_measurements():
    M, mask = _completion(seed=7)
    comp = ln.MatrixCompletionLoss(M, mask)
    A, y = comp.measurements()
    sens = ln.LinearMeasurementLoss(A, y)
    rows, cols = np.nonzero(mask)
    idx = ln.MatrixCompletionLoss.from_indices(rows, cols, M[rows, cols], M.shape)
    W, D = np.random.default_rng(8).standard_normal((2,) + M.shape)
    for other in (sens, idx):
        assert_close(other.value(W), comp.value(W))
        assert_close(other.grad(W), comp.grad(W))
        assert_close(other.hvp(W, D), comp.hvp(W, D))
    assert comp.num_samples == int(mask.sum()) == sens.num_samples
    # unobserved entries of M are never used
    M2 = M + 100.0 * (~mask)
    assert_close(ln.MatrixCompletionLoss(M2, mask).grad(W), comp.grad(W))
    M3 = np.where(mask, M, np.nan)  # unknown entries as NaN
    assert_close(ln.MatrixCompletionLoss(M3, mask).value(W), comp.value(W))
    with pytest.raises(ValueError, match="`M"):
        ln.MatrixCompletionLoss(np.where(mask, np.nan, M), mask)  # an observed NaN is an error


def test_margin_losses_are_stable_at_large_margins(xp, dtype_name):
    X = from_host(np.array([[1.0, -1.0, 2.0]]), xp, dtype_name)
    y = from_host(np.array([1.0, -1.0, 1.0]), xp, dtype_name)
    lo, ex = ln.LogisticLoss(X, y), ln.ExponentialLoss(X, y)
    for s in (1e3, -1e3):
        W = from_host(np.array([[s]]), xp, dtype_name)  # margins (s, s, 2s)
        v, g, hv = (_np(f) for f in (lo.value(W), lo.grad(W), lo.hvp(W, W)))
        assert np.all(np.isfinite(v)) and np.all(np.isfinite(g)) and np.all(np.isfinite(hv))
        if s > 0:  # log(1 + e^-1000) underflows to 0 exactly, without a log(0)
            assert float(v) == 0.0 and float(g[0, 0]) == 0.0
            assert float(_np(ex.value(W))) == 0.0
        else:  # log(1 + e^1000) = 1000 + log1p(e^-1000): 1000 + 1000 + 2000
            np.testing.assert_allclose(float(v), 4000.0, rtol=4 * _eps(dtype_name))
            np.testing.assert_allclose(g[0, 0], -(1.0 + 1.0 + 2.0), rtol=4 * _eps(dtype_name))
            assert float(hv[0, 0]) == 0.0
            assert np.isinf(float(_np(ex.value(W))))  # e^1000 is not representable: inf, never NaN


def test_sgd_over_measurements_runs_and_full_batch_is_gd():
    rng = np.random.default_rng(9)
    U = rng.standard_normal((6, 2))
    M = U @ U.T
    mask = rng.random((6, 6)) < 0.7
    A = rng.standard_normal((40, 3, 3))
    Wt = rng.standard_normal((3, 3))
    y = np.einsum("kij,ij->k", A, Wt)
    X = rng.standard_normal((3, 30))
    lab = np.sign(np.array([1.0, -0.5, 0.3]) @ X)
    cases = [
        (ln.MatrixCompletionLoss(M, mask), (6, 6, 6, 6), 0.3, 4),
        (ln.LinearMeasurementLoss(A, y), (3, 3, 3), 0.05, 8),
        (ln.LogisticLoss(X, lab, reduction="mean"), (3, 4, 1), 0.5, 6),
    ]
    for loss, widths, lr, b in cases:
        Ws = ln.init.gaussian(widths, scale=0.4, seed=1)
        run = ln.train.sgd(loss, Ws, lr=lr, steps=300, batch_size=b, seed=3)
        assert run.loss[-1] < 0.5 * run.loss[0], type(loss).__name__
        full = ln.train.sgd(loss, Ws, lr=lr, steps=20, batch_size=loss.num_samples, seed=3)
        ref = ln.train.gd(loss, Ws, lr=lr, steps=20)
        for a, c in zip(full.weights, ref.weights):
            np.testing.assert_allclose(a, c, rtol=1e-10, atol=1e-12)


def test_gradient_flow_and_hessian_accept_the_new_losses():
    X, lab = _classification(seed=10)
    loss = ln.LogisticLoss(X, lab)
    Ws = ln.init.gaussian((3, 3, 1), scale=0.5, seed=0)
    run = ln.train.gradient_flow(loss, Ws, t_final=2.0)
    assert run.loss[-1] < run.loss[0]
    H = ln.hessian(loss, Ws)
    assert np.allclose(H, H.T, atol=1e-12)
    M, mask = _completion(seed=11, shape=(4, 4), p=0.7)
    comp = ln.MatrixCompletionLoss(M, mask)
    Wb = ln.init.balanced(0.1 * np.eye(4), (4, 4, 4, 4))
    L0 = float(ln.loss(comp, Wb))
    assert ln.train.momentum(comp, Wb, lr=0.2, beta=0.5, steps=200).loss[-1] < 0.1 * L0
    e2e = ln.train.end_to_end_flow(comp, ln.end_to_end(Wb), depth=3, t_final=50.0)
    assert e2e.loss[-1] < 0.1 * L0


def test_callable_loss_without_hvp_is_first_order_only():
    f = ln.CallableLoss(lambda W: np.sum(W**4, axis=(-2, -1)) / 4, lambda W: W**3, shape=(2, 2))
    Ws = ln.init.gaussian((2, 2, 2), scale=0.8, seed=0)
    run = ln.train.gd(f, Ws, lr=0.1, steps=50)
    assert run.loss[-1] < run.loss[0]
    with pytest.raises(ValueError, match="hvp"):
        ln.hvp(f, Ws, Ws)
    with pytest.raises(ValueError, match="hvp"):
        ln.hessian(f, Ws)
    with pytest.raises(ValueError, match="`hvp` must be callable"):
        ln.CallableLoss(lambda W: W, lambda W: W, hvp=3, shape=(1, 1))


def test_max_margin_direction_satisfies_kkt():
    rng = np.random.default_rng(11)  # THEOREMS2 §17 data recipe at d0 = 5, m = 20
    ws = rng.standard_normal(5)
    X = rng.standard_normal((5, 20))
    y = np.sign(ws @ X)
    X = X + 0.3 * y[None, :] * (ws / np.linalg.norm(ws))[:, None]
    w = ln.max_margin_direction(X, y)[0]
    q = (X * y).T @ w
    assert abs(q.min() - 1) <= 1e-10
    S = q <= 1 + 1e-8
    alpha, *_ = np.linalg.lstsq((X * y)[:, S], w, rcond=None)  # w is a nonnegative combination of support vectors
    assert np.all(alpha >= -1e-10)
    np.testing.assert_allclose((X * y)[:, S] @ alpha, w, atol=1e-10)
    # no feasible direction has a larger margin: random feasible perturbations only grow the norm
    for _ in range(200):
        v = w + 0.1 * rng.standard_normal(5)
        qv = (X * y).T @ v
        if qv.min() > 0:
            assert np.linalg.norm(v / qv.min()) >= np.linalg.norm(w) - 1e-12
    u = ln.max_margin_direction(X, y, normalize=True)
    np.testing.assert_allclose(np.linalg.norm(u), 1.0, rtol=1e-14)


@pytest.mark.parametrize(
    "build, arg",
    [
        (lambda: ln.LinearMeasurementLoss(np.ones((3, 2, 2)), np.ones(4)), "`y`"),
        (lambda: ln.LinearMeasurementLoss(np.ones((2, 2)), np.ones(2)), "`A`"),
        (lambda: ln.LinearMeasurementLoss(np.ones((3, 2, 2)), np.ones(3), reduction="max"), "`reduction`"),
        (lambda: ln.LinearMeasurementLoss(np.full((3, 2, 2), np.nan), np.ones(3)), "`A`"),
        (lambda: ln.MatrixCompletionLoss(np.ones((2, 2)), np.ones((3, 2), dtype=bool)), "`mask`"),
        (lambda: ln.MatrixCompletionLoss(np.ones((2, 2)), np.zeros((2, 2), dtype=bool)), "`mask`"),
        (lambda: ln.MatrixCompletionLoss(np.ones((2, 2)), np.full((2, 2), 0.5)), "`mask`"),
        (lambda: ln.MatrixCompletionLoss.from_indices([0, 0], [1, 1], [1.0, 2.0], (2, 2)), "`rows`"),
        (lambda: ln.MatrixCompletionLoss.from_indices([0, 5], [1, 1], [1.0, 2.0], (2, 2)), "`rows`"),
        (lambda: ln.MatrixCompletionLoss.from_indices([0, 1], [1, 1], [1.0], (2, 2)), "`values`"),
        (lambda: ln.LogisticLoss(np.ones((2, 3)), np.array([1.0, 0.0, -1.0])), "`y`"),
        (lambda: ln.LogisticLoss(np.ones((2, 3)), np.ones(2)), "`y`"),
        (lambda: ln.ExponentialLoss(np.ones(3), np.ones(3)), "`X`"),
        (lambda: ln.max_margin_direction(np.array([[1.0, 1.0]]), np.array([1.0, -1.0])), "separable"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(build, arg):
    with pytest.raises(ValueError, match=arg):
        build()


def test_trainers_reject_mismatched_shapes():
    loss = ln.LogisticLoss(np.ones((3, 4)), np.ones(4))
    with pytest.raises(ValueError, match="`loss`"):
        ln.train.gd(loss, ln.init.gaussian((3, 2), scale=0.1, seed=0), lr=0.1, steps=2)
    mask = np.zeros((2, 3, 3), dtype=bool)
    mask[0] = np.eye(3, dtype=bool)
    mask[1, 0, :] = mask[1, 1, 1] = True  # 3 and 4 observations: no common m to draw from
    comp = ln.MatrixCompletionLoss(np.ones((2, 3, 3)), mask)
    with pytest.raises(ValueError, match="`loss`"):
        ln.train.sgd(comp, ln.init.gaussian((3, 3), scale=0.1, seed=0), lr=0.1, steps=2, batch_size=1)
