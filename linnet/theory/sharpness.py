r"""Sharpness (top Hessian eigenvalue) at global minima of deep linear networks (THEOREMS.md §13).

At a global minimum of :math:`\tfrac12\|W_N\cdots W_1 - \Phi\|_F^2` the Hessian is :math:`J^\top J`; at a balanced
minimum its top eigenvalue is :math:`N\sigma_1(\Phi)^{2-2/N}` (:func:`sharpness_balanced`, matching Saxe,
McClelland & Ganguli, `arXiv:1312.6120 <https://arxiv.org/abs/1312.6120>`_, App. B), and in the scalar case every
other minimum is sharper (:func:`sharpness_scalar_min`). Both DERIVED+VERIFIED.
"""

from __future__ import annotations

from typing import Any

from .._validate import check_matrix, check_real
from ._common import Array, _check_all, _depth, _is_array, _scalars

__all__ = ["sharpness_balanced", "sharpness_scalar_min"]


def sharpness_balanced(Phi: Array, depth: int) -> Array:
    r"""Top Hessian eigenvalue at a balanced global minimum of :math:`\tfrac12\|W_N\cdots W_1 - \Phi\|_F^2`.

    .. math:: \lambda_{\max}(\nabla^2 L) = N\,\sigma_1(\Phi)^{2 - 2/N}

    At a global minimum :math:`H = J^\top J` and at a balanced one :math:`JJ^\top = P_\Phi` (§4).
    THEOREMS.md §13: **DERIVED+VERIFIED** (matches Saxe et al. App. B, :math:`\lambda_1 = (N_l-1)s^{(2N_l-4)/(N_l-1)}`;
    that the balanced minimum is the flattest is proven only in the scalar case). Shape ``(...)``.

    Examples
    --------
    >>> import numpy as np, linnet as ln
    >>> round(float(ln.theory.sharpness_balanced(np.array([[2.5]]), 3)), 6)
    10.179066
    """
    Phi, xp = check_matrix(Phi, "Phi")
    N = _depth(depth)
    s1 = xp.max(xp.linalg.svdvals(Phi), axis=-1)
    return N * s1 ** (2.0 - 2.0 / N)


def sharpness_scalar_min(w: Any, phi: Any) -> Any:
    r"""Top Hessian eigenvalue of :math:`\tfrac12(\phi - \prod_i w_i)^2` at a global minimum :math:`\prod_i w_i = \phi`.

    .. math:: \lambda_{\max} = \phi^2\sum_i w_i^{-2} \ \ge\ N|\phi|^{2-2/N}

    (:math:`H = gg^\top`, :math:`g_i = \prod_{j\ne i}w_j`; equality iff balanced, by AM–GM). THEOREMS.md §13,
    DERIVED+VERIFIED. ``w`` has the layers on its last axis, ``(..., N)``; the product is not checked.

    Examples
    --------
    >>> import linnet as ln
    >>> float(ln.theory.sharpness_scalar_min([1.0, 2.0], 2.0))
    5.0
    """
    if not _is_array(w):
        w = check_real(w, "w")
    xp, w, phi = _scalars(w, phi, names=("w", "phi"))
    if w.ndim < 1:
        raise ValueError(f"`w` must have the layers on its last axis (..., N), got shape {tuple(w.shape)}")
    _check_all(w != 0, "w", "nonzero (a global minimum with phi != 0)", w)
    return phi**2 * xp.sum(1.0 / (w * w), axis=-1)
