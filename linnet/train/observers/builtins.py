r"""The built-in observers, one small class each (registered by name)."""

from __future__ import annotations

import math

from ... import _backend
from ... import product as _p
from ..._fastpaths.curvature import top_eigenvalue
from .base import Observer, register

_np = _backend.np


def _sq(A, xp):
    return xp.sum(A * A, axis=(-2, -1))


def _per_pair(ctx, f):
    """``f(W_j, W_{j+1})`` for each adjacent layer pair, stacked on a last axis: ``(*batch, N-1)`` (empty for
    depth 1)."""
    xp, Ws = ctx.xp, ctx.Ws
    if len(Ws) < 2:
        return xp.zeros(ctx.L.shape + (0,), dtype=ctx.L.dtype)
    return xp.stack([f(Ws[j], Ws[j + 1]) for j in range(len(Ws) - 1)], axis=-1)


@register
class Loss(Observer):
    """The loss at the step, ``(*batch)`` (SGD: the minibatch loss of the step)."""

    name = "loss"

    def __call__(self, ctx):
        return ctx.L * 1


@register
class GradNorm(Observer):
    r""":math:`(\sum_j\|\partial L/\partial W_j\|_F^2)^{1/2}`, ``(*batch)``."""

    name = "grad_norm"

    def __call__(self, ctx):
        xp = ctx.xp
        return xp.sqrt(sum(_sq(g, xp) for g in ctx.G))


@register
class LayerNorms(Observer):
    r""":math:`\|W_j\|_F` per layer, ``(*batch, N)``."""

    name = "layer_norms"

    def __call__(self, ctx):
        xp = ctx.xp
        return xp.stack([xp.sqrt(_sq(W, xp)) for W in ctx.Ws], axis=-1)


@register
class Balancedness(Observer):
    r""":math:`\|W_{j+1}^\top W_{j+1} - W_jW_j^\top\|_F` per layer pair, ``(*batch, N-1)`` (THEOREMS.md §2;
    Arora, Cohen, Golowich & Hu, arXiv:1810.02281)."""

    name = "balancedness"

    def __call__(self, ctx):
        xp = ctx.xp
        return _per_pair(ctx, lambda W, W_next: xp.sqrt(_sq(W_next.mT @ W_next - W @ W.mT, xp)))


def _end_to_end(ctx):
    return _p.end_to_end(ctx.Ws, residual=ctx.residual)


@register
class SingularValues(Observer):
    """Singular values of the end-to-end matrix, descending, ``(*batch, min(d_N, d_0))``."""

    name = "singular_values"

    def __call__(self, ctx):
        return ctx.xp.linalg.svdvals(_end_to_end(ctx))


@register
class EffectiveRank(Observer):
    r"""Entropy effective rank of the end-to-end matrix, :math:`\exp(-\sum_i p_i\log p_i)` with
    :math:`p_i = \sigma_i/\sum_k\sigma_k` (Roy & Vetterli, "The effective rank: a measure of effective
    dimensionality", EUSIPCO 2007, Def. 1), ``(*batch)``; 0 for the zero matrix."""

    name = "effective_rank"

    def __call__(self, ctx):
        xp = ctx.xp
        s = xp.linalg.svdvals(_end_to_end(ctx))
        tot = xp.sum(s, axis=-1, keepdims=True)
        p = s / xp.where(tot > 0, tot, xp.ones_like(tot))
        ent = -xp.sum(xp.where(p > 0, p * xp.log(xp.where(p > 0, p, xp.ones_like(p))), xp.zeros_like(p)), axis=-1)
        return xp.where(tot[..., 0] > 0, xp.exp(ent), xp.zeros_like(ent))


@register
class StableRank(Observer):
    r"""Stable rank :math:`\|W\|_F^2/\|W\|_2^2` of the end-to-end matrix (Rudelson & Vershynin 2007), ``(*batch)``;
    0 for the zero matrix."""

    name = "stable_rank"

    def __call__(self, ctx):
        xp = ctx.xp
        s = xp.linalg.svdvals(_end_to_end(ctx))
        top = s[..., 0]
        return xp.where(top > 0, xp.sum(s * s, axis=-1) / xp.where(top > 0, top * top, xp.ones_like(top)), top * 0)


@register
class DistanceToOptimum(Observer):
    r""":math:`\|W_e - W^\star\|_F` to the closed-form optimum :math:`W^\star` of the deep problem
    (:func:`linnet.theory.global_min`: reduced-rank regression for a squared loss), ``(*batch)``."""

    name = "distance_to_optimum"

    def __init__(self):
        self._opt = None

    def __call__(self, ctx):
        if self._opt is None:
            from ...theory import global_min

            widths = (ctx.Ws[0].shape[-1],) + tuple(W.shape[-2] for W in ctx.Ws)
            opt = global_min(ctx.loss, widths).We
            if opt is None:
                raise ValueError("`observe['distance_to_optimum']` needs a loss with a closed-form optimum")
            self._opt = opt
        return ctx.xp.sqrt(_sq(_end_to_end(ctx) - self._opt, ctx.xp))


@register
class Alignment(Observer):
    r""":math:`|\langle u_1(W_j), v_1(W_{j+1})\rangle|` per adjacent pair: the top left singular vector of layer
    :math:`j` against the top right singular vector of layer :math:`j+1` (1 when aligned, as in balanced deep
    linear nets: Ji & Telgarsky, arXiv:1810.02032), ``(*batch, N-1)``."""

    name = "alignment"

    def __call__(self, ctx):
        xp = ctx.xp

        def cosine(W, W_next):
            u = xp.linalg.svd(W, full_matrices=False)[0][..., :, 0]  # top left singular vector of W_j
            v = xp.linalg.svd(W_next, full_matrices=False)[2][..., 0, :]  # top right singular vector of W_{j+1}
            return xp.abs(xp.sum(u * v, axis=-1))

        return _per_pair(ctx, cosine)


@register
class Sharpness(Observer):
    r"""Top Hessian eigenvalue :math:`\lambda_{\max}(\nabla^2L)` per net (THEOREMS.md §13), by ARPACK on exact
    HVPs (:func:`linnet._fastpaths.curvature.top_eigenvalue`), each net warm-started from its eigenvector at the
    previous record, ``(*batch)``. The problem must be shared by the nets (no problem batch)."""

    name = "sharpness"
    tol = 1e-8

    def __init__(self):
        self._v = {}

    def __call__(self, ctx):
        xp = ctx.xp
        if tuple(ctx.loss.batch_shape) != ():
            raise ValueError("`observe['sharpness']` needs a problem shared by the nets (no batch in `loss`)")
        batch = tuple(ctx.L.shape)
        flat = [
            xp.reshape(xp.broadcast_to(W, batch + tuple(W.shape[-2:])), (-1,) + tuple(W.shape[-2:])) for W in ctx.Ws
        ]
        n = math.prod(batch)
        vals = _np.empty(n)
        for i in range(n):
            Wi = tuple(f[i, ...] * 1 for f in flat)  # a copy: the driver's buffers are reused
            r = top_eigenvalue(ctx.loss, Wi, residual=ctx.residual, tol=self.tol, v0=self._v.get(i))
            vals[i], self._v[i] = r.value, r.vector
        return _backend.from_host(vals.reshape(batch), xp, ctx.L.dtype)
