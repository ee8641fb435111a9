r"""Figure 11: what GD sees and what single-sample SGD sees (Poggio & Cooper 2020; THEOREMS.md §11).

Critical points of :math:`L = \frac1{2n}\sum_i \ell_i^2` split into type 1 (:math:`\ell_i\nabla\ell_i = 0` for every
sample: interpolating global minima, and spurious points) and type 2 (only the sum vanishes). GD stops at both;
single-sample SGD cannot stay at a type-2 point.

Left, the 1-D example of the note (§7.1): samples :math:`\pm x_1`, per-sample losses :math:`\tfrac12(w \mp x_1)^2`.
GD sees their mean, with one minimum at 0 (a type-2 point); SGD sees two losses with minima at :math:`\pm x_1` and
keeps moving between them. Right, a depth-3 scalar-output linear net: GD from a random init converges to the
least-squares minimum of non-interpolable data (:math:`n > d_0`), a type-2 point where single-sample SGD moves
away at once; at an interpolating minimum (:math:`n < d_0`, type 1) every per-sample gradient vanishes and SGD
stays put to round-off.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

import linnet as ln
from linnet.backend import host_rng, to_numpy

from ._style import EPS, C, floored, new_figure, save, style

NAME = "poggio_cooper"
#: Place in the gallery (figures are discovered; this orders them).
ORDER = 110
TITLE = "GD's view and SGD's view: SGD leaves type-2 critical points"
SOURCE = "THEOREMS.md §11; Poggio & Cooper 2020"
CAPTION = (
    "In the 1-D example GD sees one minimum at 0 while single-sample SGD sees two at ±x₁ and keeps moving; in a "
    "depth-3 linear net SGD leaves the type-2 critical point (least squares, no interpolation) where GD stopped, "
    "but stays at an interpolating (type-1) minimum where every per-sample gradient vanishes."
)

#: GD on the type-2 data stops once the full gradient norm is below this.
GTOL = 1e-13
#: Round-off floor of the SGD displacements and per-sample gradients (the weights are O(1)): 100 eps. At an
#: interpolating minimum both are zero in exact arithmetic and a few eps in floating point (<= 3e-16 displacement,
#: ~2e-15 gradient here), with digits that depend on the BLAS kernel; they are drawn, and printed, as below this.
ROUNDOFF = 100 * EPS


class PoggioCooper(NamedTuple):
    x1: float
    w: np.ndarray  # (G,) grid
    full: np.ndarray  # (G,) loss GD sees
    per_sample: np.ndarray  # (2, G) losses SGD sees
    sgd_1d: np.ndarray  # (K,) SGD iterates of the 1-D problem, from w = 0
    lr: float
    steps: np.ndarray  # (n_rec,) SGD record steps (deep nets)
    disp_type2: np.ndarray  # (n_rec,) ||theta_k - theta_0|| for SGD from the GD limit (type 2)
    loss_type2: np.ndarray  # (n_rec,) full loss along that SGD run
    disp_type1: np.ndarray  # (n_rec,) same from an interpolating minimum (type 1)
    disp_origin: np.ndarray  # (n_rec,) same from the origin (spurious type 1) on the type-2 data
    gd_grad_type2: float  # ||grad L|| at the GD limit
    gd_loss_type2: float
    min_value_type2: float  # least-squares minimum (closed form)
    per_sample_grad_type2: float  # max_i ||grad of sample i's loss|| at the GD limit
    per_sample_grad_type1: float  # the same at the interpolating minimum


def _per_sample_grad(X, Y, Ws) -> float:
    """Largest per-sample gradient norm: the samples as a batch of one-sample problems."""
    Xs = np.moveaxis(X, -1, 0)[..., None]  # (n, d0, 1)
    Ys = np.moveaxis(Y, -1, 0)[..., None]  # (n, 1, 1)
    Gs = ln.grad(ln.SquaredLoss.from_data(Xs, Ys), Ws)
    return float(np.max(np.sqrt(sum(np.sum(to_numpy(G) ** 2, axis=(-2, -1)) for G in Gs))))


def _displacement(history, theta0) -> np.ndarray:
    return np.linalg.norm(to_numpy(ln.flatten(history)) - theta0, axis=-1)


def data(
    *,
    x1: float = 1.0,
    lr: float = 0.05,
    steps: int = 2000,
    d0: int = 4,
    hidden: int = 3,
    n_type2: int = 12,
    n_type1: int = 3,
    seed: int = 0,
) -> PoggioCooper:
    """The 1-D example and the deep-net experiment."""
    rng = host_rng(seed)
    # 1-D example: one weight, samples x = 1 with targets +-x1
    X1, Y1 = np.ones((1, 2)), np.array([[x1, -x1]])
    w = np.linspace(-2.0 * x1, 2.0 * x1, 201)
    Wg = (w[:, None, None],)
    full = to_numpy(ln.loss(ln.SquaredLoss.from_data(X1, Y1), Wg))
    per = np.stack(
        [to_numpy(ln.loss(ln.SquaredLoss.from_data(X1[:, i : i + 1], Y1[:, i : i + 1]), Wg)) for i in range(2)]
    )
    run1 = ln.train.sgd(
        ln.SquaredLoss.from_data(X1, Y1),
        (np.zeros((1, 1)),),
        lr=0.3,
        steps=steps,
        batch_size=1,
        seed=rng,
        keep_history=True,
    )
    sgd_1d = to_numpy(run1.history[0])[:, 0, 0]
    widths = (d0, hidden, hidden, 1)
    # type 2: noisy targets, n > d0 (no interpolation). GD from a random init to the least-squares minimum
    X2 = rng.standard_normal((d0, n_type2))
    Y2 = rng.standard_normal((1, d0)) @ X2 + 0.5 * rng.standard_normal((1, n_type2))
    loss2 = ln.SquaredLoss.from_data(X2, Y2)
    gd = ln.train.gd(loss2, ln.init.gaussian(widths, scale=0.5, seed=rng), lr=lr, steps=20_000, gtol=GTOL)
    W2 = gd.weights
    g2 = float(np.sqrt(sum(np.sum(to_numpy(G) ** 2) for G in ln.grad(loss2, W2))))
    run2 = ln.train.sgd(loss2, W2, lr=lr, steps=steps, batch_size=1, seed=rng, keep_history=True)
    # type 1: realisable targets, n < d0; an interpolating minimum (balanced factorization of the interpolant)
    X3 = rng.standard_normal((d0, n_type1))
    Y3 = rng.standard_normal((1, d0)) @ X3
    loss3 = ln.SquaredLoss.from_data(X3, Y3)
    W3 = ln.init.balanced(loss3.Phi, widths)
    run3 = ln.train.sgd(loss3, W3, lr=lr, steps=steps, batch_size=1, seed=rng, keep_history=True)
    # spurious type 1: the origin (every per-sample gradient has a zero factor)
    W0 = ln.init.zeros(widths)
    run0 = ln.train.sgd(loss2, W0, lr=lr, steps=steps, batch_size=1, seed=rng, keep_history=True)
    return PoggioCooper(
        x1,
        w,
        full,
        per,
        sgd_1d,
        lr,
        to_numpy(run2.steps),
        _displacement(run2.history, to_numpy(ln.flatten(W2))),
        to_numpy(run2.loss),
        _displacement(run3.history, to_numpy(ln.flatten(W3))),
        _displacement(run0.history, to_numpy(ln.flatten(W0))),
        g2,
        float(to_numpy(ln.loss(loss2, W2))),
        float(to_numpy(loss2.c0)),
        _per_sample_grad(X2, Y2, W2),
        _per_sample_grad(X3, Y3, W3),
    )


def _below(x: float, bound: float) -> str:
    """``x`` for a label: ``< bound`` when it is below (its digits are round-off or set by the stopping tolerance,
    so they vary with the BLAS kernel), else its value."""
    return f"< {bound:.0e}" if x < bound else f"= {x:.1e}"


def make(out_dir, *, seed: int = 0, formats=("png",)):
    """Draw and save the figure; returns the written paths."""
    d = data(seed=seed)
    with style():
        fig, (ax, bx) = new_figure(2, width=8.6, height=3.5)
        ax.plot(d.w, d.full, color=C["black"], linewidth=2.0, label=r"GD sees the mean $\frac{1}{2}(w^2+x_1^2)$")
        ax.plot(d.w, d.per_sample[0], color=C["blue"], label=r"SGD sees $\frac{1}{2}(w-x_1)^2$")
        ax.plot(d.w, d.per_sample[1], color=C["vermillion"], label=r"SGD sees $\frac{1}{2}(w+x_1)^2$")
        top = float(d.full.max())
        counts, edges = np.histogram(d.sgd_1d[1:], bins=40, range=(d.w[0], d.w[-1]))
        ax.bar(
            edges[:-1],
            0.35 * top * counts / counts.max(),
            width=np.diff(edges),
            align="edge",
            color=C["green"],
            alpha=0.35,
            label="SGD iterates from $w=0$ (histogram)",
        )
        for x in (-d.x1, 0.0, d.x1):
            ax.axvline(x, color=C["grey"], linestyle=":", linewidth=0.8)
        ax.set_xlabel("$w$")
        ax.set_ylabel("loss")
        ax.set_title(rf"1-D example: samples $\pm x_1$, $x_1={d.x1:g}$")
        ax.legend(loc="upper center", fontsize=6.3)
        floor = ROUNDOFF  # displacements below it (round-off, and the origin's exact 0) are drawn at it
        bx.axhline(floor, color=C["grey"], linestyle=":", linewidth=1.0, label=f"round-off floor 100ε = {floor:.0e}")
        bx.loglog(
            d.steps[1:],
            floored(d.disp_type2[1:], floor),
            color=C["vermillion"],
            label=f"from GD's limit (type 2): per-sample grads up to {d.per_sample_grad_type2:.2g}",
        )
        bx.loglog(
            d.steps[1:],
            floored(d.disp_type1[1:], floor),
            color=C["blue"],
            label=f"from an interpolating min (type 1): per-sample grads {_below(d.per_sample_grad_type1, floor)}",
        )
        bx.loglog(
            d.steps[1:],
            floored(d.disp_origin[1:], floor),
            color=C["black"],
            linestyle="--",
            label=f"from the origin (spurious type 1): max {d.disp_origin.max():g}",
        )
        bx.set_xlabel("single-sample SGD step $k$")
        bx.set_ylabel(r"$\|\theta_k - \theta_0\|$")
        bx.set_title(
            rf"depth-3 net, SGD $\eta={d.lr:g}$; GD stopped with $\|\nabla L\|$ {_below(d.gd_grad_type2, GTOL)}"
        )
        bx.legend(loc="center right", fontsize=6.3)
        bx.set_ylim(floor / 3, 10)
        fig.suptitle("Poggio–Cooper: SGD cannot stay at a type-2 critical point (THEOREMS §11)")
        return save(fig, out_dir, NAME, formats)
