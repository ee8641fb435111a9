r"""Figure 14: width-1 deep linear nets need exponentially many GD steps in the depth from Gaussian inits.

Shamir (arXiv 1809.08587, COLT 2019): for scalar layers and :math:`f(\prod_iw_i)`, GD from standard random inits needs
a number of iterations exponential in the depth :math:`k`; from a near-identity init depth costs nothing
(THEOREMS2 §19).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

import linnet as ln
from linnet.backend import host_rng

from ._style import C, new_figure, save, style

NAME = "width_one_depth"
ORDER = 150
TITLE = "Width-1 nets: GD steps grow exponentially with depth (Gaussian init), not from near identity"
SOURCE = "THEOREMS.md part 2 (THEOREMS2 §19); Shamir 2019"
CAPTION = (
    "Iterations of GD (best of η ∈ {1, 0.1, 0.01}) to reduce f(p) = ½(p−1)² by 100× for scalar nets of depth k: "
    "from Gaussian inits with p > 0 the median grows about exponentially in k; from a near-identity init it stays "
    "at a handful of steps for every depth."
)

ETAS = (1.0, 0.1, 0.01)


class WidthOneDepth(NamedTuple):
    depths: np.ndarray  # (K,)
    steps: np.ndarray  # (K, n) best steps per init (inf: every eta failed within the cap)
    median: np.ndarray  # (K,)
    slope: float  # least-squares slope of log(median) against k
    control_depths: np.ndarray  # (J,)
    control_median: np.ndarray  # (J,) near-identity init, eta = 0.5 / k
    cap: int


def _best_steps(W: np.ndarray, etas, cap: int) -> np.ndarray:
    n, k = W.shape
    e = len(etas)
    Wr = np.repeat(W, e, axis=0)
    lr = np.tile(np.asarray(etas, dtype=float), n)
    f0 = 0.5 * (np.prod(Wr, axis=-1) - 1.0) ** 2
    loss = ln.SquaredLoss.whitened(np.array([[1.0]]))
    run = ln.diagonal.gd(
        loss, tuple(Wr[:, j, None, None] for j in range(k)), lr=lr, steps=cap, ftol=1e-2 * f0, record_every=cap
    )
    s = np.where(np.asarray(run.status) == ln.diagonal.CONVERGED, np.asarray(run.steps, dtype=float), np.inf)
    return s.reshape(n, e).min(axis=1)


def data(*, depths=(2, 4, 6, 8, 10, 12), n_inits: int = 9, cap: int = 5000, seed: int = 0) -> WidthOneDepth:
    """Best-of-η step counts per Gaussian init (``p > 0``) and per depth; the near-identity control."""
    rng = host_rng(seed)
    steps = []
    for k in depths:
        W = []
        while len(W) < n_inits:
            w = rng.standard_normal(k)
            if np.prod(w) > 0:
                W.append(w)
        steps.append(_best_steps(np.array(W), ETAS, cap))
    steps = np.array(steps)
    med = np.median(steps, axis=1)
    ks = np.asarray(depths, dtype=float)
    slope = float(np.polyfit(ks, np.log(med), 1)[0]) if np.all(np.isfinite(med)) else float("nan")
    cdepths = np.array([2, 4, 8, 16, 32, 64])
    cmed = []
    for k in cdepths:
        W = 1 + 0.1 * rng.standard_normal((n_inits, k)) / np.sqrt(k) - 0.3 / k
        cmed.append(np.median(_best_steps(W, (0.5 / k,), cap)))
    return WidthOneDepth(ks, steps, med, slope, cdepths, np.array(cmed), cap)


def make(out_dir, *, seed: int = 0, formats=("png",)):
    """Draw and save the figure; returns the written paths."""
    d = data(seed=seed)
    with style():
        fig, (ax,) = new_figure(1, width=5.2, height=3.6)
        for i, k in enumerate(d.depths):
            s = d.steps[i]
            ax.semilogy(
                np.full(s.size, k) + np.linspace(-0.25, 0.25, s.size),
                np.where(np.isfinite(s), s, d.cap),
                ".",
                color=C["blue"],
                alpha=0.4,
            )
        ax.semilogy(
            d.depths, d.median, "o-", color=C["blue"], label=f"Gaussian init, median (slope {d.slope:.2f}/layer)"
        )
        ax.semilogy(
            d.control_depths, d.control_median, "s--", color=C["vermillion"], label=r"near-identity init, $\eta=0.5/k$"
        )
        ax.set_xscale("log", base=2)
        ax.set_xlabel("depth $k$ (width 1)")
        ax.set_ylabel("GD iterations to $f \\leq 10^{-2} f(0)$")
        ax.set_title("Shamir 2019: exponential in depth from random init (THEOREMS2 §19)")
        ax.legend(fontsize=7)
        return save(fig, out_dir, NAME, formats)
