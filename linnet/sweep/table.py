"""Per-cell summary of a sweep table: fractions by status, quantiles of the gap, median steps to the optimum."""

from __future__ import annotations

import numpy as np

__all__ = ["summarize", "CONFIG"]

#: The configuration columns that identify a cell.
CONFIG = ("cell", "depth", "width", "init", "scale", "lr")


def summarize(table, quantiles=(0.1, 0.5, 0.9)):
    """One row per cell.

    Columns: the configuration, ``n`` (runs), ``frac_global`` (runs that reached the closed-form optimum within
    ``train.tol``, i.e. status ``converged``), ``frac_diverged``, ``median_steps`` (over the runs that reached
    it; NaN if none) and ``gap_q<p>`` quantiles of the final gap :math:`L - L^\\star`.
    """
    import pandas as pd

    rows = []
    for key, g in table.groupby(list(CONFIG), sort=True):
        r = dict(zip(CONFIG, key))
        reached = g["status"].to_numpy() == "converged"
        r["n"] = len(g)
        r["frac_global"] = float(reached.mean())
        r["frac_diverged"] = float((g["status"].to_numpy() == "diverged").mean())
        r["median_steps"] = float(np.median(g["steps"].to_numpy()[reached])) if reached.any() else float("nan")
        for q in quantiles:
            r[f"gap_q{int(round(100 * q)):02d}"] = float(np.quantile(g["gap"].to_numpy(), q))
        rows.append(r)
    return pd.DataFrame(rows).sort_values("cell", kind="stable").reset_index(drop=True)
