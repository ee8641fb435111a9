r"""Figure 12: linear stability of GD selects flat minima (THEOREMS.md §13).

For :math:`L(w) = \tfrac12(\varphi - w_N\cdots w_1)^2` every global minimum has Hessian :math:`gg^\top`,
:math:`g_i = \prod_{j\ne i}w_j`, with sharpness :math:`\varphi^2\sum_i w_i^{-2} \ge S_{\min} = N\varphi^{2-2/N}`,
equality at the balanced minimum (AM–GM; Saxe et al. App. B; :func:`linnet.theory.sharpness_balanced`). GD with
step :math:`\eta` can only converge to a minimum of sharpness :math:`\le 2/\eta` (the map :math:`I - \eta H` must not
expand; Cohen et al. 2021, arXiv 2103.00065), so no minimum is stable once :math:`\eta > 2/S_{\min}`.

Left: GD from small (≤ 5%) perturbations of the balanced minimum converges for every start below :math:`2/S_{\min}`
and for none above. Right: from unbalanced random starts, the sharpness (top Hessian eigenvalue, from the dense
Hessian) of every minimum GD reaches lies between :math:`S_{\min}` and :math:`2/\eta`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

import linnet as ln
from linnet.backend import host_rng, to_numpy

from ._style import C, new_figure, save, style

NAME = "stability"
#: Place in the gallery (figures are discovered; this orders them).
ORDER = 120
TITLE = "Linear stability: GD converges only to minima of sharpness ≤ 2/η"
SOURCE = "THEOREMS.md §13; Cohen et al. 2021; Saxe et al. 2014 App. B"
CAPTION = (
    "For the scalar depth-3 net, GD started near the balanced (flattest) minimum converges for every step size "
    "below 2/S_min and for none above, and from unbalanced starts every minimum GD reaches has sharpness between "
    "S_min = Nφ^{2−2/N} and 2/η."
)

#: "Converged" means loss below this (THEOREMS.md §13).
CONVERGED_LOSS = 1e-20


class Stability(NamedTuple):
    phi: float
    depth: int
    s_min: float  # N phi^(2 - 2/N)
    ratios: np.ndarray  # (K,) eta / (2 / S_min), near-balanced starts
    converged_frac: np.ndarray  # (K,) fraction of near-balanced starts converged
    final_loss: np.ndarray  # (K, B) final losses of those runs
    etas: np.ndarray  # (E,) step sizes for the random starts
    sharpness: np.ndarray  # (E, B2) top Hessian eigenvalue at the end point (nan where not converged)
    sharpness_formula: np.ndarray  # (E, B2) phi^2 sum_i w_i^-2 at the end point (nan where not converged)


def _nets(w: np.ndarray) -> tuple:
    """Scalar layers from an array ``(..., N)``."""
    return tuple(w[..., i, None, None] for i in range(w.shape[-1]))


def data(
    *,
    phi: float = 2.0,
    depth: int = 3,
    ratios=(0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.01, 1.05, 1.1, 1.2, 1.3, 1.4, 1.5),
    n_starts: int = 20,
    steps: int = 4000,
    n_random: int = 24,
    random_steps: int = 3000,
    seed: int = 0,
) -> Stability:
    """Convergence against step size near the balanced minimum, and sharpness of minima reached from random starts."""
    rng = host_rng(seed)
    loss = ln.SquaredLoss.whitened(np.array([[phi]]))
    s_min = float(ln.theory.sharpness_balanced(np.array([[phi]]), depth))
    ratios = np.asarray(ratios, dtype=float)
    # near-balanced starts: each layer perturbed by at most 5%
    w0 = abs(phi) ** (1.0 / depth) * (1.0 + 0.05 * rng.uniform(-1.0, 1.0, (ratios.size, n_starts, depth)))
    run = ln.train.gd(
        loss, _nets(w0), lr=(ratios * 2.0 / s_min)[:, None], steps=steps, ftol=CONVERGED_LOSS, record_every=steps
    )
    final = to_numpy(run.loss)[-1]
    conv = (final <= CONVERGED_LOSS) & (to_numpy(run.status) != ln.train.DIVERGED)
    # unbalanced random starts (log-normal layers around the balanced value), step sizes up to 2/S_min
    etas = np.geomspace(0.05, 0.95, 9) * 2.0 / s_min
    w1 = abs(phi) ** (1.0 / depth) * np.exp(0.5 * rng.standard_normal((etas.size, n_random, depth)))
    run2 = ln.train.gd(
        loss, _nets(w1), lr=etas[:, None], steps=random_steps, ftol=CONVERGED_LOSS, record_every=random_steps
    )
    ok = to_numpy(run2.loss)[-1] <= CONVERGED_LOSS
    top = np.linalg.eigvalsh(to_numpy(ln.hessian(loss, run2.weights)))[..., -1]
    wf = np.stack([to_numpy(W)[..., 0, 0] for W in run2.weights], axis=-1)
    formula = to_numpy(ln.theory.sharpness_scalar_min(wf, phi))
    return Stability(
        phi,
        depth,
        s_min,
        ratios,
        conv.mean(axis=1),
        final,
        etas,
        np.where(ok, top, np.nan),
        np.where(ok, formula, np.nan),
    )


def make(out_dir, *, seed: int = 0, formats=("png",)):
    """Draw and save the figure; returns the written paths."""
    d = data(seed=seed)
    with style():
        fig, (ax, bx) = new_figure(2, width=8.4, height=3.4)
        ax.plot(d.ratios, d.converged_frac, "o-", color=C["blue"], label="fraction converged ($L<10^{-20}$)")
        ax.axvline(1.0, color=C["black"], linestyle="--", linewidth=1.0, label=r"$\eta = 2/S_{\min}$")
        ax.set_xlabel(r"step size $\eta\,/\,(2/S_{\min})$")
        ax.set_ylabel("fraction of starts converged")
        ax.set_ylim(-0.05, 1.05)
        ax.set_title(rf"near-balanced starts, $N={d.depth}$, $\varphi={d.phi:g}$, $S_{{\min}}={d.s_min:.4f}$")
        ax.legend(loc="center left")
        eta_line = np.geomspace(d.etas[0] * 0.8, 2.0 / d.s_min * 1.1, 100)
        bx.loglog(
            eta_line, 2.0 / eta_line, color=C["black"], linestyle="--", linewidth=1.0, label=r"stability limit $2/\eta$"
        )
        bx.axhline(d.s_min, color=C["green"], linewidth=1.2, label=r"$S_{\min} = N\varphi^{2-2/N}$ (balanced)")
        for k, eta in enumerate(d.etas):
            y = d.sharpness[k][np.isfinite(d.sharpness[k])]
            bx.plot(
                np.full(y.size, eta),
                y,
                "o",
                color=C["vermillion"],
                markersize=3.5,
                alpha=0.6,
                markerfacecolor="none",
                label="minima reached from random starts" if k == 0 else None,
            )
        bx.axvline(2.0 / d.s_min, color=C["grey"], linestyle=":", linewidth=1.0)
        bx.set_xlabel(r"step size $\eta$")
        bx.set_ylabel(r"sharpness $\lambda_{\max}(\nabla^2 L)$ at the end point")
        bx.set_title("GD only reaches minima with sharpness $\\leq 2/\\eta$")
        bx.legend(loc="upper right", fontsize=6.5)
        fig.suptitle("Linear stability of gradient descent (THEOREMS §13)")
        return save(fig, out_dir, NAME, formats)
