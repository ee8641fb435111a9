r"""The loss landscape of deep linear networks: critical points, symmetry orbits, top curvature, slices.

- :func:`classify` labels points as global minima, local minima, strict or non-strict saddles, or not critical,
  from the gradient, the full Hessian spectrum and the closed-form global value (:func:`linnet.theory.global_min`).
- :func:`symmetry_direction`, :func:`symmetry_generator`, :func:`symmetry_rank`: the infinitesimal
  :math:`GL(d_j)` symmetries :math:`W_j \to GW_j,\ W_{j+1} \to W_{j+1}G^{-1}` (THEOREMS.md §12).
- :func:`top_hessian_eigenvalue`: the sharpness :math:`\lambda_{\max}(\nabla^2L)` from exact Hessian-vector
  products (THEOREMS.md §13), without forming the Hessian.
- :func:`slice_1d`, :func:`slice_2d`, :func:`random_direction`: the loss along lines and planes.

Everything is batched over leading dimensions of the weights (and of the problem).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Optional, Sequence

import numpy as np

from . import calculus as _c
from . import product as _p
from ._backend import Array, from_host, host_rng, namespace, to_numpy
from ._curvature import top_hessian_eigenvalue
from ._fastpaths.curvature import TopEigenvalue
from ._validate import (
    as_index,
    check_loss_against,
    check_matrix,
    check_positive,
    check_real,
    check_same_namespace,
    check_weights,
)
from ._validate import broadcast_batch as _broadcast_batch
from .losses import Loss
from .theory.minima import rrr_value

__all__ = [
    "Classification",
    "LABELS",
    "classify",
    "symmetry_direction",
    "symmetry_generator",
    "symmetry_rank",
    "TopEigenvalue",
    "top_hessian_eigenvalue",
    "random_direction",
    "slice_1d",
    "slice_2d",
]


LABELS = ("global minimum", "local minimum", "strict saddle", "non-strict saddle", "not critical")


def _is_array(a) -> bool:
    """An array of some namespace (NumPy scalars such as ``np.float64(1.0)`` count as Python numbers)."""
    return hasattr(a, "shape") and hasattr(a, "dtype") and not isinstance(a, np.generic)


def _sqnorm(Vs, xp):
    return sum(xp.sum(V * V, axis=(-2, -1)) for V in Vs)


def _widths(Ws) -> tuple:
    return (int(Ws[0].shape[-1]),) + tuple(int(W.shape[-2]) for W in Ws)


# ---------------------------------------------------------------------------------------------------------------
# classification of critical points
# ---------------------------------------------------------------------------------------------------------------
class Classification(NamedTuple):
    """Result of :func:`classify` (arrays shaped like the batch ``(...)`` unless stated).

    Attributes
    ----------
    label : str (one net) or NumPy array of str ``(...)``, one of :data:`LABELS`
    grad_norm : :math:`\\|\\nabla L\\|_F` over all layers
    eigenvalues : ``(..., P)`` Hessian eigenvalues, ascending
    index : int array, number of eigenvalues below ``-htol * ||H||``
    n_zero : int array, number of eigenvalues with modulus at most ``htol * ||H||``
    value : the loss
    global_value : the global minimum value of the net's problem, or ``None`` when unknown
    """

    label: Any
    grad_norm: Array
    eigenvalues: Array
    index: Array
    n_zero: Array
    value: Array
    global_value: Optional[Array]


def _grad_scale(loss_fn, Ws, residual, xp):
    """Natural size of the layer gradients: ``max(1, ||grad l(W_e)|| * max_j prod_{i != j} ||F_i||)``."""
    Fs = _p.factors(Ws, residual, xp)
    We = _p.end_to_end(Ws, residual=residual)
    gl = xp.sqrt(xp.sum(loss_fn.grad(We) ** 2, axis=(-2, -1)))
    norms = [xp.sqrt(xp.sum(F * F, axis=(-2, -1))) for F in Fs]
    best = None
    for j in range(len(norms)):
        prod = None
        for i, n in enumerate(norms):
            if i != j:
                prod = n if prod is None else prod * n
        prod = xp.ones_like(gl) if prod is None else prod
        best = prod if best is None else xp.maximum(best, prod)
    return xp.maximum(gl * best, xp.ones_like(gl)), gl


def classify(
    loss: Loss,
    Ws: Sequence[Array],
    *,
    residual: bool = False,
    gtol: Optional[float] = None,
    htol: Optional[float] = None,
    vtol: Optional[float] = None,
) -> Classification:
    r"""Classify points of :math:`L(W) = \ell(F_N\cdots F_1)` from first- and second-order information.

    What is decided **numerically**, per net (tolerances default to :math:`\sqrt{\epsilon}` of the dtype):

    1. *critical*: :math:`\|\nabla L\|_F \le g_{\rm tol}\cdot\max\big(1, \|\nabla\ell(W_e)\|_F\max_j\prod_{i\ne j}\|F_i\|_F\big)`
       (the second factor bounds each layer gradient, so the test is relative to its natural size);
    2. *Hessian inertia*: with :math:`\lambda` the eigenvalues of the dense Hessian (:func:`linnet.hessian`,
       ``eigvalsh``), ``index`` counts :math:`\lambda < -h_{\rm tol}\|H\|_2` and ``n_zero`` counts
       :math:`|\lambda| \le h_{\rm tol}\|H\|_2`;
    3. *global*: :math:`L(W) - L^\star \le v_{\rm tol}\max(|L^\star|, \ell(0) - L^\star)` with :math:`L^\star`
       from :func:`linnet.theory.global_min` (squared loss: reduced-rank regression with the net's widths), or
       ``loss.min_value()`` when known and no layer is a bottleneck; or, for a convex :math:`\ell`,
       :math:`\nabla\ell(W_e) = 0` (within the gradient tolerance), which makes :math:`W_e` a minimiser of
       :math:`\ell` over all matrices and hence :math:`W` a global minimiser of :math:`L`.

    How the gradient tolerance is chosen: the default :math:`g_{\rm tol} = \sqrt{\epsilon}` (about ``1.5e-8`` in
    float64) asks for criticality to round-off level, relative to the natural gradient size of (1), which is
    at least 1, so the test is absolute for problems of unit scale. A point that an iterative method left
    with a larger gradient is labelled ``'not critical'`` however close to a minimum it is: 2000 GD steps on
    a unit-scale problem typically leave :math:`\|\nabla L\| \sim 10^{-8}` to :math:`10^{-6}`. Either train
    to the tolerance (``ln.train.gd(..., gtol=1e-9)``, which stops each net there) or pass the ``gtol`` you
    trained to; ``grad_norm`` in the result shows what was measured.

    Labels: ``'not critical'`` if (1) fails; else ``'global minimum'`` if (3) holds; else ``'strict saddle'`` if
    ``index > 0``; else (the Hessian is PSD) ``'non-strict saddle'`` when ``n_zero > 0`` **and theory rules out
    non-global local minima** for this problem, else ``'local minimum'``.

    The saddle conclusion for a critical, PSD, non-global point is **taken from theory, not computed**: such a
    point cannot be a local minimum for the squared loss (Kawaguchi, `arXiv:1605.07110
    <https://arxiv.org/abs/1605.07110>`_; Lu & Kawaguchi, `arXiv:1702.08580 <https://arxiv.org/abs/1702.08580>`_;
    any widths), nor for a convex differentiable :math:`\ell` when every hidden width is at least
    :math:`\min(d_0, d_N)` (Laurent & von Brecht, `arXiv:1712.01473 <https://arxiv.org/abs/1712.01473>`_);
    residual nets are plain nets translated by :math:`I`, so the same holds. A PSD Hessian with null directions
    only makes a point **second-order stationary**: deciding between local minimum and saddle needs higher-order
    information, so without such a theorem (a non-convex ``CallableLoss``; a bottleneck with a non-squared loss;
    an unknown global value) the label is ``'local minimum'`` in the weak sense "second-order stationary and not
    known to be global". A positive definite Hessian at a critical point is a strict local minimum. THEOREMS.md
    §5 (statements CONFIRMED), §7 (CONFIRMED).

    Parameters
    ----------
    loss : Loss
    Ws : tuple of arrays ``(..., d_j, d_{j-1})``
    residual : bool
    gtol, htol, vtol : float, optional
        Relative tolerances for the gradient, the Hessian eigenvalues and the value (default :math:`\sqrt\epsilon`).

    Returns
    -------
    Classification

    Examples
    --------
    >>> import numpy as np, linnet as ln
    >>> loss = ln.SquaredLoss.whitened(np.diag([2.0, 1.0]))
    >>> [ln.landscape.classify(loss, ln.init.zeros(w)).label for w in [(2, 2, 2), (2, 2, 2, 2)]]
    ['strict saddle', 'non-strict saddle']
    """
    if not isinstance(loss, Loss):
        raise ValueError(f"`loss` must be a linnet loss, got {type(loss).__name__}")
    Ws, xp = check_weights(Ws)
    gtol, htol, vtol = _tolerances(Ws[0].dtype, xp, gtol=gtol, htol=htol, vtol=vtol)
    loss_fn = check_loss_against(loss, _p.end_to_end(Ws, residual=residual))
    value, Gs = _c.value_and_grad(loss_fn, Ws, residual=residual)
    gnorm = xp.sqrt(_sqnorm(Gs, xp))
    ev, index, n_zero = _inertia(loss_fn, Ws, residual, htol, xp)
    gscale, gl = _grad_scale(loss_fn, Ws, residual, xp)
    gv, no_bad_minima = _global_value(loss_fn, Ws, residual, xp)
    is_global = _is_global(loss_fn, value, gv, gl, gtol, vtol, Ws[0].dtype, xp)
    label = _label(gnorm <= gtol * gscale, is_global, index, n_zero, no_bad_minima)
    return Classification(label, gnorm, ev, index, n_zero, value, gv)


def _tolerances(dt, xp, **tols) -> tuple:
    """The tolerances of :func:`classify`, checked, in the order given (default :math:`\\sqrt\\epsilon` of ``dt``)."""
    eps = float(xp.finfo(dt).eps)
    return tuple(math.sqrt(eps) if v is None else check_positive(v, name) for name, v in tols.items())


def _inertia(loss_fn, Ws, residual, htol, xp) -> tuple:
    """Test (2) of :func:`classify`: the dense Hessian's eigenvalues (ascending), and the numbers of them below
    ``-htol * ||H||_2`` (``index``) and of modulus at most ``htol * ||H||_2`` (``n_zero``)."""
    H = _c.hessian(loss_fn, Ws, residual=residual)
    ev = xp.linalg.eigvalsh(H)
    hnorm = xp.max(xp.abs(ev), axis=-1, keepdims=True)
    index = xp.sum(xp.astype(ev < -htol * hnorm, xp.int64), axis=-1)
    n_zero = xp.sum(xp.astype(xp.abs(ev) <= htol * hnorm, xp.int64), axis=-1)
    return ev, index, n_zero


def _global_value(loss_fn, Ws, residual, xp) -> tuple:
    """The global minimum value of the net's problem (``None`` when unknown) and whether theory rules out
    non-global local minima for it: the squared loss (any widths), or a convex differentiable loss without a
    bottleneck (THEOREMS.md §5, §7)."""
    dN, d0 = loss_fn.shape
    r = min(_widths(Ws)) if not residual else min(d0, dN)
    no_bottleneck = r >= min(d0, dN)
    gv = None
    form = loss_fn.quadratic_form()
    quadratic = form is not None and form.Phi is not None  # centred statistics: reduced-rank regression applies
    if quadratic:
        gv = rrr_value(form, r)
    elif no_bottleneck and callable(getattr(loss_fn, "min_value", None)):
        mv = loss_fn.min_value()
        if mv is not None:
            gv = xp.asarray(mv, dtype=Ws[0].dtype) if not _is_array(mv) else mv
    return gv, quadratic or (loss_fn.convex and loss_fn.differentiable and no_bottleneck)


def _is_global(loss_fn, value, gv, gl, gtol, vtol, dt, xp):
    """Test (3) of :func:`classify`: the value within ``vtol`` of the global value ``gv``, or (convex, differentiable
    loss) the end-to-end gradient norm ``gl`` below ``gtol`` relative to that at zero."""
    is_global = xp.zeros(value.shape, dtype=xp.bool)
    if gv is not None:
        l0 = loss_fn.value(xp.zeros(loss_fn.shape, dtype=dt))
        vscale = xp.maximum(xp.abs(gv), l0 - gv)
        vscale = xp.maximum(vscale, xp.full_like(vscale, xp.finfo(dt).smallest_normal))
        is_global = is_global | (value - gv <= vtol * vscale)
    if loss_fn.convex and loss_fn.differentiable:
        g0 = xp.sqrt(xp.sum(loss_fn.grad(xp.zeros(loss_fn.shape, dtype=dt)) ** 2, axis=(-2, -1)))
        is_global = is_global | (gl <= gtol * xp.maximum(g0, xp.ones_like(g0)))
    return is_global


def _label(critical, is_global, index, n_zero, no_bad_minima):
    """The labels of :func:`classify` from its tests, on the host: a ``str`` for one net, else an array of them."""
    crit_h, glob_h = to_numpy(critical), to_numpy(is_global)
    idx_h, nz_h = to_numpy(index), to_numpy(n_zero)
    crit_h, glob_h, idx_h, nz_h = np.broadcast_arrays(crit_h, glob_h, idx_h, nz_h)
    labels = np.where(
        ~crit_h,
        "not critical",
        np.where(
            glob_h,
            "global minimum",
            np.where(
                idx_h > 0, "strict saddle", np.where((nz_h > 0) & no_bad_minima, "non-strict saddle", "local minimum")
            ),
        ),
    )
    return str(labels) if labels.ndim == 0 else labels


# ---------------------------------------------------------------------------------------------------------------
# symmetries
# ---------------------------------------------------------------------------------------------------------------
def symmetry_direction(Ws: Sequence[Array], j: int, A: Array) -> tuple:
    r"""The infinitesimal symmetry :math:`V_A`: :math:`AW_j` in slot :math:`j`, :math:`-W_{j+1}A` in slot :math:`j+1`.

    It is the velocity of :math:`t \mapsto (\dots, e^{tA}W_j, W_{j+1}e^{-tA}, \dots)`, along which
    :math:`L` is constant. Hence :math:`\langle\nabla L, V_A\rangle = 0` everywhere and, writing
    :math:`V_A = M_A\theta`, :math:`\nabla^2L\,V_A = -M_A^\top\nabla L` (so :math:`V_A` is a Hessian null vector
    **at critical points only**). :math:`M_A^\top G` is ``symmetry_direction(Gs, j, A.mT)``. THEOREMS.md §12
    (invariance CONFIRMED; Hessian identity DERIVED+VERIFIED); Kunin et al.,
    `arXiv:2012.04728 <https://arxiv.org/abs/2012.04728>`_; Zhao et al., `arXiv:2210.17216
    <https://arxiv.org/abs/2210.17216>`_.

    Parameters
    ----------
    Ws : tuple of ``N`` arrays ``(..., d_j, d_{j-1})``
    j : int, hidden layer ``1 <= j <= N - 1`` (1-based, as in the maths)
    A : array ``(..., d_j, d_j)``

    Returns
    -------
    tuple of ``N`` arrays shaped like the layers (batch broadcast with ``A``'s), zero outside slots ``j, j+1``.

    Examples
    --------
    >>> import numpy as np, linnet as ln
    >>> Ws = ln.init.gaussian((2, 3, 2), seed=0)
    >>> V = ln.landscape.symmetry_direction(Ws, 1, np.eye(3))
    >>> bool(np.allclose(V[0], Ws[0]) and np.allclose(V[1], -Ws[1]))
    True
    """
    Ws, xp = check_weights(Ws)
    N = len(Ws)
    if as_index(j) is None or not 1 <= as_index(j) <= N - 1:
        raise ValueError(f"`j` must be a hidden layer index in [1, N - 1] = [1, {N - 1}], got {j!r}")
    j = as_index(j)
    d = Ws[j - 1].shape[-2]
    A, _ = check_matrix(A, "A", xp=xp, other="`Ws`")
    if not hasattr(A, "shape") or A.ndim < 2 or tuple(A.shape[-2:]) != (d, d):
        raise ValueError(
            f"`A` must have shape (..., {d}, {d}) (hidden width d_{j} = {d}), got {getattr(A, 'shape', A)!r}"
        )
    if A.dtype != Ws[0].dtype:
        raise ValueError(f"`A` must have the dtype of the weights ({Ws[0].dtype}), got {A.dtype}")
    batch = _broadcast_batch(*(tuple(W.shape[:-2]) for W in Ws), tuple(A.shape[:-2]))
    out = []
    for k, W in enumerate(Ws, start=1):
        shape = batch + tuple(W.shape[-2:])
        if k == j:
            out.append(xp.broadcast_to(xp.matmul(A, W), shape))
        elif k == j + 1:
            out.append(xp.broadcast_to(-xp.matmul(W, A), shape))
        else:
            out.append(xp.zeros(shape, dtype=W.dtype))
    return tuple(out)


def symmetry_generator(Ws: Sequence[Array]) -> Array:
    r"""Matrix of the linear map :math:`(A_1, \dots, A_{N-1}) \mapsto \sum_j V_{A_j}`, shape ``(..., P, K)``.

    :math:`P` is the number of parameters (order of :func:`linnet.flatten`) and :math:`K = \sum_{j=1}^{N-1} d_j^2`;
    column order: hidden layers :math:`j = 1..N-1`, each :math:`A_j` row-major. At a critical point its range
    lies in the Hessian's null space (THEOREMS.md §12).
    """
    Ws, xp = check_weights(Ws)
    N = len(Ws)
    batch = _broadcast_batch(*(tuple(W.shape[:-2]) for W in Ws))
    cols = []
    for j in range(1, N):
        d = Ws[j - 1].shape[-2]
        E = xp.reshape(xp.eye(d * d, dtype=Ws[0].dtype), (d * d,) + (1,) * len(batch) + (d, d))
        V = _c.flatten(symmetry_direction(Ws, j, E))  # (d*d, *batch, P)
        cols.append(xp.permute_dims(V, tuple(range(1, len(batch) + 2)) + (0,)))
    if not cols:
        P = _c.num_params(Ws)
        return xp.zeros(batch + (P, 0), dtype=Ws[0].dtype)
    return xp.concat(cols, axis=-1)


def symmetry_rank(Ws: Sequence[Array], *, rtol: Optional[float] = None) -> Array:
    r"""Numerical rank of :func:`symmetry_generator`: a lower bound on the Hessian nullity at critical points.

    Singular values above ``rtol * sigma_max`` count (default ``rtol = sqrt(eps)``). For full-rank layers with no
    hidden layer wider than both neighbours it equals :math:`\sum_j d_j^2` (THEOREMS.md §12: compute it, do not
    assume it). Integer array ``(...)``.

    Examples
    --------
    >>> import numpy as np, linnet as ln
    >>> int(ln.landscape.symmetry_rank(ln.init.gaussian((4, 2, 3), seed=0)))
    4
    """
    Ws, xp = check_weights(Ws)
    M = symmetry_generator(Ws)
    if M.shape[-1] == 0:
        return xp.zeros(M.shape[:-2], dtype=xp.int64)
    rt = math.sqrt(float(xp.finfo(M.dtype).eps)) if rtol is None else check_positive(rtol, "rtol")
    s = xp.linalg.svdvals(M)
    top = xp.max(s, axis=-1, keepdims=True)
    return xp.sum(xp.astype(s > rt * top, xp.int64), axis=-1)


# ---------------------------------------------------------------------------------------------------------------
# slices
# ---------------------------------------------------------------------------------------------------------------
def random_direction(Ws: Sequence[Array], *, seed: Any = 0, normalize: str = "layer") -> tuple:
    r"""A Gaussian direction shaped like ``Ws`` (host draws, same on every backend).

    ``normalize='layer'`` rescales each layer to :math:`\|D_j\|_F = \|W_j\|_F` (a layer-wise version of the
    filter normalisation of Li et al., `arXiv:1712.09913 <https://arxiv.org/abs/1712.09913>`_), ``'unit'`` makes
    the whole direction unit-norm, ``'none'`` leaves the draw.
    """
    Ws, xp = check_weights(Ws)
    if normalize not in ("layer", "unit", "none"):
        raise ValueError(f"`normalize` must be 'layer', 'unit' or 'none', got {normalize!r}")
    rng = host_rng(seed)
    dt = Ws[0].dtype
    Ds = [from_host(rng.standard_normal(tuple(W.shape)), xp, dt) for W in Ws]
    if normalize == "layer":
        Ds = [
            D * (xp.sqrt(xp.sum(W * W, axis=(-2, -1))) / xp.sqrt(xp.sum(D * D, axis=(-2, -1))))[..., None, None]
            for D, W in zip(Ds, Ws)
        ]
    elif normalize == "unit":
        n = xp.sqrt(_sqnorm(Ds, xp))[..., None, None]
        Ds = [D / n for D in Ds]
    return tuple(Ds)


def _steps(ts, xp, dt, name):
    if _is_array(ts):
        check_same_namespace(ts, xp, name, "`Ws`")
    ts = from_host(check_real(ts, name), xp, dt)  # a real 1-D sequence: no complex, strings, NaN
    if not _is_array(ts):
        ts = np.asarray(ts, dtype=np.float64)
        if ts.ndim != 1:
            raise ValueError(f"`{name}` must be a 1-D sequence of step lengths, got shape {ts.shape}")
        return from_host(ts, xp, dt)
    if ts.ndim != 1:
        raise ValueError(f"`{name}` must be 1-D, got shape {tuple(ts.shape)}")
    return xp.astype(ts, dt)


def _check_dir(D, Ws, name):
    D, _ = check_weights(D, name=name)
    check_same_namespace(D[0], namespace(Ws[0]), name, "`Ws`")
    if len(D) != len(Ws):
        raise ValueError(f"`{name}` must have {len(Ws)} layers like `Ws`, got {len(D)}")
    for k, (V, W) in enumerate(zip(D, Ws)):
        if tuple(V.shape[-2:]) != tuple(W.shape[-2:]):
            raise ValueError(f"`{name}[{k}]` must have shape (..., {W.shape[-2]}, {W.shape[-1]}), got {tuple(V.shape)}")
    return D


def slice_1d(loss: Loss, Ws: Sequence[Array], direction: Sequence[Array], ts: Any, *, residual: bool = False) -> Array:
    r"""The loss along a line: :math:`t \mapsto L(W + tD)`, shape ``(len(ts), ...)``.

    Examples
    --------
    >>> import numpy as np, linnet as ln
    >>> loss = ln.SquaredLoss.whitened(np.array([[1.0]]))
    >>> Ws = (np.array([[1.0]]), np.array([[1.0]]))
    >>> ln.landscape.slice_1d(loss, Ws, Ws, [-1.0, 0.0]).tolist()
    [0.5, 0.0]
    """
    Ws, xp = check_weights(Ws)
    D = _check_dir(direction, Ws, "direction")
    t = _steps(ts, xp, Ws[0].dtype, "ts")
    tb = lambda W: xp.reshape(t, (t.shape[0],) + (1,) * W.ndim)  # noqa: E731
    pts = tuple(W + tb(W) * V for W, V in zip(Ws, D))
    return _c.loss(loss, pts, residual=residual)


def slice_2d(
    loss: Loss,
    Ws: Sequence[Array],
    d1: Sequence[Array],
    d2: Sequence[Array],
    ts: Any,
    ss: Any,
    *,
    residual: bool = False,
) -> Array:
    r"""The loss on a plane: :math:`(t, s) \mapsto L(W + tD_1 + sD_2)`, shape ``(len(ts), len(ss), ...)``."""
    Ws, xp = check_weights(Ws)
    D1 = _check_dir(d1, Ws, "d1")
    D2 = _check_dir(d2, Ws, "d2")
    dt = Ws[0].dtype
    t = _steps(ts, xp, dt, "ts")
    s = _steps(ss, xp, dt, "ss")
    pts = []
    for W, U, V in zip(Ws, D1, D2):
        tt = xp.reshape(t, (t.shape[0], 1) + (1,) * W.ndim)
        sv = xp.reshape(s, (1, s.shape[0]) + (1,) * W.ndim)
        pts.append(W + tt * U + sv * V)
    return _c.loss(loss, tuple(pts), residual=residual)
