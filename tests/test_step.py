"""The training hot path (linnet._step, linnet._fastpaths) against the public closed form ln.value_and_grad."""

import tracemalloc

import numpy as np
import pytest

import linnet as ln
from linnet import _fastpaths, _step
from linnet._backend import from_host, get_namespace, to_numpy
from linnet.testing import assert_close


def _loss(kind, d0, dN, xp, dtype, batch=()):
    rng = np.random.default_rng(7)
    if kind == "whitened":
        return ln.SquaredLoss.whitened(from_host(rng.standard_normal(batch + (dN, d0)), xp, dtype))
    if kind == "data":
        X = from_host(rng.standard_normal(batch + (d0, 3 * d0)), xp, dtype)
        Y = from_host(rng.standard_normal(batch + (dN, 3 * d0)), xp, dtype)
        return ln.SquaredLoss.from_data(X, Y)
    if kind == "population":
        A = rng.standard_normal((d0 + dN, 2 * (d0 + dN)))
        C = A @ A.T / A.shape[1]
        return ln.SquaredLoss.population(*(from_host(a, xp, dtype) for a in (C[:d0, :d0], C[d0:, :d0], C[d0:, d0:])))
    if kind == "minibatch":  # raw statistics, as train.sgd's steps build them
        X = from_host(rng.standard_normal(batch + (d0, 3 * d0)), xp, dtype)
        Y = from_host(rng.standard_normal(batch + (dN, 3 * d0)), xp, dtype)
        idx = xp.asarray(np.arange(0, 3 * d0, 2))
        return ln.SquaredLoss.from_data(X, Y).subsample(idx)
    if kind == "lp":
        X = from_host(rng.standard_normal((d0, 10)), xp, dtype)
        Y = from_host(rng.standard_normal((dN, 10)), xp, dtype)
        return ln.LpLoss(X, Y, p=4)
    raise AssertionError(kind)


def _generic(loss, Ws, residual, xp, monkeypatch):
    with ln.backend.fastpaths(False):
        return _step.value_and_grads(loss, Ws, residual, xp)


def _check_same(a, b, dtype_name, scale=1.0):
    (va, ga), (vb, gb) = a, b
    _, atol = ln.testing.tolerances(dtype_name)
    assert_close(va, vb, atol=atol * scale)
    assert len(ga) == len(gb)
    for x, y in zip(ga, gb):
        assert_close(x, y, atol=atol * scale)


@pytest.mark.parametrize("kind", ["whitened", "data", "population", "minibatch", "lp"])
@pytest.mark.parametrize("widths", [(3, 4), (3, 5, 2), (4, 4, 4, 4), (2, 3, 4, 3, 2)])
@pytest.mark.parametrize("batch", [(), (5,), (2, 3)])
def test_step_matches_public_closed_form(layout, xp, dtype_name, kind, widths, batch, monkeypatch):
    """The hot path (fast or generic) gives ln.value_and_grad's loss and gradients to round-off."""
    Ws = ln.init.gaussian(widths, scale=0.5, batch=batch, seed=3, xp=xp, dtype=dtype_name)
    loss = _loss(kind, widths[0], widths[-1], xp, dtype_name).astype(Ws[0].dtype)
    ref = ln.value_and_grad(loss, Ws)
    got = _step.value_and_grads(loss, Ws, False, xp)
    _check_same(got, ref, dtype_name)
    _check_same(_generic(loss, Ws, False, xp, monkeypatch), ref, dtype_name)
    assert_close(_step.values(loss, Ws, False, xp), ref[0])
    fast = _fastpaths.value_and_grads(loss, Ws, False, xp)
    applies = kind != "lp" and xp.__name__.endswith("numpy") and ln.backend.fastpaths_enabled()
    assert (fast is not None) == applies


@pytest.mark.parametrize("kind", ["whitened", "data"])
@pytest.mark.parametrize("depth", [1, 2, 3, 5])
def test_step_residual(layout, xp, dtype_name, kind, depth, monkeypatch):
    """Residual nets (I + W_j): fast path, generic path and ln.value_and_grad agree."""
    Ws = ln.init.gaussian((4,) * (depth + 1), scale=0.3, batch=(6,), seed=5, xp=xp, dtype=dtype_name)
    loss = _loss(kind, 4, 4, xp, dtype_name)
    ref = ln.value_and_grad(loss, Ws, residual=True)
    _check_same(_step.value_and_grads(loss, Ws, True, xp), ref, dtype_name)
    _check_same(_generic(loss, Ws, True, xp, monkeypatch), ref, dtype_name)


def test_step_batched_problem_and_broadcast(xp, monkeypatch):
    """A batch of problems matching the nets' batch, and broadcast layer batches, both agree with the closed form."""
    Ws = ln.init.gaussian((3, 4, 2), scale=0.5, batch=(4,), seed=2, xp=xp)
    loss = _loss("data", 3, 2, xp, "float64", batch=(4,))
    _check_same(_step.value_and_grads(loss, Ws, False, xp), ln.value_and_grad(loss, Ws), "float64")
    # one unbatched layer broadcast against a batched one: generic path
    Ws2 = (Ws[0][0, ...], Ws[1])
    _check_same(_step.value_and_grads(loss, Ws2, False, xp), ln.value_and_grad(loss, Ws2), "float64")
    assert _fastpaths.value_and_grads(loss, Ws2, False, xp) is None
    # problem batched, one net: the batch comes from the problem
    W1 = tuple(W[0, ...] for W in Ws)
    got = _step.value_and_grads(loss, W1, False, xp)
    assert tuple(got[0].shape) == (4,)
    _check_same(got, ln.value_and_grad(loss, W1), "float64")


@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("kind", ["whitened", "data", "minibatch"])
def test_threaded_split_is_bitwise_equal(layout, kind, residual, monkeypatch):
    """Splitting the batch over threads changes nothing, bit for bit (each net's arithmetic is unchanged)."""
    xp = get_namespace("numpy")
    widths = (5, 5, 5, 5) if residual else (5, 6, 6, 4)
    Ws = ln.init.gaussian(widths, scale=0.4, batch=(301,), seed=11)
    loss = _loss(kind, 5, widths[-1], xp, "float64")
    _fastpaths.set_num_threads(1)
    try:
        v1, g1 = _step.value_and_grads(loss, Ws, residual, xp)
        monkeypatch.setattr(_fastpaths.threads, "MIN_NETS_PER_CHUNK", 10)
        monkeypatch.setattr(_fastpaths.threads, "MIN_WORK_PER_CHUNK", 1.0)
        _fastpaths.set_num_threads(3)
        v3, g3 = _step.value_and_grads(loss, Ws, residual, xp)
    finally:
        _fastpaths.set_num_threads(None)
    np.testing.assert_array_equal(v1, v3)
    for a, b in zip(g1, g3):
        np.testing.assert_array_equal(a, b)
    _check_same((v3, g3), ln.value_and_grad(loss, Ws, residual=residual), "float64")


def test_outputs_are_fresh_and_memory_stays_flat():
    """Results are not overwritten by later calls, and repeated steps do not grow the heap (buffers are reused)."""
    xp = get_namespace("numpy")
    Ws = ln.init.gaussian((8, 8, 8, 8, 8), scale=0.3, batch=(512,), seed=0)
    loss = ln.SquaredLoss.whitened(np.eye(8))
    v0, g0 = _step.value_and_grads(loss, Ws, False, xp)
    keep = [g.copy() for g in g0]
    tracemalloc.start()
    try:
        for _ in range(3):
            Ws = tuple(W - 0.01 * g for W, g in zip(Ws, _step.value_and_grads(loss, Ws, False, xp)[1]))
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(30):
            Ws = tuple(W - 0.01 * g for W, g in zip(Ws, _step.value_and_grads(loss, Ws, False, xp)[1]))
        grown = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    for a, b in zip(g0, keep):
        np.testing.assert_array_equal(a, b)
    assert grown < 64 * 1024, grown  # a leak of one step's arrays would be > 1 MiB


def test_residual_needs_square_layers(xp):
    Ws = ln.init.gaussian((3, 4, 3), scale=0.5, batch=(2,), seed=0, xp=xp)
    loss = _loss("whitened", 3, 3, xp, "float64")
    with pytest.raises(ValueError, match="square"):
        _step.value_and_grads(loss, Ws, True, xp)


@pytest.mark.fastpath
def test_out_buffers_are_filled_in_place(layout, xp):
    """With ``out=``, the NumPy fast path writes the gradients into the caller's arrays; any path returns them right."""
    Ws = ln.init.gaussian((3, 4, 4, 2), scale=0.5, batch=(5,), seed=1, xp=xp)
    loss = _loss("data", 3, 2, xp, "float64")
    out = tuple(xp.zeros_like(W) for W in Ws)
    L, G = _step.value_and_grads(loss, Ws, False, xp, out=out)
    ref = ln.value_and_grad(loss, Ws)
    _check_same((L, G), ref, "float64")
    if xp.__name__.endswith("numpy"):
        assert all(g is o for g, o in zip(G, out))
    bad = (out[0],)  # wrong length: ignored, fresh arrays returned
    _check_same(_step.value_and_grads(loss, Ws, False, xp, out=bad), ref, "float64")


def test_set_num_threads_validates():
    with pytest.raises(ValueError, match="`n` must be a positive int"):
        _fastpaths.set_num_threads(0)


@pytest.mark.parametrize("residual", [False, True])
def test_lean_hvp_and_top_eigenvalue(xp, residual):
    """LeanHVP equals ln.hvp, and eigsh on it finds the dense Hessian's top eigenvalue to 1e-8."""
    widths = (4, 4, 4, 4)
    Ws = ln.init.gaussian(widths, scale=0.5, seed=4, xp=xp)
    loss = _loss("data", 4, 4, xp, "float64")
    op = _fastpaths.LeanHVP(loss, Ws, residual)
    Vs = ln.init.gaussian(widths, scale=1.0, seed=9, xp=xp)
    for a, b in zip(op.hvp(Vs), ln.hvp(loss, Ws, Vs, residual=residual)):
        assert_close(a, b)
    H = to_numpy(ln.hessian(loss, Ws, residual=residual))
    top = float(np.linalg.eigvalsh(H)[-1])
    r = _fastpaths.top_eigenvalue(loss, Ws, residual=residual)
    assert abs(r.value - top) <= 1e-8 * abs(top)
    assert r.n_hvp < 60
    v = r.vector
    np.testing.assert_allclose(H @ v, top * v, atol=1e-6 * abs(top))


def test_top_eigenvalue_rejects_batches():
    Ws = ln.init.gaussian((3, 3, 3), scale=0.5, batch=(2,), seed=0)
    with pytest.raises(ValueError, match="one net"):
        _fastpaths.top_eigenvalue(ln.SquaredLoss.whitened(np.eye(3)), Ws)


@pytest.mark.parametrize("kind", ["whitened", "data", "population"])
@pytest.mark.parametrize(
    "widths,residual", [((3, 4, 2), False), ((3, 4, 5, 2), False), ((3, 3, 3, 3, 3), True), ((2, 3), False)]
)
@pytest.mark.parametrize("batch", [(), (2,)])
def test_closed_form_hessian_matches_hvp_columns(xp, kind, widths, residual, batch):
    """ln.hessian (Kronecker blocks for squared losses) equals the exact HVPs of the unit vectors, exactly symmetric."""
    Ws = ln.init.gaussian(widths, scale=0.6, batch=batch, seed=8, xp=xp)
    loss = _loss(kind, widths[0], widths[-1], xp, "float64")
    H = to_numpy(ln.hessian(loss, Ws, residual=residual))
    P = ln.num_params(Ws)
    assert H.shape == batch + (P, P)
    np.testing.assert_array_equal(H, np.swapaxes(H, -1, -2))
    E = np.eye(P)
    for k in range(P):
        Vs = ln.unflatten(from_host(np.broadcast_to(E[k], batch + (P,)), xp), widths)
        col = to_numpy(ln.flatten(ln.hvp(loss, Ws, Vs, residual=residual)))
        assert_close(H[..., :, k], col, atol=1e-12 * max(1.0, np.abs(H).max()))


@pytest.mark.parametrize(
    "residual, dtype_name, per_net, per_layer, threads",
    [
        (False, "float64", False, False, 1),
        (False, "float64", True, True, 3),
        (True, "float64", True, False, 3),
        (False, "float32", True, True, 1),
        (True, "float32", False, True, 3),
    ],
)
def test_fused_update_is_bitwise_the_separate_update(
    layout, residual, dtype_name, per_net, per_layer, threads, monkeypatch
):
    """``update=(steps, targets)`` leaves L and the gradients unchanged and writes ``W - s * G`` bit for bit
    (the product rounded first), also when the targets are the weights themselves and the batch is threaded."""
    xp = get_namespace("numpy")
    dt = np.dtype(dtype_name)
    widths = (5, 5, 5, 5) if residual else (5, 6, 7, 4)
    batch = (7, 43)
    Ws = tuple(w.astype(dt) for w in ln.init.gaussian(widths, scale=0.3, batch=batch, seed=3))
    loss = _loss("data", 5, widths[-1], xp, dtype_name)
    rng = np.random.default_rng(5)
    lrs = rng.uniform(0.0, 0.1, batch + (1, 1)).astype(dt) if per_net else 0.05
    if per_net:
        lrs[0, :3] = 0.0  # frozen nets: a zero step
    steps = tuple(lrs * c for c in (1.0, 0.5, 2.0)) if per_layer else lrs
    monkeypatch.setattr(_fastpaths.threads, "MIN_NETS_PER_CHUNK", 10)
    monkeypatch.setattr(_fastpaths.threads, "MIN_WORK_PER_CHUNK", 1.0)
    _fastpaths.set_num_threads(threads)
    try:
        L0, G0 = _step.value_and_grads(loss, Ws, residual, xp)
        Wt = tuple(w.copy() for w in Ws)
        L1, G1 = _step.value_and_grads(
            loss, Wt, residual, xp, out=tuple(np.empty_like(w) for w in Ws), update=(steps, Wt)
        )
    finally:
        _fastpaths.set_num_threads(None)
    np.testing.assert_array_equal(L0, L1)
    sl = steps if per_layer else (steps,) * 3
    for w, wt, g0, g1, s in zip(Ws, Wt, G0, G1, sl):
        np.testing.assert_array_equal(g0, g1)
        x = np.multiply(g0, s, out=np.empty_like(g0))
        np.testing.assert_array_equal(wt, w - x)
    assert not np.array_equal(Wt[0], Ws[0])  # the update did happen


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("fast", [True, False])
def test_fused_heavy_ball_update_is_bitwise_the_separate_update(layout, xp, threads, fast, monkeypatch):
    """``update=(steps, targets, (beta, M))``: ``M = beta * M + G`` then ``W - s * M``, each entry with the
    roundings of that array code, on the fast path (threaded) and the generic one."""
    Ws = ln.init.gaussian((5, 6, 7, 4), scale=0.3, batch=(7, 43), seed=3, xp=xp)
    loss = _loss("data", 5, 4, xp, "float64")
    M0 = tuple(x for x in ln.init.gaussian((5, 6, 7, 4), scale=0.1, batch=(7, 43), seed=4, xp=xp))
    s = from_host(np.random.default_rng(5).uniform(0.0, 0.1, (7, 43, 1, 1)), xp, "float64")
    beta = 0.9
    if not fast:
        monkeypatch.setattr(_fastpaths.select, "_state", {"on": False})  # as ln.backend.fastpaths(False)
    monkeypatch.setattr(_fastpaths.threads, "MIN_NETS_PER_CHUNK", 10)
    monkeypatch.setattr(_fastpaths.threads, "MIN_WORK_PER_CHUNK", 1.0)
    _fastpaths.set_num_threads(threads)
    try:
        L0, G0 = _step.value_and_grads(loss, Ws, False, xp)
        Wt = tuple(xp.asarray(w, copy=True) for w in Ws)
        Mt = tuple(xp.asarray(m, copy=True) for m in M0)
        L1, G1 = _step.value_and_grads(loss, Wt, False, xp, update=(s, Wt, (beta, Mt)))
    finally:
        _fastpaths.set_num_threads(None)
    np.testing.assert_array_equal(to_numpy(L0), to_numpy(L1))
    for w, wt, m0, mt, g0, g1 in zip(Ws, Wt, M0, Mt, G0, G1):
        np.testing.assert_array_equal(to_numpy(g0), to_numpy(g1))
        mc = beta * m0 + g0
        np.testing.assert_array_equal(to_numpy(mt), to_numpy(mc))
        np.testing.assert_array_equal(to_numpy(wt), to_numpy(w - s * mc))
    assert not np.array_equal(to_numpy(Mt[0]), to_numpy(M0[0]))  # the momentum did change


def test_fused_update_generic_path(xp):
    """Off the NumPy fast path (array-api-strict, or a loss it does not handle) the update runs after the
    gradients, with the same two roundings."""
    Ws = ln.init.gaussian((3, 4, 2), scale=0.5, batch=(4,), seed=2, xp=xp)
    loss = _loss("lp", 3, 2, xp, "float64")
    L0, G0 = _step.value_and_grads(loss, Ws, False, xp)
    Wt = tuple(xp.asarray(w, copy=True) for w in Ws)
    s = from_host(np.array([0.1, 0.0, 0.2, 0.05]).reshape(4, 1, 1), xp, "float64")
    L1, G1 = _step.value_and_grads(loss, Wt, False, xp, update=((s, 0.3), Wt))
    np.testing.assert_array_equal(to_numpy(L0), to_numpy(L1))
    for w, wt, g, si in zip(Ws, Wt, G0, (s, 0.3)):
        np.testing.assert_array_equal(to_numpy(wt), to_numpy(w - si * g))


def test_scratch_buffers_are_per_dtype(layout):
    """A float32 step after a float64 one of the same shapes computes in float32 buffers: its result does not
    depend on what ran before (it once reused the float64 scratch, rounding differently)."""
    xp = get_namespace("numpy")
    Ws64 = ln.init.gaussian((6, 6, 6, 6), scale=0.4, batch=(64,), seed=4)
    Ws32 = tuple(w.astype(np.float32) for w in Ws64)
    loss = _loss("data", 6, 6, xp, "float64")
    loss32 = loss.astype(np.float32)
    _fastpaths.set_num_threads(1)
    try:
        _step.value_and_grads(loss, Ws64, False, xp)
        La, Ga = _step.value_and_grads(loss32, Ws32, False, xp)
        _fastpaths.threads._local.ws = {}  # fresh scratch
        Lb, Gb = _step.value_and_grads(loss32, Ws32, False, xp)
    finally:
        _fastpaths.set_num_threads(None)
    np.testing.assert_array_equal(La, Lb)
    for a, b in zip(Ga, Gb):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", ["whitened", "data", "population"])
@pytest.mark.parametrize("batch", [(), (5,)])
def test_fast_value_keeps_gradients_and_value_to_round_off(layout, xp, dtype_name, kind, batch):
    """``fast_value=True`` leaves the gradients bit for bit and changes the value by round-off of
    ||E||^2 ||Lambda_xx|| only (it is the centred value from the gradient's own product)."""
    Ws = ln.init.gaussian((4, 5, 3), scale=0.5, batch=batch, seed=5, xp=xp, dtype=dtype_name)
    loss = _loss(kind, 4, 3, xp, dtype_name).astype(Ws[0].dtype)
    La, Ga = _step.value_and_grads(loss, Ws, False, xp)
    Lb, Gb = _step.value_and_grads(loss, Ws, False, xp, fast_value=True)
    for a, b in zip(Ga, Gb):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
    We = to_numpy(Ws[1]) @ to_numpy(Ws[0])
    E = We - to_numpy(loss.Phi)
    S = np.eye(4) if loss.Sxx is None else to_numpy(loss.Sxx)
    eps = float(np.finfo(to_numpy(La).dtype).eps)
    bound = 16 * 4 * eps * (np.sum(E * E, axis=(-2, -1)) * np.linalg.norm(S, 2) + np.abs(to_numpy(loss.c0)))
    assert np.all(np.abs(to_numpy(La) - to_numpy(Lb)) <= bound)


@pytest.mark.fastpath
def test_fast_value_is_not_the_accurate_value_where_lambda_xx_is_singular(layout):
    """Why recorded values never use the fast form: far along null(Lambda_xx) it loses the minimum (it can
    dip below it), where the factored value stays at the minimum to round-off."""
    xp = get_namespace("numpy")
    rng = np.random.default_rng(7)
    X, Y = rng.standard_normal((6, 3)), rng.standard_normal((2, 3))  # m = 3 < d0 = 6: singular Lambda_xx
    loss = ln.SquaredLoss.from_data(X, Y)
    null = np.linalg.svd(X)[0][:, -1]
    W = (loss.Phi + 1e4 * np.outer(np.ones(2), null))[None]  # one layer: W_e = W
    acc, _ = _step.value_and_grads(loss, (W,), False, xp)
    fast, _ = _step.value_and_grads(loss, (W,), False, xp, fast_value=True)
    c0 = float(loss.c0)
    assert 0 <= float(acc[0]) - c0 <= 1e-20 + 100 * (np.finfo(float).eps * 1e4 * np.linalg.norm(X)) ** 2
    assert abs(float(fast[0]) - c0) > 1e3 * abs(float(acc[0]) - c0)  # round-off of eps * 1e8 * |Lambda_xx|


@pytest.mark.parametrize("batch", [(), (3,), (2, 2)])
@pytest.mark.parametrize("widths", [(3, 4, 2), (4, 4, 4, 4), (2, 3, 4, 3, 2), (5, 5)])
def test_numpy_hessian_assembly_is_bitwise_the_generic_one(batch, widths, monkeypatch):
    """On NumPy the closed-form Hessian is written block by block into one array; the same bits as the
    array-API assembly (temporaries and concatenations), batched problems and residual nets included."""
    xp = get_namespace("numpy")
    Ws = ln.init.gaussian(widths, scale=0.5, batch=batch, seed=1)
    rng = np.random.default_rng(2)
    X = rng.standard_normal(batch + (widths[0], 10))
    Y = rng.standard_normal(batch + (widths[-1], 10))
    for loss in (ln.SquaredLoss.from_data(X, Y), ln.SquaredLoss.whitened(Y[..., :, : widths[0]])):
        for residual in (False, True) if len(set(widths)) == 1 else (False,):
            H = ln.hessian(loss, Ws, residual=residual)
            with ln.backend.fastpaths(False):
                H_generic = ln.hessian(loss, Ws, residual=residual)
            np.testing.assert_array_equal(H, H_generic)
            assert H.shape == batch + (H.shape[-1],) * 2 and xp is not None


@pytest.mark.parametrize(
    "widths, residual",
    [((16, 16, 16, 16), False), ((3, 4, 2), False), ((4, 4, 4, 4), True), ((5, 3), False), ((2, 3, 4, 3, 2), False)],
)
def test_lean_hvp_is_bitwise_the_pushforward_recursions(widths, residual):
    """The eigensolver's HVP writes the recursions of product.pushforward_prefixes / pushforward_suffixes out
    inline (the identities resolved once); it gives their bits exactly, for squared and other losses."""
    from linnet import product as lp

    rng = np.random.default_rng(3)
    X, Y = rng.standard_normal((widths[0], 20)), rng.standard_normal((widths[-1], 20))
    losses = (ln.SquaredLoss.from_data(X, Y), ln.SquaredLoss.whitened(Y[:, : widths[0]]), ln.LpLoss(X, Y, p=4))
    for loss in losses:
        Ws = ln.init.gaussian(widths, scale=0.4, seed=4)
        op = _fastpaths.LeanHVP(loss, Ws, residual)
        v = rng.standard_normal(op.P)
        Vs = ln.unflatten(v, widths)
        p = op.parts
        dP = lp.pushforward_prefixes(p, Vs, np)
        dS = lp.pushforward_suffixes(p, Vs, np)
        D = loss.hvp(p.prefix[-1], dP[-1])
        ref = []
        for j in range(1, len(Vs) + 1):
            h = lp._mm(lp._mm(op.St[j], D, np), op.Pt[j - 1], np)
            if dS[j] is not None:
                h = h + dS[j].mT @ op.GPt[j - 1]
            if dP[j - 1] is not None:
                h = h + op.StG[j] @ dP[j - 1].mT
            ref.append(h)
        np.testing.assert_array_equal(op.matvec(v), np.concatenate([h.reshape(-1) for h in ref]))
        assert op.n_calls == 1
