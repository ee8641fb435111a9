r"""§15: effective rank and error on the unobserved entries against depth and the number of observations.

THEOREMS2.md §15 check 3 protocol: :math:`n = 20`, rank-2 :math:`M = \sqrt n/2\cdot U\operatorname{diag}(3, 1.5)V^\top`,
:math:`m` entries uniform without replacement, loss :math:`\tfrac12\|P_\Omega(W - M)\|_F^2`, balanced init of norm
:math:`10^{-3}`, GD with :math:`\eta = 0.3/(N\|M\|_2^{2-2/N})` until :math:`\ell\le` ``ftol`` :math:`\cdot\,\ell(0)` (capped),
all seeds and :math:`m` as one batch per depth; the minimum-nuclear-norm completion
(:func:`linnet.theory.min_nuclear_norm`, certified gap) as the convex reference. Effective rank of Roy & Vetterli
(2007). Arora, Cohen, Hu & Luo, arXiv 1905.13655, Table 1 (depth 3 better than depth 2 with few observations).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

import linnet as ln
from linnet.backend import host_rng, to_numpy
from linnet.theory import lowrank

from ._style import PALETTE, C, new_figure, save, style

NAME = "completion_depth"
ORDER = 170
TITLE = "Deep matrix completion: effective rank and test error against depth and observations"
SOURCE = "THEOREMS.md part 2 (THEOREMS2.md) §15 check 3; Arora, Cohen, Hu & Luo 2019, Table 1"
CAPTION = (
    "Median effective rank and relative error on the unobserved entries of a rank-2 20x20 matrix completed by GD "
    "from near-zero init: depth 3 is closer to rank 2 than depth 2 and recovers the matrix from fewer entries; "
    "depth 1 leaves the unobserved entries at zero."
)


class CompletionDepth(NamedTuple):
    depths: np.ndarray  # (K,)
    ms: np.ndarray  # (J,) numbers of observed entries
    erank: np.ndarray  # (K, J, S) effective rank per depth, m, seed
    test_error: np.ndarray  # (K, J, S) relative error on the unobserved entries
    nuclear_error: np.ndarray  # (J, S) the same for the minimum-nuclear-norm completion (nan if not computed)


def data(
    *,
    ms=(80, 120, 160, 200),
    depths=(1, 2, 3),
    seeds: int = 5,
    n: int = 20,
    ftol: float = 1e-5,
    max_steps: int = 20_000,
    nuclear: bool = True,
    seed: int = 0,
) -> CompletionDepth:
    """Effective rank and unobserved error per (depth, m, seed); one GD batch per depth."""
    rng = host_rng(seed)
    sv = np.sqrt(n) / 2 * np.array([3.0, 1.5])
    J, S = len(ms), int(seeds)
    Ms = np.stack([lowrank.low_rank_matrix((n, n), 2, singular_values=sv, seed=rng) for _ in range(J * S)])
    masks = np.stack([lowrank.random_mask((n, n), int(m), seed=rng) for m in ms for _ in range(S)])
    loss = ln.MatrixCompletionLoss(Ms, masks, reduction="sum")
    er, te = [], []
    for N in depths:
        Ws = []
        for _ in range(N):
            Q, R = np.linalg.qr(rng.standard_normal((J * S, n, n)))
            Ws.append(1e-3 ** (1 / N) * Q * np.sign(np.diagonal(R, axis1=-2, axis2=-1))[..., None, :])
        L0 = float(np.min(to_numpy(ln.loss(loss, Ws))))
        eta = 0.3 / (N * sv[0] ** (2 - 2 / N))
        run = ln.train.gd(loss, Ws, lr=eta, steps=max_steps, ftol=ftol * L0, record_every=max_steps)
        We = ln.end_to_end(run.weights)
        er.append(np.asarray(to_numpy(lowrank.effective_rank(We))).reshape(J, S))
        te.append(np.asarray(to_numpy(lowrank.unobserved_error(We, Ms, masks))).reshape(J, S))
    nuc = np.full((J, S), np.nan)
    if nuclear:
        for k in range(J * S):
            X = lowrank.min_nuclear_norm(ln.MatrixCompletionLoss(Ms[k], masks[k]), None, tol=1e-4, max_iter=50_000).X
            nuc.flat[k] = float(lowrank.unobserved_error(X, Ms[k], masks[k]))
    return CompletionDepth(np.asarray(depths), np.asarray(ms), np.asarray(er), np.asarray(te), nuc)


def make(out_dir, *, seed: int = 0, formats=("png",)):
    """Draw and save the figure; returns the written paths."""
    d = data(seed=seed)
    with style():
        fig, (a1, a2) = new_figure(2, width=7.6, height=3.2)
        for k, N in enumerate(d.depths):
            c = PALETTE[k]
            a1.plot(d.ms, np.median(d.erank[k], axis=-1), "o-", color=c, label=f"depth {int(N)}")
            a2.plot(d.ms, np.median(d.test_error[k], axis=-1), "o-", color=c, label=f"depth {int(N)}")
        if np.all(np.isfinite(d.nuclear_error)):
            a2.plot(d.ms, np.median(d.nuclear_error, axis=-1), "s--", color=C["black"], label="min nuclear norm")
        a1.axhline(2.0, color=C["black"], linestyle=":", linewidth=0.8)
        a1.set_xlabel("observed entries m")
        a1.set_ylabel("effective rank (median)")
        a1.set_yscale("log")
        a2.set_xlabel("observed entries m")
        a2.set_ylabel("relative error, unobserved entries (median)")
        a2.set_yscale("log")
        a1.legend(fontsize=6.5)
        a2.legend(fontsize=6.5)
        return save(fig, out_dir, NAME, formats)
