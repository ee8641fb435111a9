r"""Figure 1: Saxe learning curves, mode by mode, on hierarchically structured targets.

Items are the leaves of a binary tree; each target feature is a branching diffusion down the tree (a random sign
at the root, flipped with a small probability on every edge), so the input–output correlation
:math:`\Lambda_{yx}` has singular values grouped by tree level. Inputs are whitened (:math:`\Lambda_{xx} = I`).
Under gradient flow from a small decoupled balanced init each mode strength
:math:`u_\alpha(t) = u_\alpha^\top W_2W_1 v_\alpha` follows eq. 12 exactly,

.. math:: u(t) = \frac{s\,e^{2st}}{e^{2st} - 1 + s/u_0},

stronger modes being learned first, at :math:`t \approx \frac1s\ln\frac s{u_0}`; from a small random init the
curves follow it approximately (THEOREMS.md §10; Saxe, McClelland & Ganguli, arXiv 1312.6120, eqs. 11–12, Fig. 3).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

import linnet as ln
from linnet.backend import host_rng, to_numpy

from ._style import PALETTE, new_figure, save, style

NAME = "saxe_curves"
#: Place in the gallery (figures are discovered; this orders them).
ORDER = 10
TITLE = "Saxe learning curves: each mode follows eq. 12"
SOURCE = "THEOREMS.md §10; Saxe, McClelland & Ganguli 2014, eqs. 11-12"
CAPTION = (
    "On hierarchical targets, gradient flow of a two-layer net from a small decoupled init learns each "
    "input-output mode along Saxe's sigmoid u(t) = s e^{2st}/(e^{2st} − 1 + s/u₀) (eq. 12), strongest modes first; "
    "a small random init follows the same curves approximately."
)


class SaxeCurves(NamedTuple):
    s: np.ndarray  # (r,) singular values of Lambda_yx (mode strengths to learn)
    modes: np.ndarray  # (k,) indices of the plotted modes
    u0: float  # initial mode strength of the decoupled init
    t: np.ndarray  # (T,) record times
    theory: np.ndarray  # (T, r) eq. 12
    decoupled: np.ndarray  # (T, r) simulated mode strengths, decoupled init
    off_diag: float  # max |U^T W_e V| off the diagonal along the decoupled run
    random: np.ndarray  # (T, r) simulated mode strengths, small random init
    random_u0: np.ndarray  # (r,) initial mode strengths of the random init
    half_theory: np.ndarray  # (r,) eq. 11 time to reach s/2 from u0
    half_random: np.ndarray  # (r,) time the random run first reaches s/2 (interpolated)


def hierarchical_targets(levels: int, n_features: int, flip: float, rng) -> np.ndarray:
    """Features of the ``2**levels`` leaves of a binary tree by branching diffusion: ``(n_features, 2**levels)``."""
    vals = rng.choice([-1.0, 1.0], size=(n_features, 1))
    for _ in range(levels):
        children = np.repeat(vals, 2, axis=1)
        flips = rng.random(children.shape) < flip
        vals = np.where(flips, -children, children)
    return vals


def _crossing(t: np.ndarray, u: np.ndarray, level: np.ndarray) -> np.ndarray:
    """First time each column of ``u`` (T, r) reaches ``level`` (r,), linearly interpolated (nan if never)."""
    out = np.full(u.shape[1], np.nan)
    for a in range(u.shape[1]):
        above = np.nonzero(u[:, a] >= level[a])[0]
        if above.size and above[0] > 0:
            k = above[0]
            f = (level[a] - u[k - 1, a]) / (u[k, a] - u[k - 1, a])
            out[a] = t[k - 1] + f * (t[k] - t[k - 1])
    return out


def data(
    *,
    levels: int = 3,
    n_features: int = 400,
    flip: float = 0.1,
    hidden: int = 32,
    u0: float = 1e-3,
    n_times: int = 121,
    modes=(0, 1, 2, 4),
    seed: int = 0,
) -> SaxeCurves:
    """Simulated and predicted mode strengths; the tree has ``2**levels`` items, the net ``hidden`` units."""
    rng = host_rng(seed)
    m = 2**levels
    Y = hierarchical_targets(levels, n_features, flip, rng) / np.sqrt(n_features)
    # whitened inputs: X = sqrt(m) I gives Lambda_xx = I and Lambda_yx = Y / sqrt(m)
    Syx = Y / np.sqrt(m)
    loss = ln.SquaredLoss.whitened(Syx)
    U, s, Vt = np.linalg.svd(Syx, full_matrices=False)
    r = s.size
    widths = (m, hidden, n_features)  # hidden width N2 >= rank
    t_max = 1.3 * np.log(s[list(modes)].max() / u0) / s[list(modes)].min()
    t = np.linspace(0.0, t_max, n_times)
    # decoupled balanced init with every mode at u0 (hidden frame random)
    Wd = ln.init.decoupled(U, Vt.T, np.full(r, u0), widths, seed=rng)
    # small random init: a mode's input and output hidden vectors have norms ~ sqrt(u0), so |u| <~ u0
    Wr = ln.init.gaussian(widths, scale=np.sqrt(u0 / hidden), seed=rng)
    out = {}
    for key, Ws in (("decoupled", Wd), ("random", Wr)):
        run = ln.train.gradient_flow(loss, Ws, t_final=float(t_max), times=t, rtol=1e-10, atol=1e-13, keep_history=True)
        We = to_numpy(ln.end_to_end(run.history))  # (T, dN, d0)
        out[key] = U.T @ We @ Vt.T  # (T, r, r): mode strengths on the diagonal
    diag_d = np.diagonal(out["decoupled"], axis1=-2, axis2=-1)
    off = out["decoupled"] - diag_d[..., None] * np.eye(r)
    diag_r = np.diagonal(out["random"], axis1=-2, axis2=-1)
    theory = to_numpy(ln.theory.saxe_mode(t[:, None], s[None, :], u0))
    half_theory = to_numpy(ln.theory.saxe_time(s, u0, s / 2))
    return SaxeCurves(
        s,
        np.asarray(modes),
        u0,
        t,
        theory,
        diag_d,
        float(np.max(np.abs(off))),
        diag_r,
        diag_r[0],
        half_theory,
        _crossing(t, diag_r, s / 2),
    )


def make(out_dir, *, seed: int = 0, formats=("png",)):
    """Draw and save the figure; returns the written paths."""
    from matplotlib.lines import Line2D

    d = data(seed=seed)
    with style():
        fig, (ax,) = new_figure(1, width=5.6, height=3.8)
        handles = []
        for i, a in enumerate(d.modes):
            c = PALETTE[i]
            ax.plot(d.t, d.theory[:, a], color=c, linewidth=2.2, alpha=0.55)
            ax.plot(d.t[::4], d.decoupled[::4, a], "o", color=c, markersize=3.2, markerfacecolor="none")
            ax.plot(d.t, d.random[:, a], color=c, linestyle="--", linewidth=1.0)
            handles.append(Line2D([], [], color=c, linewidth=2.2, label=rf"mode {a + 1}: $s={d.s[a]:.3f}$"))
        handles += [
            Line2D([], [], color="0.4", linewidth=2.2, alpha=0.55, label="eq. 12 (theory)"),
            Line2D(
                [],
                [],
                color="0.4",
                marker="o",
                linestyle="none",
                markerfacecolor="none",
                label="gradient flow, decoupled init",
            ),
            Line2D([], [], color="0.4", linestyle="--", label="gradient flow, small random init"),
        ]
        ax.set_xlabel(r"time $t$ ($= \eta k$ for GD)")
        ax.set_ylabel(r"mode strength $u_\alpha(t) = u_\alpha^\top W_2 W_1 v_\alpha$")
        ax.set_title(rf"Saxe learning curves, hierarchical targets ({d.s.size} items), $u_0={d.u0:g}$")
        ax.legend(handles=handles, loc="lower right", fontsize=6.5)
        return save(fig, out_dir, NAME, formats)
