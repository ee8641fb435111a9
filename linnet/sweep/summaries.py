r"""Per-run summary columns: a registry of functions of a run's final :class:`linnet.train.Trajectory`.

A summary is ``f(ctx) -> array (B,)`` of plain floats (or ints), where ``ctx`` is a :class:`RunContext` holding
the trajectory of a chunk of ``B`` runs, the problem and the cell. Register one with :func:`register`; a spec
lists the ones it wants under ``summaries = [...]`` and each becomes a column of the table. Quantities recorded by
observers during training join the same way: a summary reads them from the trajectory.

On a Dask cluster the summary runs on the workers, so register it in a module that they import (as this one is).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import numpy as np

__all__ = ["RunContext", "SUMMARIES", "register"]


class RunContext(NamedTuple):
    """What a summary sees for one chunk of runs of one cell."""

    trajectory: Any  # linnet.train.Trajectory of the chunk (batch shape (B,))
    loss: Any  # the linnet loss of the problem
    loss_name: str  # "whitened" or "squared"
    target: np.ndarray  # Phi, (d_out, d_in)
    widths: tuple
    global_value: float  # closed-form L* for these widths
    cell: Any  # linnet.sweep.spec.Cell
    host: Any  # function: an array of the trajectory's namespace -> NumPy array


#: name -> function(RunContext) -> (B,) array
SUMMARIES: dict[str, Callable[[RunContext], np.ndarray]] = {}


def register(name: str):
    """Decorator adding ``f`` to :data:`SUMMARIES` under ``name`` (a table column of that name)."""

    def deco(f):
        if name in SUMMARIES:
            raise ValueError(f"`name` {name!r} is already a registered summary")
        SUMMARIES[name] = f
        return f

    return deco


@register("init_margin")
def init_margin(ctx: RunContext) -> np.ndarray:
    r"""Deficiency margin of the initial end-to-end matrix, :math:`\sigma_{\min}(\Phi) - \|W(0) - \Phi\|_F`.

    Read from the recorded initial loss of a whitened problem, :math:`\ell(0) = \tfrac12\|W(0)-\Phi\|_F^2`
    (THEOREMS.md §3, ACGH arXiv 1810.02281, definition CONFIRMED); NaN for other losses.
    """
    L0 = np.asarray(ctx.host(ctx.trajectory.loss)[0], dtype=np.float64)
    if ctx.loss_name != "whitened":
        return np.full(L0.shape, np.nan)
    smin = float(np.linalg.svd(ctx.target, compute_uv=False).min())
    return smin - np.sqrt(2.0 * L0)


@register("final_sigma_min")
def final_sigma_min(ctx: RunContext) -> np.ndarray:
    """Smallest singular value of the final end-to-end matrix."""
    import linnet as ln

    We = ctx.host(ln.end_to_end(ctx.trajectory.weights))
    return np.linalg.svd(We, compute_uv=False).min(axis=-1)
