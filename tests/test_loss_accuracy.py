"""The squared loss is evaluated in a centred, factored form: accurate to round-off of the excess loss, never below
its minimum, also where Lambda_xx is singular (fewer samples than inputs)."""

import numpy as np

import linnet as ln
from linnet._backend import from_host, to_numpy


def _interpolating(xp):
    rng = np.random.default_rng(7)
    X, Y = rng.standard_normal((6, 3)), rng.standard_normal((2, 3))  # m = 3 < d0 = 6: Lambda_xx is singular
    null = np.linalg.svd(X)[0][:, -1]  # a direction X^T null = 0
    return X, Y, null, ln.SquaredLoss.from_data(from_host(X, xp), from_host(Y, xp))


def test_value_is_exact_far_along_the_null_space(xp):
    """Far along null(Lambda_xx) the value stays at the minimum to round-off of the residual, and never below it."""
    X, Y, null, loss = _interpolating(xp)
    Phi = to_numpy(loss.Phi)
    eps = np.finfo(np.float64).eps
    for scale in (1.0, 1e2, 1e4):
        W = Phi + scale * np.outer(np.ones(2), null)
        v = float(to_numpy(loss.value(from_host(W, xp))))
        # the true excess loss is 0; round-off of W X alone is (eps scale |X|)^2, whereas the uncentred
        # tr(W Sxx W^T) form loses eps * scale^2 (2e-8 at scale 1e4) and can go negative
        bound = 100 * (eps * scale * np.linalg.norm(X)) ** 2 + 100 * eps**2
        c0 = float(to_numpy(loss.c0))
        assert 0 <= v - c0 <= bound, (scale, v, c0, bound)


def test_population_form_agrees_with_data_form(xp):
    """The population constructor, built from the data's statistics, gives the same value (factored there too)."""
    X, Y, null, loss = _interpolating(xp)
    m = X.shape[1]
    pop = ln.SquaredLoss.population(*(from_host(a, xp) for a in (X @ X.T / m, Y @ X.T / m, Y @ Y.T / m)))
    rng = np.random.default_rng(1)
    for _ in range(5):
        W = from_host(rng.standard_normal((2, 6)), xp)
        a, b = float(to_numpy(loss.value(W))), float(to_numpy(pop.value(W)))
        assert abs(a - b) <= 1e-12 * max(1.0, abs(a))
