r"""Losses of the residuals :math:`R = WX - Y`, entry by entry, held as the data ``X``, ``Y`` itself:
:class:`LpLoss` (:math:`\ell_p` regression) and :class:`HuberLoss`. Re-exported by :mod:`linnet.losses` and at the
top level.

Unlike the squared loss they have no sufficient statistics: a value, gradient or HVP costs :math:`O(m)`, and
:meth:`~linnet.losses.Loss.subsample` keeps the chosen columns. Conventions as in :mod:`linnet.losses`: samples
are columns, :math:`X \in \mathbb R^{d_0 \times m}`, :math:`Y \in \mathbb R^{d_N \times m}`.
"""

from __future__ import annotations

from ._backend import namespace
from ._loss import Loss, as_data
from ._validate import check_positive

__all__ = ["LpLoss", "HuberLoss"]


class _DataLoss(Loss):
    """Shared capabilities of losses of the residuals :math:`WX - Y` held as data ``X``, ``Y``."""

    finite_value_implies_finite_weights = True

    @property
    def n_samples(self) -> int:
        return int(self.X.shape[-1])


class LpLoss(_DataLoss):
    r""":math:`\ell(W) = \frac{1}{p\,m}\sum_{i,k} |(WX - Y)_{ik}|^p` for :math:`p \ge 2` (convex, :math:`C^2`).

    Used for the acceleration experiment of Arora, Cohen & Hazan,
    `arXiv:1802.06509 <https://arxiv.org/abs/1802.06509>`_, 2018 (:math:`p = 4`). A step costs :math:`O(m)`.
    """

    def __init__(self, X, Y, p: float = 4.0):
        X, Y, xp = as_data(X, Y)
        try:
            p = float(p)
        except (TypeError, ValueError):
            raise ValueError(f"`p` must be a real number >= 2, got {p!r}") from None
        if not p >= 2 or p != p or p == float("inf"):
            raise ValueError(f"`p` must be a finite number >= 2 (so that the loss is C^2), got {p!r}")
        self.X, self.Y, self.p = X, Y, p
        self.m = X.shape[-1]
        self.shape = (Y.shape[-2], X.shape[-2])
        self._cache = {}

    def reference_array(self):
        return self.X

    def astype(self, dtype) -> "LpLoss":
        if self.X.dtype == dtype:
            return self
        key = str(dtype)
        if key not in self._cache:
            xp = namespace(self.X)
            self._cache[key] = LpLoss(xp.astype(self.X, dtype), xp.astype(self.Y, dtype), self.p)
        return self._cache[key]

    def subsample(self, idx) -> "LpLoss":
        xp = namespace(self.X)
        out = object.__new__(LpLoss)
        out.X, out.Y, out.p = xp.take(self.X, idx, axis=-1), xp.take(self.Y, idx, axis=-1), self.p
        out.m, out.shape, out._cache = out.X.shape[-1], self.shape, {}
        return out

    def _residual(self, W):
        xp = namespace(W)
        return xp.matmul(W, self.X) - self.Y, xp

    def value(self, W):
        R, xp = self._residual(W)
        return xp.sum(xp.abs(R) ** self.p, axis=(-2, -1)) / (self.p * self.m)

    def grad(self, W):
        R, xp = self._residual(W)
        g = xp.sign(R) * xp.abs(R) ** (self.p - 1)
        return xp.matmul(g, self.X.mT) / self.m

    def hvp(self, W, D):
        R, xp = self._residual(W)
        w = (self.p - 1) * xp.abs(R) ** (self.p - 2)
        return xp.matmul(w * xp.matmul(D, self.X), self.X.mT) / self.m


class HuberLoss(_DataLoss):
    r"""Huber loss of the residuals, :math:`\ell(W) = \frac1m\sum_{i,k} h_\delta((WX-Y)_{ik})`.

    :math:`h_\delta(r) = r^2/2` for :math:`|r|\le\delta` and :math:`\delta(|r| - \delta/2)` beyond: convex and
    differentiable (:math:`C^1`; its second derivative jumps at :math:`|r| = \delta`, where ``hvp`` uses the
    inner branch).
    """

    def __init__(self, X, Y, delta: float = 1.0):
        X, Y, xp = as_data(X, Y)
        self.delta = check_positive(delta, "delta")
        self.X, self.Y, self.m = X, Y, X.shape[-1]
        self.shape = (Y.shape[-2], X.shape[-2])

    def reference_array(self):
        return self.X

    def astype(self, dtype) -> "HuberLoss":
        if self.X.dtype == dtype:
            return self
        xp = namespace(self.X)
        return HuberLoss(xp.astype(self.X, dtype), xp.astype(self.Y, dtype), self.delta)

    def subsample(self, idx) -> "HuberLoss":
        xp = namespace(self.X)
        out = object.__new__(HuberLoss)
        out.X, out.Y, out.delta = xp.take(self.X, idx, axis=-1), xp.take(self.Y, idx, axis=-1), self.delta
        out.m, out.shape = out.X.shape[-1], self.shape
        return out

    def value(self, W):
        xp = namespace(W)
        R = xp.matmul(W, self.X) - self.Y
        a = xp.abs(R)
        h = xp.where(a <= self.delta, 0.5 * R * R, self.delta * (a - 0.5 * self.delta))
        return xp.sum(h, axis=(-2, -1)) / self.m

    def grad(self, W):
        xp = namespace(W)
        R = xp.matmul(W, self.X) - self.Y
        g = xp.clip(R, -self.delta, self.delta)
        return xp.matmul(g, self.X.mT) / self.m

    def hvp(self, W, D):
        xp = namespace(W)
        R = xp.matmul(W, self.X) - self.Y
        w = xp.astype(xp.abs(R) <= self.delta, W.dtype)
        return xp.matmul(w * xp.matmul(D, self.X), self.X.mT) / self.m
