r"""The Hadamard product map :math:`W = w_N\odot\cdots\odot w_1` of diagonal nets and its calculus: layer
validation, the end-to-end matrix, the deep loss, gradients, exact Hessian-vector products, the dense Hessian and
Woodworth et al.'s lift (formulas in :mod:`linnet.diagonal`, which re-exports every name).
"""

from __future__ import annotations

from typing import Any, Sequence

from .._backend import namespace
from .._validate import (
    broadcast_batch,
    check_finite,
    check_loss,
    check_loss_against,
    check_matrix,
    check_problem_batch,
    check_same_namespace,
    dtype_name,
    layer_arrays,
)

__all__ = ["check_layers", "end_to_end", "loss", "grad", "value_and_grad", "hvp", "hessian", "lift"]

Array = Any


def check_layers(Ws: Any, *, name: str = "Ws"):
    """Validate diagonal layers: a tuple/list of >= 1 float arrays of one trailing shape ``(d_N, d_0)``.

    Returns ``(tuple(Ws), xp)``; raises ``ValueError`` naming ``name`` otherwise.
    """
    Ws, xp = layer_arrays(Ws, name)
    shape, dt = tuple(Ws[0].shape[-2:]) if Ws[0].ndim >= 2 else None, Ws[0].dtype
    for j, W in enumerate(Ws, start=1):
        if W.ndim < 2:
            raise ValueError(f"`{name}[{j - 1}]` (layer {j}) must have shape (..., d_N, d_0), got {tuple(W.shape)}")
        if tuple(W.shape[-2:]) != shape:
            raise ValueError(
                f"`{name}`: diagonal layers must share one shape (d_N, d_0): layer 1 is {shape}, "
                f"layer {j} is {tuple(W.shape[-2:])}"
            )
        if W.dtype != dt:
            raise ValueError(f"`{name}` must share one dtype: layer 1 is {dt}, layer {j} is {W.dtype}")
    try:
        dtype_name(dt)
    except ValueError:
        raise ValueError(f"`{name}` must have dtype float32 or float64, got {dt}") from None
    for j, W in enumerate(Ws):
        if 0 in tuple(W.shape):
            raise ValueError(f"`{name}[{j}]` must have every dimension >= 1, got shape {tuple(W.shape)}")
        check_finite(W, f"{name}[{j}]", xp=xp)
    broadcast_batch(*(tuple(W.shape[:-2]) for W in Ws), what=f"the layers' batch shapes in `{name}`")
    return Ws, xp


def _mul(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return a * b


def _partials(Ws):
    """Prefixes ``p[0..N]`` (``p[0] = None``) and suffixes ``s[0..N]`` (``s[N] = None``)."""
    N = len(Ws)
    p = [None] * (N + 1)
    for j in range(1, N + 1):
        p[j] = _mul(Ws[j - 1], p[j - 1])
    s = [None] * (N + 1)
    for j in range(N - 1, -1, -1):
        s[j] = _mul(Ws[j], s[j + 1])
    return p, s


def _prepare(loss_fn, Ws):
    loss_fn = check_loss(loss_fn)
    Ws, xp = check_layers(Ws)
    p, s = _partials(Ws)
    loss_fn = check_loss_against(loss_fn, p[-1])
    check_problem_batch(loss_fn, p[-1])
    return loss_fn, Ws, xp, p, s


def end_to_end(Ws: Sequence[Array]) -> Array:
    r"""The end-to-end matrix :math:`w_N\odot\cdots\odot w_1`, shape ``(..., d_N, d_0)`` (dtype kept).

    Examples
    --------
    >>> import numpy as np, linnet as ln
    >>> ln.diagonal.end_to_end((np.array([[1.0, 2.0]]), np.array([[3.0, -1.0]])))
    array([[ 3., -2.]])
    """
    Ws, _ = check_layers(Ws)
    return _partials(Ws)[0][-1]


def loss(loss: Any, Ws: Sequence[Array]) -> Array:
    """The deep loss :math:`\\ell(w_N\\odot\\cdots\\odot w_1)`, one value per net: shape ``(...)``."""
    loss_fn, Ws, xp, p, _ = _prepare(loss, Ws)
    return loss_fn.value(p[-1])


def _pullback(G, p, s, xp, like):
    out = []
    for j in range(1, len(p)):
        c = _mul(s[j], p[j - 1])
        g = G if c is None else G * c
        out.append(
            xp.broadcast_to(
                g, broadcast_batch(tuple(g.shape[:-2]), tuple(like[j - 1].shape[:-2])) + tuple(g.shape[-2:])
            )
        )
    return tuple(out)


def value_and_grad(loss: Any, Ws: Sequence[Array]):
    """``(L, grads)``: the loss and the per-layer gradients :math:`\\nabla\\ell(W)\\odot c_j` in one pass."""
    loss_fn, Ws, xp, p, s = _prepare(loss, Ws)
    We = p[-1]
    return loss_fn.value(We), _pullback(loss_fn.grad(We), p, s, xp, Ws)


def grad(loss: Any, Ws: Sequence[Array]) -> tuple:
    r"""Per-layer gradients :math:`\partial L/\partial w_j = \nabla\ell(W)\odot\prod_{k\ne j}w_k`.

    Examples
    --------
    >>> import numpy as np, linnet as ln
    >>> Ws = (np.array([[2.0]]), np.array([[3.0]]))
    >>> [float(g[0, 0]) for g in ln.diagonal.grad(ln.SquaredLoss.whitened(np.array([[1.0]])), Ws)]
    [15.0, 10.0]
    """
    return value_and_grad(loss, Ws)[1]


def _check_direction(Vs, Ws, name="Vs"):
    if not isinstance(Vs, (tuple, list)) or len(Vs) != len(Ws):
        n = len(Vs) if hasattr(Vs, "__len__") else "?"
        raise ValueError(
            f"`{name}` must be a tuple of {len(Ws)} arrays shaped like the layers, got {type(Vs).__name__} of length {n}"
        )
    Vs, _ = check_layers(Vs, name=name)
    check_same_namespace(Vs[0], namespace(Ws[0]), name, "`Ws`")
    if tuple(Vs[0].shape[-2:]) != tuple(Ws[0].shape[-2:]):
        raise ValueError(
            f"`{name}` must have layers of shape (..., {Ws[0].shape[-2]}, {Ws[0].shape[-1]}), got {tuple(Vs[0].shape)}"
        )
    if Vs[0].dtype != Ws[0].dtype:
        raise ValueError(f"`{name}` must have the dtype of the weights ({Ws[0].dtype}), got {Vs[0].dtype}")
    return Vs


def hvp(loss: Any, Ws: Sequence[Array], Vs: Sequence[Array]) -> tuple:
    r"""Exact Hessian-vector product :math:`\nabla^2L(w)[V]` of the diagonal net (formula in the module docstring)."""
    loss_fn, Ws, xp, p, s = _prepare(loss, Ws)
    Vs = _check_direction(Vs, Ws)
    broadcast_batch(
        *(tuple(V.shape[:-2]) for V in Vs),
        *(tuple(W.shape[:-2]) for W in Ws),
        tuple(getattr(loss_fn, "batch_shape", ()) or ()),
        what="the batch shapes of `Vs`, `Ws` and the problem in `loss`",
    )
    N = len(Ws)
    dp = [None] * (N + 1)  # tangents of the prefixes; None = 0
    for j in range(1, N + 1):
        a = None if dp[j - 1] is None else dp[j - 1] * Ws[j - 1]
        b = _mul(Vs[j - 1], p[j - 1])
        dp[j] = b if a is None else a + b
    ds = [None] * (N + 1)
    for j in range(N - 1, -1, -1):
        a = None if ds[j + 1] is None else ds[j + 1] * Ws[j]
        b = _mul(Vs[j], s[j + 1])
        ds[j] = b if a is None else a + b
    We = p[-1]
    G = loss_fn.grad(We)
    gn = _pullback(loss_fn.hvp(We, dp[-1]), p, s, xp, Ws)
    out = []
    for j in range(1, N + 1):
        terms = [
            t
            for t in (
                _mul(ds[j], p[j - 1]) if ds[j] is not None else None,
                _mul(s[j], dp[j - 1]) if dp[j - 1] is not None else None,
            )
            if t is not None
        ]
        if not terms:
            out.append(gn[j - 1])
            continue
        dc = terms[0] if len(terms) == 1 else terms[0] + terms[1]
        out.append(gn[j - 1] + G * dc)
    return tuple(out)


def hessian(loss: Any, Ws: Sequence[Array]) -> Array:
    r"""Dense Hessian, shape ``(..., P, P)``, :math:`P = N d_N d_0`; order: layers 1..N, each row-major.

    Column :math:`k` is the exact HVP with the :math:`k`-th unit vector (all :math:`P` as one batched call);
    symmetrized to remove round-off. For small nets.
    """
    loss_fn, Ws, xp, p, _ = _prepare(loss, Ws)
    N, (r, c) = len(Ws), tuple(Ws[0].shape[-2:])
    n = r * c
    P = N * n
    batch = tuple(loss_fn.value(p[-1]).shape)
    eye = xp.eye(P, dtype=Ws[0].dtype)
    E = xp.reshape(eye, (P,) + (1,) * len(batch) + (P,))
    Vs = tuple(xp.reshape(E[..., j * n : (j + 1) * n], (P,) + (1,) * len(batch) + (r, c)) for j in range(N))
    cols = hvp(loss_fn, Ws, Vs)
    cols = [xp.broadcast_to(h, (P,) + batch + (r, c)) for h in cols]
    H = xp.concat([xp.reshape(h, (P,) + batch + (n,)) for h in cols], axis=-1)
    H = xp.permute_dims(H, tuple(range(1, len(batch) + 1)) + (0, len(batch) + 1))
    return 0.5 * (H + H.mT)


def lift(X: Array) -> Array:
    r"""Woodworth et al.'s two-tower lift: data ``X (..., d, m)`` (samples as columns) becomes ``[X; -X]``.

    A diagonal net with end-to-end row :math:`(u, v)` on the lifted data predicts with :math:`\beta = u - v`, so
    :math:`\beta = w_+^{D} - w_-^{D}` when the layers are :math:`(w_+, w_-)` stacked.
    """
    X, xp = check_matrix(X, "X")
    return xp.concat([X, -X], axis=-2)
