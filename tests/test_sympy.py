"""Closed-form gradients and Hessians against sympy's exact symbolic derivatives on small nets.

Every entry of every layer is a symbol; the loss is built symbolically from exact rational data, differentiated
by sympy, and evaluated exactly at a rational point. linnet's float64 results must match to round-off.
"""

import numpy as np
import pytest
import sympy as sp

import linnet as ln
from linnet._backend import from_host, to_numpy

# A depth-3 Hessian entry sums O(10^2) float64 products of O(1) numbers: 64 ulps of the largest value is round-off.
ROUNDOFF_ULPS = 64


def _rationals(rng, shape, den=8):
    return sp.Matrix(*shape, [sp.Rational(int(k), den) for k in rng.integers(-den, den + 1, size=int(np.prod(shape)))])


def _symbolic(widths, residual, kind, seed, m=3):
    """(loss expression, symbols in linnet's parameter order, rational point, X, Y) for one small problem."""
    rng = np.random.default_rng(seed)
    layers, syms = [], []
    for j in range(1, len(widths)):
        M = sp.Matrix(widths[j], widths[j - 1], lambda a, b, j=j: sp.Symbol(f"w{j}_{a}{b}", real=True))
        syms += list(M)  # sympy iterates row-major: layers 1..N, each row-major, as linnet.flatten
        layers.append(M + sp.eye(widths[j]) if residual else M)
    We = layers[0]
    for F in layers[1:]:
        We = F * We
    X = _rationals(rng, (widths[0], m))
    Y = _rationals(rng, (widths[-1], m))
    point = {s: sp.Rational(int(k), 4) for s, k in zip(syms, rng.integers(-4, 5, size=len(syms)))}
    if kind == "whitened":
        R = We - Y[:, : widths[0]]  # Phi = first d_0 columns of Y (m >= d_0 here)
        expr = sum(r**2 for r in R) / 2
    else:
        R = We * X - Y
        p = {"squared": 2, "lp4": 4, "lp3": 3}[kind]
        # |r|^3 = sign(r0) r^3 near the point r0 (value, first and second derivatives; at r0 = 0 all vanish)
        sgn = [1 if r.subs(point) >= 0 else -1 for r in R]
        expr = sum((sg if p % 2 else 1) * r**p for r, sg in zip(R, sgn)) / (p * m)
    expr = sp.Poly(expr, *syms)  # a polynomial: exact differentiation and evaluation are fast
    return expr, syms, point, X, Y


def _exact_derivatives(poly, syms, point):
    """Exact value, gradient and Hessian of a sympy Poly at a rational point, as float64 arrays."""
    at = [point[s] for s in syms]
    first = [poly.diff(s) for s in syms]
    value = float(poly.eval(at) if syms else poly)
    grad = np.array([float(d.eval(at)) for d in first])
    hess = np.array([[float(d.diff(b).eval(at)) for b in syms] for d in first])
    return value, grad, hess


def _loss_of(kind, X, Y, widths):
    Xf = np.array(X.tolist(), dtype=float)
    Yf = np.array(Y.tolist(), dtype=float)
    if kind == "whitened":
        return ln.SquaredLoss.whitened(Yf[:, : widths[0]])
    if kind == "squared":
        return ln.SquaredLoss.from_data(Xf, Yf)
    return ln.LpLoss(Xf, Yf, p={"lp4": 4, "lp3": 3}[kind])


CASES = [
    ((1, 2, 1), False, "squared"),
    ((2, 1, 2), False, "squared"),
    ((2, 2, 1, 2), False, "squared"),
    ((1, 2, 2, 1), False, "whitened"),
    ((2, 2, 2), True, "squared"),
    ((1, 1, 1, 1), True, "squared"),
    ((2, 2, 1), False, "lp4"),
    ((1, 2, 1, 2), False, "lp3"),
    ((2, 2, 2), True, "lp4"),
]


@pytest.mark.parametrize(
    "widths, residual, kind", CASES, ids=[f"{w}-{'res' if r else 'plain'}-{k}" for w, r, k in CASES]
)
@pytest.mark.parametrize("seed", [0, 1])
def test_grad_and_hessian_equal_sympy(widths, residual, kind, seed):
    """linnet's loss, gradient and dense Hessian equal sympy's exact derivatives to float64 round-off."""
    expr, syms, point, X, Y = _symbolic(widths, residual, kind, seed)
    value, grad, hess = _exact_derivatives(expr, syms, point)

    theta = np.array([float(point[s]) for s in syms])
    Ws = ln.unflatten(theta, widths)
    loss = _loss_of(kind, X, Y, widths)
    L = float(ln.loss(loss, Ws, residual=residual))
    g = np.asarray(to_numpy(ln.flatten(ln.grad(loss, Ws, residual=residual))))
    H = np.asarray(to_numpy(ln.hessian(loss, Ws, residual=residual)))

    eps = np.finfo(np.float64).eps
    assert abs(L - value) <= ROUNDOFF_ULPS * eps * max(1.0, abs(value))
    np.testing.assert_allclose(g, grad, rtol=0, atol=ROUNDOFF_ULPS * eps * max(1.0, np.max(np.abs(grad))))
    np.testing.assert_allclose(H, hess, rtol=0, atol=ROUNDOFF_ULPS * eps * max(1.0, np.max(np.abs(hess))))


def test_sympy_check_detects_a_wrong_hessian():
    """Negative control: dropping the second-order (grad l) part of the Hessian fails the sympy comparison."""
    widths = (2, 2, 1, 2)
    expr, syms, point, X, Y = _symbolic(widths, False, "squared", 0)
    hess = _exact_derivatives(expr, syms, point)[2]
    Ws = ln.unflatten(np.array([float(point[s]) for s in syms]), widths)
    loss = _loss_of("squared", X, Y, widths)
    P = len(syms)
    gn = np.zeros((P, P))
    for k in range(P):
        e = np.zeros(P)
        e[k] = 1.0
        gn[:, k] = np.asarray(to_numpy(ln.flatten(ln.gauss_newton_hvp(loss, Ws, ln.unflatten(e, widths)))))
    assert np.max(np.abs(gn - hess)) > 1e6 * ROUNDOFF_ULPS * np.finfo(np.float64).eps * max(1.0, np.max(np.abs(hess)))


def test_sympy_gradient_on_the_strict_backend():
    """The float64 gradient on array_api_strict equals sympy's too (one case)."""
    widths = (2, 2, 1, 2)
    expr, syms, point, X, Y = _symbolic(widths, False, "squared", 1)
    grad = _exact_derivatives(expr, syms, point)[1]
    xp = ln._backend.get_namespace("array_api_strict")
    theta = from_host(np.array([float(point[s]) for s in syms]), xp)
    loss = ln.SquaredLoss.from_data(
        from_host(np.array(X.tolist(), dtype=float), xp), from_host(np.array(Y.tolist(), dtype=float), xp)
    )
    g = np.asarray(to_numpy(ln.flatten(ln.grad(loss, ln.unflatten(theta, widths)))))
    np.testing.assert_allclose(
        g, grad, rtol=0, atol=ROUNDOFF_ULPS * np.finfo(np.float64).eps * max(1.0, np.max(np.abs(grad)))
    )
