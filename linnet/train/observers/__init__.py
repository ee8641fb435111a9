"""Quantities recorded along a descent run, each on its own schedule (``gd(..., observe={...})``).

``observe`` maps a name to a schedule (an int ``k``: every ``k`` steps and the last; a sequence of ints: those
steps; :func:`logspaced`), or to ``(observer, schedule)`` with an :class:`Observer` or a user function
``f(step, weights, loss) -> array`` (batched over the nets). Built-in observers are found by name in
:data:`OBSERVERS`; a new one is one small class in this package decorated with :func:`register`. Results land in
``run.records[name]`` (shape ``(n_obs, *batch, ...)``) and ``run.record_steps[name]``.
"""

from __future__ import annotations

from . import builtins as _builtins  # noqa: F401  (registers the built-in observers)
from .base import OBSERVERS, Observer, ObserverContext, UserObserver, logspaced, register, resolve

__all__ = ["OBSERVERS", "Observer", "ObserverContext", "UserObserver", "logspaced", "register", "resolve"]
