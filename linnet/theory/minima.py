r"""Global minima and critical points of the deep linear problem (THEOREMS.md §5, §6).

The end-to-end matrices of a net with widths :math:`(d_0, \dots, d_N)` are exactly the matrices of rank
:math:`\le \min_j d_j`, so its global minimum is that of reduced-rank regression (:func:`rrr`, :func:`global_min`;
Lu & Kawaguchi, `arXiv:1702.08580 <https://arxiv.org/abs/1702.08580>`_). For one hidden layer every critical
point is known in closed form, with its Morse index (:func:`baldi_hornik_points`; Baldi & Hornik, Neural Networks
2(1):53–58, 1989).
"""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple, Optional, Sequence

import numpy as np

from .._backend import namespace, to_numpy
from .._validate import as_index, check_positive, check_widths
from ..losses import Loss, QuadraticForm, SquaredLoss
from ._common import Array, _int

__all__ = ["RRR", "rrr", "rrr_value", "GlobalMin", "global_min", "CriticalPoint", "baldi_hornik_points"]


# ---------------------------------------------------------------------------------------------------------------
# §5 reduced-rank regression and the global minimum of the deep problem
# ---------------------------------------------------------------------------------------------------------------
def _psd_sqrt(S, xp, rtol: float = 1e-12):
    """Symmetric PSD square root from ``eigh``, eigenvalues below ``rtol * max`` set exactly to 0 (THEOREMS §0)."""
    w, Q = xp.linalg.eigh(S)
    top = xp.max(xp.abs(w), axis=-1, keepdims=True)
    w = xp.where(w > rtol * top, w, xp.zeros_like(w))
    return xp.matmul(Q * xp.sqrt(w)[..., None, :], Q.mT)


class RRR(NamedTuple):
    """Rank-constrained least squares: ``value`` ``(...)``, minimiser ``We`` ``(..., d_N, d_0)``, and the
    eigenvalues ``eigenvalues`` ``(..., k)`` (descending) of :math:`\\Lambda_{yx}\\Lambda_{xx}^{+}\\Lambda_{xy}`."""

    value: Array
    We: Array
    eigenvalues: Array


def rrr(loss: SquaredLoss, rank: int) -> RRR:
    r"""Reduced-rank regression: :math:`\min_{\operatorname{rank} W \le r} \ell(W)` for the squared loss, in closed form.

    With :math:`\ell(W) = \tfrac12\|(W - \Phi)\Lambda_{xx}^{1/2}\|_F^2 + c_0` and
    :math:`B = \Phi\Lambda_{xx}^{1/2} = \sum_i \sigma_i u_i v_i^\top`,

    .. math::

        W^\star = U_rU_r^\top\Phi = [B]_r\,\Lambda_{xx}^{+1/2}\ (\text{on the row space of }\Lambda_{xx}), \qquad
        \ell(W^\star) = c_0 + \tfrac12\sum_{i > r}\sigma_i^2 ,

    where :math:`[\cdot]_r` is the Eckart–Young truncation and :math:`\sigma_i^2 = \lambda_i(\Lambda_{yx}
    \Lambda_{xx}^{+}\Lambda_{xy})`. Equivalently :math:`\ell(W^\star) = \tfrac12(\operatorname{tr}\Lambda_{yy} -
    \sum_{i\le r}\lambda_i)`. :math:`W^\star` is unique iff :math:`\sigma_r > \sigma_{r+1}`. A singular
    :math:`\Lambda_{xx}` is handled through :math:`\Phi = \Lambda_{yx}\Lambda_{xx}^{+}`, which lies in its row
    space; :math:`W^\star` then has no component outside it. THEOREMS.md §5: **DERIVED+VERIFIED**.

    Parameters
    ----------
    loss : SquaredLoss (batched problems allowed)
    rank : int ``>= 0``

    Examples
    --------
    >>> import numpy as np, linnet as ln
    >>> res = ln.theory.rrr(ln.SquaredLoss.whitened(np.diag([3.0, 2.0])), 1)
    >>> float(res.value), res.We.tolist()
    (2.0, [[3.0, 0.0], [0.0, 0.0]])
    """
    if not isinstance(loss, (SquaredLoss, QuadraticForm)) or loss.Phi is None:
        raise ValueError(f"`loss` must be a SquaredLoss (or its centred QuadraticForm), got {type(loss).__name__}")
    r = _int(rank, "rank", lo=0)
    xp = namespace(loss.Phi)
    Phi = loss.Phi
    B = Phi if loss.Sxx is None else xp.matmul(Phi, _psd_sqrt(loss.Sxx, xp))
    U, s, _ = xp.linalg.svd(B, full_matrices=False)
    k = s.shape[-1]
    lam = s * s
    if r >= k:
        return RRR(loss.c0 * 1, Phi * 1, lam)
    Ur = U[..., :, :r]
    We = xp.matmul(Ur, xp.matmul(Ur.mT, Phi))
    value = loss.c0 + 0.5 * xp.sum(lam[..., r:], axis=-1)
    return RRR(value, We, lam)


def rrr_value(loss: SquaredLoss, rank: int) -> Array:
    r""":math:`\min_{\operatorname{rank}W\le r}\ell(W) = c_0 + \tfrac12\sum_{i>r}\lambda_i(\Lambda_{yx}\Lambda_{xx}^{+}\Lambda_{xy})`
    (see :func:`rrr`), shape ``(...)``."""
    return rrr(loss, rank).value


class GlobalMin(NamedTuple):
    """Global minimum of the deep problem: ``value`` ``(...)``, an optimal end-to-end matrix ``We``
    ``(..., d_N, d_0)`` (``None`` when only the value is known), and the rank bound ``rank = min(widths)``."""

    value: Array
    We: Optional[Array]
    rank: int


def global_min(loss: Loss, widths: Sequence[int]) -> GlobalMin:
    r"""Closed-form global minimum of :math:`L(W_1,\dots,W_N) = \ell(W_N\cdots W_1)` for widths :math:`(d_0..d_N)`.

    The end-to-end matrices of the net are exactly the matrices of rank :math:`\le r = \min_j d_j`, so

    .. math:: \min L = \min_{\operatorname{rank}W \le r} \ell(W),

    which for the squared loss is reduced-rank regression (:func:`rrr`); when no layer is a bottleneck
    (:math:`r \ge \min(d_0, d_N)`) it is the least-squares value :math:`c_0` at :math:`W^\star = \Phi`.
    Lu & Kawaguchi, `arXiv:1702.08580 <https://arxiv.org/abs/1702.08580>`_ (deep and rank-constrained shallow
    minima coincide, CONFIRMED); the RRR closed form is DERIVED+VERIFIED (THEOREMS.md §5).

    For other losses only the unconstrained case is available, from ``loss.min_value()`` when the loss knows it
    (``We`` is then ``None``); anything else raises ``ValueError``.

    Examples
    --------
    >>> import numpy as np, linnet as ln
    >>> g = ln.theory.global_min(ln.SquaredLoss.whitened(np.diag([3.0, 2.0])), (2, 1, 2))
    >>> float(g.value), g.rank
    (2.0, 1)
    """
    if not isinstance(loss, Loss):
        raise ValueError(f"`loss` must be a linnet loss, got {type(loss).__name__}")
    widths = check_widths(widths)
    dN, d0 = loss.shape
    if widths[0] != d0 or widths[-1] != dN:
        raise ValueError(
            f"`widths` must start with d_0 = {d0} and end with d_N = {dN} (the loss's shape), got {widths}"
        )
    r = min(widths)
    if isinstance(loss, SquaredLoss):
        res = rrr(loss, r)
        return GlobalMin(res.value, res.We, r)
    mv = getattr(loss, "min_value", None)
    value = mv() if callable(mv) else None
    if value is None or r < min(d0, dN):
        raise ValueError(
            f"no closed-form global minimum for `loss` of type {type(loss).__name__} with widths {widths}: "
            "only SquaredLoss (any widths) or a loss with a known min_value() and no bottleneck"
        )
    return GlobalMin(value, None, r)


# ---------------------------------------------------------------------------------------------------------------
# §6 Baldi–Hornik
# ---------------------------------------------------------------------------------------------------------------
class CriticalPoint(NamedTuple):
    """A Baldi–Hornik critical point: index set ``I`` (0-based, into the eigenvalues sorted descending),
    weights ``Ws = (B, A)`` (``B`` is ``(p, n)``, ``A`` is ``(q, p)``), critical ``value`` and Morse ``index``."""

    I: tuple
    Ws: tuple
    value: Array
    index: int


def baldi_hornik_points(loss: SquaredLoss, p: int, *, rtol: Optional[float] = None) -> list:
    r"""All critical points (one per :math:`GL(p)` family) of :math:`L(B, A) = \ell(AB)` with hidden width :math:`p`.

    Let :math:`\Sigma = \Lambda_{yx}\Lambda_{xx}^{-1}\Lambda_{xy} = U\operatorname{diag}(\lambda)U^\top` with
    :math:`\lambda_1 > \dots > \lambda_q`. For every :math:`I \subseteq \{1..q\}` with :math:`|I| = k \le p`,

    .. math::

        A = [U_I, 0] \in \mathbb R^{q\times p}, \quad B = A^\top\Lambda_{yx}\Lambda_{xx}^{-1}, \quad
        L_I = \tfrac12\Big(\operatorname{tr}\Lambda_{yy} - \sum_{i\in I}\lambda_i\Big)
            = c_0 + \tfrac12\sum_{i\notin I}\lambda_i ,

    with Morse index (number of negative Hessian eigenvalues)

    .. math::

        \operatorname{index}(I) = \#\{(i, j): i\in I,\ j\notin I,\ \lambda_j > \lambda_i\}
            + (p - |I|)\,\#\{j \notin I: \lambda_j > 0\}.

    The minimum is :math:`I = \{1..p\}`; :math:`I = \emptyset` is the origin. Baldi & Hornik, Neural Networks
    2(1):53–58, 1989 (statement CONFIRMED); the explicit points and values DERIVED+VERIFIED; the index formula is
    linnet's own (THEOREMS.md §6), verified against dense Hessians.

    Parameters
    ----------
    loss : SquaredLoss, one problem (no batch), :math:`\Lambda_{xx} \succ 0`, shape ``(q, n)``
    p : int, hidden width, ``1 <= p < min(n, q)``
    rtol : float, optional
        Relative gap below which eigenvalues count as repeated, and below which :math:`\lambda_j` counts as 0
        (default ``sqrt(eps)``).

    Returns
    -------
    list of :class:`CriticalPoint`, :math:`\sum_{k\le p}\binom qk` of them, in order of increasing ``|I|``.

    Raises
    ------
    ValueError
        For a batched loss, a singular :math:`\Lambda_{xx}`, repeated eigenvalues of :math:`\Sigma` (the
        critical sets are then not isolated families), or ``p`` out of range.

    Examples
    --------
    >>> import numpy as np, linnet as ln
    >>> pts = ln.theory.baldi_hornik_points(ln.SquaredLoss.whitened(np.diag([3.0, 2.0, 1.0])), 1)
    >>> [(pt.I, float(pt.value), pt.index) for pt in pts]
    [((), 7.0, 3), ((0,), 2.5, 0), ((1,), 5.0, 1), ((2,), 6.5, 2)]
    """
    if not isinstance(loss, SquaredLoss):
        raise ValueError(f"`loss` must be a SquaredLoss, got {type(loss).__name__}")
    xp = namespace(loss.Phi)
    if loss.Phi.ndim != 2:
        raise ValueError(
            f"`loss` must be a single problem (Phi of shape (q, n)), got Phi of shape {tuple(loss.Phi.shape)}"
        )
    q, n = loss.shape
    if as_index(p) is None or not 1 <= as_index(p) < min(n, q):
        raise ValueError(f"`p` must be an int with 1 <= p < min(n, q) = {min(n, q)}, got {p!r}")
    p = as_index(p)
    eps = float(xp.finfo(loss.Phi.dtype).eps)
    tol = math.sqrt(eps) if rtol is None else check_positive(rtol, "rtol")
    Phi = loss.Phi
    if loss.Sxx is None:
        Sig = xp.matmul(Phi, Phi.mT)
    else:
        wx = to_numpy(xp.linalg.eigvalsh(loss.Sxx))
        if wx.min() <= tol * max(abs(wx).max(), np.finfo(np.float64).tiny):
            raise ValueError(f"`loss` must have a non-singular Lambda_xx (Baldi–Hornik setting), got eigenvalues {wx}")
        Sig = xp.matmul(xp.matmul(Phi, loss.Sxx), Phi.mT)
    Sig = 0.5 * (Sig + Sig.mT)
    lam, U = xp.linalg.eigh(Sig)
    lam = xp.flip(lam, axis=-1)
    U = xp.flip(U, axis=-1)
    lam_h = [float(v) for v in to_numpy(lam)]
    scale = max(abs(lam_h[0]), np.finfo(np.float64).tiny)
    if any(lam_h[i] - lam_h[i + 1] <= tol * scale for i in range(q - 1)):
        raise ValueError(f"`loss` must give distinct eigenvalues of Lambda_yx Lambda_xx^-1 Lambda_xy, got {lam_h}")
    positive = [v > tol * scale for v in lam_h]
    out = []
    dt = Phi.dtype
    for k in range(p + 1):
        for I in itertools.combinations(range(q), k):
            cols = [U[:, i : i + 1] for i in I] + [xp.zeros((q, p - k), dtype=dt)]
            A = xp.concat(cols, axis=1) if cols else xp.zeros((q, p), dtype=dt)
            Bm = xp.matmul(A.mT, Phi)
            rest = [i for i in range(q) if i not in I]
            value = loss.c0 + 0.5 * xp.sum(xp.stack([lam[i] for i in rest])) if rest else loss.c0 * 1
            index = sum(1 for i in I for j in rest if lam_h[j] > lam_h[i]) + (p - k) * sum(positive[j] for j in rest)
            out.append(CriticalPoint(tuple(I), (Bm, A), value, int(index)))
    return out
