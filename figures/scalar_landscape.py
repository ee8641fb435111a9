r"""Figure 6: the landscape of the scalar deep linear net :math:`L(w) = \tfrac12(\varphi - w_N\cdots w_1)^2`.

Left: depth 2. Contours of :math:`L(w_1, w_2)`, the hyperbola of global minima :math:`w_1w_2 = \varphi`, the saddle at
the origin (Hessian eigenvalues :math:`\pm\varphi`) and gradient-descent paths, which keep
:math:`w_1^2 - w_2^2` (nearly) constant (THEOREMS.md §2, §5, §12).

Right: along the aligned path :math:`w_i = t`, :math:`L(0) - L(t) = \varphi t^N - t^{2N}/2`, so the loss leaves the
origin at order :math:`t^N`: quadratically at depth 2 (a strict saddle), cubically at depth 3, where
:math:`\nabla^2 L(0) = 0` (THEOREMS.md §5 (d); FODL Lecture 3, Prop 3; Kawaguchi 2016, arXiv 1605.07110).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

import linnet as ln
from linnet.backend import host_rng, to_numpy

from ._style import PALETTE, C, new_figure, save, style

NAME = "scalar_landscape"
#: Place in the gallery (figures are discovered; this orders them).
ORDER = 60
TITLE = "The scalar landscape: hyperbola of minima, saddle at the origin"
SOURCE = "THEOREMS.md §5, §12; Kawaguchi 2016; FODL Lecture 3 Prop 3"
CAPTION = (
    "Contours of ½(φ − w₁w₂)² with the hyperbola of global minima, the strict saddle at the origin and GD paths "
    "(left); along the aligned path w_i = t the loss leaves the origin as t^N, flat to third order at depth 3 "
    "(right)."
)


class ScalarLandscape(NamedTuple):
    phi: float
    grid: np.ndarray  # (G,) coordinates of the contour grid (both axes)
    L_grid: np.ndarray  # (G, G) loss, L_grid[i, j] = L(w1 = grid[j], w2 = grid[i])
    paths: np.ndarray  # (n_rec, n_paths + 1, 2) GD iterates (w1, w2); the last starts on w1 = -w2
    lr: float
    t: np.ndarray  # (T,) aligned-path parameter
    drop: dict  # depth -> (T,) L(0) - L(t, ..., t)
    slope: dict  # depth -> fitted slope of log drop vs log t
    hess0: dict  # depth -> sorted Hessian eigenvalues at the origin


def _scalar_nets(cols, xp=None):
    """A batch of scalar nets from a list of equally long coordinate arrays (one per layer)."""
    return tuple(np.asarray(c, dtype=float)[..., None, None] for c in cols)


def data(
    *,
    phi: float = 1.5,
    grid_size: int = 161,
    extent: float = 2.5,
    n_paths: int = 6,
    steps: int = 400,
    lr: float = 0.04,
    depths=(2, 3),
    seed: int = 0,
) -> ScalarLandscape:
    """Contours, GD paths and aligned-path losses; ``grid_size`` and ``steps`` set the cost."""
    loss = ln.SquaredLoss.whitened(np.array([[phi]]))
    grid = np.linspace(-extent, extent, grid_size)
    w1, w2 = np.meshgrid(grid, grid)
    L_grid = to_numpy(ln.loss(loss, _scalar_nets([w1, w2])))
    # GD from random points far out and near the saddle, plus one on the saddle's stable manifold w1 = -w2
    rng = host_rng(seed)
    ang = rng.uniform(0.0, 2 * np.pi, n_paths)
    rad = np.where(np.arange(n_paths) % 3 == 2, 0.3, 2.3)
    x0 = np.append(rad * np.cos(ang), 1.7)
    y0 = np.append(rad * np.sin(ang), -1.7)
    starts = _scalar_nets([x0, y0])
    run = ln.train.gd(loss, starts, lr=lr, steps=steps, keep_history=True)
    h1, h2 = (to_numpy(h)[..., 0, 0] for h in run.history)
    paths = np.stack([h1, h2], axis=-1)
    # aligned path w_i = t at each depth; Hessian at the origin
    t = np.geomspace(1e-3, 0.3, 40)
    drop, slope, hess0 = {}, {}, {}
    L0 = 0.5 * phi**2
    for N in depths:
        Lt = to_numpy(ln.loss(loss, _scalar_nets([t] * N)))
        drop[N] = L0 - Lt
        slope[N] = float(np.polyfit(np.log(t), np.log(drop[N]), 1)[0])
        hess0[N] = np.linalg.eigvalsh(to_numpy(ln.hessian(loss, _scalar_nets([np.zeros(())] * N))))
    return ScalarLandscape(phi, grid, L_grid, paths, lr, t, drop, slope, hess0)


def make(out_dir, *, seed: int = 0, formats=("png",)):
    """Draw and save the figure; returns the written paths."""
    d = data(seed=seed)
    with style():
        fig, (ax, bx) = new_figure(2, width=8.4, height=3.6)
        levels = np.array([0.0, 0.05, 0.15, 0.3, 0.6, 1.0, 1.6, 2.5, 4.0, 6.0, 9.0, 14.0, 21.0, 30.0])
        cs = ax.contourf(d.grid, d.grid, d.L_grid, levels=levels, cmap="cividis_r", extend="max")
        ax.contour(d.grid, d.grid, d.L_grid, levels=levels[1:], colors="white", linewidths=0.3)
        fig.colorbar(cs, ax=ax, label=r"$L(w_1, w_2)$", ticks=[0, 1, 4, 9, 21])
        pos = d.grid[d.grid > 0]
        branch = d.phi / pos
        keep = branch <= d.grid[-1]
        ax.plot(pos[keep], branch[keep], color=C["black"], linewidth=1.8, label=r"minima $w_1w_2=\varphi$")
        ax.plot(-pos[keep], -branch[keep], color=C["black"], linewidth=1.8)
        for k in range(d.paths.shape[1]):
            last = k == d.paths.shape[1] - 1
            color = C["blue"] if last else C["vermillion"]
            label = "GD on $w_1=-w_2$: to the saddle" if last else ("GD paths" if k == 0 else None)
            ax.plot(d.paths[:, k, 0], d.paths[:, k, 1], color=color, linewidth=1.2, label=label)
            ax.plot(d.paths[0, k, 0], d.paths[0, k, 1], "o", color=color, markersize=3.5)
        ax.plot(
            [0],
            [0],
            marker="X",
            color=C["yellow"],
            markeredgecolor=C["black"],
            markersize=8,
            linestyle="none",
            label=r"saddle, $\lambda(\nabla^2L)=\pm\varphi$",
        )
        ax.set_xlim(d.grid[0], d.grid[-1])
        ax.set_ylim(d.grid[0], d.grid[-1])
        ax.set_aspect("equal")
        ax.set_xlabel(r"$w_1$")
        ax.set_ylabel(r"$w_2$")
        ax.set_title(rf"depth 2: $\frac{{1}}{{2}}(\varphi - w_2 w_1)^2$, $\varphi={d.phi}$, GD $\eta={d.lr}$")
        ax.legend(loc="upper left", fontsize=6.5)
        ax.grid(False)
        for i, N in enumerate(sorted(d.drop)):
            color = PALETTE[i]
            bx.loglog(
                d.t,
                d.drop[N],
                color=color,
                linewidth=2.0,
                label=rf"depth {N}: slope {d.slope[N]:.3f}, $\max|\nabla^2L(0)|$={np.max(np.abs(d.hess0[N])):.3g}",
            )
            bx.loglog(
                d.t,
                d.phi * d.t**N,
                color=C["black"],
                linestyle=":",
                linewidth=1.0,
                label=r"$\varphi t^N$" if i == 0 else None,
            )
        bx.set_xlabel(r"$t$ (all layers $w_i = t$)")
        bx.set_ylabel(r"$L(0) - L(t,\dots,t)$")
        bx.set_title("leaving the origin: order $t^N$")
        bx.legend(loc="lower right", fontsize=6.5)
        fig.suptitle("The scalar landscape (THEOREMS §5, §12)")
        return save(fig, out_dir, NAME, formats)
