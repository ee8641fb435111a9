r"""Figure 8: Hessian spectra at three kinds of critical points of a deep linear network.

1. An interpolating global minimum of a scalar-output net (:math:`n` samples, :math:`n < d_0`): the Hessian is
   :math:`\nabla^2 L = \frac1m\sum_i \nabla f_i\nabla f_i^\top` of rank :math:`n`, so :math:`n` positive and
   :math:`d - n` zero eigenvalues (THEOREMS.md §11; Poggio & Cooper 2020, Cooper 2018, arXiv 1804.10200).
2. The origin of a depth-2 net: a strict saddle with eigenvalues :math:`\pm\sigma_i(\Phi)`, each :math:`d_1` times
   (THEOREMS.md §5; Kawaguchi 2016, arXiv 1605.07110).
3. The origin of a depth-3 net: a non-strict saddle, :math:`\nabla^2 L(0) = 0` exactly (THEOREMS.md §5; FODL
   Lecture 3, Prop 3).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

import linnet as ln
from linnet.backend import host_rng, to_numpy

from ._style import C, new_figure, save, style

NAME = "hessian_spectra"
#: Place in the gallery (figures are discovered; this orders them).
ORDER = 80
TITLE = "Hessian spectra: interpolating minimum, strict saddle, flat saddle"
SOURCE = "THEOREMS.md §5, §11; Kawaguchi 2016; Poggio & Cooper 2020"
CAPTION = (
    "Sorted Hessian eigenvalues at an interpolating global minimum (n positive, d - n zero), at the origin of a "
    "depth-2 net (a strict saddle with eigenvalues ±σ_i(Φ)) and at the origin of a depth-3 net (all exactly zero)."
)

#: Eigenvalues with |λ| <= ZERO_RTOL * max|λ| count as zero (THEOREMS.md §11 uses 1e-8 relative).
ZERO_RTOL = 1e-8


class HessianSpectra(NamedTuple):
    eig_min: np.ndarray  # (d,) sorted eigenvalues at the interpolating minimum
    n_samples: int  # n
    loss_min: float  # loss at that point (0 up to round-off)
    eig_saddle: np.ndarray  # (P2,) at the origin of the depth-2 net
    sigma: np.ndarray  # singular values of Phi (whitened target of the saddles)
    d1: int  # hidden width of the depth-2 net
    eig_flat: np.ndarray  # (P3,) at the origin of the depth-3 net
    widths_min: tuple
    widths_saddle: tuple
    widths_flat: tuple


def _eigs(H) -> np.ndarray:
    return np.linalg.eigvalsh(to_numpy(H))


def data(*, d0: int = 6, n: int = 3, hidden: int = 3, d: int = 3, seed: int = 0) -> HessianSpectra:
    """Hessian spectra at the three points; sizes: input ``d0``, samples ``n < d0``, hidden width, target ``d``."""
    if not 0 < n < d0:
        raise ValueError(f"`n` must satisfy 0 < n < d0 = {d0} (interpolation regime), got {n}")
    rng = host_rng(seed)
    # 1. interpolating minimum: realisable scalar targets, the balanced factorisation of the min-norm interpolant
    X = rng.standard_normal((d0, n))
    Y = rng.standard_normal((1, d0)) @ X
    loss = ln.SquaredLoss.from_data(X, Y)
    widths_min = (d0, hidden, hidden, 1)
    Ws = ln.init.balanced(loss.Phi, widths_min)
    eig_min = _eigs(ln.hessian(loss, Ws))
    loss_min = float(ln.loss(loss, Ws))
    # 2./3. whitened square target, origins of depth-2 and depth-3 nets
    Phi = rng.standard_normal((d, d))
    sq = ln.SquaredLoss.whitened(Phi)
    widths_saddle = (d, hidden, d)
    eig_saddle = _eigs(ln.hessian(sq, ln.init.zeros(widths_saddle)))
    widths_flat = (d, hidden, hidden, d)
    eig_flat = _eigs(ln.hessian(sq, ln.init.zeros(widths_flat)))
    sigma = np.linalg.svd(Phi, compute_uv=False)
    return HessianSpectra(
        eig_min, n, loss_min, eig_saddle, sigma, hidden, eig_flat, widths_min, widths_saddle, widths_flat
    )


def counts(eigs: np.ndarray, rtol: float = ZERO_RTOL) -> tuple[int, int, int]:
    """``(negative, zero, positive)`` counts, zero meaning ``|λ| <= rtol * max|λ|`` (all zero if ``max|λ| == 0``)."""
    scale = float(np.max(np.abs(eigs))) if eigs.size else 0.0
    tol = rtol * scale
    zero = int(np.sum(np.abs(eigs) <= tol))
    return int(np.sum(eigs < -tol)), zero, int(np.sum(eigs > tol))


def _panel(ax, eigs, title):
    neg, zero, pos = counts(eigs)
    scale = float(np.max(np.abs(eigs)))
    tol = ZERO_RTOL * scale
    idx = np.arange(1, eigs.size + 1)
    for mask, color, label in (
        (eigs < -tol, C["vermillion"], f"negative ({neg})"),
        (np.abs(eigs) <= tol, C["grey"], f"zero ({zero})"),
        (eigs > tol, C["blue"], f"positive ({pos})"),
    ):
        if mask.any():
            ax.vlines(idx[mask], 0.0, eigs[mask], color=color, linewidth=1.0)
            ax.plot(idx[mask], eigs[mask], "o", color=color, markersize=3.2, label=label)
    ax.axhline(0.0, color=C["black"], linewidth=0.6)
    ax.set_title(title)
    ax.set_xlabel("eigenvalue rank $k$")
    ax.legend(loc="upper left")


def make(out_dir, *, seed: int = 0, formats=("png",)):
    """Draw and save the figure; returns the written paths."""
    d = data(seed=seed)
    with style():
        fig, axes = new_figure(3, width=8.4, height=3.0)
        _panel(axes[0], d.eig_min, f"interpolating minimum\n$n={d.n_samples}$ samples, $d={d.eig_min.size}$ params")
        axes[0].set_ylabel(r"Hessian eigenvalue $\lambda_k$")
        _panel(
            axes[1],
            d.eig_saddle,
            "origin, depth 2: strict saddle\n" + r"$\lambda=\pm\sigma_i(\Phi)$, each $d_1$ times",
        )
        for s in d.sigma:
            axes[1].axhline(s, color=C["black"], linestyle=":", linewidth=0.7)
            axes[1].axhline(-s, color=C["black"], linestyle=":", linewidth=0.7)
        _panel(axes[2], d.eig_flat, "origin, depth 3: flat saddle\n" + r"$\nabla^2 L(0) = 0$")
        axes[2].set_ylim(-1.0, 1.0)
        fig.suptitle("Hessian spectra of deep linear nets (THEOREMS §5, §11)")
        return save(fig, out_dir, NAME, formats)
