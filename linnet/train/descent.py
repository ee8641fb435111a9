r"""Discrete descent on the layers: :func:`gd` and :func:`momentum`, on the driver of :mod:`linnet.train.driver`.

:math:`W_j \leftarrow W_j - \eta c_j\,\partial L/\partial W_j` (THEOREMS.md §1–§2), heavy ball with
:math:`\beta > 0`. The driver :func:`linnet.train.driver.descend` (also used by :func:`linnet.train.sgd` and
:func:`linnet.train.end_to_end_gd`) loops on :func:`linnet._step.value_and_grads`, the hot path shared by every
training loop. Host synchronisation happens only every ``check_every`` steps, to stop early once every net is
converged or diverged; per-net freezing itself is exact at every step (a window in which a net diverged is
replayed with ``xp.where`` roll-back masks), so ``check_every`` changes the cost, never the result.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from .. import _step
from .._backend import Array
from ..losses import Loss
from . import driver  # noqa: F401 - the driver module, for tests that reach into it
from ._args import (
    _broadcast_shapes,
    _broadcast_weights,
    _check_beta,
    _check_ftol,
    _check_int,
    _check_layer_lr,
    _check_lr,
    _check_tol,
    _prepare,
    _record_schedule,
    _with_lr,
)
from .driver import _descend
from .trajectory import Trajectory, _quiet

__all__ = ["gd", "momentum"]


def _descent_setup(
    Ws: tuple,
    xp,
    batch: tuple,
    *,
    lr: Any,
    steps: Any,
    gtol: Any,
    ftol: Any,
    record_every: Any,
    record_steps: Any,
    keep_history: Any,
    check_every: Any,
    lr_per_layer: Any = None,
) -> dict:
    """Check the descent arguments for validated weights ``Ws`` (batch ``batch``); the keyword arguments of
    :func:`_descend` other than ``evaluate``, ``beta`` and its optional ones."""
    lr, lr_shape = _check_lr(lr, xp, Ws[0].dtype)
    steps = _check_int(steps, "steps", minimum=0)
    batch = _broadcast_shapes(batch, *(tuple(W.shape[:-2]) for W in Ws))
    batch = _with_lr(batch, lr_shape)
    return dict(
        xp=xp,
        W0=_broadcast_weights(Ws, batch, xp),
        batch=batch,
        lr=lr,
        lr_shape=lr_shape,
        layer_lr=_check_layer_lr(lr_per_layer, len(Ws)),
        steps=steps,
        gtol=_check_tol(gtol, "gtol"),
        ftol=_check_ftol(ftol),
        schedule=_record_schedule(steps, record_every, record_steps),
        keep_history=bool(keep_history),
        check_every=_check_int(check_every, "check_every", minimum=1),
    )


def _check_resume(resume, Ws) -> Optional[Trajectory]:
    """``resume`` checked: ``None`` or a descent :class:`Trajectory` whose final weights are ``Ws``'s shapes."""
    if resume is None:
        return None
    if not isinstance(resume, Trajectory) or resume.state is None or "threshold" not in resume.state:
        raise ValueError(
            f"`resume` must be the Trajectory of a descent run (gd, momentum, sgd), got {type(resume).__name__}"
        )
    if [tuple(w.shape) for w in resume.weights] != [tuple(w.shape) for w in Ws]:
        raise ValueError(
            "`resume` must end at weights shaped like `Ws` (pass its `weights`), got "
            f"{[tuple(w.shape) for w in resume.weights]} and {[tuple(w.shape) for w in Ws]}"
        )
    return resume


def _layer_descent(
    loss: Loss, Ws: Sequence[Array], *, beta: float, residual: bool, resume=None, observe=None, **kw
) -> Trajectory:
    """Full-batch descent on the layers (heavy ball if ``beta > 0``): the whole of :func:`gd` and :func:`momentum`."""
    loss_fn, Ws, xp, batch = _prepare(loss, Ws, residual)
    opts = _descent_setup(Ws, xp, batch, **kw)
    opts["resume"] = _check_resume(resume, opts["W0"])
    opts["observe"], opts["problem"] = observe, (loss_fn, bool(residual))
    residual = bool(residual)

    step = _step.prepare(loss_fn, opts["W0"], residual, xp)  # the path and its constants, chosen once

    def evaluate(k, W):
        return step(W)

    def evaluate_into(k, W, out, fast_value=False):  # NumPy: gradients written into the buffers `out` if possible
        return step(W, out, None, fast_value)

    def evaluate_fused(k, W, out, update, fast_value=False):  # NumPy: and the next gradient step fused in, in place
        return step(W, out, update, fast_value)

    def evaluate_fused_run(k, W, out, update, n, fast_value, limit):  # n of those at once, where the kernel can
        return step.run(W, out, update, n, fast_value, limit)

    with _quiet():
        return _descend(
            evaluate=evaluate,
            evaluate_into=evaluate_into,
            evaluate_fused=evaluate_fused,
            evaluate_fused_run=evaluate_fused_run if hasattr(step, "run") else None,
            beta=beta,
            check_weights_finite=not loss_fn.finite_value_implies_finite_weights,
            **opts,
        )


# ---------------------------------------------------------------------------------------------------------------
# public descent methods
# ---------------------------------------------------------------------------------------------------------------


def gd(
    loss: Loss,
    Ws: Sequence[Array],
    *,
    lr: Any,
    steps: int,
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
    r"""Full-batch gradient descent on the layers of a batch of deep linear nets.

    .. math:: W_j^{(k+1)} = W_j^{(k)} - \eta\,c_j\,\frac{\partial L}{\partial W_j}\big(W^{(k)}\big),
       \qquad \frac{\partial L}{\partial W_j} = W_{j+1:N}^\top\,\nabla\ell(W_{1:N})\,W_{1:j-1}^\top

    (THEOREMS.md §1), with :math:`c_j = 1` unless ``lr_per_layer`` is given. With one step size for every layer
    the balancedness gaps :math:`D_j = W_{j+1}^\top W_{j+1} - W_jW_j^\top` drift by exactly
    :math:`\eta^2(G_{j+1}^\top G_{j+1} - G_jG_j^\top)` per step (THEOREMS.md §2); ``lr_per_layer`` breaks this
    (a negative control).

    Parameters
    ----------
    loss : Loss
        The end-to-end loss (cast once to the weights' dtype).
    Ws : tuple of arrays
        Layers ``(..., d_j, d_{j-1})``; leading dimensions are a batch of nets.
    lr : float or array
        Step size :math:`\eta \ge 0`, or an array of them broadcastable to the batch (one per net, e.g. a grid).
        ``lr = 0`` changes nothing.
    steps : int
        Number of steps (``>= 0``).
    residual : bool
        Train the residual net :math:`(I+W_N)\cdots(I+W_1)`.
    gtol, ftol : float, optional
        A net has converged (and is frozen) once :math:`(\sum_j\|\partial L/\partial W_j\|_F^2)^{1/2} \le`
        ``gtol`` or its loss is ``<= ftol``. Both are absolute (in the units of the loss and its gradient). With
        neither, no convergence test runs: every net that does not diverge ends with status ``max_steps``
        whatever its gradient, and ``max_steps`` then only means "ran all its steps". To learn where nets ended,
        pass ``gtol`` (e.g. ``1e-9`` for a problem of unit scale), or measure the end point
        (``ln.grad(loss, run.weights)``, :func:`linnet.landscape.classify`).
    record_every : int
        Record the loss at steps ``0, r, 2r, ...`` and at the last step.
    record_steps : sequence of int, optional
        Explicit step indices to record instead (in ``[0, steps]``).
    keep_history : bool
        Also record the weights.
    check_every : int
        Steps between host-side checks for early stopping (all nets converged or diverged); results do not
        depend on it.
    lr_per_layer : sequence of float, optional
        Factors :math:`c_j` multiplying ``lr`` layer by layer.
    resume : Trajectory, optional
        Continue that run (of the same method, with ``Ws = resume.weights``): its step counter, records,
        divergence threshold and optimizer state carry over, so ``gd(..., steps=n)`` then
        ``gd(..., steps=n, resume=first)`` equals ``gd(..., steps=2n)`` bit for bit (records at
        ``n + record_every * i``: choose ``record_every`` dividing ``n`` to match the single run's).
    observe : dict, optional
        Quantities to record, each on its own schedule (:mod:`linnet.train.observers`), e.g.
        ``{"sharpness": 10, "loss": 1, "mine": (lambda step, Ws, L: ..., [0, 50])}``; results in
        ``run.records[name]`` and ``run.record_steps[name]``.

    Returns
    -------
    Trajectory
        ``times = lr * steps``.

    Examples
    --------
    >>> import numpy as np, linnet as ln
    >>> loss = ln.SquaredLoss.whitened(np.array([[2.0, 0.0], [0.0, 1.0]]))
    >>> Ws = ln.init.gaussian((2, 4, 2), scale=0.5, batch=(3,), seed=0)
    >>> run = ln.train.gd(loss, Ws, lr=0.1, steps=500, gtol=1e-8)
    >>> run.status_names.tolist(), bool(run.loss[-1].max() < 1e-12)
    (['converged', 'converged', 'converged'], True)
    """
    return _layer_descent(
        loss,
        Ws,
        beta=0.0,
        residual=residual,
        lr=lr,
        steps=steps,
        gtol=gtol,
        ftol=ftol,
        record_every=record_every,
        record_steps=record_steps,
        keep_history=keep_history,
        check_every=check_every,
        lr_per_layer=lr_per_layer,
        resume=resume,
        observe=observe,
    )


def momentum(
    loss: Loss,
    Ws: Sequence[Array],
    *,
    lr: Any,
    steps: int,
    beta: float = 0.9,
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
    r"""Heavy-ball momentum (Polyak 1964) on the layers.

    .. math:: M_j^{(k+1)} = \beta M_j^{(k)} + \frac{\partial L}{\partial W_j}\big(W^{(k)}\big), \qquad
       W_j^{(k+1)} = W_j^{(k)} - \eta\,c_j\,M_j^{(k+1)}, \qquad M^{(0)} = 0,

    i.e. :math:`W^{(k+1)} = W^{(k)} - \eta\nabla L + \beta(W^{(k)} - W^{(k-1)})`. ``beta = 0`` is exactly
    :func:`gd`. Other arguments as in :func:`gd`; ``0 <= beta < 1``.

    Examples
    --------
    >>> import numpy as np, linnet as ln
    >>> loss = ln.SquaredLoss.whitened(np.eye(2))
    >>> run = ln.train.momentum(loss, ln.init.gaussian((2, 3, 2), scale=0.5, seed=1), lr=0.05, beta=0.8, steps=300)
    >>> bool(run.loss[-1] < 1e-10)
    True
    """
    b = _check_beta(beta)
    return _layer_descent(
        loss,
        Ws,
        beta=b,
        residual=residual,
        lr=lr,
        steps=steps,
        gtol=gtol,
        ftol=ftol,
        record_every=record_every,
        record_steps=record_steps,
        keep_history=keep_history,
        check_every=check_every,
        lr_per_layer=lr_per_layer,
        resume=resume,
        observe=observe,
    )
