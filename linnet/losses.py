r"""End-to-end losses :math:`\ell(W)` of the end-to-end matrix :math:`W \in \mathbb R^{d_N \times d_0}`.

Each loss knows its value, gradient and Hessian-vector product with respect to :math:`W`
(``value``, ``grad``, ``hvp``), all batched over leading dimensions of ``W`` and of the problem itself.
The deep loss :math:`L(W_1, \dots, W_N) = \ell(W_N \cdots W_1)` is assembled in :mod:`linnet.calculus`.

Conventions (THEOREMS.md §0): samples are columns, :math:`X \in \mathbb R^{d_0 \times m}`,
:math:`Y \in \mathbb R^{d_N \times m}`, :math:`\Lambda_{xx} = XX^\top/m`, :math:`\Lambda_{yx} = YX^\top/m`.

The base class :class:`Loss` and :class:`QuadraticForm` are defined in ``linnet/_loss.py``, :class:`LpLoss` and
:class:`HuberLoss` in :mod:`linnet.losses_pointwise`; all are importable from here and from the top level.
"""

from __future__ import annotations

from typing import Callable, Optional

from ._backend import namespace
from ._loss import Loss, QuadraticForm, as_data
from ._validate import (
    broadcast_batch,
    check_callable_output,
    check_loss_shape,
    check_matrix,
    check_population,
)
from .losses_pointwise import HuberLoss, LpLoss

__all__ = ["Loss", "QuadraticForm", "SquaredLoss", "LpLoss", "HuberLoss", "CallableLoss"]


def _trace(A, xp):
    return xp.sum(xp.linalg.diagonal(A), axis=-1)


def _fro2(A, xp):
    return xp.sum(A * A, axis=(-2, -1))


class SquaredLoss(Loss):
    r"""Squared loss held as sufficient statistics.

    .. math::

        \ell(W) = \tfrac12 \operatorname{tr}\big((W-\Phi)\Lambda_{xx}(W-\Phi)^\top\big) + c_0,
        \qquad \nabla\ell(W) = W\Lambda_{xx} - \Lambda_{yx},

    with :math:`\Phi = \Lambda_{yx}\Lambda_{xx}^{+}` and :math:`c_0 = \min_W \ell(W)`. From data this equals
    :math:`\|WX - Y\|_F^2/(2m)`; the value is computed in the centred form, so it is accurate to round-off
    relative to the *excess* loss (no cancellation near interpolation). A step costs nothing in ``m``.

    Build it with :meth:`from_data`, :meth:`whitened` or :meth:`population`. Every array may carry leading
    batch dimensions (a batch of problems).

    Attributes
    ----------
    Sxx : array ``(..., d_0, d_0)`` or ``None`` (whitened: :math:`\Lambda_{xx} = I`)
    Syx : array ``(..., d_N, d_0)``
    Phi : array ``(..., d_N, d_0)``, the least-squares solution :math:`\Lambda_{yx}\Lambda_{xx}^{+}`
    c0 : array ``(...)``, the minimum over all :math:`W`
    tr_yy : array ``(...)``, :math:`\operatorname{tr}\Lambda_{yy}`
    """

    def __init__(self, Sxx, Syx, Phi, c0, tr_yy, *, data=None, factor=None, factor_weight=1.0):
        self.Sxx, self.Syx, self.Phi, self.c0, self.tr_yy = Sxx, Syx, Phi, c0, tr_yy
        self.data = data
        # a factor F with Sxx = w F F^T makes the centred value 0.5 w ||F^T (W - Phi)^T||^2 + c0 accurate and >= c0
        # even where Sxx is singular and W - Phi is large in its null space
        self.factor, self.factor_weight = factor, float(factor_weight)  # Sxx = factor_weight * F F^T
        self.shape = tuple(Syx.shape[-2:])
        self._cache = {}

    def reference_array(self):
        return self.Syx

    # ---- constructors -------------------------------------------------------------------------------------
    @classmethod
    def from_data(cls, X, Y) -> "SquaredLoss":
        r""":math:`\ell(W) = \|WX - Y\|_F^2 / (2m)` with samples as columns.

        Parameters
        ----------
        X : array ``(..., d_0, m)``
        Y : array ``(..., d_N, m)``, same dtype and namespace as ``X``.

        Examples
        --------
        >>> import numpy as np, linnet as ln
        >>> X = np.eye(2); Y = np.array([[1.0, 2.0]])
        >>> loss = ln.SquaredLoss.from_data(X, Y)
        >>> float(loss.value(np.zeros((1, 2))))
        1.25
        """
        X, Y, xp = as_data(X, Y)
        m = X.shape[-1]
        Sxx = xp.matmul(X, X.mT) / m
        Syx = xp.matmul(Y, X.mT) / m
        # thin SVD X = U s V^T: pinv(X) = V s^+ U^T, and F = U s / sqrt(m) has F F^T = Sxx
        U, sv, Vt = xp.linalg.svd(X, full_matrices=False)
        keep = sv > max(X.shape[-2], m) * xp.finfo(X.dtype).eps * xp.max(sv, axis=-1, keepdims=True)
        inv = xp.where(keep, 1.0 / xp.where(keep, sv, xp.ones_like(sv)), xp.zeros_like(sv))
        Phi = xp.matmul(xp.matmul(Y, Vt.mT) * inv[..., None, :], U.mT)
        factor = U * xp.where(keep, sv, xp.zeros_like(sv))[..., None, :]  # Sxx = F F^T / m
        R = xp.matmul(Phi, X) - Y
        c0 = _fro2(R, xp) / (2 * m)
        tr_yy = _fro2(Y, xp) / m
        return cls(Sxx, Syx, Phi, c0, tr_yy, data=(X, Y), factor=factor, factor_weight=1.0 / m)

    @classmethod
    def whitened(cls, Phi) -> "SquaredLoss":
        r""":math:`\ell(W) = \tfrac12\|W - \Phi\|_F^2` (:math:`\Lambda_{xx} = I`, :math:`\Lambda_{yx} = \Phi`, minimum 0).

        Examples
        --------
        >>> import numpy as np, linnet as ln
        >>> float(ln.SquaredLoss.whitened(np.eye(2)).value(np.zeros((2, 2))))
        1.0
        """
        Phi, xp = check_matrix(Phi, "Phi")
        c0 = xp.zeros(Phi.shape[:-2], dtype=Phi.dtype)
        return cls(None, Phi, Phi, c0, _fro2(Phi, xp))

    @classmethod
    def population(cls, Sxx, Syx, Syy) -> "SquaredLoss":
        r"""Population form :math:`\ell(W) = \tfrac12\operatorname{tr}(W\Sigma_{xx}W^\top) - \operatorname{tr}(W\Sigma_{yx}^\top) + \tfrac12\operatorname{tr}\Sigma_{yy}`.

        ``Sxx`` must be symmetric positive semi-definite with ``Syx`` in its row space and the joint second
        moment :math:`\begin{pmatrix}\Sigma_{yy} & \Sigma_{yx}\\ \Sigma_{yx}^\top & \Sigma_{xx}\end{pmatrix}`
        positive semi-definite (true of any joint covariance); all three are checked within a tolerance from
        the dtype, and a violation raises ``ValueError`` (otherwise value and gradient would disagree, or the
        loss could be negative).
        """
        Sxx, xp = check_matrix(Sxx, "Sxx")
        Syx, _ = check_matrix(Syx, "Syx", xp=xp)
        Syy, _ = check_matrix(Syy, "Syy", xp=xp)
        d0 = Sxx.shape[-1]
        if (
            Sxx.shape[-2] != d0
            or Syx.shape[-1] != d0
            or Syy.shape[-1] != Syy.shape[-2]
            or Syy.shape[-1] != Syx.shape[-2]
        ):
            raise ValueError(
                "`Sxx`, `Syx`, `Syy`: population statistics must have shapes Sxx (d0, d0), Syx (dN, d0), Syy (dN, dN); "
                f"got {tuple(Sxx.shape)}, {tuple(Syx.shape)}, {tuple(Syy.shape)}"
            )
        if not bool(xp.all(xp.abs(Sxx - Sxx.mT) <= 1e3 * xp.finfo(Sxx.dtype).eps * (xp.max(xp.abs(Sxx)) + 1))):
            raise ValueError("`Sxx` must be symmetric")
        lam, V = xp.linalg.eigh(0.5 * (Sxx + Sxx.mT))
        keep = lam > d0 * xp.finfo(Sxx.dtype).eps * xp.max(xp.abs(lam), axis=-1, keepdims=True)
        if bool(xp.any(lam < -1e3 * xp.finfo(Sxx.dtype).eps * xp.max(xp.abs(lam), axis=-1, keepdims=True))):
            raise ValueError("`Sxx` must be positive semi-definite, got a negative eigenvalue")
        inv = xp.where(keep, 1.0 / xp.where(keep, lam, xp.ones_like(lam)), xp.zeros_like(lam))
        Phi = xp.matmul(xp.matmul(Syx, V) * inv[..., None, :], V.mT)
        check_population(Sxx, Syx, Syy, Phi, xp)
        factor = V * xp.sqrt(xp.where(keep, lam, xp.zeros_like(lam)))[..., None, :]
        tr_yy = _trace(Syy, xp)
        c0 = 0.5 * (tr_yy - _trace(xp.matmul(Phi, Syx.mT), xp))
        return cls(Sxx, Syx, Phi, c0, tr_yy, factor=factor)

    # ---- capabilities -------------------------------------------------------------------------------------
    finite_value_implies_finite_weights = True

    def quadratic_form(self) -> QuadraticForm:
        """The statistics as a :class:`QuadraticForm` (built once per loss object)."""
        form = self._cache.get("quadratic_form")
        if form is None:
            arrays = (self.Sxx, self.Syx, self.Phi, self.c0, self.tr_yy)
            batch = broadcast_batch(
                *(tuple(a.shape[:-2]) for a in arrays[:3] if a is not None),
                *(tuple(a.shape) for a in arrays[3:] if a is not None),
            )
            form = QuadraticForm(
                self.Sxx, self.Syx, self.Phi, self.c0, self.tr_yy, self.factor, self.factor_weight, batch
            )
            self._cache["quadratic_form"] = form
        return form

    @property
    def batch_shape(self) -> tuple:
        return tuple(self.Syx.shape[:-2]) if self.Phi is None else tuple(self.Phi.shape[:-2])

    @property
    def n_samples(self) -> Optional[int]:
        return None if self.data is None else int(self.data[0].shape[-1])

    # ---- dtype --------------------------------------------------------------------------------------------
    def astype(self, dtype) -> "SquaredLoss":
        if self.Syx.dtype == dtype:
            return self
        key = str(dtype)
        if key not in self._cache:
            xp = namespace(self.Syx)
            cast = lambda a: None if a is None else xp.astype(a, dtype)  # noqa: E731
            data = None if self.data is None else tuple(cast(a) for a in self.data)
            self._cache[key] = SquaredLoss(
                *(cast(a) for a in (self.Sxx, self.Syx, self.Phi, self.c0, self.tr_yy)),
                data=data,
                factor=cast(self.factor),
                factor_weight=self.factor_weight,
            )
        return self._cache[key]

    @property
    def whitened_form(self) -> bool:
        """``True`` when :math:`\\Lambda_{xx} = I` (built with :meth:`whitened`)."""
        return self.Sxx is None

    def subsample(self, idx) -> "SquaredLoss":
        """The squared loss of the samples ``idx``, as raw statistics (no centring: ``Phi`` and ``c0`` are ``None``)."""
        if self.data is None:
            raise ValueError("`loss` must carry data to be subsampled: build it with SquaredLoss.from_data(X, Y)")
        X, Y = self.data
        xp = namespace(X)
        Xb, Yb = xp.take(X, idx, axis=-1), xp.take(Y, idx, axis=-1)
        b = Xb.shape[-1]
        return SquaredLoss(
            xp.matmul(Xb, Xb.mT) / b, xp.matmul(Yb, Xb.mT) / b, None, None, _fro2(Yb, xp) / b, data=(Xb, Yb)
        )

    # ---- the loss -----------------------------------------------------------------------------------------
    def value(self, W):
        xp = namespace(W)
        if self.Phi is None:  # raw statistics (a minibatch): the uncentred form
            quad = xp.sum(xp.matmul(W, self.Sxx) * W, axis=(-2, -1))
            return 0.5 * quad - xp.sum(W * self.Syx, axis=(-2, -1)) + 0.5 * self.tr_yy
        E = W - self.Phi
        if self.Sxx is None:
            return 0.5 * _fro2(E, xp) + self.c0
        if self.factor is not None:  # (F^T E^T), the orientation linnet's NumPy fast path uses too
            return 0.5 * (_fro2(xp.matmul(self.factor.mT, E.mT), xp) * self.factor_weight) + self.c0
        return 0.5 * xp.sum(xp.matmul(E, self.Sxx) * E, axis=(-2, -1)) + self.c0

    def grad(self, W):
        if self.Sxx is None:
            return W - self.Phi
        xp = namespace(W)
        return xp.matmul(W, self.Sxx) - self.Syx

    def hvp(self, W, D):
        if self.Sxx is None:
            return D
        return namespace(D).matmul(D, self.Sxx)

    def min_value(self):
        """:math:`\\min_W \\ell(W)` over all matrices (no rank constraint), shape ``(...)``."""
        return self.c0


class CallableLoss(Loss):
    r"""A loss given by three functions of the end-to-end matrix: ``value(W)``, ``grad(W)``, ``hvp(W, D)``.

    Used for controls such as a non-convex :math:`\ell` (THEOREMS.md §5 control (ii)). ``convex`` is
    whatever the caller declares.

    Batch semantics: ``W`` has shape ``(..., d_N, d_0)`` with any leading batch dimensions (a batch of nets,
    and the basis directions :func:`linnet.hessian` stacks in front); ``value(W)`` must return an array of
    shape ``W.shape[:-2]``, ``grad(W)`` and ``hvp(W, D)`` arrays of the broadcast shape of ``W`` (and ``D``),
    all in the namespace and dtype of ``W``. The public functions call the callbacks once at ``W`` to check
    this and raise ``TypeError``/``ValueError`` naming the callback otherwise (the loops behind them never
    re-check). ``hvp`` may be ``None`` for first-order use (:func:`linnet.loss`, :func:`linnet.grad`,
    :func:`linnet.train.gd`, ...); second-order functions (:func:`linnet.hvp`, :func:`linnet.hessian`,
    :func:`linnet.landscape.classify`, ...) then raise ``ValueError`` asking for it. It has no samples, so
    :func:`linnet.train.sgd` refuses it.

    Examples
    --------
    >>> import numpy as np, linnet as ln
    >>> dw = ln.CallableLoss(lambda W: np.sum((W**2 - 1)**2 + 0.3*W, axis=(-2, -1)),
    ...                      lambda W: 4*W*(W**2 - 1) + 0.3, lambda W, D: (12*W**2 - 4)*D,
    ...                      shape=(1, 1), convex=False)
    >>> float(dw.value(np.zeros((1, 1))))
    1.0
    """

    def __init__(
        self,
        value: Callable,
        grad: Callable,
        hvp: Optional[Callable] = None,
        *,
        shape: tuple,
        convex: bool = False,
        differentiable: bool = True,
        min_value: Optional[float] = None,
    ):
        for name, f in (("value", value), ("grad", grad), ("hvp", hvp)):
            if not callable(f) and not (name == "hvp" and f is None):
                raise ValueError(f"`{name}` must be callable, got {type(f).__name__}")
        self._value, self._grad, self._hvp = value, grad, hvp
        self.shape = check_loss_shape(shape)
        self.convex, self.differentiable = bool(convex), bool(differentiable)
        self._min = min_value
        self._checked: set = set()

    def astype(self, dtype):
        return self

    @property
    def has_hvp(self) -> bool:
        """Whether an ``hvp`` callback was given (second-order functions need it)."""
        return self._hvp is not None

    def check(self, W) -> "CallableLoss":
        """Shapes agree, and the callbacks return arrays of the right shape, namespace and dtype at ``W``.

        Checked once per shape, dtype and array type of ``W`` (repeated calls, e.g. one per HVP of an
        eigenvalue iteration, cost nothing more).
        """
        out = super().check(W)
        key = (tuple(W.shape), str(W.dtype), type(W))
        if key in self._checked:
            return out
        check_callable_output(self._value(W), W, tuple(W.shape[:-2]), "value")
        check_callable_output(self._grad(W), W, tuple(W.shape), "grad")
        if self._hvp is not None:
            check_callable_output(self._hvp(W, W), W, tuple(W.shape), "hvp")
        self._checked.add(key)
        return out

    def value(self, W):
        return self._value(W)

    def grad(self, W):
        return self._grad(W)

    def hvp(self, W, D):
        if self._hvp is None:
            raise ValueError(
                "`loss` is a CallableLoss without `hvp`: second-order functions need it, "
                "build it with CallableLoss(value, grad, hvp, shape=...)"
            )
        return self._hvp(W, D)

    def min_value(self):
        return self._min
