r"""The tied symmetric factorization :math:`W_2 = W_1^\top`: end-to-end :math:`W = W_1^\top W_1` (PSD).

Gunasekar, Woodworth, Bhojanapalli, Neyshabur & Srebro, `Implicit Regularization in Matrix Factorization
<https://arxiv.org/abs/1705.09280>`_, NeurIPS 2017, study :math:`X = UU^\top`; here :math:`U = W_1^\top`, so one
parameter array ``W1`` of shape ``(..., k, n)`` gives :math:`W = W_1^\top W_1 \in \mathbb R^{n\times n}`
(THEOREMS2.md §16a). With :math:`G = \nabla\ell(W)` and :math:`\mathcal H = \nabla^2\ell(W)`:

.. math::

    \nabla L(W_1) = W_1(G + G^\top),\qquad
    \nabla^2L(W_1)[V] = V(G+G^\top) + W_1(\mathcal H[\delta W] + \mathcal H[\delta W]^\top),
    \qquad \delta W = V^\top W_1 + W_1^\top V .

The losses are those of the dense map (:mod:`linnet.losses`) with shape ``(n, n)``. :func:`flow` is this map's
trainer (a thin function on :func:`grad`), kept here until the training driver takes product maps.
"""

from __future__ import annotations

from typing import Any

from ._validate import broadcast_batch, check_loss, check_loss_against, check_matrix, check_problem_batch, dtype_name

__all__ = ["end_to_end", "loss", "grad", "value_and_grad", "hvp", "hessian", "flow"]

Array = Any


def _check_W1(W1, name="W1"):
    if isinstance(W1, (tuple, list)):
        raise ValueError(f"`{name}` must be one array (..., k, n) (the tied layer), got a {type(W1).__name__}")
    W1, xp = check_matrix(W1, name)
    try:
        dtype_name(W1.dtype)
    except ValueError:
        raise ValueError(f"`{name}` must have dtype float32 or float64, got {W1.dtype}") from None
    return W1, xp


def _prepare(loss_fn, W1):
    loss_fn = check_loss(loss_fn)
    W1, xp = _check_W1(W1)
    We = xp.matmul(W1.mT, W1)
    loss_fn = check_loss_against(loss_fn, We, "W1")
    check_problem_batch(loss_fn, We, "W1")
    return loss_fn, W1, xp, We


def end_to_end(W1: Array) -> Array:
    r""":math:`W_1^\top W_1`, shape ``(..., n, n)``.

    Examples
    --------
    >>> import numpy as np, linnet as ln
    >>> ln.tied.end_to_end(np.array([[1.0, 2.0]]))
    array([[1., 2.],
           [2., 4.]])
    """
    W1, xp = _check_W1(W1)
    return xp.matmul(W1.mT, W1)


def loss(loss: Any, W1: Array) -> Array:
    """The tied loss :math:`\\ell(W_1^\\top W_1)`, shape ``(...)``."""
    loss_fn, _, _, We = _prepare(loss, W1)
    return loss_fn.value(We)


def value_and_grad(loss: Any, W1: Array):
    """``(L, dL/dW1)`` in one pass."""
    loss_fn, W1, xp, We = _prepare(loss, W1)
    G = loss_fn.grad(We)
    return loss_fn.value(We), xp.matmul(W1, G + G.mT)


def grad(loss: Any, W1: Array) -> Array:
    r""":math:`\nabla L(W_1) = W_1(G + G^\top)`, shape of ``W1`` (broadcast with the problem's batch).

    Examples
    --------
    >>> import numpy as np, linnet as ln
    >>> float(ln.tied.grad(ln.SquaredLoss.whitened(np.array([[1.0]])), np.array([[2.0]]))[0, 0])
    12.0
    """
    return value_and_grad(loss, W1)[1]


def hvp(loss: Any, W1: Array, V: Array) -> Array:
    r"""Exact Hessian-vector product (formula in the module docstring)."""
    loss_fn, W1, xp, We = _prepare(loss, W1)
    V, _ = check_matrix(V, "V", xp=xp, other="`W1`")
    if tuple(V.shape[-2:]) != tuple(W1.shape[-2:]):
        raise ValueError(f"`V` must have shape (..., {W1.shape[-2]}, {W1.shape[-1]}), got {tuple(V.shape)}")
    if V.dtype != W1.dtype:
        raise ValueError(f"`V` must have the dtype of `W1` ({W1.dtype}), got {V.dtype}")
    broadcast_batch(
        tuple(V.shape[:-2]),
        tuple(W1.shape[:-2]),
        tuple(getattr(loss_fn, "batch_shape", ()) or ()),
        what="the batch shapes of `V`, `W1` and the problem in `loss`",
    )
    G = loss_fn.grad(We)
    dW = xp.matmul(V.mT, W1) + xp.matmul(W1.mT, V)
    Hd = loss_fn.hvp(We, dW)
    return xp.matmul(V, G + G.mT) + xp.matmul(W1, Hd + Hd.mT)


def hessian(loss: Any, W1: Array) -> Array:
    """Dense Hessian ``(..., P, P)``, :math:`P = kn`, parameters in row-major order (small problems)."""
    loss_fn, W1, xp, We = _prepare(loss, W1)
    k, n = tuple(W1.shape[-2:])
    P = k * n
    batch = tuple(loss_fn.value(We).shape)
    E = xp.reshape(xp.eye(P, dtype=W1.dtype), (P,) + (1,) * len(batch) + (k, n))
    cols = xp.broadcast_to(hvp(loss_fn, W1, E), (P,) + batch + (k, n))
    H = xp.reshape(cols, (P,) + batch + (P,))
    H = xp.permute_dims(H, tuple(range(1, len(batch) + 1)) + (0, len(batch) + 1))
    return 0.5 * (H + H.mT)


def flow(
    loss: Any,
    W1: Array,
    *,
    t_max: float,
    t_eval=None,
    ftol=None,
    method="DOP853",
    rtol=1e-10,
    atol=1e-13,
    max_steps=1_000_000,
):
    r"""Gradient flow :math:`\dot W_1 = -\nabla L(W_1)` by ``scipy.integrate.solve_ivp`` (host float64, NumPy losses).

    Returns a :class:`linnet.ivp.FlowRun` whose ``weights`` is the 1-tuple ``(W1,)``; the keywords are those of
    :func:`linnet.ivp.integrate`.
    """
    from . import ivp as _ivp
    from ._backend import get_namespace

    loss_fn = check_loss(loss)
    W1, xp = _check_W1(W1)
    if xp is not get_namespace("numpy"):
        raise ValueError("`W1` must be a NumPy array (the flow runs on the host in float64)")
    We = xp.matmul(W1.mT, W1)
    check_problem_batch(check_loss_against(loss_fn, We, "W1"), We, "W1")
    (W1,) = _ivp.broadcast_to_problem(loss_fn, (W1,), We)

    def g(W):
        return (grad(loss_fn, W[0]),)

    def f(W):
        import numpy as np

        return float(np.sum(value_and_grad(loss_fn, W[0])[0]))

    return _ivp.integrate(
        g, f, (W1,), t_max=t_max, t_eval=t_eval, ftol=ftol, method=method, rtol=rtol, atol=atol, max_steps=max_steps
    )
