r"""Implicit regularization in matrix factorization: commuting measurements (Gunasekar et al.) and norms → ∞
while the rank falls (Razin & Cohen) (THEOREMS2.md §16).

**16a (Gunasekar, Woodworth, Bhojanapalli, Neyshabur & Srebro 2017).** Tied factorization :math:`X = UU^\top`
(:math:`W_2 = W_1^\top`, :mod:`linnet.tied`), commuting symmetric measurements :math:`A_k = Q\operatorname{diag}(a_k)Q^\top`,
gradient flow from :math:`U(0) = \alpha I`. Then :math:`X(t)` stays diagonal in the basis :math:`Q`, and
:math:`X_\infty(\alpha) = \arg\min\{\sum_ix_i\log(x_i/\alpha^2)-x_i : \mathcal A(X) = y, X\succeq0\}` (eigenvalue entropy;
DERIVED+VERIFIED), which tends to the minimum-trace (= nuclear norm on PSD) solution as :math:`\alpha\to0`, slowly.
**16b (Razin & Cohen 2020).** Depth-:math:`N` factorization of :math:`2\times2` matrices, completion with observed
:math:`W_{12} = W_{21} = 1`, :math:`W_{22} = 0`: every global minimum has :math:`\det = -1`; from a balanced init with
:math:`\det>0` the determinant keeps its sign under gradient flow, so the loss can only vanish with :math:`|W_{11}|\to\infty`:
:math:`|W_{11}|\ge(1-\sqrt{2\ell})^2/\sqrt{2\ell}` whenever :math:`\det>0`, :math:`\ell<\frac12` (DERIVED+VERIFIED), while the
effective rank tends to 1.

**Check.** 16a: :math:`n = 6`, :math:`m = 3`, random orthogonal :math:`Q`, Gaussian :math:`a_k`, PSD truth
:math:`x^\star = (1, 0.5, 0, \dots)` in the :math:`Q` basis; the sensing loss :math:`\frac1{2m}\sum_k(\langle A_k,X\rangle-y_k)^2` as a
local :class:`linnet.CallableLoss` (to be replaced by the sensing loss class of the ``losses`` work); GF of the tied
map (LSODA, rtol 1e-12, stopped at residual :math:`10^{-10}`). Asserted: every flow reaches that residual
(the limit is a global minimum); off-diagonal part of :math:`Q^\top X_\infty Q`
:math:`\le10^{-8}`; eigenvalues :math:`=` the entropy solution (:func:`linnet.theory.entropy_argmin`) to :math:`10^{-8}` at
:math:`\alpha\in\{1, 0.3, 0.1\}`; :math:`\|X_\infty(\alpha)-X_{\rm nuc}\|_{\max}` decreasing along the α-sweep, and the trace gap
:math:`<10^{-2}` at the smallest α (quick: GF down to :math:`\alpha = 0.1`, then the verified entropy form at
:math:`10^{-6}`; full: GF at every α down to :math:`10^{-6}`). :math:`X_{\rm nuc}` by the HiGHS LP.
16b: :math:`N = 3`, balanced init from :math:`A = 10^{-2}\xi` with :math:`\det A>0` (``ln.init.balanced``), layer GF of the
engine's gradient by LSODA (rtol 1e-10, atol 1e-13; ``ln.ivp.dense_flow``), 61 (quick: 25) log-spaced times in
:math:`[1, 10^6]` (quick: :math:`[1, 10^5]`). Asserted: :math:`\det W(t)>0` at every output; the :math:`|W_{11}|` bound at every
output with :math:`\ell<\frac12`; :math:`|W_{11}|` increasing over the last decade; erank at the end :math:`<1.01`;
nuclear norm :math:`\ge|W_{11}|`.

**Controls.** 16a: large init :math:`\alpha = 1`: trace gap far above :math:`10^{-2}` (the small-init hypothesis).
16b: (a) balanced init with :math:`\det<0`: :math:`W_{11}` stays finite (the "increasing over the last decade to
:math:`>10`" test fails); (b) unbalanced Gaussian layers at the same scale: the determinant changes sign.

**Source.** Gunasekar et al., "Implicit Regularization in Matrix Factorization", arXiv:1705.09280, NeurIPS 2017
(conjecture in the abstract; commuting-case theorem wording UNCONFIRMED). Razin & Cohen, "Implicit Regularization in
Deep Learning May Not Be Explainable by Norms", arXiv:2005.06398, NeurIPS 2020 (abstract and the authors' blog;
precise hypotheses UNCONFIRMED).

**Status** (THEOREMS2 §16). 16a: conjecture CONFIRMED; commuting-case theorem UNCONFIRMED wording; entropy limit and
the α-sweep DERIVED+VERIFIED. 16b: qualitative theorem and example CONFIRMED (blog + abstract); bound and
preconditions DERIVED+VERIFIED. Reported as MIXED.
"""

from __future__ import annotations

import numpy as np

import linnet as ln

from .._core import Check, Context, Measurement, register

__all__ = ["NuclearNormAndRankCheck", "sensing_loss", "commuting_problem", "completion_loss", "erank"]

N_DIM, M_MEAS = 6, 3
X_STAR = (1.0, 0.5)
ALPHAS = (1.0, 0.3, 0.1, 1e-2, 1e-3, 1e-4, 1e-6)
ENTROPY_ALPHAS = (1.0, 0.3, 0.1)
TOL_A = 1e-8  # THEOREMS2 §16a: observed <= 6e-11 (entropy) and <= 3e-10 (diagonal); host float64 LSODA rtol 1e-12
GAP_MAX = 1e-2  # THEOREMS2 §16a: trace gap < 1e-2 at alpha = 1e-6
OMEGA = ((0, 1), (1, 0), (1, 1))
M_VALUES = (1.0, 1.0, 0.0)


def sensing_loss(A: np.ndarray, y: np.ndarray) -> ln.CallableLoss:
    r""":math:`\frac1{2m}\sum_k(\langle A_k,W\rangle-y_k)^2` as a host NumPy :class:`linnet.CallableLoss` (``A`` is ``(m, n, n)``)."""
    m = A.shape[0]

    def r(W):
        return np.einsum("kab,...ab->...k", A, W) - y

    return ln.CallableLoss(
        lambda W: 0.5 * np.sum(r(W) ** 2, axis=-1) / m,
        lambda W: np.einsum("...k,kab->...ab", r(W), A) / m,
        lambda W, D: np.einsum("...k,kab->...ab", np.einsum("kab,...ab->...k", A, D), A) / m,
        shape=A.shape[1:],
        convex=True,
    )


def commuting_problem(rng):
    """``(Q, a (m, n), y, A (m, n, n))`` with :math:`A_k = Q\\operatorname{diag}(a_k)Q^\\top`, :math:`y = a x^\\star`.

    Drawn until the PSD solution set is not (nearly) a single point: the entropy solution at :math:`\\alpha = 1`
    exceeds the minimum trace by at least 1 (some Gaussian draws leave :math:`x^\\star` the only feasible point, and
    then every α gives the same answer and the sweep says nothing).
    """
    x = np.zeros(N_DIM)
    x[: len(X_STAR)] = X_STAR
    while True:
        Q = np.linalg.qr(rng.standard_normal((N_DIM, N_DIM)))[0]
        a = rng.standard_normal((M_MEAS, N_DIM))
        y = a @ x
        gap = ln.theory.entropy_argmin(a, y, 1.0).sum() - ln.theory.min_l1_interpolant(a, y, nonnegative=True).sum()
        if gap >= 1.0:
            break
    A = np.einsum("ia,ka,ja->kij", Q, a, Q)
    return Q, a, y, A


def completion_loss() -> ln.CallableLoss:
    r""":math:`\frac12\sum_{(i,j)\in\Omega}(W_{ij}-M_{ij})^2` on :math:`2\times2` matrices (Razin–Cohen's example)."""
    mask = np.zeros((2, 2))
    M = np.zeros((2, 2))
    for (i, j), v in zip(OMEGA, M_VALUES):
        mask[i, j], M[i, j] = 1.0, v
    return ln.CallableLoss(
        lambda W: 0.5 * np.sum(mask * (W - M) ** 2, axis=(-2, -1)),
        lambda W: mask * (W - M),
        lambda W, D: mask * D,
        shape=(2, 2),
        convex=True,
    )


def erank(W: np.ndarray) -> float:
    """Effective rank (Roy–Vetterli): :math:`\\exp(-\\sum p_i\\log p_i)`, :math:`p = \\sigma/\\|\\sigma\\|_1`."""
    s = np.linalg.svd(W, compute_uv=False)
    p = s / s.sum()
    p = p[p > 0]
    return float(np.exp(-np.sum(p * np.log(p))))


def tied_limit(A, y, alpha: float, *, fitted: bool = False):
    """:math:`X_\\infty(\\alpha)` by gradient flow of the tied map from :math:`U(0) = \\alpha I` (host float64).

    With ``fitted=True``, ``(X, fitted)``: whether the flow reached the residual :math:`10^{-10}` (its ``ftol``)
    before ``t_max``; otherwise ``ValueError`` when it did not."""
    loss = sensing_loss(A, y)
    m = A.shape[0]
    run = ln.tied.flow(
        loss, alpha * np.eye(N_DIM), t_max=1e12, ftol=(1e-10) ** 2 / (2 * m), method="LSODA", rtol=1e-12, atol=1e-15
    )
    X = np.asarray(ln.tied.end_to_end(run.weights[0]))
    if fitted:
        return X, bool(run.stopped)
    if not run.stopped:
        raise ValueError(f"the tied flow did not fit the measurements (alpha={alpha})")
    return X


def razin_run(ctx: Context, *, sign: float = 1.0, balanced: bool = True, seed_key: str = "s16b"):
    """``(times, W (T, 2, 2), loss (T,))`` of the N = 3 layer flow from scale-1e-2 init with ``sign(det) = sign``."""
    rng = ctx.rng(seed_key)
    while True:
        A = 1e-2 * rng.standard_normal((2, 2))
        if np.sign(np.linalg.det(A)) == sign:
            break
    if balanced:
        Ws = ln.init.balanced(A, (2, 2, 2, 2))
    else:
        Ws = tuple(1e-2 * rng.standard_normal((2, 2)) for _ in range(3))
    t_end = ctx.pick(1e5, 1e6)
    times = np.logspace(0, np.log10(t_end), ctx.pick(26, 61))
    run = ln.ivp.dense_flow(completion_loss(), Ws, t_max=t_end, t_eval=times, method="LSODA", rtol=1e-10, atol=1e-13)
    W = run.states.reshape(len(run.t), 3, 2, 2)
    We = W[:, 2] @ W[:, 1] @ W[:, 0]
    return run.t, We, run.loss


@register
class NuclearNormAndRankCheck(Check):
    id = "s16-nuclear-norm-and-rank"
    title = "Commuting sensing: GF = entropy solution -> min nuclear norm; completion: det keeps sign, norms -> inf"
    claim = (
        "16a: X_inf diagonal in Q, = entropy argmin, -> min trace as alpha shrinks; 16b: det > 0 kept, "
        "|W11| >= (1-sqrt(2l))^2/sqrt(2l), erank -> 1"
    )
    source = (
        "Gunasekar et al. arXiv:1705.09280 (NeurIPS 2017); Razin & Cohen arXiv:2005.06398 (NeurIPS 2020); THEOREMS2 §16"
    )
    status = "MIXED"
    control_description = (
        "16a: alpha = 1 (large init) misses min trace; 16b: (a) det < 0 init keeps W11 finite, "
        "(b) unbalanced init flips det"
    )

    def __init__(self):
        self._cache = {}

    def sweep(self, ctx: Context):
        key = (ctx.seed, ctx.scale)
        if key not in self._cache:
            Q, a, y, A = commuting_problem(ctx.rng("s16a"))
            gf_alphas = ALPHAS if not ctx.quick else ENTROPY_ALPHAS
            runs = {al: tied_limit(A, y, al, fitted=True) for al in gf_alphas}
            Xs = {al: X for al, (X, _) in runs.items()}
            fit = {al: ok for al, (_, ok) in runs.items()}
            self._cache = {key: (Q, a, y, A, Xs, fit)}
        return self._cache[key]

    def part_a(self, ctx: Context) -> dict:
        Q, a, y, A, Xs, fit = self.sweep(ctx)
        x_nuc = ln.theory.min_l1_interpolant(a, y, nonnegative=True)
        X_nuc = Q @ np.diag(x_nuc) @ Q.T
        offd, ent = 0.0, 0.0
        dev, gaps = [], []
        for al in ALPHAS:
            if al in Xs:
                B = Q.T @ Xs[al] @ Q
                offd = max(offd, float(np.max(np.abs(B - np.diag(np.diag(B))))))
                x = np.diag(B)
                if al in ENTROPY_ALPHAS:
                    ent = max(ent, float(np.max(np.abs(x - ln.theory.entropy_argmin(a, y, al)))))
            else:  # quick scale: the entropy form, verified against the flow above
                x = ln.theory.entropy_argmin(a, y, al)
            dev.append(float(np.max(np.abs(Q @ np.diag(x) @ Q.T - X_nuc))))
            gaps.append(float(np.sum(x) - np.sum(x_nuc)))
        src = "GF" if not ctx.quick else "GF for alpha >= 0.1, entropy form below"
        return {
            # the theorem is about the limit of a flow that fits the measurements (a global minimum of the loss)
            "16a: tied GF runs reaching residual 1e-10 (fraction)": Measurement.compare(
                float(np.mean(list(fit.values()))), 1.0, ">=", note=f"alphas {sorted(fit)}, t_max 1e12"
            ),
            "16a: off-diagonal of Q^T X_inf Q (max)": Measurement.compare(offd, TOL_A, note=f"alphas {sorted(Xs)}"),
            "16a: |eig X_inf - entropy argmin| (max)": Measurement.compare(
                ent, TOL_A, note=f"alpha in {ENTROPY_ALPHAS}"
            ),
            "16a: largest increase of ||X_inf - X_nuc||_max as alpha shrinks": Measurement.compare(
                float(np.max(np.diff(dev))), 0.0, "<", note=f"{src}: " + ", ".join(f"{d:.3g}" for d in dev)
            ),
            "16a: trace gap at alpha = 1e-6": Measurement.compare(
                gaps[-1], GAP_MAX, note=f"min trace {np.sum(x_nuc):.4g}; gaps " + ", ".join(f"{g:.2g}" for g in gaps)
            ),
        }

    def measure(self, ctx: Context) -> Measurement:
        parts = self.part_a(ctx)
        t, W, L = razin_run(ctx)
        det = np.linalg.det(W)
        s2l = np.sqrt(2 * L)
        fit = L < 0.5
        slack = np.abs(W[:, 0, 0]) - (1 - s2l) ** 2 / s2l
        last = t >= t[-1] / 10
        w11 = np.abs(W[last, 0, 0])
        nuc = np.linalg.svd(W[-1], compute_uv=False).sum()
        parts.update(
            {
                "16b: min det W(t) (must stay > 0)": Measurement.compare(
                    float(det.min()), 0.0, ">", note=f"N=3 balanced, {len(t)} times in [1, {t[-1]:.0e}]"
                ),
                "16b: min over l<1/2 of |W11| - (1-sqrt(2l))^2/sqrt(2l)": Measurement.compare(
                    float(slack[fit].min()) if fit.any() else float("nan"), 0.0, ">=", note=f"{int(fit.sum())} times"
                ),
                "16b: min increase of |W11| over the last decade": Measurement.compare(
                    float(np.min(np.diff(w11))), 0.0, ">", note=f"|W11| at the end {w11[-1]:.4g}"
                ),
                "16b: erank at the end": Measurement.compare(erank(W[-1]), 1.01, "<"),
                "16b: nuclear norm - |W11| at the end": Measurement.compare(float(nuc - w11[-1]), 0.0, ">="),
            }
        )
        return Measurement.all_of(parts)

    def control(self, ctx: Context) -> Measurement:
        Q, a, y, A, Xs, _ = self.sweep(ctx)
        x_nuc = ln.theory.min_l1_interpolant(a, y, nonnegative=True)
        gap1 = float(np.trace(Xs[1.0]) - np.sum(x_nuc))
        t, W, L = razin_run(ctx, sign=-1.0)
        w11 = np.abs(W[t >= t[-1] / 10, 0, 0])
        tu, Wu, Lu = razin_run(ctx, balanced=False, seed_key="s16b-unbalanced")
        parts = {
            "16a: alpha = 1, trace gap": Measurement.compare(gap1, GAP_MAX, note="large init"),
            "16b (a) det < 0: |W11| > 10 and increasing over the last decade (min increase)": Measurement.compare(
                float(np.min(np.diff(w11))) if w11[-1] > 10 else -1.0, 0.0, ">", note=f"|W11| at the end {w11[-1]:.3g}"
            ),
            "16b (b) unbalanced: min det W(t)": Measurement.compare(
                float(np.linalg.det(Wu).min()),
                0.0,
                ">",
                note="independent Gaussian layers, scale 1e-2, det(W(0)) sign free",
            ),
        }
        return Measurement.any_of(parts, note="each control must fail")
