r"""Curvature of one net from exact Hessian-vector products: the HVP operator and the top Hessian eigenvalue.

:class:`HVPOperator` precomputes everything that does not depend on the direction (partials, the suffix products,
:math:`\nabla\ell`) so an HVP costs only the pushforward recursions; ``top_eigenvalue`` runs scipy's ARPACK
Lanczos (``eigsh``) on it. :func:`linnet.landscape.top_hessian_eigenvalue` and the benchmarks use these, and the
result type is the one :class:`linnet.landscape.TopEigenvalue`.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from .. import _backend, _progress
from .. import product as _p
from .._backend import is_numpy_namespace
from .._problem import prepare
from .select import enabled

__all__ = ["HVPOperator", "LeanHVP", "top_eigenvalue", "TopEigen", "TopEigenvalue"]

_np = _backend.np


class TopEigenvalue(NamedTuple):
    """The top Hessian eigenvalue (one result type for every eigensolver of linnet).

    ``value``: :math:`\\lambda_{\\max}(\\nabla^2 L)`, shape ``(...)`` (a Python float from ``top_eigenvalue``);
    ``vector``: a unit eigenvector ``(..., P)`` in :func:`linnet.flatten` order (host NumPy float64 from
    ``top_eigenvalue``); ``n_hvp``: the number of (batched) exact Hessian-vector products used.
    """

    value: Any
    vector: Any
    n_hvp: int


TopEigen = TopEigenvalue  # the earlier name


class HVPOperator:
    r"""Exact Hessian-vector products of one net at fixed weights, with everything independent of the direction
    precomputed (partials, :math:`\nabla\ell`, the suffix products).

    ``H @ v`` on flat parameter vectors (layers row-major, :func:`linnet.flatten` order). Same maths as
    :func:`linnet.hvp` (THEOREMS.md §1):
    :math:`(HV)_j = S_j^\top\nabla^2\ell[\dot P_N]P_{j-1}^\top + \dot S_j^\top G P_{j-1}^\top + S_j^\top G\dot P_{j-1}^\top`.
    Works in any namespace (array-API calls only); ``matvec`` takes and returns host NumPy float64 vectors for
    scipy's eigensolvers.
    """

    def __init__(self, loss_fn, Ws, residual: bool = False):
        prob = prepare(loss_fn, Ws, residual)
        loss_fn, Ws, xp, parts = prob.loss, prob.Ws, prob.xp, prob.parts
        self.numpy = is_numpy_namespace(xp)
        self.loss, self.Ws, self.xp, self.parts = loss_fn, Ws, xp, parts
        self.G = loss_fn.grad(parts.prefix[-1])
        self.shapes = [tuple(W.shape) for W in Ws]
        self.sizes = [math.prod(s[-2:]) for s in self.shapes]
        self.P = sum(self.sizes)
        self.n_calls = 0
        # on NumPy, call numpy.matmul directly (no wrapper: these are tiny products)
        self.ops = _RawNumpy if self.numpy and enabled() else xp
        N = len(Ws)
        p = parts
        # direction-independent pieces: S_j^T (left), P_{j-1}^T (right), S_j^T G and G P_{j-1}^T
        self.St = [None if p.suffix[j] is None else p.suffix[j].mT for j in range(N + 1)]
        self.Pt = [None if p.prefix[j] is None else p.prefix[j].mT for j in range(N + 1)]
        self.StG = [_p._mm(self.St[j], self.G, xp) for j in range(N + 1)]
        self.GPt = [_p._mm(self.G, self.Pt[j], xp) for j in range(N + 1)]
        # a quadratic loss's HVP D Lxx (D itself when whitened) is written out here: no call into the loss
        form = loss_fn.quadratic_form()
        self.squared = form is not None
        self.Sxx = None if form is None else form.Sxx

    def hvp(self, Vs) -> tuple:
        """Exact HVP on a tuple of layer directions (arrays of the weights' namespace).

        The recursions of :func:`linnet.product.pushforward_prefixes` and ``pushforward_suffixes`` written out
        with the identities resolved here (same products and sums in the same order): the HVP of a small net is
        mostly call overhead."""
        mm, p = self.ops.matmul, self.parts
        F, Pre, Suf = p.factors, p.prefix, p.suffix
        N = len(Vs)
        self.n_calls += 1
        dP = [None, Vs[0]]  # dP_j = F_j dP_{j-1} + V_j P_{j-1}
        for j in range(2, N + 1):
            dP.append(mm(F[j - 1], dP[-1]) + mm(Vs[j - 1], Pre[j - 1]))
        dS = [None] * (N + 1)  # dS_j = dS_{j+1} F_{j+1} + S_{j+1} V_{j+1}; dS_N = 0
        dS[N - 1] = Vs[N - 1]
        for j in range(N - 2, -1, -1):
            dS[j] = mm(dS[j + 1], F[j]) + mm(Suf[j + 1], Vs[j])
        if self.squared:
            D = dP[N] if self.Sxx is None else mm(dP[N], self.Sxx)
        else:
            D = self.loss.hvp(Pre[N], dP[N])
        out = []
        for j in range(1, N + 1):
            h = D if self.St[j] is None else mm(self.St[j], D)
            if self.Pt[j - 1] is not None:
                h = mm(h, self.Pt[j - 1])
            if dS[j] is not None:
                h = h + mm(dS[j].mT, self.GPt[j - 1])
            if dP[j - 1] is not None:
                h = h + mm(self.StG[j], dP[j - 1].mT)
            out.append(h)
        return tuple(out)

    def matvec(self, v):
        """``H v`` for a flat host vector ``v`` (length P), as float64 NumPy."""
        _progress.tick()  # a no-op unless top_hessian_eigenvalue shows progress
        v = _np.asarray(v, dtype=_np.float64).reshape(-1)
        Vs, k = [], 0
        for s, n in zip(self.shapes, self.sizes):
            blk = v[k : k + n].reshape(s)
            Vs.append(
                blk.astype(self.Ws[0].dtype, copy=False)
                if self.numpy
                else _backend.from_host(blk, self.xp, self.Ws[0].dtype)
            )
            k += n
        Hs = self.hvp(tuple(Vs))
        if self.numpy:
            return _np.concatenate([h.reshape(-1) for h in Hs]).astype(_np.float64, copy=False)
        return _np.concatenate([_np.asarray(_backend.to_numpy(h), dtype=_np.float64).reshape(-1) for h in Hs])


LeanHVP = HVPOperator  # the earlier name


class _RawNumpy:
    """The one call the HVP recursions need, straight to NumPy."""

    matmul = staticmethod(_np.matmul)


def top_eigenvalue(loss_fn, Ws, *, residual: bool = False, tol: float = 1e-10, v0=None, seed: int = 0) -> TopEigenvalue:
    r"""Largest (algebraic) Hessian eigenvalue of one net by scipy's ``eigsh`` (ARPACK Lanczos) on exact HVPs.

    Parameters
    ----------
    loss_fn : Loss
    Ws : tuple of arrays, one net (no batch dimensions)
    residual : bool
    tol : float
        ARPACK's relative accuracy of the Ritz value.
    v0 : host array of length P, optional
        Start vector (default: Gaussian from ``seed``).

    Returns
    -------
    TopEigenvalue(value, vector, n_hvp)

    Examples
    --------
    >>> import numpy as np, linnet as ln
    >>> from linnet._fastpaths.curvature import top_eigenvalue
    >>> Ws = ln.init.gaussian((3, 3, 3), scale=0.5, seed=1)
    >>> loss = ln.SquaredLoss.whitened(np.eye(3))
    >>> r = top_eigenvalue(loss, Ws)
    >>> bool(abs(r.value - np.linalg.eigvalsh(ln.hessian(loss, Ws))[-1]) < 1e-9)
    True
    """
    from scipy.sparse.linalg import LinearOperator, eigsh

    op = LeanHVP(loss_fn, Ws, residual)
    if any(len(s) != 2 for s in op.shapes):
        raise ValueError(f"`Ws` must be one net (2-D layers), got layer shapes {op.shapes}")
    n = op.P
    if v0 is None:
        v0 = _backend.host_rng(seed).standard_normal(n)
    if n <= 2:  # ARPACK needs k < n; tiny problems go dense
        H = _np.stack([op.matvec(e) for e in _np.eye(n)], axis=1)
        w, V = _np.linalg.eigh(0.5 * (H + H.T))
        return TopEigenvalue(float(w[-1]), V[:, -1], op.n_calls)
    A = LinearOperator((n, n), matvec=op.matvec, dtype=_np.float64)
    w, V = eigsh(A, k=1, which="LA", tol=tol, v0=v0, ncv=min(n, 12))
    return TopEigenvalue(float(w[0]), V[:, 0], op.n_calls)
