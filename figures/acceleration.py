r"""Figure 5: acceleration by overparameterization on :math:`\ell_p` regression (Arora, Cohen & Hazan 2018).

Linear regression :math:`\ell(w) = \frac1{pm}\sum_i |w^\top x_i - y_i|^p` on ill-conditioned synthetic data (feature
scales spanning a factor ``cond``), realisable so that the minimum is 0. Depth 1 is plain GD on :math:`w`; depth
:math:`N > 1` writes :math:`w = W_N\cdots W_1` with scalar extra layers (widths :math:`d_0, 1, \dots, 1`; depth 2
is ACH's :math:`w = w_1\omega_2`), from the same near-zero end-to-end start (balanced). Each depth gets the best
step size of a grid: the lowest final loss among the runs whose loss never rises (diverged runs and runs that pass
through an instability excluded; see ``_monotone``). Under gradient flow from a balanced start the
end-to-end update is :math:`\dot w = -\|w\|^{2-2/N}(\nabla\ell + (N-1)\Pr_w\nabla\ell)` (THEOREMS.md §4): an adaptive,
momentum-like preconditioner that helps on :math:`p = 4`, whose flat valleys slow GD down, and not on :math:`p = 2`
(ACH's experiment, described in THEOREMS.md §4 as a demo: reported, not a theorem; arXiv 1802.06509).

Keeping only monotone runs also makes the image independent of the BLAS kernel: on this data the :math:`\ell_2`
depth-2 run with the grid's :math:`\eta \approx 0.75` ends lowest but passes through a brief instability near step
800 that grows round-off to a visible size (its loss jumps 2x to 10x there, depending on the summation order).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

import linnet as ln
from linnet.backend import host_rng, to_numpy

from ._style import PALETTE, new_figure, save, style

NAME = "acceleration"
#: Place in the gallery (figures are discovered; this orders them).
ORDER = 50
#: Round-off allowance, in units of eps times the initial loss, for a recorded loss to count as not rising.
ROUNDOFF = 100
TITLE = "Acceleration by overparameterization: ℓ4 regression speeds up with depth, ℓ2 does not"
SOURCE = "THEOREMS.md §4; Arora, Cohen & Hazan 2018"
CAPTION = (
    "On ℓ4 linear regression, overparameterizing w as a product of depth 2 or 3 (same end-to-end start, each "
    "step size tuned on a grid) reaches several times lower loss than plain GD in the same number of iterations; "
    "on ℓ2 depth gives no speed-up (Arora, Cohen & Hazan's experiment; a demo, not a theorem)."
)


class Acceleration(NamedTuple):
    depths: tuple
    powers: tuple
    lrs: np.ndarray  # (G,) step-size grid
    steps: np.ndarray  # (n_rec,)
    best_lr: dict  # (p, N) -> tuned step size
    curves: dict  # (p, N) -> (n_rec,) loss with the tuned step size
    final: dict  # (p, N) -> (G,) final loss for every step size (inf where diverged)


def _monotone(L):
    """Which runs (columns of the recorded losses ``L``) never rise above their running minimum by more than
    round-off of the initial loss: the tuning keeps only step sizes whose descent is stable throughout, as a tuned
    learning rate is meant to be. (A run that passes through a brief instability can still end lowest, but its
    curve then depends on how round-off grows through the instability, that is on the BLAS kernel's summation
    order.)"""
    tol = ROUNDOFF * np.finfo(L.dtype).eps * np.abs(L[0])
    with np.errstate(invalid="ignore"):
        return np.all(L[1:] <= np.minimum.accumulate(L, axis=0)[:-1] + tol, axis=0)


def data(
    *,
    d0: int = 10,
    m: int = 200,
    cond: float = 100.0,
    depths=(1, 2, 3),
    powers=(4, 2),
    steps: int = 3000,
    lrs=None,
    init_scale: float = 1e-2,
    seed: int = 0,
) -> Acceleration:
    """Best-tuned loss curves for each depth and each power ``p``."""
    rng = host_rng(seed)
    X = rng.standard_normal((d0, m)) * np.geomspace(1.0, 1.0 / cond, d0)[:, None]
    Y = rng.standard_normal((1, d0)) @ X
    A0 = init_scale * rng.standard_normal((1, d0))
    lrs = np.geomspace(0.03, 30.0, 16) if lrs is None else np.asarray(lrs, dtype=float)
    best_lr, curves, final = {}, {}, {}
    rec = None
    for p in powers:
        loss = ln.SquaredLoss.from_data(X, Y) if p == 2 else ln.LpLoss(X, Y, p=p)
        for N in depths:
            Ws = ln.init.balanced(A0, (d0,) + (1,) * N)
            run = ln.train.gd(loss, Ws, lr=lrs, steps=steps, record_every=10)
            L = to_numpy(run.loss)
            fin = np.where(to_numpy(run.status) == ln.train.DIVERGED, np.inf, L[-1])
            fin = np.where(np.isfinite(fin) & _monotone(L), fin, np.inf)
            b = int(np.argmin(fin))
            best_lr[p, N], curves[p, N], final[p, N] = float(lrs[b]), L[:, b], fin
            rec = to_numpy(run.steps)
    return Acceleration(tuple(depths), tuple(powers), lrs, rec, best_lr, curves, final)


def make(out_dir, *, seed: int = 0, formats=("png",)):
    """Draw and save the figure; returns the written paths."""
    d = data(seed=seed)
    with style():
        fig, axes = new_figure(len(d.powers), width=8.4, height=3.4)
        for ax, p in zip(axes, d.powers):
            for i, N in enumerate(d.depths):
                ax.semilogy(
                    d.steps, d.curves[p, N], color=PALETTE[i], label=rf"depth {N}, tuned $\eta={d.best_lr[p, N]:.3g}$"
                )
            ax.set_xlabel("GD iteration $k$")
            ax.set_ylabel(rf"$\ell_{p}$ loss $\frac{{1}}{{{p}m}}\sum_i (w^\top x_i - y_i)^{p}$")
            first, best = d.curves[p, d.depths[0]][-1], min(d.curves[p, N][-1] for N in d.depths[1:])
            verdict = "depth accelerates" if best < 0.5 * first else "no speed-up from depth"
            ax.set_title(rf"$p={p}$: {verdict} (final ratio {first / best:.1f}×)")
            ax.legend(loc="upper right")
        fig.suptitle("Acceleration by overparameterization (ACH 2018; THEOREMS §4)")
        return save(fig, out_dir, NAME, formats)
