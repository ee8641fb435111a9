r"""Closed forms of deep linear network theory, beside the simulations that test them.

Every function states its formula, the source (arXiv id, theorem or equation) and the status that
``THEOREMS.md`` gives it: **CONFIRMED** (read in a source), **DERIVED+VERIFIED** (derived for linnet and checked
numerically; no paper backs it) or **UNCONFIRMED** (never presented here as a paper's constant).

Contents, by section of THEOREMS.md:

- §2 balancedness: :func:`balancedness_gaps`, :func:`balancedness`, :func:`gd_drift`;
- §3 ACGH convergence theorem: :func:`deficiency_margin`, :func:`acgh_constants`, :func:`acgh_steps`,
  :func:`margin_probability`;
- §4 end-to-end preconditioner: :func:`preconditioner_min_eig`;
- §5 reduced-rank regression: :func:`rrr`, :func:`rrr_value`, :func:`global_min`;
- §6 Baldi–Hornik critical points: :func:`baldi_hornik_points`;
- §8 Hardt–Ma residual nets: :func:`hardt_ma_factorization`, :func:`hardt_ma_norm_bound`,
  :func:`hardt_ma_loss`, :func:`hardt_ma_risk`, :func:`hardt_ma_risk_grad`, :func:`hardt_ma_gradient_domination`;
- §9 Bartlett–Helmbold–Long modes: :func:`bhl_sufficient_lr`, :func:`bhl_mode_step`;
- §10 Saxe et al. exact solutions: :func:`saxe_mode`, :func:`saxe_time`, :func:`saxe_deep_rhs`,
  :func:`saxe_deep_time`, :func:`saxe_deep_mode`, :func:`saxe_time_deep_limit`;
- §13 sharpness: :func:`sharpness_balanced`, :func:`sharpness_scalar_min`.

Array functions take their namespace from their inputs and are batched over leading dimensions. A few
constructions that are small, dense and done once (the noncentral :math:`\chi^2` CDF, the real Schur form in the
Hardt–Ma factorization) run on the host with SciPy and move their result back to the input's namespace.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, NamedTuple, Optional, Sequence

import numpy as np

from ._backend import from_host, get_namespace, namespace, to_numpy
from ._validate import check_finite, check_positive, check_weights, check_widths
from .losses import Loss, SquaredLoss

__all__ = [
    "balancedness_gaps",
    "balancedness",
    "gd_drift",
    "deficiency_margin",
    "ACGHConstants",
    "acgh_constants",
    "acgh_steps",
    "margin_probability",
    "preconditioner_min_eig",
    "RRR",
    "rrr",
    "rrr_value",
    "GlobalMin",
    "global_min",
    "CriticalPoint",
    "baldi_hornik_points",
    "hardt_ma_factorization",
    "hardt_ma_norm_bound",
    "hardt_ma_loss",
    "hardt_ma_risk",
    "hardt_ma_risk_grad",
    "GradientDomination",
    "hardt_ma_gradient_domination",
    "bhl_sufficient_lr",
    "bhl_mode_step",
    "saxe_mode",
    "saxe_time",
    "saxe_deep_rhs",
    "saxe_deep_time",
    "saxe_deep_mode",
    "saxe_time_deep_limit",
    "sharpness_balanced",
    "sharpness_scalar_min",
]

Array = Any


# ---------------------------------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------------------------------
def _is_array(a) -> bool:
    """An array of some namespace (NumPy scalars such as ``np.float64(1.0)`` count as Python numbers)."""
    return hasattr(a, "shape") and hasattr(a, "dtype") and not isinstance(a, np.generic)


def _fro(A, xp):
    return xp.sqrt(xp.sum(A * A, axis=(-2, -1)))


def _depth(depth: Any, name: str = "depth") -> int:
    if isinstance(depth, bool) or not hasattr(depth, "__index__") or int(depth) < 1:
        raise ValueError(f"`{name}` must be an int >= 1, got {depth!r}")
    return int(depth)


def _matrix(a: Any, name: str, xp=None):
    """Validate a real floating matrix (batch allowed); host lists become NumPy arrays."""
    if not hasattr(a, "shape") or not hasattr(a, "dtype"):
        a = np.asarray(a, dtype=np.float64)
    xp = xp or namespace(a)
    if a.ndim < 2:
        raise ValueError(f"`{name}` must have shape (..., rows, cols), got {tuple(a.shape)}")
    if not xp.isdtype(a.dtype, "real floating"):
        raise ValueError(f"`{name}` must have a real floating dtype (float32 or float64), got {a.dtype}")
    check_finite(a, name, xp=xp)
    return a, xp


def _scalars(*args, names):
    """Common namespace and dtype for scalar-or-array arguments; returns ``(xp, arrays...)``.

    Python numbers become 0-d arrays of the arrays' namespace (NumPy when none is an array) and dtype.
    """
    arrays = [a for a in args if _is_array(a)]
    xp = namespace(*arrays) if arrays else get_namespace(None)
    dt = xp.float64
    for a in arrays:
        if xp.isdtype(a.dtype, "real floating"):
            dt = a.dtype
            break
    out = []
    for a, name in zip(args, names):
        if _is_array(a):
            a = xp.astype(a, dt) if a.dtype != dt else a
        else:
            try:
                a = xp.asarray(float(a), dtype=dt)
            except (TypeError, ValueError):
                raise ValueError(f"`{name}` must be a real number or a real array, got {a!r}") from None
        check_finite(a, name, xp=xp)
        out.append(a)
    return (xp, *out)


def _check_all(cond, name: str, expected: str, value) -> None:
    if not bool(namespace(cond).all(cond)):
        raise ValueError(f"`{name}` must be {expected}, got {value!r}")


def _psd_sqrt(S, xp, rtol: float = 1e-12):
    """Symmetric PSD square root from ``eigh``, eigenvalues below ``rtol * max`` set exactly to 0 (THEOREMS §0)."""
    w, Q = xp.linalg.eigh(S)
    top = xp.max(xp.abs(w), axis=-1, keepdims=True)
    w = xp.where(w > rtol * top, w, xp.zeros_like(w))
    return xp.matmul(Q * xp.sqrt(w)[..., None, :], Q.mT)


# ---------------------------------------------------------------------------------------------------------------
# §2 balancedness
# ---------------------------------------------------------------------------------------------------------------
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
    if len(Gs) != len(Ws):
        raise ValueError(f"`Gs` must have {len(Ws)} layers like `Ws`, got {len(Gs)}")
    for j, (G, W) in enumerate(zip(Gs, Ws)):
        if tuple(G.shape[-2:]) != tuple(W.shape[-2:]):
            raise ValueError(f"`Gs[{j}]` must have shape (..., {W.shape[-2]}, {W.shape[-1]}), got {tuple(G.shape)}")
    if _is_array(lr):
        _check_all(lr > 0, "lr", "> 0", lr)
        lr2 = (lr * lr)[..., None, None]
    else:
        lr2 = check_positive(lr, "lr") ** 2
    return tuple(lr2 * (xp.matmul(Gs[j + 1].mT, Gs[j + 1]) - xp.matmul(Gs[j], Gs[j].mT)) for j in range(len(Gs) - 1))


# ---------------------------------------------------------------------------------------------------------------
# §3 ACGH: deficiency margin and the convergence theorem
# ---------------------------------------------------------------------------------------------------------------
def deficiency_margin(We: Array, Phi: Array) -> Array:
    r"""The largest deficiency margin of ``We`` with respect to ``Phi``, shape ``(...)``.

    .. math:: c(W) = \sigma_{\min}(\Phi) - \|W - \Phi\|_F

    :math:`W` has deficiency margin :math:`c > 0` iff :math:`c(W) \ge c`; then
    :math:`\sigma_{\min}(W) \ge c(W)` by Weyl's inequality. :math:`\sigma_{\min}` is the smallest of the
    :math:`\min(d_N, d_0)` singular values. Arora, Cohen, Golowich & Hu,
    `arXiv:1810.02281 <https://arxiv.org/abs/1810.02281>`_ (THEOREMS.md §3, definition CONFIRMED, secondary).

    Examples
    --------
    >>> import numpy as np, linnet as ln
    >>> float(ln.theory.deficiency_margin(np.array([[0.5, 0.0]]), np.array([[1.0, 0.0]])))
    0.5
    """
    We, xp = _matrix(We, "We")
    Phi, _ = _matrix(Phi, "Phi", xp)
    if tuple(We.shape[-2:]) != tuple(Phi.shape[-2:]):
        raise ValueError(
            f"`We` must have the shape of `Phi` (..., {Phi.shape[-2]}, {Phi.shape[-1]}), got {tuple(We.shape)}"
        )
    smin = xp.min(xp.linalg.svdvals(Phi), axis=-1)
    return smin - _fro(We - Phi, xp)


class ACGHConstants(NamedTuple):
    """Constants of Theorem 1 of ACGH (arrays shaped like the batch of ``Phi``).

    Fields: ``delta_max`` (largest admissible balancedness), ``eta_max`` (largest admissible step size),
    ``rate`` (per-step contraction factor :math:`1 - \\eta c^{2(N-1)/N}` at step ``eta``), ``eta`` (the step the
    rate refers to; ``eta_max`` unless given).
    """

    delta_max: Array
    eta_max: Array
    rate: Array
    eta: Array


def acgh_constants(Phi: Array, c: Any, depth: int, *, eta: Any = None) -> ACGHConstants:
    r"""The constants of the GD convergence theorem of Arora, Cohen, Golowich & Hu (Theorem 1).

    For whitened data, :math:`\ell(W) = \tfrac12\|W - \Phi\|_F^2`, no bottleneck, an initialization that is
    :math:`\delta`-balanced with

    .. math::

        \delta \le \delta_{\max} = \frac{c^2}{256\,N^3\,\|\Phi\|_F^{2(N-1)/N}},

    whose end-to-end matrix has deficiency margin :math:`c`, and a step size

    .. math::

        \eta \le \eta_{\max} = \frac{c^{(4N-2)/N}}{6144\,N^3\,\|\Phi\|_F^{(6N-4)/N}},

    gradient descent satisfies :math:`\ell(t) \le \ell(0)\,(1 - \eta c^{2(N-1)/N})^t`, hence
    :math:`\ell(T) \le \epsilon` for :math:`T \ge \log(\ell(0)/\epsilon) / (\eta c^{2(N-1)/N})`
    (:func:`acgh_steps`).

    Parameters
    ----------
    Phi : array ``(..., d_N, d_0)``
    c : float or array ``(...)``, the deficiency margin (``> 0``)
    depth : int, :math:`N`
    eta : float or array, optional
        Step size at which ``rate`` is evaluated (default ``eta_max``).

    References
    ----------
    Arora, Cohen, Golowich & Hu, `A Convergence Analysis of Gradient Descent for Deep Linear Neural Networks
    <https://arxiv.org/abs/1810.02281>`_, ICLR 2019, Theorem 1. THEOREMS.md §3: constants CONFIRMED (secondary
    source: a transcription of N. Cohen's lecture notes).

    Examples
    --------
    >>> import numpy as np, linnet as ln
    >>> k = ln.theory.acgh_constants(np.array([[2.0]]), 0.5, 1)
    >>> float(k.delta_max) == 0.5**2 / 256, float(k.eta_max) == 0.5**2 / (6144 * 2.0**2)
    (True, True)
    """
    Phi, xp = _matrix(Phi, "Phi")
    N = _depth(depth)
    if _is_array(c):
        _check_all(c > 0, "c", "> 0", c)
        c = xp.astype(c, Phi.dtype)
    else:
        c = check_positive(c, "c")
    nrm = _fro(Phi, xp)
    delta_max = c**2 / (256.0 * N**3 * nrm ** (2.0 * (N - 1) / N))
    eta_max = c ** ((4.0 * N - 2) / N) / (6144.0 * N**3 * nrm ** ((6.0 * N - 4) / N))
    if eta is None:
        eta = eta_max
    elif _is_array(eta):
        _check_all(eta > 0, "eta", "> 0", eta)
    else:
        eta = check_positive(eta, "eta")
    rate = 1.0 - eta * c ** (2.0 * (N - 1) / N)
    if not hasattr(rate, "shape"):
        rate = xp.asarray(rate, dtype=Phi.dtype)
    if not _is_array(eta):
        eta = xp.asarray(eta, dtype=Phi.dtype)
    return ACGHConstants(delta_max, eta_max, rate, eta)


def acgh_steps(loss0: Any, eps: Any, eta: Any, c: Any, depth: int) -> Any:
    r"""Iteration count of ACGH Theorem 1: :math:`T_{\rm thm} = \log(\ell(0)/\epsilon)\,/\,(\eta\,c^{2(N-1)/N})`.

    Real-valued (take ``ceil`` for a step count); zero when :math:`\ell(0) \le \epsilon`. THEOREMS.md §3,
    CONFIRMED (secondary). Arguments may be floats or arrays.

    Examples
    --------
    >>> import linnet as ln
    >>> round(float(ln.theory.acgh_steps(1.0, 1e-2, 0.1, 1.0, 2)), 6)
    46.051702
    """
    N = _depth(depth)
    xp, loss0, eps, eta, c = _scalars(loss0, eps, eta, c, names=("loss0", "eps", "eta", "c"))
    for a, name in ((loss0, "loss0"), (eps, "eps"), (eta, "eta"), (c, "c")):
        _check_all(a > 0, name, "> 0", a)
    t = xp.log(loss0 / eps) / (eta * c ** (2.0 * (N - 1) / N))
    return xp.maximum(t, xp.zeros_like(t))


def margin_probability(phi_norm: Any, s: Any, d0: int) -> Any:
    r"""Probability that :math:`w \sim \mathcal N(0, s^2 I_{d_0})` has a positive deficiency margin w.r.t. :math:`\phi`.

    For a single output (:math:`d_N = 1`) the margin is positive iff :math:`\|w - \phi\| < \|\phi\|`, so

    .. math::

        \Pr[c(w) > 0] = F_{\chi'^2_{d_0}(\lambda)}(\lambda), \qquad \lambda = \|\phi\|^2 / s^2,

    the noncentral :math:`\chi^2` CDF with :math:`d_0` degrees of freedom evaluated at its own noncentrality.
    It tends to :math:`1/2` as :math:`s\sqrt{d_0}/\|\phi\| \to 0`. THEOREMS.md §3: **DERIVED+VERIFIED** (Monte
    Carlo), a replacement for ACGH's Theorem 2, whose constants are UNCONFIRMED and not used here.
    Evaluated on the host with :func:`scipy.stats.ncx2`; array inputs give an array of their namespace.

    Examples
    --------
    >>> import linnet as ln
    >>> p = ln.theory.margin_probability(1.0, 0.01, 10)
    >>> 0.45 < float(p) < 0.5
    True
    """
    from scipy.stats import ncx2

    if isinstance(d0, bool) or not hasattr(d0, "__index__") or int(d0) < 1:
        raise ValueError(f"`d0` must be an int >= 1, got {d0!r}")
    arrays = [a for a in (phi_norm, s) if _is_array(a)]
    pn = np.asarray(to_numpy(phi_norm), dtype=np.float64)
    sn = np.asarray(to_numpy(s), dtype=np.float64)
    if not np.all(np.isfinite(pn)) or np.any(pn <= 0):
        raise ValueError(f"`phi_norm` must be finite and > 0, got {phi_norm!r}")
    if not np.all(np.isfinite(sn)) or np.any(sn <= 0):
        raise ValueError(f"`s` must be finite and > 0, got {s!r}")
    lam = pn**2 / sn**2
    p = ncx2.cdf(lam, int(d0), lam)
    if arrays:
        xp = namespace(*arrays)
        return from_host(p, xp, arrays[0].dtype if xp.isdtype(arrays[0].dtype, "real floating") else None)
    return float(p)


# ---------------------------------------------------------------------------------------------------------------
# §4 preconditioner
# ---------------------------------------------------------------------------------------------------------------
def preconditioner_min_eig(W: Array, depth: int) -> Array:
    r"""Smallest eigenvalue of the end-to-end preconditioner :math:`P_W` of Arora, Cohen & Hazan.

    .. math::

        \lambda_{\min}(P_W) = \begin{cases} N\,\sigma_{\min}(W)^{2(N-1)/N} & d_0 = d_N,\\
        \sigma_{\min}(W)^{2(N-1)/N} & d_0 \ne d_N,\end{cases}

    so in all cases :math:`\lambda_{\min}(P_W) \ge \sigma_{\min}(W)^{2(N-1)/N}` (the mechanism of the ACGH rate).
    THEOREMS.md §4: spectrum CONFIRMED (secondary: FODL Lecture 4, Prop 1); the two cases DERIVED+VERIFIED.
    `arXiv:1802.06509 <https://arxiv.org/abs/1802.06509>`_. Shape ``(...)``.

    Examples
    --------
    >>> import numpy as np, linnet as ln
    >>> float(ln.theory.preconditioner_min_eig(np.diag([4.0, 9.0]), 2))
    8.0
    """
    W, xp = _matrix(W, "W")
    N = _depth(depth)
    smin = xp.min(xp.linalg.svdvals(W), axis=-1)
    lam = xp.ones_like(smin) if N == 1 else smin ** (2.0 * (N - 1) / N)
    return N * lam if W.shape[-1] == W.shape[-2] else lam


# ---------------------------------------------------------------------------------------------------------------
# §5 reduced-rank regression and the global minimum of the deep problem
# ---------------------------------------------------------------------------------------------------------------
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
    if not isinstance(loss, SquaredLoss):
        raise ValueError(f"`loss` must be a SquaredLoss, got {type(loss).__name__}")
    if isinstance(rank, bool) or not hasattr(rank, "__index__") or int(rank) < 0:
        raise ValueError(f"`rank` must be an int >= 0, got {rank!r}")
    r = int(rank)
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
    if isinstance(p, bool) or not hasattr(p, "__index__") or not 1 <= int(p) < min(n, q):
        raise ValueError(f"`p` must be an int with 1 <= p < min(n, q) = {min(n, q)}, got {p!r}")
    p = int(p)
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


# ---------------------------------------------------------------------------------------------------------------
# §8 Hardt–Ma residual networks
# ---------------------------------------------------------------------------------------------------------------
def _square(R, name="R"):
    R, xp = _matrix(R, name)
    if R.shape[-1] != R.shape[-2]:
        raise ValueError(f"`{name}` must be square (..., d, d), got {tuple(R.shape)}")
    return R, xp


def hardt_ma_norm_bound(R: Array, depth: int) -> Array:
    r"""Theorem 2.1 of Hardt & Ma: the norm of a small global optimum of a depth-:math:`\ell` residual net.

    .. math::

        |||A^\star||| = \max_i\|A_i^\star\|_2 \le \frac{2(\sqrt\pi + \sqrt{3\gamma})^2}{\ell}, \qquad
        \gamma = \max\{|\log\sigma_{\max}(R)|, |\log\sigma_{\min}(R)|\},

    stated for :math:`\ell \ge 3\gamma` (and, implicitly, :math:`\det R > 0`: THEOREMS.md §8). Hardt & Ma,
    `Identity Matters in Deep Learning <https://arxiv.org/abs/1611.04231>`_, ICLR 2017, Theorem 2.1 (constant
    CONFIRMED). Shape ``(...)``.

    Examples
    --------
    >>> import numpy as np, linnet as ln
    >>> round(float(ln.theory.hardt_ma_norm_bound(np.eye(3), 10)), 6)
    0.628319
    """
    R, xp = _square(R)
    L = _depth(depth)
    s = xp.linalg.svdvals(R)
    if not bool(xp.all(xp.min(s, axis=-1) > 0)):
        raise ValueError("`R` must be non-singular (gamma = max |log sigma(R)| is infinite otherwise)")
    gamma = xp.maximum(xp.abs(xp.log(xp.max(s, axis=-1))), xp.abs(xp.log(xp.min(s, axis=-1))))
    return 2.0 * (math.sqrt(math.pi) + xp.sqrt(3.0 * gamma)) ** 2 / L


def _orth_root(Q: np.ndarray, q: int) -> np.ndarray:
    """A real ``q``-th root of ``Q`` in SO(d), from the real Schur form (host; handles eigenvalues -1)."""
    from scipy.linalg import schur

    T, Z = schur(Q, output="real")
    d = Q.shape[0]
    M = np.zeros((d, d))
    minus = []
    i = 0
    while i < d:
        if i + 1 < d and T[i + 1, i] != 0.0:  # a 2x2 rotation block [[c, -s], [s, c]]
            theta = math.atan2(0.5 * (T[i + 1, i] - T[i, i + 1]), 0.5 * (T[i, i] + T[i + 1, i + 1]))
            c, s = math.cos(theta / q), math.sin(theta / q)
            M[i, i], M[i, i + 1], M[i + 1, i], M[i + 1, i + 1] = c, -s, s, c
            i += 2
            continue
        if T[i, i] > 0:
            M[i, i] = 1.0
        else:
            minus.append(i)
        i += 1
    # det Q = +1: the eigenvalues -1 come in pairs; each pair is a rotation by pi, whose root turns by pi/q
    c, s = math.cos(math.pi / q), math.sin(math.pi / q)
    for a, b in zip(minus[0::2], minus[1::2]):
        M[a, a], M[a, b], M[b, a], M[b, b] = c, -s, s, c
    return Z @ M @ Z.T


def hardt_ma_factorization(R: Array, depth: int, q_rot: Optional[int] = None) -> tuple:
    r"""Small-norm residual layers :math:`A_1..A_\ell` with :math:`(I + A_\ell)\cdots(I + A_1) = R`.

    Polar decomposition :math:`R = QP` (:math:`Q \in SO(d)` needs :math:`\det R > 0`; :math:`P \succ 0`). The
    first :math:`q_2 = \ell - q_1` layers are :math:`A = P^{1/q_2} - I` and the last :math:`q_1` layers are
    :math:`A = Q^{1/q_1} - I`, the real root taken from the real Schur form (a pair of eigenvalues :math:`-1`
    is a rotation by :math:`\pi`, rooted as a rotation by :math:`\pi/q_1`). Then

    .. math:: \|Q^{1/q_1} - I\|_2 = 2\sin\frac{\theta_{\max}}{2q_1} \le \frac\pi{q_1},\qquad
              \|P^{1/q_2} - I\|_2 \le e^{\gamma/q_2} - 1 .

    Default :math:`q_1 = \mathrm{round}(\ell\sqrt\pi/(\sqrt\pi + \sqrt{3\gamma}))` (the split of Hardt & Ma's
    proof, THEOREMS.md §8), kept in :math:`[1, \ell-1]` when both factors differ from :math:`I`. Computed on the
    host (SciPy), returned in ``R``'s namespace and dtype. Construction DERIVED+VERIFIED (THEOREMS.md §8);
    Hardt & Ma, `arXiv:1611.04231 <https://arxiv.org/abs/1611.04231>`_, Theorem 2.1 and App. A.1.

    Parameters
    ----------
    R : array ``(d, d)`` with ``det R > 0``
    depth : int, :math:`\ell \ge 1`
    q_rot : int, optional, the number of rotation layers :math:`q_1` (``0 <= q_rot <= depth``)

    Returns
    -------
    tuple of ``depth`` arrays ``(d, d)``, layer order 1..ℓ (``A_1`` first).

    Examples
    --------
    >>> import numpy as np, linnet as ln
    >>> R = np.array([[0.0, -2.0], [2.0, 0.0]])
    >>> As = ln.theory.hardt_ma_factorization(R, 8)
    >>> bool(np.allclose(ln.end_to_end(As, residual=True), R))
    True
    """
    R, xp = _square(R)
    if R.ndim != 2:
        raise ValueError(f"`R` must be one (d, d) matrix, got shape {tuple(R.shape)}")
    L = _depth(depth)
    Rh = np.asarray(to_numpy(R), dtype=np.float64)
    d = Rh.shape[0]
    det = np.linalg.det(Rh)
    if not det > 0:
        raise ValueError(
            f"`R` must have det R > 0 (every I + A with ||A|| < 1 has positive determinant), got det R = {det:.3g}"
        )
    U, s, Vt = np.linalg.svd(Rh)
    Q = U @ Vt
    if L == 1:
        return (from_host(Rh - np.eye(d), xp, R.dtype),)
    gamma = float(np.max(np.abs(np.log(s))))
    eye = np.eye(d)
    q_is_id = np.linalg.norm(Q - eye) <= 1e-14 * d
    p_is_id = gamma <= 1e-15
    if q_rot is None:
        q1 = int(round(L * math.sqrt(math.pi) / (math.sqrt(math.pi) + math.sqrt(3 * gamma))))
        lo = 0 if q_is_id else 1
        hi = L if p_is_id else L - 1
        q1 = min(max(q1, lo), hi)
    else:
        if isinstance(q_rot, bool) or not hasattr(q_rot, "__index__") or not 0 <= int(q_rot) <= L:
            raise ValueError(f"`q_rot` must be an int in [0, depth = {L}], got {q_rot!r}")
        q1 = int(q_rot)
        if (q1 == 0 and not q_is_id) or (q1 == L and not p_is_id):
            raise ValueError(f"`q_rot` = {q1} leaves no layer for a non-identity factor of R")
    q2 = L - q1
    layers = []
    if q2 > 0:
        Pq = (Vt.T * s ** (1.0 / q2)) @ Vt
        layers += [Pq - eye] * q2
    if q1 > 0:
        Qq = _orth_root(Q, q1)
        layers += [Qq - eye] * q1
    return tuple(from_host(A, xp, R.dtype) for A in layers)


def hardt_ma_loss(R: Array, Sigma: Array) -> SquaredLoss:
    r"""The population squared loss whose double is the Hardt–Ma risk.

    For :math:`y = Rx + \xi`, :math:`\xi \sim \mathcal N(0, I_d)`, :math:`\mathbb E xx^\top = \Sigma`:
    :math:`\Sigma_{yx} = R\Sigma`, :math:`\Sigma_{yy} = R\Sigma R^\top + I`, and
    :math:`f = \mathbb E\|\hat y - y\|^2 = 2\,\ell` with :math:`\ell` this loss (THEOREMS.md §0: Hardt & Ma have no
    :math:`\tfrac12`).
    """
    R, xp = _square(R)
    Sigma, _ = _square(Sigma, "Sigma")
    if Sigma.shape[-1] != R.shape[-1]:
        raise ValueError(f"`Sigma` must be ({R.shape[-1]}, {R.shape[-1]}) like `R`, got {tuple(Sigma.shape)}")
    d = R.shape[-1]
    Syx = xp.matmul(R, Sigma)
    Syy = xp.matmul(Syx, R.mT) + xp.eye(d, dtype=R.dtype)
    return SquaredLoss.population(Sigma, Syx, Syy)


def hardt_ma_risk(As: Sequence[Array], R: Array, Sigma: Array) -> Array:
    r"""The Hardt–Ma risk :math:`f(A) = \|E\,\Sigma^{1/2}\|_F^2 + d`, :math:`E = (I + A_\ell)\cdots(I + A_1) - R`.

    Claim 2.3 of Hardt & Ma, `arXiv:1611.04231 <https://arxiv.org/abs/1611.04231>`_ (CONFIRMED): the
    noise-free part plus :math:`C = \mathbb E\|\xi\|^2 = d`; **no** :math:`\tfrac12`. Shape ``(...)``.
    """
    from .calculus import loss as _loss

    return 2.0 * _loss(hardt_ma_loss(R, Sigma), As, residual=True)


def hardt_ma_risk_grad(As: Sequence[Array], R: Array, Sigma: Array) -> tuple:
    r"""Gradient of :func:`hardt_ma_risk` (Lemma 2.4 of Hardt & Ma, in the order the chain rule gives):

    .. math::

        \frac{\partial f}{\partial A_i} = 2\,(I + A_{i+1})^\top\cdots(I + A_\ell)^\top\,E\,\Sigma\,
        (I + A_1)^\top\cdots(I + A_{i-1})^\top ,

    i.e. :math:`2S_i^\top E\Sigma P_{i-1}^\top` with :math:`S_i = (I+A_\ell)\cdots(I+A_{i+1})` and
    :math:`P_{i-1} = (I+A_{i-1})\cdots(I+A_1)`; computed as twice the engine's residual-net gradient of
    :func:`hardt_ma_loss`. THEOREMS.md §8 transcribes the lemma as
    :math:`(I + A_\ell^\top)\cdots(I + A_{i+1}^\top)E\Sigma(I + A_{i-1}^\top)\cdots(I + A_1^\top)`, the
    transposed factors in the reverse order; read literally that is a different (wrong) matrix for
    non-commuting layers (the tests check both).
    """
    from .calculus import grad as _grad

    return tuple(2.0 * g for g in _grad(hardt_ma_loss(R, Sigma), As, residual=True))


class GradientDomination(NamedTuple):
    """Both sides of Hardt–Ma eq. (2.3): ``lhs`` :math:`\\|\\nabla f\\|_F^2`, ``rhs`` = ``coefficient`` × ``excess``
    with ``excess`` :math:`= f - C_{\\rm opt}` (``lhs``, ``rhs``, ``excess`` are ``None`` without ``R``)."""

    lhs: Optional[Array]
    rhs: Optional[Array]
    coefficient: Array
    excess: Optional[Array]


def hardt_ma_gradient_domination(
    As: Sequence[Array], Sigma: Array, tau: float, corrected: bool = True, *, R: Optional[Array] = None
) -> GradientDomination:
    r"""Gradient domination of Hardt & Ma (eq. 2.3) in the ball :math:`|||A||| \le \tau < 1`.

    Corrected form (default), the one the proof supports (THEOREMS.md §8, **DERIVED+VERIFIED**):

    .. math::

        \|\nabla f(A)\|_F^2 \ge 4\ell(1 - \tau)^{2(\ell-1)}\,
            \frac{\sigma_{\min}(\Sigma)^2}{\sigma_{\max}(\Sigma)}\,(f(A) - C_{\rm opt}).

    With ``corrected=False``, the form printed in the version of
    `arXiv:1611.04231 <https://arxiv.org/abs/1611.04231>`_ read for THEOREMS.md:
    :math:`4\ell(1-\tau)^{\ell-1}\sigma_{\min}(\Sigma)^2(f - C_{\rm opt})`. **The printed form is false:** the
    proof bounds :math:`\|\nabla_{A_i} f\|_F \ge 2(1-\tau)^{\ell-1}\sigma_{\min}(\Sigma)\|E\|_F`, whose square has
    exponent :math:`2(\ell-1)`, and :math:`f - C = \|E\Sigma^{1/2}\|_F^2 \le \sigma_{\max}(\Sigma)\|E\|_F^2` costs
    the factor :math:`1/\sigma_{\max}(\Sigma)`. At :math:`A_i = -\tau I`, :math:`\Sigma = I`, :math:`\ell = 6`,
    :math:`\tau = 0.3` the corrected bound is an equality and the printed one exceeds the left side (18.77 vs
    3.15). (Another arXiv version may print the exponent correctly; that could not be checked.)
    :math:`C_{\rm opt} = d` (every :math:`R` is reachable).

    Parameters
    ----------
    As : tuple of ``ℓ`` arrays ``(..., d, d)``, expected in the ball ``max_i ||A_i||_2 <= tau`` (not checked)
    Sigma : array ``(d, d)`` SPD, the input covariance
    tau : float in ``[0, 1)``
    corrected : bool
    R : array ``(d, d)``, optional; the target. Without it only ``coefficient`` is returned.
    """
    As, xp = check_weights(As, name="As")
    Sigma, _ = _square(Sigma, "Sigma")
    tau = check_positive(tau, "tau", allow_zero=True)
    if tau >= 1:
        raise ValueError(f"`tau` must be in [0, 1), got {tau!r}")
    L = len(As)
    s = xp.linalg.eigvalsh(0.5 * (Sigma + Sigma.mT))
    smin, smax = xp.min(s, axis=-1), xp.max(s, axis=-1)
    if not bool(xp.all(smin > 0)):
        raise ValueError("`Sigma` must be symmetric positive definite")
    if corrected:
        coef = 4.0 * L * (1.0 - tau) ** (2 * (L - 1)) * smin**2 / smax
    else:
        coef = 4.0 * L * (1.0 - tau) ** (L - 1) * smin**2
    if R is None:
        return GradientDomination(None, None, coef, None)
    d = Sigma.shape[-1]
    f = hardt_ma_risk(As, R, Sigma)
    gs = hardt_ma_risk_grad(As, R, Sigma)
    lhs = sum(xp.sum(g * g, axis=(-2, -1)) for g in gs)
    excess = f - float(d)
    return GradientDomination(lhs, coef * excess, coef, excess)


# ---------------------------------------------------------------------------------------------------------------
# §9 Bartlett–Helmbold–Long
# ---------------------------------------------------------------------------------------------------------------
def bhl_sufficient_lr(eigs: Any, depth: int) -> Any:
    r"""A sufficient step size for identity-initialised GD on symmetric positive definite :math:`\Phi`.

    .. math:: \eta \le \frac{1}{L\,\max(1, \lambda_{\max})^{2-2/L}}

    makes every mode :math:`\theta \leftarrow \theta - \eta\theta^{L-1}(\theta^L - \lambda)`, :math:`\theta_0 = 1`,
    converge monotonically to :math:`\lambda^{1/L}`. THEOREMS.md §9: **DERIVED+VERIFIED, linnet's sufficient
    condition, not the constant of** Bartlett, Helmbold & Long, `arXiv:1802.06093
    <https://arxiv.org/abs/1802.06093>`_ (whose constants are UNCONFIRMED).

    Parameters
    ----------
    eigs : array ``(..., d)`` of the eigenvalues of :math:`\Phi` (all ``> 0``), or a sequence of floats
    depth : int, :math:`L`

    Examples
    --------
    >>> import linnet as ln
    >>> float(ln.theory.bhl_sufficient_lr([0.5, 4.0], 2))
    0.125
    """
    L = _depth(depth)
    if not _is_array(eigs):
        eigs = np.asarray(eigs, dtype=np.float64)
        if eigs.ndim == 0:
            eigs = eigs[None]
    xp = namespace(eigs)
    if eigs.ndim < 1 or not xp.isdtype(eigs.dtype, "real floating"):
        raise ValueError(f"`eigs` must be a real array (..., d), got {eigs!r}")
    check_finite(eigs, "eigs", xp=xp)
    _check_all(eigs > 0, "eigs", "> 0 (symmetric positive definite Phi)", eigs)
    top = xp.maximum(xp.max(eigs, axis=-1), xp.ones_like(eigs[..., 0]))
    return 1.0 / (L * top ** (2.0 - 2.0 / L))


def bhl_mode_step(theta: Any, lam: Any, lr: Any, depth: int) -> Any:
    r"""One GD step of a mode of identity-initialised deep linear nets with symmetric :math:`\Phi` (§9):

    .. math:: \theta^+ = \theta - \eta\,\theta^{L-1}(\theta^L - \lambda).

    Every layer equals the same polynomial in :math:`\Phi`, so each eigenvalue :math:`\lambda` of :math:`\Phi`
    evolves by this scalar recursion (THEOREMS.md §9, DERIVED+VERIFIED). Broadcasts over arrays.

    Examples
    --------
    >>> import linnet as ln
    >>> float(ln.theory.bhl_mode_step(1.0, -1.0, 1.0, 3))
    -1.0
    """
    L = _depth(depth)
    xp, theta, lam, lr = _scalars(theta, lam, lr, names=("theta", "lam", "lr"))
    _check_all(lr > 0, "lr", "> 0", lr)
    return theta - lr * theta ** (L - 1) * (theta**L - lam)


# ---------------------------------------------------------------------------------------------------------------
# §10 Saxe, McClelland & Ganguli
# ---------------------------------------------------------------------------------------------------------------
def _tau(tau):
    return check_positive(tau, "tau")


def saxe_mode(t: Any, s: Any, u0: Any, *, tau: float = 1.0) -> Any:
    r"""Mode strength of a two-layer net under gradient flow from a decoupled balanced start (Saxe eq. 12).

    .. math:: u(t) = \frac{s\,e^{2st/\tau}}{e^{2st/\tau} - 1 + s/u_0} = \frac{s}{1 + (s/u_0 - 1)e^{-2st/\tau}},

    the solution of :math:`\tau\dot u = 2u(s - u)`, :math:`u(0) = u_0 > 0` (the second form is evaluated: no
    overflow for :math:`t \ge 0`). In linnet's normalisation (THEOREMS.md §10) :math:`s = \sigma_\alpha(\Lambda_{yx})`
    of whitened data, :math:`\tau = 1` and :math:`t = \eta k` after :math:`k` GD steps. Saxe, McClelland & Ganguli,
    `arXiv:1312.6120 <https://arxiv.org/abs/1312.6120>`_, eq. (12), CONFIRMED. Broadcasts.

    Examples
    --------
    >>> import linnet as ln
    >>> float(ln.theory.saxe_mode(0.0, 2.0, 0.1)), round(float(ln.theory.saxe_mode(50.0, 2.0, 0.1)), 12)
    (0.1, 2.0)
    """
    tau = _tau(tau)
    xp, t, s, u0 = _scalars(t, s, u0, names=("t", "s", "u0"))
    _check_all(s > 0, "s", "> 0", s)
    _check_all(u0 > 0, "u0", "> 0", u0)
    _check_all(t >= 0, "t", ">= 0", t)
    return s / (1.0 + (s / u0 - 1.0) * xp.exp(-2.0 * s * t / tau))


def saxe_time(s: Any, u0: Any, uf: Any, *, tau: float = 1.0) -> Any:
    r"""Time for a two-layer mode to go from :math:`u_0` to :math:`u_f` (Saxe eq. 11).

    .. math:: t = \frac{\tau}{2s}\ln\frac{u_f(s - u_0)}{u_0(s - u_f)}

    :math:`u_0` and :math:`u_f` must lie on the same side of :math:`s` (negative result: :math:`u_f` lies before
    :math:`u_0` on the trajectory). `arXiv:1312.6120 <https://arxiv.org/abs/1312.6120>`_, eq. (11), CONFIRMED.

    Examples
    --------
    >>> import linnet as ln
    >>> round(float(ln.theory.saxe_time(1.0, 0.5, 0.9)), 6)
    1.098612
    """
    tau = _tau(tau)
    xp, s, u0, uf = _scalars(s, u0, uf, names=("s", "u0", "uf"))
    for a, name in ((s, "s"), (u0, "u0"), (uf, "uf")):
        _check_all(a > 0, name, "> 0", a)
    _check_all((s - u0) * (s - uf) > 0, "uf", "on the same side of s as u0 (the flow never crosses s)", uf)
    return tau / (2.0 * s) * xp.log(uf * (s - u0) / (u0 * (s - uf)))


def saxe_deep_rhs(u: Any, s: Any, depth: int, *, tau: float = 1.0) -> Any:
    r"""Right side of Saxe eq. (15) for a balanced depth-:math:`D` mode: :math:`\dot u = D\,u^{2-2/D}(s - u)/\tau`.

    :math:`D` counts weight matrices (Saxe's :math:`N_l - 1`); it equals the scalar case of the end-to-end
    dynamics of §4. `arXiv:1312.6120 <https://arxiv.org/abs/1312.6120>`_, eq. (15), CONFIRMED.
    """
    D = _depth(depth)
    tau = _tau(tau)
    xp, u, s = _scalars(u, s, names=("u", "s"))
    _check_all(u >= 0, "u", ">= 0", u)
    return D * u ** (2.0 - 2.0 / D) * (s - u) / tau


_GL_NODES = 12
_GL_TAIL = 24


def _gauss_legendre(n: int):
    x, w = np.polynomial.legendre.leggauss(n)
    return x, w


def _deep_T(v, beta: float, xp):
    r"""Antiderivative :math:`T(v) = \int_0^v (1 + e^{-x})^\beta dx` (array code, elementwise).

    :math:`T(v) = v + H(v)` with :math:`h(x) = (1+e^{-x})^\beta - 1`. For :math:`v \ge 0`,
    :math:`H(v) = \int_{e^{-v}}^1 \mathrm{expm1}(\beta\,\mathrm{log1p}(y))/y\,dy` (analytic integrand, one
    Gauss–Legendre rule); for :math:`v < 0`, composite Gauss–Legendre on panels of width :math:`\le 1`.
    """
    dt = v.dtype
    if beta == 0.0:
        return v * 1
    # v >= 0 part
    xt, wt = _gauss_legendre(_GL_TAIL)
    xt = from_host(xt, xp, dt)
    wt = from_host(wt, xp, dt)
    vp = xp.maximum(v, xp.zeros_like(v))
    a = xp.exp(-vp)[..., None]  # lower limit in y
    y = a + (1.0 - a) * (xt + 1.0) / 2.0
    g = xp.expm1(beta * xp.log1p(y)) / y
    Hpos = xp.sum(g * wt, axis=-1) * (1.0 - a[..., 0]) / 2.0
    # v < 0 part: H(v) = -int_v^0 h
    vn = xp.minimum(v, xp.zeros_like(v))
    K = max(1, int(math.ceil(float(xp.max(-vn)))))
    xn, wn = _gauss_legendre(_GL_NODES)
    nodes = (np.arange(K)[:, None] + (xn[None, :] + 1.0) / 2.0).reshape(-1) / K  # in (0, 1)
    weights = np.tile(wn / (2.0 * K), K)
    nodes = from_host(nodes, xp, dt)
    weights = from_host(weights, xp, dt)
    x = vn[..., None] * nodes  # points in (v, 0)
    h = xp.expm1(beta * xp.log1p(xp.exp(-x)))
    Hneg = vn * xp.sum(h * weights, axis=-1)  # -int_v^0 h = v * mean of h over (v, 0)
    return v + xp.where(v >= 0, Hpos, Hneg)


def _deep_checks(s, u0, name_u="u0"):
    _check_all(s > 0, "s", "> 0", s)
    _check_all((u0 > 0) & (u0 < s), name_u, "in (0, s) (the deep solution is for modes growing from below s)", u0)


def _to_v(u, s, xp):
    return xp.log(u / (s - u))


def saxe_deep_time(s: Any, u0: Any, uf: Any, depth: int, *, tau: float = 1.0) -> Any:
    r"""Exact time for a balanced depth-:math:`D` mode to go from :math:`u_0` to :math:`u_f` under eq. (15).

    Separating variables in :math:`\tau\dot u = Du^{2-2/D}(s-u)` and substituting
    :math:`v = \ln\frac{u}{s-u}` (so :math:`u = s/(1+e^{-v})`) gives, with :math:`\beta = 1 - 2/D`,

    .. math::

        t = \frac{\tau}{D\,s^{1+\beta}}\int_{v_0}^{v_f}(1 + e^{-v})^{\beta}\,dv ,

    an integral with an analytic integrand, evaluated by Gauss–Legendre quadrature to round-off (no ODE
    solver). :math:`D = 2` reduces to eq. (11) exactly. Needs :math:`0 < u_0, u_f < s`. Saxe, McClelland &
    Ganguli, `arXiv:1312.6120 <https://arxiv.org/abs/1312.6120>`_, eq. (15) (CONFIRMED); the quadrature is
    linnet's. Broadcasts.

    Examples
    --------
    >>> import linnet as ln
    >>> a = ln.theory.saxe_deep_time(1.0, 0.5, 0.9, 2); b = ln.theory.saxe_time(1.0, 0.5, 0.9)
    >>> abs(float(a) - float(b)) < 1e-14
    True
    """
    D = _depth(depth)
    tau = _tau(tau)
    xp, s, u0, uf = _scalars(s, u0, uf, names=("s", "u0", "uf"))
    _deep_checks(s, u0)
    _deep_checks(s, uf, "uf")
    if D == 1:  # linear flow tau u' = s - u
        return tau * xp.log((s - u0) / (s - uf))
    beta = 1.0 - 2.0 / D
    v0, vf = xp.broadcast_arrays(_to_v(u0, s, xp), _to_v(uf, s, xp))
    return tau / (D * s ** (1.0 + beta)) * (_deep_T(vf, beta, xp) - _deep_T(v0, beta, xp))


def saxe_deep_mode(t: Any, s: Any, u0: Any, depth: int, *, tau: float = 1.0, max_iter: int = 200) -> Any:
    r"""Mode strength :math:`u(t)` of a balanced depth-:math:`D` mode (eq. 15), by inverting :func:`saxe_deep_time`.

    Solves :math:`T(v) = T(v_0) + tDs^{1+\beta}/\tau` for :math:`v` (notation of :func:`saxe_deep_time`) by
    Newton's method; :math:`T` is increasing and concave, so Newton from :math:`v_0` converges monotonically.
    Returns :math:`u = s/(1+e^{-v})`. :math:`D = 2` reproduces eq. (12). Needs :math:`0 < u_0 < s`,
    :math:`t \ge 0`. Broadcasts.

    Examples
    --------
    >>> import linnet as ln
    >>> a = ln.theory.saxe_deep_mode(1.5, 2.0, 0.01, 2); b = ln.theory.saxe_mode(1.5, 2.0, 0.01)
    >>> abs(float(a) - float(b)) < 1e-12
    True
    """
    D = _depth(depth)
    tau = _tau(tau)
    xp, t, s, u0 = _scalars(t, s, u0, names=("t", "s", "u0"))
    _deep_checks(s, u0)
    _check_all(t >= 0, "t", ">= 0", t)
    t, s, u0 = xp.broadcast_arrays(t, s, u0)
    if D == 1:  # linear flow tau u' = s - u
        return s - (s - u0) * xp.exp(-t / tau)
    beta = 1.0 - 2.0 / D  # in [0, 1): T is concave, Newton from v0 is monotone
    v0 = _to_v(u0, s, xp)
    T0 = _deep_T(v0, beta, xp)
    target = T0 + t * D * s ** (1.0 + beta) / tau
    v = v0 * 1
    hi = v0 + (target - T0)  # T' >= 1, so the root is at most this
    eps = float(xp.finfo(v.dtype).eps)
    for _ in range(max_iter):
        F = _deep_T(v, beta, xp) - target
        dF = (1.0 + xp.exp(-v)) ** beta
        step = -F / dF
        v_new = xp.minimum(xp.maximum(v + step, v), hi)
        done = bool(xp.all(xp.abs(v_new - v) <= 4 * eps * xp.maximum(xp.abs(v), xp.ones_like(v))))
        v = v_new
        if done:
            break
    return s / (1.0 + xp.exp(-v))


def saxe_time_deep_limit(s: Any, u0: Any, uf: Any, n_layers: Any, *, tau: float = 1.0) -> Any:
    r"""Learning time in the infinite-depth limit (Saxe eq. 17), for :math:`\tau\dot u = N_l u^2(s - u)` (eq. 16).

    .. math::

        t = \frac{\tau}{N_l}\left[\frac1{s^2}\log\frac{u_f(u_0 - s)}{u_0(u_f - s)} + \frac1{s u_0}
            - \frac1{s u_f}\right]

    :math:`N_l` is Saxe's number of layers of units (large; eq. 15 with :math:`D = N_l - 1` approaches it).
    `arXiv:1312.6120 <https://arxiv.org/abs/1312.6120>`_, eq. (17), CONFIRMED and re-derived by partial
    fractions (THEOREMS.md §10).

    Examples
    --------
    >>> import linnet as ln
    >>> round(float(ln.theory.saxe_time_deep_limit(1.0, 0.5, 0.9, 1)), 6)
    3.086113
    """
    tau = _tau(tau)
    xp, s, u0, uf, n = _scalars(s, u0, uf, n_layers, names=("s", "u0", "uf", "n_layers"))
    _check_all(n > 0, "n_layers", "> 0", n_layers)
    for a, name in ((s, "s"), (u0, "u0"), (uf, "uf")):
        _check_all(a > 0, name, "> 0", a)
    _check_all((s - u0) * (s - uf) > 0, "uf", "on the same side of s as u0", uf)
    return tau / n * (xp.log(uf * (u0 - s) / (u0 * (uf - s))) / s**2 + 1.0 / (s * u0) - 1.0 / (s * uf))


# ---------------------------------------------------------------------------------------------------------------
# §13 sharpness
# ---------------------------------------------------------------------------------------------------------------
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
    Phi, xp = _matrix(Phi, "Phi")
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
        w = np.asarray(w, dtype=np.float64)
    xp, w, phi = _scalars(w, phi, names=("w", "phi"))
    if w.ndim < 1:
        raise ValueError(f"`w` must have the layers on its last axis (..., N), got shape {tuple(w.shape)}")
    _check_all(w != 0, "w", "nonzero (a global minimum with phi != 0)", w)
    return phi**2 * xp.sum(1.0 / (w * w), axis=-1)
