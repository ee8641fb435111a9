r"""Figure 7: every critical point of a two-layer linear network (Baldi & Hornik 1989), and where GD ends.

For :math:`L(B, A) = \frac1{2m}\|Y - ABX\|_F^2` with hidden width :math:`p` and
:math:`\Sigma = \Lambda_{yx}\Lambda_{xx}^{-1}\Lambda_{xy}` (distinct eigenvalues :math:`\lambda_1 > \dots > \lambda_q`),
the critical points come in :math:`GL(p)` families indexed by :math:`I \subseteq \{1..q\}`, :math:`|I| \le p`, with
value :math:`L_I = \tfrac12(\operatorname{tr}\Lambda_{yy} - \sum_{i\in I}\lambda_i)` and Morse index
:math:`\#\{(i,j): i\in I, j\notin I, \lambda_j > \lambda_i\} + (p-|I|)\,\#\{j\notin I: \lambda_j > 0\}`; only
:math:`I = \{1..p\}` is a minimum (THEOREMS.md §6; Baldi & Hornik, Neural Networks 2(1), 1989; the index formula is
linnet's own, DERIVED+VERIFIED). The index plotted is measured from the dense Hessian
(:func:`linnet.landscape.classify`) and compared with the formula. Right: GD from many small random inits passes
near saddle values and ends at the global minimum every time (Kawaguchi 2016, THEOREMS.md §5).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

import linnet as ln
from linnet.backend import host_rng, to_numpy

from ._style import PALETTE, C, new_figure, save, style

NAME = "baldi_hornik"
#: Place in the gallery (figures are discovered; this orders them).
ORDER = 70
TITLE = "Critical points of a two-layer net: value against Morse index"
SOURCE = "THEOREMS.md §5-§6; Baldi & Hornik 1989; Kawaguchi 2016"
CAPTION = (
    "Every critical point of a two-layer linear net (Baldi–Hornik families, one per index set I) plotted as loss "
    "against Morse index measured from the Hessian, which equals the formula; only the top-p projection is a "
    "minimum, and GD from 100 small random inits passes saddle plateaus and ends at the global minimum every time."
)


class BaldiHornik(NamedTuple):
    sets: list  # index sets I (0-based)
    value: np.ndarray  # (F,) critical values L_I
    index_formula: np.ndarray  # (F,) Morse index from the formula
    index_measured: np.ndarray  # (F,) number of negative Hessian eigenvalues (classify)
    labels: np.ndarray  # (F,) classify labels
    grad_norm: np.ndarray  # (F,) gradient norms at the points
    n_zero: np.ndarray  # (F,) null Hessian directions
    p: int
    lam: np.ndarray  # eigenvalues of Sigma, descending
    global_value: float
    steps: np.ndarray  # (n_rec,) GD records
    runs: np.ndarray  # (n_rec, B) GD losses from random inits
    final_labels: np.ndarray  # (B,) classify labels of the GD end points


def data(
    *,
    n: int = 5,
    q: int = 4,
    p: int = 2,
    m: int = 50,
    n_inits: int = 100,
    steps: int = 3000,
    lr: float = 0.05,
    init_scale: float = 1e-4,
    seed: int = 0,
) -> BaldiHornik:
    """Critical points of the (n -> p -> q) net on Gaussian data, and ``n_inits`` GD runs from random inits."""
    rng = host_rng(seed)
    X = rng.standard_normal((n, m))
    Y = rng.standard_normal((q, n)) @ X + 0.3 * rng.standard_normal((q, m))
    loss = ln.SquaredLoss.from_data(X, Y)
    pts = ln.theory.baldi_hornik_points(loss, p)
    cls = [ln.landscape.classify(loss, pt.Ws) for pt in pts]
    value = np.array([float(pt.value) for pt in pts])
    Phi, Sxx = to_numpy(loss.Phi), to_numpy(loss.Sxx)
    lam = np.sort(np.linalg.eigvalsh(Phi @ Sxx @ Phi.T))[::-1]
    Ws = ln.init.gaussian((n, p, q), scale=init_scale, batch=(n_inits,), seed=rng)
    run = ln.train.gd(loss, Ws, lr=lr, steps=steps, record_every=10)
    final = ln.landscape.classify(loss, run.weights)
    return BaldiHornik(
        [pt.I for pt in pts],
        value,
        np.array([pt.index for pt in pts]),
        np.array([int(c.index) for c in cls]),
        np.array([c.label for c in cls]),
        np.array([float(c.grad_norm) for c in cls]),
        np.array([int(c.n_zero) for c in cls]),
        p,
        lam,
        float(value.min()),
        to_numpy(run.steps),
        to_numpy(run.loss),
        np.asarray(final.label),
    )


def _set_label(I) -> str:
    return "{" + ",".join(str(i + 1) for i in I) + "}" if I else "∅"


def make(out_dir, *, seed: int = 0, formats=("png",)):
    """Draw and save the figure; returns the written paths."""
    d = data(seed=seed)
    with style():
        fig, (ax, bx) = new_figure(2, width=8.4, height=3.6)
        k = np.array([len(I) for I in d.sets])
        for size in range(d.p + 1):
            sel = k == size
            ax.plot(
                d.index_measured[sel],
                d.value[sel],
                "o",
                color=PALETTE[size],
                markersize=6,
                label=f"$|I|={size}$ (Hessian)",
            )
        ax.plot(
            d.index_formula,
            d.value,
            "o",
            markersize=11,
            markerfacecolor="none",
            color=C["black"],
            label="index formula",
        )
        for I, x, y in zip(d.sets, d.index_measured, d.value):
            ax.annotate(_set_label(I), (x, y), textcoords="offset points", xytext=(7, -3), fontsize=6.5)
        ax.set_xlabel("Morse index (negative Hessian eigenvalues)")
        ax.set_ylabel(r"critical value $L_I$")
        ax.set_title(f"all critical families, $p={d.p}$, $q={d.lam.size}$")
        ax.legend(loc="lower right", fontsize=6.5)
        ax.set_xticks(np.arange(0, d.index_measured.max() + 1))
        bx.plot(d.steps[1:], d.runs[1:], color=C["blue"], alpha=0.1, linewidth=0.8)
        for I, v in zip(d.sets, d.value):
            bx.axhline(v, color=C["grey"], linestyle=":", linewidth=0.7)
            if len(I) < 2 or v == d.global_value:
                bx.annotate(
                    _set_label(I),
                    (d.steps[-1], v),
                    textcoords="offset points",
                    xytext=(2, 1),
                    fontsize=6,
                    ha="right",
                    va="bottom",
                )
        n_glob = int(np.sum(d.final_labels == "global minimum"))
        bx.plot([], [], color=C["blue"], label=f"GD from {d.runs.shape[1]} small random inits")
        bx.plot([], [], color=C["grey"], linestyle=":", label=r"critical values $L_I$")
        bx.set_xscale("log")
        bx.set_xlabel("GD iteration $k$")
        bx.set_ylabel(r"loss $L$")
        bx.set_title(f"GD passes saddles; {n_glob}/{d.runs.shape[1]} end at the global minimum")
        bx.legend(loc="center left", fontsize=6.5)
        fig.suptitle("Baldi–Hornik: every critical point but one is a saddle (THEOREMS §6)")
        return save(fig, out_dir, NAME, formats)
