"""The one preparation of a (loss, weights) problem at the public edge: validate, factor, check they agree.

Every public engine function (:mod:`linnet.calculus`, :mod:`linnet.train`, :mod:`linnet.landscape`, the
curvature operators) starts here, so a problem is validated the same way everywhere and the hot paths behind it
run unvalidated.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from . import product as _p
from ._validate import broadcast_batch, check_bool, check_loss, check_loss_against, check_weights

__all__ = ["Problem", "prepare"]


class Problem(NamedTuple):
    """A validated problem: ``loss`` (in the weights' dtype), ``Ws`` (tuple), ``xp``, ``parts``
    (:class:`linnet.product.Partials`: factors, prefixes, suffixes) and ``batch`` (the nets' batch broadcast with
    the problem's; ``None`` unless asked for), ``residual`` (a bool)."""

    loss: Any
    Ws: tuple
    xp: Any
    parts: Any
    batch: Any
    residual: bool


def prepare(loss: Any, Ws: Any, residual: Any, *, name: str = "Ws", suffixes: bool = True, batch: bool = False):
    """Validate ``loss``, ``Ws`` and ``residual`` and return a :class:`Problem`.

    ``batch=True`` also evaluates the loss once at the end-to-end matrix to learn the broadcast batch shape
    (which a loss given by callables may only reveal that way).
    """
    residual = check_bool(residual, "residual")
    loss = check_loss(loss)
    Ws, xp = check_weights(Ws, name=name)
    nets = broadcast_batch(*(tuple(W.shape[:-2]) for W in Ws), what=f"the layers' batch shapes in `{name}`")
    broadcast_batch(
        nets, tuple(loss.batch_shape), what=f"the batch shape of `{name}` and that of the problem in `loss`"
    )
    Fs = _p.factors(Ws, residual, xp)
    parts = _p.partials(Fs, xp, suffixes=suffixes)
    We = parts.prefix[-1]
    loss_fn = check_loss_against(loss, We, name)
    out_batch = _value_batch(loss_fn, We) if batch else None
    return Problem(loss_fn, Ws, xp, parts, out_batch, residual)


def _value_batch(loss_fn, We) -> tuple:
    """The batch shape of ``loss_fn.value(We)``: for a loss with a :meth:`~linnet.losses.Loss.quadratic_form`,
    that of ``We`` broadcast with the form's (no evaluation); else read off one evaluation (a loss given by
    callables may only reveal it that way)."""
    form = loss_fn.quadratic_form() if hasattr(loss_fn, "quadratic_form") else None
    if form is not None:
        return broadcast_batch(
            tuple(We.shape[:-2]), tuple(form.batch_shape), what="the batch shapes of the nets and the problem"
        )
    return tuple(loss_fn.value(We).shape)
