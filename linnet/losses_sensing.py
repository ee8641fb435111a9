r"""Matrix sensing and matrix completion losses of the end-to-end matrix (THEOREMS2.md, "Losses used in this part").

.. math::

    \ell(W) = \frac{1}{2m}\sum_{k=1}^m\big(\langle A_k, W\rangle - y_k\big)^2, \qquad
    \nabla\ell(W) = \frac1m\sum_k r_kA_k, \qquad \nabla^2\ell(W)[D] = \frac1m\sum_k\langle A_k, D\rangle A_k,

with :math:`r_k = \langle A_k, W\rangle - y_k`. *Matrix completion* is the case :math:`A_k = e_{a_k}e_{b_k}^\top`:
:math:`\ell(W) = \frac1{2m}\|P_\Omega(W - M)\|_F^2` with :math:`P_\Omega` the entry mask of the observed set
(:class:`MatrixCompletionLoss`, which never forms the :math:`A_k`). ``reduction="sum"`` drops the :math:`1/m`
(as THEOREMS2 §15's depth protocol does; on a fixed data set that only rescales time).

Setting of Arora, Cohen, Hu & Luo, "Implicit Regularization in Deep Matrix Factorization", arXiv:1905.13655,
NeurIPS 2019 (THEOREMS2 §15).

**Quadratic form** (for a ``quadratic_form()`` fast path; not wired here). Both losses are quadratic in
:math:`w = \operatorname{vec}_r(W)` (row-major flattening, ``reshape(W, (..., d_N d_0))``):

.. math::

    \ell(W) = \tfrac12 w^\top H w - b^\top w + c, \quad
    H = \frac1m\sum_k a_ka_k^\top,\ b = \frac1m\sum_k y_ka_k,\ c = \frac1{2m}\sum_k y_k^2,\ a_k = \operatorname{vec}_r A_k,

i.e. :math:`H = \mathcal A^\top\mathcal A/m` with ``A_flat`` (:math:`\mathcal A`, shape ``(..., m, d_N d_0)``) the
attribute of :class:`LinearMeasurementLoss`. For completion :math:`H = \operatorname{diag}(\operatorname{vec}_r P)/m`
is diagonal (attribute ``weight`` holds :math:`P/m`, ``target`` holds :math:`P\odot M`), so
:math:`\nabla\ell(W) = \text{weight}\odot W - \text{weight}\odot M`.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np  # host side only: index bookkeeping of the observed set

from ._backend import from_host, namespace, to_numpy
from ._validate import as_native, broadcast_batch, check_data, check_mask, check_matrix, check_shape2
from .losses import Loss

__all__ = ["LinearMeasurementLoss", "MatrixCompletionLoss"]

Array = Any


def _indices(a, name):
    """Integer indices as a host NumPy array (bools, floats, strings and complex numbers refused)."""
    if a is None or isinstance(a, (str, bytes, bool, complex)):
        raise ValueError(f"`{name}` must be a 1-D integer array, got {a!r}")
    try:
        host = np.asarray(to_numpy(a) if hasattr(a, "__array_namespace__") else a)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a 1-D integer array, got {type(a).__name__}") from None
    if host.size == 0 and host.dtype.kind == "f":  # an empty list
        host = host.astype(np.int64)
    return host


def _reduction(reduction: str) -> str:
    if reduction not in ("mean", "sum"):
        raise ValueError(f"`reduction` must be 'mean' or 'sum', got {reduction!r}")
    return reduction


class LinearMeasurementLoss(Loss):
    r"""Matrix sensing :math:`\ell(W) = \frac1{2m}\sum_k(\langle A_k, W\rangle - y_k)^2` (see the module docstring).

    Parameters
    ----------
    A : array ``(..., m, d_N, d_0)``
        The measurement matrices :math:`A_k`; leading dimensions are a batch of problems.
    y : array ``(..., m)``
        The measured values, same dtype and namespace as ``A``.
    reduction : ``"mean"`` (default, the :math:`1/m`) or ``"sum"``.

    A step costs :math:`O(m\,d_Nd_0)` per net. :meth:`subsample` keeps the measurements ``idx`` (SGD over
    measurements, :func:`linnet.train.sgd`); ``num_samples`` is :math:`m`.

    Examples
    --------
    >>> import numpy as np, linnet as ln
    >>> A = np.stack([np.eye(2), np.ones((2, 2))]); y = np.array([2.0, 4.0])
    >>> loss = ln.LinearMeasurementLoss(A, y)
    >>> float(loss.value(np.eye(2)))   # residuals (0, -2): 4 / (2 * 2)
    1.0
    """

    def __init__(self, A, y, *, reduction: str = "mean"):
        A, xp = check_matrix(A, "A")
        if A.ndim < 3:
            raise ValueError(f"`A` must have shape (..., m, d_N, d_0), got shape {tuple(A.shape)}")
        y = check_data(y, "y", xp=xp, like=A, other="`A`")
        if y.shape[-1] != A.shape[-3]:
            raise ValueError(
                f"`y` must have shape (..., m) with m = {A.shape[-3]} measurements (from `A`), got {tuple(y.shape)}"
            )
        if y.dtype != A.dtype:
            raise ValueError(f"`A` and `y` must share a dtype, got {A.dtype} and {y.dtype}")
        broadcast_batch(tuple(A.shape[:-3]), tuple(y.shape[:-1]), what="the batch shapes of `A` and `y`")
        self._set(A, y, _reduction(reduction))

    def _set(self, A, y, reduction):
        xp = namespace(A)
        self.A, self.y, self.reduction = A, y, reduction
        self.m = A.shape[-3]
        self.shape = (A.shape[-2], A.shape[-1])
        self.A_flat = xp.reshape(A, tuple(A.shape[:-2]) + (self.shape[0] * self.shape[1],))
        self._scale = 1.0 / self.m if reduction == "mean" else 1.0
        self._cache = {}

    @property
    def num_samples(self) -> int:
        """The number of measurements :math:`m` (what :func:`linnet.train.sgd` draws from)."""
        return self.m

    @property
    def n_samples(self) -> Optional[int]:
        """The :class:`~linnet.losses.Loss` capability: samples that :meth:`subsample` draws from."""
        return self.num_samples

    @property
    def batch_shape(self) -> tuple:
        """Leading (problem) batch dimensions."""
        return tuple(self.A.shape[:-3])

    def astype(self, dtype) -> "LinearMeasurementLoss":
        if self.A.dtype == dtype:
            return self
        key = str(dtype)
        if key not in self._cache:
            xp = namespace(self.A)
            out = object.__new__(LinearMeasurementLoss)
            out._set(xp.astype(self.A, dtype), xp.astype(self.y, dtype), self.reduction)
            self._cache[key] = out
        return self._cache[key]

    def subsample(self, idx) -> "LinearMeasurementLoss":
        """The same loss on the measurements ``idx`` (an integer index array of the data's namespace)."""
        xp = namespace(self.A)
        out = object.__new__(LinearMeasurementLoss)
        out._set(xp.take(self.A, idx, axis=self.A.ndim - 3), xp.take(self.y, idx, axis=self.y.ndim - 1), self.reduction)
        return out

    def measurements(self):
        """``(A, y)``: the dense measurement matrices ``(..., m, d_N, d_0)`` and values ``(..., m)``."""
        return self.A, self.y

    def _apply(self, W):
        """:math:`\\langle A_k, W\\rangle` for every k: shape ``(..., m)``."""
        xp = namespace(W)
        w = xp.reshape(W, tuple(W.shape[:-2]) + (self.shape[0] * self.shape[1], 1))
        return xp.matmul(self.A_flat, w)[..., 0]

    def _adjoint(self, r):
        """:math:`\\sum_k r_kA_k` for ``r (..., m)``: shape ``(..., d_N, d_0)``."""
        xp = namespace(r)
        g = xp.matmul(r[..., None, :], self.A_flat)[..., 0, :]
        return xp.reshape(g, tuple(g.shape[:-1]) + self.shape)

    def residuals(self, W):
        """:math:`r_k = \\langle A_k, W\\rangle - y_k`, shape ``(..., m)``."""
        return self._apply(W) - self.y

    def value(self, W):
        xp = namespace(W)
        r = self.residuals(W)
        return 0.5 * self._scale * xp.sum(r * r, axis=-1)

    def grad(self, W):
        return self._scale * self._adjoint(self.residuals(W))

    def hvp(self, W, D):
        return self._scale * self._adjoint(self._apply(D))

    def min_value(self):
        """``None``: the unconstrained minimum is not computed (0 whenever the measurements are consistent)."""
        return None


class MatrixCompletionLoss(Loss):
    r"""Matrix completion :math:`\ell(W) = \frac1{2m}\|P_\Omega(W - M)\|_F^2`, :math:`m = |\Omega|`.

    The observed set :math:`\Omega` is a mask (:meth:`__init__`) or index arrays (:meth:`from_indices`). No
    measurement matrix is formed: value, gradient and HVP are elementwise, :math:`O(d_Nd_0)` per net.

    Parameters
    ----------
    M : array ``(..., d_N, d_0)``
        The matrix to complete; its unobserved entries are never read (they may be NaN) and are stored as 0.
    mask : array ``(..., d_N, d_0)`` of bools (or 0/1 values)
        Observed entries; broadcasts with ``M`` (one mask for a batch of matrices, or one per problem).
    reduction : ``"mean"`` (default) or ``"sum"`` (THEOREMS2 §15's depth protocol: :math:`\frac12\|P_\Omega(W-M)\|_F^2`).

    :meth:`subsample` keeps the observations ``idx`` (positions in the row-major list of observed entries;
    SGD over observations with :func:`linnet.train.sgd`), which needs the same number of observations in every
    problem of a batch. ``num_samples`` is :math:`m`.

    Examples
    --------
    >>> import numpy as np, linnet as ln
    >>> M = np.array([[1.0, 2.0], [3.0, 4.0]]); mask = np.array([[True, False], [False, True]])
    >>> loss = ln.MatrixCompletionLoss(M, mask)
    >>> float(loss.value(np.zeros((2, 2))))    # (1 + 16) / (2 * 2)
    4.25
    """

    def __init__(self, M, mask, *, reduction: str = "mean"):
        if M is None or isinstance(M, (str, bytes, bool, complex)):
            raise ValueError(f"`M` must be a real array, got {M!r}")
        if not hasattr(M, "shape") or not hasattr(M, "dtype"):
            try:
                M = np.asarray(M, dtype=np.float64)
            except (TypeError, ValueError):
                raise ValueError(f"`M` must be a real array, got {type(M).__name__}") from None
        M = as_native(M)
        try:
            xp = namespace(M)
        except TypeError:
            raise ValueError(f"`M` must be an array of an array-API namespace, got {type(M).__name__}") from None
        if M.ndim < 2:
            raise ValueError(f"`M` must have at least 2 dimensions (..., d_N, d_0), got shape {tuple(M.shape)}")
        reduction = _reduction(reduction)
        host = check_mask(mask, tuple(M.shape[-2:]))
        broadcast_batch(host.shape[:-2], tuple(M.shape[:-2]), what="the batch shapes of `mask` and `M`")
        if not xp.isdtype(M.dtype, "real floating") or str(M.dtype).rpartition(".")[2] not in ("float32", "float64"):
            raise ValueError(f"`M` must have a real floating dtype (float32 or float64), got {M.dtype}")
        # unobserved entries are never read: they may hold anything (NaN for "unknown"); observed ones must be finite
        M, _ = check_matrix(xp.where(xp.asarray(host), M, xp.zeros_like(M)), "M (observed entries)", xp=xp)
        counts = host.reshape(host.shape[:-2] + (-1,)).sum(axis=-1)
        if np.any(counts == 0):
            raise ValueError("`mask` must observe at least one entry of every matrix, got an empty mask")
        m = int(counts.flat[0])
        index = None
        if np.all(counts == m):  # row-major positions of the observed entries, shape (..., m): for SGD
            flat = host.reshape(host.shape[:-2] + (-1,))
            index = np.nonzero(flat.reshape(-1, flat.shape[-1]))[1].reshape(host.shape[:-2] + (m,))
        P = from_host(host.astype(np.float64), xp, M.dtype)
        weight = P if reduction == "sum" else P / from_host(counts.astype(np.float64)[..., None, None], xp, M.dtype)
        self._set(M, P, weight, P * M, index, counts, reduction)

    @classmethod
    def from_indices(cls, rows, cols, values, shape, *, reduction: str = "mean") -> "MatrixCompletionLoss":
        """The loss of the observations ``W[rows[k], cols[k]] = values[k]`` of a ``shape = (d_N, d_0)`` matrix.

        ``rows``, ``cols`` are integer sequences of length m without repeated pairs; ``values`` an array ``(m,)``
        (its namespace and dtype are kept; host sequences become float64 NumPy).
        """
        dN, d0 = check_shape2(shape)
        r, c = _indices(rows, "rows"), _indices(cols, "cols")
        for name, a, top in (("rows", r, dN), ("cols", c, d0)):
            if a.ndim != 1 or not np.issubdtype(a.dtype, np.integer):
                raise ValueError(f"`{name}` must be a 1-D integer array, got dtype {a.dtype} and shape {a.shape}")
            if a.size and (a.min() < 0 or a.max() >= top):
                raise ValueError(f"`{name}` must lie in [0, {top}), got values in [{a.min()}, {a.max()}]")
        if r.shape != c.shape or r.size == 0:
            raise ValueError(f"`rows` and `cols` must have the same nonzero length, got {r.size} and {c.size}")
        values, _ = check_matrix(values, "values", min_ndim=1)
        if tuple(values.shape) != (r.size,):
            raise ValueError(f"`values` must have shape ({r.size},), got {tuple(values.shape)}")
        lin = r * d0 + c
        if np.unique(lin).size != lin.size:
            raise ValueError("`rows` and `cols` must not repeat an entry (each observed entry appears once)")
        xp = namespace(values)
        host_M = np.zeros((dN, d0))
        host_M.reshape(-1)[lin] = np.asarray(to_numpy(values), dtype=np.float64)
        mask = np.zeros((dN, d0), dtype=bool)
        mask.reshape(-1)[lin] = True
        dtype = values.dtype if xp.isdtype(values.dtype, "real floating") else None
        return cls(from_host(host_M, xp, dtype), mask, reduction=reduction)

    def _set(self, M, P, weight, target, index, counts, reduction):
        self.M, self.mask, self.weight, self.target = M, P, weight, target
        self.index, self.counts, self.reduction = index, counts, reduction
        self.m = int(counts.flat[0]) if index is not None else None
        self.shape = tuple(M.shape[-2:])
        self._cache = {}

    @property
    def num_samples(self) -> Optional[int]:
        """The number of observations :math:`m` (``None`` when the problems of a batch observe different numbers)."""
        return self.m

    @property
    def n_samples(self) -> Optional[int]:
        """The :class:`~linnet.losses.Loss` capability: samples that :meth:`subsample` draws from."""
        return self.num_samples

    def astype(self, dtype) -> "MatrixCompletionLoss":
        if self.M.dtype == dtype:
            return self
        key = str(dtype)
        if key not in self._cache:
            xp = namespace(self.M)
            out = object.__new__(MatrixCompletionLoss)
            c = lambda a: xp.astype(a, dtype)  # noqa: E731
            out._set(c(self.M), c(self.mask), c(self.weight), c(self.target), self.index, self.counts, self.reduction)
            self._cache[key] = out
        return self._cache[key]

    def subsample(self, idx) -> "MatrixCompletionLoss":
        """The loss of the observations ``idx`` (positions among the observed entries, row-major)."""
        if self.index is None:
            raise ValueError(
                "`loss` must observe the same number of entries in every problem to be subsampled, got counts "
                f"{sorted(set(self.counts.reshape(-1).tolist()))}"
            )
        xp = namespace(self.M)
        pos = np.take(self.index, np.asarray(to_numpy(idx)), axis=-1)  # (..., b)
        b = pos.shape[-1]
        host = np.zeros(self.index.shape[:-1] + (self.shape[0] * self.shape[1],))
        np.put_along_axis(host, pos, 1.0, axis=-1)
        P = from_host(host.reshape(self.index.shape[:-1] + self.shape), xp, self.M.dtype)
        out = object.__new__(MatrixCompletionLoss)
        weight = P / b if self.reduction == "mean" else P
        out._set(self.M, P, weight, P * self.M, None, np.full(self.index.shape[:-1], b), self.reduction)
        out.m = b
        return out

    def measurements(self):
        """``(A, y)`` as dense sensing data (``A_k = e_a e_b^T``): for small reference problems only.

        Needs a single observed set (no batch dimension in the mask).
        """
        if self.index is None or self.index.ndim != 1:
            raise ValueError("`loss` must have a single observed set (a 2-D mask) to be written as dense measurements")
        xp = namespace(self.M)
        dN, d0 = self.shape
        host = np.zeros((self.m, dN * d0))
        host[np.arange(self.m), self.index] = 1.0
        A = from_host(host.reshape(self.m, dN, d0), xp, self.M.dtype)
        Mf = xp.reshape(self.M, tuple(self.M.shape[:-2]) + (dN * d0,))
        y = xp.take(Mf, xp.asarray(self.index.astype(np.int64)), axis=Mf.ndim - 1)
        return A, y

    def value(self, W):
        xp = namespace(W)
        E = W - self.M
        return 0.5 * xp.sum(self.weight * (E * E), axis=(-2, -1))

    def grad(self, W):
        return self.weight * W - self.weight * self.M

    def hvp(self, W, D):
        return self.weight * D

    def min_value(self):
        """0: any matrix that agrees with ``M`` on the observed entries is a global minimizer."""
        return 0.0
