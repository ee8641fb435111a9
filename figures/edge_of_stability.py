r"""Figure 19: progressive sharpening and the edge of stability on a depth-4 linear net.

Whitened regression :math:`\tfrac12\|W_4W_3W_2W_1 - \Phi\|_F^2`, :math:`\Phi = \operatorname{diag}(1, 1/2, 1/4)`, from the
unbalanced start :math:`W_1 = 2Q_1`, :math:`W_j = 0.1\,Q_j` (:math:`Q_j` random orthogonal, seeded), full-batch GD with
sharpness and loss recorded at every step by the observers (``observe={"sharpness": 1, "loss": 1}``).

The step sizes put :math:`2/\eta` between two sharpnesses from the theory: the flattest global minimum,
:math:`S_{\min} = N\sigma_1^{2-2/N} = 4` (THEOREMS.md §13, THEOREMS2.md §18), and the sharpness of the minimum gradient
flow heads to, at least the scalar GF-solution sharpness :math:`\phi_0 = 5.204` of the top mode (THEOREMS2.md §22,
:func:`linnet.theory.gfs_sharpness`; gradient flow conserves :math:`W_{j+1}^\top W_{j+1} - W_jW_j^\top
= (a_{j+1}^2 - a_j^2)I`, so the top mode is a scalar net with these imbalances; DERIVED, see demo 12). GD cannot follow
the flow: its sharpness rises to :math:`2/\eta` and hovers there (Cohen, Kaur, Li, Kolter & Talwalkar 2021, arXiv
2103.00065) while the iterate oscillates with period two. For a two-cycle :math:`x_a \leftrightarrow x_b`,
:math:`\nabla L(x_a) - \nabla L(x_b) = \tfrac2\eta(x_a - x_b)`, so :math:`2/\eta` is an eigenvalue of the Hessian averaged
over the segment, and the two-step mean of the sharpness is at least :math:`2/\eta - O(\|x_a - x_b\|^2)` (DERIVED). The
control with half the middle step size sits far below its own :math:`2/\eta'` and never oscillates.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

import linnet as ln
from linnet.backend import host_rng, to_numpy

from ._style import PALETTE, C, new_figure, save, style

NAME = "edge_of_stability"
ORDER = 190
TITLE = "Edge of stability: the sharpness rises to 2/η and hovers there while the loss falls"
SOURCE = "THEOREMS.md §13, part 2 (THEOREMS2.md) §18, §22; Cohen, Kaur, Li, Kolter & Talwalkar 2021"
CAPTION = (
    "For a depth-4 linear net started unbalanced, GD's sharpness rises from far below 2/η to 2/η and its "
    "two-step mean stays within [0.98, 1.3]·2/η while the loss falls by orders of magnitude, rising at every "
    "other step; with half the step size the sharpness stops at the gradient-flow solution's, far below 2/η', and "
    "the loss falls monotonically."
)

#: Band of the two-step mean of the sharpness, in units of 2/η, asserted from 10 steps after it first reaches
#: 0.95·2/η: lower edge from the two-cycle identity (derived, with 2% for the trapezoid error), upper edge measured
#: (the largest excursion, 1.23, is at the smallest step size; theory gives no upper bound).
BAND = (0.98, 1.3)


class EdgeOfStability(NamedTuple):
    s_min: float  # N sigma_1^(2-2/N), the flattest global minimum
    phi0: float  # GF-solution sharpness of the top mode (scalar formula)
    edges: np.ndarray  # (K+1,) 2/eta of each run; the last one is the control (half the middle step size)
    steps: np.ndarray  # (T+1,)
    sharpness: np.ndarray  # (T+1, K+1) top Hessian eigenvalue at each step
    loss: np.ndarray  # (T+1, K+1)


def data(*, fractions=(0.25, 0.5, 0.75), steps: int = 1500, seed: int = 0) -> EdgeOfStability:
    """Sharpness and loss along GD for ``2/η = S_min + f (φ0 − S_min)``, ``f`` in ``fractions``, plus the control
    with half the middle step size; all runs are one batch from the same start."""
    rng = host_rng(seed)
    N, d = 4, 3
    Phi = np.diag([1.0, 0.5, 0.25])
    scales = np.array([2.0, 0.1, 0.1, 0.1])
    Ws0 = [a * np.linalg.qr(rng.standard_normal((d, d)))[0] for a in scales]
    s_min = float(ln.theory.sharpness_balanced(Phi, N))
    phi0 = float(ln.theory.gfs_sharpness(scales, 1.0))
    edges = s_min + np.asarray(fractions, dtype=float) * (phi0 - s_min)
    edges = np.append(edges, 2.0 * edges[len(edges) // 2])  # control: eta/2 for the middle step size
    Ws = tuple(np.stack([W] * edges.size) for W in Ws0)
    run = ln.train.gd(
        ln.SquaredLoss.whitened(Phi), Ws, lr=2.0 / edges, steps=steps, observe={"sharpness": 1, "loss": 1}
    )
    return EdgeOfStability(
        s_min,
        phi0,
        edges,
        np.asarray(run.record_steps["sharpness"]),
        np.asarray(to_numpy(run.records["sharpness"])),
        np.asarray(to_numpy(run.records["loss"])),
    )


def two_step_mean(x: np.ndarray) -> np.ndarray:
    """Mean of consecutive entries along the first axis (the sharpness averaged over one period-2 oscillation)."""
    return 0.5 * (x[1:] + x[:-1])


def make(out_dir, *, seed: int = 0, formats=("png",)):
    """Draw and save the figure; returns the written paths."""
    d = data(seed=seed)
    K = d.edges.size - 1
    with style():
        fig, (ax, bx) = new_figure(2, width=8.8, height=3.5)
        for k in range(K):
            col = PALETTE[k]
            ax.plot(d.steps[:-1], two_step_mean(d.sharpness[:, k]), color=col, label=rf"$2/\eta = {d.edges[k]:.2f}$")
            ax.axhline(d.edges[k], color=col, linestyle="--", linewidth=0.9)
            bx.semilogy(d.steps, d.loss[:, k], color=col, linewidth=0.7, label=rf"$\eta = {2 / d.edges[k]:.3f}$")
        ax.plot(
            d.steps[:-1],
            two_step_mean(d.sharpness[:, K]),
            color=C["grey"],
            label=rf"control, $2/\eta' = {d.edges[K]:.2f}$",
        )
        bx.semilogy(d.steps, d.loss[:, K], color=C["grey"], label=rf"control $\eta' = {2 / d.edges[K]:.3f}$")
        ax.axhline(d.s_min, color=C["black"], linestyle=":", linewidth=1.0, label=r"$S_{\min}$ (flattest minimum)")
        ax.axhline(d.phi0, color=C["black"], linestyle="-.", linewidth=1.0, label=r"$\phi_0$ (gradient-flow solution)")
        ax.set_xscale("symlog", linthresh=10)
        ax.set_xlim(0, d.steps[-1])
        ax.set_ylim(0, 6.2)
        ax.set_xlabel("GD step")
        ax.set_ylabel(r"sharpness $\lambda_{\max}(\nabla^2L)$, two-step mean")
        ax.set_title(r"sharpness rises to $2/\eta$ (dashed) and stays there")
        ax.legend(loc="lower right", fontsize=6.5)
        bx.set_ylim(1e-12, 2.0)
        bx.set_xlabel("GD step")
        bx.set_ylabel("loss")
        bx.set_title("loss: falls overall, up at every other step")
        bx.legend(loc="upper right", fontsize=6.5)
        fig.suptitle("Edge of stability on a depth-4 linear net (Cohen et al. 2021)")
        return save(fig, out_dir, NAME, formats)
