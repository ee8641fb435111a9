r"""Initializations of deep linear networks.

Every function returns a tuple of ``N`` arrays ``W_j`` of shape ``(*batch, d_j, d_{j-1})`` for
``widths = (d_0, d_1, ..., d_N)``.

Random draws happen on the host with NumPy and move to the target namespace, so a seed gives the same nets
on every backend. Member ``k`` of a batch takes the ``k``-th block of one sequential stream, so it does not
depend on the batch size.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import numpy as np

from ._backend import from_host, get_namespace, host_rng, resolve_dtype
from ._validate import check_finite, check_matrix, check_orthonormal_columns, check_positive, check_widths

__all__ = ["gaussian", "orthogonal", "zeros", "identity", "balanced", "decoupled", "saxe"]


def _batch(batch: Any) -> tuple[int, ...]:
    if batch is None:
        return ()
    if isinstance(batch, (int, np.integer)):
        batch = (int(batch),)
    if isinstance(batch, str) or not all(
        isinstance(b, (int, np.integer)) and not isinstance(b, bool)
        for b in (batch if hasattr(batch, "__iter__") else [batch])
    ):
        raise ValueError(f"`batch` must be an int or a tuple of ints, got {batch!r}")
    batch = tuple(int(b) for b in batch)
    if any(b < 1 for b in batch):
        raise ValueError(f"`batch` must hold positive ints, got {batch!r}")
    return batch


def _draw(widths, batch, seed) -> list[np.ndarray]:
    """Standard normal host draws, one row of all parameters per net (member k independent of batch size)."""
    rng = host_rng(seed)
    B = math.prod(batch)
    P = sum(widths[j] * widths[j - 1] for j in range(1, len(widths)))
    flat = rng.standard_normal((B, P))
    out, k = [], 0
    for j in range(1, len(widths)):
        n = widths[j] * widths[j - 1]
        out.append(flat[:, k : k + n].reshape(batch + (widths[j], widths[j - 1])))
        k += n
    return out


def gaussian(
    widths: Sequence[int], scale: float = 1.0, *, batch: Any = (), seed: Any = 0, xp: Any = None, dtype: Any = None
):
    r"""I.i.d. Gaussian layers, :math:`(W_j)_{ab} \sim \mathcal N(0, \mathrm{scale}^2)`.

    Parameters
    ----------
    widths : sequence of int
        ``(d_0, d_1, ..., d_N)``, length ``N + 1 >= 2``.
    scale : float
        Standard deviation of each entry (``>= 0``).
    batch : int or tuple of int
        Leading batch shape: that many independent nets.
    seed : int or numpy.random.Generator
    xp : namespace or backend name, optional (default NumPy)
    dtype : 'float64' (default) or 'float32', or a dtype of ``xp``

    Examples
    --------
    >>> import linnet as ln
    >>> Ws = ln.init.gaussian((3, 4, 2), scale=0.1, batch=(5,), seed=0)
    >>> [W.shape for W in Ws]
    [(5, 4, 3), (5, 2, 4)]
    """
    widths = check_widths(widths)
    scale = check_positive(scale, "scale", allow_zero=True)
    batch = _batch(batch)
    xp = get_namespace(xp)
    dt = resolve_dtype(dtype, xp)
    return tuple(from_host(scale * a, xp, dt) for a in _draw(widths, batch, seed))


def orthogonal(
    widths: Sequence[int], scale: float = 1.0, *, batch: Any = (), seed: Any = 0, xp: Any = None, dtype: Any = None
):
    r"""Layers ``scale`` times a Haar-random (semi-)orthogonal matrix (orthonormal rows or columns).

    Each layer is the ``Q`` factor of a Gaussian draw with the signs of ``diag(R)`` absorbed, which makes it
    Haar distributed (Mezzadri, `arXiv:math-ph/0609050 <https://arxiv.org/abs/math-ph/0609050>`_).
    """
    widths = check_widths(widths)
    scale = check_positive(scale, "scale", allow_zero=True)
    batch = _batch(batch)
    xp = get_namespace(xp)
    dt = resolve_dtype(dtype, xp)
    out = []
    for G in _draw(widths, batch, seed):
        tall = G.shape[-2] >= G.shape[-1]
        M = G if tall else np.swapaxes(G, -1, -2)
        Q, R = np.linalg.qr(M)
        d = np.sign(np.diagonal(R, axis1=-2, axis2=-1))
        d = np.where(d == 0, 1.0, d)
        Q = Q * d[..., None, :]
        out.append(from_host(scale * (Q if tall else np.swapaxes(Q, -1, -2)), xp, dt))
    return tuple(out)


def zeros(widths: Sequence[int], *, batch: Any = (), xp: Any = None, dtype: Any = None):
    """All-zero layers: the identity map of a residual net (Hardt & Ma's starting point)."""
    widths = check_widths(widths)
    batch = _batch(batch)
    xp = get_namespace(xp)
    dt = resolve_dtype(dtype, xp)
    return tuple(xp.zeros(batch + (widths[j], widths[j - 1]), dtype=dt) for j in range(1, len(widths)))


def identity(widths: Sequence[int], *, batch: Any = (), xp: Any = None, dtype: Any = None):
    """Layers ``W_j = I`` (rectangular identities when widths differ): identity init of a plain net.

    Bartlett, Helmbold & Long, `arXiv:1802.06093 <https://arxiv.org/abs/1802.06093>`_, 2018.
    """
    widths = check_widths(widths)
    batch = _batch(batch)
    xp = get_namespace(xp)
    dt = resolve_dtype(dtype, xp)
    return tuple(
        xp.broadcast_to(xp.eye(widths[j], widths[j - 1], dtype=dt), batch + (widths[j], widths[j - 1])) * 1
        for j in range(1, len(widths))
    )


def _pad(a, rows: int, cols: int, xp):
    r, c = a.shape[-2], a.shape[-1]
    if r == rows and c == cols:
        return a
    # built by concatenation: item assignment is not portable across array-API backends
    if c < cols:
        a = xp.concat([a, xp.zeros(tuple(a.shape[:-2]) + (r, cols - c), dtype=a.dtype)], axis=-1)
    if r < rows:
        a = xp.concat([a, xp.zeros(tuple(a.shape[:-2]) + (rows - r, cols), dtype=a.dtype)], axis=-2)
    return a


def balanced(A: Any, widths: Sequence[int], *, rtol: Optional[float] = None):
    r"""Exactly balanced layers with end-to-end matrix ``A`` (the ACGH procedure).

    With the thin SVD :math:`A = U\Sigma V^\top` (rank :math:`r`), set :math:`W_N \simeq U\Sigma^{1/N}`,
    :math:`W_j \simeq \Sigma^{1/N}` for :math:`1 < j < N` and :math:`W_1 \simeq \Sigma^{1/N}V^\top`, where
    :math:`\simeq` pads with zeros to the layer shape. Then :math:`W_{j+1}^\top W_{j+1} = W_j W_j^\top` for all
    :math:`j` and :math:`W_N\cdots W_1 = A`.

    Parameters
    ----------
    A : array ``(..., d_N, d_0)``
        Target end-to-end matrix (leading dimensions are a batch).
    widths : sequence of int
        ``(d_0, ..., d_N)``; ``d_0`` and ``d_N`` must match ``A``. A hidden width below ``rank(A)`` cannot
        reproduce ``A`` and raises ``ValueError``.
    rtol : float, optional
        Singular values below ``rtol * sigma_max`` count as zero (default ``100 * eps``).

    References
    ----------
    Arora, Cohen, Golowich & Hu, `A Convergence Analysis of Gradient Descent for Deep Linear Neural Networks
    <https://arxiv.org/abs/1810.02281>`_, 2018, §3 (balanced initialization).

    Examples
    --------
    >>> import numpy as np, linnet as ln
    >>> A = np.array([[3.0, 0.0], [0.0, 2.0]])
    >>> Ws = ln.init.balanced(A, (2, 5, 4, 2))
    >>> bool(np.allclose(ln.end_to_end(Ws), A)), float(ln.theory.balancedness(Ws).max()) < 1e-14
    (True, True)
    """
    widths = check_widths(widths)
    A, xp = check_matrix(A, "A")
    if A.ndim < 2 or tuple(A.shape[-2:]) != (widths[-1], widths[0]):
        raise ValueError(
            f"`A` must have shape (..., {widths[-1]}, {widths[0]}) = (..., d_N, d_0), got {tuple(A.shape)}"
        )
    if not xp.isdtype(A.dtype, "real floating"):
        raise ValueError(f"`A` must have a real floating dtype, got {A.dtype}")
    check_finite(A, "A", xp=xp)
    N = len(widths) - 1
    if N == 1:
        return (A * 1,)
    U, s, Vt = xp.linalg.svd(A, full_matrices=False)
    r = s.shape[-1]
    k = min([r] + list(widths[1:-1]))
    tol = (100 * float(xp.finfo(A.dtype).eps)) if rtol is None else check_positive(rtol, "rtol", allow_zero=True)
    if k < r:
        smax = xp.max(s, axis=-1)
        if bool(xp.any(s[..., k] > tol * smax)):
            raise ValueError(
                f"`widths` has a hidden width {min(widths[1:-1])} below rank(A) > {k}: no layers of these widths "
                "multiply to A"
            )
    s = s[..., :k]
    s = xp.where(s > tol * xp.max(s, axis=-1, keepdims=True), s, xp.zeros_like(s))
    root = s ** (1.0 / N)
    U, Vt = U[..., :, :k], Vt[..., :k, :]
    D = root[..., None, :] * xp.eye(k, dtype=A.dtype)  # diag(root), batched
    Ws = [_pad(xp.matmul(D, Vt), widths[1], widths[0], xp)]
    for j in range(2, N):
        Ws.append(_pad(D, widths[j], widths[j - 1], xp))
    Ws.append(_pad(xp.matmul(U, D), widths[N], widths[N - 1], xp))
    return tuple(Ws)


def decoupled(U: Any, V: Any, strengths: Any, widths: Sequence[int], *, seed: Any = None):
    r"""Saxe's decoupled, balanced initialization with given mode strengths.

    Layers :math:`W_l = R_{l+1} D R_l^\top` with :math:`R_1 = V`, :math:`R_{N+1} = U` and
    :math:`D = \operatorname{diag}(u^{1/N})` padded, so mode :math:`\alpha` has strength
    :math:`u_\alpha^\top W_N\cdots W_1 v_\alpha = u_\alpha` and every layer carries :math:`a_\alpha = u_\alpha^{1/N}`.
    Hidden rotations :math:`R_l` are identities, or Haar-random when ``seed`` is given.

    Parameters
    ----------
    U : array ``(d_N, r)`` with orthonormal columns (output singular vectors)
    V : array ``(d_0, r)`` with orthonormal columns (input singular vectors)
    strengths : array ``(..., r)`` of mode strengths :math:`u_\alpha \ge 0`
    widths : ``(d_0, ..., d_N)`` with every hidden width ``>= r``

    References
    ----------
    Saxe, McClelland & Ganguli, `Exact solutions to the nonlinear dynamics of learning in deep linear neural
    networks <https://arxiv.org/abs/1312.6120>`_, 2014, §2 (decoupled initial conditions, eq. 15).
    """
    widths = check_widths(widths)
    U, xp = check_matrix(U, "U")
    V, _ = check_matrix(V, "V", xp=xp, other="`U`")
    strengths, _ = check_matrix(strengths, "strengths", xp=xp, min_ndim=1, other="`U`")
    r = U.shape[-1]
    if U.ndim != 2 or V.ndim != 2 or V.shape[-1] != r or U.shape[0] != widths[-1] or V.shape[0] != widths[0]:
        raise ValueError(
            f"`U` must be ({widths[-1]}, r) and `V` ({widths[0]}, r) with the same r; got {tuple(U.shape)} and {tuple(V.shape)}"
        )
    if strengths.shape[-1] != r:
        raise ValueError(f"`strengths` must have last dimension r = {r}, got {tuple(strengths.shape)}")
    if bool(xp.any(strengths < 0)):
        raise ValueError("`strengths` must be >= 0 (a balanced decoupled net has u_alpha = a_alpha^N)")
    check_orthonormal_columns(U, "U", xp)
    check_orthonormal_columns(V, "V", xp)
    if strengths.dtype != U.dtype or V.dtype != U.dtype:
        raise ValueError(f"`U`, `V`, `strengths` must share one dtype, got {U.dtype}, {V.dtype}, {strengths.dtype}")
    N = len(widths) - 1
    if min(widths[1:-1] or [r]) < r:
        raise ValueError(f"every hidden width must be >= r = {r}, got widths {widths}")
    dt = U.dtype
    root = strengths ** (1.0 / N)
    D = root[..., None, :] * xp.eye(r, dtype=dt)
    rng = None if seed is None else host_rng(seed)

    def rot(d):
        if rng is None:
            return None
        Q, R = np.linalg.qr(rng.standard_normal((d, d)))
        return from_host(Q * np.sign(np.diagonal(R)), xp, dt)

    Rs = [None] + [rot(widths[j]) for j in range(1, N)]  # hidden frames R_2..R_N (index j -> layer output j)
    Ws = []
    for j in range(1, N + 1):
        core = D
        if j == 1:
            core = xp.matmul(core, V.mT)
        else:
            core = _pad(core, r, widths[j - 1], xp)
            if Rs[j - 1] is not None:
                core = xp.matmul(core, Rs[j - 1].mT)
        if j == N:
            core = xp.matmul(U, core)
        else:
            core = _pad(core, widths[j], core.shape[-1], xp)
            if Rs[j] is not None:
                core = xp.matmul(Rs[j], core)
        Ws.append(core)
    return tuple(Ws)


saxe = decoupled
