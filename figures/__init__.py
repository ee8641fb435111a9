"""Figures of linnet: each one shows one result of THEOREMS.md, computed with the engine alone.

Every figure is a module with

- ``data(..., seed=0)``: a pure function returning the plotted arrays (a NamedTuple of NumPy arrays and
  scalars), computed with :mod:`linnet` calls only; the tests check these arrays against the theory;
- ``make(out_dir, *, seed=0, formats=("png",))``: draws the data with Matplotlib's object API (Agg) and saves
  ``out_dir/<name>.<fmt>`` with run-dependent metadata stripped, so a rerun gives identical bytes;
- ``NAME``, ``ORDER`` (its place in the gallery), ``TITLE``, ``SOURCE`` (the THEOREMS.md section and the paper) and ``CAPTION`` (one sentence).

Regenerate them with ``python -m figures [--out DIR] [--format png,pdf] [names...]``.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from types import ModuleType

__all__ = ["NAMES", "get", "all_figures", "discover"]


@functools.lru_cache(maxsize=None)
def discover() -> tuple:
    """Names of the figure modules of this package (every module not starting with ``_``), in gallery order: by
    their ``ORDER`` attribute, then by name. A new figure is one new module; nothing is listed by hand."""
    mods = [m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")]
    keyed = [(getattr(importlib.import_module(f"{__name__}.{n}"), "ORDER", 10**6), n) for n in mods]
    return tuple(n for _, n in sorted(keyed))


def __getattr__(name: str):
    if name == "NAMES":  # figure names in gallery order, discovered on first use
        return discover()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def get(name: str) -> ModuleType:
    """The module of figure ``name`` (one of :data:`NAMES`)."""
    names = discover()
    if name not in names:
        raise ValueError(f"`name` must be one of {', '.join(names)}; got {name!r}")
    return importlib.import_module(f"{__name__}.{name}")


def all_figures() -> list[ModuleType]:
    """Every figure module, in gallery order."""
    return [get(n) for n in discover()]
