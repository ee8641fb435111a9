"""Observers along descent runs: each built-in against an independent NumPy reference at its recorded steps,
schedules, user functions, bad input, and no effect on the trajectory itself."""

import numpy as np
import pytest

import linnet as ln
from linnet import train
from linnet.train.observers import OBSERVERS, logspaced

RTOL = 1e-10  # float64 recomputation of the same quantity by other means (SVD, dense Hessian): round-off only
ARPACK_RTOL = 1e-7  # the sharpness observer runs ARPACK to tol 1e-8 (relative), warm-started
FLOW_RTOL = 1e-7  # Dormand-Prince at rtol 1e-10 per step: the conserved quantity drifts by the accumulated error


def _run(observe, steps=30, **kw):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((3, 20))
    Y = rng.standard_normal((2, 3)) @ X + 0.1 * rng.standard_normal((2, 20))
    loss = ln.SquaredLoss.from_data(X, Y)
    Ws = ln.init.gaussian((3, 4, 3, 2), scale=0.4, batch=(3,), seed=1)
    return loss, train.gd(loss, Ws, lr=0.05, steps=steps, keep_history=True, record_every=1, observe=observe, **kw)


def _weights_at(run, k):
    i = int(np.nonzero(np.asarray(run.steps) == k)[0][0])
    return tuple(h[i] for h in run.history), run.loss[i]


def test_every_builtin_matches_an_independent_reference():
    observe = {name: 10 for name in OBSERVERS}
    loss, run = _run(observe)
    assert set(run.records) == set(OBSERVERS)
    for k_i, k in enumerate(run.record_steps["loss"].tolist()):
        Ws, L = _weights_at(run, k)
        We = Ws[2] @ Ws[1] @ Ws[0]
        s = np.linalg.svd(We, compute_uv=False)
        G = ln.grad(loss, Ws)
        p = s / s.sum(-1, keepdims=True)
        ref = {
            "loss": L,
            "grad_norm": np.sqrt(sum((g**2).sum(axis=(-2, -1)) for g in G)),
            "layer_norms": np.stack([np.linalg.norm(W, axis=(-2, -1)) for W in Ws], -1),
            "balancedness": np.stack(
                [
                    np.linalg.norm(
                        Ws[j + 1].swapaxes(-1, -2) @ Ws[j + 1] - Ws[j] @ Ws[j].swapaxes(-1, -2), axis=(-2, -1)
                    )
                    for j in range(2)
                ],
                -1,
            ),
            "singular_values": s,
            "effective_rank": np.exp(-(p * np.log(p)).sum(-1)),
            "stable_rank": (s**2).sum(-1) / s[:, 0] ** 2,
            "distance_to_optimum": np.linalg.norm(
                We - np.asarray(ln.theory.global_min(loss, (3, 4, 3, 2)).We), axis=(-2, -1)
            ),
            "alignment": np.stack(
                [
                    np.abs(
                        np.einsum("bi,bi->b", np.linalg.svd(Ws[j])[0][:, :, 0], np.linalg.svd(Ws[j + 1])[2][:, 0, :])
                    )
                    for j in range(2)
                ],
                -1,
            ),
            "sharpness": np.array(
                [np.linalg.eigvalsh(ln.hessian(loss, tuple(W[b] for W in Ws)))[-1] for b in range(3)]
            ),
        }
        for name, want in ref.items():
            got = np.asarray(run.records[name][k_i])
            rtol = ARPACK_RTOL if name == "sharpness" else RTOL
            np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-12, err_msg=f"{name} at step {k}")


def test_observing_changes_nothing_in_the_run():
    """Observed steps are not fused (their weights stay intact): the run is the same to the last bit."""
    _, plain = _run(None)
    _, seen = _run({"sharpness": 7, "loss": 3})
    for a, b in zip(plain.weights, seen.weights):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(plain.loss, seen.loss)
    assert plain.records is None and seen.records["loss"].shape == (11, 3)


def test_schedules_and_user_functions():
    calls = []

    def mine(step, Ws, L):
        calls.append(step)
        return 2 * L

    _, run = _run({"loss": [0, 5, 29], "effective_rank": logspaced(4), "twice": (mine, 15)})
    assert run.record_steps["loss"].tolist() == [0, 5, 29]
    assert run.record_steps["twice"].tolist() == [0, 15, 30] == calls
    steps = run.record_steps["effective_rank"].tolist()
    assert steps[0] == 0 and steps[-1] == 30 and steps == sorted(set(steps))
    np.testing.assert_array_equal(run.records["twice"][1], 2 * run.loss[15])


@pytest.mark.parametrize(
    "observe, match",
    [
        ({"nope": 1}, "nope"),
        ({"loss": 0}, "loss"),
        ({"loss": [0, 99]}, "loss"),
        ({"loss": "often"}, "loss"),
        ({"x": ("not callable", 2)}, "observe"),
        ([("loss", 1)], "observe"),
    ],
)
def test_bad_observe_raises(observe, match):
    with pytest.raises(ValueError, match=match):
        _run(observe)


def test_sharpness_warm_start_keeps_the_value():
    """Warm-started from each net's previous eigenvector, the value equals a cold start's (ARPACK tolerance)."""
    from linnet._fastpaths.curvature import top_eigenvalue
    from linnet.train.observers.builtins import Sharpness

    loss, run = _run(None, steps=40)
    obs = Sharpness()
    for k in (30, 31):
        Ws, L = _weights_at(run, k)
        ctx = train.observers.ObserverContext(k, Ws, L, Ws, loss, False, ln.backend.get_namespace("numpy"))
        warm = np.asarray(obs(ctx))
    assert set(obs._v) == {0, 1, 2}
    cold = [top_eigenvalue(loss, tuple(W[b] for W in Ws), tol=obs.tol).value for b in range(3)]
    np.testing.assert_allclose(warm, cold, rtol=ARPACK_RTOL)


def test_end_to_end_dynamics_record_observers():
    loss = ln.SquaredLoss.whitened(np.diag([2.0, 1.0, 0.5]))
    We0 = 0.1 * np.eye(3)
    run = train.end_to_end_gd(
        loss,
        We0,
        depth=3,
        lr=0.1,
        steps=40,
        keep_history=True,
        observe={"effective_rank": 10, "distance_to_optimum": 20},
    )
    assert run.record_steps["effective_rank"].tolist() == [0, 10, 20, 30, 40]
    s = np.linalg.svd(run.history[0][-1], compute_uv=False)
    p = s / s.sum()
    np.testing.assert_allclose(run.records["effective_rank"][-1], np.exp(-(p * np.log(p)).sum()), rtol=RTOL)
    np.testing.assert_allclose(
        run.records["distance_to_optimum"][-1], np.linalg.norm(run.weights[0] - np.diag([2.0, 1.0, 0.5])), rtol=RTOL
    )


def test_gradient_flow_records_observers_at_its_record_times():
    """Balancedness is conserved by gradient flow (THEOREMS.md §2): recorded along the flow it stays at its
    initial value; the loss observer equals the flow's own loss records."""
    loss = ln.SquaredLoss.whitened(np.diag([2.0, 1.0]))
    Ws = ln.init.gaussian((2, 3, 2), scale=0.4, batch=(2,), seed=0)
    run = train.gradient_flow(
        loss,
        Ws,
        t_final=1.0,
        times=np.linspace(0, 1, 6),
        rtol=1e-10,
        atol=1e-12,
        observe={"balancedness": 1, "loss": [0, 5]},
    )
    assert run.history is None and run.record_steps["balancedness"].tolist() == [0, 1, 2, 3, 4, 5]
    b = np.asarray(run.records["balancedness"])
    np.testing.assert_allclose(b, np.broadcast_to(b[0], b.shape), rtol=FLOW_RTOL)
    np.testing.assert_array_equal(run.records["loss"], run.loss[[0, 5]])
    gd = train.gd(loss, Ws, lr=0.2, steps=5, observe={"balancedness": 1})
    assert np.abs(np.asarray(gd.records["balancedness"]) - b[0]).max() > 1e-6  # GD drifts: the test can fail
