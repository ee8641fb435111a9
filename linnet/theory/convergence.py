r"""The gradient-descent convergence theorem of Arora, Cohen, Golowich & Hu (THEOREMS.md §3, §4).

Arora, Cohen, Golowich & Hu, `A Convergence Analysis of Gradient Descent for Deep Linear Neural Networks
<https://arxiv.org/abs/1810.02281>`_, ICLR 2019, Theorem 1: from a :math:`\delta`-balanced start whose end-to-end
matrix has deficiency margin :math:`c > 0` (:func:`deficiency_margin`), gradient descent with a small enough step
converges linearly (:func:`acgh_constants`, :func:`acgh_steps`). :func:`margin_probability` replaces the paper's
Theorem 2 (whose constants are UNCONFIRMED). The rate comes from the smallest eigenvalue of the end-to-end
preconditioner of Arora, Cohen & Hazan, `arXiv:1802.06509 <https://arxiv.org/abs/1802.06509>`_
(:func:`preconditioner_min_eig`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .._backend import from_host, namespace
from .._validate import check_matrix, check_real
from ._common import Array, _all_positive, _depth, _fro, _int, _is_array, _positive, _scalars

__all__ = [
    "deficiency_margin",
    "ACGHConstants",
    "acgh_constants",
    "acgh_steps",
    "margin_probability",
    "preconditioner_min_eig",
]


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
    We, xp = check_matrix(We, "We")
    Phi, _ = check_matrix(Phi, "Phi", xp=xp, other="`We`")
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
    Phi, xp = check_matrix(Phi, "Phi")
    N = _depth(depth)
    c = _positive(c, "c")
    if _is_array(c):
        c = xp.astype(c, Phi.dtype)
    nrm = _fro(Phi, xp)
    delta_max = c**2 / (256.0 * N**3 * nrm ** (2.0 * (N - 1) / N))
    eta_max = c ** ((4.0 * N - 2) / N) / (6144.0 * N**3 * nrm ** ((6.0 * N - 4) / N))
    eta = eta_max if eta is None else _positive(eta, "eta")
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
    _all_positive(loss0=loss0, eps=eps, eta=eta, c=c)
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

    d0 = _int(d0, "d0")
    arrays = [a for a in (phi_norm, s) if _is_array(a)]
    pn = check_real(phi_norm, "phi_norm", finite=False)
    sn = check_real(s, "s", finite=False)
    for host, value, name in ((pn, phi_norm, "phi_norm"), (sn, s, "s")):
        if not np.all(np.isfinite(host)) or np.any(host <= 0):
            raise ValueError(f"`{name}` must be finite and > 0, got {value!r}")
    lam = pn**2 / sn**2
    p = ncx2.cdf(lam, d0, lam)
    if not np.all(np.isfinite(p)):  # scipy's ncx2 gives NaN for very large noncentrality
        raise ValueError(
            "`phi_norm` / `s` too large: the noncentral chi-squared CDF is not computable for "
            f"(phi_norm/s)^2 = {float(np.max(lam)):.3g}"
        )
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
    W, xp = check_matrix(W, "W")
    N = _depth(depth)
    smin = xp.min(xp.linalg.svdvals(W), axis=-1)
    lam = xp.ones_like(smin) if N == 1 else smin ** (2.0 * (N - 1) / N)
    return N * lam if W.shape[-1] == W.shape[-2] else lam
