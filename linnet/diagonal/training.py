r"""The trainers of diagonal nets: :func:`gd`, :func:`momentum` and :func:`sgd` on the one descent driver of
:mod:`linnet.train` with the diagonal map's gradients as its evaluation, and :func:`flow` by :mod:`linnet.ivp`
(re-exported by :mod:`linnet.diagonal`).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

from .._backend import namespace, to_numpy
from .._validate import (
    check_bool,
    check_int,
    check_loss,
    check_loss_against,
    check_positive,
    check_problem_batch,
)
from ..train import driver as _driver
from ..train import trajectory as _traj
from ..train._args import _check_beta
from ..train._minibatch import _Minibatches
from ..train.trajectory import _quiet
from .calculus import _mul, _partials, check_layers, grad

__all__ = ["GDRun", "RUNNING", "CONVERGED", "DIVERGED", "gd", "momentum", "sgd", "flow"]

Array = Any


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
    b = _check_beta(beta)
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
    from .. import ivp as _ivp
    from .._backend import get_namespace

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
