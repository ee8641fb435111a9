r"""Residual and identity-initialised deep linear nets: Hardt–Ma and Bartlett–Helmbold–Long (THEOREMS.md §8, §9).

Hardt & Ma, `Identity Matters in Deep Learning <https://arxiv.org/abs/1611.04231>`_, ICLR 2017: every
:math:`R` with :math:`\det R > 0` factors into small residual layers :math:`(I + A_\ell)\cdots(I + A_1)`
(:func:`hardt_ma_norm_bound`, :func:`hardt_ma_factorization`), and in the ball :math:`|||A||| \le \tau < 1` the
risk (:func:`hardt_ma_risk`) is gradient dominated (:func:`hardt_ma_gradient_domination`, in the corrected form the
proof supports). Bartlett, Helmbold & Long, `arXiv:1802.06093 <https://arxiv.org/abs/1802.06093>`_: GD from the
identity on a symmetric positive definite target decouples into scalar modes (:func:`bhl_mode_step`); the step
size of :func:`bhl_sufficient_lr` is linnet's, not the paper's constant.

The factorization is small, dense and done once: it runs on the host with SciPy (real Schur form) and moves its
result back to the input's namespace.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Optional, Sequence

import numpy as np

from .._backend import from_host, namespace, to_numpy
from .._validate import check_bool, check_finite, check_matrix, check_positive, check_real, check_weights
from ..losses import SquaredLoss
from ._common import Array, _check_all, _depth, _is_array, _scalars

__all__ = [
    "hardt_ma_factorization",
    "hardt_ma_norm_bound",
    "hardt_ma_loss",
    "hardt_ma_risk",
    "hardt_ma_risk_grad",
    "GradientDomination",
    "hardt_ma_gradient_domination",
    "bhl_sufficient_lr",
    "bhl_mode_step",
]


# ---------------------------------------------------------------------------------------------------------------
# §8 Hardt–Ma residual networks
# ---------------------------------------------------------------------------------------------------------------
def _square(R, name="R", xp=None, other="`R`"):
    """A real floating square matrix ``(..., d, d)`` (see ``linnet._validate.check_matrix``)."""
    R, xp = check_matrix(R, name, xp=xp, other=other)
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
    Sigma, _ = _square(Sigma, "Sigma", xp)
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
    from ..calculus import loss as _loss

    check_matrix(R, "R", xp=check_weights(As, name="As")[1], other="`As`")
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
    from ..calculus import grad as _grad

    check_matrix(R, "R", xp=check_weights(As, name="As")[1], other="`As`")
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
    Sigma, _ = _square(Sigma, "Sigma", xp, "`As`")
    corrected = check_bool(corrected, "corrected")
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
        eigs = check_real(eigs, "eigs")
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
