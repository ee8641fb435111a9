"""Argument checks of the training routines, run once per call on the host (shared by every submodule).

Bad input raises ``ValueError`` naming the argument, the expected and the actual value.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np  # host side only: argument checks

from .._backend import dtype_name, from_host
from .._fastpaths import threads as _threads
from .._problem import prepare
from .._validate import broadcast_batch as _broadcast_shapes
from .._validate import (
    check_int,
    check_loss_against,
    check_positive,
    check_real,
    check_weights,  # noqa: F401 - re-exported to the trainers
)
from .._validate import check_loss as _check_loss  # noqa: F401 - re-exported to the trainers


def _check_int(value: Any, name: str, *, minimum: int) -> int:
    return check_int(value, name, minimum=minimum)


def _check_lr(lr: Any, xp, dt, name: str = "lr"):
    """A finite lr >= 0: a Python float, or an array (the weights' dtype) broadcastable to the batch."""
    if isinstance(lr, (int, float, np.floating, np.integer)) and not isinstance(lr, bool):
        return check_positive(lr, name, allow_zero=True), ()
    host = check_real(lr, name, finite=False)  # refuses complex, bool, None, strings
    if host.size == 0:
        raise ValueError(f"`{name}` must be a finite real >= 0 or a non-empty array of them, got {lr!r}")
    if host.ndim == 0:
        return check_positive(float(host), name, allow_zero=True), ()
    if not (np.all(np.isfinite(host)) and np.all(host >= 0)):
        raise ValueError(f"`{name}` must hold finite values >= 0, got {host!r}")
    return from_host(host, xp, dtype_name(dt)), tuple(host.shape)


def _check_beta(beta: Any) -> float:
    """The heavy-ball coefficient: a real in ``[0, 1)``, as a Python float."""
    try:
        b = float(beta)
    except (TypeError, ValueError):
        raise ValueError(f"`beta` must be a real in [0, 1), got {beta!r}") from None
    if not (0.0 <= b < 1.0):
        raise ValueError(f"`beta` must be a real in [0, 1), got {beta!r}")
    return b


def _with_lr(batch: tuple, lr_shape: tuple) -> tuple:
    try:
        return _broadcast_shapes(batch, lr_shape)
    except ValueError:
        raise ValueError(f"`lr` of shape {lr_shape} does not broadcast with the batch {batch} of nets") from None


def _check_layer_lr(lr_per_layer: Any, n_layers: int) -> tuple:
    if lr_per_layer is None:
        return (1.0,) * n_layers
    try:
        factors = tuple(lr_per_layer)
    except TypeError:
        raise ValueError(f"`lr_per_layer` must be a sequence of {n_layers} floats, got {lr_per_layer!r}") from None
    if len(factors) != n_layers:
        raise ValueError(f"`lr_per_layer` must have one factor per layer ({n_layers}), got {len(factors)}")
    return tuple(check_positive(c, "lr_per_layer", allow_zero=True) for c in factors)


def _check_tol(value: Any, name: str) -> Optional[float]:
    return None if value is None else check_positive(value, name, allow_zero=True)


def _check_ftol(value: Any) -> Optional[float]:
    if value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"`ftol` must be a finite real, got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"`ftol` must be a finite real, got {value!r}")
    return v


def _record_schedule(steps: int, record_every: Any, record_steps: Any) -> list:
    """Sorted step indices to record: ``0, r, 2r, ..., steps`` or the explicit ``record_steps``."""
    if record_steps is not None:
        try:
            idx = sorted({int(_check_int(s, "record_steps", minimum=0)) for s in record_steps})
        except TypeError:
            raise ValueError(f"`record_steps` must be a sequence of ints in [0, steps], got {record_steps!r}") from None
        if idx and idx[-1] > steps:
            raise ValueError(f"`record_steps` must lie in [0, steps={steps}], got {idx[-1]}")
        return idx
    r = _check_int(record_every, "record_every", minimum=1)
    idx = list(range(0, steps + 1, r))
    if idx[-1] != steps:
        idx.append(steps)
    return idx


def _check_times(t_final, times):
    """``t_final`` (``> 0``) and the record times of a flow: non-decreasing reals in ``[0, t_final]``."""
    T = check_positive(t_final, "t_final")
    if times is None:
        rec = [0.0, T]
    else:
        try:
            rec = [float(t) for t in check_real(times, "times", finite=False).reshape(-1)]
        except (TypeError, ValueError):
            raise ValueError(f"`times` must be a sequence of reals in [0, t_final], got {times!r}") from None
        if not rec:
            raise ValueError("`times` must hold at least one time, got an empty sequence")
        if any(not math.isfinite(t) or t < 0 or t > T for t in rec):
            raise ValueError(f"`times` must lie in [0, t_final={T}], got {rec!r}")
        if any(b < a for a, b in zip(rec, rec[1:])):
            raise ValueError(f"`times` must be non-decreasing, got {rec!r}")
    return T, rec


def _flow_options(rtol, atol, max_steps, check_every, dt):
    """The step-control options of a flow as keyword arguments of its integrator."""
    eps = float(np.finfo(dtype_name(dt)).eps)
    r = check_positive(rtol, "rtol")
    a = check_positive(atol, "atol", allow_zero=True)
    return dict(
        rtol=max(r, 100 * eps),  # below ~100 eps the error estimate is round-off (SciPy's floor too)
        atol=a,
        max_steps=_check_int(max_steps, "max_steps", minimum=1),
        check_every=_check_int(check_every, "check_every", minimum=1),
    )


def _prepare(loss: Any, Ws: Any, residual: Any, name: str = "Ws"):
    """Validate loss, weights and ``residual`` (:func:`linnet._problem.prepare`); return the loss in the weights'
    dtype, the weights, xp and the batch shape."""
    with _threads.small_step_blas(Ws):  # no BLAS threads on small products (linnet._fastpaths.threads)
        p = prepare(loss, Ws, residual, name=name, suffixes=False, batch=True)
    return p.loss, p.Ws, p.xp, p.batch


def _check_against(loss, We, name: str):
    """The loss in the dtype of ``We`` and the batch shape of the nets broadcast with the problem."""
    loss_fn = check_loss_against(loss, We, name)
    problem = tuple(loss_fn.batch_shape)
    try:
        _broadcast_shapes(tuple(We.shape[:-2]), problem)
        batch = tuple(loss_fn.value(We).shape)
    except ValueError as exc:
        raise ValueError(
            f"the batch shape of `{name}` {tuple(We.shape[:-2])} does not broadcast with that of `loss` {problem}: {exc}"
        ) from None
    return loss_fn, batch


def _broadcast_weights(Ws, batch, xp) -> tuple:
    return tuple(xp.broadcast_to(W, batch + tuple(W.shape[-2:])) for W in Ws)
