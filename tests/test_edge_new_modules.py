"""Regression tests for the edge checks the fuzz (tests/test_edge_fuzz.py) found missing in the modules that
landed after it: diagonal, tied, ivp, the sensing/completion/classification losses, theory.lowrank and
theory.implicit. Each bad input gets a ValueError naming the argument; each legitimate variant gives the result
of the canonical input exactly."""

import warnings

import numpy as np
import pytest

import linnet as ln

X = np.array([[1.0, 2.0, -1.0, -2.0], [0.3, -0.2, 0.1, 0.4]])
LABELS = np.array([1.0, 1.0, -1.0, -1.0])


@pytest.mark.parametrize("cls", [ln.LogisticLoss, ln.ExponentialLoss])
def test_labels_must_be_plus_minus_one_and_int_labels_equal_float_ones(cls):
    for bad in ((LABELS + 1) / 2, 0.5 * LABELS, LABELS.astype(bool), LABELS.astype(complex), "abc"):
        with pytest.raises(ValueError, match="`y`"):
            cls(X, bad)
    W = np.array([[0.3, -0.7]])
    assert np.array_equal(cls(X, LABELS.astype(np.int64)).value(W), cls(X, LABELS).value(W))
    assert np.array_equal(cls(X, LABELS.tolist()).grad(W), cls(X, LABELS).grad(W))
    with pytest.raises(ValueError, match="batch shapes of `X` and `y`"):
        cls(np.stack([X, X]), np.stack([LABELS] * 3))


def test_max_margin_direction_checks_its_options():
    with pytest.raises(ValueError, match="`tol`"):
        ln.max_margin_direction(X, LABELS, tol="a")
    with pytest.raises(ValueError, match="`normalize`"):
        ln.max_margin_direction(X, LABELS, normalize="yes")
    with pytest.raises(ValueError, match="`y` must be one label vector"):
        ln.max_margin_direction(X, np.stack([LABELS, LABELS]))


def test_completion_masks_and_indices():
    M = np.array([[1.0, -0.5], [0.3, 2.0]])
    mask = np.array([[True, False], [True, True]])
    for bad in (2 * mask.astype(int), 0.5 * mask, np.where(mask, np.nan, 0.0), "abc", mask[..., :1]):
        with pytest.raises(ValueError, match="`mask`"):
            ln.MatrixCompletionLoss(M, bad)
    with pytest.raises(ValueError, match="batch shapes of `mask` and `M`"):
        ln.MatrixCompletionLoss(np.stack([M] * 3), np.stack([mask] * 2))
    W = np.array([[0.2, 0.1], [-0.4, 1.0]])
    ref = ln.MatrixCompletionLoss(M, mask).value(W)
    assert np.array_equal(ln.MatrixCompletionLoss(M, mask.astype(float)).value(W), ref)
    assert np.array_equal(ln.MatrixCompletionLoss(M.tolist(), mask.tolist()).value(W), ref)
    for rows in ([0.5, 1.0, 1.0], [0, 2, 1], "abc", [True, False, True]):
        with pytest.raises(ValueError, match="`rows`"):
            ln.MatrixCompletionLoss.from_indices(rows, [0, 0, 1], [1.0, 2.0, 3.0], (2, 2))
    with pytest.raises(ValueError, match="`shape`"):
        ln.MatrixCompletionLoss.from_indices([0], [0], [1.0], (2.5, 2))
    with pytest.raises(ValueError, match="`values`"):
        ln.MatrixCompletionLoss.from_indices([0], [0], np.array([1 + 1j]), (2, 2))


def test_sensing_y_in_the_namespace_and_batch_of_A():
    A = np.random.default_rng(0).standard_normal((5, 2, 2))
    y = np.arange(5.0)
    with pytest.raises(ValueError, match="`y`"):
        ln.LinearMeasurementLoss(A, "abc")
    with pytest.raises(ValueError, match="batch shapes of `A` and `y`"):
        ln.LinearMeasurementLoss(np.stack([A] * 3), np.stack([y] * 2))
    W = np.eye(2)
    assert np.array_equal(ln.LinearMeasurementLoss(A, y.tolist()).value(W), ln.LinearMeasurementLoss(A, y).value(W))


def test_implicit_closed_forms_raise_instead_of_overflowing():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="`s`"):
            ln.theory.h_depth(np.array([1e6]), 2)
        with pytest.raises(ValueError, match="`beta`"):
            ln.theory.q_alpha(np.array([np.inf]), 0.5, 2)
        with pytest.raises(ValueError, match="`beta`"):
            ln.theory.q_alpha(1.0, 0.5, 2)  # a scalar: no axis to sum
    Xd = np.array([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
    with pytest.raises(ValueError, match="`X` must have full row rank"):
        ln.theory.q_alpha_argmin(Xd, np.array([1.0, 2.0]), 1.0, 2)
    with pytest.raises(ValueError, match="`A` must have full row rank"):
        ln.theory.entropy_argmin(Xd, np.array([1.0, 2.0]), 1.0)
    with pytest.raises(ValueError, match="`X`, `y`: the LP"):
        ln.theory.min_l1_interpolant(Xd, np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="`y` must be a real number"):
        ln.theory.gfs_sharpness(np.array([1.0, 2.0]), [0.5, 0.7])


def test_lowrank_helpers_check_their_arguments():
    with pytest.raises(ValueError, match="`shape`"):
        ln.theory.low_rank_matrix((2.5, 2), 1)
    with pytest.raises(ValueError, match="`dtype`"):
        ln.theory.low_rank_matrix((3, 2), 1, dtype="float16")
    with pytest.raises(ValueError, match="`xp`"):
        ln.theory.random_mask((3, 2), 2, xp="torch")
    with pytest.raises(ValueError, match="`noise`"):
        ln.theory.gaussian_measurements(np.eye(2), 3, noise=float("nan"))
    with pytest.raises(ValueError, match="`mask`"):
        ln.theory.unobserved_error(np.eye(2), np.ones((2, 2)), 2 * np.eye(2))
    A = np.random.default_rng(0).standard_normal((5, 2, 3))
    y = A[:, 0, 0]
    for kw, name in (({"rho": 0.0}, "rho"), ({"tol": None}, "tol"), ({"max_iter": 0}, "max_iter")):
        with pytest.raises(ValueError, match=f"`{name}`"):
            ln.theory.min_nuclear_norm(A, y, **kw)


def test_flows_broadcast_the_weights_to_a_batched_loss():
    """A batch of 2 problems and one initial net: the flow runs both nets, like gd (the per-net results agree
    with the unbatched flows)."""
    rng = np.random.default_rng(3)
    Phis = rng.standard_normal((2, 2, 2))
    batched = ln.SquaredLoss.whitened(Phis)
    Ws = tuple(0.8 + 0.1 * rng.standard_normal((2, 2)) for _ in range(2))
    run = ln.diagonal.flow(batched, Ws, t_max=0.5, rtol=1e-10, atol=1e-12)
    assert run.weights[0].shape == (2, 2, 2)
    for b in range(2):
        one = ln.diagonal.flow(ln.SquaredLoss.whitened(Phis[b]), Ws, t_max=0.5, rtol=1e-10, atol=1e-12)
        for a, c in zip(run.weights, one.weights):
            np.testing.assert_allclose(a[b], c, rtol=1e-7, atol=1e-9)
    W1 = 0.5 * rng.standard_normal((3, 2))
    assert ln.tied.flow(batched, W1, t_max=0.2).weights[0].shape == (2, 3, 2)
    dense = ln.ivp.dense_flow(batched, ln.init.gaussian((2, 3, 2), scale=0.5, seed=0), t_max=0.2)
    assert dense.weights[0].shape == (2, 3, 2)


def test_integrate_checks_callbacks_and_options():
    loss = ln.SquaredLoss.whitened(np.eye(2))
    Ws = ln.init.gaussian((2, 3, 2), scale=0.5, seed=0)

    def g(W):
        return ln.grad(loss, W)

    def f(W):
        return float(np.sum(ln.loss(loss, W)))

    with pytest.raises(ValueError, match="`grad_flat` must be a callable"):
        ln.ivp.integrate(1, f, Ws, t_max=1.0)
    with pytest.raises(ValueError, match="`grad_flat` must return"):
        ln.ivp.integrate(lambda W: (W[0],), f, Ws, t_max=1.0)
    with pytest.raises(ValueError, match="`loss_flat` must return a real number"):
        ln.ivp.integrate(g, lambda W: "x", Ws, t_max=1.0)
    for kw, name in (({"rtol": 0.0}, "rtol"), ({"atol": None}, "atol"), ({"t_eval": [np.nan]}, "t_eval")):
        with pytest.raises(ValueError, match=f"`{name}`"):
            ln.ivp.integrate(g, f, Ws, t_max=1.0, **kw)
    with pytest.raises(ValueError, match=r"`Ws\[1\]` must be finite"):
        ln.ivp.integrate(g, f, (Ws[0], np.full_like(Ws[1], np.nan)), t_max=1.0)


def test_diagonal_gd_and_lift_edges():
    loss = ln.SquaredLoss.whitened(np.eye(2))
    Ws = tuple(np.full((2, 2), 0.8) for _ in range(2))
    for kw, name in (({"lr": True}, "lr"), ({"lr": 1j}, "lr"), ({"record_weights": 1}, "record_weights")):
        with pytest.raises(ValueError, match=f"`{name}`"):
            ln.diagonal.gd(loss, Ws, steps=2, **{"lr": 0.1, **kw})
    ref = ln.diagonal.gd(loss, Ws, lr=0.1, steps=2)
    assert np.array_equal(ln.diagonal.gd(loss, Ws, lr=0.1, steps=np.int64(2)).weights[0], ref.weights[0])
    with pytest.raises(ValueError, match="`X`"):
        ln.diagonal.lift(np.ones(3))
    with pytest.raises(ValueError, match=r"`Ws\[0\]` must have every dimension >= 1"):
        ln.diagonal.end_to_end((np.ones((0, 2, 2)),))
