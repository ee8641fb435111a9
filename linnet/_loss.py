r"""The protocol of end-to-end losses: the base class :class:`Loss` (what the engine asks of a loss: value,
gradient, Hessian-vector product and capabilities) and :class:`QuadraticForm` (the capability that opens the
NumPy kernel and the closed-form Hessian), with the validation of samples-as-columns data the losses share.

Their public home is :mod:`linnet.losses` (and the top level); the losses themselves live in :mod:`linnet.losses`
(squared, callable), :mod:`linnet.losses_pointwise` (:math:`\ell_p`, Huber), :mod:`linnet.losses_sensing` and
:mod:`linnet.losses_classification`.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

from ._backend import Array
from ._validate import broadcast_batch, check_matrix

__all__ = ["Loss", "QuadraticForm", "as_data"]


class QuadraticForm(NamedTuple):
    r"""A loss that is quadratic in the end-to-end matrix with Hessian :math:`I \otimes \Lambda_{xx}`:

    .. math::

        \ell(W) = \tfrac12 \operatorname{tr}(W\Lambda_{xx}W^\top) - \operatorname{tr}(W\Lambda_{yx}^\top)
        + \tfrac12\operatorname{tr}\Lambda_{yy}
        = \tfrac12 \operatorname{tr}\big((W-\Phi)\Lambda_{xx}(W-\Phi)^\top\big) + c_0 .

    What the NumPy kernel (:mod:`linnet._fastpaths.quadratic`) and the closed-form Hessian
    (:mod:`linnet._fastpaths.hessian`) read, so that any loss returning one from
    :meth:`Loss.quadratic_form` gets them, whatever its class. The array fields are arrays of the loss's
    namespace, each with optional leading batch dimensions.

    Attributes
    ----------
    Sxx : ``(..., d_0, d_0)`` or ``None``
        :math:`\Lambda_{xx}`; ``None`` means the identity (whitened).
    Syx : ``(..., d_N, d_0)``
        :math:`\Lambda_{yx}`.
    Phi : ``(..., d_N, d_0)`` or ``None``
        The centre :math:`\Phi = \Lambda_{yx}\Lambda_{xx}^+`; ``None`` for raw statistics (a minibatch), whose
        value is the uncentred form.
    c0 : ``(...)`` or ``None``
        :math:`\min_W \ell` (``None`` for raw statistics).
    tr_yy : ``(...)``
        :math:`\operatorname{tr}\Lambda_{yy}`.
    factor : ``(..., d_0, r)`` or ``None``
        :math:`F` with :math:`\Lambda_{xx} = w\,FF^\top` (the value is then computed as
        :math:`\tfrac w2\|F^\top(W-\Phi)^\top\|_F^2 + c_0`: accurate and :math:`\ge c_0` for singular
        :math:`\Lambda_{xx}`).
    factor_weight : float
        The scale :math:`w` of ``factor``.
    batch_shape : tuple
        The problem's batch shape (all fields broadcast to it).
    """

    Sxx: Optional[Array]
    Syx: Array
    Phi: Optional[Array]
    c0: Optional[Array]
    tr_yy: Array
    factor: Optional[Array]
    factor_weight: float
    batch_shape: tuple

    @property
    def kind(self) -> str:
        r"""``"raw"`` (statistics of a minibatch, no centre), ``"whitened"`` (:math:`\Lambda_{xx} = I`) or
        ``"centred"``."""
        if self.Phi is None:
            return "raw"
        return "whitened" if self.Sxx is None else "centred"


def as_data(X, Y):
    """Validate samples-as-columns data ``X (..., d_0, m)``, ``Y (..., d_N, m)``: same ``m``, same dtype."""
    X, xp = check_matrix(X, "X")
    Y, _ = check_matrix(Y, "Y", xp=xp, other="`X`")
    broadcast_batch(tuple(X.shape[:-2]), tuple(Y.shape[:-2]), what="the batch shapes of `X` and `Y`")
    if X.shape[-1] != Y.shape[-1]:
        raise ValueError(
            f"`X` and `Y` must have the same number of samples (columns): got {X.shape[-1]} and {Y.shape[-1]}"
        )
    if X.dtype != Y.dtype:
        raise ValueError(f"`X` and `Y` must share a dtype, got {X.dtype} and {Y.dtype}")
    return X, Y, xp


class Loss:
    """Base class of end-to-end losses.

    Subclasses implement ``value(W)``, ``grad(W)`` and ``hvp(W, D)`` (the Hessian of :math:`\\ell` at ``W``
    applied to ``D``), each taking ``W`` of shape ``(..., d_N, d_0)``. ``shape`` is ``(d_N, d_0)``.

    Capabilities (what the engine dispatches on; never the class):

    - ``convex``, ``differentiable``: describe :math:`\\ell` (used by :mod:`linnet.landscape`);
    - ``finite_value_implies_finite_weights``: a finite value at ``W`` implies finite ``W`` and a finite gradient
      (true of the built-in losses); the training driver then skips its own finiteness test of weights and
      gradients;
    - :meth:`quadratic_form`: a :class:`QuadraticForm` for losses quadratic in ``W`` with Hessian
      :math:`I\\otimes\\Lambda_{xx}` (NumPy kernel and closed-form Hessian), else ``None``;
    - :attr:`batch_shape`: the problem's own batch shape;
    - :attr:`n_samples`: the number of samples (columns) :meth:`subsample` draws from, or ``None``.
    """

    shape: tuple
    convex: bool = True
    differentiable: bool = True
    finite_value_implies_finite_weights: bool = False

    def quadratic_form(self) -> Optional[QuadraticForm]:
        """This loss as a :class:`QuadraticForm`, or ``None`` when it is not one (the default)."""
        return None

    @property
    def batch_shape(self) -> tuple:
        """The problem's batch shape (leading dimensions of its data); ``()`` for one problem."""
        for name in ("Phi", "X"):
            arr = getattr(self, name, None)
            if arr is not None:
                return tuple(arr.shape[:-2])
        return ()

    @property
    def n_samples(self) -> Optional[int]:
        """Samples (columns) that :meth:`subsample` draws from; ``None`` for a loss without samples."""
        return None

    def value(self, W):  # pragma: no cover - abstract
        raise NotImplementedError

    def grad(self, W):  # pragma: no cover - abstract
        raise NotImplementedError

    def hvp(self, W, D):  # pragma: no cover - abstract
        raise NotImplementedError

    def astype(self, dtype) -> "Loss":  # pragma: no cover - overridden
        return self

    def subsample(self, idx) -> "Loss":
        """The same loss on the samples (columns) ``idx`` only: an integer index array of the data's namespace.

        Built without validation or factorizations (it runs every step of SGD). Losses without samples raise
        ``ValueError``.
        """
        raise ValueError(f"`loss` must carry data to be subsampled, got a {type(self).__name__} without samples")

    def check(self, W) -> "Loss":
        """Return this loss in the dtype of ``W`` after checking that shapes agree."""
        if tuple(W.shape[-2:]) != tuple(self.shape):
            raise ValueError(
                f"the nets' end-to-end matrix has shape (d_N, d_0) = {tuple(W.shape[-2:])}, "
                f"the loss expects {tuple(self.shape)}"
            )
        return self.astype(W.dtype)

    def reference_array(self):
        """An array of the loss's data (its namespace must be that of the weights), or ``None`` if it has none."""
        return None
