r"""Figure 4: GD on a deep linear net from a balanced init with a deficiency margin (ACGH 2018, Theorem 1).

Whitened loss :math:`\ell(W) = \tfrac12\|W_N\cdots W_1 - \Phi\|_F^2`. If the init is balanced and its end-to-end
matrix has deficiency margin :math:`c` (:math:`\|W - \Phi\|_F \le \sigma_{\min}(\Phi) - c`), GD with
:math:`\eta \le \eta_{\max} = c^{(4N-2)/N}/(6144N^3\|\Phi\|_F^{(6N-4)/N})` obeys
:math:`\ell(k) \le \ell(0)(1 - \eta c^{2(N-1)/N})^k` (THEOREMS.md §3; Arora, Cohen, Golowich & Hu, arXiv 1810.02281,
constants CONFIRMED from a secondary source). Left: GD at :math:`\eta_{\max}` and far larger steps, each below its
bound (above :math:`\eta_{\max}` that is an observation, not the theorem). Right, the two controls of THEOREMS.md §3
(DERIVED+VERIFIED): without a margin (a diagonal balanced init whose product has a negative entry) GD stalls at
:math:`\phi_k^2/2`; without balancedness (:math:`w_1 = 2000`, :math:`w_2 = 0.7/2000`) GD at the theorem's own
:math:`\eta_{\max}` diverges within a few steps.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

import linnet as ln
from linnet.backend import host_rng, to_numpy

from ._style import PALETTE, C, floored, loss_floor, new_figure, save, style

NAME = "deficiency_margin"
#: Place in the gallery (figures are discovered; this orders them).
ORDER = 40
TITLE = "Deficiency margin: ACGH Theorem 1 bound, and its two controls"
SOURCE = "THEOREMS.md §3; Arora, Cohen, Golowich & Hu 2018, Theorem 1"
CAPTION = (
    "From a balanced init with deficiency margin c, GD's loss stays below ACGH's Theorem 1 bound "
    "ℓ(0)(1 − ηc^{2(N−1)/N})^k at the theorem's step size and far above it; without a margin GD stalls at φ_k²/2, "
    "and without balancedness it diverges even at the theorem's step size."
)

#: Singular values of the target Phi.
SIGMA_PHI = (1.5, 1.0)


class DeficiencyMargin(NamedTuple):
    depth: int
    c: float
    margin0: float  # deficiency margin of the init's end-to-end matrix
    sigma_min0: float  # sigma_min of the init's end-to-end matrix
    delta0: float  # balancedness of the init
    delta_max: float
    eta_max: float
    multiples: np.ndarray  # (E,) eta / eta_max
    steps: np.ndarray  # (n_rec,)
    loss: np.ndarray  # (n_rec, E)
    bound: np.ndarray  # (n_rec, E) l(0) (1 - eta c^(2(N-1)/N))^k
    nomargin_steps: np.ndarray
    nomargin_loss: np.ndarray  # (n_rec2,)
    nomargin_floor: float  # phi_k^2 / 2 for the coordinate started with the wrong sign
    nomargin_margin0: float
    unbal_steps: np.ndarray
    unbal_loss: np.ndarray  # (n_rec3,)
    unbal_status: str
    unbal_diverged_at: int
    unbal_eta: float


def data(
    *, depth: int = 3, c: float = 0.8, multiples=(1.0, 1e2, 1e4, 1e6), steps: int = 10_000, seed: int = 0
) -> DeficiencyMargin:
    """Loss curves against the Theorem 1 bound, and the no-margin and unbalanced controls."""
    rng = host_rng(seed)
    d = 2
    U, _ = np.linalg.qr(rng.standard_normal((d, d)))
    V, _ = np.linalg.qr(rng.standard_normal((d, d)))
    Phi = (U * np.array(SIGMA_PHI)) @ V.T  # singular values in [1, 1.5]
    loss = ln.SquaredLoss.whitened(Phi)
    widths = (d,) * (depth + 1)
    # init: A = Phi + Delta with ||Delta||_F = sigma_min(Phi) - c, balanced factorization (delta = 0)
    Delta = rng.standard_normal((d, d))
    Delta *= (1.0 - c) / np.linalg.norm(Delta)
    Ws = ln.init.balanced(Phi + Delta, widths)
    We0 = ln.end_to_end(Ws)
    const = ln.theory.acgh_constants(Phi, c, depth)
    eta_max = float(const.eta_max)
    multiples = np.asarray(multiples, dtype=float)
    etas = eta_max * multiples
    run = ln.train.gd(loss, Ws, lr=etas, steps=steps, record_every=10)
    L = to_numpy(run.loss)  # (n_rec, E)
    k = to_numpy(run.steps)
    rate = 1.0 - etas * c ** (2.0 * (depth - 1) / depth)
    bound = L[0] * rate[None, :] ** k[:, None]
    # control (a): no margin. Diagonal Phi, diagonal balanced init whose product has a negative entry
    phis = np.array([1.5, 1.0])
    A = np.diag([1.2, -0.3])
    Wn = ln.init.balanced(A, widths)
    runa = ln.train.gd(ln.SquaredLoss.whitened(np.diag(phis)), Wn, lr=0.05, steps=max(1, steps // 4), record_every=10)
    # control (b): unbalanced scalar net at the theorem's step size, margin c_b = 0.7 w.r.t. phi = 1
    cb = 0.7
    eta_b = float(ln.theory.acgh_constants(np.array([[1.0]]), cb, 2).eta_max)
    Wb = (np.array([[2000.0]]), np.array([[cb / 2000.0]]))
    runb = ln.train.gd(ln.SquaredLoss.whitened(np.array([[1.0]])), Wb, lr=eta_b, steps=50)
    return DeficiencyMargin(
        depth,
        c,
        float(ln.theory.deficiency_margin(We0, Phi)),
        float(np.linalg.svd(to_numpy(We0), compute_uv=False).min()),
        float(ln.theory.balancedness(Ws)),
        float(const.delta_max),
        eta_max,
        multiples,
        k,
        L,
        bound,
        to_numpy(runa.steps),
        to_numpy(runa.loss),
        0.5 * phis[1] ** 2,
        float(ln.theory.deficiency_margin(A, np.diag(phis))),
        to_numpy(runb.steps),
        to_numpy(runb.loss),
        str(runb.status_names),
        int(to_numpy(runb.diverged_at)),
        eta_b,
    )


def _exp_label(m: float) -> str:
    e = int(round(np.log10(m)))
    return r"$\eta_{\max}$" if e == 0 else rf"$10^{{{e}}}\,\eta_{{\max}}$"


def make(out_dir, *, seed: int = 0, formats=("png",)):
    """Draw and save the figure; returns the written paths."""
    d = data(seed=seed)
    with style():
        fig, (ax, bx, cx) = new_figure(3, width=9.6, height=3.5, gridspec_kw={"width_ratios": [1.5, 1, 1]})
        x = np.maximum(d.steps, 1)
        # Round-off floor: W_N...W_1 - Phi is computed with round-off ~eps ||Phi||_F, so below ½(1e6 eps ||Phi||_F)^2
        # (~1e-19) the loss has fewer than 6 digits (it settles at 1e-27..0, digits depending on the BLAS kernel) and
        # comparing it with the bound compares roundings. Losses and bounds below the floor are drawn at it.
        floor = loss_floor(float(np.hypot(*SIGMA_PHI)))
        for i, m in enumerate(d.multiples):
            ax.loglog(x, floored(d.loss[:, i], floor), color=PALETTE[i], label=f"GD, {_exp_label(m)}")
            ax.loglog(x, floored(d.bound[:, i], floor), color=PALETTE[i], linestyle="--", linewidth=1.0)
        ax.plot([], [], color=C["grey"], linestyle="--", label=r"bound $\ell(0)(1-\eta c^{2(N-1)/N})^k$")
        ax.axhline(floor, color=C["grey"], linestyle=":", linewidth=1.0, label=f"round-off floor {floor:.0e}")
        ax.set_xlabel("GD iteration $k$")
        ax.set_ylabel(r"loss $\frac{1}{2}\|W_N\cdots W_1-\Phi\|_F^2$")
        ax.set_title(rf"balanced, margin $c={d.c:g}$, $N={d.depth}$, $\eta_{{\max}}={d.eta_max:.2g}$")
        ax.legend(loc="lower left", fontsize=6.5)
        ax.set_ylim(floor / 10, float(floored(d.loss.max(), floor)) * 3)
        bx.semilogy(np.maximum(d.nomargin_steps, 1), d.nomargin_loss, color=C["blue"], label="GD, $\\eta=0.05$")
        bx.axhline(d.nomargin_floor, color=C["black"], linestyle=":", linewidth=1.0, label=r"$\phi_k^2/2$")
        bx.set_xscale("log")
        bx.set_xlabel("GD iteration $k$")
        bx.set_ylabel("loss")
        bx.set_title(rf"control: no margin, $c(W_0)={d.nomargin_margin0:.2f}$")
        bx.legend(loc="upper right", fontsize=6.5)
        cx.semilogy(
            d.unbal_steps,
            d.unbal_loss,
            "o-",
            color=C["vermillion"],
            markersize=3,
            label=f"GD at $\\eta_{{\\max}}$: {d.unbal_status}\nat step {d.unbal_diverged_at}",
        )
        cx.set_xlabel("GD iteration $k$")
        cx.set_ylabel("loss")
        cx.set_title(r"control: unbalanced, $w_1 w_2 = 0.7$")
        cx.set_xlim(-0.5, d.unbal_diverged_at + 1.5)
        cx.legend(loc="lower right", fontsize=6.5)
        fig.suptitle("Deficiency margin and balancedness: ACGH Theorem 1 (THEOREMS §3)")
        return save(fig, out_dir, NAME, formats)
