r"""Diagonal (elementwise) linear networks: the Hadamard product map and its calculus.

A diagonal net of depth :math:`N` has layers :math:`w_1,\dots,w_N` of one shape :math:`(d_N, d_0)` and the
end-to-end matrix

.. math::

    W = w_N \odot \cdots \odot w_1 ,\qquad L(w) = \ell(W),

so each entry of :math:`W` is a scalar deep net of its own (THEOREMS2.md §20: Woodworth et al.'s model; a
vector :math:`\beta` is the case :math:`d_N = 1`; a diagonal matrix factorization in a fixed basis is the case
of §16a). With prefixes :math:`p_j = w_j\odot\cdots\odot w_1` and suffixes :math:`s_j = w_N\odot\cdots\odot w_{j+1}`
(``None`` standing for the all-ones array), and :math:`c_j = s_j \odot p_{j-1}` the product of all layers but
:math:`j`:

.. math::

    \frac{\partial L}{\partial w_j} = \nabla\ell(W)\odot c_j, \qquad
    (\nabla^2 L[V])_j = \nabla^2\ell(W)[\delta W]\odot c_j + \nabla\ell(W)\odot\dot c_j,
    \qquad \delta W = \sum_k V_k\odot c_k,

with :math:`\dot c_j = \dot s_j\odot p_{j-1} + s_j\odot\dot p_{j-1}`, :math:`\dot p_j = \dot p_{j-1}\odot w_j + p_{j-1}\odot V_j`,
:math:`\dot s_{j} = \dot s_{j+1}\odot w_{j+1} + s_{j+1}\odot V_{j+1}`: :math:`O(N)` elementwise products, no
division by a layer (so zeros are fine). The losses are those of the dense map (:mod:`linnet.losses`).

Woodworth et al.'s two-tower model :math:`\beta = w_+^{D} - w_-^{D}` (Woodworth, Gunasekar, Lee, Moroshko,
Savarese, Golan, Soudry & Srebro, `Kernel and Rich Regimes in Overparametrized Models
<https://arxiv.org/abs/2002.09277>`_, COLT 2020) is this map on the lifted problem :math:`[X; -X]` with
:math:`\beta = W_{:, :d} - W_{:, d:}` (:func:`lift`). With equal layers at init the untied layers stay equal, and
untied flow is the tied flow :math:`\dot w = -D w^{D-1}\odot g` slowed by the factor :math:`D` (same limit).

Training: :func:`gd`, :func:`momentum` and :func:`sgd` run this map on the one descent driver of
:mod:`linnet.train` (:func:`linnet.train.driver.descend`, the loop of :func:`linnet.train.gd`) with
:func:`value_and_grad`'s formulas as its evaluation (:func:`sgd` on the minibatches of :func:`linnet.train.sgd`);
:func:`flow` integrates its gradient flow with :mod:`linnet.ivp`.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

from ._backend import namespace, to_numpy
from ._validate import (
    as_native,
    broadcast_batch,
    check_bool,
    check_finite,
    check_int,
    check_loss,
    check_loss_against,
    check_matrix,
    check_positive,
    check_problem_batch,
    check_same_namespace,
    dtype_name,
)
from .train import driver as _driver
from .train import trajectory as _traj
from .train._minibatch import _Minibatches
from .train.trajectory import _quiet

__all__ = [
    "check_layers",
    "end_to_end",
    "loss",
    "grad",
    "value_and_grad",
    "hvp",
    "hessian",
    "lift",
    "GDRun",
    "RUNNING",
    "CONVERGED",
    "DIVERGED",
    "gd",
    "momentum",
    "sgd",
    "flow",
]

Array = Any


def check_layers(Ws: Any, *, name: str = "Ws"):
    """Validate diagonal layers: a tuple/list of >= 1 float arrays of one trailing shape ``(d_N, d_0)``.

    Returns ``(tuple(Ws), xp)``; raises ``ValueError`` naming ``name`` otherwise.
    """
    if not isinstance(Ws, (tuple, list)):
        raise ValueError(f"`{name}` must be a tuple or list of arrays (one per layer), got {type(Ws).__name__}")
    if len(Ws) < 1:
        raise ValueError(f"`{name}` must have at least 1 layer, got 0")
    Ws = tuple(as_native(W) for W in Ws)
    try:
        xp = namespace(*Ws)
    except TypeError as exc:
        raise ValueError(f"`{name}` must hold arrays of one array-API namespace: {exc}") from exc
    shape, dt = tuple(Ws[0].shape[-2:]) if Ws[0].ndim >= 2 else None, Ws[0].dtype
    for j, W in enumerate(Ws, start=1):
        if W.ndim < 2:
            raise ValueError(f"`{name}[{j - 1}]` (layer {j}) must have shape (..., d_N, d_0), got {tuple(W.shape)}")
        if tuple(W.shape[-2:]) != shape:
            raise ValueError(
                f"`{name}`: diagonal layers must share one shape (d_N, d_0): layer 1 is {shape}, "
                f"layer {j} is {tuple(W.shape[-2:])}"
            )
        if W.dtype != dt:
            raise ValueError(f"`{name}` must share one dtype: layer 1 is {dt}, layer {j} is {W.dtype}")
    try:
        dtype_name(dt)
    except ValueError:
        raise ValueError(f"`{name}` must have dtype float32 or float64, got {dt}") from None
    for j, W in enumerate(Ws):
        if 0 in tuple(W.shape):
            raise ValueError(f"`{name}[{j}]` must have every dimension >= 1, got shape {tuple(W.shape)}")
        check_finite(W, f"{name}[{j}]", xp=xp)
    broadcast_batch(*(tuple(W.shape[:-2]) for W in Ws), what=f"the layers' batch shapes in `{name}`")
    return Ws, xp


def _mul(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return a * b


def _partials(Ws):
    """Prefixes ``p[0..N]`` (``p[0] = None``) and suffixes ``s[0..N]`` (``s[N] = None``)."""
    N = len(Ws)
    p = [None] * (N + 1)
    for j in range(1, N + 1):
        p[j] = _mul(Ws[j - 1], p[j - 1])
    s = [None] * (N + 1)
    for j in range(N - 1, -1, -1):
        s[j] = _mul(Ws[j], s[j + 1])
    return p, s


def _prepare(loss_fn, Ws):
    loss_fn = check_loss(loss_fn)
    Ws, xp = check_layers(Ws)
    p, s = _partials(Ws)
    loss_fn = check_loss_against(loss_fn, p[-1])
    check_problem_batch(loss_fn, p[-1])
    return loss_fn, Ws, xp, p, s


def end_to_end(Ws: Sequence[Array]) -> Array:
    r"""The end-to-end matrix :math:`w_N\odot\cdots\odot w_1`, shape ``(..., d_N, d_0)`` (dtype kept).

    Examples
    --------
    >>> import numpy as np, linnet as ln
    >>> ln.diagonal.end_to_end((np.array([[1.0, 2.0]]), np.array([[3.0, -1.0]])))
    array([[ 3., -2.]])
    """
    Ws, _ = check_layers(Ws)
    return _partials(Ws)[0][-1]


def loss(loss: Any, Ws: Sequence[Array]) -> Array:
    """The deep loss :math:`\\ell(w_N\\odot\\cdots\\odot w_1)`, one value per net: shape ``(...)``."""
    loss_fn, Ws, xp, p, _ = _prepare(loss, Ws)
    return loss_fn.value(p[-1])


def _pullback(G, p, s, xp, like):
    out = []
    for j in range(1, len(p)):
        c = _mul(s[j], p[j - 1])
        g = G if c is None else G * c
        out.append(
            xp.broadcast_to(
                g, broadcast_batch(tuple(g.shape[:-2]), tuple(like[j - 1].shape[:-2])) + tuple(g.shape[-2:])
            )
        )
    return tuple(out)


def value_and_grad(loss: Any, Ws: Sequence[Array]):
    """``(L, grads)``: the loss and the per-layer gradients :math:`\\nabla\\ell(W)\\odot c_j` in one pass."""
    loss_fn, Ws, xp, p, s = _prepare(loss, Ws)
    We = p[-1]
    return loss_fn.value(We), _pullback(loss_fn.grad(We), p, s, xp, Ws)


def grad(loss: Any, Ws: Sequence[Array]) -> tuple:
    r"""Per-layer gradients :math:`\partial L/\partial w_j = \nabla\ell(W)\odot\prod_{k\ne j}w_k`.

    Examples
    --------
    >>> import numpy as np, linnet as ln
    >>> Ws = (np.array([[2.0]]), np.array([[3.0]]))
    >>> [float(g[0, 0]) for g in ln.diagonal.grad(ln.SquaredLoss.whitened(np.array([[1.0]])), Ws)]
    [15.0, 10.0]
    """
    return value_and_grad(loss, Ws)[1]


def _check_direction(Vs, Ws, name="Vs"):
    if not isinstance(Vs, (tuple, list)) or len(Vs) != len(Ws):
        n = len(Vs) if hasattr(Vs, "__len__") else "?"
        raise ValueError(
            f"`{name}` must be a tuple of {len(Ws)} arrays shaped like the layers, got {type(Vs).__name__} of length {n}"
        )
    Vs, _ = check_layers(Vs, name=name)
    check_same_namespace(Vs[0], namespace(Ws[0]), name, "`Ws`")
    if tuple(Vs[0].shape[-2:]) != tuple(Ws[0].shape[-2:]):
        raise ValueError(
            f"`{name}` must have layers of shape (..., {Ws[0].shape[-2]}, {Ws[0].shape[-1]}), got {tuple(Vs[0].shape)}"
        )
    if Vs[0].dtype != Ws[0].dtype:
        raise ValueError(f"`{name}` must have the dtype of the weights ({Ws[0].dtype}), got {Vs[0].dtype}")
    return Vs


def hvp(loss: Any, Ws: Sequence[Array], Vs: Sequence[Array]) -> tuple:
    r"""Exact Hessian-vector product :math:`\nabla^2L(w)[V]` of the diagonal net (formula in the module docstring)."""
    loss_fn, Ws, xp, p, s = _prepare(loss, Ws)
    Vs = _check_direction(Vs, Ws)
    broadcast_batch(
        *(tuple(V.shape[:-2]) for V in Vs),
        *(tuple(W.shape[:-2]) for W in Ws),
        tuple(getattr(loss_fn, "batch_shape", ()) or ()),
        what="the batch shapes of `Vs`, `Ws` and the problem in `loss`",
    )
    N = len(Ws)
    dp = [None] * (N + 1)  # tangents of the prefixes; None = 0
    for j in range(1, N + 1):
        a = None if dp[j - 1] is None else dp[j - 1] * Ws[j - 1]
        b = _mul(Vs[j - 1], p[j - 1])
        dp[j] = b if a is None else a + b
    ds = [None] * (N + 1)
    for j in range(N - 1, -1, -1):
        a = None if ds[j + 1] is None else ds[j + 1] * Ws[j]
        b = _mul(Vs[j], s[j + 1])
        ds[j] = b if a is None else a + b
    We = p[-1]
    G = loss_fn.grad(We)
    gn = _pullback(loss_fn.hvp(We, dp[-1]), p, s, xp, Ws)
    out = []
    for j in range(1, N + 1):
        terms = [
            t
            for t in (
                _mul(ds[j], p[j - 1]) if ds[j] is not None else None,
                _mul(s[j], dp[j - 1]) if dp[j - 1] is not None else None,
            )
            if t is not None
        ]
        if not terms:
            out.append(gn[j - 1])
            continue
        dc = terms[0] if len(terms) == 1 else terms[0] + terms[1]
        out.append(gn[j - 1] + G * dc)
    return tuple(out)


def hessian(loss: Any, Ws: Sequence[Array]) -> Array:
    r"""Dense Hessian, shape ``(..., P, P)``, :math:`P = N d_N d_0`; order: layers 1..N, each row-major.

    Column :math:`k` is the exact HVP with the :math:`k`-th unit vector (all :math:`P` as one batched call);
    symmetrized to remove round-off. For small nets.
    """
    loss_fn, Ws, xp, p, _ = _prepare(loss, Ws)
    N, (r, c) = len(Ws), tuple(Ws[0].shape[-2:])
    n = r * c
    P = N * n
    batch = tuple(loss_fn.value(p[-1]).shape)
    eye = xp.eye(P, dtype=Ws[0].dtype)
    E = xp.reshape(eye, (P,) + (1,) * len(batch) + (P,))
    Vs = tuple(xp.reshape(E[..., j * n : (j + 1) * n], (P,) + (1,) * len(batch) + (r, c)) for j in range(N))
    cols = hvp(loss_fn, Ws, Vs)
    cols = [xp.broadcast_to(h, (P,) + batch + (r, c)) for h in cols]
    H = xp.concat([xp.reshape(h, (P,) + batch + (n,)) for h in cols], axis=-1)
    H = xp.permute_dims(H, tuple(range(1, len(batch) + 1)) + (0, len(batch) + 1))
    return 0.5 * (H + H.mT)


def lift(X: Array) -> Array:
    r"""Woodworth et al.'s two-tower lift: data ``X (..., d, m)`` (samples as columns) becomes ``[X; -X]``.

    A diagonal net with end-to-end row :math:`(u, v)` on the lifted data predicts with :math:`\beta = u - v`, so
    :math:`\beta = w_+^{D} - w_-^{D}` when the layers are :math:`(w_+, w_-)` stacked.
    """
    X, xp = check_matrix(X, "X")
    return xp.concat([X, -X], axis=-2)


RUNNING, CONVERGED, DIVERGED = 0, 1, 2


class GDRun(NamedTuple):
    """Result of :func:`gd`, :func:`momentum` and :func:`sgd`.

    Attributes
    ----------
    weights : tuple of arrays, the final layers (a diverged net keeps its last finite iterate)
    loss : array ``(T, *batch)``, the loss at the recorded steps (0, record_every, ...; frozen nets repeat)
    steps : array ``(*batch)`` int64, per net the step at which it converged or diverged, else the cap
    status : array ``(*batch)`` int8: ``RUNNING`` (0, hit the cap), ``CONVERGED`` (1), ``DIVERGED`` (2)
    history : tuple of arrays ``(T, *batch, d_N, d_0)`` per layer if ``record_weights``, else ``None``
    """

    weights: tuple
    loss: Array
    steps: Array
    status: Array
    history: Any = None


def gd(
    loss: Any,
    Ws: Sequence[Array],
    *,
    lr: Any,
    steps: int,
    ftol: Any = None,
    record_every: int = 1,
    record_weights: bool = False,
) -> GDRun:
    r"""Gradient descent :math:`w_j \leftarrow w_j - \eta\,\partial L/\partial w_j` on a batch of diagonal nets.

    The diagonal map on the training driver of :mod:`linnet.train` (:func:`linnet.train.driver.descend`: the
    update, per-net freezing and divergence test of :func:`linnet.train.gd`), with :func:`value_and_grad`'s
    formulas as its evaluation. ``lr`` and ``ftol`` are scalars or arrays of the nets' batch shape (one per
    net). A net stops (is frozen) when its loss is ``<= ftol`` (``CONVERGED``) or turns non-finite or huge
    (``DIVERGED``, kept at its last finite iterate: the driver's test, :mod:`linnet.train.trajectory`); the
    run ends when no net is running or after ``steps``. Records are taken at steps ``0, record_every, ...`` up
    to the step at which the last net stopped (or ``steps``).
    """
    return _descent(loss, Ws, 0.0, lr, steps, ftol, record_every, record_weights)


def momentum(
    loss: Any,
    Ws: Sequence[Array],
    *,
    lr: Any,
    steps: int,
    beta: float = 0.9,
    ftol: Any = None,
    record_every: int = 1,
    record_weights: bool = False,
) -> GDRun:
    r"""Heavy-ball momentum on a batch of diagonal nets: the driver's heavy ball (as :func:`linnet.train.momentum`),

    .. math:: m_j \leftarrow \beta m_j + \partial L/\partial w_j, \qquad w_j \leftarrow w_j - \eta\, m_j,
       \qquad m_j^{(0)} = 0,

    ``0 <= beta < 1`` (``beta = 0`` is :func:`gd` bit for bit); a diverged net's momentum is reset with it.
    Other arguments and the result as in :func:`gd`.
    """
    try:
        b = float(beta)
    except (TypeError, ValueError):
        raise ValueError(f"`beta` must be a real in [0, 1), got {beta!r}") from None
    if not (0.0 <= b < 1.0):
        raise ValueError(f"`beta` must be a real in [0, 1), got {beta!r}")
    return _descent(loss, Ws, b, lr, steps, ftol, record_every, record_weights)


def sgd(
    loss: Any,
    Ws: Sequence[Array],
    *,
    lr: Any,
    steps: int,
    batch_size: int,
    seed: Any = 0,
    ftol: Any = None,
    record_every: int = 1,
    record_weights: bool = False,
) -> GDRun:
    r"""Minibatch SGD on a batch of diagonal nets: the minibatches of :func:`linnet.train.sgd` on this map,

    .. math:: w_j \leftarrow w_j - \eta\,\nabla\ell_{B_k}(W)\odot\prod_{i\ne j} w_i ,

    with :math:`\ell_{B_k}` the loss of the same kind on the samples :math:`B_k` only (its mean over them,
    :meth:`~linnet.losses.Loss.subsample`). Step :math:`k` draws ``batch_size`` distinct samples :math:`B_k`
    (uniformly, without replacement within the step, independently across steps) on the host from ``seed``, the
    same minibatch for every net of the batch: the draws of :func:`linnet.train.sgd` with the same ``seed`` and
    ``batch_size``. ``seed`` is an int or a ``numpy.random.Generator`` (advanced by the draws, 64 steps at a
    time).

    ``loss`` must carry data: :meth:`SquaredLoss.from_data <linnet.losses.SquaredLoss.from_data>`,
    :class:`~linnet.losses.LpLoss` or :class:`~linnet.losses.HuberLoss`. The recorded loss is the full-data
    loss; ``ftol`` and divergence are judged on the minibatch loss of the step. With ``batch_size = m`` this is
    :func:`gd` up to round-off. Other arguments and the result as in :func:`gd`.

    Examples
    --------
    >>> import numpy as np, linnet as ln
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((3, 40)); Y = np.array([[1.0, -1.0, 0.5]]) @ X
    >>> Ws = (np.full((1, 3), 0.8), np.array([[0.8, -0.8, 0.8]]))
    >>> run = ln.diagonal.sgd(ln.SquaredLoss.from_data(X, Y), Ws, lr=0.05, steps=400, batch_size=8, seed=1)
    >>> bool(run.loss[-1] < 1e-3 * run.loss[0])
    True
    """
    return _descent(loss, Ws, 0.0, lr, steps, ftol, record_every, record_weights, minibatch=(batch_size, seed))


def _descent(loss, Ws, beta: float, lr, steps, ftol, record_every, record_weights, minibatch=None) -> GDRun:
    """:func:`gd` (``beta = 0``), :func:`momentum` and :func:`sgd` (``minibatch = (batch_size, seed)``): arguments
    checked, the driver run, its result converted."""
    Ws, xp = check_layers(Ws)
    loss_fn = check_loss_against(check_loss(loss), Ws[0])
    check_problem_batch(loss_fn, _partials(Ws)[0][-1])
    steps = check_int(steps, "steps", minimum=0)
    record_every = check_int(record_every, "record_every", minimum=1)
    record_weights = check_bool(record_weights, "record_weights")
    dt = Ws[0].dtype
    batch = tuple(loss_fn.value(_partials(Ws)[0][-1]).shape)

    def per_net(v, name, positive):
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            v = check_positive(v, name, allow_zero=not positive)
            return xp.full(batch, v, dtype=dt)
        if (
            not hasattr(v, "shape")
            or isinstance(v, bool)
            or not _real_array_of(v, xp)
            or not bool(xp.all(xp.isfinite(v)))
            or not bool(xp.all(v > 0 if positive else v >= 0))
        ):
            raise ValueError(f"`{name}` must be a finite {'positive' if positive else 'non-negative'} number or array")
        try:
            return xp.broadcast_to(xp.asarray(v, dtype=dt), batch)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"`{name}` must broadcast to the nets' batch shape {batch}, got {tuple(v.shape)}") from exc

    eta = per_net(lr, "lr", True)
    tol = None if ftol is None else per_net(ftol, "ftol", False)
    indices = None if minibatch is None else _Minibatches(loss_fn, *minibatch, xp, check_every=_CHECK_EVERY)

    def value_and_grads(lf, W):  # unvalidated (checked once, above); W has the full batch shape, so no broadcasting
        p, s = _partials(W)
        G = lf.grad(p[-1])
        return lf.value(p[-1]), tuple(_mul(G, _mul(s[j], p[j - 1])) for j in range(1, len(p)))

    if indices is None:
        record_loss = None

        def evaluate(k, W):
            return value_and_grads(loss_fn, W)
    else:

        def evaluate(k, W):  # the step's minibatch loss drives the step
            return value_and_grads(loss_fn.subsample(indices(k)), W)

        def record_loss(W, L):  # the full-data loss is recorded
            return loss_fn.value(_partials(W)[0][-1])

    with _quiet():
        run = _driver.descend(
            xp=xp,
            W0=tuple(xp.broadcast_to(W, batch + tuple(W.shape[-2:])) for W in Ws),
            batch=batch,
            evaluate=evaluate,
            lr=eta,
            lr_shape=batch,
            layer_lr=(1.0,) * len(Ws),
            beta=beta,
            steps=steps,
            gtol=None,
            ftol=tol,
            schedule=list(range(0, steps + 1, record_every)),
            keep_history=bool(record_weights),
            check_every=_CHECK_EVERY,
            record_loss=record_loss,
            check_weights_finite=not loss_fn.finite_value_implies_finite_weights,
        )
    return _gd_run(run, steps, record_every, xp)


def _real_array_of(v, xp) -> bool:
    """Whether ``v`` is a real (integer or floating, not bool) array of the namespace ``xp``."""
    try:
        return namespace(v) is xp and xp.isdtype(v.dtype, ("integral", "real floating"))
    except (TypeError, ValueError):
        return False


#: Steps between the driver's host synchronisations (results do not depend on it).
_CHECK_EVERY = 10


def _gd_run(run, steps: int, record_every: int, xp) -> GDRun:
    """The driver's :class:`~linnet.train.Trajectory` as a :class:`GDRun`: statuses renamed, per-net stop
    steps, and the records at multiples of ``record_every`` up to the step at which the last net stopped."""
    status = xp.where(
        run.status == _traj.DIVERGED,
        xp.asarray(DIVERGED, dtype=xp.int8),
        xp.where(
            run.status == _traj.CONVERGED, xp.asarray(CONVERGED, dtype=xp.int8), xp.asarray(RUNNING, dtype=xp.int8)
        ),
    )
    at = xp.where(run.status == _traj.DIVERGED, run.diverged_at, run.converged_at)
    nsteps = xp.where(status == RUNNING, xp.full(at.shape, steps, dtype=xp.int64), at)
    last = steps if bool(xp.any(status == RUNNING)) else int(xp.max(nsteps))
    keep = [i for i, k in enumerate(to_numpy(run.steps).tolist()) if k % record_every == 0 and k <= last]
    idx = xp.asarray(keep, dtype=xp.int64)
    history = None if run.history is None else tuple(xp.take(h, idx, axis=0) for h in run.history)
    return GDRun(tuple(run.weights), xp.take(run.loss, idx, axis=0), nsteps, status, history)


def flow(
    loss: Any,
    Ws: Sequence[Array],
    *,
    t_max: float,
    t_eval=None,
    ftol=None,
    method="DOP853",
    rtol=1e-10,
    atol=1e-13,
    max_steps=1_000_000,
):
    r"""Gradient flow :math:`\dot w_j = -\partial L/\partial w_j` of a diagonal net by ``scipy.integrate.solve_ivp``.

    The diagonal map's flow trainer (host float64; batched nets integrate as one system). Returns a
    :class:`linnet.ivp.FlowRun`; ``ftol`` stops when the summed loss reaches it. ``method="LSODA"`` for the stiff
    small-init runs; the keywords are those of :func:`linnet.ivp.integrate` (``max_steps`` bounds the run,
    ``status`` says how it ended).
    """
    from . import ivp as _ivp
    from ._backend import get_namespace

    loss_fn = check_loss(loss)
    Ws, xp = check_layers(Ws)
    np_xp = get_namespace("numpy")
    if xp is not np_xp:
        raise ValueError("`Ws` must be NumPy arrays (the flow runs on the host in float64)")
    We = _partials(Ws)[0][-1]
    check_problem_batch(check_loss_against(loss_fn, We), We)
    Ws = _ivp.broadcast_to_problem(loss_fn, Ws, We)
    lf = loss_fn.astype(np_xp.float64)

    def g(W):
        return grad(lf, W)

    def f(W):
        import numpy as np

        return float(np.sum(lf.value(_partials(W)[0][-1])))

    return _ivp.integrate(
        g, f, Ws, t_max=t_max, t_eval=t_eval, ftol=ftol, method=method, rtol=rtol, atol=atol, max_steps=max_steps
    )
