r"""Figure 3: balancedness is conserved by gradient flow and drifts under gradient descent at order :math:`\eta`.

With :math:`D_j = W_{j+1}^\top W_{j+1} - W_jW_j^\top` and :math:`\delta = \max_j\|D_j\|_F`, gradient flow keeps every
:math:`D_j` constant (Du, Hu & Lee 2018, arXiv 1806.00900; ACGH, arXiv 1810.02281), while one GD step changes it by
exactly :math:`\eta^2(G_{j+1}^\top G_{j+1} - G_jG_j^\top)`, so over a fixed time :math:`t = \eta k` the drift is
:math:`O(\eta t)`: slope 1 on log–log axes (THEOREMS.md §2, checks 2–3).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from matplotlib.ticker import NullFormatter

import linnet as ln
from linnet.backend import host_rng, to_numpy

from ._style import PALETTE, C, floored, new_figure, on_log_grid, save, style

NAME = "balancedness"
#: Place in the gallery (figures are discovered; this orders them).
ORDER = 30
TITLE = "Balancedness: conserved by gradient flow, O(η) drift under GD"
SOURCE = "THEOREMS.md §2; Du, Hu & Lee 2018; ACGH 2018"
CAPTION = (
    "From an exactly balanced init, gradient flow keeps δ = max_j ‖W_{j+1}ᵀW_{j+1} − W_jW_jᵀ‖_F within its "
    "integration tolerance (it is conserved) while GD drifts; the drift accumulated over a fixed time grows linearly "
    "in the step size η (fitted log–log slope ≈ 1), as the exact per-step η² law predicts."
)

#: Relative tolerance of the gradient-flow integration. It bounds what the flow's delta(t) can show: delta along the
#: computed flow is integration error (~6e-12 here, its digits depending on the BLAS kernel), so the figure draws
#: every delta below this tolerance (times the layers' O(1) scale) at it, the "conserved" floor.
FLOW_RTOL = 1e-10


class Balancedness(NamedTuple):
    widths: tuple
    T: float  # time horizon t = eta * k
    t_flow: np.ndarray  # (n_rec,) gradient-flow record times
    delta_flow: np.ndarray  # (n_rec,) delta(t) along gradient flow
    etas: np.ndarray  # (E,) GD step sizes
    t_gd: list  # per eta: (n_rec,) times eta * k
    delta_gd: list  # per eta: (n_rec,) delta along GD
    drift: np.ndarray  # (E,) delta(T) - delta(0) for GD
    slope: float  # fitted slope of log drift vs log eta
    intercept: float
    loss_T: np.ndarray  # (E,) loss at time T (the runs do learn)


def data(
    *, widths=(3, 4, 4, 2), T: float = 4.0, etas=(0.0025, 0.005, 0.01, 0.02, 0.04), n_rec: int = 41, seed: int = 0
) -> Balancedness:
    """Balancedness along gradient flow and GD runs of the same time horizon ``T``."""
    rng = host_rng(seed)
    d0, dN = widths[0], widths[-1]
    Phi = rng.standard_normal((dN, d0))
    loss = ln.SquaredLoss.whitened(Phi)
    Ws = ln.init.balanced(0.3 * rng.standard_normal((dN, d0)), widths)
    times = np.linspace(0.0, T, n_rec)
    flow = ln.train.gradient_flow(loss, Ws, t_final=T, times=times, rtol=FLOW_RTOL, atol=1e-12, keep_history=True)
    delta_flow = to_numpy(ln.theory.balancedness(flow.history))
    etas = np.asarray(etas, dtype=float)
    t_gd, delta_gd, drift, loss_T = [], [], [], []
    for eta in etas:
        steps = int(round(T / eta))
        run = ln.train.gd(
            loss, Ws, lr=float(eta), steps=steps, record_every=max(1, steps // (n_rec - 1)), keep_history=True
        )
        dl = to_numpy(ln.theory.balancedness(run.history))
        t_gd.append(to_numpy(run.steps) * eta)
        delta_gd.append(dl)
        drift.append(dl[-1] - dl[0])
        loss_T.append(float(to_numpy(run.loss)[-1]))
    drift = np.asarray(drift)
    slope, intercept = np.polyfit(np.log(etas), np.log(drift), 1)
    return Balancedness(
        tuple(widths),
        T,
        times,
        delta_flow,
        etas,
        t_gd,
        delta_gd,
        drift,
        float(slope),
        float(intercept),
        np.asarray(loss_T),
    )


def make(out_dir, *, seed: int = 0, formats=("png",)):
    """Draw and save the figure; returns the written paths."""
    d = data(seed=seed)
    with style():
        fig, (ax, bx) = new_figure(2, width=8.4, height=3.4)
        # Floor: gradient flow's delta is integration error (<= 6e-12, digits kernel-dependent) and GD's delta(0) is
        # round-off (2e-16, the balanced init); drawn at the integration tolerance times the layers' O(1) scale, so
        # the image does not depend on the BLAS kernel. GD's delta is above 1e-5 from its first record on.
        floor = FLOW_RTOL
        ax.axhline(floor, color=C["grey"], linestyle=":", linewidth=1.0, label=f"floor: GF tolerance {floor:.0e}")
        for i, eta in enumerate(d.etas):
            ax.semilogy(d.t_gd[i], floored(d.delta_gd[i], floor), color=PALETTE[i], label=rf"GD $\eta={eta:g}$")
        ax.semilogy(d.t_flow, floored(d.delta_flow, floor), color=C["black"], linewidth=2.0, label="gradient flow")
        ax.set_ylim(floor / 3, None)
        ax.set_xlabel(r"time $t = \eta k$")
        ax.set_ylabel(r"$\delta(t) = \max_j \|W_{j+1}^\top W_{j+1} - W_j W_j^\top\|_F$")
        ax.set_title(f"balanced init, widths {'-'.join(map(str, d.widths))}")
        ax.legend(loc="center right", fontsize=6.5)
        # the drifts and the fitted line on a 1e-4-decade grid (on_log_grid), the line through its end points only (through
        # collinear vertices Agg's joins would follow the sign of round-off)
        drift = on_log_grid(d.drift)
        bx.loglog(d.etas, drift, "o", color=C["vermillion"], markersize=6, label=r"GD drift $\delta(T)-\delta(0)$")
        ends = d.etas[[0, -1]]
        fit = on_log_grid(np.exp(d.intercept) * ends**d.slope)
        bx.loglog(
            ends, fit, color=C["black"], linestyle="--", linewidth=1.0, label=f"fit: slope {d.slope:.3f} (theory 1)"
        )
        bx.xaxis.set_minor_formatter(NullFormatter())
        bx.set_xticks(d.etas, [f"{e:g}" for e in d.etas])
        bx.set_xlabel(r"step size $\eta$")
        bx.set_ylabel(rf"drift at $T = {d.T:g}$")
        bx.set_title(r"drift over a fixed time is $O(\eta)$")
        bx.legend(loc="upper left")
        fig.suptitle("Balancedness: a gradient-flow invariant, broken at order $\\eta$ by GD (THEOREMS §2)")
        return save(fig, out_dir, NAME, formats)
