"""End-to-end losses (linnet.losses) against direct formulas, each other, and finite differences.

THEOREMS.md §0–§1: l(W) = ||WX - Y||^2 / (2m) with samples as columns; population and whitened forms.
"""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import linnet as ln
from linnet import strategies as lst
from linnet._backend import from_host, to_numpy
from linnet.testing import assert_close, tolerances

FIXTURES_OK = settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large]
)
# Central differences with h = eps^(1/3): error ~ eps^(2/3) times the scale; 50 leaves a margin (see test_calculus).
FD_SAFETY = 50.0


def _np(a):
    return np.asarray(to_numpy(a), dtype=np.float64)


def _eps(dtype_name):
    return float(np.finfo(dtype_name).eps)


def _data(seed, d0, dN, m, well_conditioned=True):
    rng = np.random.default_rng(seed)
    X = lst.well_conditioned(rng, d0, m) * math.sqrt(m) if well_conditioned else rng.standard_normal((d0, m))
    return X, rng.standard_normal((dN, d0)) @ X + 0.5 * rng.standard_normal((dN, m)), rng.standard_normal((dN, d0))


dims = st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 10), lst.seeds())


# ---- SquaredLoss --------------------------------------------------------------------------------------------------


@FIXTURES_OK
@given(dims=dims)
def test_from_data_equals_the_direct_formula(xp, dims):
    """value, grad and hvp of from_data equal ||WX-Y||^2/(2m), (WX-Y)X^T/m and D XX^T/m, any X (float64)."""
    d0, dN, m, seed = dims
    X, Y, W = _data(seed, d0, dN, m, well_conditioned=False)
    D = np.random.default_rng(seed + 1).standard_normal((dN, d0))
    loss = ln.SquaredLoss.from_data(from_host(X, xp), from_host(Y, xp))
    R = W @ X - Y
    direct = np.sum(R * R) / (2 * m)
    # the centred form is exact up to round-off on the scale of the uncentred terms
    scale = (np.sum((W @ X) ** 2) + np.sum(Y * Y)) / m + 1.0
    assert abs(float(loss.value(from_host(W, xp))) - direct) <= 1e3 * _eps("float64") * scale
    assert_close(loss.grad(from_host(W, xp)), from_host(R @ X.T / m, xp), atol=1e3 * _eps("float64") * scale)
    assert_close(loss.hvp(from_host(W, xp), from_host(D, xp)), from_host(D @ X @ X.T / m, xp))
    assert loss.shape == (dN, d0) and loss.data is not None


@given(dims=dims)
def test_population_and_centred_forms_agree(dims):
    """§1 population check: ||WX-Y||^2/(2m) = 1/2||(W-Phi) Lxx^(1/2)||^2 + 1/2 tr Lyy - 1/2 tr(Lyx Lxx^-1 Lxy)."""
    d0, dN, m, seed = dims
    m = max(m, d0)
    X, Y, W = _data(seed, d0, dN, m)
    Lxx, Lyx, Lyy = X @ X.T / m, Y @ X.T / m, Y @ Y.T / m
    Phi = Lyx @ np.linalg.inv(Lxx)
    ev, Q = np.linalg.eigh(Lxx)
    root = (Q * np.sqrt(ev)) @ Q.T
    const = 0.5 * np.trace(Lyy) - 0.5 * np.trace(Lyx @ np.linalg.inv(Lxx) @ Lyx.T)
    centred = 0.5 * np.sum(((W - Phi) @ root) ** 2) + const
    direct = np.sum((W @ X - Y) ** 2) / (2 * m)
    assert abs(direct - centred) <= 1e-12 * max(1.0, abs(direct))  # THEOREMS.md §1 rtol 1e-12
    for loss in (ln.SquaredLoss.from_data(X, Y), ln.SquaredLoss.population(0.5 * (Lxx + Lxx.T), Lyx, Lyy)):
        assert abs(float(loss.value(W)) - direct) <= 1e-12 * max(1.0, abs(direct))
        assert abs(float(loss.c0) - const) <= 1e-12 * max(1.0, abs(const))
        np.testing.assert_allclose(loss.Phi, Phi, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(loss.grad(W), W @ Lxx - Lyx, rtol=1e-12, atol=1e-12)


@FIXTURES_OK
@given(dims=dims)
def test_population_from_the_data_statistics_equals_from_data(xp, dtype_name, dims):
    """SquaredLoss.population(Lxx, Lyx, Lyy) of a data set equals from_data on it (value, grad, hvp, c0)."""
    d0, dN, m, seed = dims
    m = max(m, d0)
    X, Y, W = _data(seed, d0, dN, m)
    S = [X @ X.T / m, Y @ X.T / m, Y @ Y.T / m]
    S[0] = 0.5 * (S[0] + S[0].T)
    a = ln.SquaredLoss.from_data(from_host(X, xp, dtype_name), from_host(Y, xp, dtype_name))
    b = ln.SquaredLoss.population(*(from_host(s, xp, dtype_name) for s in S))
    Wx, Dx = from_host(W, xp, dtype_name), from_host(np.ones_like(W), xp, dtype_name)
    rtol, atol = tolerances(dtype_name)
    scale = max(1.0, float(np.sum(Y * Y)) / m)
    assert_close(a.value(Wx), b.value(Wx), atol=atol * 1e2 * scale)
    assert_close(a.c0, b.c0, atol=atol * 1e2 * scale)
    assert_close(a.grad(Wx), b.grad(Wx), atol=atol * 1e2 * scale)
    assert_close(a.hvp(Wx, Dx), b.hvp(Wx, Dx))


@FIXTURES_OK
@given(dims=dims)
def test_whitened_is_half_squared_distance_and_matches_whitened_data(xp, dims):
    """whitened(Phi) is 1/2||W - Phi||^2; data with XX^T/m = I give the same loss up to the constant c0."""
    d0, dN, m, seed = dims
    m = max(m, d0)
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((m, d0)))
    X = math.sqrt(m) * Q.T  # orthonormal rows times sqrt(m): Lambda_xx = I exactly up to round-off
    Y = rng.standard_normal((dN, m))
    W = rng.standard_normal((dN, d0))
    Phi = Y @ X.T / m
    white = ln.SquaredLoss.whitened(from_host(Phi, xp))
    data = ln.SquaredLoss.from_data(from_host(X, xp), from_host(Y, xp))
    Wx = from_host(W, xp)
    assert white.whitened_form and not data.whitened_form
    assert abs(float(white.value(Wx)) - 0.5 * np.sum((W - Phi) ** 2)) <= 1e-13 * max(
        1.0, np.sum(W * W) + np.sum(Phi * Phi)
    )
    assert float(white.c0) == 0.0
    assert_close(white.value(Wx) + data.c0, data.value(Wx), atol=1e-12)
    assert_close(white.grad(Wx), data.grad(Wx), atol=1e-12)
    assert_close(white.grad(Wx), from_host(W - Phi, xp))


@given(dims=dims)
def test_c0_is_the_unconstrained_minimum(dims):
    """c0 = value(Phi) = the least-squares residual (numpy.linalg.lstsq), and no W does better."""
    d0, dN, m, seed = dims
    X, Y, W = _data(seed, d0, dN, m, well_conditioned=False)
    loss = ln.SquaredLoss.from_data(X, Y)
    sol = np.linalg.lstsq(X.T, Y.T, rcond=None)[0].T
    best = np.sum((sol @ X - Y) ** 2) / (2 * m)
    scale = max(1.0, float(np.sum(Y * Y)) / m)
    assert abs(float(loss.c0) - best) <= 1e-10 * scale
    assert abs(float(loss.value(loss.Phi)) - best) <= 1e-10 * scale
    assert float(loss.value(W)) >= float(loss.c0) - 1e-12 * scale
    assert abs(float(loss.tr_yy) - np.sum(Y * Y) / m) <= 1e-12 * scale


def test_squared_loss_by_hand():
    """X = I, Y = [1, 2]: l(0) = (1 + 4)/(2*2) = 1.25, Phi = Y, c0 = 0."""
    loss = ln.SquaredLoss.from_data(np.eye(2), np.array([[1.0, 2.0]]))
    assert float(loss.value(np.zeros((1, 2)))) == 1.25
    np.testing.assert_allclose(loss.Phi, [[1.0, 2.0]], atol=1e-15)
    assert abs(float(loss.c0)) <= 1e-15


def test_astype_converts_and_caches(xp):
    """astype(float32) gives a float32 loss (cached); astype to the same dtype returns the loss itself."""
    X, Y, W = _data(0, 3, 2, 6)
    for loss in (
        ln.SquaredLoss.from_data(from_host(X, xp), from_host(Y, xp)),
        ln.LpLoss(from_host(X, xp), from_host(Y, xp), p=3),
        ln.HuberLoss(from_host(X, xp), from_host(Y, xp)),
    ):
        assert loss.astype(xp.float64) is loss
        f32 = loss.astype(xp.float32)
        W32 = from_host(W, xp, "float32")
        v = f32.value(W32)
        assert v.dtype == xp.float32 and f32.grad(W32).dtype == xp.float32 and f32.hvp(W32, W32).dtype == xp.float32
        assert abs(float(v) - float(loss.value(from_host(W, xp)))) <= 1e2 * _eps("float32") * max(1.0, abs(float(v)))
        if not isinstance(loss, ln.HuberLoss):
            assert loss.astype(xp.float32) is f32


# ---- LpLoss and HuberLoss -----------------------------------------------------------------------------------------


@FIXTURES_OK
@given(dims=dims)
def test_lp_with_p_2_equals_squared_loss(xp, dims):
    """LpLoss(p=2) is the squared loss from data: value, grad, HVP, and the deep gradient."""
    d0, dN, m, seed = dims
    X, Y, W = _data(seed, d0, dN, m, well_conditioned=False)
    a = ln.LpLoss(from_host(X, xp), from_host(Y, xp), p=2)
    b = ln.SquaredLoss.from_data(from_host(X, xp), from_host(Y, xp))
    Wx = from_host(W, xp)
    scale = (np.sum((W @ X) ** 2) + np.sum(Y * Y)) / m + 1.0
    atol = 1e3 * _eps("float64") * scale
    assert_close(a.value(Wx), b.value(Wx), atol=atol)
    assert_close(a.grad(Wx), b.grad(Wx), atol=atol)
    assert_close(a.hvp(Wx, Wx), b.hvp(Wx, Wx), atol=atol)
    Ws = ln.init.gaussian((d0, 3, dN), 0.7, seed=seed, xp=xp)
    for g, h in zip(ln.grad(a, Ws), ln.grad(b, Ws)):
        assert_close(g, h, atol=atol)


def test_lp_value_by_hand(xp):
    """LpLoss value is sum |WX - Y|^p / (p m): residuals (1, -2) with p = 3, m = 2 give (1 + 8)/6 = 1.5."""
    X = from_host(np.eye(2), xp)
    Y = from_host(np.array([[-1.0, 2.0]]), xp)
    loss = ln.LpLoss(X, Y, p=3)
    assert float(loss.value(from_host(np.zeros((1, 2)), xp))) == 1.5
    assert loss.shape == (1, 2) and loss.p == 3.0 and loss.m == 2


def _fd_check_loss(loss, W, D, dtype_name):
    """End-to-end FD check of grad (<g, D>) and hvp (difference of grads) for one loss in ``dtype_name``."""
    h = _eps(dtype_name) ** (1 / 3)
    tol = FD_SAFETY * _eps(dtype_name) ** (2 / 3)
    fd = (_np(loss.value(W + h * D)) - _np(loss.value(W - h * D))) / (2 * h)
    scale = max(1.0, abs(float(fd)), abs(float(_np(loss.value(W)))))
    assert abs(float(fd) - float(np.sum(_np(loss.grad(W)) * _np(D)))) <= tol * scale
    fdg = (_np(loss.grad(W + h * D)) - _np(loss.grad(W - h * D))) / (2 * h)
    HD = _np(loss.hvp(W, D))
    assert np.max(np.abs(fdg - HD)) <= tol * max(1.0, np.max(np.abs(HD)), np.max(np.abs(_np(loss.grad(W)))))


@FIXTURES_OK
@given(data=st.data())
def test_lp_grad_and_hvp_match_differences(xp, dtype_name, data):
    """LpLoss grad and HVP (end-to-end and deep) match central differences, p in {2, 3, 4, 6}."""
    widths = data.draw(lst.widths(1, 3, 1, 3))
    loss = data.draw(lst.lp_losses(widths[0], widths[-1], ps=(2.0, 3.0, 4.0, 6.0), noise=0.3, xp=xp, dtype=dtype_name))
    W = data.draw(lst.weights((widths[0], widths[-1]), 0.5, xp=xp, dtype=dtype_name))[0]
    D = data.draw(lst.weights((widths[0], widths[-1]), 0.3, xp=xp, dtype=dtype_name))[0]
    _fd_check_loss(loss, W, D, dtype_name)
    Ws = data.draw(lst.weights(widths, 0.5, xp=xp, dtype=dtype_name))
    Vs = data.draw(lst.directions(Ws, 0.3))
    h = _eps(dtype_name) ** (1 / 3)
    tol = FD_SAFETY * _eps(dtype_name) ** (2 / 3)
    up = ln.grad(loss, tuple(W + h * V for W, V in zip(Ws, Vs)))
    dn = ln.grad(loss, tuple(W - h * V for W, V in zip(Ws, Vs)))
    HV = ln.hvp(loss, Ws, Vs)
    scale = max([1.0] + [float(np.max(np.abs(_np(a)))) for a in HV + ln.grad(loss, Ws)])
    for a, b, c in zip(up, dn, HV):
        assert np.max(np.abs((_np(a) - _np(b)) / (2 * h) - _np(c))) <= tol * scale


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("delta", [0.3, 1.0, 100.0])
def test_huber_grad_and_hvp_match_differences_away_from_the_kink(xp, dtype_name, seed, delta):
    """HuberLoss grad and HVP match central differences where no residual sits within the step of |r| = delta."""
    rng = np.random.default_rng(seed)
    X, _, W = _data(seed, 3, 2, 8)
    D = rng.standard_normal(W.shape) * 0.1
    # residuals placed by construction in [0, 0.8 delta] or [1.2 delta, 3 delta], with random signs
    mag = np.where(rng.random((2, 8)) < 0.5, rng.uniform(0, 0.8, (2, 8)), rng.uniform(1.2, 3.0, (2, 8))) * delta
    Y = W @ X - mag * rng.choice([-1.0, 1.0], size=(2, 8))
    loss = ln.HuberLoss(from_host(X, xp, dtype_name), from_host(Y, xp, dtype_name), delta=delta)
    h = _eps(dtype_name) ** (1 / 3)
    assert 0.2 * delta > 10 * h * np.max(np.abs(D @ X))  # the FD steps never cross the kink
    _fd_check_loss(loss, from_host(W, xp, dtype_name), from_host(D, xp, dtype_name), dtype_name)


def test_huber_limits(xp):
    """Huber with delta above every residual is the squared loss; its value matches h_delta summed by hand."""
    X, Y, W = _data(3, 3, 2, 8)
    Xx, Yx, Wx = from_host(X, xp), from_host(Y, xp), from_host(W, xp)
    big = ln.HuberLoss(Xx, Yx, delta=1e6)
    sq = ln.SquaredLoss.from_data(Xx, Yx)
    assert_close(big.value(Wx), sq.value(Wx))
    assert_close(big.grad(Wx), sq.grad(Wx))
    R = W @ X - Y
    d = 0.5
    h = np.where(np.abs(R) <= d, 0.5 * R * R, d * (np.abs(R) - 0.5 * d))
    assert_close(ln.HuberLoss(Xx, Yx, delta=d).value(Wx), from_host(np.sum(h) / 8, xp))


def test_batched_problems_equal_member_by_member(xp):
    """A batch of problems (leading axis of X, Y) gives per-problem values equal to the unbatched losses."""
    rng = np.random.default_rng(0)
    X = np.stack([lst.well_conditioned(rng, 3, 6) * math.sqrt(6) for _ in range(4)])
    Y = rng.standard_normal((4, 2, 6))
    W = rng.standard_normal((2, 3))
    D = rng.standard_normal((2, 3))
    Xx, Yx, Wx, Dx = (from_host(a, xp) for a in (X, Y, W, D))
    S = [X @ np.swapaxes(X, -1, -2) / 6, Y @ np.swapaxes(X, -1, -2) / 6, Y @ np.swapaxes(Y, -1, -2) / 6]
    S[0] = 0.5 * (S[0] + np.swapaxes(S[0], -1, -2))
    makers = [
        lambda x, y, s: ln.SquaredLoss.from_data(x, y),
        lambda x, y, s: ln.SquaredLoss.population(*s),
        lambda x, y, s: ln.SquaredLoss.whitened(s[1]),
        lambda x, y, s: ln.LpLoss(x, y, p=4),
        lambda x, y, s: ln.HuberLoss(x, y, delta=0.7),
    ]
    for make in makers:
        batched = make(Xx, Yx, [from_host(s, xp) for s in S])
        v, g = batched.value(Wx), batched.grad(Wx)
        assert v.shape == (4,) and g.shape == (4, 2, 3)
        # the whitened HVP is D itself (no problem dependence): it broadcasts rather than carrying the batch
        hv = xp.broadcast_to(batched.hvp(Wx, Dx), (4, 2, 3))
        for k in range(4):
            one = make(from_host(X[k], xp), from_host(Y[k], xp), [from_host(s[k], xp) for s in S])
            assert_close(v[k], one.value(Wx), atol=1e-12)
            assert_close(g[k, ...], one.grad(Wx), atol=1e-12)
            assert_close(hv[k, ...], one.hvp(Wx, Dx), atol=1e-12)


# ---- CallableLoss ----------------------------------------------------------------------------------------------


def test_callable_loss_through_the_deep_calculus():
    """A non-convex CallableLoss (double well) gives deep grads and HVPs that match central differences."""

    def value(W):
        return np.sum((W**2 - 1) ** 2 + 0.3 * W, axis=(-2, -1))

    dw = ln.CallableLoss(value, lambda W: 4 * W * (W**2 - 1) + 0.3, lambda W, D: (12 * W**2 - 4) * D, shape=(1, 1))
    assert not dw.convex and dw.differentiable and dw.min_value() is None
    Ws = ln.init.gaussian((1, 2, 1), 0.9, seed=0)
    Vs = ln.init.gaussian((1, 2, 1), 1.0, seed=1)
    h = _eps("float64") ** (1 / 3)
    tol = FD_SAFETY * _eps("float64") ** (2 / 3)
    L = lambda s: float(ln.loss(dw, tuple(W + s * V for W, V in zip(Ws, Vs))))  # noqa: E731
    fd = (L(h) - L(-h)) / (2 * h)
    g = ln.grad(dw, Ws)
    assert abs(fd - sum(float(np.sum(a * b)) for a, b in zip(g, Vs))) <= tol * max(1.0, abs(fd))
    up = ln.grad(dw, tuple(W + h * V for W, V in zip(Ws, Vs)))
    dn = ln.grad(dw, tuple(W - h * V for W, V in zip(Ws, Vs)))
    for a, b, c in zip(up, dn, ln.hvp(dw, Ws, Vs)):
        assert np.max(np.abs((a - b) / (2 * h) - c)) <= tol * max(1.0, float(np.max(np.abs(c))))
