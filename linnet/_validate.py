"""Argument checks at the public edge: every failure is a ``ValueError`` naming the argument.

The public functions call these once per call, before any array work; the hot paths behind them (training
loops, fused kernels, HVP operators) never re-check. Rules shared by every check:

* arrays are real floating (float32 or float64; NumPy arrays of non-native byte order and ``np.matrix`` are
  converted to plain native float arrays, every other dtype is refused), finite, and have no zero-size
  dimension (every width, sample count and batch size is ``>= 1``);
* arrays passed together come from one array namespace;
* batch dimensions (leading axes) of arrays used together broadcast by the matmul rules;
* flags are real bools (``True``/``False`` or NumPy bools), counts are ints (NumPy integers accepted).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from ._backend import dtype_name, namespace

__all__ = [
    "check_weights",
    "check_finite",
    "check_positive",
    "check_widths",
    "check_bool",
    "check_loss",
    "check_matrix",
    "broadcast_batch",
    "check_bool",
    "check_real",
    "check_same_namespace",
    "check_loss_against",
    "as_native",
    "check_int",
    "as_index",
]


def as_native(a: Any) -> Any:
    """A NumPy array as a plain native-byte-order ``ndarray`` (``np.matrix``, ``'>f8'``); other objects as is."""
    import numpy as np

    if isinstance(a, np.ndarray):
        if type(a) is not np.ndarray:
            a = np.asarray(a)
        if a.dtype.byteorder not in ("=", "|") and a.dtype.byteorder != np.dtype(a.dtype.name).byteorder:
            a = a.astype(a.dtype.newbyteorder("="))
    return a


def check_bool(value: Any, name: str) -> bool:
    """Return ``value`` as a Python bool; only ``True``/``False`` and NumPy bools are accepted."""
    import numpy as np

    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise ValueError(f"`{name}` must be a bool (True or False), got {value!r} of type {type(value).__name__}")


def check_real(value: Any, name: str, *, finite: bool = True):
    """A real number or real array (no complex, bool, string or object) as a host float64 NumPy array."""
    import numpy as np

    from ._backend import to_numpy

    if isinstance(value, (bool, np.bool_, str, bytes)) or value is None:
        raise ValueError(f"`{name}` must be a real number or a real array, got {value!r}")
    try:
        host = np.asarray(to_numpy(value) if hasattr(value, "__array_namespace__") else value)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a real number or a real array, got {value!r}") from None
    if host.dtype.kind not in "fiu" or host.dtype.itemsize < 4 and host.dtype.kind == "f":
        raise ValueError(
            f"`{name}` must be a real number or a real array (float32/float64 or int), got dtype {host.dtype}"
        )
    host = host.astype(np.float64)
    if host.size == 0:
        raise ValueError(f"`{name}` must not be empty, got {value!r}")
    if finite and not bool(np.all(np.isfinite(host))):
        raise ValueError(f"`{name}` must be finite, got {value!r}")
    return host


def check_same_namespace(a: Any, xp: Any, name: str, other: str) -> None:
    """Raise unless the array ``a`` belongs to the namespace ``xp`` (that of ``other``)."""
    try:
        ok = namespace(a) is xp
    except TypeError:
        ok = False
    if not ok:
        mine = getattr(namespace(a), "__name__", "?") if hasattr(a, "__array_namespace__") else type(a).__name__
        raise ValueError(
            f"`{name}` must come from the array namespace of {other} ({getattr(xp, '__name__', xp)}), got {mine}"
        )


def check_loss_against(loss: Any, We: Any, name: str = "Ws"):
    """``loss.check(We)`` (the loss in the dtype of the end-to-end matrix), after a namespace check.

    ``We`` is the end-to-end matrix of the nets given as ``name``; a disagreement raises ``ValueError`` naming
    both ``loss`` and ``name`` once.
    """
    ref = loss.reference_array() if hasattr(loss, "reference_array") else None
    if ref is not None:
        check_same_namespace(We, namespace(ref), name, "`loss`")
    try:
        return loss.check(We)
    except ValueError as exc:
        raise ValueError(f"`loss` and `{name}` disagree: {exc}") from None


def layer_arrays(Ws: Any, name: str) -> tuple:
    """``(tuple(Ws), xp)`` for a tuple or list of at least one array of one namespace (native arrays), else a
    ``ValueError`` naming ``name``; shapes and dtypes are the caller's to check (dense or diagonal layers)."""
    if not isinstance(Ws, (tuple, list)):
        raise ValueError(f"`{name}` must be a tuple or list of arrays (one per layer), got {type(Ws).__name__}")
    if len(Ws) < 1:
        raise ValueError(f"`{name}` must have at least 1 layer, got 0")
    Ws = tuple(as_native(W) for W in Ws)
    try:
        xp = namespace(*Ws)
    except TypeError as exc:
        raise ValueError(f"`{name}` must hold arrays of one array-API namespace: {exc}") from exc
    return Ws, xp


def check_weights(Ws: Any, *, name: str = "Ws", finite: bool = True):
    """Validate a sequence of layer matrices and return ``(tuple(Ws), xp)``.

    Each ``W_j`` must have shape ``(..., d_j, d_{j-1})``, consecutive widths must match, all layers share one
    real floating dtype, and (when ``finite``) every entry is finite.
    """
    Ws, xp = layer_arrays(Ws, name)
    dt = Ws[0].dtype
    for j, W in enumerate(Ws, start=1):
        if W.ndim < 2:
            raise ValueError(
                f"`{name}[{j - 1}]` (layer {j}) must have shape (..., d_{j}, d_{j - 1}), got {tuple(W.shape)}"
            )
        if W.dtype != dt:
            raise ValueError(f"`{name}` must share one dtype: layer 1 is {dt}, layer {j} is {W.dtype}")
        if j > 1 and W.shape[-1] != Ws[j - 2].shape[-2]:
            raise ValueError(
                f"`{name}`: mismatched widths: layer {j} expects input width {W.shape[-1]}, "
                f"layer {j - 1} gives {Ws[j - 2].shape[-2]}"
            )
    try:
        dtype_name(dt)
    except ValueError:
        raise ValueError(f"`{name}` must have dtype float32 or float64, got {dt}") from None
    for j, W in enumerate(Ws):
        if 0 in tuple(W.shape):
            raise ValueError(
                f"`{name}[{j}]` must have every width and batch size >= 1 (zero-width layers are not supported), "
                f"got shape {tuple(W.shape)}"
            )
    broadcast_batch(*(tuple(W.shape[:-2]) for W in Ws), what=f"the layers' batch shapes in `{name}`")
    if finite:
        for j, W in enumerate(Ws, start=1):
            check_finite(W, f"{name}[{j - 1}]", xp=xp)
    return Ws, xp


def check_finite(a: Any, name: str, *, xp=None) -> None:
    """Raise if ``a`` has a non-finite entry."""
    xp = xp or namespace(a)
    if not bool(xp.all(xp.isfinite(a))):
        raise ValueError(f"`{name}` must be finite, got an array with NaN or inf entries")


def check_positive(value: Any, name: str, *, allow_zero: bool = False) -> float:
    """Return ``float(value)`` after checking it is a finite real > 0 (or >= 0)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a real number, got {value!r}") from None
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"`{name}` must be finite and {bound}, got {value!r}")
    return v


def check_widths(widths: Any, *, name: str = "widths", min_len: int = 2) -> tuple[int, ...]:
    """Validate widths ``(d_0, d_1, ..., d_N)``: positive ints, at least ``min_len`` of them."""
    if hasattr(widths, "ndim") and hasattr(widths, "dtype") and getattr(widths, "ndim", 0) == 1:
        import numpy as np

        from ._backend import to_numpy

        host = np.asarray(to_numpy(widths))
        if host.dtype.kind in "iu":
            widths = tuple(int(w) for w in host)
    if isinstance(widths, (int, str)) or not isinstance(widths, Sequence):
        raise ValueError(f"`{name}` must be a sequence of positive ints (d_0, ..., d_N), got {widths!r}")
    widths = tuple(widths)
    if len(widths) < min_len:
        raise ValueError(f"`{name}` must have length >= {min_len}, got {widths!r}")
    for w in widths:
        if isinstance(w, bool) or not isinstance(w, int) or w < 1:
            # accept numpy integers too
            if hasattr(w, "__index__") and not isinstance(w, bool) and int(w) >= 1:
                continue
            raise ValueError(f"`{name}` must hold positive ints, got {widths!r}")
    return tuple(int(w) for w in widths)


#: What a loss must provide (the protocol of :class:`linnet.losses.Loss`), checked without importing it.
_LOSS_PROTOCOL = ("value", "grad", "hvp", "check", "astype", "quadratic_form")


def check_loss(loss: Any):
    """Return ``loss`` after checking it is a linnet loss: it has ``shape`` and the methods of the loss protocol
    (:class:`linnet.losses.Loss` and its subclasses do)."""
    if (
        isinstance(loss, type)
        or not all(callable(getattr(loss, m, None)) for m in _LOSS_PROTOCOL)
        or not hasattr(loss, "shape")
    ):
        raise ValueError(f"`loss` must be a linnet loss (e.g. SquaredLoss), got {type(loss).__name__}")
    return loss


def broadcast_batch(*shapes: tuple, what: str = "batch shapes") -> tuple:
    """The broadcast of batch shapes (matmul rules), or ``ValueError`` saying ``what`` does not broadcast."""
    nd = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(nd):
        dims = {s[len(s) - nd + i] for s in shapes if len(s) - nd + i >= 0} - {1}
        if len(dims) > 1:
            raise ValueError(f"{what} must broadcast, got batch shapes {', '.join(str(tuple(s)) for s in shapes)}")
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def check_matrix(a: Any, name: str, *, xp=None, min_ndim: int = 2, other: str = "the other arrays"):
    """Validate a real floating (float32/float64), finite, non-empty array with ``ndim >= min_ndim``.

    Returns ``(a, xp)``. Host inputs such as lists become float64 NumPy arrays; arrays keep their namespace
    (NumPy ones become native ``ndarray``). With ``xp`` given, ``a`` must belong to it (``other`` names the
    arrays that fixed it).
    """
    import numpy as np

    if a is None or isinstance(a, (str, bytes, bool, complex)):
        raise ValueError(f"`{name}` must be an array, got {a!r}")
    if not hasattr(a, "shape") or not hasattr(a, "dtype"):
        try:
            a = np.asarray(a, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"`{name}` must be a real array, got {type(a).__name__}") from None
    a = as_native(a)
    if xp is None:
        try:
            xp = namespace(a)
        except TypeError:
            raise ValueError(f"`{name}` must be an array of an array-API namespace, got {type(a).__name__}") from None
    else:
        check_same_namespace(a, xp, name, other)
    if a.ndim < min_ndim:
        dims = "(..., rows, cols)" if min_ndim == 2 else f"({min_ndim} or more)"
        raise ValueError(f"`{name}` must have at least {min_ndim} dimensions {dims}, got shape {tuple(a.shape)}")
    try:
        dtype_name(a.dtype)
    except ValueError:
        raise ValueError(f"`{name}` must have a real floating dtype (float32 or float64), got {a.dtype}") from None
    if 0 in tuple(a.shape):
        raise ValueError(f"`{name}` must not be empty (every dimension >= 1), got shape {tuple(a.shape)}")
    check_finite(a, name, xp=xp)
    return a, xp


def check_loss_shape(shape: Any) -> tuple:
    """``(d_N, d_0)``: a tuple or list of two ints ``>= 1`` (NumPy integers accepted)."""
    if not isinstance(shape, (tuple, list)) or len(shape) != 2:
        raise ValueError(f"`shape` must be (d_N, d_0), a tuple of two ints >= 1, got {shape!r}")
    for s in shape:
        if isinstance(s, bool) or not hasattr(s, "__index__") or int(s) < 1:
            raise ValueError(f"`shape` must be (d_N, d_0), a tuple of two ints >= 1, got {shape!r}")
    return tuple(int(s) for s in shape)


def check_callable_output(out: Any, W: Any, shape: tuple, name: str) -> None:
    """Raise ``TypeError``/``ValueError`` naming the callback ``name`` unless ``out`` is an array like ``W``.

    ``out`` must be an array of the namespace and dtype of ``W`` whose shape broadcasts to ``shape``.
    """
    if not (hasattr(out, "shape") and hasattr(out, "dtype")):
        raise TypeError(
            f"`loss`: the `{name}` callback of the CallableLoss must return an array of shape {shape}, got {type(out).__name__}"
        )
    import numpy as np

    try:
        same_ns = namespace(out if not isinstance(out, np.generic) else np.asarray(out)) is namespace(W)
    except TypeError:
        same_ns = False
    if not same_ns:
        raise TypeError(
            f"`loss`: the `{name}` callback of the CallableLoss must return an array of the namespace of the weights, "
            f"got {type(out).__name__}"
        )
    if out.dtype != W.dtype:
        raise ValueError(
            f"`loss`: the `{name}` callback of the CallableLoss must return dtype {W.dtype} (that of the weights), got {out.dtype}"
        )
    if tuple(out.shape) != tuple(shape):
        raise ValueError(
            f"`loss`: the `{name}` callback of the CallableLoss must return shape {tuple(shape)} for W of shape "
            f"{tuple(W.shape)}, got {tuple(out.shape)}"
        )


def check_population(Sxx: Any, Syx: Any, Syy: Any, Phi: Any, xp: Any) -> None:
    r"""Consistency of population statistics (a joint second moment), within a tolerance from the dtype.

    The joint matrix :math:`J = \begin{pmatrix}\Sigma_{yy} & \Sigma_{yx}\\ \Sigma_{yx}^\top & \Sigma_{xx}\end{pmatrix}`
    must be PSD: its smallest eigenvalue :math:`\ge -\tau`, :math:`\tau = 10^3\,n\,\varepsilon\,\|J\|_2`.
    ``Syy`` PSD and ``Syx`` in the row space of ``Sxx`` follow from it (a PSD block matrix has
    :math:`\operatorname{range}\Sigma_{yx}^\top \subseteq \operatorname{range}\Sigma_{xx}`); the row-space residual
    :math:`\|\Sigma_{yx} - \Phi\Sigma_{xx}\|_F` is also checked directly against
    :math:`10\sqrt{n\varepsilon}\,\|J\|_2`, the largest residual round-off can leave along the directions of
    ``Sxx`` that the pseudo-inverse drops (their eigenvalues are below :math:`d_0\varepsilon\|\Sigma_{xx}\|_2`,
    and Cauchy–Schwarz bounds the matching entries of a true covariance by the square root of that times
    :math:`\|\Sigma_{yy}\|_2`). DERIVED+VERIFIED (tests/test_validation.py).
    """
    eps = float(xp.finfo(Sxx.dtype).eps)
    batch = broadcast_batch(
        tuple(Sxx.shape[:-2]),
        tuple(Syx.shape[:-2]),
        tuple(Syy.shape[:-2]),
        what="the batch shapes of `Sxx`, `Syx`, `Syy`",
    )
    dN, d0 = Syx.shape[-2], Syx.shape[-1]
    n = dN + d0
    b = lambda a, r, c: xp.broadcast_to(a, batch + (r, c))  # noqa: E731
    top = xp.concat([b(Syy, dN, dN), b(Syx, dN, d0)], axis=-1)
    bottom = xp.concat([b(Syx.mT, d0, dN), b(Sxx, d0, d0)], axis=-1)
    J = xp.concat([top, bottom], axis=-2)
    mu = xp.linalg.eigvalsh(0.5 * (J + J.mT))
    scale = xp.max(xp.abs(mu), axis=-1)
    if bool(xp.any(mu[..., 0] < -1e3 * n * eps * scale)):
        raise ValueError(
            "`Syy`, `Syx`, `Sxx` must form a positive semi-definite joint second moment [[Syy, Syx], [Syx^T, Sxx]]: "
            f"its smallest eigenvalue is {float(xp.min(mu[..., 0])):.3g} (e.g. `Syy` not PSD, or `Syx` too large)"
        )
    res = xp.sqrt(xp.sum((Syx - xp.matmul(Phi, Sxx)) ** 2, axis=(-2, -1)))
    if bool(xp.any(res > 10 * (n * eps) ** 0.5 * scale)):
        raise ValueError(
            "`Syx` must lie in the row space of `Sxx` (true of any joint covariance): "
            f"||Syx - Syx Sxx^+ Sxx||_F = {float(xp.max(res)):.3g}"
        )


def check_orthonormal_columns(Q: Any, name: str, xp: Any) -> None:
    r"""Raise unless :math:`\|Q^\top Q - I\|_{\max} \le 10^3\,r\,\varepsilon` (orthonormal columns, round-off allowed)."""
    r = Q.shape[-1]
    eps = float(xp.finfo(Q.dtype).eps)
    err = xp.max(xp.abs(xp.matmul(Q.mT, Q) - xp.eye(r, dtype=Q.dtype)))
    if float(err) > 1e3 * max(r, Q.shape[-2]) * eps:
        raise ValueError(f"`{name}` must have orthonormal columns: max |{name}^T {name} - I| = {float(err):.3g}")


def check_int(value: Any, name: str, *, minimum: int = 1) -> int:
    """An int ``>= minimum`` (NumPy integers and 0-d integer arrays accepted; bools, floats, strings refused)."""
    import operator

    if isinstance(value, bool):
        raise ValueError(f"`{name}` must be an int >= {minimum}, got {value!r}")
    try:
        v = operator.index(value)
    except TypeError:
        raise ValueError(f"`{name}` must be an int >= {minimum}, got {value!r}") from None
    if v < minimum:
        raise ValueError(f"`{name}` must be an int >= {minimum}, got {value!r}")
    return int(v)


def as_index(value: Any):
    """``value`` as a Python int if it is an integer (NumPy integers and 0-d integer arrays too), else ``None``."""
    import operator

    if isinstance(value, bool):
        return None
    try:
        return int(operator.index(value))
    except TypeError:
        return None


def check_data(a: Any, name: str, *, xp: Any, like: Any, min_ndim: int = 1, other: str = "the other arrays"):
    """A finite real data array of the namespace ``xp`` (that of ``other``), ``ndim >= min_ndim``, non-empty.

    Host sequences (lists, tuples, NumPy arrays when ``xp`` is NumPy) are accepted: a list or tuple becomes an
    array of ``xp`` in the dtype of the array ``like``. Everything else as :func:`check_matrix`.
    """
    import numpy as np

    from ._backend import from_host

    if a is None or isinstance(a, (str, bytes, bool, complex)):
        raise ValueError(f"`{name}` must be a real array, got {a!r}")
    if not (hasattr(a, "shape") and hasattr(a, "dtype")):
        try:
            host = np.asarray(a, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"`{name}` must be a real array, got {type(a).__name__}") from None
        a = from_host(host, xp, like.dtype)
    a, _ = check_matrix(a, name, xp=xp, min_ndim=min_ndim, other=other)
    return a


def check_scalar(value: Any, name: str) -> float:
    """A finite real scalar (Python or NumPy number, or a 0-d real array) as a Python float."""
    host = check_real(value, name)
    if host.ndim != 0:
        raise ValueError(f"`{name}` must be a real number (a scalar), got an array of shape {host.shape}")
    return float(host)


def check_opt_positive(value: Any, name: str, *, allow_zero: bool = False):
    """``None``, or a finite real number > 0 (>= 0) as a Python float; bools, complex and strings refused."""
    if value is None:
        return None
    import numpy as np

    if isinstance(value, (bool, np.bool_, complex, np.complexfloating)):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"`{name}` must be a real number {bound}, got {value!r}")
    return check_positive(value, name, allow_zero=allow_zero)


def check_shape2(shape: Any, name: str = "shape") -> tuple:
    """``(d_N, d_0)``: a tuple or list of two ints ``>= 1`` (NumPy integers accepted; floats and bools refused)."""
    if not isinstance(shape, (tuple, list)) or len(shape) != 2:
        raise ValueError(f"`{name}` must be (d_N, d_0), a tuple of two ints >= 1, got {shape!r}")
    out = tuple(as_index(s) for s in shape)
    if any(s is None or s < 1 for s in out):
        raise ValueError(f"`{name}` must be (d_N, d_0), a tuple of two ints >= 1, got {shape!r}")
    return out


def check_seed(seed: Any, name: str = "seed", *, allow_none: bool = True):
    """An int ``>= 0`` (NumPy integers accepted), a ``numpy.random.Generator``, or ``None``; bools refused."""
    import numpy as np

    if isinstance(seed, np.random.Generator) or (seed is None and allow_none):
        return seed
    v = as_index(seed)
    if v is None or v < 0:
        raise ValueError(f"`{name}` must be an int >= 0 or a numpy.random.Generator, got {seed!r}")
    return v


def check_mask(mask: Any, shape: tuple, name: str = "mask"):
    """An observation mask as a host NumPy bool array ``(..., *shape)``: bools, or 0/1 numbers (finite, real)."""
    import numpy as np

    from ._backend import to_numpy

    if mask is None or isinstance(mask, (str, bytes, bool, complex)):
        raise ValueError(f"`{name}` must be an array of bools (or 0/1 values), got {mask!r}")
    try:
        host = np.asarray(to_numpy(mask) if hasattr(mask, "__array_namespace__") else mask)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be an array of bools (or 0/1 values), got {type(mask).__name__}") from None
    if host.dtype != np.bool_:
        if host.dtype.kind not in "iuf" or not bool(np.all((host == 0) | (host == 1))):
            raise ValueError(f"`{name}` must hold booleans (or 0/1 values), got dtype {host.dtype}")
        host = host.astype(bool)
    if host.ndim < 2 or tuple(host.shape[-2:]) != tuple(shape):
        raise ValueError(
            f"`{name}` must have shape (..., d_N, d_0) = (..., {shape[0]}, {shape[1]}), got {tuple(host.shape)}"
        )
    if 0 in host.shape:
        raise ValueError(f"`{name}` must not be empty (every dimension >= 1), got shape {tuple(host.shape)}")
    return host


def check_problem_batch(loss: Any, We: Any, name: str = "Ws") -> tuple:
    """The broadcast of the nets' batch shape (that of ``We``) with the problem's (``loss.batch_shape``)."""
    return broadcast_batch(
        tuple(We.shape[:-2]),
        tuple(getattr(loss, "batch_shape", ()) or ()),
        what=f"the batch shape of `{name}` and that of the problem in `loss`",
    )
