r"""The quadratic-loss kernel of :mod:`linnet._fastpaths.quadratic` in the natural orientation, for nets whose
matrices are large enough that every product is BLAS-bound.

The transposed layout (:mod:`.transposed`) writes :math:`W_e^\top`, :math:`G^\top` and the gradients through
``out=X.mT`` views because NumPy's *stacked* ``matmul`` of small matrices is 2-2.6x slower when only its right
operand is a transposed view. For large matrices each stacked product is one GEMM per net either way, and the
transposed layout costs more than it saves: its products run with both operands transposed (NumPy computes
``A @ B`` into ``out=X.mT`` as :math:`B^\top A^\top`), which OpenBLAS packs more slowly (one 100 x 100 product:
41 against 35 us), and one net of width 100 and depth 2 took ~10% longer for its values and gradients than
here. Here the same closed form (THEOREMS.md §1) runs as a hand-written NumPy loop writes it:

.. math::

    P_j = F_j P_{j-1},\quad E = W_e - \Phi,\quad G = E\Lambda_{xx} + K,\qquad
    L_N = G,\quad \frac{\partial L}{\partial W_j} = L_j P_{j-1}^\top,\quad L_{j-1} = F_j^\top L_j ,

every product into a C-contiguous scratch or gradient buffer (:math:`K = \Phi\Lambda_{xx} - \Lambda_{yx}`, zero in
exact arithmetic; the centred form keeps :math:`G` accurate near the minimum). Which layout runs depends only on
the shapes (:func:`use_natural`), never on the batch size, so a net gives the same bits alone or in any batch.
"""

from __future__ import annotations

from functools import partial as _partial

from .. import _backend
from . import threads as _threads

__all__ = ["use_natural", "block_ops", "evaluate_block", "scratch", "NATURAL_MIN_DIM"]

_np = _backend.np

#: Smallest width (every ``d_j``) at which the natural layout runs.
NATURAL_MIN_DIM = 48


def use_natural(dims) -> bool:
    """Whether nets of widths ``dims`` (``d_0 .. d_N``) run in the natural layout."""
    return min(dims) >= NATURAL_MIN_DIM


def _block_shapes(dims: tuple, b: int, residual: bool) -> list:
    """Scratch shapes of :func:`evaluate_block` (2-D for one net), in the order it takes them."""
    N, d0, dN = len(dims) - 1, dims[0], dims[-1]
    lead = () if b == 1 else (b,)
    shapes = [(dims[j], dims[j - 1]) for j in range(1, N + 1)] if residual else []  # F_j = I + W_j
    shapes += [(dims[j], d0) for j in range(2, N + 1)]  # P_2 .. P_N = W_e
    shapes += [(dN, d0), (dN, d0)]  # E (raw statistics: W_e Lxx), E Lxx
    shapes += [(dims[j], d0) for j in range(N - 1, 1, -1)]  # L_{N-1} .. L_2 (L_j = S_j^T G), in the order used
    return [lead + s for s in shapes]


def _dot_into(a, b_, out, one: bool) -> None:
    """``out[:] = <a, b>`` per net, reduced as :mod:`.quadratic` reduces it (one net: its 2-D arrays as a batch
    of one, so that a net gives the same bits alone and in a batch)."""
    if one:
        _np.einsum("bij,bij->b", a[None], b_[None], out=out)
    else:
        _np.einsum("bij,bij->b", a, b_, out=out)


def block_ops(Ws, lc: dict, residual: bool, lo: int, hi: int, vals, grads, fast_value: bool, dims, bufs) -> list:
    """The arithmetic of nets ``lo:hi`` as a list of calls with every operand bound (run them in order): loss
    values into ``vals[lo:hi]``, gradients into ``grads[j][lo:hi]`` (flat batch ``(B, d_j, d_{j-1})``,
    C-contiguous), from the loss constants ``lc`` of :func:`.quadratic._flat_loss`; ``dims`` =
    ``(d_0, ..., d_N)``, ``bufs``: scratch of :func:`_block_shapes`. A block of one net works on 2-D views
    (NumPy's stacked ``matmul`` makes the same GEMM call per net, with more overhead); its fast value (never
    recorded, see :func:`linnet._step.value_and_grads`) is a BLAS dot product. A caller that runs the same block
    step after step keeps the list (:class:`.quadratic.Plan`); the calls are then all that runs per step."""
    b = hi - lo
    one = b == 1
    at = lo if one else slice(lo, hi)
    bufs = iter(bufs)
    get = (lambda k: lc[k][at]) if lc["batched"] else lc.__getitem__
    ops = []

    def call(f, *args, **kw):
        ops.append(_partial(f, *args, **kw))

    mm = _np.matmul
    if residual:
        Fs = []
        for W in Ws:
            F = next(bufs)
            call(_np.copyto, F, W[at])
            d = F.shape[-1]
            diag = F.reshape(-1, d * d)[:, :: d + 1]  # the diagonal of each F_j = I + W_j, in place
            call(_np.add, diag, 1, out=diag)
            Fs.append(F)
    else:
        Fs = [W[at] for W in Ws]
    N = len(Fs)
    P = [None, Fs[0]]
    for j in range(2, N + 1):
        P.append(next(bufs))
        call(mm, Fs[j - 1], P[-2], out=P[-1])
    We, v = P[N], vals[lo:hi]
    if "raw" in lc:  # G = W_e Lxx - Lyx; value 0.5 (<W_e, W_e Lxx> - 2 <W_e, Lyx>) + 0.5 tr Lyy
        next(bufs)
        G, Syx, t = next(bufs), get("Syx"), _np.empty(b, dtype=v.dtype)
        call(mm, We, get("Sxx"), out=G)
        call(_dot_into, We, G, v, one)
        call(_dot_into, We, _np.broadcast_to(Syx, We.shape), t, one)
        call(_np.multiply, t, 2.0, out=t)
        call(_np.subtract, v, t, out=v)
        call(_np.subtract, G, Syx, out=G)
    elif "Sxx" in lc:
        E, G = next(bufs), next(bufs)  # G: E Lxx, then E Lxx + K in place
        call(_np.subtract, We, get("Phi"), out=E)
        call(mm, E, get("Sxx"), out=G)
        if "F" in lc and not fast_value:  # the value as 0.5 w ||E F||^2: accurate and >= c0 for singular Sxx
            F = get("F")
            EF = _np.empty(E.shape[:-1] + F.shape[-1:], dtype=E.dtype)
            call(mm, E, F, out=EF)
            call(_dot_into, EF, EF, v, one)
            call(_np.multiply, v, lc["fw"], out=v)
        elif one and fast_value:
            call(_np.dot, E.reshape(1, -1), G.reshape(-1, 1), out=v.reshape(1, 1))
        else:
            call(_dot_into, E, G, v, one)
        call(_np.add, G, get("K"), out=G)
    else:
        G = next(bufs)
        next(bufs)
        call(_np.subtract, We, get("Phi"), out=G)
        if one and fast_value:
            call(_np.dot, G.reshape(1, -1), G.reshape(-1, 1), out=v.reshape(1, 1))
        else:
            call(_dot_into, G, G, v, one)
    call(_np.multiply, v, 0.5, out=v)
    call(_np.add, v, get("c0"), out=v)
    L = G
    for j in range(N, 1, -1):
        call(mm, L, _np.swapaxes(P[j - 1], -1, -2), out=grads[j - 1][at])
        nxt = grads[0][at] if j == 2 else next(bufs)
        call(mm, _np.swapaxes(Fs[j - 1], -1, -2), L, out=nxt)
        L = nxt
    if N == 1:
        call(_np.copyto, grads[0][at], G)
    return ops


def scratch(dims: tuple, b: int, residual: bool, dtype) -> list:
    """This thread's scratch buffers of a block of ``b`` nets (:func:`.threads.workspace`)."""
    return _threads.workspace(("natural", b, dims, residual), lambda: _block_shapes(dims, b, residual), dtype)


def evaluate_block(Ws, lc: dict, residual: bool, lo: int, hi: int, vals, grads, fast_value: bool, dims) -> None:
    """Run :func:`block_ops` of nets ``lo:hi`` once, in this thread's scratch buffers."""
    bufs = scratch(dims, hi - lo, residual, Ws[0].dtype)
    for op in block_ops(Ws, lc, residual, lo, hi, vals, grads, fast_value, dims, bufs):
        op()
