r"""Binary classification losses on a scalar output, and the max-margin direction (THEOREMS2.md §17).

Scalar output (:math:`d_N = 1`), labels :math:`y_i\in\{\pm1\}`, :math:`z_i = y_ix_i` (columns of
:math:`X`), margins :math:`q_i = \langle w, z_i\rangle` of the end-to-end row vector :math:`w = W_{1:N}`:

.. math::

    \ell_{\log}(w) = \sum_{i=1}^m\log\big(1 + e^{-q_i}\big), \qquad \ell_{\exp}(w) = \sum_{i=1}^m e^{-q_i},

**sums, not means**, as in Soudry, Hoffer, Nacson, Gunasekar & Srebro, "The Implicit Bias of Gradient Descent
on Separable Data", arXiv:1710.10345, JMLR 19 (2018), and THEOREMS2 §17 (``reduction="mean"`` divides by
:math:`m`). Gradients :math:`-\sum_i\phi(q_i)z_i^\top` with :math:`\phi = \sigma(-q)` (logistic) or :math:`e^{-q}`
(exponential); HVPs :math:`\sum_i\psi(q_i)\langle D, z_i^\top\rangle z_i^\top` with :math:`\psi = \sigma(q)\sigma(-q)` or
:math:`e^{-q}`.

Numerics: the logistic terms use :math:`\log(1+e^{-q}) = \max(-q, 0) + \operatorname{log1p}(e^{-|q|})` and
:math:`\sigma(-q)`, :math:`\sigma(q)\sigma(-q)` from :math:`e^{-|q|}` only, so no exponential overflows and no
:math:`\log 0` is taken at any margin. The exponential loss is finite while :math:`-q_i` stays below
:math:`\log(\text{float max})` (709 in float64); beyond that its true value is not representable and it
returns ``inf`` (the trainers stop on a non-finite loss).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np  # host side only: the reference QP

from ._backend import from_host, namespace, to_numpy
from ._validate import (
    as_native,
    broadcast_batch,
    check_bool,
    check_data,
    check_finite,
    check_matrix,
    check_opt_positive,
    check_same_namespace,
)
from .losses import Loss

__all__ = ["LogisticLoss", "ExponentialLoss", "max_margin_direction"]

Array = Any


def _labels(X, y, xp):
    if hasattr(y, "shape") and hasattr(y, "dtype"):
        y = as_native(y)
        check_same_namespace(y, xp, "y", "`X`")
        if xp.isdtype(y.dtype, "integral"):  # +-1 given as ints
            y = xp.astype(y, X.dtype)
    y = check_data(y, "y", xp=xp, like=X, other="`X`")
    if y.shape[-1] != X.shape[-1]:
        raise ValueError(
            f"`y` must have shape (..., m) with m = {X.shape[-1]} samples (columns of `X`), got {tuple(y.shape)}"
        )
    broadcast_batch(tuple(X.shape[:-2]), tuple(y.shape[:-1]), what="the batch shapes of `X` and `y`")
    if y.dtype != X.dtype:
        raise ValueError(f"`X` and `y` must share a dtype, got {X.dtype} and {y.dtype}")
    check_finite(y, "y", xp=xp)
    if not bool(xp.all((y == 1) | (y == -1))):
        raise ValueError("`y` must hold labels +1 or -1 only")
    return y


class _MarginLoss(Loss):
    """Shared machinery: data ``X (..., d_0, m)``, labels ``y (..., m)``, ``Z = X * y``; subclasses give phi, psi."""

    def __init__(self, X, y, *, reduction: str = "sum"):
        X, xp = check_matrix(X, "X")
        y = _labels(X, y, xp)
        if reduction not in ("sum", "mean"):
            raise ValueError(f"`reduction` must be 'sum' or 'mean', got {reduction!r}")
        self._set(X, y, reduction)

    def _set(self, X, y, reduction):
        self.X, self.y, self.reduction = X, y, reduction
        self.Z = X * y[..., None, :]
        self.m = X.shape[-1]
        self.shape = (1, X.shape[-2])
        self._scale = 1.0 if reduction == "sum" else 1.0 / self.m
        self._cache = {}

    @property
    def num_samples(self) -> int:
        """The number of samples :math:`m` (what :func:`linnet.train.sgd` draws from)."""
        return self.m

    @property
    def n_samples(self) -> Optional[int]:
        """The :class:`~linnet.losses.Loss` capability: samples that :meth:`subsample` draws from."""
        return self.num_samples

    def _new(self, X, y):
        out = object.__new__(type(self))
        out._set(X, y, self.reduction)
        return out

    def astype(self, dtype):
        if self.X.dtype == dtype:
            return self
        key = str(dtype)
        if key not in self._cache:
            xp = namespace(self.X)
            self._cache[key] = self._new(xp.astype(self.X, dtype), xp.astype(self.y, dtype))
        return self._cache[key]

    def subsample(self, idx):
        """The same loss on the samples ``idx`` (columns of ``X``)."""
        xp = namespace(self.X)
        return self._new(xp.take(self.X, idx, axis=self.X.ndim - 1), xp.take(self.y, idx, axis=self.y.ndim - 1))

    def margins(self, W):
        """:math:`q_i = \\langle w, z_i\\rangle`, shape ``(..., m)``."""
        return namespace(W).matmul(W, self.Z)[..., 0, :]

    def value(self, W):
        xp = namespace(W)
        return self._scale * xp.sum(self._terms(self.margins(W), xp), axis=-1)

    def grad(self, W):
        xp = namespace(W)
        phi = self._phi(self.margins(W), xp)
        return -self._scale * xp.matmul(phi[..., None, :], self.Z.mT)

    def hvp(self, W, D):
        xp = namespace(W)
        psi = self._psi(self.margins(W), xp)
        return self._scale * xp.matmul(psi[..., None, :] * xp.matmul(D, self.Z), self.Z.mT)

    def min_value(self):
        """0, the infimum on separable data (not attained)."""
        return 0.0


class LogisticLoss(_MarginLoss):
    r"""Logistic loss :math:`\ell(w) = \sum_i\log(1+e^{-y_i\langle w, x_i\rangle})` of a scalar-output net (a sum).

    Parameters
    ----------
    X : array ``(..., d_0, m)``, samples as columns (leading dimensions: a batch of problems).
    y : array ``(..., m)`` of labels :math:`\pm1`.
    reduction : ``"sum"`` (default, Soudry et al.) or ``"mean"``.

    Smooth with :math:`\nabla^2\ell \preceq \frac14 ZZ^\top` (:math:`\beta = 1/4` per sample). See the module
    docstring for the numerics at large margins.

    Examples
    --------
    >>> import numpy as np, linnet as ln
    >>> loss = ln.LogisticLoss(np.array([[1.0, -2.0]]), np.array([1.0, -1.0]))
    >>> round(float(loss.value(np.zeros((1, 1)))), 6)    # 2 log 2
    1.386294
    >>> float(loss.value(np.array([[1e3]])))             # margins 1e3 and 2e3: no overflow, no log(0)
    0.0
    """

    def _terms(self, q, xp):
        return xp.where(q < 0, -q, xp.zeros_like(q)) + xp.log1p(xp.exp(-xp.abs(q)))

    def _phi(self, q, xp):  # sigma(-q) = 1/(1+e^q)
        e = xp.exp(-xp.abs(q))
        return xp.where(q >= 0, e / (1 + e), 1 / (1 + e))

    def _psi(self, q, xp):  # sigma(q) sigma(-q) = e^{-|q|}/(1+e^{-|q|})^2
        e = xp.exp(-xp.abs(q))
        return e / ((1 + e) * (1 + e))


class ExponentialLoss(_MarginLoss):
    r"""Exponential loss :math:`\ell(w) = \sum_i e^{-y_i\langle w, x_i\rangle}` of a scalar-output net (a sum).

    Arguments as :class:`LogisticLoss`. Value, gradient weights and HVP weights are all :math:`e^{-q_i}`.

    Examples
    --------
    >>> import numpy as np, linnet as ln
    >>> loss = ln.ExponentialLoss(np.array([[1.0, -2.0]]), np.array([1.0, -1.0]))
    >>> float(loss.value(np.zeros((1, 1))))
    2.0
    """

    def _terms(self, q, xp):
        # e^{-q} where it is representable, inf beyond (no overflow in exp itself)
        cap = float(np.log(float(xp.finfo(q.dtype).max))) * (1 - 1e-6)
        e = xp.exp(xp.clip(-q, None, cap))
        return xp.where(-q > cap, xp.full_like(e, float("inf")), e)

    _phi = _terms
    _psi = _terms


def max_margin_direction(X, y, *, normalize: bool = False, tol: float = 1e-10):
    r"""The hard-margin SVM through the origin, :math:`\hat w = \arg\min\{\|w\|_2 : y_i\langle w, x_i\rangle\ge1\ \forall i\}`.

    Reference for the implicit bias of GD on separable data (Soudry et al., arXiv:1710.10345: GD on the
    logistic loss converges in direction to :math:`\hat w/\|\hat w\|`; the problem is the hard-margin SVM
    without bias of Vapnik's formulation, Cortes & Vapnik, "Support-vector networks", Machine Learning 20, 1995).

    Solved on the host in float64: SLSQP (:func:`scipy.optimize.minimize`, ``ftol=1e-15``) on the primal QP,
    then polished exactly on the active set :math:`S` (margins :math:`\le 1 + 10^{-6}`):
    :math:`\hat w = Z_S(Z_S^\top Z_S)^+\mathbf 1`. The result is certified by the KKT conditions: primal
    feasibility :math:`\min_i q_i \ge 1 - \text{tol}`, dual multipliers :math:`\alpha_S = (Z_S^\top Z_S)^+\mathbf 1 \ge -\text{tol}`
    (then :math:`\hat w = \sum_S\alpha_iz_i` is optimal); otherwise ``ValueError``.

    Parameters
    ----------
    X : array ``(d_0, m)`` (samples as columns), y : array ``(m,)`` of :math:`\pm1` labels.
    normalize : return the unit direction :math:`\bar u = \hat w/\|\hat w\|` instead of :math:`\hat w`.
    tol : the KKT tolerance of the certificate.

    Returns
    -------
    array ``(1, d_0)`` in the namespace and dtype of ``X`` (a row vector, the shape of the end-to-end matrix).

    Raises
    ------
    ValueError
        If the data are not linearly separable through the origin (no certified solution).

    Examples
    --------
    >>> import numpy as np, linnet as ln
    >>> X = np.array([[1.0, -1.0, 2.0], [0.5, 0.5, 0.0]]); y = np.array([1.0, -1.0, 1.0])
    >>> np.round(ln.max_margin_direction(X, y), 6)
    array([[1., 0.]])
    """
    from scipy.optimize import minimize

    X, xp = check_matrix(X, "X")
    if X.ndim != 2:
        raise ValueError(f"`X` must be one data set (d_0, m), got shape {tuple(X.shape)}")
    y = _labels(X, y, xp)
    if y.ndim != 1:
        raise ValueError(f"`y` must be one label vector (m,), got shape {tuple(y.shape)}")
    normalize = check_bool(normalize, "normalize")
    tol = check_opt_positive(tol, "tol")
    if tol is None:
        raise ValueError("`tol` must be a real number > 0, got None")
    Z = np.asarray(to_numpy(X), dtype=np.float64) * np.asarray(to_numpy(y), dtype=np.float64)[None, :]
    d0, m = Z.shape
    w0, *_ = np.linalg.lstsq(Z.T, np.ones(m), rcond=None)
    res = minimize(
        lambda w: 0.5 * float(w @ w),
        w0,
        jac=lambda w: w,
        constraints=[{"type": "ineq", "fun": lambda w: Z.T @ w - 1.0, "jac": lambda w: Z.T}],
        method="SLSQP",
        options={"ftol": 1e-15, "maxiter": 1000},
    )
    w = res.x
    q = Z.T @ w
    S = q <= 1 + 1e-6
    if np.any(S):
        ZS = Z[:, S]
        alpha = np.linalg.pinv(ZS.T @ ZS) @ np.ones(int(S.sum()))
        w_pol = ZS @ alpha
        q_pol = Z.T @ w_pol
        if q_pol.min() >= 1 - tol and alpha.min() >= -tol:
            w, q = w_pol, q_pol
        else:
            alpha = None
    else:
        alpha = None
    if alpha is None or not np.all(np.isfinite(w)) or q.min() < 1 - tol:
        raise ValueError(
            "`X`, `y` must be linearly separable through the origin: the hard-margin QP has no certified solution "
            f"(min margin {float(q.min()) if np.all(np.isfinite(q)) else float('nan'):.3g}, solver: {res.message})"
        )
    if normalize:
        w = w / np.linalg.norm(w)
    return from_host(w[None, :], xp, X.dtype)
