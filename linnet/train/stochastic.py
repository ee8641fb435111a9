r"""Minibatch stochastic gradient descent, :func:`sgd`, on the driver of :mod:`linnet.train.descent`.

The minibatch losses come from :meth:`linnet.losses.Loss.subsample` of a loss that carries data
(:meth:`~linnet.losses.SquaredLoss.from_data`, :class:`~linnet.losses.LpLoss`, :class:`~linnet.losses.HuberLoss`);
the indices are drawn on the host with NumPy (:class:`linnet.train._minibatch._Minibatches`, shared with
:func:`linnet.diagonal.sgd`).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from .. import _step
from .._backend import Array
from ..losses import Loss
from ._args import _check_loss, _prepare
from ._minibatch import _Minibatches
from .descent import _check_resume, _descend, _descent_setup
from .trajectory import Trajectory, _quiet

__all__ = ["sgd"]


def sgd(
    loss: Loss,
    Ws: Sequence[Array],
    *,
    lr: Any,
    steps: int,
    batch_size: int,
    seed: Any = 0,
    residual: bool = False,
    gtol: Optional[float] = None,
    ftol: Optional[float] = None,
    record_every: int = 1,
    record_steps: Optional[Sequence[int]] = None,
    keep_history: bool = False,
    check_every: int = 10,
    lr_per_layer: Optional[Sequence[float]] = None,
    resume: Optional[Trajectory] = None,
    observe: Optional[dict] = None,
) -> Trajectory:
    r"""Minibatch stochastic gradient descent.

    Step :math:`k` draws ``batch_size`` distinct samples :math:`B_k` (uniformly, without replacement within the
    step, independently across steps) on the host from ``seed``, the same minibatch for every net of the batch,
    and takes :math:`W_j \leftarrow W_j - \eta c_j\,\partial L_{B_k}/\partial W_j` with :math:`L_{B_k}` the
    loss of the same kind on those samples (its mean over :math:`B_k`), built by
    :meth:`~linnet.losses.Loss.subsample`. The minibatch squared loss is held as its sufficient statistics, so a
    step costs :math:`O(d_0^2 b)` once for all nets.

    ``loss`` must carry data: :meth:`SquaredLoss.from_data`, :class:`LpLoss` or :class:`HuberLoss`. The recorded
    loss is the full-data loss; ``gtol``/``ftol`` and divergence are judged on the minibatch loss and gradient of
    the step. With ``batch_size = m`` this is :func:`gd` up to round-off. Other arguments as in :func:`gd`;
    ``seed`` is an int or a ``numpy.random.Generator`` (advanced by the draws, 64 or more steps at a time).
    ``resume``: continue an ``sgd`` run (``Ws = resume.weights``, same ``batch_size`` and ``check_every``) from
    its generator position, so two chained runs draw the minibatches of one run and equal it bit for bit.
    ``observe`` as in :func:`gd` (observers see the full loss, and the step's minibatch gradient as ``G``).

    Examples
    --------
    >>> import numpy as np, linnet as ln
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((3, 40)); Y = np.array([[1.0, -1.0, 0.5]]) @ X
    >>> Ws = ln.init.gaussian((3, 4, 1), scale=0.3, seed=0)
    >>> run = ln.train.sgd(ln.SquaredLoss.from_data(X, Y), Ws, lr=0.05, steps=400, batch_size=8, seed=1)
    >>> bool(run.loss[-1] < 1e-3 * run.loss[0])
    True
    """
    loss = _check_loss(loss)
    loss_fn, Ws, xp, batch = _prepare(loss, Ws, residual)
    opts = _descent_setup(
        Ws,
        xp,
        batch,
        lr=lr,
        steps=steps,
        gtol=gtol,
        ftol=ftol,
        record_every=record_every,
        record_steps=record_steps,
        keep_history=keep_history,
        check_every=check_every,
        lr_per_layer=lr_per_layer,
    )
    indices = _Minibatches(loss_fn, batch_size, seed, xp, check_every=opts["check_every"])
    residual = bool(residual)
    resume = _check_resume(resume, opts["W0"])
    indices.restore(resume)

    def evaluate(k, W):
        return _step.value_and_grads(loss_fn.subsample(indices(k)), W, residual, xp)

    def evaluate_into(k, W, out, fast_value=False):  # NumPy: gradients into reused buffers (see train.gd)
        return _step.value_and_grads(loss_fn.subsample(indices(k)), W, residual, xp, out=out, fast_value=fast_value)

    def evaluate_fused(k, W, out, update, fast_value=False):  # and the next step's update fused in, in place
        mb = loss_fn.subsample(indices(k))
        return _step.value_and_grads(mb, W, residual, xp, out=out, update=update, fast_value=fast_value)

    def record_loss(W, L):
        return _step.values(loss_fn, W, residual, xp)

    with _quiet():
        run = _descend(
            evaluate=evaluate,
            evaluate_into=evaluate_into,
            evaluate_fused=evaluate_fused,
            beta=0.0,
            record_loss=record_loss,
            check_weights_finite=False,
            resume=resume,
            observe=observe,
            problem=(loss_fn, residual),
            **opts,
        )
    # the generator's position before the chunk of the next step (a continuation starts from it)
    return run._replace(state=run.state | indices.state(run.n_steps))
