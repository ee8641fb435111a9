"""The observer protocol, its registry and schedules."""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Optional

__all__ = ["Observer", "ObserverContext", "UserObserver", "OBSERVERS", "register", "logspaced", "resolve"]

#: Built-in observers by name (filled by :func:`register`).
OBSERVERS: dict = {}


class ObserverContext(NamedTuple):
    """What an observer sees at a recorded step: ``step``, the weights ``Ws`` (tuple, batch ``(*batch, ...)``),
    the loss values ``L`` (``(*batch)``), the gradient ``G`` at ``Ws`` (tuple; minibatch gradient for SGD),
    ``loss`` (the loss in the weights' dtype), ``residual`` and the namespace ``xp``."""

    step: int
    Ws: tuple
    L: Any
    G: tuple
    loss: Any
    residual: bool
    xp: Any


class Observer:
    """One recorded quantity: ``__call__(ctx) -> array`` of shape ``(*batch, ...)``, a fresh array (the driver's
    NumPy buffers are reused). An observer may keep state between calls of one run (e.g. a warm start)."""

    name: str = ""

    def __call__(self, ctx: ObserverContext):  # pragma: no cover - abstract
        raise NotImplementedError


class UserObserver(Observer):
    """A user function ``f(step, weights, loss)`` recorded like the built-ins."""

    def __init__(self, fn: Callable, name: str = "user"):
        if not callable(fn):
            raise ValueError(f"`observe[{name!r}]` must be callable or an Observer, got {type(fn).__name__}")
        self.fn, self.name = fn, name

    def __call__(self, ctx):
        return ctx.xp.asarray(self.fn(ctx.step, ctx.Ws, ctx.L))


def register(cls):
    """Class decorator: register an :class:`Observer` subclass under its ``name``."""
    if not cls.name or cls.name in OBSERVERS:
        raise ValueError(f"observer name {cls.name!r} is empty or taken")
    OBSERVERS[cls.name] = cls
    return cls


class logspaced(NamedTuple):
    """Schedule: about ``n`` steps spaced evenly in log scale over ``[0, steps]`` (0 and the last included)."""

    n: int

    def steps(self, total: int) -> list:
        if total == 0:
            return [0]
        pts = {0, total} | {int(round(math.exp(math.log(total) * i / max(self.n - 1, 1)))) for i in range(self.n)}
        return sorted(p for p in pts if 0 <= p <= total)


def _schedule(spec: Any, total: int, name: str) -> list:
    if isinstance(spec, logspaced):
        return spec.steps(total)
    if isinstance(spec, bool):
        raise ValueError(f"`observe[{name!r}]` schedule must be an int k >= 1, steps, or logspaced(n), got {spec!r}")
    if isinstance(spec, int):
        if spec < 1:
            raise ValueError(f"`observe[{name!r}]`: every k steps needs k >= 1, got {spec!r}")
        out = list(range(0, total + 1, spec))
        return out if out[-1] == total else out + [total]
    try:
        out = sorted({int(s) for s in spec})
    except (TypeError, ValueError):
        raise ValueError(
            f"`observe[{name!r}]` schedule must be an int k >= 1, a sequence of steps or logspaced(n), got {spec!r}"
        ) from None
    if out and (out[0] < 0 or out[-1] > total):
        raise ValueError(f"`observe[{name!r}]` steps must lie in [0, {total}], got {out[0]}..{out[-1]}")
    return out


def resolve(observe: Optional[dict], total: int) -> list:
    """``[(name, observer, steps)]`` from an ``observe`` mapping for a run of ``total`` steps."""
    if observe is None:
        return []
    if not isinstance(observe, dict):
        raise ValueError(f"`observe` must be a dict name -> schedule, got {type(observe).__name__}")
    out = []
    for name, spec in observe.items():
        if isinstance(spec, tuple) and len(spec) == 2 and (callable(spec[0]) or isinstance(spec[0], Observer)):
            obs, sched = spec
            obs = obs if isinstance(obs, Observer) else UserObserver(obs, name)
        else:
            if name not in OBSERVERS:
                raise ValueError(
                    f"`observe` names a built-in observer {name!r} that does not exist; built-ins are "
                    f"{sorted(OBSERVERS)} (pass (function, schedule) for your own)"
                )
            obs, sched = OBSERVERS[name](), spec
        out.append((str(name), obs, _schedule(sched, total, name)))
    return out
