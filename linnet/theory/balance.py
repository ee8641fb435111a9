r"""Balancedness of deep linear networks and its drift under gradient descent (THEOREMS.md §2).

The gaps :math:`D_j = W_{j+1}^\top W_{j+1} - W_jW_j^\top` are conserved by gradient flow on any
:math:`L = \ell(W_N\cdots W_1)` (Du, Hu & Lee, `arXiv:1806.00900 <https://arxiv.org/abs/1806.00900>`_); their
largest Frobenius norm is the balancedness :math:`\delta` of Arora, Cohen, Golowich & Hu,
`arXiv:1810.02281 <https://arxiv.org/abs/1810.02281>`_. Gradient descent moves them by :math:`O(\eta^2)` per step
(:func:`gd_drift`).
"""

from __future__ import annotations

from typing import Any, Sequence

from .._validate import check_same_namespace, check_weights
from ._common import Array, _fro, _is_array, _positive

__all__ = ["balancedness_gaps", "balancedness", "gd_drift"]


def balancedness_gaps(Ws: Sequence[Array]) -> tuple:
    r"""The Noether charges :math:`D_j = W_{j+1}^\top W_{j+1} - W_j W_j^\top`, :math:`j = 1, \dots, N-1`.

    .. math:: D_j = W_{j+1}^\top W_{j+1} - W_j W_j^\top \in \mathbb R^{d_j \times d_j}

    Conserved by gradient flow on any :math:`L = \ell(W_N\cdots W_1)` (THEOREMS.md §2, CONFIRMED: Du, Hu & Lee,
    `arXiv:1806.00900 <https://arxiv.org/abs/1806.00900>`_; Arora, Cohen, Golowich & Hu,
    `arXiv:1810.02281 <https://arxiv.org/abs/1810.02281>`_). Note the orientation: input Gram of layer
    :math:`j+1` minus output Gram of layer :math:`j`.

    Parameters
    ----------
    Ws : tuple of arrays ``(..., d_j, d_{j-1})``

    Returns
    -------
    tuple of ``N - 1`` arrays ``(..., d_j, d_j)`` (empty for depth 1).
    """
    Ws, xp = check_weights(Ws)
    return tuple(xp.matmul(Ws[j + 1].mT, Ws[j + 1]) - xp.matmul(Ws[j], Ws[j].mT) for j in range(len(Ws) - 1))


def balancedness(Ws: Sequence[Array]) -> Array:
    r"""The balancedness :math:`\delta = \max_j \|W_{j+1}^\top W_{j+1} - W_jW_j^\top\|_F`, shape ``(...)``.

    The weights are :math:`\delta`-balanced in the sense of Arora, Cohen, Golowich & Hu,
    `arXiv:1810.02281 <https://arxiv.org/abs/1810.02281>`_ (THEOREMS.md §2, definition CONFIRMED; its number in
    the paper is not). Depth 1 gives 0.

    Examples
    --------
    >>> import numpy as np, linnet as ln
    >>> Ws = (np.array([[2.0]]), np.array([[3.0]]))
    >>> float(ln.theory.balancedness(Ws))
    5.0
    """
    Ws, xp = check_weights(Ws)
    gaps = balancedness_gaps(Ws)
    if not gaps:
        return xp.zeros(tuple(Ws[0].shape[:-2]), dtype=Ws[0].dtype)
    out = _fro(gaps[0], xp)
    for D in gaps[1:]:
        out = xp.maximum(out, _fro(D, xp))
    return out


def gd_drift(Ws: Sequence[Array], Gs: Sequence[Array], lr: Any) -> tuple:
    r"""Exact one-step change of each :math:`D_j` under gradient descent :math:`W_j^+ = W_j - \eta G_j`.

    .. math:: D_j^+ - D_j = \eta^2\big(G_{j+1}^\top G_{j+1} - G_j G_j^\top\big)

    The :math:`O(\eta)` terms cancel exactly because :math:`G_jW_j^\top = W_{j+1}^\top G_{j+1}` for
    :math:`G_j = \partial L/\partial W_j` (THEOREMS.md §2, DERIVED+VERIFIED). ``Ws`` enters only through the
    shapes; the identity needs the true gradients at ``Ws``, the same step size in every layer and plain GD.

    Parameters
    ----------
    Ws : tuple of arrays ``(..., d_j, d_{j-1})``
    Gs : tuple of gradients shaped like ``Ws``
    lr : float or array broadcastable to the batch (``> 0``)

    Returns
    -------
    tuple of ``N - 1`` arrays ``(..., d_j, d_j)``.
    """
    Ws, xp = check_weights(Ws)
    Gs, _ = check_weights(Gs, name="Gs")
    check_same_namespace(Gs[0], xp, "Gs", "`Ws`")
    if len(Gs) != len(Ws):
        raise ValueError(f"`Gs` must have {len(Ws)} layers like `Ws`, got {len(Gs)}")
    for j, (G, W) in enumerate(zip(Gs, Ws)):
        if tuple(G.shape[-2:]) != tuple(W.shape[-2:]):
            raise ValueError(f"`Gs[{j}]` must have shape (..., {W.shape[-2]}, {W.shape[-1]}), got {tuple(G.shape)}")
    lr = _positive(lr, "lr")
    lr2 = (lr * lr)[..., None, None] if _is_array(lr) else lr**2
    return tuple(lr2 * (xp.matmul(Gs[j + 1].mT, Gs[j + 1]) - xp.matmul(Gs[j], Gs[j].mT)) for j in range(len(Gs) - 1))
