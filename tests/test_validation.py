"""Bad input at the public edge: each case raises ValueError and the message names the argument (issue 2, item 7)."""

import numpy as np
import pytest

import linnet as ln
from linnet._backend import from_host, get_namespace
from linnet.linalg import e2e_velocity, preconditioner

W2 = np.ones((2, 2))
WHITE = ln.SquaredLoss.whitened(np.eye(2))
X, Y = np.ones((2, 3)), np.ones((1, 3))

# (id, thunk, regex that the message must contain: the argument's name in backticks where there is one)
CASES = [
    # layers
    ("no layers", lambda: ln.loss(WHITE, ()), r"`Ws` must have at least 1 layer, got 0"),
    ("layers not a tuple", lambda: ln.loss(WHITE, W2), r"`Ws` must be a tuple or list"),
    ("layers not arrays", lambda: ln.loss(WHITE, ([[1.0, 0.0], [0.0, 1.0]],)), r"`Ws`"),
    ("layer not a matrix", lambda: ln.loss(WHITE, (np.ones(2),)), r"`Ws\[0\]` \(layer 1\) must have shape"),
    ("mismatched widths", lambda: ln.loss(WHITE, (np.ones((3, 2)), np.ones((2, 2)))), r"`Ws`: mismatched widths"),
    ("int weights", lambda: ln.loss(WHITE, (np.ones((2, 2), dtype=int),)), r"`Ws` must have dtype float32 or float64"),
    ("bool weights", lambda: ln.grad(WHITE, (np.ones((2, 2), dtype=bool),)), r"`Ws` must have dtype"),
    ("complex weights", lambda: ln.hvp(WHITE, (W2 + 0j,), (W2 + 0j,)), r"`Ws` must have dtype"),
    ("mixed float32/float64", lambda: ln.grad(WHITE, (W2, W2.astype(np.float32))), r"`Ws` must share one dtype"),
    ("mixed namespaces", lambda: ln.loss(WHITE, (W2, from_host(W2, get_namespace("array_api_strict")))), r"`Ws`"),
    ("NaN weights", lambda: ln.loss(WHITE, (W2 * np.nan,)), r"`Ws\[0\]` must be finite"),
    ("inf weights", lambda: ln.hessian(WHITE, (W2, W2 * np.inf)), r"`Ws\[1\]` must be finite"),
    ("NaN weights e2e", lambda: ln.end_to_end((W2 * np.nan,)), r"`Ws\[0\]` must be finite"),
    (
        "residual non-square",
        lambda: ln.loss(ln.SquaredLoss.whitened(np.ones((2, 3))), (np.ones((2, 3)),), residual=True),
        r"residual nets need square layers: layer 1",
    ),
    # directions
    ("directions wrong count", lambda: ln.hvp(WHITE, (W2,), (W2, W2)), r"`Vs` must be a tuple of 1 arrays"),
    ("directions not a tuple", lambda: ln.hvp(WHITE, (W2,), W2), r"`Vs`"),
    ("directions wrong shape", lambda: ln.hvp(WHITE, (W2,), (np.ones((2, 3)),)), r"`Vs\[0\]` must have shape"),
    (
        "directions wrong dtype",
        lambda: ln.gauss_newton_hvp(WHITE, (W2,), (W2.astype(np.float32),)),
        r"`Vs\[0\]` must have the dtype",
    ),
    ("directions NaN", lambda: ln.hvp(WHITE, (W2,), (W2 * np.nan,)), r"`Vs\[0\]` must be finite"),
    # losses
    ("loss not a Loss", lambda: ln.loss(lambda W: 0.0, (W2,)), r"`loss` must be a linnet loss"),
    ("loss/weights shape mismatch", lambda: ln.loss(WHITE, (np.ones((3, 2)),)), r"\(3, 2\).*expects \(2, 2\)"),
    ("X NaN", lambda: ln.SquaredLoss.from_data(X * np.nan, Y), r"`X` must be finite"),
    ("Y inf", lambda: ln.SquaredLoss.from_data(X, Y * np.inf), r"`Y` must be finite"),
    (
        "X, Y sample counts",
        lambda: ln.SquaredLoss.from_data(X, np.ones((1, 4))),
        r"`X` and `Y` must have the same number of samples",
    ),
    ("X, Y dtypes", lambda: ln.SquaredLoss.from_data(X, Y.astype(np.float32)), r"`X` and `Y` must share a dtype"),
    ("X a vector", lambda: ln.SquaredLoss.from_data(np.ones(3), Y), r"`X` must have at least 2 dimensions"),
    ("X int", lambda: ln.SquaredLoss.from_data(X.astype(int), Y), r"`X` must have a real floating dtype"),
    ("X None", lambda: ln.SquaredLoss.from_data(None, Y), r"`X` must be an array"),
    ("Phi NaN", lambda: ln.SquaredLoss.whitened(W2 * np.nan), r"`Phi` must be finite"),
    (
        "Sxx not symmetric",
        lambda: ln.SquaredLoss.population(np.array([[1.0, 2.0], [0.0, 1.0]]), np.ones((1, 2)), np.ones((1, 1))),
        r"`Sxx` must be symmetric",
    ),
    (
        "population shapes",
        lambda: ln.SquaredLoss.population(np.eye(2), np.ones((1, 3)), np.ones((1, 1))),
        r"Sxx \(d0, d0\), Syx \(dN, d0\)",
    ),
    (
        "Syy NaN",
        lambda: ln.SquaredLoss.population(np.eye(2), np.ones((1, 2)), np.ones((1, 1)) * np.nan),
        r"`Syy` must be finite",
    ),
    ("p < 2", lambda: ln.LpLoss(X, Y, p=1.5), r"`p` must be a finite number >= 2"),
    ("p = 1", lambda: ln.LpLoss(X, Y, p=1), r"`p`"),
    ("p NaN", lambda: ln.LpLoss(X, Y, p=float("nan")), r"`p`"),
    ("p inf", lambda: ln.LpLoss(X, Y, p=float("inf")), r"`p`"),
    ("p not a number", lambda: ln.LpLoss(X, Y, p="four"), r"`p` must be a real number"),
    ("Lp X NaN", lambda: ln.LpLoss(X * np.nan, Y), r"`X` must be finite"),
    ("Lp sample counts", lambda: ln.LpLoss(X, np.ones((1, 4))), r"`X` and `Y`"),
    ("Huber delta 0", lambda: ln.HuberLoss(X, Y, delta=0.0), r"`delta` must be finite and > 0"),
    ("Huber delta -1", lambda: ln.HuberLoss(X, Y, delta=-1.0), r"`delta`"),
    ("callable value", lambda: ln.CallableLoss(1, abs, abs, shape=(1, 1)), r"`value` must be callable"),
    ("callable shape", lambda: ln.CallableLoss(abs, abs, abs, shape=(1,)), r"`shape` must be \(d_N, d_0\)"),
    # initializations
    ("seed negative", lambda: ln.init.gaussian((2, 2), seed=-1), r"`seed`"),
    ("seed string", lambda: ln.init.orthogonal((2, 2), seed="a"), r"`seed`"),
    ("seed float", lambda: ln.init.gaussian((2, 2), seed=1.5), r"`seed`"),
    ("widths too short", lambda: ln.init.gaussian((3,)), r"`widths` must have length >= 2, got \(3,\)"),
    ("widths an int", lambda: ln.init.zeros(3), r"`widths` must be a sequence"),
    ("widths None", lambda: ln.init.identity(None), r"`widths`"),
    ("widths zero", lambda: ln.init.gaussian((2, 0)), r"`widths` must hold positive ints"),
    ("widths negative", lambda: ln.init.orthogonal((2, -1)), r"`widths`"),
    ("widths float", lambda: ln.init.gaussian((2, 2.5)), r"`widths`"),
    ("widths bool", lambda: ln.init.gaussian((2, True)), r"`widths`"),
    ("widths string", lambda: ln.init.gaussian("ab"), r"`widths`"),
    ("batch zero", lambda: ln.init.gaussian((2, 2), batch=(0,)), r"`batch` must hold positive ints"),
    ("batch negative", lambda: ln.init.zeros((2, 2), batch=-1), r"`batch`"),
    ("batch None entry", lambda: ln.init.gaussian((2, 2), batch=(None,)), r"`batch`"),
    ("scale negative", lambda: ln.init.gaussian((2, 2), -1.0), r"`scale` must be finite and >= 0"),
    ("scale NaN", lambda: ln.init.orthogonal((2, 2), float("nan")), r"`scale`"),
    ("dtype float16", lambda: ln.init.gaussian((2, 2), dtype="float16"), r"`dtype`"),
    ("dtype int", lambda: ln.init.zeros((2, 2), dtype=int), r"`dtype`"),
    ("unknown backend", lambda: ln.init.gaussian((2, 2), xp="torch"), r"`xp` must be one of"),
    ("backend not a namespace", lambda: ln.init.zeros((2, 2), xp=3), r"`xp`"),
    ("balanced A shape", lambda: ln.init.balanced(np.ones((2, 3)), (2, 2, 2)), r"`A` must have shape \(\.\.\., 2, 2\)"),
    ("balanced A NaN", lambda: ln.init.balanced(W2 * np.nan, (2, 2, 2)), r"`A` must be finite"),
    (
        "balanced A int",
        lambda: ln.init.balanced(np.ones((2, 2), dtype=int), (2, 2, 2)),
        r"`A` must have a real floating dtype",
    ),
    ("balanced narrow", lambda: ln.init.balanced(np.eye(2), (2, 1, 2)), r"`widths`"),
    (
        "decoupled strengths",
        lambda: ln.init.decoupled(np.eye(2), np.eye(2), np.array([-1.0, 1.0]), (2, 2, 2)),
        r"`strengths` must be >= 0",
    ),
    ("decoupled U shape", lambda: ln.init.decoupled(np.eye(3), np.eye(2), np.ones(2), (2, 2, 2)), r"`U`"),
    ("decoupled narrow", lambda: ln.init.decoupled(np.eye(2), np.eye(2), np.ones(2), (2, 1, 2)), r"hidden width"),
    # parameter vectors and linalg
    ("theta length", lambda: ln.unflatten(np.ones(5), (2, 2)), r"`theta` must have last dimension 4"),
    ("flatten mismatched", lambda: ln.flatten((np.ones((3, 2)), np.ones((2, 2)))), r"`Ws`: mismatched widths"),
    ("e2e velocity depth 0", lambda: e2e_velocity(np.eye(2), np.eye(2), 0), r"`depth` must be >= 1"),
]


@pytest.mark.parametrize("thunk, pattern", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_raises_value_error_naming_the_argument(thunk, pattern):
    """The call raises ValueError and its message matches the pattern (the argument's name and what was expected)."""
    with pytest.raises(ValueError, match=pattern):
        thunk()


def test_bad_input_on_array_api_strict():
    """The same checks hold on the strict backend: NaN, wrong dtype and mismatched widths."""
    xp = get_namespace("array_api_strict")
    W = from_host(W2, xp)
    loss = ln.SquaredLoss.whitened(from_host(np.eye(2), xp))
    with pytest.raises(ValueError, match=r"`Ws\[0\]` must be finite"):
        ln.grad(loss, (W * float("nan"),))
    with pytest.raises(ValueError, match=r"`Ws` must share one dtype"):
        ln.grad(loss, (W, from_host(W2, xp, "float32")))
    with pytest.raises(ValueError, match=r"`Ws` must have dtype"):
        ln.grad(loss, (xp.ones((2, 2), dtype=xp.int64),))
    with pytest.raises(ValueError, match="mismatched widths"):
        ln.loss(loss, (from_host(np.ones((3, 2)), xp), W))


# ---- gaps found while writing these tests, since fixed in the engine ------------------------------------------


@pytest.mark.parametrize("batch", ["x", ("a",)])
def test_batch_of_strings_names_batch(batch):
    """A batch of strings raises ValueError naming `batch`."""
    with pytest.raises(ValueError, match="`batch`"):
        ln.init.gaussian((2, 2), batch=batch)


def test_batch_of_floats_is_rejected():
    """A non-integer batch size raises ValueError naming `batch`."""
    with pytest.raises(ValueError, match="`batch`"):
        ln.init.gaussian((2, 2), batch=(2.5,))


def test_preconditioner_depth_zero():
    """preconditioner(W, 0) raises ValueError naming `depth`."""
    with pytest.raises(ValueError, match="`depth`"):
        preconditioner(np.eye(2), 0)


def test_loss_shape_mismatch_names_the_arguments():
    """A loss whose (d_N, d_0) differs from the net's names `loss` and `Ws`."""
    with pytest.raises(ValueError, match="`loss`.*`Ws`|`Ws`.*`loss`"):
        ln.loss(WHITE, (np.ones((3, 2)),))


def test_batch_shapes_that_do_not_broadcast_name_the_arguments():
    """The batch-mismatch error names `Ws` (or `loss`) and both batch shapes."""
    with pytest.raises(ValueError, match="`Ws`|`loss`"):
        ln.loss(ln.SquaredLoss.whitened(np.ones((3, 2, 2))), (np.ones((4, 2, 2)),))


# ---- edge classes of the "every input checked at the edge" pass ------------------------------------------------

STRICT = get_namespace("array_api_strict")
W3a, W3b = np.ones((3, 2, 2)), np.ones((4, 2, 2))
GAUSS = ln.init.gaussian((2, 2, 2), scale=0.5, seed=0)
SQ_NO_HVP = ln.CallableLoss(lambda W: 0.5 * np.sum(W * W, axis=(-2, -1)), lambda W: W, None, shape=(2, 2))

EDGE_CASES = [
    # population statistics (silently wrong before: value and gradient disagreed, or the loss was negative)
    (
        "Syx outside the row space of Sxx",
        lambda: ln.SquaredLoss.population(np.diag([1.0, 1.0, 0.0, 0.0]), np.ones((4, 4)), 10 * np.eye(4)),
        r"`Syy`, `Syx`, `Sxx` must form a positive semi-definite|`Syx` must lie in the row space",
    ),
    (
        "Syy not PSD",
        lambda: ln.SquaredLoss.population(np.eye(2), np.zeros((2, 2)), -np.eye(2)),
        r"positive semi-definite joint second moment.*`Syy`",
    ),
    ("joint not PSD", lambda: ln.SquaredLoss.population(np.eye(2), 5 * np.eye(2), np.eye(2)), r"`Syx`"),
    # empty and zero sizes
    ("Lp zero samples", lambda: ln.LpLoss(np.ones((2, 0)), np.ones((1, 0))), r"`X` must not be empty"),
    ("Huber zero samples", lambda: ln.HuberLoss(np.ones((2, 0)), np.ones((1, 0))), r"`X` must not be empty"),
    ("squared zero samples", lambda: ln.SquaredLoss.from_data(np.ones((2, 0)), np.ones((1, 0))), r"`X`"),
    ("zero-width layer hessian", lambda: ln.hessian(WHITE, (np.ones((0, 2)), np.ones((2, 0)))), r"`Ws\[0\]`.*>= 1"),
    ("zero-width layer gd", lambda: ln.train.gd(WHITE, (np.ones((0, 2)), np.ones((2, 0))), lr=0.1, steps=2), r"`Ws"),
    ("zero batch", lambda: ln.loss(WHITE, (np.ones((0, 2, 2)),)), r"`Ws\[0\]`"),
    # Python types and complex numbers
    ("complex lr", lambda: ln.train.gd(WHITE, GAUSS, lr=0.1 + 1j, steps=2), r"`lr` must be a real"),
    ("complex lr array", lambda: ln.train.gd(WHITE, GAUSS, lr=np.array([0.1 + 0j]), steps=2), r"`lr`"),
    ("complex saxe s", lambda: ln.theory.saxe_mode(1.0, np.array([1 + 1j]), 0.1), r"`s` must be a real"),
    (
        "residual 'False'",
        lambda: ln.train.gd(WHITE, GAUSS, lr=0.1, steps=2, residual="False"),
        r"`residual` must be a bool",
    ),
    ("residual 'no'", lambda: ln.loss(WHITE, GAUSS, residual="no"), r"`residual` must be a bool"),
    ("residual 1", lambda: ln.end_to_end(GAUSS, residual=1), r"`residual` must be a bool"),
    ("callable shape=3", lambda: ln.CallableLoss(abs, abs, abs, shape=3), r"`shape` must be \(d_N, d_0\)"),
    ("unflatten float width", lambda: ln.unflatten(np.ones(9), (2.9, 3)), r"`widths` must hold positive ints"),
    ("unflatten negative width", lambda: ln.unflatten(np.ones(6), (-2, 3)), r"`widths`"),
    ("unflatten NaN", lambda: ln.unflatten(np.full(4, np.nan), (2, 2)), r"`theta` must be finite"),
    # non-finite values
    (
        "decoupled NaN strengths",
        lambda: ln.init.decoupled(np.eye(2), np.eye(2), np.array([np.nan, 1.0]), (2, 2, 2)),
        r"`strengths` must be finite",
    ),
    (
        "decoupled U not orthonormal",
        lambda: ln.init.decoupled(2 * np.eye(2), np.eye(2), np.ones(2), (2, 2, 2)),
        r"`U` must have orthonormal columns",
    ),
    ("symmetry_direction NaN", lambda: ln.landscape.symmetry_direction(GAUSS, 1, np.full((2, 2), np.nan)), r"`A`"),
    # found by the fuzzing: scipy's NaN for a huge noncentrality; theory scalars whose shapes do not broadcast
    ("margin_probability NaN", lambda: ln.theory.margin_probability(204396.0, 1.0, 2), r"`phi_norm` / `s` too large"),
    ("bhl_mode_step shapes", lambda: ln.theory.bhl_mode_step([0.0, 0.0], [0.0, 0.0, 1.0], 1.0, 3), r"`theta`, `lam`"),
    # batch shapes that do not broadcast
    ("end_to_end batches", lambda: ln.end_to_end((W3a, W3b)), r"batch shapes in `Ws` must broadcast"),
    ("gd batches", lambda: ln.train.gd(WHITE, (W3a, W3b), lr=0.1, steps=2), r"`Ws`"),
    ("classify batches", lambda: ln.landscape.classify(WHITE, (W3a, W3b)), r"`Ws`"),
    ("balancedness batches", lambda: ln.theory.balancedness((W3a, W3b)), r"`Ws`"),
    ("hvp direction batch", lambda: ln.hvp(WHITE, (W3a,), (W3b,)), r"`Vs` and `Ws`"),
    ("X, Y batches", lambda: ln.SquaredLoss.from_data(np.ones((3, 2, 4)), np.ones((2, 1, 4))), r"`X` and `Y`"),
    ("Lp X, Y batches", lambda: ln.LpLoss(np.ones((3, 2, 4)), np.ones((2, 1, 4))), r"`X` and `Y`"),
    ("Huber X, Y batches", lambda: ln.HuberLoss(np.ones((3, 2, 4)), np.ones((2, 1, 4))), r"`X` and `Y`"),
    # namespaces
    ("numpy loss, strict weights", lambda: ln.loss(WHITE, (from_host(W2, STRICT),)), r"`Ws` must come from.*`loss`"),
    ("strict X, numpy Y", lambda: ln.SquaredLoss.from_data(from_host(X, STRICT), Y), r"`Y` must come from.*`X`"),
    # dtypes
    ("float16 X", lambda: ln.SquaredLoss.from_data(X.astype(np.float16), Y.astype(np.float16)), r"`X`.*float16"),
    ("float16 linalg", lambda: preconditioner(W2.astype(np.float16), 2), r"`W`.*float16"),
    ("1-D linalg", lambda: ln.linalg.preconditioner_eigenvalues(np.ones(2), 2), r"`W` must have at least 2"),
    # CallableLoss callbacks
    (
        "callable value a float",
        lambda: ln.loss(ln.CallableLoss(lambda W: 1.0, lambda W: W, None, shape=(2, 2)), (W2,)),
        r"`value` callback.*must return an array",
    ),
    (
        "callable grad wrong shape",
        lambda: ln.grad(
            ln.CallableLoss(lambda W: np.sum(W, axis=(-2, -1)), lambda W: np.ones(3), None, shape=(2, 2)), (W2,)
        ),
        r"`grad` callback.*shape \(2, 2\)",
    ),
    ("callable without hvp in hvp", lambda: ln.hvp(SQ_NO_HVP, (W2,), (W2,)), r"`loss` is a CallableLoss without `hvp`"),
    (
        "sgd callable",
        lambda: ln.train.sgd(SQ_NO_HVP, (W2,), lr=0.1, steps=2, batch_size=1),
        r"`loss`.*train it with gd",
    ),
    # messages that named the wrong argument or repeated themselves
    (
        "end_to_end_gd names We0 once",
        lambda: ln.train.end_to_end_gd(WHITE, np.ones((3, 2)), depth=2, lr=0.1, steps=2),
        r"^`loss` and `We0` disagree: the nets' end-to-end matrix",
    ),
]


@pytest.mark.parametrize("thunk, pattern", [c[1:] for c in EDGE_CASES], ids=[c[0] for c in EDGE_CASES])
def test_edge_case_raises_from_linnet_naming_the_argument(thunk, pattern):
    """ValueError/TypeError whose message matches, raised by linnet itself (last traceback frame inside linnet)."""
    with pytest.raises((ValueError, TypeError), match=pattern) as info:
        thunk()
    assert "linnet" in info.traceback[-1].path.parts, info.traceback[-1].path


def test_accepted_inputs_that_used_to_fail():
    """Big-endian float64, np.matrix layers, NumPy integer widths, lists of strengths: accepted, same numbers."""
    ref = float(ln.loss(WHITE, (W2 * 0.5,)))
    assert float(ln.loss(WHITE, ((W2 * 0.5).astype(">f8"),))) == ref
    with pytest.warns(PendingDeprecationWarning):  # NumPy's own warning on building a matrix
        mat = np.matrix(W2 * 0.5)
    assert float(ln.loss(WHITE, (mat,))) == ref
    a = ln.init.gaussian(np.array([2, 3, 2]), seed=0)
    b = ln.init.gaussian((2, 3, 2), seed=0)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    c = ln.init.decoupled(np.eye(2), np.eye(2), [1.0, 4.0], (2, 2, 2))
    d = ln.init.decoupled(np.eye(2), np.eye(2), np.array([1.0, 4.0]), (2, 2, 2))
    assert all(np.array_equal(x, y) for x, y in zip(c, d))
    assert np.array_equal(
        ln.theory.saxe_mode([0.0, 1.0], [2.0, 2.0], 0.1), ln.theory.saxe_mode(np.array([0.0, 1.0]), 2.0, 0.1)
    )


def test_population_accepts_true_covariances_with_singular_sxx():
    """Positive control of the consistency check: statistics of data whose inputs span 2 of 4 dimensions pass,
    in float64 and float32, and give the loss of the data (the negative controls are in EDGE_CASES)."""
    rng = np.random.default_rng(0)
    B = rng.standard_normal((4, 2))
    Xd = B @ rng.standard_normal((2, 50))  # rank 2 in R^4: Sxx singular
    Yd = rng.standard_normal((3, 4)) @ Xd + 0.1 * rng.standard_normal((3, 50))
    W = rng.standard_normal((3, 4))
    for dt in (np.float64, np.float32):
        x, y = Xd.astype(dt), Yd.astype(dt)
        m = x.shape[1]
        pop = ln.SquaredLoss.population(x @ x.T / m, y @ x.T / m, y @ y.T / m)
        ref = ln.SquaredLoss.from_data(x, y)
        tol = 1e3 * np.finfo(dt).eps * float(ref.value(W.astype(dt)))
        assert abs(float(pop.value(W.astype(dt))) - float(ref.value(W.astype(dt)))) <= tol


def test_gradient_flow_max_steps_is_not_diverged():
    """A flow that runs out of steps has status max_steps and diverged_at -1 (as Trajectory documents)."""
    run = ln.train.gradient_flow(WHITE, GAUSS, t_final=50.0, max_steps=2)
    assert str(run.status_names) == "max_steps" and int(run.diverged_at) == -1


def test_callable_loss_hvp_optional_for_first_order_use():
    """Without hvp a CallableLoss still trains with gd (same numbers as with it) and gives gradients."""
    with_hvp = ln.CallableLoss(lambda W: 0.5 * np.sum(W * W, axis=(-2, -1)), lambda W: W, lambda W, D: D, shape=(2, 2))
    a = ln.train.gd(SQ_NO_HVP, GAUSS, lr=0.1, steps=5)
    b = ln.train.gd(with_hvp, GAUSS, lr=0.1, steps=5)
    assert np.array_equal(np.asarray(a.loss), np.asarray(b.loss))
