r"""Figure 2: learning time against depth for decoupled balanced initializations (Saxe et al. eqs. 15–17).

A balanced depth-:math:`D` mode obeys :math:`\dot u = D\,u^{2-2/D}(s - u)` (eq. 15, :math:`D` weight matrices,
:math:`\tau = 1`), so the time :math:`t_D` to go from :math:`u_0` to :math:`u_f` falls like :math:`1/D`; with a step
size scaled as :math:`1/D` (Saxe's optimal learning rate is :math:`O(1/(N_l s^2))`) the number of iterations is
:math:`\propto D\,t_D`, which grows with depth but saturates at the infinite-depth value of eq. 17,
:math:`\frac1{s^2}\log\frac{u_f(u_0 - s)}{u_0(u_f - s)} + \frac1{su_0} - \frac1{su_f}`. Simulated: gradient flow of
matrix networks (hidden frames random) from Saxe's decoupled init; predicted: eq. 15 integrated exactly
(THEOREMS.md §10; Saxe, McClelland & Ganguli, arXiv 1312.6120, eqs. 15–17, Fig. 4).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

import linnet as ln
from linnet.backend import host_rng, to_numpy

from ._style import PALETTE, C, new_figure, save, style

NAME = "saxe_depth"
#: Place in the gallery (figures are discovered; this orders them).
ORDER = 20
TITLE = "Learning time against depth: eq. 15 simulated and predicted, eq. 17 limit"
SOURCE = "THEOREMS.md §10; Saxe, McClelland & Ganguli 2014, eqs. 15-17"
CAPTION = (
    "Depth-scaled learning time D·t_D of each mode from a decoupled balanced init: gradient flow of matrix nets "
    "matches Saxe's eq. 15, and the curve saturates at the infinite-depth limit of eq. 17, so learning time "
    "in iterations at the optimal step size stays finite as depth grows."
)


class SaxeDepth(NamedTuple):
    depths: np.ndarray  # (K,)
    s: np.ndarray  # (r,) mode strengths of the target
    u0: float
    uf_frac: float  # u_f = uf_frac * s
    t_sim: np.ndarray  # (K, r) simulated learning times
    t_pred: np.ndarray  # (K, r) eq. 15 (exact quadrature)
    t_limit: np.ndarray  # (r,) D * t in the limit of infinite depth (eq. 17 with N_l = 1)
    t_two: np.ndarray  # (r,) eq. 11 (D = 2)


def _first_crossing(t, u, level):
    """First time each column of ``u`` (T, r) reaches ``level`` (r,), by linear interpolation (nan if never)."""
    out = np.full(u.shape[1], np.nan)
    for a in range(u.shape[1]):
        idx = np.nonzero(u[:, a] >= level[a])[0]
        if idx.size and idx[0] > 0:
            k = idx[0]
            out[a] = t[k - 1] + (level[a] - u[k - 1, a]) / (u[k, a] - u[k - 1, a]) * (t[k] - t[k - 1])
    return out


def data(
    *,
    depths=(2, 3, 4, 6, 8, 12, 16, 32),
    s=(1.0, 0.6),
    u0: float = 0.05,
    uf_frac: float = 0.9,
    width: int = 3,
    n_times: int = 21,
    seed: int = 0,
) -> SaxeDepth:
    """Learning times of each mode against depth: simulated (gradient flow) and predicted (eq. 15, eq. 17)."""
    rng = host_rng(seed)
    s = np.asarray(s, dtype=float)
    r = s.size
    U, _ = np.linalg.qr(rng.standard_normal((r, r)))
    V, _ = np.linalg.qr(rng.standard_normal((r, r)))
    loss = ln.SquaredLoss.whitened((U * s) @ V.T)
    uf = uf_frac * s
    t_sim, t_pred = [], []
    for D in depths:
        widths = (r,) + (width,) * (D - 1) + (r,)
        Ws = ln.init.decoupled(U, V, np.full(r, u0), widths, seed=rng)
        pred = to_numpy(ln.theory.saxe_deep_time(s, u0, uf, D))
        # record densely only around the predicted crossings (+-10%); a crossing outside would give nan
        window = np.linspace(0.9, 1.1, n_times)
        times = np.unique(np.concatenate([[0.0], np.outer(pred, window).ravel()]))
        t_final = float(times[-1])
        run = ln.train.gradient_flow(loss, Ws, t_final=t_final, times=times, rtol=1e-10, atol=1e-13, keep_history=True)
        u = np.diagonal(U.T @ to_numpy(ln.end_to_end(run.history)) @ V, axis1=-2, axis2=-1)  # (T, r)
        t_sim.append(_first_crossing(times, u, uf))
        t_pred.append(pred)
    t_limit = to_numpy(ln.theory.saxe_time_deep_limit(s, u0, uf, 1))
    t_two = to_numpy(ln.theory.saxe_time(s, u0, uf))
    return SaxeDepth(np.asarray(depths), s, u0, uf_frac, np.asarray(t_sim), np.asarray(t_pred), t_limit, t_two)


def make(out_dir, *, seed: int = 0, formats=("png",)):
    """Draw and save the figure; returns the written paths."""
    d = data(seed=seed)
    with style():
        fig, (ax,) = new_figure(1, width=5.4, height=3.7)
        Dd = np.geomspace(d.depths[0], d.depths[-1], 200)
        for a, sa in enumerate(d.s):
            c = PALETTE[a]
            ax.plot(d.depths, d.depths * d.t_pred[:, a], color=c, linewidth=1.6, label=f"eq. 15, $s={sa:g}$")
            ax.plot(
                d.depths,
                d.depths * d.t_sim[:, a],
                "o",
                color=c,
                markersize=5,
                markerfacecolor="none",
                label="gradient flow, decoupled init" if a == 0 else None,
            )
            ax.plot(
                Dd,
                np.full_like(Dd, d.t_limit[a]),
                color=c,
                linestyle="--",
                linewidth=1.0,
                label=r"eq. 17: $D\to\infty$ limit" if a == 0 else None,
            )
        ax.plot(np.full(d.s.size, 2), 2 * d.t_two, "x", color=C["black"], markersize=7, label="eq. 11 ($D=2$)")
        ax.set_xscale("log")
        ax.set_xticks(d.depths, [str(int(x)) for x in d.depths])
        ax.minorticks_off()
        ax.set_xlabel("depth $D$ (number of weight matrices)")
        ax.set_ylabel(r"$D\,t_D$ (iterations at step $\propto 1/D$)")
        ax.set_title(rf"Saxe: learning time for $u: {d.u0:g}\to{d.uf_frac:g}\,s$ against depth")
        ax.legend(loc="lower right", fontsize=6.5)
        return save(fig, out_dir, NAME, formats)
