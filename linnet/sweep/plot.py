"""Phase diagram of a sweep summary: a value (default ``frac_global``) over two axes, one panel per init."""

from __future__ import annotations

import numpy as np

__all__ = ["phase_diagram"]


def phase_diagram(summary, *, x="scale", y="depth", value="frac_global", path=None):
    """Draw ``value`` on the ``(x, y)`` grid, one panel per init (other axes averaged); save to ``path`` if given.

    Returns the Matplotlib figure (Agg, object API).
    """
    from matplotlib.figure import Figure

    for c in (x, y, value):
        if c not in summary.columns:
            raise ValueError(f"`{c}` must be a column of the summary ({', '.join(summary.columns)})")
    inits = sorted(summary["init"].unique())
    fig = Figure(figsize=(3.6 * len(inits), 3.0), layout="constrained")
    axes = fig.subplots(1, len(inits), squeeze=False)[0]
    for ax, init in zip(axes, inits):
        s = summary[summary["init"] == init]
        piv = s.pivot_table(index=y, columns=x, values=value, aggfunc="mean")
        im = ax.imshow(
            piv.to_numpy(), origin="lower", aspect="auto", vmin=0.0, vmax=1.0 if value.startswith("frac") else None
        )
        ax.set_xticks(np.arange(piv.shape[1]), [f"{v:.3g}" for v in piv.columns], rotation=45)
        ax.set_yticks(np.arange(piv.shape[0]), [str(v) for v in piv.index])
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        ax.set_title(f"{value}, init = {init}")
        fig.colorbar(im, ax=ax)
    if path is not None:
        fig.savefig(path, metadata={"Software": None})
    return fig
