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
