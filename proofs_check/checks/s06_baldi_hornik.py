r"""Baldi & Hornik 1989: every critical point of the two-layer linear network, with values and Morse indices (THEOREMS.md §6).

**Hypotheses.** :math:`L(B, A) = \|Y - ABX\|_F^2/(2m)`, :math:`B \in \mathbb R^{p\times n}`,
:math:`A \in \mathbb R^{q\times p}`, :math:`p < \min(n, q)`, :math:`\Lambda_{xx} \succ 0`, and
:math:`\Sigma = \Lambda_{yx}\Lambda_{xx}^{-1}\Lambda_{xy} = U\operatorname{diag}(\lambda)U^\top` with distinct
eigenvalues :math:`\lambda_1 > \dots > \lambda_q`.

**Conclusion.** For each :math:`I \subseteq \{1..q\}`, :math:`|I| \le p`, the point :math:`A = [U_I, 0]`,
:math:`B = A^\top\Lambda_{yx}\Lambda_{xx}^{-1}` is critical with value
:math:`L_I = \tfrac12(\operatorname{tr}\Lambda_{yy} - \sum_{i\in I}\lambda_i)` and Morse index

.. math::

    \operatorname{index}(I) = \#\{(i, j): i \in I,\ j \notin I,\ \lambda_j > \lambda_i\}
        + (p - |I|)\,\#\{j \notin I: \lambda_j > 0\};

at :math:`|I| = p` exactly :math:`p^2` Hessian eigenvalues vanish (the :math:`GL(p)` orbit), and only the top-:math:`p`
set has index 0 (a unique minimum up to :math:`GL(p)`).

**Measured.** The points of :func:`linnet.theory.baldi_hornik_points` on several random instances
(:math:`n, q \le 7`, :math:`m = 6n`, :math:`\Lambda_{xx} \ne I`; one instance has :math:`q = n + 1`, so :math:`\lambda_q = 0` and the
:math:`\lambda_j > 0` clause of the index formula decides the index of the points that leave it out; a part asserts
that it does): gradient (:func:`linnet.grad`) max-norm
:math:`\le 10^{-12}` relative, :math:`|L - L_I| \le 10^{-12}` relative with :math:`L_I` from an independent host
eigen-decomposition, the index counted on the dense Hessian (:func:`linnet.hessian`, eigenvalues below
:math:`-10^{-9}\|H\|`) against the formula (computed here independently, and the engine's ``index``), the
:math:`p^2` zero eigenvalues, and exactly one index-0 point. GD from random inits reaches :math:`L_{\{1..p\}}`.

**Control.** The classic slip: eigenvectors of :math:`\Lambda_{yx}\Lambda_{yx}^\top` instead of :math:`\Sigma`
(forgetting :math:`\Lambda_{xx}^{-1}`). With :math:`\Lambda_{xx} \ne I` those points are not critical.

**Source.** Baldi & Hornik, *Neural networks and principal component analysis: learning from examples without
local minima*, Neural Networks 2(1):53-58, 1989 (abstract CONFIRMED; fact numbering UNCONFIRMED, not used).
Enumeration and values DERIVED+VERIFIED; the index formula is THEOREMS.md's own.

**Status.** Statement CONFIRMED; formulas DERIVED+VERIFIED; index formula ours. Reported as MIXED.
"""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple

import numpy as np

import linnet as ln

from .._core import Check, Context, Measurement, host, register
from .._engine import gd_replay
from .s05_no_bad_minima import floored, regression_data

GRAD_RTOL_F64 = 1e-12  # THEOREMS.md §6: gradient max-norm, relative
VALUE_RTOL_F64 = 1e-12  # THEOREMS.md §6: |L - L_I| relative
NEG_RTOL_F64 = 1e-9  # THEOREMS.md §6: an eigenvalue below -1e-9 ||H|| counts as negative (|.| below: zero)

# (n, q, p); the last has q = n + 1, so Sigma (rank <= n) has lambda_q = 0 and the index formula's "lambda_j > 0"
# clause decides the index of every point with |I| < p and q not in I
INSTANCES = ((6, 5, 3), (5, 4, 2), (7, 3, 2), (7, 6, 4), (4, 5, 3))
# host eigenvalues (float64, from the data) below this multiple of eps * lambda_1 count as 0 in the index formula:
# lambda_q = 0 comes out of eigh as a few eps * lambda_1 of either sign (observed 0.6 eps), 1e3 is the headroom
ZERO_LAM_EPS = 1e3


def bh_data(rng: np.random.Generator, n: int, q: int, m: int):
    r"""``X`` with :math:`\Lambda_{xx} \ne I` (eigenvalues in [0.5, 2]) and ``Y = Phi X + noise``
    (:func:`.s05_no_bad_minima.regression_data`), resampled until Sigma's eigenvalues are well separated (the theorem
    assumes them distinct)."""
    while True:
        X, Y = regression_data(rng, n, q, m)
        lam = host_sigma(X, Y)[0]
        if np.min(-np.diff(lam)) > 2e-2 * lam[0]:
            return X, Y


def host_sigma(X: np.ndarray, Y: np.ndarray, *, forget_sxx: bool = False):
    """Eigenvalues (descending) and eigenvectors of Sigma on the host; ``forget_sxx`` uses ``Syx Syx^T`` (the slip)."""
    m = X.shape[1]
    Sxx, Syx = X @ X.T / m, Y @ X.T / m
    S = Syx @ Syx.T if forget_sxx else Syx @ np.linalg.solve(Sxx, Syx.T)
    lam, U = np.linalg.eigh(0.5 * (S + S.T))
    return lam[::-1], U[:, ::-1], Sxx, Syx


def index_formula(I, lam: np.ndarray, p: int, *, zero: float = 0.0) -> int:
    """The Morse index formula of THEOREMS.md §6, written here independently of the engine; ``lam_j <= zero`` counts
    as not positive (``zero``: the round-off level of a vanishing host eigenvalue)."""
    rest = [j for j in range(lam.size) if j not in I]
    return sum(1 for i in I for j in rest if lam[j] > lam[i]) + (p - len(I)) * sum(1 for j in rest if lam[j] > zero)


def clause_matters(I, lam: np.ndarray, p: int, zero: float) -> bool:
    """Whether dropping the ``lambda_j > 0`` clause (counting every ``j`` not in ``I``) changes the index of ``I``."""
    rest = [j for j in range(lam.size) if j not in I]
    return len(I) < p and any(lam[j] <= zero for j in rest)


def relative_grad(ctx: Context, loss, Ws) -> float:
    r"""Gradient max-norm relative to the size of the terms it is made of.

    :math:`\partial L/\partial A = (AB\Lambda_{xx} - \Lambda_{yx})B^\top`, :math:`\partial L/\partial B =
    A^\top(AB\Lambda_{xx} - \Lambda_{yx})`: the scale is :math:`\max(\|A\|, \|B\|)(\|AB\Lambda_{xx}\| + \|\Lambda_{yx}\|)`
    (0 / 0 at the origin counts as 0).
    """
    G = [host(g) for g in ln.grad(loss, Ws)]
    Bh, Ah = host(Ws[0]), host(Ws[1])
    Sxx, Syx = host(loss.Sxx), host(loss.Syx)
    scale = max(np.linalg.norm(Ah, 2), np.linalg.norm(Bh, 2)) * (np.linalg.norm(Ah @ Bh @ Sxx) + np.linalg.norm(Syx))
    gmax = max(float(np.max(np.abs(g))) for g in G)
    return gmax / scale if scale > 0 else gmax


def slip_points(ctx: Context, X, Y, p: int):
    """Critical-point candidates from the *wrong* eigenvectors (those of Syx Syx^T): ``(I, (B, A))`` for |I| = 1..p.

    Index sets that use a null eigenvector are left out: when ``q > n`` both matrices share the null space
    (``Syx^T u = 0``), so that column of ``A`` meets a zero row of ``B`` and the slip changes nothing there."""
    lam, U, Sxx, Syx = host_sigma(X, Y, forget_sxx=True)
    q = U.shape[0]
    T = Syx @ np.linalg.inv(Sxx)
    null = {i for i in range(q) if lam[i] <= ZERO_LAM_EPS * np.finfo(np.float64).eps * lam[0]}
    out = []
    for k in range(1, p + 1):
        for I in itertools.combinations(range(q), k):
            if null.intersection(I):
                continue
            A = np.zeros((q, p))
            A[:, :k] = U[:, list(I)]
            out.append((I, (ctx.asarray(A.T @ T), ctx.asarray(A))))
    return out


class _PointFigures(NamedTuple):
    """What :func:`_point_figures` measures at one critical point."""

    grad: float  # relative max-norm of the gradient
    value: tuple  # relative errors of ln.loss and of the engine's value against L_I
    index: int  # Morse index of the dense Hessian
    index_mismatch: bool  # the index differs from the formula or from the engine's
    clause: bool  # the formula's "lambda_j > 0" clause decides this point's index
    zero_mismatch: bool  # at |I| = p, the count of zero eigenvalues is not p^2
    label_mismatch: bool  # landscape.classify's label is not the dense reference's
    top: float  # |top_hessian_eigenvalue - dense lambda_max| / ||H||


def _point_figures(ctx: Context, loss, pt, lam: np.ndarray, tr_yy: float, p: int, ntol: float, zero: float):
    """The theorem at one critical point ``pt`` of ``ln.theory.baldi_hornik_points``: gradient, value, Morse index
    and zero eigenvalues from the dense Hessian, and the engine's landscape tools against that reference."""
    g = relative_grad(ctx, loss, pt.Ws)
    L_I = 0.5 * (tr_yy - float(np.sum(lam[list(pt.I)])))
    L = float(host(ln.loss(loss, pt.Ws)))
    v = (abs(L - L_I) / abs(L_I), abs(float(host(pt.value)) - L_I) / abs(L_I))
    e = np.linalg.eigvalsh(host(ln.hessian(loss, pt.Ws)))
    hn = float(np.max(np.abs(e)))
    idx = int(np.sum(e < -ntol * hn))
    index_bad = idx != index_formula(pt.I, lam, p, zero=zero) or idx != pt.index
    clause = clause_matters(pt.I, lam, p, zero)
    zero_bad = len(pt.I) == p and int(np.sum(np.abs(e) <= ntol * hn)) != p * p
    # the engine's landscape tools against the dense reference: classify's label (index 0 at the top set = the
    # global minimum, every other point a strict saddle) and the eigensolver's lambda_max, which differs from the
    # largest |lambda| at some of these saddles
    want = "global minimum" if idx == 0 else "strict saddle"
    label_bad = str(ln.landscape.classify(loss, pt.Ws).label) != want
    top = float(host(ln.landscape.top_hessian_eigenvalue(loss, pt.Ws).value))
    return _PointFigures(g, v, idx, index_bad, clause, zero_bad, label_bad, abs(top - e[-1]) / hn)


def _gd_cross_check(ctx: Context, loss, X, Y, Sxx, L_top: float, p: int, c: int) -> tuple:
    """GD from 16 random inits of the ``c``-th instance: ``(gap, replay)``, the worst relative gap of the final
    loss to ``L_top`` (the value at the top ``p`` set, the global minimum) and the trainer's replay check."""
    eps = ctx.eps
    n, q = X.shape[0], Y.shape[0]
    B = 16
    Ws = ln.init.gaussian(
        (n, p, q), scale=0.5 / math.sqrt(n), batch=(B,), seed=ctx.rng(f"s06-gd-{c}"), xp=ctx.xp, dtype=ctx.dtype
    )
    s1 = float(np.linalg.svd(Y @ np.linalg.pinv(X), compute_uv=False)[0])
    lr = 0.5 / (2 * float(np.linalg.eigvalsh(Sxx)[-1]) * max(s1, 1.0))
    run = ln.train.gd(loss, Ws, lr=lr, steps=ctx.pick(20_000, 50_000), gtol=floored(1e-11, 100, eps))
    replay = gd_replay(ctx, loss, Ws, lr)
    return float(np.max(np.abs(host(ln.loss(loss, run.weights)) - L_top))) / L_top, replay


@register
class BaldiHornik(Check):
    id = "s06-baldi-hornik"
    title = "Baldi-Hornik: all critical points of the two-layer net, values L_I, Morse index, one minimum"
    claim = "all critical points: grad 0, value L_I, index formula"
    source = "Baldi & Hornik, Neural Networks 2(1):53-58 (1989); THEOREMS.md §6 (index formula ours)"
    status = "MIXED"
    control_description = "eigenvectors of Lambda_yx Lambda_yx^T instead of Sigma (forgets Lambda_xx^-1): not critical"

    def measure(self, ctx: Context) -> Measurement:
        eps = ctx.eps
        gtol = floored(GRAD_RTOL_F64, 4.5e3, eps)  # 1e-12 is about 4.5e3 eps in float64
        vtol = floored(VALUE_RTOL_F64, 4.5e3, eps)
        ntol = floored(NEG_RTOL_F64, 1e3, eps)
        worst_g = worst_v = 0.0
        index_mismatch = zero_mismatch = n_points = label_mismatch = clause_points = 0
        worst_top = 0.0
        unique_min_ok = True
        gd_gap = 0.0
        replays = []
        for c, (n, q, p) in enumerate(INSTANCES):
            X, Y = bh_data(ctx.rng(f"s06-{c}"), n, q, 6 * n)
            lam, _, Sxx, _ = host_sigma(X, Y)
            zero = ZERO_LAM_EPS * np.finfo(np.float64).eps * lam[0]
            tr_yy = float(np.sum(Y * Y)) / X.shape[1]
            loss = ln.SquaredLoss.from_data(ctx.asarray(X), ctx.asarray(Y))
            pts = ln.theory.baldi_hornik_points(loss, p)
            n_sets = sum(math.comb(q, k) for k in range(p + 1))
            if len(pts) != n_sets or len({pt.I for pt in pts}) != n_sets:
                index_mismatch += abs(n_sets - len(pts)) + 1  # the enumeration itself is incomplete
            zero_index = []
            for pt in pts:
                n_points += 1
                f = _point_figures(ctx, loss, pt, lam, tr_yy, p, ntol, zero)
                worst_g = max(worst_g, f.grad)
                worst_v = max(worst_v, *f.value)
                index_mismatch += f.index_mismatch
                clause_points += f.clause
                zero_mismatch += f.zero_mismatch
                if f.index == 0:
                    zero_index.append(pt.I)
                label_mismatch += f.label_mismatch
                worst_top = max(worst_top, f.top)
            unique_min_ok &= zero_index == [tuple(range(p))]
            # cross-check: GD from random inits reaches L_{1..p}
            gap, replay = _gd_cross_check(ctx, loss, X, Y, Sxx, 0.5 * (tr_yy - float(np.sum(lam[:p]))), p, c)
            replays.append(replay)
            gd_gap = max(gd_gap, gap)
        parts = {
            "gradient = 0 (relative max-norm)": Measurement.compare(worst_g, gtol, "<=", f"worst of {n_points} points"),
            "value = L_I (relative)": Measurement.compare(worst_v, vtol, "<=", "engine value and ln.loss vs host L_I"),
            "Morse index = formula": Measurement.compare(
                index_mismatch, 0, "<=", "points whose dense-Hessian index differs"
            ),
            # the q = n + 1 instance has lambda_q = 0: the clause must change the index somewhere, or it is untested
            "lambda_j > 0 clause exercised (q = n + 1)": Measurement.compare(
                clause_points, 0, ">", "points whose index formula depends on the clause"
            ),
            "#zero eigenvalues = p^2 at |I| = p": Measurement.compare(
                zero_mismatch, 0, "<=", "points with another count"
            ),
            "landscape.classify label = dense reference": Measurement.compare(
                label_mismatch, 0, "<=", "points labelled otherwise than index 0 -> global minimum, else strict saddle"
            ),
            "top_hessian_eigenvalue = dense lambda_max (relative to ||H||)": Measurement.compare(
                worst_top, floored(1e-9, 1e3, eps), "<=", "eigsh on exact HVPs vs eigvalsh(ln.hessian)"
            ),
            "exactly one index-0 point (top p)": Measurement.compare(
                0 if unique_min_ok else 1, 0, "<=", "instances failing"
            ),
            # GD reaches the minimum value to THEOREMS.md §5's 1e-8 (floored at 100 eps)
            "GD reaches L_{1..p}": Measurement.compare(
                gd_gap, floored(1e-8, 100, eps), "<=", "16 random inits per instance"
            ),
        }
        parts["trainer_replay (worst instance)"] = max(replays, key=lambda r: r.figure / r.bound)
        return Measurement.all_of(parts)

    def control(self, ctx: Context) -> Measurement:
        gtol = floored(GRAD_RTOL_F64, 4.5e3, ctx.eps)
        best = np.inf
        for c, (n, q, p) in enumerate(INSTANCES):
            X, Y = bh_data(ctx.rng(f"s06-{c}"), n, q, 6 * n)
            loss = ln.SquaredLoss.from_data(ctx.asarray(X), ctx.asarray(Y))
            for _, Ws in slip_points(ctx, X, Y, p):
                best = min(best, relative_grad(ctx, loss, Ws))
        # the slip must fail for every non-empty I: report the *smallest* relative gradient among them
        return Measurement.compare(best, gtol, "<=", "smallest relative gradient over the slipped points (|I| >= 1)")
