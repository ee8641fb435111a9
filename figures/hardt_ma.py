r"""Figure 9: a small-norm global optimum of a deep linear residual network (Hardt & Ma 2016, Theorem 2.1).

For :math:`\det R > 0` the residual layers built from the polar decomposition :math:`R = QP` (rotation roots and
:math:`P^{1/q}`, :func:`linnet.theory.hardt_ma_factorization`) multiply exactly to :math:`R`, and their norm
:math:`|||A||| = \max_i\|A_i\|_2` decays like :math:`1/\ell`, below Theorem 2.1's bound
:math:`2(\sqrt\pi + \sqrt{3\gamma})^2/\ell`, :math:`\gamma = \max|\log\sigma_i(R)|` (THEOREMS.md §8; Hardt & Ma,
arXiv 1611.04231, Theorem 2.1 CONFIRMED, construction DERIVED+VERIFIED).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

import linnet as ln
from linnet.backend import host_rng, to_numpy

from ._style import EPS, C, new_figure, on_log_grid, save, style

NAME = "hardt_ma"
#: Place in the gallery (figures are discovered; this orders them).
ORDER = 90
TITLE = "Hardt–Ma: the norm of a small residual optimum decays like 1/ℓ"
SOURCE = "THEOREMS.md §8; Hardt & Ma 2016, Theorem 2.1"
CAPTION = (
    "The residual layers A_i built from the polar decomposition of a target R (det R > 0) multiply exactly to R "
    "and have max_i ‖A_i‖₂ decaying like 1/ℓ with depth ℓ, below Hardt & Ma's Theorem 2.1 bound "
    "2(√π + √(3γ))²/ℓ."
)

#: What the title states of the reconstruction error: below 1e4 eps. The error is round-off (1e-15 at depth 4 to
#: 1e-13 at depth 256, its digits depending on the BLAS kernel), so the title gives this bound, not the digits.
RECON_BOUND = 1e4 * EPS


class HardtMa(NamedTuple):
    depths: np.ndarray  # (K,)
    norm: np.ndarray  # (K,) max_i ||A_i||_2 of the construction
    bound: np.ndarray  # (K,) Theorem 2.1 bound
    recon_error: np.ndarray  # (K,) ||(I+A_l)...(I+A_1) - R||_F / ||R||_F
    gamma: float
    sigma: np.ndarray  # singular values of R
    det: float
    slope: float  # fitted slope of log norm vs log depth
    intercept: float


def random_target(d: int, cond: float, rng) -> np.ndarray:
    """A random ``d x d`` target with ``det > 0``, singular values log-spaced in ``[cond^-1/2, cond^1/2]``."""
    U, _ = np.linalg.qr(rng.standard_normal((d, d)))
    V, _ = np.linalg.qr(rng.standard_normal((d, d)))
    if np.linalg.det(U) * np.linalg.det(V) < 0:
        U[:, 0] = -U[:, 0]
    s = np.geomspace(cond**-0.5, cond**0.5, d)
    return (U * s) @ V.T


def data(
    *, d: int = 4, cond: float = 4.0, depths=(4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256), seed: int = 0
) -> HardtMa:
    """Norms of the Hardt–Ma construction against depth, with the Theorem 2.1 bound."""
    rng = host_rng(seed)
    R = random_target(d, cond, rng)
    sigma = np.linalg.svd(R, compute_uv=False)
    gamma = float(np.max(np.abs(np.log(sigma))))
    norm, bound, err = [], [], []
    for depth in depths:
        As = ln.theory.hardt_ma_factorization(R, depth)
        norm.append(max(float(np.linalg.norm(to_numpy(A), 2)) for A in As))
        bound.append(float(ln.theory.hardt_ma_norm_bound(R, depth)))
        err.append(float(np.linalg.norm(to_numpy(ln.end_to_end(As, residual=True)) - R) / np.linalg.norm(R)))
    depths = np.asarray(depths)
    norm = np.asarray(norm)
    slope, intercept = np.polyfit(np.log(depths), np.log(norm), 1)
    return HardtMa(
        depths,
        norm,
        np.asarray(bound),
        np.asarray(err),
        gamma,
        sigma,
        float(np.linalg.det(R)),
        float(slope),
        float(intercept),
    )


def _below(x: float, bound: float) -> str:
    """``x`` for the title: ``< bound`` when it is below (round-off), else its value."""
    return f"< {bound:.0e}" if x < bound else f"{x:.1e}"


def make(out_dir, *, seed: int = 0, formats=("png",)):
    """Draw and save the figure; returns the written paths."""
    d = data(seed=seed)
    with style():
        fig, (ax,) = new_figure(1, width=5.2, height=3.6)
        # Drawn on a 1e-4-decade grid (on_log_grid), and the two straight lines (the bound is c/l, the fit a power
        # law) through their end points only: their last digits depend on the BLAS kernel, and through collinear
        # vertices Agg's line joins would follow the sign of round-off.
        ends = d.depths[[0, -1]]
        ax.loglog(
            ends,
            on_log_grid(d.bound[[0, -1]]),
            color=C["black"],
            linewidth=1.6,
            label=r"Thm 2.1 bound $2(\sqrt{\pi}+\sqrt{3\gamma})^2/\ell$",
        )
        ax.loglog(
            d.depths,
            on_log_grid(d.norm),
            "o",
            color=C["vermillion"],
            markersize=5,
            label=r"construction: $\max_i\|A_i\|_2$",
        )
        ax.loglog(
            ends,
            on_log_grid(np.exp(d.intercept) * ends**d.slope),
            color=C["vermillion"],
            linestyle="--",
            linewidth=1.0,
            label=f"fit: slope {d.slope:.3f} (trend $1/\\ell$: $-1$)",
        )
        ax.set_xlabel(r"depth $\ell$ (residual layers $I + A_i$)")
        ax.set_ylabel(r"$|||A||| = \max_i \|A_i\|_2$")
        ax.set_title(
            rf"Hardt–Ma: $d={d.sigma.size}$, $\gamma={d.gamma:.2f}$, "
            rf"max reconstruction error {_below(d.recon_error.max(), RECON_BOUND)}"
        )
        ax.legend(loc="lower left")
        return save(fig, out_dir, NAME, formats)
