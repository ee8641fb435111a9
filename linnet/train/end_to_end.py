r"""The end-to-end dynamics of Arora, Cohen & Hazan: :func:`end_to_end_flow` and :func:`end_to_end_gd`.

.. math:: \dot W_e = -\sum_{j=1}^N [W_eW_e^\top]^{\frac{j-1}N}\,\nabla\ell(W_e)\,[W_e^\top W_e]^{\frac{N-j}N},

the ODE that the end-to-end matrix of gradient flow on a balanced depth-:math:`N` net follows exactly
(THEOREMS.md §4), integrated by the Dormand–Prince integrator of :mod:`linnet.train.flow` or stepped by the
descent driver of :mod:`linnet.train.descent`. The velocity is :func:`linnet.linalg.e2e_velocity`, PSD powers from
the thresholded SVD (:func:`linnet.linalg.gram_powers`).

References
----------
Arora, Cohen & Hazan, `On the Optimization of Deep Networks: Implicit Acceleration by Overparameterization
<https://arxiv.org/abs/1802.06509>`_, ICML 2018 (THEOREMS.md §4).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from .._backend import Array
from .._validate import check_weights
from ..linalg import e2e_velocity
from ..losses import Loss
from ._args import _broadcast_shapes, _check_against, _check_int, _check_loss
from .descent import _descend, _descent_setup
from .flow import _solve
from .trajectory import Trajectory, _quiet, _weights_finite

__all__ = ["end_to_end_gd", "end_to_end_flow"]


def _check_e2e(loss, We0, depth):
    loss = _check_loss(loss)
    if isinstance(We0, (tuple, list)):
        if len(We0) != 1:
            raise ValueError(f"`We0` must be one end-to-end matrix (or a 1-tuple), got {len(We0)} arrays")
        We0 = We0[0]
    Ws, xp = check_weights((We0,), name="We0")
    N = _check_int(depth, "depth", minimum=1)
    loss_fn, batch = _check_against(loss, Ws[0], "We0")
    return loss_fn, Ws, xp, batch, N


def _e2e_rhs(loss_fn, N, xp):
    """``(W_e,) -> (l(W_e), (velocity,))``: the ACH velocity, with non-finite nets replaced by zeros for the SVD
    (their non-finite loss marks them)."""

    def f(Ws):
        We = Ws[0]
        L = loss_fn.value(We)
        G = loss_fn.grad(We)
        bad = ~(xp.isfinite(L) & _weights_finite((We,), xp) & _weights_finite((G,), xp))
        nan = xp.full(L.shape, float("nan"), dtype=L.dtype)
        L = xp.where(bad, nan, L)
        bad_b = bad[..., None, None]
        We = xp.where(bad_b, xp.zeros_like(We), We)
        G = xp.where(bad_b, xp.zeros_like(G), G)
        return L, (e2e_velocity(We, G, N),)

    return f


def end_to_end_gd(
    loss: Loss,
    We0: Array,
    *,
    depth: int,
    lr: Any,
    steps: int,
    gtol: Optional[float] = None,
    ftol: Optional[float] = None,
    record_every: int = 1,
    record_steps: Optional[Sequence[int]] = None,
    keep_history: bool = False,
    check_every: int = 10,
    observe: Optional[dict] = None,
) -> Trajectory:
    r"""Discrete end-to-end dynamics of Arora, Cohen & Hazan (arXiv:1802.06509; THEOREMS.md §4):

    .. math:: W_e^{(k+1)} = W_e^{(k)} - \eta\sum_{j=1}^N [W_eW_e^\top]^{\frac{j-1}N}\,\nabla\ell(W_e)\,
       [W_e^\top W_e]^{\frac{N-j}N},

    which GD on a balanced depth-``depth`` net follows up to :math:`O(\eta^2)` per step. ``gtol`` applies to the
    Frobenius norm of the preconditioned velocity. PSD powers are thresholded (:func:`linnet.linalg.gram_powers`).

    Returns a :class:`Trajectory` with ``weights = (W_e,)``. ``observe`` as in :func:`linnet.train.gd`: the
    observers see the one-layer "net" ``(W_e,)`` and the preconditioned velocity as ``G`` (``loss``,
    ``singular_values``, ``effective_rank``, ``stable_rank``, ``distance_to_optimum`` are meaningful here).

    Examples
    --------
    >>> import numpy as np, linnet as ln
    >>> loss = ln.SquaredLoss.whitened(np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]]))
    >>> run = ln.train.end_to_end_gd(loss, 0.1 * np.ones((2, 3)), depth=3, lr=0.1, steps=300, record_every=100)
    >>> run.steps.tolist(), bool(run.loss[-1] < 1e-12)
    ([0, 100, 200, 300], True)
    """
    loss_fn, Ws, xp, batch, N = _check_e2e(loss, We0, depth)
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
    )
    rhs = _e2e_rhs(loss_fn, N, xp)
    with _quiet():
        return _descend(
            evaluate=lambda k, W: rhs(W),
            beta=0.0,
            check_weights_finite=False,
            observe=observe,
            problem=(loss_fn, False),
            **opts,
        )


def end_to_end_flow(
    loss: Loss,
    We0: Array,
    *,
    depth: int,
    t_final: float,
    times: Optional[Sequence[float]] = None,
    rtol: float = 1e-8,
    atol: float = 1e-10,
    max_steps: int = 100_000,
    keep_history: bool = False,
    check_every: int = 1,
) -> Trajectory:
    r"""The end-to-end ODE of Arora, Cohen & Hazan (arXiv:1802.06509; THEOREMS.md §4):

    .. math:: \dot W_e = -\sum_{j=1}^N [W_eW_e^\top]^{\frac{j-1}N}\,\nabla\ell(W_e)\,[W_e^\top W_e]^{\frac{N-j}N},

    which the end-to-end matrix of gradient flow on a depth-``depth`` net follows exactly from a balanced
    initialization, whatever the hidden widths. Integrated as in :func:`gradient_flow` (per-net Dormand–Prince
    5(4)); PSD powers from the thresholded SVD (:func:`linnet.linalg.gram_powers`).

    Returns a :class:`Trajectory` with ``weights = (W_e,)``.

    Examples
    --------
    >>> import numpy as np, linnet as ln
    >>> loss = ln.SquaredLoss.whitened(np.array([[1.0]]))
    >>> run = ln.train.end_to_end_flow(loss, np.array([[0.25]]), depth=2, t_final=2.0, rtol=1e-10, atol=1e-12)
    >>> bool(abs(run.weights[0][0, 0] - np.exp(4) / (np.exp(4) - 1 + 4)) < 1e-8)
    True
    """
    loss_fn, Ws, xp, batch, N = _check_e2e(loss, We0, depth)
    batch = _broadcast_shapes(batch, tuple(Ws[0].shape[:-2]))
    vel = _e2e_rhs(loss_fn, N, xp)

    def rhs(W):
        L, (V,) = vel(W)
        return L, (-V,)

    return _solve(
        rhs,
        Ws,
        batch,
        xp,
        t_final=t_final,
        times=times,
        rtol=rtol,
        atol=atol,
        max_steps=max_steps,
        keep_history=keep_history,
        check_every=check_every,
    )
