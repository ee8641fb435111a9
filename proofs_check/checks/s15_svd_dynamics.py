r"""Singular-value and singular-vector dynamics under balanced flow; depth-enhanced low rank (THEOREMS2.md §15).

**Statement.** Layer-wise gradient flow on :math:`L = \ell(W_N\cdots W_1)` from an exactly balanced point, any
differentiable :math:`\ell`. With :math:`W = \sum_r\sigma_ru_rv_r^\top` and :math:`\tilde G = U^\top\nabla\ell(W)V`:

.. math::

    \dot\sigma_r = -N\sigma_r^{2-2/N}\tilde G_{rr}, \qquad
    \dot u_r = -\sum_{r'\ne r}\frac{\sigma_r\tilde G_{r'r} + \sigma_{r'}\tilde G_{rr'}}{\sigma_r^{2/N} - \sigma_{r'}^{2/N}}u_{r'},\qquad
    \dot v_r = -\sum_{r'\ne r}\frac{\sigma_{r'}\tilde G_{r'r} + \sigma_r\tilde G_{rr'}}{\sigma_r^{2/N} - \sigma_{r'}^{2/N}}v_{r'}

(square :math:`W`, simple nonzero singular values). Depth comparison (empirical): in matrix completion from few
entries, GD from near-zero balanced init gives a lower effective rank, and a smaller median error on the unobserved
entries, at depth 3 than at depth 2.

**Check.** (1) Instantaneous identity on random instances (:math:`N = 1..5`, square :math:`d = 2..5`, matrix sensing
with :math:`m = 3..29` Gaussian :math:`A_k`, :math:`y`, via :class:`linnet.LinearMeasurementLoss`), balanced layers from
``ln.init.balanced``; :math:`\dot W = \sum_jW_{j+1:N}\dot W_jW_{1:j-1}` from the engine's ``ln.grad``; the reference
differentiates the SVD by central differences along :math:`\dot W` (:math:`h = 10^{-6}`, signs aligned). Relative
errors :math:`\le10^{-6}` (:math:`\dot\sigma`) and :math:`\le10^{-5}` (:math:`\dot u, \dot v`) in float64 (scaled by
:math:`\sqrt{\epsilon/\epsilon_{64}}` in float32). Draws with a singular-value gap or :math:`\sigma_{\min}` below
:math:`10^{-2}` are skipped. (3) Depth comparison with the THEOREMS2 protocol: :math:`n = 20`, rank-2
:math:`M = \sqrt n/2\cdot U\operatorname{diag}(3, 1.5)V^\top`, :math:`m = 120` entries, loss
:math:`\tfrac12\|P_\Omega(W - M)\|_F^2` (:class:`linnet.MatrixCompletionLoss`, ``reduction="sum"``), layers
:math:`\epsilon^{1/N}Q_j` (:math:`\epsilon = 10^{-3}`), ``ln.train.gd`` with :math:`\eta = 0.3/(N\|M\|_2^{2-2/N})` on 10 seeds
as one batch, until :math:`\ell\le10^{-7}\ell(0)` (cap :math:`2\times10^5` steps); the quick scale stops at
:math:`10^{-5}\ell(0)` (cap :math:`2\times10^4`). **Asserted** (the robust part only): erank(N=3) < erank(N=2) in at
least 8 of 10 seeds, and the median unobserved error decreases from N=2 to N=3. Per-seed errors are reported only.
The reported effective ranks and unobserved errors (``theory.effective_rank``, ``theory.unobserved_error``) are
compared with their definitions evaluated on the host in float64 at the engine's end points (relative error
``<= roundoff_bound(eps)``): the assertion is about these numbers, so they must be the defined ones.

**Controls.** (a) the singular-vector formula with the depth-1 denominator :math:`\sigma_r^2 - \sigma_{r'}^2`, and with
:math:`\tilde G_{r'r}\leftrightarrow\tilde G_{rr'}` swapped; (b) an unbalanced init (independent Gaussian layers,
:math:`N = 3`, :math:`d = 4`): the :math:`\dot\sigma` formula misses (the theorem needs balancedness). Control (c)
(large init shrinks the depth gap) is a report in THEOREMS2, not run here.

**Source.** Arora, Cohen, Hu & Luo, "Implicit Regularization in Deep Matrix Factorization", arXiv:1905.13655,
NeurIPS 2019 (Theorem 3 as usually cited; the authors' blog post states it in GD form; Table 1, Fig. 2).

**Status.** Singular-value dynamics CONFIRMED (authors' blog); singular-vector formula DERIVED+VERIFIED; depth
comparison CONFIRMED qualitatively, protocol and numbers THEOREMS2's own (measured).
"""

from __future__ import annotations

import numpy as np

import linnet as ln
from linnet.theory import lowrank

from .._core import EPS64, Check, Context, Measurement, host, register, roundoff_bound


def _tol(ctx: Context, tol64: float) -> float:
    return tol64 * np.sqrt(ctx.eps / EPS64)


def _velocity(loss, Ws) -> np.ndarray:
    """dW/dt of the end-to-end matrix under layer-wise gradient flow (host float64 from the engine's gradients)."""
    Vs = [-host(g) for g in ln.grad(loss, Ws)]
    Wh = [host(W) for W in Ws]
    N = len(Wh)
    out = np.zeros((Wh[-1].shape[0], Wh[0].shape[1]))
    for j in range(N):
        left = np.eye(Wh[-1].shape[0])
        for W in Wh[j + 1 :][::-1]:
            left = left @ W
        right = np.eye(Wh[0].shape[1])
        for W in Wh[:j][::-1]:
            right = right @ W
        out += left @ Vs[j] @ right
    return out


def _predicted(W: np.ndarray, G: np.ndarray, N: int, *, variant: str = "") -> tuple:
    """THEOREMS2 §15 formulas for (sigma', U', V') at W with gradient G; ``variant`` breaks them for controls."""
    U, s, Vt = np.linalg.svd(W)
    V = Vt.T
    Gt = U.T @ G @ V
    ds = -N * s ** (2 - 2 / N) * np.diag(Gt)
    p = 2.0 if variant == "depth1" else 2.0 / N
    d = len(s)
    dU, dV = np.zeros_like(U), np.zeros_like(V)
    for r in range(d):
        for q in range(d):
            if q == r:
                continue
            a, b = (Gt[r, q], Gt[q, r]) if variant == "swap" else (Gt[q, r], Gt[r, q])
            den = s[r] ** p - s[q] ** p
            dU[:, r] -= (s[r] * a + s[q] * b) / den * U[:, q]
            dV[:, r] -= (s[q] * a + s[r] * b) / den * V[:, q]
    return ds, dU, dV


def _differentiated(W: np.ndarray, Wdot: np.ndarray, h: float = 1e-6) -> tuple:
    """Central differences of the SVD along Wdot, signs aligned with the SVD at W."""
    U0, _, Vt0 = np.linalg.svd(W)
    parts = []
    for sgn in (1.0, -1.0):
        U, s, Vt = np.linalg.svd(W + sgn * h * Wdot)
        flip = np.sign(np.sum(U * U0, axis=0))
        parts.append((s, U * flip, Vt.T * flip))
    (sp, Up, Vp), (sm, Um, Vm) = parts
    return (sp - sm) / (2 * h), (Up - Um) / (2 * h), (Vp - Vm) / (2 * h)


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def _instance(ctx: Context, rng, N: int, d: int, m: int, *, balanced: bool = True):
    A = rng.standard_normal((m, d, d))
    y = rng.standard_normal(m)
    loss = ln.LinearMeasurementLoss(ctx.asarray(A), ctx.asarray(y))
    if balanced:
        Ws = ln.init.balanced(ctx.asarray(rng.standard_normal((d, d))), (d,) * (N + 1))
    else:
        Ws = tuple(ctx.asarray(rng.standard_normal((d, d))) for _ in range(N))
    We = host(ln.end_to_end(Ws))
    return loss, Ws, We


def _usable(We: np.ndarray) -> bool:
    s = np.linalg.svd(We, compute_uv=False)
    return s[-1] >= 1e-2 and (len(s) < 2 or np.min(-np.diff(s)) >= 1e-2)


def _identity_errors(ctx: Context, count: int, *, variant: str = "") -> tuple:
    rng = ctx.rng("s15-identity")
    es, eu, ev, used = 0.0, 0.0, 0.0, 0
    while used < count:
        N, d, m = int(rng.integers(1, 6)), int(rng.integers(2, 6)), int(rng.integers(3, 30))
        if variant == "depth1" and N == 1:
            N = 3  # the depth-1 denominator is the right one at N = 1
        loss, Ws, We = _instance(ctx, rng, N, d, m)
        if not _usable(We):
            continue
        used += 1
        G = host(loss.grad(ln.end_to_end(Ws)))
        ds, dU, dV = _predicted(We, G, N, variant=variant)
        fs, fU, fV = _differentiated(We, _velocity(loss, Ws))
        es, eu, ev = max(es, _rel(ds, fs)), max(eu, _rel(dU, fU)), max(ev, _rel(dV, fV))
    return es, eu, ev


def _completion_runs(ctx: Context, seeds: int = 10) -> dict:
    """THEOREMS2 §15 check 3 on ``seeds`` seeds as one batch: erank and unobserved error per depth (2, 3)."""
    n, m = 20, 120
    sv = np.sqrt(n) / 2 * np.array([3.0, 1.5])
    Ms = np.stack(
        [lowrank.low_rank_matrix((n, n), 2, singular_values=sv, seed=ctx.rng(f"s15-M{s}")) for s in range(seeds)]
    )
    masks = np.stack([lowrank.random_mask((n, n), m, seed=ctx.rng(f"s15-mask{s}")) for s in range(seeds)])
    loss = ln.MatrixCompletionLoss(ctx.asarray(Ms), masks, reduction="sum")
    rel, cap = ctx.pick((1e-5, 20_000), (1e-7, 200_000))
    out = {}
    for N in (2, 3):
        rng = ctx.rng(f"s15-init{N}")
        Ws = []
        for _ in range(N):
            Q, R = np.linalg.qr(rng.standard_normal((seeds, n, n)))
            Ws.append(ctx.asarray(1e-3 ** (1 / N) * Q * np.sign(np.diagonal(R, axis1=-2, axis2=-1))[..., None, :]))
        L0 = float(np.min(host(ln.loss(loss, Ws))))
        eta = 0.3 / (N * float(sv[0]) ** (2 - 2 / N))
        run = ln.train.gd(loss, Ws, lr=eta, steps=cap, ftol=rel * L0, record_every=cap)
        We = ln.end_to_end(run.weights)
        out[N] = (
            host(lowrank.effective_rank(We)),
            host(lowrank.unobserved_error(We, ctx.asarray(Ms), masks)),
            host(We),
        )
    return out, Ms, masks


def _erank_reference(W: np.ndarray) -> np.ndarray:
    """Roy–Vetterli effective rank from the definition, host float64 (``W`` is ``(B, n, n)``)."""
    s = np.linalg.svd(W, compute_uv=False)
    p = s / s.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), axis=-1)
    return np.exp(ent)


def _test_error_reference(W: np.ndarray, M: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Relative error on the unobserved entries from the definition, host float64."""
    P = ~masks
    return np.sqrt(np.sum(P * (W - M) ** 2, axis=(-2, -1)) / np.sum(P * M * M, axis=(-2, -1)))


@register
class SingularValueDynamics(Check):
    id = "s15-svd-dynamics"
    title = "ACHL: singular values/vectors of W under balanced flow; depth-enhanced low rank in completion"
    claim = (
        "sigma' = -N sigma^(2-2/N) G_rr (1e-6), u', v' with denominator sigma^(2/N) diffs (1e-5); "
        "completion: erank(N=3) < erank(N=2) in >= 8/10 seeds, median test error decreases"
    )
    source = "Arora, Cohen, Hu & Luo, arXiv 1905.13655 (Thm 3 as cited; blog; Table 1); THEOREMS2.md §15"
    status = "MIXED"
    control_description = (
        "depth-1 denominator sigma_r^2 - sigma_r'^2 or swapped G indices in u' (a); unbalanced layers (b): "
        "the formulas miss the true derivatives"
    )

    def measure(self, ctx: Context) -> Measurement:
        es, eu, ev = _identity_errors(ctx, ctx.pick(40, 200))
        runs, Ms, masks = _completion_runs(ctx)
        (er2, te2, _), (er3, te3, _) = runs[2], runs[3]
        # the reported effective ranks and test errors against their definitions at the engine's end points
        er_err, te_err = 0.0, 0.0
        for er, te, W in runs.values():
            er_ref, te_ref = _erank_reference(W), _test_error_reference(W, Ms, masks)
            er_err = max(er_err, float(np.max(np.abs(er - er_ref) / er_ref)))
            te_err = max(te_err, float(np.max(np.abs(te - te_ref) / te_ref)))
        wins = int(np.sum(er3 < er2))
        med2, med3 = float(np.median(te2)), float(np.median(te3))
        return Measurement.all_of(
            {
                "sigma-dot rel err": Measurement.compare(es, _tol(ctx, 1e-6), "<="),
                "u-dot rel err": Measurement.compare(eu, _tol(ctx, 1e-5), "<="),
                "v-dot rel err": Measurement.compare(ev, _tol(ctx, 1e-5), "<="),
                "seeds with erank(N=3) < erank(N=2)": Measurement.compare(
                    wins,
                    8,
                    ">=",
                    note=f"erank medians N=2 {np.median(er2):.3g}, N=3 {np.median(er3):.3g}",
                ),
                "theory.effective_rank vs its definition at the end points (max rel. error)": Measurement.compare(
                    er_err, roundoff_bound(ctx.eps), note="exp(-sum p log p), p = sigma / sum sigma, host float64 SVD"
                ),
                "theory.unobserved_error vs its definition at the end points (max rel. error)": Measurement.compare(
                    te_err, roundoff_bound(ctx.eps), note="||P_unobs(W - M)||_F / ||P_unobs M||_F, host float64"
                ),
                "median test error N=3 minus N=2": Measurement.compare(
                    med3 - med2,
                    0.0,
                    "<",
                    note=f"medians {med2:.3g} (N=2), {med3:.3g} (N=3); N=3 < N=2 in {int(np.sum(te3 < te2))}/10 seeds",
                ),
            }
        )

    def control(self, ctx: Context) -> Measurement:
        count = ctx.pick(20, 100)
        _, eu_d1, ev_d1 = _identity_errors(ctx, count, variant="depth1")
        _, eu_sw, _ = _identity_errors(ctx, count, variant="swap")
        rng = ctx.rng("s15-unbalanced")
        worst = 0.0
        for _ in range(5):
            loss, Ws, We = _instance(ctx, rng, 3, 4, 12, balanced=False)
            G = host(loss.grad(ln.end_to_end(Ws)))
            ds, _, _ = _predicted(We, G, 3)
            fs, _, _ = _differentiated(We, _velocity(loss, Ws))
            worst = max(worst, _rel(ds, fs))
        return Measurement.any_of(
            {
                "(a) depth-1 denominator, u-dot": Measurement.compare(max(eu_d1, ev_d1), _tol(ctx, 1e-5), "<="),
                "(a) swapped G indices, u-dot": Measurement.compare(eu_sw, _tol(ctx, 1e-5), "<="),
                "(b) unbalanced init, sigma-dot": Measurement.compare(worst, _tol(ctx, 1e-6), "<="),
            }
        )
