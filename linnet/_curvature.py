r"""The top Hessian eigenvalue (sharpness) :math:`\lambda_{\max}(\nabla^2L)` of a deep linear net from exact
Hessian-vector products, without forming the Hessian; public as :func:`linnet.landscape.top_hessian_eigenvalue`.

:func:`top_hessian_eigenvalue` validates once and picks a method (:func:`_top_dispatch`): the NumPy fast path of
one net (:func:`linnet._fastpaths.curvature.top_eigenvalue`, precomputed HVPs under ARPACK), ARPACK on the
generic HVPs (:func:`_top_eigsh`: ``method='eigsh'`` with at most two parameters) or a batched Lanczos iteration
in array code (:func:`_top_lanczos`). By GD linear stability (THEOREMS.md §13), a minimum is stable for step
:math:`\eta` iff this value is at most :math:`2/\eta`.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from . import _progress
from . import calculus as _c
from ._backend import Array, from_host, host_rng, is_numpy_namespace, to_numpy
from ._fastpaths.curvature import TopEigenvalue, top_eigenvalue
from ._validate import check_int, check_positive, check_weights
from .losses import Loss

__all__ = ["top_hessian_eigenvalue"]


def top_hessian_eigenvalue(
    loss: Loss,
    Ws: Sequence[Array],
    *,
    residual: bool = False,
    tol: float = 1e-10,
    maxiter: Optional[int] = None,
    seed: Any = 0,
    method: str = "auto",
    progress: Optional[bool] = None,
) -> TopEigenvalue:
    r"""Largest (algebraic) Hessian eigenvalue :math:`\lambda_{\max}(\nabla^2L)` from exact Hessian-vector products.

    The Hessian is never formed: each step applies :func:`linnet.hvp` (closed form, THEOREMS.md §1).
    ``method='eigsh'`` (default for one net on NumPy) runs ARPACK's implicitly restarted Lanczos
    (:func:`scipy.sparse.linalg.eigsh`, ``which='LA'``) on the exact HVPs of
    :class:`linnet._fastpaths.curvature.HVPOperator`, with everything independent of the direction precomputed; ``method='lanczos'`` (default
    otherwise) runs a batched Lanczos iteration with full reorthogonalisation in array code, stopping for each
    net when the Ritz residual :math:`|\beta_k s_k| \le \mathrm{tol}\cdot|\theta_{\max}|`. By GD linear stability
    (THEOREMS.md §13), a minimum is stable for step :math:`\eta` iff this value is at most :math:`2/\eta`.

    Parameters
    ----------
    loss, Ws, residual : as for :func:`linnet.hvp`
    tol : float, relative accuracy
    maxiter : int, optional, at most this many Lanczos steps (default ``P``, exact in exact arithmetic)
    seed : int or Generator, the random start vector (host NumPy, same on every backend)
    method : ``'auto'``, ``'eigsh'`` (NumPy, one net) or ``'lanczos'``
    progress : bool, optional, a progress display (HVPs done) on stderr, as for
        :func:`linnet.train.gradient_flow` (default: only in a terminal, after 2 s, never under pytest)

    Examples
    --------
    >>> import numpy as np, linnet as ln
    >>> Phi = np.array([[2.5]]); Ws = ln.init.balanced(Phi, (1, 1, 1, 1))
    >>> top = ln.landscape.top_hessian_eigenvalue(ln.SquaredLoss.whitened(Phi), Ws)
    >>> round(float(top.value), 6), round(float(ln.theory.sharpness_balanced(Phi, 3)), 6)
    (10.179066, 10.179066)
    """
    if not isinstance(loss, Loss):
        raise ValueError(f"`loss` must be a linnet loss, got {type(loss).__name__}")
    Ws, xp = check_weights(Ws)
    tol = check_positive(tol, "tol")
    if method not in ("auto", "eigsh", "lanczos"):
        raise ValueError(f"`method` must be 'auto', 'eigsh' or 'lanczos', got {method!r}")
    widths = (int(Ws[0].shape[-1]),) + tuple(int(W.shape[-2]) for W in Ws)
    P = _c.num_params(Ws)
    batch = tuple(_c.loss(loss, Ws, residual=residual).shape)
    if maxiter is None:
        maxiter = P
    maxiter = min(check_int(maxiter, "maxiter", minimum=1), P)
    dt = Ws[0].dtype
    rng = host_rng(seed)
    v0 = rng.standard_normal(batch + (P,))

    def H(theta):
        _progress.tick()
        Vs = _c.unflatten(theta, widths)
        return _c.flatten(_c.hvp(loss, Ws, Vs, residual=residual))

    with _progress.task("top_hessian_eigenvalue", unit="HVP", progress=progress):
        return _top_dispatch(loss, Ws, H, residual, method, batch, xp, P, v0, tol, maxiter, dt)


def _top_dispatch(loss, Ws, H, residual, method, batch, xp, P, v0, tol, maxiter, dt):
    """The method of :func:`top_hessian_eigenvalue`: the fast path, ARPACK on ``H`` or batched Lanczos."""
    if method == "eigsh" and (batch != () or not is_numpy_namespace(xp)):
        raise ValueError("`method='eigsh'` needs one net (no batch) on NumPy; use 'lanczos'")
    if method == "eigsh" or (method == "auto" and batch == () and is_numpy_namespace(xp) and P > 2):
        if P > 2:
            # exact HVPs with the direction-independent products precomputed once: same operator, ~10x cheaper
            r = top_eigenvalue(loss, Ws, residual=bool(residual), tol=tol, v0=v0)
            return TopEigenvalue(from_host(np.float64(r.value), xp, dt), from_host(r.vector, xp, dt), r.n_hvp)
        return _top_eigsh(H, P, v0, tol, dt, xp)
    return _top_lanczos(H, P, batch, v0, tol, maxiter, dt, xp)


def _top_eigsh(H, P, v0, tol, dt, xp):
    """ARPACK (``which='LA'``) on the operator ``H`` of one net, in float64 on the host."""
    from scipy.sparse.linalg import LinearOperator, eigsh

    count = [0]

    def matvec(x):
        count[0] += 1
        y = H(from_host(np.asarray(x).reshape(-1), xp, dt))
        return np.asarray(to_numpy(y), dtype=np.float64)

    op = LinearOperator((P, P), matvec=matvec, dtype=np.float64)
    w, V = eigsh(op, k=1, which="LA", tol=tol, v0=v0)
    return TopEigenvalue(from_host(w[0], xp, dt), from_host(V[:, 0], xp, dt), count[0])


def _tridiag(alpha, beta, xp):
    """Symmetric tridiagonal matrices from diagonals ``alpha`` (..., n) and off-diagonals ``beta`` (..., n - 1)."""
    n = alpha.shape[-1]
    T = alpha[..., None, :] * xp.eye(n, dtype=alpha.dtype)
    if n > 1:
        bpad = xp.concat([beta, xp.zeros(beta.shape[:-1] + (1,), dtype=beta.dtype)], axis=-1)
        B = bpad[..., :, None] * xp.eye(n, k=1, dtype=alpha.dtype)
        T = T + B + B.mT
    return T


def _top_lanczos(H, P, batch, v0, tol, maxiter, dt, xp):
    """Batched Lanczos with full reorthogonalisation from ``v0``; each net stops at a small Ritz residual."""
    q = from_host(v0, xp, dt)
    q = q / xp.sqrt(xp.sum(q * q, axis=-1, keepdims=True))
    Q = q[..., None, :]  # (..., k, P)
    alphas, betas = [], []
    tiny = float(xp.finfo(dt).smallest_normal)
    eps = float(xp.finfo(dt).eps)
    done = xp.zeros(batch, dtype=xp.bool)
    value = xp.zeros(batch, dtype=dt)
    vec = q * 1
    n_hvp = 0
    for k in range(maxiter):
        w = H(q)
        n_hvp += 1
        a = xp.sum(w * q, axis=-1)
        w = w - a[..., None] * q
        if betas:
            w = w - betas[-1][..., None] * Q[..., -2, :]
        for _ in range(2):  # full reorthogonalisation, twice is enough
            w = w - xp.sum(xp.matmul(Q, w[..., :, None]) * Q, axis=-2)
        b = xp.sqrt(xp.sum(w * w, axis=-1))
        alphas.append(a)
        T = _tridiag(
            xp.stack(alphas, axis=-1), xp.stack(betas, axis=-1) if betas else xp.zeros(batch + (0,), dtype=dt), xp
        )
        theta, S = xp.linalg.eigh(T)
        top = theta[..., -1]
        s_last = S[..., -1, -1]
        scale = xp.max(xp.abs(theta), axis=-1)
        conv = xp.abs(b * s_last) <= tol * xp.maximum(scale, xp.full_like(scale, tiny))
        conv = conv | (b <= 10 * eps * xp.maximum(scale, xp.full_like(scale, tiny)))
        if k + 1 == maxiter:
            conv = xp.ones_like(conv)
        new = conv & ~done
        ritz = xp.sum(S[..., :, -1][..., :, None] * Q, axis=-2)
        value = xp.where(new, top, value)
        vec = xp.where(new[..., None], ritz, vec)
        done = done | conv
        if bool(xp.all(done)):
            break
        safe = xp.where(b > 0, b, xp.ones_like(b))
        q = xp.where((b > 0)[..., None], w / safe[..., None], xp.zeros_like(w))
        betas.append(b)
        Q = xp.concat([Q, q[..., None, :]], axis=-2)
    vec = vec / xp.sqrt(xp.sum(vec * vec, axis=-1, keepdims=True))
    return TopEigenvalue(value, vec, n_hvp)
