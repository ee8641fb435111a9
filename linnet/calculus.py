r"""Closed-form calculus of the deep loss :math:`L(W_1,\dots,W_N) = \ell(F_N \cdots F_1)`.

The chain rule glues the product map (:mod:`linnet.product`) to an end-to-end loss (:mod:`linnet.losses`):

.. math::

    \frac{\partial L}{\partial W_j} = S_j^\top\,\nabla\ell(W_e)\,P_{j-1}^\top, \qquad
    (HV)_j = S_j^\top\,\nabla^2\ell(W_e)[\delta W]\,P_{j-1}^\top
             + \dot S_j^\top\,\nabla\ell(W_e)\,P_{j-1}^\top + S_j^\top\,\nabla\ell(W_e)\,\dot P_{j-1}^\top,

with :math:`\delta W = \sum_k S_k V_k P_{k-1}` (THEOREMS.md §1: the first term is the Gauss–Newton part, the
others vanish where :math:`\nabla\ell = 0`). Plain nets have :math:`F_j = W_j`, residual nets
:math:`F_j = I + W_j`. Every function is batched over leading dimensions of the weights and of the problem.
"""

from __future__ import annotations

from typing import Sequence

from . import product as _p
from ._backend import Array, namespace
from ._fastpaths.hessian import squared_hessian
from ._problem import prepare
from ._validate import (
    broadcast_batch,
    check_matrix,
    check_same_namespace,
    check_weights,
    check_widths,
)
from .losses import Loss

__all__ = ["loss", "grad", "value_and_grad", "hvp", "hessian", "gauss_newton_hvp", "flatten", "unflatten", "num_params"]


def _prepare(loss_fn, Ws, residual, *, suffixes=True):
    p = prepare(loss_fn, Ws, residual, suffixes=suffixes)
    return p.loss, p.Ws, p.xp, p.parts


def loss(loss: Loss, Ws: Sequence[Array], *, residual: bool = False) -> Array:
    r"""The deep loss :math:`L(W) = \ell(F_N\cdots F_1)`, one value per net: shape ``(...)``.

    Examples
    --------
    >>> import numpy as np, linnet as ln
    >>> Ws = ln.init.gaussian((2, 3, 2), scale=0.5, seed=0)
    >>> L = ln.loss(ln.SquaredLoss.whitened(np.eye(2)), Ws)
    >>> L.shape, bool(L > 0)
    ((), True)
    """
    loss_fn, Ws, xp, parts = _prepare(loss, Ws, residual, suffixes=False)
    return loss_fn.value(parts.prefix[-1])


def value_and_grad(loss: Loss, Ws: Sequence[Array], *, residual: bool = False):
    """``(L, grads)``: the loss (shape ``(...)``) and the tuple of per-layer gradients, in one pass."""
    loss_fn, Ws, xp, parts = _prepare(loss, Ws, residual)
    We = parts.prefix[-1]
    G = loss_fn.grad(We)
    return loss_fn.value(We), _p.pullback(parts, G, xp)


def grad(loss: Loss, Ws: Sequence[Array], *, residual: bool = False) -> tuple:
    r"""Per-layer gradients :math:`\partial L/\partial W_j = S_j^\top\nabla\ell(W_e)P_{j-1}^\top`.

    Returns a tuple of arrays shaped like the layers (with the broadcast batch shape). Costs :math:`O(N)`
    matrix products.

    Examples
    --------
    >>> import numpy as np, linnet as ln
    >>> Ws = (np.array([[2.0]]), np.array([[3.0]]))
    >>> [float(g[0, 0]) for g in ln.grad(ln.SquaredLoss.whitened(np.array([[1.0]])), Ws)]
    [15.0, 10.0]
    """
    return value_and_grad(loss, Ws, residual=residual)[1]


def _check_direction(Vs, Ws, name="Vs"):
    if not isinstance(Vs, (tuple, list)) or len(Vs) != len(Ws):
        raise ValueError(
            f"`{name}` must be a tuple of {len(Ws)} arrays shaped like the layers, got {type(Vs).__name__} of length {len(Vs) if hasattr(Vs, '__len__') else '?'}"
        )
    Vs, _ = check_weights(Vs, name=name)
    check_same_namespace(Vs[0], namespace(Ws[0]), name, "`Ws`")
    broadcast_batch(
        *(tuple(W.shape[:-2]) for W in Ws),
        *(tuple(V.shape[:-2]) for V in Vs),
        what=f"the batch shapes of `{name}` and `Ws`",
    )
    for j, (V, W) in enumerate(zip(Vs, Ws), start=1):
        if tuple(V.shape[-2:]) != tuple(W.shape[-2:]):
            raise ValueError(
                f"`{name}[{j - 1}]` must have shape (..., {W.shape[-2]}, {W.shape[-1]}), got {tuple(V.shape)}"
            )
        if V.dtype != W.dtype:
            raise ValueError(f"`{name}[{j - 1}]` must have the dtype of the weights ({W.dtype}), got {V.dtype}")
    return Vs


def hvp(loss: Loss, Ws: Sequence[Array], Vs: Sequence[Array], *, residual: bool = False) -> tuple:
    r"""Exact Hessian-vector product :math:`\nabla^2 L(W)[V]` (no finite differences).

    Parameters
    ----------
    loss : Loss
    Ws : tuple of arrays ``(..., d_j, d_{j-1})``
    Vs : tuple of arrays shaped like ``Ws`` (their batch dimensions broadcast against those of ``Ws``)

    Returns
    -------
    tuple of arrays, one per layer.
    """
    loss_fn, Ws, xp, parts = _prepare(loss, Ws, residual)
    Vs = _check_direction(Vs, Ws)
    We = parts.prefix[-1]
    dP = _p.pushforward_prefixes(parts, Vs, xp)
    dW = dP[-1]
    gn = _p.pullback(parts, loss_fn.hvp(We, dW), xp)
    second = _p.pullback_derivative(parts, loss_fn.grad(We), Vs, xp, dP=dP)
    return tuple(a if b is None else a + b for a, b in zip(gn, second))


def gauss_newton_hvp(loss: Loss, Ws: Sequence[Array], Vs: Sequence[Array], *, residual: bool = False) -> tuple:
    r"""The Gauss–Newton part :math:`J^\top\nabla^2\ell\,J\,V` of the Hessian-vector product alone.

    Equal to :func:`hvp` where :math:`\nabla\ell(W_e) = 0`; different elsewhere (THEOREMS.md §1 control (b)).
    """
    loss_fn, Ws, xp, parts = _prepare(loss, Ws, residual)
    Vs = _check_direction(Vs, Ws)
    dW = _p.pushforward(parts, Vs, xp)
    return _p.pullback(parts, loss_fn.hvp(parts.prefix[-1], dW), xp)


def num_params(Ws: Sequence[Array]) -> int:
    """Number of parameters of one net: :math:`\\sum_j d_j d_{j-1}`."""
    Ws = check_weights(Ws, finite=False)[0]
    return sum(int(W.shape[-1]) * int(W.shape[-2]) for W in Ws)


def flatten(Ws: Sequence[Array]) -> Array:
    """Concatenate layers 1..N, each flattened row-major, into shape ``(..., P)``."""
    Ws, xp = check_weights(Ws)
    batch = broadcast_batch(*(tuple(W.shape[:-2]) for W in Ws), what="the layers' batch shapes in `Ws`")
    return xp.concat([xp.reshape(xp.broadcast_to(W, batch + tuple(W.shape[-2:])), batch + (-1,)) for W in Ws], axis=-1)


def unflatten(theta: Array, widths: Sequence[int]) -> tuple:
    """Inverse of :func:`flatten`: split ``(..., P)`` into layers of shapes ``(..., d_j, d_{j-1})``."""
    theta, xp = check_matrix(theta, "theta", min_ndim=1)
    widths = check_widths(widths)
    P = sum(widths[j] * widths[j + 1] for j in range(len(widths) - 1))
    if theta.shape[-1] != P:
        raise ValueError(f"`theta` must have last dimension {P} for `widths` {widths}, got {theta.shape[-1]}")
    out, k = [], 0
    for j in range(1, len(widths)):
        n = widths[j] * widths[j - 1]
        out.append(xp.reshape(theta[..., k : k + n], tuple(theta.shape[:-1]) + (widths[j], widths[j - 1])))
        k += n
    return tuple(out)


def hessian(loss: Loss, Ws: Sequence[Array], *, residual: bool = False) -> Array:
    r"""Dense Hessian of :math:`L`, shape ``(..., P, P)`` with :math:`P = \sum_j d_j d_{j-1}`.

    Parameter order: layers 1..N, each flattened row-major (C order), as :func:`flatten`. For a
    :meth:`~linnet.losses.Loss.quadratic_form` (a :class:`~linnet.losses.SquaredLoss`, say) the blocks are assembled in closed form from Kronecker products
    (:func:`linnet._fastpaths.hessian.squared_hessian`); for other losses column :math:`k` is the exact
    Hessian-vector product with the :math:`k`-th unit vector, all :math:`P` products run as one batched
    evaluation.
    """
    loss_fn, Ws, xp, parts = _prepare(loss, Ws, residual)
    widths = (Ws[0].shape[-1],) + tuple(W.shape[-2] for W in Ws)
    P = num_params(Ws)
    batch = tuple(loss_fn.value(parts.prefix[-1]).shape)  # nets' batch broadcast with the problem's
    if loss_fn.quadratic_form() is not None:  # closed-form Kronecker blocks: O(N^2) small products, no P HVPs
        return squared_hessian(loss_fn, parts.factors, xp, batch)
    eye = xp.eye(P, dtype=Ws[0].dtype)
    # basis directions on a new leading axis of length P, broadcast over the nets' batch axes
    E = xp.reshape(eye, (P,) + (1,) * len(batch) + (P,))
    Vs = unflatten(E, widths)
    Hcols = hvp(loss_fn, Ws, Vs, residual=residual)  # each (P, *batch, d_j, d_{j-1})
    Hcols = [xp.broadcast_to(h, (P,) + batch + tuple(h.shape[-2:])) for h in Hcols]  # depth 1: H may not depend on W
    H = xp.concat([xp.reshape(h, (P,) + batch + (-1,)) for h in Hcols], axis=-1)  # (P, *batch, P): row k = H e_k
    H = xp.permute_dims(H, tuple(range(1, len(batch) + 1)) + (0, len(batch) + 1))
    # H e_k is column k; the Hessian is symmetric, so symmetrize away round-off
    return 0.5 * (H + H.mT)
