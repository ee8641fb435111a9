"""The NumPy quadratic kernel's natural layout (linnet._fastpaths.natural) and the plans a training loop keeps
(linnet._fastpaths.quadratic.Plan): layout chosen from the shapes alone, a net's bits independent of its batch,
runs of fused steps equal to the steps one by one, bound programs that follow the arrays they are called with.
The other kernel tests run in both layouts through the ``layout`` fixture (tests/conftest.py)."""

import numpy as np
import pytest

import linnet as ln
from linnet import _step
from linnet._fastpaths import natural, quadratic, threads

pytestmark = pytest.mark.fastpath


def _problem(widths, batch=(), seed=0, kind="data"):
    rng = np.random.default_rng(seed)
    d0, dN = widths[0], widths[-1]
    X = rng.standard_normal((d0, 3 * d0))
    Y = rng.standard_normal((dN, d0)) @ X / np.sqrt(d0) + 0.1 * rng.standard_normal((dN, 3 * d0))
    loss = ln.SquaredLoss.from_data(X, Y) if kind == "data" else ln.SquaredLoss.whitened(Y[:, :d0] / 3)
    Ws = ln.init.gaussian(widths, scale=1.0 / np.sqrt(max(widths)), batch=batch, seed=seed + 1)
    return loss, Ws


def test_the_layout_depends_on_the_shapes_only():
    assert natural.use_natural((100, 100, 100)) and natural.use_natural((48, 60, 48))
    assert not natural.use_natural((100, 47, 100)) and not natural.use_natural((4, 4))
    loss, W1 = _problem((48, 48, 48))
    _, W5 = _problem((48, 48, 48), batch=(5,))
    assert quadratic.prepare(loss, W1, False, np).natural and quadratic.prepare(loss, W5, False, np).natural


def _alone_vs_together(loss, Ws, method) -> list:
    """The fields in which a net trained alone differs, by any bit, from the same net trained in the batch
    ``Ws`` of three (``[]`` when none does)."""
    kw = dict(lr=0.05, steps=25, record_every=5, keep_history=True)
    train = ln.train.gd if method == "gd" else (lambda *a, **k: ln.train.momentum(*a, beta=0.8, **k))
    together = train(loss, Ws, **kw)
    differ = []
    for i in range(3):
        alone = train(loss, tuple(W[i] for W in Ws), **kw)
        pairs = {"loss": [(alone.loss, together.loss[:, i])], "status": [(alone.status, together.status[i])]}
        pairs["weights"] = [(a, b[i]) for a, b in zip(alone.weights, together.weights)]
        pairs["history"] = [(a, b[:, i]) for a, b in zip(alone.history, together.history)]
        differ += [f"net {i}: {name}" for name, ab in pairs.items() if not all(np.array_equal(a, b) for a, b in ab)]
    return differ


@pytest.mark.parametrize("method", ["gd", "momentum"])
def test_a_net_gives_the_same_bits_alone_and_in_a_batch(layout, method):
    """The runs of three nets trained together equal, every bit of every field, the runs of each net alone (in
    the natural layout one net runs on 2-D views and bound programs, a batch on stacked products)."""
    assert _alone_vs_together(*_problem((5, 6, 4), batch=(3,), seed=4), method) == []


def test_a_net_gives_the_same_bits_alone_and_in_a_batch_at_width_48():
    """The same at the natural layout's own size (no forced layout)."""
    assert _alone_vs_together(*_problem((48, 50, 48), batch=(3,), seed=4), "gd") == []


def test_the_natural_layout_matches_the_closed_form_at_its_size(dtype_name):
    """Width 48-52 in float32 and float64: the kernel (natural layout, one net and a batch) gives
    ln.value_and_grad's loss and gradients to round-off."""
    for batch in ((), (2,)):
        loss, Ws = _problem((48, 52, 50), batch=batch, seed=2)
        Ws = tuple(W.astype(dtype_name) for W in Ws)
        loss = loss.astype(np.dtype(dtype_name))
        assert quadratic.prepare(loss, Ws, False, np).natural
        ref = ln.value_and_grad(loss, Ws)
        got = _step.value_and_grads(loss, Ws, False, np)
        rtol, atol = ln.testing.tolerances(dtype_name)
        np.testing.assert_allclose(got[0], ref[0], rtol=rtol, atol=atol * 100)
        for g, r in zip(got[1], ref[1]):
            np.testing.assert_allclose(g, r, rtol=rtol, atol=atol * 100 * float(np.max(np.abs(r))))


@pytest.mark.parametrize("beta", [0.0, 0.9])
def test_a_run_of_fused_steps_is_the_steps_one_by_one(layout, beta):
    """Plan.run(n) equals n calls of the plan (weights, momentum, value, gradients, bit for bit), and stops
    after the first value outside the limit."""
    loss, Ws = _problem((6, 7, 5))
    plan = quadratic.prepare(loss, Ws, False, np)

    def setup():
        W = tuple(w.copy() for w in Ws)
        M = tuple(np.zeros_like(w) for w in Ws) if beta else None
        out = tuple(np.empty_like(w) for w in Ws)
        return W, M, out, quadratic.Update((0.02, 0.01), W, (beta, M) if beta else None)

    W, M, out, upd = setup()
    for _ in range(7):
        L, G = plan(W, out, upd, True)
    W2, M2, out2, upd2 = setup()
    done, L2, G2 = plan.run(W2, out2, upd2, 7, True, np.inf)
    assert done == 7
    np.testing.assert_array_equal(L2, L)
    for a, b in zip(W2 + G2 + (M2 or ()), W + G + (M or ())):
        np.testing.assert_array_equal(a, b)
    # a limit between the values: the run stops at the first value above it
    W3, _, out3, upd3 = setup()
    values = [float(plan(W3, out3, upd3, True)[0]) for _ in range(7)]
    assert values[0] > values[3]  # the loss falls
    W4, _, out4, upd4 = setup()
    done, L4, _ = plan.run(W4, out4, upd4, 7, True, (values[2] + values[3]) / 2)
    assert done == 1 and float(L4) == values[0]


def test_bound_programs_follow_the_arrays_they_are_called_with(layout):
    """A plan called with many buffer sets (more than it keeps programs for), with and without an update, in
    turn: every result is that of a fresh call of the kernel on the same arrays."""
    loss, Ws = _problem((5, 6, 4), batch=(2,))
    plan = quadratic.prepare(loss, Ws, False, np)
    rng = np.random.default_rng(3)
    sets = [tuple(w + 0.1 * rng.standard_normal(w.shape) for w in Ws) for _ in range(11)]
    outs = [tuple(np.empty_like(w) for w in Ws) for _ in sets]
    for rep in range(3):
        for i, (W, out) in enumerate(zip(sets, outs)):
            ref = quadratic.value_and_grads(loss, W, False, np)
            L, G = plan(W, out, None, rep == 1)
            if rep != 1:
                np.testing.assert_array_equal(L, ref[0])
            for g, r in zip(G, ref[1]):
                np.testing.assert_array_equal(g, r)
            if i % 3 == 0:  # and a fused step on a copy
                Wc = tuple(w.copy() for w in W)
                plan(Wc, out, (0.01, Wc), False)
                for wc, w, r in zip(Wc, W, ref[1]):
                    np.testing.assert_array_equal(wc, w - 0.01 * r)


def test_a_cap_in_force_is_not_set_again():
    """threads.capped: true inside a cap at or below the limit (nothing to set), false outside or above it."""
    assert threads.capped(None)
    if not threads._blas_controllers():
        pytest.skip("no BLAS library found by threadpoolctl")
    assert not threads.capped(1)
    with threads.blas_threads(2):
        assert threads.capped(2) and threads.capped(3) and not threads.capped(1)
        with threads.blas_threads(1):
            assert threads.capped(1)
        assert threads.capped(1)  # nested caps keep the smallest until the outermost ends
    assert not threads.capped(1)


def test_mutable_containers_get_no_bound_program(layout):
    """A list of weights can have its arrays swapped between calls: a plan binds nothing to it (each call reads
    the arrays it holds then), so the second call sees the new arrays."""
    loss, Ws = _problem((5, 6, 4))
    plan = quadratic.prepare(loss, Ws, False, np)
    W = list(Ws)
    out = tuple(np.empty_like(w) for w in Ws)
    plan(W, out)
    W[0] = Ws[0] + 1.0
    L, G = plan(W, out)
    ref = quadratic.value_and_grads(loss, tuple(W), False, np)
    np.testing.assert_array_equal(L, ref[0])
    for g, r in zip(G, ref[1]):
        np.testing.assert_array_equal(g, r)
    assert not plan._programs
