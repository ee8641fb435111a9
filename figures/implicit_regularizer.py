r"""Figure 13: the implicit regulariser :math:`Q_\alpha` of diagonal nets moves from ℓ2 to ℓ1 as the init shrinks.

Woodworth et al. (arXiv 2002.09277, COLT 2020): gradient flow on :math:`\beta = w_+^D - w_-^D` from
:math:`w_\pm(0) = \alpha\mathbf 1` ends at :math:`\arg\min\{Q^D_\alpha(\beta) : X\beta = y\}`; :math:`Q_\alpha` is quadratic for large
:math:`\alpha` (kernel regime) and ℓ1-like for small :math:`\alpha` (rich regime) (THEOREMS2 §20).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

import linnet as ln
from linnet.backend import host_rng

from ._style import PALETTE, C, new_figure, save, style

NAME = "implicit_regularizer"
ORDER = 140
TITLE = "Diagonal nets: Q_alpha from l2 (large init) to l1 (small init)"
SOURCE = "THEOREMS.md part 2 (THEOREMS2 §20); Woodworth et al. 2020"
CAPTION = (
    "Left: the scalar penalty Q_α(t)/Q_α(1) of a depth-2 diagonal net goes from t² (kernel regime, large α) to |t| "
    "(rich regime, small α). Right: the interpolant gradient flow reaches (markers: the engine's diagonal net; lines: "
    "argmin Q_α) leaves the minimum-ℓ2 interpolant and approaches the minimum-ℓ1 one as α shrinks, much faster at depth 3."
)


class ImplicitRegularizer(NamedTuple):
    t: np.ndarray  # (T,) scalar argument of the penalty
    alphas_shape: np.ndarray  # (A,) init scales of the left panel
    shape: np.ndarray  # (A, T) Q_alpha(t) / Q_alpha(1), depth 2
    alphas: np.ndarray  # (K,) init scales of the right panel
    dist_l1: np.ndarray  # (2, K) ||argmin Q - beta_l1||_inf, depths 2 and 3
    dist_l2: np.ndarray  # (2, K)
    alphas_gf: np.ndarray  # (G,) init scales of the gradient-flow runs
    gf_dist_l1: np.ndarray  # (2, G) same distances for the flow's end point
    gf_err: np.ndarray  # (2, G) ||beta_GF - argmin Q||_inf


def _gf_beta(X, y, alpha, depth):
    m, d = X.shape
    loss = ln.SquaredLoss.from_data(ln.diagonal.lift(X.T), y[None, :])
    w0 = np.full((1, 2 * d), float(alpha))
    run = ln.diagonal.flow(
        loss,
        tuple(w0.copy() for _ in range(depth)),
        t_max=1e12,
        ftol=1e-22 / (2 * m),
        method="LSODA",
        rtol=1e-12,
        atol=1e-15,
    )
    W = np.asarray(ln.diagonal.end_to_end(run.weights))[0]
    return W[:d] - W[d:]


def data(*, m: int = 5, d: int = 12, alphas_gf=(3.0, 0.3, 0.03), seed: int = 0) -> ImplicitRegularizer:
    """Penalty shapes, and distances of argmin Q (closed form) and of the flow's end point to the ℓ1/ℓ2 interpolants."""
    rng = host_rng(seed)
    X = rng.standard_normal((m, d))
    b = np.zeros(d)
    b[:2] = (1.5, -1.0)
    y = X @ b
    t = np.linspace(-2.0, 2.0, 201)
    a_shape = np.array([10.0, 1.0, 0.1, 1e-2, 1e-4])
    shape = np.array([ln.theory.q_alpha(t[:, None], a, 2) / ln.theory.q_alpha(np.ones(1), a, 2) for a in a_shape])
    l1, l2 = ln.theory.min_l1_interpolant(X, y), ln.theory.min_l2_interpolant(X, y)
    alphas = np.logspace(1, -4, 21)
    dist_l1 = np.zeros((2, alphas.size))
    dist_l2 = np.zeros((2, alphas.size))
    for i, D in enumerate((2, 3)):
        for k, a in enumerate(alphas):
            q = ln.theory.q_alpha_argmin(X, y, a, D)
            dist_l1[i, k], dist_l2[i, k] = np.abs(q - l1).max(), np.abs(q - l2).max()
    alphas_gf = np.asarray(alphas_gf, dtype=float)
    gf_d1 = np.zeros((2, alphas_gf.size))
    gf_err = np.zeros((2, alphas_gf.size))
    for i, D in enumerate((2, 3)):
        for k, a in enumerate(alphas_gf):
            bg = _gf_beta(X, y, a, D)
            gf_d1[i, k] = np.abs(bg - l1).max()
            gf_err[i, k] = np.abs(bg - ln.theory.q_alpha_argmin(X, y, a, D)).max()
    return ImplicitRegularizer(t, a_shape, shape, alphas, dist_l1, dist_l2, alphas_gf, gf_d1, gf_err)


def make(out_dir, *, seed: int = 0, formats=("png",)):
    """Draw and save the figure; returns the written paths."""
    d = data(seed=seed)
    with style():
        fig, (ax, bx) = new_figure(2, width=8.4, height=3.4)
        for i, a in enumerate(d.alphas_shape):
            ax.plot(d.t, d.shape[i], color=PALETTE[i], label=rf"$\alpha={a:g}$")
        ax.plot(d.t, d.t**2, color=C["black"], linestyle="--", linewidth=1.0, label=r"$t^2$ ($\ell_2$)")
        ax.plot(d.t, np.abs(d.t), color=C["black"], linestyle=":", linewidth=1.0, label=r"$|t|$ ($\ell_1$)")
        ax.set_xlabel(r"$t$")
        ax.set_ylabel(r"$Q_\alpha(t)\,/\,Q_\alpha(1)$, depth 2")
        ax.set_title("the penalty changes shape with the init scale")
        ax.legend(fontsize=6.5)
        for i, D in enumerate((2, 3)):
            bx.semilogx(d.alphas, d.dist_l1[i], color=PALETTE[i], label=rf"$D={D}$: to $\beta_{{\ell_1}}$")
            bx.semilogx(
                d.alphas, d.dist_l2[i], color=PALETTE[i], linestyle="--", label=rf"$D={D}$: to $\beta_{{\ell_2}}$"
            )
            bx.plot(d.alphas_gf, d.gf_dist_l1[i], "o", color=PALETTE[i], markersize=5)
        bx.invert_xaxis()
        bx.set_xlabel(r"init scale $\alpha$ (shrinking →)")
        bx.set_ylabel(r"$\|\beta - \beta_{\ell_p}\|_\infty$")
        bx.set_title("kernel (ℓ2) to rich (ℓ1); markers: gradient flow")
        bx.legend(fontsize=6.5)
        fig.suptitle("Diagonal linear nets: implicit regulariser $Q_\\alpha$ (THEOREMS2 §20)")
        return save(fig, out_dir, NAME, formats)
