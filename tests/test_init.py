"""Initializations (linnet.init): seeds across backends and batch sizes, dtypes, and the exact structure of the
orthogonal, balanced (ACGH, THEOREMS.md §3) and Saxe decoupled constructions."""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import linnet as ln
from linnet import strategies as lst
from linnet._backend import from_host, to_numpy
from linnet.testing import assert_close

FIXTURES_OK = settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large]
)
# Balancedness and product errors of the ACGH construction are a few ulps of ||A||^(2/N) (THEOREMS.md §3 observed
# 4e-16 and 2.5e-16); an SVD plus N products costs up to ~100 eps relative.
STRUCTURE_ULPS = 100


def _np(a):
    return np.asarray(to_numpy(a), dtype=np.float64)


def _eps(dtype):
    return float(np.finfo(str(dtype).split(".")[-1]).eps)


def _gaps(Ws):
    """D_j = W_{j+1}^T W_{j+1} - W_j W_j^T for j = 1..N-1, on the host (independent of linnet.theory)."""
    W = [_np(w) for w in Ws]
    return [np.swapaxes(W[j + 1], -1, -2) @ W[j + 1] - W[j] @ np.swapaxes(W[j], -1, -2) for j in range(len(W) - 1)]


INITS = {
    "gaussian": lambda w, **kw: ln.init.gaussian(w, 0.5, **kw),
    "orthogonal": lambda w, **kw: ln.init.orthogonal(w, 0.5, **kw),
}


@pytest.mark.parametrize("name", sorted(INITS))
@given(widths=lst.widths(1, 4, 1, 4), seed=st.integers(0, 2**16))
def test_same_seed_same_nets_on_every_backend(name, widths, seed):
    """A seed gives bit-identical nets on numpy and array_api_strict."""
    a = INITS[name](widths, batch=(2,), seed=seed, xp="numpy")
    b = INITS[name](widths, batch=(2,), seed=seed, xp="array_api_strict")
    assert type(b[0]).__module__.startswith("array_api_strict")
    for x, y in zip(a, b):
        np.testing.assert_array_equal(_np(x), _np(y))


@pytest.mark.parametrize("name", sorted(INITS))
@given(widths=lst.widths(1, 3, 1, 4), seed=st.integers(0, 2**16))
def test_member_k_does_not_depend_on_batch_size(name, widths, seed):
    """Members of a batch of 5 equal those of a batch of 3 (first three) and of a (5, 1) or () batch."""
    five = INITS[name](widths, batch=(5,), seed=seed)
    three = INITS[name](widths, batch=(3,), seed=seed)
    grid = INITS[name](widths, batch=(5, 1), seed=seed)
    one = INITS[name](widths, batch=(), seed=seed)
    for a, b, c, d in zip(five, three, grid, one):
        np.testing.assert_array_equal(a[:3], b)
        np.testing.assert_array_equal(a, c[:, 0])
        np.testing.assert_array_equal(a[0], d)


def test_seed_generator_and_int_agree():
    """A numpy Generator seeded with s gives the same nets as the int seed s."""
    a = ln.init.gaussian((3, 2), seed=7)
    b = ln.init.gaussian((3, 2), seed=np.random.default_rng(7))
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], ln.init.gaussian((3, 2), seed=8)[0])


@pytest.mark.parametrize("name", sorted(INITS))
def test_dtype_is_honoured(xp, dtype_name, name):
    """dtype='float32' gives float32 layers equal to the float64 draw rounded once."""
    w = (3, 4, 2)
    a = INITS[name](w, batch=(2,), seed=1, xp=xp, dtype=dtype_name)
    ref = INITS[name](w, batch=(2,), seed=1)
    for x, r in zip(a, ref):
        assert x.dtype == getattr(xp, dtype_name)
        np.testing.assert_array_equal(_np(x), r.astype(dtype_name).astype(np.float64))
    for fn in (ln.init.zeros, ln.init.identity):
        assert all(W.dtype == getattr(xp, dtype_name) for W in fn(w, batch=(2,), xp=xp, dtype=dtype_name))


def test_gaussian_scale_and_moments():
    """Entries are scale * N(0, 1): exact scaling in the scale, and sample moments of 20000 entries (fixed seed)."""
    a = ln.init.gaussian((100, 200), 1.0, seed=0)[0]
    b = ln.init.gaussian((100, 200), 0.25, seed=0)[0]
    np.testing.assert_array_equal(b, 0.25 * a)
    assert abs(a.mean()) < 4 / math.sqrt(a.size)  # 4 standard errors
    assert abs(a.std() - 1.0) < 4 * math.sqrt(0.5 / a.size)
    assert all(not W.any() for W in ln.init.gaussian((2, 3), 0.0, seed=0))


@given(widths=lst.widths(1, 3, 1, 5), seed=st.integers(0, 2**16), scale=st.sampled_from([1.0, 0.3]))
def test_orthogonal_layers_are_orthonormal(widths, seed, scale):
    """Each orthogonal layer has orthonormal rows (wide) or columns (tall), times the scale, in every batch member."""
    Ws = ln.init.orthogonal(widths, scale, batch=(3,), seed=seed)
    for W in Ws:
        r, c = W.shape[-2:]
        M = W @ np.swapaxes(W, -1, -2) if r <= c else np.swapaxes(W, -1, -2) @ W
        np.testing.assert_allclose(M, np.broadcast_to(scale**2 * np.eye(min(r, c)), M.shape), atol=50 * _eps("float64"))


def test_zeros_and_identity(xp):
    """zeros is the identity map of a residual net; identity gives rectangular identities (a plain identity net)."""
    Z = ln.init.zeros((3, 3, 3), batch=(2,), xp=xp)
    assert all(W.shape == (2, 3, 3) and not bool(xp.any(W != 0)) for W in Z)
    assert_close(ln.end_to_end(Z, residual=True), xp.broadcast_to(xp.eye(3, dtype=xp.float64), (2, 3, 3)))
    Id = ln.init.identity((2, 3, 2), batch=(4,), xp=xp)
    assert Id[0].shape == (4, 3, 2) and Id[1].shape == (4, 2, 3)
    assert_close(Id[0][1, ...], xp.eye(3, 2, dtype=xp.float64))
    assert_close(ln.end_to_end(Id), xp.broadcast_to(xp.eye(2, dtype=xp.float64), (4, 2, 2)))


# ---- balanced (ACGH) ------------------------------------------------------------------------------------------


@st.composite
def _balanced_case(draw):
    """(A on the host, widths) with rank(A) = r <= every hidden width, singular values in [0.5, 2]."""
    d0, dN = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    r = draw(st.integers(1, min(d0, dN)))
    N = draw(st.integers(1, 4))
    hidden = [draw(st.integers(r, 5)) for _ in range(N - 1)]
    batch = draw(st.sampled_from([(), (3,)]))
    rng = np.random.default_rng(draw(lst.seeds()))
    A = np.stack(
        [
            lst.well_conditioned(rng, dN, r, 4.0) @ lst.well_conditioned(rng, r, d0, 1.0) * 0.5
            for _ in range(max(1, math.prod(batch)))
        ]
    )
    return A.reshape(batch + (dN, d0)), (d0, *hidden, dN)


@FIXTURES_OK
@given(case=_balanced_case())
def test_balanced_init_is_exactly_balanced_with_the_requested_product(xp, dtype_name, case):
    """balanced(A, widths): W_{j+1}^T W_{j+1} = W_j W_j^T and W_N ... W_1 = A, any widths >= rank(A), batched A."""
    A, widths = case
    Ws = ln.init.balanced(from_host(A, xp, dtype_name), widths)
    N = len(widths) - 1
    assert len(Ws) == N
    for j, W in enumerate(Ws, start=1):
        assert W.shape == A.shape[:-2] + (widths[j], widths[j - 1]) and W.dtype == getattr(xp, dtype_name)
    norm = float(np.max(np.linalg.norm(A, ord=2, axis=(-2, -1))))
    tol = STRUCTURE_ULPS * _eps(dtype_name)
    for D in _gaps(Ws):
        assert np.max(np.abs(D)) <= tol * max(1.0, norm) ** (2 / N)
    assert np.max(np.abs(_np(ln.end_to_end(Ws)) - A)) <= tol * max(1.0, norm)


def test_balanced_rejects_hidden_widths_below_the_rank():
    """A hidden width below rank(A) cannot reproduce A: ValueError naming `widths`."""
    A = np.diag([3.0, 2.0, 1.0])
    with pytest.raises(ValueError, match="`widths`"):
        ln.init.balanced(A, (3, 2, 3))
    Ws = ln.init.balanced(np.diag([3.0, 2.0, 0.0]), (3, 2, 3))  # rank 2 fits through width 2
    np.testing.assert_allclose(ln.end_to_end(Ws), np.diag([3.0, 2.0, 0.0]), atol=1e-14)


def test_balanced_by_hand():
    """A = diag(8, 1) at depth 3 gives layers with singular values (2, 1) each (cube roots), product A."""
    Ws = ln.init.balanced(np.diag([8.0, 1.0]), (2, 2, 2, 2))
    for W in Ws:
        np.testing.assert_allclose(np.linalg.svd(W, compute_uv=False), [2.0, 1.0], rtol=1e-14)
    np.testing.assert_allclose(ln.end_to_end(Ws), np.diag([8.0, 1.0]), atol=1e-14)


# ---- Saxe decoupled -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [None, 0, 1])
@pytest.mark.parametrize("widths", [(3, 2, 2), (4, 3, 5, 2), (3, 4, 4, 4, 3)])
def test_decoupled_init_has_the_requested_modes_and_is_balanced(xp, seed, widths):
    """decoupled(U, V, u, widths) has W_N ... W_1 = U diag(u) V^T, is balanced, and mode a carries u_a^(1/N)."""
    d0, dN = widths[0], widths[-1]
    r = min(d0, dN, *widths[1:-1])
    rng = np.random.default_rng(5)
    U = np.linalg.qr(rng.standard_normal((dN, r)))[0]
    V = np.linalg.qr(rng.standard_normal((d0, r)))[0]
    u = np.linspace(2.0, 0.5, r)
    Ws = ln.init.decoupled(from_host(U, xp), from_host(V, xp), from_host(u, xp), widths, seed=seed)
    N = len(widths) - 1
    np.testing.assert_allclose(_np(ln.end_to_end(Ws)), (U * u) @ V.T, atol=1e-13)
    for D in _gaps(Ws):
        assert np.max(np.abs(D)) <= 1e-13
    s = np.linalg.svd(_np(Ws[0]), compute_uv=False)[:r]
    np.testing.assert_allclose(np.sort(s), np.sort(u ** (1 / N)), rtol=1e-13)
    assert ln.init.saxe is ln.init.decoupled
