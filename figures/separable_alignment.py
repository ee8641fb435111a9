r"""§17: on separable data the layers align and the normalized margin approaches the SVM margin, slowly.

THEOREMS2.md §17 protocol: :math:`d_0 = 5`, :math:`m = 20` separable points, logistic loss (a sum,
:class:`linnet.LogisticLoss`), :math:`N = 3` (widths :math:`5\to4\to4\to1`, layers :math:`0.3\cdot` Gaussian,
:math:`\eta = 0.05`) and depth 1 (:math:`w(0) = 0`, :math:`\eta = 4/\sigma_{\max}(Z)^2`), ``ln.train.gd``, records at
log-spaced steps. The hard-margin SVM from :func:`linnet.max_margin_direction`. Soudry et al., arXiv 1710.10345;
Ji & Telgarsky, arXiv 1810.02032.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

import linnet as ln
from linnet.backend import host_rng, to_numpy

from ._style import PALETTE, C, new_figure, save, style

NAME = "separable_alignment"
ORDER = 180
TITLE = "Separable data: layer alignment and normalized margin under GD"
SOURCE = "THEOREMS.md part 2 (THEOREMS2.md) §17; Soudry et al. 2018; Ji & Telgarsky 2019"
CAPTION = (
    "Logistic GD on separable data: adjacent layers align, each layer approaches rank one and the end-to-end "
    "direction approaches the max-margin direction, all logarithmically slowly; the normalized margin rises "
    "toward the SVM margin 1/||w_hat||."
)


class SeparableAlignment(NamedTuple):
    steps: np.ndarray  # (T,) recorded steps (> 0)
    misalign: np.ndarray  # (T, N-1): 1 - |v_{i+1}^T u_i|
    rank_gap: np.ndarray  # (T, N): 1 - ||W_i||_2 / ||W_i||_F
    C: np.ndarray  # (T, N): ||W_i||_F^2 - ||W_i||_2^2 (conserved under gradient flow)
    cos_gap: np.ndarray  # (T,): 1 - cos(W_1:N, w_hat)
    margin_deep: np.ndarray  # (T,): min_i <W_1:N, z_i> / ||W_1:N||
    margin_shallow: np.ndarray  # (T,): the same at depth 1
    svm_margin: float  # 1 / ||w_hat||
    loss: np.ndarray  # (T,) deep loss


def _problem(rng):
    d0, m = 5, 20
    ws = rng.standard_normal(d0)
    X = rng.standard_normal((d0, m))
    y = np.sign(ws @ X)
    return X + 0.3 * y[None, :] * (ws / np.linalg.norm(ws))[:, None], y


def data(*, steps: int = 100_000, per_decade: int = 6, seed: int = 0) -> SeparableAlignment:
    """Alignment, rank-one gaps, cosine and normalized margins along GD at log-spaced steps."""
    rng = host_rng(seed)
    X, y = _problem(rng)
    Z = X * y[None, :]
    w_hat = np.asarray(to_numpy(ln.max_margin_direction(X, y)))[0]
    loss = ln.LogisticLoss(X, y)
    rec = np.unique(np.round(np.logspace(0, np.log10(steps), per_decade * int(np.log10(steps)) + 1)).astype(int))
    Ws = [0.3 * rng.standard_normal(s) for s in ((4, 5), (4, 4), (1, 4))]
    run = ln.train.gd(loss, Ws, lr=0.05, steps=steps, record_steps=rec, keep_history=True)
    keep = np.asarray(to_numpy(run.steps)) > 0
    hist = [np.asarray(to_numpy(h))[keep] for h in run.history]
    T = hist[0].shape[0]
    mis, gap, Cs, cos, marg = np.zeros((T, 2)), np.zeros((T, 3)), np.zeros((T, 3)), np.zeros(T), np.zeros(T)
    for k in range(T):
        Ls = [h[k] for h in hist]
        svd = [np.linalg.svd(W) for W in Ls]
        for i, W in enumerate(Ls):
            fro = np.linalg.norm(W)
            gap[k, i] = 1 - svd[i][1][0] / fro
            Cs[k, i] = fro**2 - svd[i][1][0] ** 2
        for i in range(2):
            mis[k, i] = 1 - abs(svd[i + 1][2][0] @ svd[i][0][:, 0])
        w = (Ls[2] @ Ls[1] @ Ls[0])[0]
        cos[k] = 1 - w @ w_hat / (np.linalg.norm(w) * np.linalg.norm(w_hat))
        marg[k] = np.min(Z.T @ w) / np.linalg.norm(w)
    eta1 = 1.0 / (0.25 * np.linalg.norm(Z, 2) ** 2)
    run1 = ln.train.gd(loss, [np.zeros((1, 5))], lr=eta1, steps=steps, record_steps=rec, keep_history=True)
    w1 = np.asarray(to_numpy(run1.history[0]))[np.asarray(to_numpy(run1.steps)) > 0][:, 0, :]
    marg1 = np.min(w1 @ Z, axis=1) / np.linalg.norm(w1, axis=1)
    return SeparableAlignment(
        np.asarray(to_numpy(run.steps))[keep],
        mis,
        gap,
        Cs,
        cos,
        marg,
        marg1,
        1 / float(np.linalg.norm(w_hat)),
        np.asarray(to_numpy(run.loss))[keep],
    )


def make(out_dir, *, seed: int = 0, formats=("png",)):
    """Draw and save the figure; returns the written paths."""
    d = data(seed=seed)
    with style():
        fig, (a1, a2) = new_figure(2, width=7.8, height=3.2)
        for i in range(2):
            a1.plot(d.steps, d.misalign[:, i], color=PALETTE[i], label=rf"$1-|v_{i + 2}^\top u_{i + 1}|$")
            a1.plot(
                d.steps,
                d.rank_gap[:, i],
                color=PALETTE[i],
                linestyle="--",
                label=rf"$1-\|W_{i + 1}\|_2/\|W_{i + 1}\|_F$",
            )
        a1.plot(d.steps, d.cos_gap, color=PALETTE[2], label=r"$1-\cos(W_{1:3},\hat w)$")
        a1.set_xscale("log")
        a1.set_yscale("log")
        a1.set_xlabel("GD step")
        a1.set_title("depth 3: alignment (logarithmically slow)")
        a1.legend(fontsize=6)
        a2.plot(d.steps, d.margin_deep, color=PALETTE[0], label="depth 3")
        a2.plot(d.steps, d.margin_shallow, color=PALETTE[1], label="depth 1")
        a2.axhline(d.svm_margin, color=C["black"], linestyle=":", label=r"SVM margin $1/\|\hat w\|$")
        a2.set_xscale("log")
        a2.set_xlabel("GD step")
        a2.set_ylabel(r"normalized margin $\min_i\langle w, z_i\rangle/\|w\|$")
        a2.legend(fontsize=6.5)
        return save(fig, out_dir, NAME, formats)
