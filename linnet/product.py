r"""The product map :math:`\varphi(W) = F_N \cdots F_1` and its first and second derivatives.

For a plain net the factors are :math:`F_j = W_j`; for a residual net :math:`F_j = I + W_j`. Since
:math:`\mathrm d F_j = \mathrm d W_j` in both cases, the chain rule below is the same for both.

With prefixes :math:`P_j = F_j \cdots F_1` (:math:`P_0 = I`) and suffixes :math:`S_j = F_N \cdots F_{j+1}`
(:math:`S_N = I`), the product map has

.. math::

    \mathrm D\varphi[V] = \sum_j S_j V_j P_{j-1}, \qquad
    (\mathrm D\varphi^{*} G)_j = S_j^\top G P_{j-1}^\top ,

and the derivative of :math:`(\mathrm D\varphi^{*} G)_j` along :math:`V` with :math:`G` held fixed is
:math:`\dot S_j^\top G P_{j-1}^\top + S_j^\top G \dot P_{j-1}^\top`, where the tangents obey
:math:`\dot P_j = F_j \dot P_{j-1} + V_j P_{j-1}` and :math:`\dot S_{j} = \dot S_{j+1} F_{j+1} + S_{j+1} V_{j+1}`.
Every quantity costs :math:`O(N)` matrix products (THEOREMS.md §1; the Hessian quadratic form is in
Arora, Cohen, Golowich & Hu, `arXiv:1810.02281 <https://arxiv.org/abs/1810.02281>`_, and N. Cohen's
lecture notes "Foundations of Deep Learning", Lecture 3).

The identity is represented by ``None`` so that no product with :math:`I` is ever formed.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence

from ._backend import Array
from ._validate import check_bool, check_weights

__all__ = [
    "Partials",
    "factors",
    "partials",
    "end_to_end",
    "pullback",
    "pushforward",
    "pushforward_prefixes",
    "pushforward_suffixes",
    "pullback_derivative",
]


def _mm(A: Optional[Array], B: Optional[Array], xp) -> Optional[Array]:
    """Matrix product where ``None`` stands for the identity."""
    if A is None:
        return B
    if B is None:
        return A
    return xp.matmul(A, B)


def _t(A: Optional[Array]) -> Optional[Array]:
    return None if A is None else A.mT


def factors(Ws: Sequence[Array], residual: bool, xp) -> tuple:
    """The factors :math:`F_j`: ``W_j`` (plain) or ``I + W_j`` (residual; layers must be square)."""
    if not check_bool(residual, "residual"):
        return tuple(Ws)
    out = []
    for j, W in enumerate(Ws, start=1):
        d = W.shape[-1]
        if W.shape[-2] != d:
            raise ValueError(
                f"`Ws` with `residual=True`: residual nets need square layers: layer {j} has shape "
                f"{tuple(W.shape[-2:])}, expected ({d}, {d})"
            )
        out.append(W + xp.eye(d, dtype=W.dtype))
    return tuple(out)


class Partials(NamedTuple):
    """Partial products of the factors.

    ``prefix[j] = F_j ⋯ F_1`` for j = 0..N (``prefix[0]`` is ``None``, the identity) and
    ``suffix[j] = F_N ⋯ F_{j+1}`` for j = 0..N (``suffix[N]`` is ``None``). ``prefix[N]`` is the end-to-end matrix.
    """

    factors: tuple
    prefix: tuple
    suffix: tuple


def partials(Fs: Sequence[Array], xp, *, suffixes: bool = True) -> Partials:
    """Prefix and suffix products of the factors ``Fs`` (``2N - 2`` matrix products)."""
    N = len(Fs)
    prefix = [None]
    for j in range(N):
        prefix.append(_mm(Fs[j], prefix[-1], xp))
    suffix = [None] * (N + 1)
    if suffixes:
        for j in range(N, 1, -1):
            suffix[j - 1] = _mm(suffix[j], Fs[j - 1], xp)
        # suffix[0] (the whole product) is only needed as a tangent base; keep it cheap: reuse prefix[N]
        suffix[0] = prefix[N]
    return Partials(tuple(Fs), tuple(prefix), tuple(suffix))


def end_to_end(Ws: Sequence[Array], *, residual: bool = False) -> Array:
    r"""End-to-end matrix :math:`W_N \cdots W_1`, or :math:`(I+W_N)\cdots(I+W_1)` when ``residual``.

    Parameters
    ----------
    Ws : sequence of arrays
        Layers ``W_j`` of shape ``(..., d_j, d_{j-1})``; leading dimensions are a batch of nets and broadcast
        like ``matmul``.
    residual : bool
        Use the factors :math:`I + W_j` (square layers only).

    Returns
    -------
    array of shape ``(..., d_N, d_0)``, the dtype of the weights.

    Examples
    --------
    >>> import numpy as np, linnet as ln
    >>> Ws = (np.full((3, 2), 1.0), np.full((1, 3), 2.0))
    >>> ln.end_to_end(Ws)
    array([[6., 6.]])
    """
    Ws, xp = check_weights(Ws)
    Fs = factors(Ws, residual, xp)
    out = Fs[0]
    for F in Fs[1:]:
        out = xp.matmul(F, out)
    return out


def pushforward(p: Partials, Vs: Sequence[Array], xp) -> Array:
    r"""Directional derivative :math:`\mathrm D\varphi[V] = \sum_j S_j V_j P_{j-1}` (a forward recursion)."""
    # dP_j = F_j dP_{j-1} + V_j P_{j-1}; the result is dP_N.
    dP = None
    for j, V in enumerate(Vs, start=1):
        term = _mm(V, p.prefix[j - 1], xp)
        dP = term if dP is None else xp.matmul(p.factors[j - 1], dP) + term
    return dP


def pushforward_prefixes(p: Partials, Vs: Sequence[Array], xp) -> list:
    """All tangents ``dP_j`` of the prefixes, j = 0..N (``dP_0 = 0`` is ``None``)."""
    out = [None]
    for j, V in enumerate(Vs, start=1):
        term = _mm(V, p.prefix[j - 1], xp)
        out.append(term if out[-1] is None else xp.matmul(p.factors[j - 1], out[-1]) + term)
    return out


def pushforward_suffixes(p: Partials, Vs: Sequence[Array], xp) -> list:
    """All tangents ``dS_j`` of the suffixes, j = 0..N (``dS_N = 0`` is ``None``)."""
    N = len(Vs)
    out = [None] * (N + 1)
    for j in range(N - 1, -1, -1):
        term = _mm(p.suffix[j + 1], Vs[j], xp)
        out[j] = term if out[j + 1] is None else xp.matmul(out[j + 1], p.factors[j]) + term
    return out


def pullback(p: Partials, G: Array, xp) -> tuple:
    r"""Adjoint of the derivative: :math:`(\mathrm D\varphi^{*}G)_j = S_j^\top G P_{j-1}^\top`."""
    N = len(p.factors)
    out = []
    for j in range(1, N + 1):
        left = _mm(_t(p.suffix[j]), G, xp)
        out.append(_mm(left, _t(p.prefix[j - 1]), xp))
    return tuple(out)


def pullback_derivative(p: Partials, G: Array, Vs: Sequence[Array], xp, *, dP=None, dS=None) -> tuple:
    r"""Derivative of :math:`V \mapsto \mathrm D\varphi^{*}G` at fixed ``G`` along ``Vs``.

    Returns the tuple of :math:`\dot S_j^\top G P_{j-1}^\top + S_j^\top G \dot P_{j-1}^\top`, the part of the
    Hessian-vector product that involves :math:`\nabla\ell` (it vanishes when ``G = 0``).
    """
    N = len(p.factors)
    dP = pushforward_prefixes(p, Vs, xp) if dP is None else dP
    dS = pushforward_suffixes(p, Vs, xp) if dS is None else dS
    out = []
    for j in range(1, N + 1):
        terms = []
        if dS[j] is not None:
            terms.append(_mm(xp.matmul(dS[j].mT, G), _t(p.prefix[j - 1]), xp))
        if dP[j - 1] is not None:
            terms.append(xp.matmul(_mm(_t(p.suffix[j]), G, xp), dP[j - 1].mT))
        if not terms:
            out.append(None)  # depth 1: the product map is linear, no second-order term
        else:
            out.append(terms[0] if len(terms) == 1 else terms[0] + terms[1])
    return tuple(out)
