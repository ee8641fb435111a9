r"""The hot path shared by every training loop: loss values and per-layer gradients, no validation.

Callers (``linnet.train``) validate once at the public edge, then call :func:`value_and_grads` each step.
Performance work (buffer reuse, batch splitting across threads, layouts) lives here and in
:mod:`linnet._fastpaths`, so that every user of ``linnet.train`` gets it.

The gradient is the closed form of THEOREMS.md §1, :math:`\partial L/\partial W_j = S_j^\top G P_{j-1}^\top`
with :math:`G = \nabla\ell(W_e)`, evaluated with a backward recursion :math:`L_N = G`,
:math:`L_{j-1} = F_j^\top L_j` (so :math:`L_j = S_j^\top G`) instead of forming the suffixes: :math:`3(N-1)`
matrix products per step besides the loss's own.
"""

from __future__ import annotations

from . import _fastpaths
from ._fastpaths.quadratic import as_update
from .product import factors as _factors

__all__ = ["value_and_grads", "prepare", "values"]


def value_and_grads(loss_fn, Ws, residual: bool, xp, out=None, update=None, fast_value: bool = False):
    r"""``(L, grads)`` for validated weights ``Ws`` and a loss already in their dtype.

    ``L`` has the batch shape (nets broadcast with the problem), ``grads`` is a tuple of per-layer arrays
    ``(..., d_j, d_{j-1})``. Where :func:`linnet._fastpaths.select_path` picks ``"numpy-quadratic"`` this runs
    :func:`linnet._fastpaths.quadratic.value_and_grads`
    (threads over the batch, reused buffers); elsewhere the generic array-API recursion below.

    ``out`` (optional): a tuple of arrays shaped like the gradients that the NumPy fast path fills in place and
    returns (a training loop can reuse them step after step). It is a hint: other paths return fresh arrays, so
    always use the returned tuple.

    ``update`` (optional, a :class:`linnet._fastpaths.Update` or a tuple of its 2-4 entries
    ``(steps, targets, momentum, stop)``): a fused gradient step. After the gradients are formed,
    ``targets[j] -= steps[j] * grads[j]`` in place (``steps``: one entry or one per layer, each a Python float or
    an array broadcastable to ``batch + (1, 1)``, i.e. per-net step sizes; ``targets``: mutable arrays shaped like
    ``Ws``, which may be ``Ws`` themselves). The product is rounded first, then subtracted: bit for bit the
    update ``w - s * g`` of array code. The returned ``L`` and gradients are those of the weights *before* the
    update. ``update = (steps, targets, (beta, M))`` is the heavy-ball step: first ``M[j] = beta * M[j] +
    grads[j]`` in place (``beta`` a Python float, ``M`` mutable arrays shaped like ``Ws``), then
    ``targets[j] -= steps[j] * M[j]``, each with the roundings of that array code. A fourth entry
    ``(gtol**2, ftol)`` (Python floats or ``None``) leaves out the nets that meet that stopping test at these
    weights (:func:`linnet._fastpaths.stop_mask`): their step factor is 0, as
    :mod:`linnet.train` then freezes them. The NumPy fast path does it block by block while each block of nets is
    still in cache; elsewhere it runs after the gradients with in-place array operators.

    ``fast_value`` (a hint, for divergence tests only): the NumPy fast path may then return, for a squared loss
    that carries a factor (:meth:`~linnet.losses.SquaredLoss.from_data`, ``population``), the unfactored centred
    value :math:`\tfrac12\langle E, E\Lambda_{xx}\rangle + c_0` (:math:`E = W_e - \Phi`), whose product
    :math:`E\Lambda_{xx}` the gradient needs anyway, instead of the factored one: one matrix product less per
    step. It equals the loss up to round-off relative to :math:`\|E\|^2\|\Lambda_{xx}\|`, so it may sit below
    the minimum where :math:`\Lambda_{xx}` is singular; recorded and reported values never use it.
    """
    fast = _fastpaths.value_and_grads(loss_fn, Ws, residual, xp, out, update, fast_value)
    if fast is not None:
        return fast
    return _generic(loss_fn, Ws, residual, xp, update)


def prepare(loss_fn, Ws, residual: bool, xp):
    """``step(W, out=None, update=None, fast_value=False)``: :func:`value_and_grads` of ``loss_fn`` for weights
    shaped like ``Ws``, for a loop that calls it step after step. Where the NumPy kernel runs, its
    :class:`~linnet._fastpaths.quadratic.Plan` is built here, once (the path is chosen now, not at each call),
    and ``step.run`` is its :meth:`~linnet._fastpaths.quadratic.Plan.run`; the results are those of
    :func:`value_and_grads`, bit for bit."""
    plan = _fastpaths.prepare(loss_fn, Ws, residual, xp)

    def step(W, out=None, update=None, fast_value=False):
        fast = None if plan is None else plan(W, out, update, fast_value)
        if fast is not None:
            return fast
        return _generic(loss_fn, W, residual, xp, update)  # the fast path's own fallback, as value_and_grads's

    if plan is not None:  # the kernel's run of fused steps (linnet.train.driver's evaluate_fused_run)
        step.run = plan.run
    return step


def _generic(loss_fn, Ws, residual: bool, xp, update):
    """The array-API recursion (and ``update``) of :func:`value_and_grads`."""
    Fs = _factors(Ws, residual, xp)
    N = len(Fs)
    prefix = [None, Fs[0]]  # prefix[j] = F_j ... F_1 (prefix[0] = I is None)
    for j in range(1, N):
        prefix.append(xp.matmul(Fs[j], prefix[-1]))
    We = prefix[-1]
    G = loss_fn.grad(We)
    grads = [None] * N
    L = G  # L_j = S_j^T G, from j = N down
    for j in range(N, 0, -1):
        grads[j - 1] = L if j == 1 else xp.matmul(L, prefix[j - 1].mT)
        if j > 1:
            L = xp.matmul(Fs[j - 1].mT, L)
    value = loss_fn.value(We)  # before any update: We may be Ws[0] itself
    if update is not None:
        steps, targets, mom, stop = as_update(update)
        if not isinstance(steps, (tuple, list)):
            steps = (steps,) * N
        keep = None
        conv = None if stop is None else _fastpaths.stop_mask(grads, value, stop, xp)
        if conv is not None:  # nets meeting the stopping test now take no step
            keep = xp.astype(~conv, grads[0].dtype)[..., None, None]
        for j, (t, s, g) in enumerate(zip(targets, steps, grads)):
            if keep is not None:
                s = s * keep
            if mom is not None:  # M_j <- beta M_j + G_j in place (two roundings, as beta * m + g)
                m = mom[1][j]
                m *= mom[0]
                m += g
                g = m
            x = s * g
            if x.dtype != t.dtype:  # a float64 scalar step on float32 weights: round the product once, as out= does
                x = xp.astype(x, t.dtype)
            t -= x
    return value, tuple(grads)


def values(loss_fn, Ws, residual: bool, xp):
    """Loss values only (shape: the batch)."""
    Fs = _factors(Ws, residual, xp)
    We = Fs[0]
    for F in Fs[1:]:
        We = xp.matmul(F, We)
    return loss_fn.value(We)
