r"""The quadratic-loss kernel of :mod:`linnet._fastpaths.quadratic` in the transposed layout, for small matrices
(the natural layout of large ones is :mod:`.natural`): one block of nets, with prefixes
:math:`P_j = F_j\cdots F_1`, :math:`G = \nabla\ell(W_e)` and

.. math::

    \frac{\partial L}{\partial W_j} = S_j^\top G P_{j-1}^\top = \big(P_{j-1} M_j\big)^\top, \qquad
    M_N = G^\top,\quad M_{j-1} = M_j F_j .

Every product is a plain ``A @ B`` of C-contiguous operands, and transposed results are written straight into
``out=X.mT`` views: NumPy's stacked ``matmul`` of small matrices is 2-2.6x slower when only its right operand is a
transposed view.
"""

from __future__ import annotations

from .. import _backend

__all__ = ["block_shapes", "forward", "loss_block", "backward"]

_np = _backend.np


def block_shapes(dims: list, b: int, residual: bool, lc: dict) -> list:
    """Scratch shapes of :func:`.quadratic._chunk`, in the order its steps take them."""
    N, d0, dN = len(dims) - 1, dims[0], dims[-1]
    shapes = []
    if residual:
        shapes += [(b, dims[j], dims[j - 1]) for j in range(1, N + 1)]  # F_j = I + W_j
    shapes += [(b, dims[j], d0) for j in range(2, N)]  # P_2 .. P_{N-1}
    shapes += [(b, d0, dN), (b, d0, dN)]  # W_e^T, E^T (raw statistics: Lxx^T W_e^T)
    if "SxxT" in lc and "raw" not in lc:
        shapes += [(b, d0, dN)]  # Lxx^T E^T
    shapes += [(b, d0, dims[j]) for j in range(N - 1, 1, -1)]  # M_{N-1} .. M_2, in the order used
    return shapes


def forward(Ws, residual: bool, lo: int, hi: int, bufs):
    """The factors ``F_j`` of nets ``lo:hi``, their prefixes ``P`` (``P[j] = F_j...F_1``, ``P[0]`` unused) up to
    ``P_{N-1}``, and ``W_e^T`` written into a scratch buffer."""
    b = hi - lo
    if residual:
        Fs = []
        for W in Ws:
            F = next(bufs)
            _np.copyto(F, W[lo:hi])
            d = F.shape[-1]
            F.reshape(b, d * d)[:, :: d + 1] += 1  # the diagonal of each F_j, in place
            Fs.append(F)
    else:
        Fs = [W[lo:hi] for W in Ws]
    N = len(Fs)
    P = [None, Fs[0]]
    for j in range(2, N):
        P.append(_np.matmul(Fs[j - 1], P[-1], out=next(bufs)))
    WeT = next(bufs)
    if N == 1:
        _np.copyto(WeT, _np.swapaxes(Fs[0], -1, -2))
    else:
        _np.matmul(Fs[-1], P[-1], out=_np.swapaxes(WeT, -1, -2))
    return Fs, P, WeT


def loss_block(WeT, lc: dict, lo: int, hi: int, bufs, fast_value: bool):
    """``(value, G^T)`` of the block from ``W_e^T`` (``G^T`` in a scratch buffer)."""
    sl = slice(lo, hi) if lc["batched"] else slice(None)
    if "raw" in lc:  # G^T = Lxx^T W_e^T - Lyx^T; value 0.5 (<W_e, W_e Lxx> - 2 <W_e, Lyx>) + 0.5 tr Lyy
        St = _np.matmul(lc["SxxT"][sl], WeT, out=next(bufs))
        v = _np.einsum("bij,bij->b", WeT, St)
        v -= 2.0 * _np.einsum("bij,bij->b", WeT, _np.broadcast_to(lc["SyxT"][sl], WeT.shape))
        Gt = _np.subtract(St, lc["SyxT"][sl], out=St)
    elif "SxxT" in lc:
        Et = _np.subtract(WeT, lc["PhiT"][sl], out=next(bufs))
        ESt = _np.matmul(lc["SxxT"][sl], Et, out=next(bufs))
        if "FT" in lc and not fast_value:
            EFt = _np.matmul(lc["FT"][sl], Et)
            v = _np.einsum("bij,bij->b", EFt, EFt)
            v *= lc["fw"]
        else:
            v = _np.einsum("bij,bij->b", Et, ESt)
        Gt = _np.add(ESt, lc["KT"][sl], out=ESt)
    else:
        Et = _np.subtract(WeT, lc["PhiT"][sl], out=next(bufs))
        v = _np.einsum("bij,bij->b", Et, Et)
        Gt = Et
    v *= 0.5
    v += lc["c0"][sl] if lc["batched"] else lc["c0"]
    return v, Gt


def backward(Fs, P, Gt, grads, lo: int, hi: int, bufs) -> None:
    """``grads[j][lo:hi]``: :math:`M_N = G^\\top`, grad_j = :math:`(P_{j-1}M_j)^\\top`,
    :math:`M_{j-1} = M_jF_j` (:math:`M_1^\\top` is grad_1)."""
    N = len(Fs)
    M = Gt
    for j in range(N, 1, -1):
        _np.matmul(P[j - 1], M, out=_np.swapaxes(grads[j - 1][lo:hi], -1, -2))
        out = _np.swapaxes(grads[0][lo:hi], -1, -2) if j == 2 else next(bufs)
        M = _np.matmul(M, Fs[j - 1], out=out)
    if N == 1:
        _np.copyto(grads[0][lo:hi], _np.swapaxes(Gt, -1, -2))
