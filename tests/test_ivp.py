"""linnet.ivp: solve_ivp gradient flow agrees with the batched integrator of linnet.train and conserves
balancedness; bad arguments raise ValueError naming them."""

import numpy as np
import pytest

import linnet as ln


def test_dense_flow_matches_the_batched_integrator_and_conserves_balancedness():
    rng = np.random.default_rng(0)
    loss = ln.SquaredLoss.whitened(rng.standard_normal((2, 3)))
    Ws = ln.init.gaussian((3, 4, 2), scale=0.5, seed=1)
    run = ln.ivp.dense_flow(loss, Ws, t_max=2.0, method="DOP853", rtol=1e-12, atol=1e-14)
    ref = ln.train.gradient_flow(loss, Ws, t_final=2.0, rtol=1e-12, atol=1e-14)
    for a, b in zip(run.weights, ref.weights):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)
    D0 = ln.theory.balancedness_gaps(Ws)
    D1 = ln.theory.balancedness_gaps(run.weights)
    assert max(float(np.abs(a - b).max()) for a, b in zip(D0, D1)) < 1e-9
    assert run.loss[-1] < run.loss[0] and not run.stopped


def test_ftol_stops_and_t_eval_is_kept():
    loss = ln.SquaredLoss.whitened(np.array([[1.0]]))
    Ws = (np.array([[0.5]]), np.array([[0.5]]))
    run = ln.ivp.dense_flow(loss, Ws, t_max=100.0, t_eval=[0.5, 1.0, 50.0], ftol=1e-8)
    assert run.stopped and run.loss[-1] == pytest.approx(1e-8, rel=1e-6)
    assert list(run.t[:2]) == [0.5, 1.0] and run.t[-1] < 50.0


def test_validation():
    loss = ln.SquaredLoss.whitened(np.array([[1.0]]))
    Ws = (np.array([[0.5]]),)
    with pytest.raises(ValueError, match="`method` must be one of"):
        ln.ivp.dense_flow(loss, Ws, t_max=1.0, method="euler")
    with pytest.raises(ValueError, match="`t_eval` must be increasing"):
        ln.ivp.dense_flow(loss, Ws, t_max=1.0, t_eval=[0.5, 0.2])
    with pytest.raises(ValueError, match="`ftol` must be finite and > 0"):
        ln.ivp.dense_flow(loss, Ws, t_max=1.0, ftol=-1.0)


def _linear(A):
    """grad/loss callbacks of L(theta) = theta^T A theta / 2 on one (n, 1) array (flow: theta' = -A theta)."""
    return (lambda W: (A @ W[0],)), (lambda W: 0.5 * float(np.sum(W[0] * (A @ W[0]))))


@pytest.mark.parametrize("method", ["DOP853", "RK45", "LSODA", "Radau", "BDF"])
def test_integrate_matches_the_matrix_exponential_at_t_eval(method):
    """Independent reference: theta(t) = expm(-A t) theta0 at every requested time, every SciPy method."""
    from scipy.linalg import expm

    A = np.array([[2.0, 0.5], [0.5, 1.0]])
    theta0 = np.array([[1.0], [-2.0]])
    times = [0.0, 0.1, 0.7, 2.0]
    g, f = _linear(A)
    run = ln.ivp.integrate(g, f, (theta0,), t_max=2.0, t_eval=times, method=method, rtol=1e-10, atol=1e-12)
    assert run.status == "t_max" and list(run.t) == times
    for t, y in zip(times, run.states):
        np.testing.assert_allclose(y, (expm(-A * t) @ theta0).ravel(), rtol=1e-7, atol=1e-9)


def test_ftol_is_crossed_at_the_closed_form_time():
    """L(t) = L0 exp(-2t) for theta' = -theta: the run ends at t = log(L0 / ftol) / 2 (root of the dense output)."""
    g, f = _linear(np.eye(1))
    run = ln.ivp.integrate(g, f, (np.array([[1.0]]),), t_max=100.0, ftol=1e-6, rtol=1e-11, atol=1e-14)
    assert run.status == "ftol" and run.stopped
    assert run.t[-1] == pytest.approx(0.5 * np.log(0.5 / 1e-6), rel=1e-8)
    assert run.loss[-1] == pytest.approx(1e-6, rel=1e-7)
    # already below ftol: the run ends where it starts
    run = ln.ivp.integrate(g, f, (np.array([[1e-4]]),), t_max=100.0, ftol=1e-6, t_eval=[1.0])
    assert run.status == "ftol" and list(run.t) == [0.0] and run.states.shape == (1, 1)


def test_step_budget_bounds_a_long_horizon():
    """t_max = 1e6 on a stiff-free explicit method would take ~1e6 steps: max_steps ends it, flagged."""
    g, f = _linear(np.diag([1.0, 100.0]))
    run = ln.ivp.integrate(g, f, (np.ones((2, 1)),), t_max=1e6, max_steps=50, t_eval=[0.0, 1e5])
    assert run.status == "max_steps" and not run.stopped
    assert list(run.t[:1]) == [0.0] and 0.0 < run.t[-1] < 1e5 and np.all(np.isfinite(run.states))
    np.testing.assert_array_equal(run.weights[0].ravel(), run.states[-1])


def test_finite_time_blow_up_ends_as_diverged_without_warnings():
    """L = -theta^4 / 4: theta' = theta^3 blows up at t = 1 / (2 theta0^2) = 0.5; the run stops before, finite."""
    import warnings

    g = lambda W: (-(W[0] ** 3),)  # noqa: E731
    f = lambda W: -0.25 * float(np.sum(W[0] ** 4))  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run = ln.ivp.integrate(g, f, (np.array([[1.0]]),), t_max=1.0, rtol=1e-8)
    assert run.status == "diverged" and not run.stopped
    assert np.all(np.isfinite(run.states)) and np.isfinite(run.loss[-1]) and run.message
    # it ends at the singularity, far up the blow-up 1 / sqrt(1 - 2t), which it follows until close to it
    assert run.t[-1] == pytest.approx(0.5, abs=1e-6) and run.states[-1, 0] > 1e3
    early = run.t < 0.45
    np.testing.assert_allclose(run.states[early, 0], 1 / np.sqrt(1 - 2 * run.t[early]), rtol=1e-6)


@pytest.mark.parametrize("rtol", [1.0, 4.0, 1e-17])
def test_rtol_outside_its_range_is_refused(rtol):
    g, f = _linear(np.eye(1))
    with pytest.raises(ValueError, match=r"`rtol` must be a real number in \[100 eps, 1\)"):
        ln.ivp.integrate(g, f, (np.ones((1, 1)),), t_max=1.0, rtol=rtol)
