r"""Figure 13: a sweep's phase diagram: how often GD reaches the global minimum, by init scale and depth.

A :mod:`linnet.sweep` over depth :math:`N`, init scale :math:`s` and two initializations (i.i.d. Gaussian layers
:math:`\mathcal N(0, s^2)`; ACGH's balanced init of an end-to-end draw :math:`A \sim \mathcal N(0, s^2 I)`) for the
whitened scalar-output problem :math:`\ell(W) = \tfrac12\|W - \phi\|^2`, :math:`\phi \in \mathbb R^{1\times d_0}`.
Overlaid: the probability that the balanced init has a positive deficiency margin,
:math:`\Pr[\|A-\phi\| < \|\phi\|] = F_{\chi'^2_{d_0}(\lambda)}(\lambda)`, :math:`\lambda = \|\phi\|^2/s^2`
(THEOREMS.md §3, DERIVED+VERIFIED; ACGH, arXiv 1810.02281, Theorem 1 makes a positive margin plus balancedness
sufficient for convergence at small enough steps). The step size here is far above Theorem 1's, so that runs with a
margin all converging is an observation, and the margin probability is a lower bound on the balanced init's
success only in that empirical sense: runs without a margin may still converge (the end-to-end direction can rotate
towards :math:`\phi`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

import linnet as ln

from ._style import PALETTE, C, new_figure, save, style

NAME = "sweep_phase"
ORDER = 130
TITLE = "Sweep: fraction reaching the global minimum vs init scale and depth"
SOURCE = "THEOREMS.md §3; Arora, Cohen, Golowich & Hu 2018 (deficiency margin); linnet.sweep"
CAPTION = (
    "Fraction of GD runs reaching the global minimum and their median steps against the init scale, by depth, "
    "for Gaussian and balanced inits, with the balanced init's probability of a positive deficiency margin."
)

INITS = ("gaussian", "balanced")


class SweepPhase(NamedTuple):
    scales: np.ndarray  # (S,)
    depths: np.ndarray  # (D,)
    runs: int
    phi_norm: float
    frac_global: np.ndarray  # (2, D, S), init x depth x scale
    median_steps: np.ndarray  # (2, D, S), NaN where no run converged
    frac_margin: np.ndarray  # (D, S) measured fraction of balanced inits with a positive margin
    margin_pred: np.ndarray  # (S,) ln.theory.margin_probability
    frac_global_with_margin: np.ndarray  # (D, S) among balanced runs with a margin, the fraction that converged


def spec(*, seed: int = 0, runs: int = 48, steps: int = 1500, scales=(0.1, 0.3, 1.0, 2.0, 4.0), depths=(2, 3, 4)):
    """The sweep spec of the figure (a plain dict; ``python -m linnet.sweep`` runs the same from TOML)."""
    return {
        "seed": seed,
        "runs": runs,
        "summaries": ["init_margin"],
        "problem": {"loss": "whitened", "d_in": 4, "d_out": 1},
        "grid": {"depth": list(depths), "width": [4], "init": list(INITS), "scale": list(scales), "lr": [0.02]},
        "train": {"steps": steps, "tol": 1e-6},
    }


def data(*, seed: int = 0, runs: int = 48, steps: int = 1500, scales=(0.1, 0.3, 1.0, 2.0, 4.0), depths=(2, 3, 4)):
    """Run the sweep in-process and reduce its table to the plotted arrays."""
    import linnet.sweep as sw

    sp = spec(seed=seed, runs=runs, steps=steps, scales=scales, depths=depths)
    table = sw.run(sp, progress=False).table
    summ = sw.summarize(table)
    _, Phi = sw.runner.make_problem(sw.load_spec(sp).problem, seed)
    phi_norm = float(np.linalg.norm(Phi))
    S, D = len(scales), len(depths)
    frac = np.empty((2, D, S))
    med = np.empty((2, D, S))
    fm = np.empty((D, S))
    fgm = np.full((D, S), np.nan)
    for a, init in enumerate(INITS):
        for i, N in enumerate(depths):
            for k, s in enumerate(scales):
                r = summ[(summ["init"] == init) & (summ["depth"] == N) & (summ["scale"] == s)].iloc[0]
                frac[a, i, k], med[a, i, k] = r["frac_global"], r["median_steps"]
                if init == "balanced":
                    g = table[(table["cell"] == r["cell"])]
                    has = g["init_margin"].to_numpy() > 0
                    fm[i, k] = has.mean()
                    if has.any():
                        fgm[i, k] = (g["status"].to_numpy()[has] == "converged").mean()
    pred = np.asarray(ln.theory.margin_probability(phi_norm, np.asarray(scales, dtype=float), 4))
    return SweepPhase(np.asarray(scales, float), np.asarray(depths), runs, phi_norm, frac, med, fm, pred, fgm)


def make(out_dir, *, seed: int = 0, formats=("png",)):
    """Draw and save the figure; returns the written paths."""
    d = data(seed=seed)
    with style():
        fig, (ax, bx) = new_figure(2, width=9.0, height=3.5)
        for i, N in enumerate(d.depths):
            for a, (init, ls) in enumerate(zip(INITS, ("--", "-"))):
                kw = dict(color=PALETTE[i], linestyle=ls, marker="o", markersize=3)
                ax.semilogx(d.scales, d.frac_global[a, i], label=f"{init}, $N={N}$", **kw)
                bx.loglog(d.scales, d.median_steps[a, i], **kw)
        ax.semilogx(d.scales, d.margin_pred, color=C["black"], linestyle=":", linewidth=1.5,
                    label=r"$\Pr[\mathrm{margin}>0]$ (§3)")  # fmt: skip
        ax.semilogx(d.scales, d.frac_margin.mean(axis=0), color=C["black"], linestyle="none", marker="x",
                    label="balanced inits with margin > 0 (measured)")  # fmt: skip
        ax.set_xlabel("init scale $s$")
        ax.set_ylabel("fraction reaching the global minimum")
        ax.set_ylim(-0.03, 1.03)
        ax.set_title(rf"$d_0=4$, $d_N=1$, $\|\phi\|={d.phi_norm:.2f}$, {d.runs} runs per cell")
        ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(0.0, 0.9), ncols=2)  # the free band below 1
        bx.set_xlabel("init scale $s$")
        bx.set_ylabel("median GD steps to the minimum")
        bx.set_title("median steps (converged runs)")
        return save(fig, out_dir, NAME, formats)
