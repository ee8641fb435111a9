"""The hot path shared by every training loop: loss values and per-layer gradients, no validation.

Callers (``linnet.train``) validate once at the public edge, then call :func:`value_and_grads` each step.
Performance work (buffer reuse, batch splitting across threads, layouts) belongs here so that every user of
``linnet.train`` gets it.
"""

from __future__ import annotations

from . import product as _p

__all__ = ["value_and_grads", "values"]


def value_and_grads(loss_fn, Ws, residual: bool, xp):
    """``(L, grads)`` for validated weights ``Ws`` and a loss already in their dtype."""
    Fs = _p.factors(Ws, residual, xp)
    parts = _p.partials(Fs, xp)
    We = parts.prefix[-1]
    return loss_fn.value(We), _p.pullback(parts, loss_fn.grad(We), xp)


def values(loss_fn, Ws, residual: bool, xp):
    """Loss values only."""
    Fs = _p.factors(Ws, residual, xp)
    We = Fs[0]
    for F in Fs[1:]:
        We = xp.matmul(F, We)
    return loss_fn.value(We)
