r"""The dense Hessian of a loss with a :class:`~linnet.losses.QuadraticForm`, block by block in closed form."""

from __future__ import annotations

from .. import _backend
from .._backend import is_numpy_namespace
from .select import enabled

__all__ = ["squared_hessian"]

_np = _backend.np


def _outer4(A, B, xp, order: str):
    r"""Block of a Hessian from two matrices, as ``(..., r, c)`` with rows ``(a, b)`` and columns ``(e, c)``.

    ``order="ac,be"``: ``H[(a,b),(c,e)] = A[a,c] B[b,e]`` (a Kronecker product);
    ``order="ac,be->abec"``: ``H[(a,b),(e,c)] = A[a,c] B[b,e]``.
    """
    da, dc = A.shape[-2:]
    db, de = B.shape[-2:]
    if order == "ac,be":
        blk = xp.reshape(A, A.shape[:-2] + (da, 1, dc, 1)) * xp.reshape(B, B.shape[:-2] + (1, db, 1, de))
        return xp.reshape(blk, blk.shape[:-4] + (da * db, dc * de))
    blk = xp.reshape(A, A.shape[:-2] + (da, 1, 1, dc)) * xp.reshape(B, B.shape[:-2] + (1, db, de, 1))
    return xp.reshape(blk, blk.shape[:-4] + (da * db, de * dc))


def _assemble_numpy(factors: dict, dims: list, batch: tuple, dt):
    """The dense Hessian of :func:`squared_hessian` written block by block into one preallocated array: each
    upper block's products go straight into a 4-D view of its place (``multiply(..., out=)``), each lower block
    is the transposed copy of its upper one. The same products and sums as the generic assembly, so the same
    bits, without its temporaries and concatenations (it was 2-3x slower per net on batches)."""
    N = len(dims) - 1
    sizes = [dims[j] * dims[j - 1] for j in range(1, N + 1)]
    off = [0]
    for n in sizes:
        off.append(off[-1] + n)
    H = _np.empty(batch + (off[-1], off[-1]), dtype=dt)

    def view(j, k):  # rows (a, b) of layer j, columns (c, e) of layer k, as a 4-D view
        blk = H[..., off[j - 1] : off[j], off[k - 1] : off[k]]
        v = blk.reshape(batch + (dims[j], dims[j - 1], dims[k], dims[k - 1]))  # splits axes: always a view
        assert v.base is not None and _np.shares_memory(v, H)
        return v

    for (j, k), (A, B, XY) in factors.items():
        v = view(j, k)
        _np.multiply(A[..., :, None, :, None], B[..., None, :, None, :], out=v)  # A[a,c] B[b,e]
        if XY is not None:  # + X[a,c] Y[b,e] at column (e, c)
            X, Y = XY
            v += X[..., :, None, None, :] * Y[..., None, :, :, None]
        if k > j:
            lower = H[..., off[k - 1] : off[k], off[j - 1] : off[j]]
            _np.copyto(lower, _np.swapaxes(H[..., off[j - 1] : off[j], off[k - 1] : off[k]], -1, -2))
    return H


def squared_hessian(loss_fn, Fs, xp, batch: tuple):
    r"""Dense Hessian of :math:`L = \ell(F_N\cdots F_1)` for a squared loss, block by block in closed form.

    With :math:`J_j = S_j\otimes P_{j-1}^\top` (row-major vectorisation, :math:`\mathrm{vec}(AXB) =
    (A\otimes B^\top)\mathrm{vec}X`) and :math:`\nabla^2\ell = I\otimes\Lambda_{xx}`, the Gauss–Newton block is
    :math:`(S_j^\top S_k)\otimes(P_{j-1}\Lambda_{xx}P_{k-1}^\top)`. The part with :math:`G = \nabla\ell(W_e)`
    (THEOREMS.md §1, derivative of :math:`S_j^\top G P_{j-1}^\top` along layer :math:`k`) is, entrywise with
    rows :math:`(a,b)` of layer :math:`j` and columns :math:`(e,c)` of layer :math:`k`,

    .. math::

        k<j:\ (S_j^\top G P_{k-1}^\top)_{ac}\,(F_{j-1}\cdots F_{k+1})_{be}, \qquad
        k>j:\ (F_{k-1}\cdots F_{j+1})_{ca}\,(S_k^\top G P_{j-1}^\top)_{eb},

    and zero for :math:`k=j`; only blocks :math:`k \ge j` are formed (:math:`H_{kj} = H_{jk}^\top`). Costs :math:`O(N^2)` small products plus one pass over the :math:`P\times P`
    output (against :math:`P` HVPs). Array-API calls only.
    """
    N = len(Fs)
    dt = Fs[0].dtype
    dims = [Fs[0].shape[-1]] + [F.shape[-2] for F in Fs]
    eye = [xp.eye(d, dtype=dt) for d in dims]
    P = [eye[0]]
    for j in range(N):
        P.append(xp.matmul(Fs[j], P[-1]))
    S = [None] * (N + 1)
    S[N] = eye[N]
    for j in range(N, 0, -1):
        S[j - 1] = xp.matmul(S[j], Fs[j - 1])
    We = P[N]
    G = loss_fn.grad(We)
    Sxx = loss_fn.quadratic_form().Sxx
    PS = [P[k] if Sxx is None else xp.matmul(P[k], Sxx) for k in range(N)]  # P_k Lxx
    StG = [xp.matmul(S[j].mT, G) for j in range(N + 1)]  # S_j^T G

    def between(hi, lo):  # F_hi ... F_lo (identity of width d_{lo-1} if hi < lo)
        out = eye[lo - 1]
        for i in range(lo, hi + 1):
            out = xp.matmul(Fs[i - 1], out)
        return out

    def sym(A):
        return 0.5 * (A + A.mT)

    # upper blocks k >= j; H_kj = H_jk^T. Diagonal blocks are Kronecker products of exactly symmetric factors,
    # so the whole matrix comes out exactly symmetric.
    factors = {}
    for j in range(1, N + 1):
        for k in range(j, N + 1):
            A = xp.matmul(S[j].mT, S[k])
            B = xp.matmul(PS[j - 1], P[k - 1].mT)
            if k == j:
                A, B = sym(A), sym(B)
            XY = None
            if k > j:
                Y = xp.matmul(StG[k], P[j - 1].mT)
                XY = (between(k - 1, j + 1).mT, Y.mT)
            factors[j, k] = (A, B, XY)
    if enabled() and is_numpy_namespace(xp) and all(type(F) is _np.ndarray for F in Fs):
        return _assemble_numpy(factors, dims, batch, dt)
    blocks = {}
    for (j, k), (A, B, XY) in factors.items():
        blk = _outer4(A, B, xp, "ac,be")
        if XY is not None:
            blk = blk + _outer4(XY[0], XY[1], xp, "ac,be->abec")
        blocks[j, k] = xp.broadcast_to(blk, batch + tuple(blk.shape[-2:]))
    rows = [
        xp.concat([blocks[j, k] if k >= j else blocks[k, j].mT for k in range(1, N + 1)], axis=-1)
        for j in range(1, N + 1)
    ]
    return xp.concat(rows, axis=-2)
