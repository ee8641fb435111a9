"""Figures of linnet: each one shows one result of THEOREMS.md, computed with the engine alone.

Every figure is a module with

- ``data(..., seed=0)``: a pure function returning the plotted arrays (a NamedTuple of NumPy arrays and
  scalars), computed with :mod:`linnet` calls only; the tests check these arrays against the theory;
- ``make(out_dir, *, seed=0, formats=("png",))``: draws the data with Matplotlib's object API (Agg) and saves
  ``out_dir/<name>.<fmt>`` with run-dependent metadata stripped, so a rerun gives identical bytes;
- ``NAME``, ``TITLE``, ``SOURCE`` (the THEOREMS.md section and the paper) and ``CAPTION`` (one sentence).

Regenerate them with ``python -m figures [--out DIR] [--format png,pdf] [names...]``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["NAMES", "get", "all_figures"]

#: Figure names in gallery order; each is a module ``figures.<name>``.
NAMES = (
    "saxe_curves",
    "saxe_depth",
    "balancedness",
    "deficiency_margin",
    "acceleration",
    "scalar_landscape",
    "baldi_hornik",
    "hessian_spectra",
    "hardt_ma",
    "bartlett",
    "poggio_cooper",
    "stability",
    "sweep_phase",
    "implicit_regularizer",
    "width_one_depth",
    "svd_dynamics",
    "completion_depth",
    "separable_alignment",
)


def get(name: str) -> ModuleType:
    """The module of figure ``name`` (one of :data:`NAMES`)."""
    if name not in NAMES:
        raise ValueError(f"`name` must be one of {', '.join(NAMES)}; got {name!r}")
    return importlib.import_module(f"{__name__}.{name}")


def all_figures() -> list[ModuleType]:
    """Every figure module, in gallery order."""
    return [get(n) for n in NAMES]
