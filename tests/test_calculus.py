"""Closed-form calculus of the deep loss: gradients, HVPs and Hessians against independent references.

References: central finite differences (THEOREMS.md §1), the §1 Hessian quadratic form written out in NumPy,
member-by-member evaluation, the other backend, the plain net on factors I + W, the GL(d) gauge symmetry and
its generator (§12), and the ACH preconditioner spectrum (§4). Negative controls (§1 (a), (b)) are here too.
"""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import linnet as ln
from linnet import strategies as lst
from linnet._backend import from_host, get_namespace, to_numpy
from linnet.linalg import e2e_velocity, preconditioner, preconditioner_eigenvalues
from linnet.testing import assert_close, rel_error, tolerances

# The xp / dtype_name fixtures are stateless, so reusing them across hypothesis examples is safe.
FIXTURES_OK = settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large]
)

# Central differences with h = eps^(1/3) have error ~ eps^(2/3) times the scale of L (truncation + round-off).
# Observed worst case over 300 random nets (both dtypes, unit directions): 4 eps^(2/3); 50 leaves margin.
FD_SAFETY = 50.0
# "Fails by orders of magnitude" (THEOREMS.md §1 controls): a wrong formula must miss by this factor times the tol.
CONTROL_FACTOR = 1e3


def _eps(dtype):
    return float(np.finfo(str(dtype).split(".")[-1]).eps)


def fd_step(dtype) -> float:
    """Step of a central difference in ``dtype``: eps^(1/3) balances truncation and round-off."""
    return _eps(dtype) ** (1 / 3)


def fd_tol(dtype) -> float:
    """Relative tolerance of a central difference with :func:`fd_step`."""
    return FD_SAFETY * _eps(dtype) ** (2 / 3)


def _np(a):
    return np.asarray(to_numpy(a), dtype=np.float64)


def _inner(As, Bs):
    """Per-net Frobenius inner product of two tuples of layers, on the host in float64."""
    return sum(np.sum(_np(a) * _np(b), axis=(-2, -1)) for a, b in zip(As, Bs))


def _shift(Ws, Vs, h):
    return tuple(W + h * V for W, V in zip(Ws, Vs))


def _unit(Vs, xp):
    """Scale each net's direction to unit Frobenius norm."""
    n = xp.sqrt(sum(xp.sum(V * V, axis=(-2, -1)) for V in Vs))
    return tuple(V / n[..., None, None] for V in Vs)


def _fd_loss(loss, Ws, Vs, h, residual=False):
    up = _np(ln.loss(loss, _shift(Ws, Vs, h), residual=residual))
    dn = _np(ln.loss(loss, _shift(Ws, Vs, -h), residual=residual))
    return (up - dn) / (2 * h)


def _fd_grad(loss, Ws, Vs, h, residual=False):
    up = ln.grad(loss, _shift(Ws, Vs, h), residual=residual)
    dn = ln.grad(loss, _shift(Ws, Vs, -h), residual=residual)
    return tuple((_np(a) - _np(b)) / (2 * h) for a, b in zip(up, dn))


def _maxabs(As):
    return max(float(np.max(np.abs(_np(a)))) for a in As)


def _layers(Ws):
    return (int(Ws[0].shape[-1]),) + tuple(int(W.shape[-2]) for W in Ws)


@st.composite
def _problem(draw, xp, dtype, *, residual=None, min_depth=1, max_depth=4, max_width=4, scale=None):
    """A net (possibly residual, then square) with a squared loss of matching shape and a unit direction."""
    residual = draw(st.booleans()) if residual is None else residual
    if residual:
        d = draw(st.integers(1, max_width))
        widths = (d,) * (draw(st.integers(min_depth, max_depth)) + 1)
    else:
        widths = draw(lst.widths(min_depth, max_depth, 1, max_width))
    Ws = draw(lst.weights(widths, (0.3 if residual else 0.7) if scale is None else scale, xp=xp, dtype=dtype))
    loss = draw(lst.squared_losses(widths[0], widths[-1], xp=xp, dtype=dtype))
    Vs = _unit(draw(lst.directions(Ws)), xp)
    return residual, Ws, loss, Vs


# ---- gradients, HVPs, Hessians against finite differences and the §1 formulas ---------------------------------


@FIXTURES_OK
@given(data=st.data())
def test_grad_matches_central_differences(xp, dtype_name, data):
    """<grad L, D> equals the central difference of L along D (THEOREMS.md §1)."""
    residual, Ws, loss, D = data.draw(_problem(xp, dtype_name))
    L, g = ln.value_and_grad(loss, Ws, residual=residual)
    fd = _fd_loss(loss, Ws, D, fd_step(dtype_name), residual)
    scale = max(1.0, abs(float(_np(L))), abs(float(fd)))
    assert abs(fd - _inner(g, D)) <= fd_tol(dtype_name) * scale


@FIXTURES_OK
@given(data=st.data())
def test_hvp_matches_differences_of_the_gradient(xp, dtype_name, data):
    """The exact HVP equals the central difference of the gradient along V (THEOREMS.md §1)."""
    residual, Ws, loss, V = data.draw(_problem(xp, dtype_name))
    HV = ln.hvp(loss, Ws, V, residual=residual)
    fd = _fd_grad(loss, Ws, V, fd_step(dtype_name), residual)
    scale = max(1.0, _maxabs(HV), _maxabs(ln.grad(loss, Ws, residual=residual)))
    err = max(float(np.max(np.abs(a - _np(b)))) for a, b in zip(fd, HV))
    assert err <= fd_tol(dtype_name) * scale
    assert all(h.dtype == Ws[0].dtype and h.shape == W.shape for h, W in zip(HV, Ws))


@FIXTURES_OK
@given(data=st.data())
def test_hvp_is_symmetric(xp, dtype_name, data):
    """<U, H V> = <V, H U> (THEOREMS.md §1 symmetry check, 1e-10 in float64 scaled by eps)."""
    residual, Ws, loss, V = data.draw(_problem(xp, dtype_name))
    U = _unit(data.draw(lst.directions(Ws)), xp)
    HV, HU = ln.hvp(loss, Ws, V, residual=residual), ln.hvp(loss, Ws, U, residual=residual)
    scale = max(1.0, math.sqrt(float(_inner(HV, HV))) + math.sqrt(float(_inner(HU, HU))))
    tol = 1e-10 * _eps(dtype_name) / _eps("float64")
    assert abs(float(_inner(U, HV) - _inner(V, HU))) <= tol * scale


def _quadratic_form_reference(Ws, loss, D, residual):
    """THEOREMS.md §1: H[D, D] = tr(dW Lxx dW^T) + 2 <grad l, sum_{j<j'} W_{j'+1:N} D_j' W_{j+1:j'-1} D_j W_{1:j-1}>.

    Written out in NumPy with O(N^2) explicit products, independent of linnet.product.
    """
    Fs = [_np(W) + (np.eye(W.shape[-1]) if residual else 0) for W in Ws]
    Ds = [_np(d) for d in D]
    N = len(Fs)

    def prod(a, b):  # W_{a:b} = F_b ... F_a (1-based), identity if a > b
        out = np.eye(Fs[a - 1].shape[-1]) if a <= b else np.eye(Fs[b - 1].shape[-2] if b >= 1 else Fs[0].shape[-1])
        for k in range(a, b + 1):
            out = Fs[k - 1] @ out
        return out

    def eye_out(j):
        return np.eye(Fs[j - 1].shape[-2])

    We = prod(1, N)
    Sxx = np.eye(We.shape[-1]) if loss.Sxx is None else _np(loss.Sxx)
    G = We @ Sxx - _np(loss.Syx)
    dW = sum((prod(j + 1, N) if j < N else eye_out(N)) @ Ds[j - 1] @ prod(1, j - 1) for j in range(1, N + 1))
    gn = np.trace(dW @ Sxx @ dW.T)
    second = np.zeros_like(We)
    for j in range(1, N + 1):
        for jp in range(j + 1, N + 1):
            left = prod(jp + 1, N) if jp < N else eye_out(N)
            mid = prod(j + 1, jp - 1) if j + 1 <= jp - 1 else eye_out(j)
            second += left @ Ds[jp - 1] @ mid @ Ds[j - 1] @ prod(1, j - 1)
    return gn + 2 * np.sum(G * second)


@FIXTURES_OK
@given(data=st.data())
def test_hvp_matches_theorem_quadratic_form(xp, data):
    """<D, H D> equals the §1 quadratic form (Gauss–Newton term plus the cross terms with grad l), float64."""
    residual, Ws, loss, D = data.draw(_problem(xp, "float64"))
    got = float(_inner(D, ln.hvp(loss, Ws, D, residual=residual)))
    want = float(_quadratic_form_reference(Ws, loss, D, residual))
    # 1e-10: the reference sums O(N^2) explicit products in float64 (THEOREMS.md §1 symmetry-check tolerance)
    assert abs(got - want) <= 1e-10 * max(1.0, abs(want), _maxabs(ln.grad(loss, Ws, residual=residual)))


def _unit_direction(widths, k, xp, dtype):
    """The k-th unit vector in parameter order (layers 1..N, row-major), built without linnet.unflatten."""
    out, start = [], 0
    for j in range(1, len(widths)):
        n = widths[j] * widths[j - 1]
        a = np.zeros(n)
        if start <= k < start + n:
            a[k - start] = 1.0
        out.append(from_host(a.reshape(widths[j], widths[j - 1]), xp, dtype))
        start += n
    return tuple(out)


@FIXTURES_OK
@given(data=st.data())
def test_dense_hessian_equals_stacked_hvps(xp, dtype_name, data):
    """Column k of the dense Hessian is the HVP with the k-th unit vector (layers 1..N, row-major); H = H^T."""
    residual, Ws, loss, _ = data.draw(_problem(xp, dtype_name, max_depth=3, max_width=3))
    widths = _layers(Ws)
    H = ln.hessian(loss, Ws, residual=residual)
    P = ln.num_params(Ws)
    assert H.shape == (P, P) and H.dtype == Ws[0].dtype
    Hn = _np(H)
    np.testing.assert_array_equal(Hn, Hn.T)
    scale = max(1.0, float(np.max(np.abs(Hn))))
    rtol, _ = tolerances(Ws[0].dtype)
    for k in range(P):
        col = ln.hvp(loss, Ws, _unit_direction(widths, k, xp, Ws[0].dtype), residual=residual)
        col = np.concatenate([_np(c).reshape(-1) for c in col])
        assert np.max(np.abs(Hn[:, k] - col)) <= rtol * scale


def test_hessian_entry_order_is_layers_then_row_major():
    """H[k, l] is the second difference of L in parameters k and l of the documented order (fixed case)."""
    widths = (2, 3, 2)
    Ws = ln.init.gaussian(widths, 0.7, seed=3)
    loss = ln.SquaredLoss.from_data(*(np.random.default_rng(4).standard_normal((d, 5)) for d in (2, 2)))
    H = _np(ln.hessian(loss, Ws))
    h = 1e-4
    # parameter 7 = layer 2, entry (0, 1) [layer 1 has 6 entries]; parameter 2 = layer 1, entry (1, 0)
    for k, l in [(7, 2), (2, 7), (10, 10), (0, 11)]:
        ek = [np.zeros(W.shape) for W in Ws]
        el = [np.zeros(W.shape) for W in Ws]
        for e, idx in ((ek, k), (el, l)):
            j = 0 if idx < 6 else 1
            e[j].reshape(-1)[idx - 6 * j] = 1.0

        def f(a, b, ek=ek, el=el):
            return float(ln.loss(loss, tuple(W + a * x + b * y for W, x, y in zip(Ws, ek, el))))

        fd = (f(h, h) - f(h, -h) - f(-h, h) + f(-h, -h)) / (4 * h * h)
        assert abs(fd - H[k, l]) <= 1e-6 * max(1.0, abs(H[k, l]))


# ---- negative controls (THEOREMS.md §1 (a) and (b)) --------------------------------------------------------------


def _square_case(seed, d=3, N=3, m=10):
    rng = np.random.default_rng(seed)
    Ws = ln.init.gaussian((d,) * (N + 1), 0.7, seed=seed)
    X, Y = rng.standard_normal((d, m)), rng.standard_normal((d, m))
    return Ws, X, Y


def _manual_grads(Ws, X, Y, *, transpose_prefix=True, divide_by_m=True):
    """S_j^T grad_l P_{j-1}^T written out in NumPy; the flags switch on the deliberate mistakes of §1 control (a)."""
    N, m = len(Ws), X.shape[1]
    We = Ws[0]
    for W in Ws[1:]:
        We = W @ We
    G = (We @ X - Y) @ X.T / (m if divide_by_m else 1)
    out = []
    for j in range(1, N + 1):
        S = np.eye(Ws[-1].shape[0])
        for W in Ws[j:]:
            S = W @ S
        P = np.eye(Ws[0].shape[1])
        for W in Ws[: j - 1]:
            P = W @ P
        out.append(S.T @ G @ (P.T if transpose_prefix else P))
    return tuple(out)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("mistake", ["prefix_not_transposed", "missing_1_over_m"])
def test_wrong_gradient_fails_the_fd_check(seed, mistake):
    """Control (a): a deliberately wrong gradient on square layers misses the FD check by orders of magnitude."""
    Ws, X, Y = _square_case(seed)
    loss = ln.SquaredLoss.from_data(X, Y)
    D = _unit(ln.init.gaussian(_layers(Ws), 1.0, seed=100 + seed), get_namespace("numpy"))
    h, tol = fd_step("float64"), fd_tol("float64")
    fd = float(_fd_loss(loss, Ws, D, h))
    scale = max(1.0, abs(fd), float(ln.loss(loss, Ws)))
    right = _manual_grads(Ws, X, Y)
    wrong = _manual_grads(
        Ws, X, Y, transpose_prefix=mistake != "prefix_not_transposed", divide_by_m=mistake != "missing_1_over_m"
    )
    assert abs(fd - float(_inner(right, D))) <= tol * scale  # the check itself accepts the right formula
    assert abs(fd - float(_inner(wrong, D))) > CONTROL_FACTOR * tol * scale


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gauss_newton_hvp_fails_away_from_critical_points(seed):
    """Control (b): away from a critical point the Gauss–Newton part alone misses the FD of the gradient."""
    Ws, X, Y = _square_case(seed)
    loss = ln.SquaredLoss.from_data(X, Y)
    V = _unit(ln.init.gaussian(_layers(Ws), 1.0, seed=200 + seed), get_namespace("numpy"))
    fd = _fd_grad(loss, Ws, V, fd_step("float64"))
    scale = max(1.0, _maxabs(ln.hvp(loss, Ws, V)), _maxabs(ln.grad(loss, Ws)))
    err_gn = max(float(np.max(np.abs(a - _np(b)))) for a, b in zip(fd, ln.gauss_newton_hvp(loss, Ws, V)))
    err_full = max(float(np.max(np.abs(a - _np(b)))) for a, b in zip(fd, ln.hvp(loss, Ws, V)))
    assert err_full <= fd_tol("float64") * scale
    assert err_gn > CONTROL_FACTOR * fd_tol("float64") * scale


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gauss_newton_hvp_passes_at_an_interpolating_minimum(seed):
    """Control (b): where grad l = 0 (Y = W_e X exactly) the Gauss–Newton HVP passes the FD check and equals the HVP."""
    Ws, X, _ = _square_case(seed)
    loss = ln.SquaredLoss.from_data(X, ln.end_to_end(Ws) @ X)
    V = _unit(ln.init.gaussian(_layers(Ws), 1.0, seed=300 + seed), get_namespace("numpy"))
    fd = _fd_grad(loss, Ws, V, fd_step("float64"))
    gn = ln.gauss_newton_hvp(loss, Ws, V)
    scale = max(1.0, _maxabs(gn))
    assert max(float(np.max(np.abs(a - _np(b)))) for a, b in zip(fd, gn)) <= fd_tol("float64") * scale
    for a, b in zip(gn, ln.hvp(loss, Ws, V)):
        assert_close(a, b, atol=1e3 * _eps("float64") * scale)


# ---- batching, backends, residual nets ---------------------------------------------------------------------


def _member(arrs, k):
    return tuple(a[k, ...] for a in arrs)


@FIXTURES_OK
@given(widths=lst.widths(2, 3, 1, 3), seed=lst.seeds())
def test_batched_nets_equal_member_by_member(xp, dtype_name, widths, seed):
    """Every function on a batch of nets (shared problem) equals the same function on each member."""
    B = 3
    Ws = ln.init.gaussian(widths, 0.7, batch=(B,), seed=seed, xp=xp, dtype=dtype_name)
    Vs = ln.init.gaussian(widths, 1.0, batch=(B,), seed=seed + 1, xp=xp, dtype=dtype_name)
    rng = np.random.default_rng(seed)
    X = lst.well_conditioned(rng, widths[0], 6) * math.sqrt(6)
    loss = ln.SquaredLoss.from_data(
        from_host(X, xp, dtype_name), from_host(rng.standard_normal((widths[-1], 6)), xp, dtype_name)
    )
    L, G, HV, H = ln.loss(loss, Ws), ln.grad(loss, Ws), ln.hvp(loss, Ws, Vs), ln.hessian(loss, Ws)
    assert L.shape == (B,) and H.shape == (B, ln.num_params(Ws), ln.num_params(Ws))
    for k in range(B):
        Wk, Vk = _member(Ws, k), _member(Vs, k)
        assert_close(L[k], ln.loss(loss, Wk))
        for a, b in zip(_member(G, k), ln.grad(loss, Wk)):
            assert_close(a, b)
        for a, b in zip(_member(HV, k), ln.hvp(loss, Wk, Vk)):
            assert_close(a, b)
        assert_close(H[k, ...], ln.hessian(loss, Wk))


def test_batched_depth_one_hessian(xp):
    """A batch of depth-1 nets gets one Hessian per net, equal to the unbatched one (a former engine bug)."""
    Ws = ln.init.gaussian((2, 2), 0.7, batch=(3,), seed=0, xp=xp)
    loss = ln.SquaredLoss.whitened(from_host(np.ones((2, 2)), xp))
    H = ln.hessian(loss, Ws)
    assert H.shape == (3, 4, 4)
    assert_close(H[1, ...], ln.hessian(loss, _member(Ws, 1)))


def _batched_data(rng, B, d0, dN, m):
    X = np.stack([lst.well_conditioned(rng, d0, m) * math.sqrt(m) for _ in range(B)])
    return X, rng.standard_normal((B, dN, m))


@pytest.mark.parametrize("net_batch", [(), (3,), (2, 1)])
def test_batched_problem_equals_member_by_member(xp, net_batch):
    """A batched problem (3 data sets) against nets of batch shape (), (3,) or (2, 1) broadcasts like matmul."""
    widths = (2, 3, 2)
    rng = np.random.default_rng(7)
    X, Y = _batched_data(rng, 3, 2, 2, 5)
    loss = ln.SquaredLoss.from_data(from_host(X, xp), from_host(Y, xp))
    Ws = ln.init.gaussian(widths, 0.7, batch=net_batch, seed=1, xp=xp)
    Vs = ln.init.gaussian(widths, 1.0, batch=net_batch, seed=2, xp=xp)
    out_batch = {(): (3,), (3,): (3,), (2, 1): (2, 3)}[net_batch]
    L, G, HV, H = ln.loss(loss, Ws), ln.grad(loss, Ws), ln.hvp(loss, Ws, Vs), ln.hessian(loss, Ws)
    assert L.shape == out_batch and H.shape == out_batch + (12, 12)
    for idx in np.ndindex(*out_batch):
        k = idx[-1]
        lk = ln.SquaredLoss.from_data(from_host(X[k], xp), from_host(Y[k], xp))
        net_idx = {(): (), (3,): (k,), (2, 1): (idx[0], 0)}[net_batch]
        Wk = tuple(W[net_idx + (...,)] for W in Ws)
        Vk = tuple(V[net_idx + (...,)] for V in Vs)
        assert_close(L[idx], ln.loss(lk, Wk))
        for a, b in zip(G, ln.grad(lk, Wk)):
            assert_close(a[idx + (...,)], b)
        for a, b in zip(HV, ln.hvp(lk, Wk, Vk)):
            assert_close(a[idx + (...,)], b)
        assert_close(H[idx + (...,)], ln.hessian(lk, Wk))


# Same host inputs, same operations: the two CPU backends agree to a few ulps (array_api_strict wraps NumPy).
BACKEND_RTOL = 1e2


@given(residual=st.booleans(), seed=lst.seeds(), widths=lst.widths(1, 3, 2, 3))
def test_numpy_equals_array_api_strict(residual, seed, widths):
    """With the same seed, numpy and array_api_strict give the same loss, grad, HVP and Hessian."""
    if residual:
        widths = (widths[0],) * len(widths)
    rng = np.random.default_rng(seed)
    X = lst.well_conditioned(rng, widths[0], 5) * math.sqrt(5)
    Y = rng.standard_normal((widths[-1], 5))
    outs = []
    for name in ("numpy", "array_api_strict"):
        xp = get_namespace(name)
        Ws = ln.init.gaussian(widths, 0.4, seed=seed, xp=xp)
        Vs = ln.init.gaussian(widths, 1.0, seed=seed + 1, xp=xp)
        loss = ln.SquaredLoss.from_data(from_host(X, xp), from_host(Y, xp))
        r = residual
        outs.append(
            [ln.loss(loss, Ws, residual=r), ln.end_to_end(Ws, residual=r), ln.hessian(loss, Ws, residual=r)]
            + list(ln.grad(loss, Ws, residual=r))
            + list(ln.hvp(loss, Ws, Vs, residual=r))
        )
    for a, b in zip(*outs):
        np.testing.assert_allclose(
            _np(a), _np(b), rtol=BACKEND_RTOL * _eps("float64"), atol=BACKEND_RTOL * _eps("float64")
        )


@FIXTURES_OK
@given(data=st.data())
def test_residual_net_equals_plain_net_on_shifted_factors(xp, dtype_name, data):
    """residual=True at W gives the loss, grad, HVP and Hessian of the plain net at I + W (dF = dW)."""
    _, Ws, loss, Vs = data.draw(_problem(xp, dtype_name, residual=True, max_depth=3, max_width=3))
    Fs = tuple(W + xp.eye(W.shape[-1], dtype=W.dtype) for W in Ws)
    assert_close(ln.end_to_end(Ws, residual=True), ln.end_to_end(Fs))
    assert_close(ln.loss(loss, Ws, residual=True), ln.loss(loss, Fs))
    for a, b in zip(ln.grad(loss, Ws, residual=True), ln.grad(loss, Fs)):
        assert_close(a, b)
    for a, b in zip(ln.hvp(loss, Ws, Vs, residual=True), ln.hvp(loss, Fs, Vs)):
        assert_close(a, b)
    assert_close(ln.hessian(loss, Ws, residual=True), ln.hessian(loss, Fs))


# ---- symmetries (THEOREMS.md §12) -------------------------------------------------------------------------------

# Transforming by G with condition number <= 10 and comparing costs ~cond * eps per product; 1e3 eps covers it.
GAUGE_RTOL_FACTOR = 1e3


@FIXTURES_OK
@given(data=st.data())
def test_loss_invariant_and_grads_equivariant_under_gauge(xp, dtype_name, data):
    """W_j -> G W_j, W_{j+1} -> W_{j+1} G^-1 keeps L and maps grads to G^-T g_j and g_{j+1} G^T."""
    _, Ws, loss, _ = data.draw(_problem(xp, dtype_name, residual=False, min_depth=2))
    j = data.draw(st.integers(0, len(Ws) - 2))  # 0-based: layers j and j+1
    d = int(Ws[j].shape[-2])
    G = _np(data.draw(lst.invertible_matrices(d, 10.0)))
    Gi = np.linalg.inv(G)
    dt = Ws[0].dtype
    T = list(Ws)
    T[j] = from_host(G @ _np(Ws[j]), xp, dt)
    T[j + 1] = from_host(_np(Ws[j + 1]) @ Gi, xp, dt)
    rtol = GAUGE_RTOL_FACTOR * _eps(dtype_name)
    L0, g0 = ln.value_and_grad(loss, Ws)
    L1, g1 = ln.value_and_grad(loss, tuple(T))
    assert abs(float(_np(L1)) - float(_np(L0))) <= rtol * max(1.0, abs(float(_np(L0))))
    want = [_np(g) for g in g0]
    want[j] = Gi.T @ want[j]
    want[j + 1] = want[j + 1] @ G.T
    scale = max(1.0, max(float(np.max(np.abs(w))) for w in want))
    for a, b in zip(g1, want):
        assert a.dtype == dt
        assert np.max(np.abs(_np(a) - b)) <= rtol * scale


@FIXTURES_OK
@given(data=st.data())
def test_symmetry_generator_is_orthogonal_to_grad_and_hessian_identity(xp, data):
    """<grad L, V_A> = 0 and H V_A = -M_A^T grad L for the generator V_A = (.., A W_j, -W_{j+1} A, ..) (§12)."""
    _, Ws, loss, _ = data.draw(_problem(xp, "float64", residual=False, min_depth=2))
    j = data.draw(st.integers(0, len(Ws) - 2))
    d = int(Ws[j].shape[-2])
    A = data.draw(lst.weights((d, d), 1.0, xp=xp))[0]
    zero = [W * 0.0 for W in Ws]
    VA = list(zero)
    VA[j] = A @ Ws[j]
    VA[j + 1] = -(Ws[j + 1] @ A)
    g = ln.grad(loss, Ws)
    norm = lambda Vs: math.sqrt(float(_inner(Vs, Vs)))  # noqa: E731
    assert abs(float(_inner(g, VA))) <= 1e-12 * max(norm(g) * norm(VA), _eps("float64"))
    MtG = list(zero)
    MtG[j] = A.mT @ g[j]
    MtG[j + 1] = -(g[j + 1] @ A.mT)
    HV = ln.hvp(loss, Ws, tuple(VA))
    resid = [_np(h) + _np(m) for h, m in zip(HV, MtG)]
    assert norm(resid) <= 1e-8 * max(1.0, norm(HV), norm(MtG))


# ---- flatten / unflatten, depth 1, dtypes --------------------------------------------------------------------


@given(widths=lst.widths(1, 4, 1, 4), batch=st.sampled_from([(), (2,), (2, 3)]), seed=lst.seeds())
def test_flatten_order_and_round_trip(widths, batch, seed):
    """flatten concatenates layers 1..N row-major; unflatten inverts it; num_params counts sum d_j d_{j-1}."""
    Ws = ln.init.gaussian(widths, 1.0, batch=batch, seed=seed)
    theta = ln.flatten(Ws)
    want = np.concatenate([W.reshape(batch + (-1,)) for W in Ws], axis=-1)
    np.testing.assert_array_equal(_np(theta), want)
    assert ln.num_params(Ws) == sum(widths[k] * widths[k + 1] for k in range(len(widths) - 1))
    for a, b in zip(ln.unflatten(theta, widths), Ws):
        np.testing.assert_array_equal(a, b)


def test_flatten_broadcasts_batches_and_keeps_namespace(xp):
    """Layers with broadcastable batch shapes flatten to the broadcast batch; the namespace is kept."""
    W1 = ln.init.gaussian((2, 3), batch=(4, 1), seed=0, xp=xp)[0]
    W2 = ln.init.gaussian((3, 1), batch=(5,), seed=1, xp=xp)[0]
    theta = ln.flatten((W1, W2))
    assert theta.shape == (4, 5, 9)
    assert type(theta) is type(W1)
    back = ln.unflatten(theta, (2, 3, 1))
    assert_close(back[0][:, 2, ...], W1[:, 0, ...])
    assert_close(back[1][3, ...], W2)


def test_depth_one_is_the_end_to_end_loss(xp):
    """For N = 1 the grad and HVP are those of l itself (no second-order product term)."""
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((3, 7)), rng.standard_normal((2, 7))
    loss = ln.SquaredLoss.from_data(from_host(X, xp), from_host(Y, xp))
    (W,) = Ws = ln.init.gaussian((3, 2), 1.0, seed=1, xp=xp)
    (V,) = ln.init.gaussian((3, 2), 1.0, seed=2, xp=xp)
    assert_close(ln.grad(loss, Ws)[0], from_host((_np(W) @ X - Y) @ X.T / 7, xp))
    assert_close(ln.hvp(loss, Ws, (V,))[0], from_host(_np(V) @ X @ X.T / 7, xp))
    assert_close(ln.hessian(loss, Ws), from_host(np.kron(np.eye(2), X @ X.T / 7), xp))


@pytest.mark.parametrize("problem_dtype", ["float64", "float32"])
def test_float32_in_float32_out(xp, problem_dtype):
    """float32 weights give float32 results from every calculus function, whatever the problem's dtype."""
    widths = (2, 2, 2)  # square, so the residual form runs too
    Ws = ln.init.gaussian(widths, 0.7, batch=(2,), seed=0, xp=xp, dtype="float32")
    Vs = ln.init.gaussian(widths, 1.0, batch=(2,), seed=1, xp=xp, dtype="float32")
    rng = np.random.default_rng(0)
    losses = [
        ln.SquaredLoss.from_data(
            from_host(rng.standard_normal((2, 5)), xp, problem_dtype),
            from_host(rng.standard_normal((2, 5)), xp, problem_dtype),
        ),
        ln.SquaredLoss.whitened(from_host(rng.standard_normal((2, 2)), xp, problem_dtype)),
        ln.LpLoss(
            from_host(rng.standard_normal((2, 5)), xp, problem_dtype),
            from_host(rng.standard_normal((2, 5)), xp, problem_dtype),
            p=4,
        ),
        ln.HuberLoss(
            from_host(rng.standard_normal((2, 5)), xp, problem_dtype),
            from_host(rng.standard_normal((2, 5)), xp, problem_dtype),
        ),
    ]
    for loss in losses:
        for r in (False, True):
            outs = [
                ln.loss(loss, Ws, residual=r),
                ln.end_to_end(Ws, residual=r),
                ln.hessian(loss, Ws, residual=r),
                ln.flatten(Ws),
            ]
            outs += list(ln.grad(loss, Ws, residual=r)) + list(ln.value_and_grad(loss, Ws, residual=r)[1])
            outs += list(ln.hvp(loss, Ws, Vs, residual=r)) + list(ln.gauss_newton_hvp(loss, Ws, Vs, residual=r))
            for o in outs:
                assert o.dtype == xp.float32, (type(loss).__name__, r, o.dtype)


def test_float32_results_match_float64_reference(xp):
    """float32 grad and HVP agree with the float64 computation to float32 tolerances (scaled by the result size)."""
    widths = (3, 4, 2)
    rng = np.random.default_rng(5)
    X = lst.well_conditioned(rng, 3, 8) * math.sqrt(8)
    Y = rng.standard_normal((2, 8))
    res = {}
    for dt in ("float32", "float64"):
        loss = ln.SquaredLoss.from_data(from_host(X, xp, dt), from_host(Y, xp, dt))
        Ws = ln.init.gaussian(widths, 0.7, seed=0, xp=xp, dtype=dt)
        Vs = ln.init.gaussian(widths, 1.0, seed=1, xp=xp, dtype=dt)
        res[dt] = list(ln.grad(loss, Ws)) + list(ln.hvp(loss, Ws, Vs))
    rtol, _ = tolerances(np.float32)
    for a, b in zip(res["float32"], res["float64"]):
        assert rel_error(a, b) <= rtol


def test_value_and_grad_equals_loss_and_grad(xp):
    """value_and_grad returns exactly what loss and grad return separately."""
    Ws = ln.init.gaussian((2, 3, 3, 1), 0.7, batch=(2,), seed=0, xp=xp)
    loss = ln.SquaredLoss.whitened(from_host(np.array([[1.0, -2.0]]), xp))
    L, g = ln.value_and_grad(loss, Ws)
    assert_close(L, ln.loss(loss, Ws))
    for a, b in zip(g, ln.grad(loss, Ws)):
        assert_close(a, b)


def test_scalar_grad_by_hand():
    """For 1x1 layers the gradient is the product of the other factors times l'(prod) (fixed numbers)."""
    Ws = (np.array([[2.0]]), np.array([[3.0]]), np.array([[-0.5]]))
    loss = ln.SquaredLoss.whitened(np.array([[1.0]]))
    # prod = -3, l' = prod - 1 = -4
    got = [float(g[0, 0]) for g in ln.grad(loss, Ws)]
    assert got == [-4.0 * 3.0 * -0.5, -4.0 * 2.0 * -0.5, -4.0 * 2.0 * 3.0]


# ---- the ACH preconditioner (linnet.linalg, THEOREMS.md §4) --------------------------------------------------


@given(shape=st.tuples(st.integers(1, 4), st.integers(1, 4)), depth=st.integers(1, 5), seed=lst.seeds())
def test_preconditioner_spectrum_matches_formula(shape, depth, seed):
    """Dense P_W has eigenvalues sum_j s_r^(2(N-j)/N) s_r'^(2(j-1)/N) and eigenvector vec(u_1 v_1^T) (§4)."""
    dN, d0 = shape
    rng = np.random.default_rng(seed)
    W = lst.well_conditioned(rng, dN, d0, 4.0)
    P = _np(preconditioner(W, depth))
    assert P.shape == (dN * d0, dN * d0)
    np.testing.assert_allclose(P, P.T, atol=1e-12 * np.max(np.abs(P)))
    U, s, Vt = np.linalg.svd(W)
    sr = np.concatenate([s, np.zeros(dN - s.size)])
    sc = np.concatenate([s, np.zeros(d0 - s.size)])

    def pw(x, e):
        return np.ones_like(x) if e == 0 else x**e

    formula = sum(
        pw(sr[:, None], 2 * (depth - j) / depth) * pw(sc[None, :], 2 * (j - 1) / depth) for j in range(1, depth + 1)
    )
    ev_formula = np.sort(formula.reshape(-1))
    np.testing.assert_allclose(np.linalg.eigvalsh(P), ev_formula, rtol=1e-10, atol=1e-10 * ev_formula.max())
    np.testing.assert_allclose(_np(preconditioner_eigenvalues(W, depth)), ev_formula, rtol=1e-10, atol=1e-12)
    v = np.outer(U[:, 0], Vt[0]).T.reshape(-1)  # column-major vec(u_1 v_1^T)
    np.testing.assert_allclose(P @ v, formula[0, 0] * v, atol=1e-10 * formula.max())
    if depth > 1:  # lambda_min = N s_min^(2(N-1)/N) if d0 = dN, else s_min^(2(N-1)/N) (a zero pairs with s_min)
        factor = depth if dN == d0 else 1
        np.testing.assert_allclose(ev_formula[0], factor * s.min() ** (2 * (depth - 1) / depth), rtol=1e-10)
    G = rng.standard_normal((dN, d0))
    np.testing.assert_allclose(
        P @ G.T.reshape(-1),
        _np(e2e_velocity(W, G, depth)).T.reshape(-1),
        atol=1e-10 * max(1.0, np.max(np.abs(P))) * np.max(np.abs(G)),
    )
