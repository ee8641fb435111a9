r"""Small dense linear algebra used by the theory: PSD powers and the end-to-end preconditioner.

PSD powers :math:`[A]^\alpha` are taken spectrally from the SVD of the factor, with :math:`[A]^0 := I` even when
:math:`A` is singular, and singular values below ``rtol * sigma_max`` set exactly to zero before the power is
taken (THEOREMS.md §0: without the threshold, round-off of order 1e-17 raised to the power 1/3 gives errors of
order 1e-6).
"""

from __future__ import annotations

from typing import Optional

from ._backend import Array
from ._validate import check_int, check_matrix, check_positive, check_real

__all__ = ["gram_powers", "e2e_velocity", "preconditioner", "preconditioner_eigenvalues"]


def _threshold(s, rtol, xp):
    tol = (check_positive(rtol, "rtol", allow_zero=True) if rtol is not None else 1e-12) * xp.max(
        s, axis=-1, keepdims=True
    )
    return xp.where(s > tol, s, xp.zeros_like(s))


def _check_depth(depth) -> int:
    try:
        return check_int(depth, "depth", minimum=1)
    except ValueError:
        raise ValueError(f"`depth` must be >= 1 (an int), got {depth!r}") from None


def gram_powers(W: Array, alphas, *, rtol: Optional[float] = None):
    r"""Left and right Gram powers :math:`[WW^\top]^{\alpha}` and :math:`[W^\top W]^{\alpha}` for each ``alpha``.

    Returns two lists (left, right) of arrays ``(..., d_N, d_N)`` and ``(..., d_0, d_0)``, computed from the
    full SVD of ``W`` with thresholded singular values; :math:`[\cdot]^0 = I`.
    """
    W, xp = check_matrix(W, "W")
    alphas = check_real(alphas, "alphas")
    if alphas.ndim != 1:
        raise ValueError(f"`alphas` must be a 1-D sequence of exponents, got shape {alphas.shape}")
    alphas = [float(a) for a in alphas]
    U, s, Vt = xp.linalg.svd(W, full_matrices=True)
    s = _threshold(s, rtol, xp)
    dN, d0 = W.shape[-2], W.shape[-1]
    k = s.shape[-1]
    left, right = [], []
    for a in alphas:
        if a == 0:
            left.append(xp.broadcast_to(xp.eye(dN, dtype=W.dtype), W.shape[:-2] + (dN, dN)))
            right.append(xp.broadcast_to(xp.eye(d0, dtype=W.dtype), W.shape[:-2] + (d0, d0)))
            continue
        p = xp.where(s > 0, xp.where(s > 0, s, xp.ones_like(s)) ** (2 * a), xp.zeros_like(s))  # no 0**(-x)
        Uk, Vk = U[..., :, :k], Vt[..., :k, :].mT
        left.append(xp.matmul(Uk * p[..., None, :], Uk.mT))
        right.append(xp.matmul(Vk * p[..., None, :], Vk.mT))
    return left, right


def e2e_velocity(W: Array, G: Array, depth: int, *, rtol: Optional[float] = None) -> Array:
    r"""The end-to-end update of Arora, Cohen & Hazan (THEOREMS.md §4):

    .. math:: \sum_{j=1}^N [WW^\top]^{\frac{j-1}{N}}\,G\,[W^\top W]^{\frac{N-j}{N}} .

    Under gradient flow from a balanced initialization, :math:`\dot W_e = -` this with :math:`G = \nabla\ell(W_e)`.

    References
    ----------
    Arora, Cohen & Hazan, `On the Optimization of Deep Networks: Implicit Acceleration by Overparameterization
    <https://arxiv.org/abs/1802.06509>`_, 2018.
    """
    W, xp = check_matrix(W, "W")
    G, _ = check_matrix(G, "G", xp=xp, other="`W`")
    if tuple(G.shape[-2:]) != tuple(W.shape[-2:]) or G.dtype != W.dtype:
        raise ValueError(
            f"`G` must have the shape (..., {W.shape[-2]}, {W.shape[-1]}) and dtype {W.dtype} of `W`, got {tuple(G.shape)} {G.dtype}"
        )
    N = _check_depth(depth)
    alphas = [k / N for k in range(N)]
    left, right = gram_powers(W, alphas, rtol=rtol)
    out = None
    for j in range(1, N + 1):
        term = xp.matmul(xp.matmul(left[j - 1], G), right[N - j])
        out = term if out is None else out + term
    return out


def preconditioner(W: Array, depth: int, *, rtol: Optional[float] = None) -> Array:
    r"""Dense :math:`P_W = \sum_j [W^\top W]^{\frac{N-j}N}\otimes[WW^\top]^{\frac{j-1}N}` (column-major vec).

    Shape ``(..., d_N d_0, d_N d_0)``; :math:`\operatorname{vec}(\dot W) = -P_W\operatorname{vec}(\nabla\ell)`.
    """
    W, xp = check_matrix(W, "W")
    N = _check_depth(depth)
    left, right = gram_powers(W, [k / N for k in range(N)], rtol=rtol)
    out = None
    for j in range(1, N + 1):
        R, L = right[N - j], left[j - 1]
        a, b = R.shape[-1], L.shape[-1]
        K = xp.reshape(R[..., :, None, :, None] * L[..., None, :, None, :], R.shape[:-2] + (a * b, a * b))
        out = K if out is None else out + K
    return out


def preconditioner_eigenvalues(W: Array, depth: int, *, rtol: Optional[float] = None) -> Array:
    r"""Eigenvalues of :math:`P_W`: :math:`\sum_j \sigma_r^{2(N-j)/N}\sigma_{r'}^{2(j-1)/N}` over
    :math:`r\in[d_N], r'\in[d_0]`, with :math:`\sigma_r := 0` beyond the rank and :math:`0^0 := 1`.
    Returned sorted ascending, shape ``(..., d_N d_0)``.
    """
    W, xp = check_matrix(W, "W")
    N = _check_depth(depth)
    s = _threshold(xp.linalg.svdvals(W), rtol, xp)
    dN, d0 = W.shape[-2], W.shape[-1]
    k = s.shape[-1]
    zN = xp.zeros(s.shape[:-1] + (dN - k,), dtype=W.dtype)
    z0 = xp.zeros(s.shape[:-1] + (d0 - k,), dtype=W.dtype)
    sr = xp.concat([s, zN], axis=-1)[..., :, None]  # output side
    sc = xp.concat([s, z0], axis=-1)[..., None, :]  # input side

    def pw(x, e):
        return xp.ones_like(x) if e == 0 else x**e

    ev = None
    for j in range(1, N + 1):
        term = pw(sr, 2 * (N - j) / N) * pw(sc, 2 * (j - 1) / N)
        ev = term if ev is None else ev + term
    return xp.sort(xp.reshape(ev, ev.shape[:-2] + (dN * d0,)), axis=-1)
