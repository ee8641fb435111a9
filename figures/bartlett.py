r"""Figure 10: identity initialization (Bartlett, Helmbold & Long 2018, arXiv 1802.06093).

Gradient descent on :math:`\ell(\Theta) = \tfrac12\|\Theta_L\cdots\Theta_1 - \Phi\|_F^2` from :math:`\Theta_i(0) = I`.
For symmetric :math:`\Phi` all layers stay equal and each eigenvalue :math:`\lambda` of :math:`\Phi` evolves as the
scalar recursion :math:`\theta \leftarrow \theta - \eta\theta^{L-1}(\theta^L - \lambda)`, :math:`\theta_0 = 1`.
A positive definite target is learned; with an eigenvalue :math:`\lambda < 0` the mode's :math:`\theta^L` can
never cross zero (even :math:`L`: for every :math:`\eta`; odd :math:`L`: for :math:`\eta < 1/(1+|\lambda|)`), so the
loss stays at least :math:`\lambda^2/2` (THEOREMS.md §9). The control, odd :math:`L` with :math:`\eta = 1` on
:math:`\Phi = -I`, jumps across zero and converges: the failure needs the step-size restriction.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

import linnet as ln
from linnet.backend import host_rng, to_numpy

from ._style import PALETTE, C, floored, loss_floor, new_figure, save, style

NAME = "bartlett"
#: Place in the gallery (figures are discovered; this orders them).
ORDER = 100
TITLE = "Identity init: positive definite target learned, negative eigenvalue stuck at λ²/2"
SOURCE = "THEOREMS.md §9; Bartlett, Helmbold & Long 2018"
CAPTION = (
    "GD from the identity learns a symmetric positive definite target at every depth, but with a negative "
    "eigenvalue λ the end-to-end eigenvalue cannot cross zero and the loss stays at λ²/2 (even depth for every "
    "step size, odd depth for η < 1/(1+|λ|)); an odd-depth run with η = 1 on Φ = −I crosses and converges."
)


class Bartlett(NamedTuple):
    depths: tuple
    lr: float
    spectrum_spd: np.ndarray  # eigenvalues of the positive definite target
    spectrum_neg: np.ndarray  # eigenvalues of the target with a negative eigenvalue
    lam: float  # the negative eigenvalue
    steps: np.ndarray  # (n_rec,) step indices
    loss_spd: dict  # depth -> (n_rec,)
    loss_neg: dict  # depth -> (n_rec,)
    mode_neg: dict  # depth -> (n_rec,) v^T W_e(t) v along the negative eigenvector v
    control_depth: int
    control_lr: float
    control_loss: np.ndarray  # (n_rec_c,) odd depth, eta = 1, Phi = -I
    control_steps: np.ndarray
    control_mode: np.ndarray  # (n_rec_c,) v^T W_e v for the control


def data(
    *, d: int = 3, depths=(2, 3, 4, 5), lr: float = 0.05, steps: int = 2000, record_every: int = 10, seed: int = 0
) -> Bartlett:
    """Loss curves from the identity for an SPD target and for one with a negative eigenvalue."""
    rng = host_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    spd = np.linspace(0.5, 2.0, d)
    neg = spd.copy()
    neg[0] = -1.0
    # symmetrized exactly: at depth 2 the stuck point is a strict saddle, and a 1e-16 asymmetry of a rounded
    # Q diag Q^T is enough for GD to escape it after ~700 steps (depth >= 3: a flat saddle, no escape)
    targets = {k: 0.5 * (P + P.T) for k, P in (("spd", (Q * spd) @ Q.T), ("neg", (Q * neg) @ Q.T))}
    v = Q[:, 0]
    out = {"spd": {}, "neg": {}}
    mode = {}
    rec_steps = None
    for N in depths:
        widths = (d,) * (N + 1)
        for key, Phi in targets.items():
            run = ln.train.gd(
                ln.SquaredLoss.whitened(Phi),
                ln.init.identity(widths),
                lr=lr,
                steps=steps,
                record_every=record_every,
                keep_history=(key == "neg"),
            )
            out[key][N] = to_numpy(run.loss)
            rec_steps = to_numpy(run.steps)
            if key == "neg":
                We = to_numpy(ln.end_to_end(run.history))
                mode[N] = np.einsum("i,kij,j->k", v, We, v)
    ctrl_depth, ctrl_lr = 3, 1.0
    ctrl = ln.train.gd(
        ln.SquaredLoss.whitened(-np.eye(d)),
        ln.init.identity((d,) * (ctrl_depth + 1)),
        lr=ctrl_lr,
        steps=20,
        keep_history=True,
    )
    ctrl_mode = np.einsum("i,kij,j->k", v, to_numpy(ln.end_to_end(ctrl.history)), v)
    return Bartlett(
        tuple(depths),
        lr,
        spd,
        neg,
        -1.0,
        rec_steps,
        out["spd"],
        out["neg"],
        mode,
        ctrl_depth,
        ctrl_lr,
        to_numpy(ctrl.loss),
        to_numpy(ctrl.steps),
        ctrl_mode,
    )


def make(out_dir, *, seed: int = 0, formats=("png",)):
    """Draw and save the figure; returns the written paths."""
    from matplotlib.lines import Line2D

    d = data(seed=seed)
    with style():
        fig, (ax, bx) = new_figure(2, width=8.4, height=3.5)
        # Round-off floor: the residual Theta_L...Theta_1 - Phi is computed with round-off ~eps ||Phi||_F, so below
        # ½(1e6 eps ||Phi||_F)^2 (~1e-19) the loss has fewer than 6 digits (the SPD runs settle at ~3e-30, digits
        # depending on the BLAS kernel; the control reaches exactly 0). Losses below the floor are drawn at it.
        floor = loss_floor(float(np.linalg.norm(d.spectrum_spd)))
        handles = []
        for i, N in enumerate(d.depths):
            ax.plot(d.steps, floored(d.loss_spd[N], floor), color=PALETTE[i], linestyle="--")
            ax.plot(d.steps, d.loss_neg[N], color=PALETTE[i])
            handles.append(Line2D([], [], color=PALETTE[i], label=f"$L={N}$ ({'even' if N % 2 == 0 else 'odd'})"))
        ax.plot(d.control_steps, floored(d.control_loss, floor), color=C["black"], linestyle="-.", marker=".")
        ax.axhline(0.5 * d.lam**2, color=C["black"], linestyle=":", linewidth=1.0)
        ax.axhline(floor, color=C["grey"], linestyle=(0, (1, 3)), linewidth=1.0)
        handles += [
            Line2D(
                [], [], color=C["grey"], linestyle="--", label=f"SPD, spectrum {np.round(d.spectrum_spd, 2).tolist()}"
            ),
            Line2D([], [], color=C["grey"], label=f"spectrum {np.round(d.spectrum_neg, 2).tolist()}"),
            Line2D([], [], color=C["black"], linestyle=":", label=r"$\lambda^2/2$ with $\lambda=-1$"),
            Line2D([], [], color=C["grey"], linestyle=(0, (1, 3)), label=f"round-off floor {floor:.0e}"),
            Line2D(
                [],
                [],
                color=C["black"],
                linestyle="-.",
                marker=".",
                label=rf"control: $\Phi=-I$, $L={d.control_depth}$, $\eta={d.control_lr:g}$",
            ),
        ]
        ax.set_yscale("log")
        ax.set_xscale("symlog", linthresh=10)
        ax.set_xlim(0, d.steps[-1])
        ax.set_ylim(floor / 3, 1e2)
        ax.set_xlabel("GD iteration $k$")
        ax.set_ylabel(r"loss $\frac{1}{2}\|\Theta_L\cdots\Theta_1-\Phi\|_F^2$")
        ax.set_title(rf"identity init $\Theta_i(0)=I$, $\eta={d.lr:g}$")
        ax.legend(handles=handles, loc="lower left", fontsize=6.0)
        # modes rounded to 1e-9 (1e-7 of a pixel here): once a mode has reached 0 it is round-off (~1e-17, digits
        # depending on the BLAS kernel), and along that flat stretch Agg's line joins would follow its signs
        for i, N in enumerate(d.depths):
            bx.plot(d.steps, np.round(d.mode_neg[N], 9), color=PALETTE[i], label=f"$L={N}$")
        ctrl_mode = np.round(d.control_mode, 9)
        bx.plot(d.control_steps, ctrl_mode, color=C["black"], linestyle="-.", marker=".", label="control")
        bx.axhline(d.lam, color=C["black"], linestyle=":", linewidth=1.0, label=r"target $\lambda=-1$")
        bx.axhline(0.0, color=C["grey"], linewidth=0.8)
        bx.set_xscale("symlog", linthresh=10)
        bx.set_xlim(0, d.steps[-1])
        bx.set_xlabel("GD iteration $k$")
        bx.set_ylabel(r"$v^\top\Theta_L\cdots\Theta_1 v$ ($v$: eigenvector of $\lambda$)")
        bx.set_title("the mode of $\\lambda=-1$ never crosses 0 (small $\\eta$)")
        bx.legend(loc="center right")
        fig.suptitle("Bartlett–Helmbold–Long: identity initialization (THEOREMS §9)")
        return save(fig, out_dir, NAME, formats)
