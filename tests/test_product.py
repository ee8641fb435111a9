"""The product map W -> F_N ... F_1 and its low-level derivative machinery (linnet.product).

References: explicit NumPy products, the adjoint identity <D phi[V], G> = <V, D phi^* G>, and central
differences of the pullback.
"""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import linnet as ln
from linnet import product as lp
from linnet import strategies as lst
from linnet._backend import to_numpy
from linnet.testing import assert_close

#: A host NumPy float64 reference: its dtype and namespace are not those of the result on purpose.
HOST_REFERENCE = dict(check_dtype=False, check_namespace=False)

FIXTURES_OK = settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large]
)


def _np(a):
    return None if a is None else np.asarray(to_numpy(a), dtype=np.float64)


def _naive_product(Ws, residual=False):
    out = None
    for W in Ws:
        F = _np(W) + (np.eye(W.shape[-1]) if residual else 0.0)
        out = F if out is None else F @ out
    return out


@st.composite
def _net(draw, xp, dtype, residual=False, batch=()):
    if residual:
        d = draw(st.integers(1, 4))
        widths = (d,) * (draw(st.integers(1, 4)) + 1)
    else:
        widths = draw(lst.widths(1, 4, 1, 4))
    return draw(lst.weights(widths, 0.7, xp=xp, dtype=dtype, batch=batch))


@FIXTURES_OK
@given(data=st.data(), residual=st.booleans(), batch=st.sampled_from([(), (2,)]))
def test_end_to_end_equals_naive_product(xp, dtype_name, data, residual, batch):
    """end_to_end is F_N ... F_1 (F_j = W_j, or I + W_j for residual nets) in the dtype of the weights."""
    Ws = data.draw(_net(xp, dtype_name, residual, batch))
    We = ln.end_to_end(Ws, residual=residual)
    assert We.dtype == Ws[0].dtype and We.shape == batch + (Ws[-1].shape[-2], Ws[0].shape[-1])
    assert type(We) is type(Ws[0])
    assert_close(We, _naive_product(Ws, residual), **HOST_REFERENCE)


def test_end_to_end_broadcasts_batches(xp):
    """Layers with batch shapes (3, 1) and (4,) give a (3, 4) batch of products."""
    W1 = ln.init.gaussian((2, 3), batch=(3, 1), seed=0, xp=xp)[0]
    W2 = ln.init.gaussian((3, 2), batch=(4,), seed=1, xp=xp)[0]
    We = ln.end_to_end((W1, W2))
    assert We.shape == (3, 4, 2, 2)
    assert_close(We[2, 1, ...], W2[1, ...] @ W1[2, 0, ...])


@FIXTURES_OK
@given(data=st.data(), residual=st.booleans())
def test_partials_are_prefix_and_suffix_products(xp, data, residual):
    """prefix[j] = F_j...F_1, suffix[j] = F_N...F_{j+1}, and suffix[j] prefix[j] = the end-to-end matrix for all j."""
    Ws = data.draw(_net(xp, "float64", residual))
    N = len(Ws)
    p = lp.partials(lp.factors(Ws, residual, xp), xp)
    assert p.prefix[0] is None and p.suffix[N] is None
    We = _naive_product(Ws, residual)
    for j in range(1, N + 1):
        assert_close(p.prefix[j], _naive_product(Ws[:j], residual), **HOST_REFERENCE)
    for j in range(1, N):
        assert_close(p.suffix[j], _naive_product(Ws[j:], residual), **HOST_REFERENCE)
    assert_close(p.suffix[0], We, **HOST_REFERENCE)  # documented: suffix[0] is the whole product
    for j in range(1, N):
        assert_close(p.suffix[j] @ p.prefix[j], We, **HOST_REFERENCE)


@FIXTURES_OK
@given(data=st.data(), residual=st.booleans())
def test_pushforward_is_the_sum_formula_and_pullback_its_adjoint(xp, data, residual):
    """D phi[V] = sum_j S_j V_j P_{j-1}, and <D phi[V], G> = <V, D phi^* G> (the adjoint identity)."""
    Ws = data.draw(_net(xp, "float64", residual))
    Vs = data.draw(lst.directions(Ws))
    N = len(Ws)
    p = lp.partials(lp.factors(Ws, residual, xp), xp)
    dW = lp.pushforward(p, Vs, xp)
    want = 0
    for j in range(1, N + 1):
        S = _naive_product(Ws[j:], residual) if j < N else np.eye(Ws[-1].shape[-2])
        P = _naive_product(Ws[: j - 1], residual) if j > 1 else np.eye(Ws[0].shape[-1])
        want = want + S @ _np(Vs[j - 1]) @ P
    assert_close(dW, want, **HOST_REFERENCE)
    assert_close(lp.pushforward_prefixes(p, Vs, xp)[-1], dW)
    assert_close(lp.pushforward_suffixes(p, Vs, xp)[0], dW)
    G = data.draw(lst.weights((Ws[0].shape[-1], Ws[-1].shape[-2]), 1.0, xp=xp))[0]
    back = lp.pullback(p, G, xp)
    lhs = float(np.sum(_np(dW) * _np(G)))
    rhs = sum(float(np.sum(_np(a) * _np(b))) for a, b in zip(Vs, back))
    assert abs(lhs - rhs) <= 1e-12 * max(1.0, abs(lhs), float(np.max(np.abs(_np(dW)))) * float(np.max(np.abs(_np(G)))))


@FIXTURES_OK
@given(data=st.data(), residual=st.booleans())
def test_pushforward_matches_differences_of_the_product(xp, data, residual):
    """D phi[V] equals the central difference of the end-to-end matrix along V (h = eps^(1/3))."""
    Ws = data.draw(_net(xp, "float64", residual))
    Vs = data.draw(lst.directions(Ws))
    p = lp.partials(lp.factors(Ws, residual, xp), xp)
    h = float(np.finfo(np.float64).eps) ** (1 / 3)
    up = _np(ln.end_to_end(tuple(W + h * V for W, V in zip(Ws, Vs)), residual=residual))
    dn = _np(ln.end_to_end(tuple(W - h * V for W, V in zip(Ws, Vs)), residual=residual))
    fd = (up - dn) / (2 * h)
    dW = _np(lp.pushforward(p, Vs, xp))
    # central-difference error ~ eps^(2/3) times the size of the third derivative; 1e3 covers depth <= 4
    assert np.max(np.abs(fd - dW)) <= 1e3 * h * h * max(1.0, np.max(np.abs(dW)))


@FIXTURES_OK
@given(data=st.data(), residual=st.booleans())
def test_pullback_derivative_matches_differences_of_the_pullback(xp, data, residual):
    """pullback_derivative(G, V) is the derivative of W -> D phi(W)^* G along V at fixed G."""
    Ws = data.draw(_net(xp, "float64", residual))
    Vs = data.draw(lst.directions(Ws))
    G = data.draw(lst.weights((Ws[0].shape[-1], Ws[-1].shape[-2]), 1.0, xp=xp))[0]
    h = float(np.finfo(np.float64).eps) ** (1 / 3)

    def back(s):
        Ts = tuple(W + s * V for W, V in zip(Ws, Vs))
        return lp.pullback(lp.partials(lp.factors(Ts, residual, xp), xp), G, xp)

    fd = [(_np(a) - _np(b)) / (2 * h) for a, b in zip(back(h), back(-h))]
    got = lp.pullback_derivative(lp.partials(lp.factors(Ws, residual, xp), xp), G, Vs, xp)
    scale = max([1.0] + [float(np.max(np.abs(f))) for f in fd])
    for f, g in zip(fd, got):
        g = np.zeros_like(f) if g is None else _np(g)
        assert np.max(np.abs(f - g)) <= 1e3 * h * h * scale


def test_pullback_derivative_is_none_at_depth_one(xp):
    """A depth-1 product map is linear: its second-order term is absent (None), not a zero array."""
    (W,) = Ws = ln.init.gaussian((2, 3), seed=0, xp=xp)
    p = lp.partials(lp.factors(Ws, False, xp), xp)
    assert lp.pullback_derivative(p, xp.ones((3, 2), dtype=W.dtype), Ws, xp) == (None,)


def test_factors_residual_needs_square_layers(xp):
    """Residual factors I + W_j need square layers; the error names the layer and its shape."""
    Ws = ln.init.gaussian((2, 3), seed=0, xp=xp)
    with pytest.raises(ValueError, match=r"layer 1 has shape \(3, 2\)"):
        lp.factors(Ws, True, xp)
    with pytest.raises(ValueError, match="square"):
        ln.end_to_end(Ws, residual=True)


def test_end_to_end_doc_example_by_hand():
    """W_2 W_1 for constant matrices, by hand: W_1 = ones(3, 2), W_2 = 2 ones(1, 3) give [[6, 6]] (each entry 3 * 2)."""
    We = ln.end_to_end((np.full((3, 2), 1.0), np.full((1, 3), 2.0)))
    np.testing.assert_array_equal(We, np.array([[6.0, 6.0]]))
    assert math.isclose(float(ln.end_to_end((np.array([[2.0]]),), residual=True)[0, 0]), 3.0)
