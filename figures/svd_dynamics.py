r"""§15: singular values of the end-to-end matrix are learned one after another, more sharply with depth.

Matrix completion (:class:`linnet.MatrixCompletionLoss`, :math:`\tfrac12\|P_\Omega(W - M)\|_F^2`) of a rank-3
:math:`20\times20` matrix with singular values :math:`\sqrt{20}/2\cdot(3, 2, 1)` from 240 entries, GD
(``ln.train.gd``) from the balanced near-zero init :math:`10^{-3/N}Q_j` with :math:`\eta = 0.3/(N\|M\|_2^{2-2/N})`
(THEOREMS2.md §15 protocol). By ACHL's :math:`\dot\sigma_r = -N\sigma_r^{2-2/N}\tilde G_{rr}` the small singular values
are slowed more at larger depth, so the modes switch on one at a time (Arora, Cohen, Hu & Luo, arXiv 1905.13655,
Fig. 2; THEOREMS2 §15).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

import linnet as ln
from linnet.backend import host_rng, to_numpy
from linnet.theory import lowrank

from ._style import PALETTE, new_figure, save, style

NAME = "svd_dynamics"
ORDER = 160
TITLE = "Singular values of the end-to-end matrix during deep matrix completion, depths 1-3"
SOURCE = "THEOREMS.md part 2 (THEOREMS2.md) §15; Arora, Cohen, Hu & Luo 2019, Thm 3 and Fig. 2"
CAPTION = (
    "Top singular values of W during GD on matrix completion from a near-zero balanced init: at depth 1 they grow "
    "together, at depths 2 and 3 they are learned one after another, each transition sharper as depth grows."
)


class SvdDynamics(NamedTuple):
    depths: np.ndarray  # (K,)
    target: np.ndarray  # (r,) singular values of M
    times: tuple  # K arrays (T_k,): lr * step
    sigmas: tuple  # K arrays (T_k, k_top): top singular values of W(t)
    rel_loss: np.ndarray  # (K,) final loss / initial loss


def data(*, n: int = 20, m: int = 240, depths=(1, 2, 3), steps=(300, 3000, 12000), top: int = 4, seed: int = 0):
    """Singular values of the end-to-end matrix along GD, one run per depth (same M, mask and seed)."""
    rng = host_rng(seed)
    sv = np.sqrt(n) / 2 * np.array([3.0, 2.0, 1.0])
    M = lowrank.low_rank_matrix((n, n), 3, singular_values=sv, seed=rng)
    mask = lowrank.random_mask((n, n), m, seed=rng)
    loss = ln.MatrixCompletionLoss(M, mask, reduction="sum")
    times, sigmas, rel = [], [], []
    for N, T in zip(depths, steps):
        Ws = []
        for _ in range(N):
            Q, R = np.linalg.qr(rng.standard_normal((n, n)))
            Ws.append(1e-3 ** (1 / N) * Q * np.sign(np.diag(R)))
        eta = 0.3 / (N * sv[0] ** (2 - 2 / N))
        run = ln.train.gd(loss, Ws, lr=eta, steps=T, record_every=max(1, T // 600), keep_history=True)
        S = np.linalg.svd(to_numpy(ln.end_to_end(run.history)), compute_uv=False)[:, :top]
        times.append(np.asarray(to_numpy(run.times), dtype=float))
        sigmas.append(S)
        L = np.asarray(to_numpy(run.loss), dtype=float)
        rel.append(L[-1] / L[0])
    return SvdDynamics(np.asarray(depths), sv, tuple(times), tuple(sigmas), np.asarray(rel))


def crossing_times(times: np.ndarray, sigmas: np.ndarray, frac: float, count: int = 3) -> np.ndarray:
    """First time each of the top ``count`` singular values reaches ``frac`` of its final value."""
    return np.array([times[np.argmax(sigmas[:, a] >= frac * sigmas[-1, a])] for a in range(count)])


def make(out_dir, *, seed: int = 0, formats=("png",)):
    """Draw and save the figure; returns the written paths."""
    d = data(seed=seed)
    with style():
        fig, axes = new_figure(len(d.depths), width=8.4, height=3.0)
        for ax, N, t, S in zip(axes, d.depths, d.times, d.sigmas):
            for a in range(S.shape[1]):
                ax.plot(t[1:], S[1:, a], color=PALETTE[a], linewidth=1.4, label=rf"$\sigma_{a + 1}$")
            for a, s in enumerate(d.target):
                ax.axhline(s, color=PALETTE[a], linestyle=":", linewidth=0.8)
            ax.set_xscale("log")
            ax.set_title(f"depth N = {int(N)}")
            ax.set_xlabel(r"time $t = \eta k$")
        axes[0].set_ylabel("singular values of $W_{1:N}$")
        axes[0].legend(loc="lower right", fontsize=6.5)
        return save(fig, out_dir, NAME, formats)
