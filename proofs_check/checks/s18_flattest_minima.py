r"""Flattest global minima: :math:`S\ge N\sigma_1^{2-2/N}` at every global minimum (THEOREMS2.md §18).

**Statement.** Whitened regression :math:`\ell(W) = \tfrac12\|W-\Phi\|_F^2`, any widths with
:math:`\min_jd_j\ge\operatorname{rank}\Phi`. At every global minimum (:math:`W_{1:N} = \Phi`) the sharpness
:math:`S = \lambda_{\max}(\nabla^2L)` satisfies :math:`S\ge N\sigma_1(\Phi)^{2-2/N}`, with equality at every balanced
global minimum. Proof: the test direction :math:`\Delta_j = y_jx_{j-1}^\top` built from the top singular pair
:math:`(u, v)` (:math:`x_j = W_{1:j}v`, :math:`y_j = W_{j+1:N}^\top u`) has Rayleigh quotient
:math:`\ge\sum_ja_j\ge N\sigma_1^{2-2/N}` (AM–GM, Cauchy–Schwarz). Equality does *not* force full balancedness: with
:math:`\Phi = \operatorname{diag}(3,1)`, :math:`W_1 = \operatorname{diag}(\sqrt3,\kappa)`, :math:`W_2 = \operatorname{diag}(\sqrt3,1/\kappa)`,
:math:`S = 6` for :math:`\kappa^2\le3` and :math:`S = 3+\kappa^2` beyond.

**Check.** Random instances (:math:`N\in\{2..5\}`, :math:`d_0, d_N\in\{1..4\}`, hidden widths in :math:`[r, r+2]`,
Gaussian :math:`\Phi`): the balanced minimum (``ln.init.balanced``) and three gauge transforms
:math:`G_j = I + cZ` (:math:`c\sim U(0,1)`, condition :math:`\le10^3`) of each; :math:`S` from the engine's dense
``ln.hessian``; the test direction's Rayleigh quotient from ``ln.hvp``; the κ-sweep.

**Controls.** (a) The test direction from the *second* singular pair falls below the bound (it gives
:math:`N\sigma_2^{2-2/N}` at balanced minima): it does not certify the bound. (b) A non-minimum, the origin at
:math:`N = 3` (:math:`\nabla^2L = 0`, §5): the bound fails; the proof uses :math:`W_{1:N} = \Phi`. (c) "flattest ⇒
balanced" fails on the κ-sweep (:math:`\kappa = 1.5`: flattest, yet :math:`\|D\|_F = 1.81`).

**Source.** Mulayoff & Michaeli, "Unique Properties of Flat Minima in Deep Networks", arXiv:2002.04710, ICML 2020
(abstract: flat minima nearly balanced, consecutive layers coupled; their sharpness formula and theorem numbers
UNCONFIRMED). The bound and its proof are derived for THEOREMS2 §18 (test direction from the top singular pair).

**Status** (THEOREMS2 §18). Lower bound and equality DERIVED+VERIFIED (proof given); "not necessarily fully
balanced" DERIVED+VERIFIED; the paper's claims CONFIRMED at abstract level only.
"""

from __future__ import annotations

import numpy as np

import linnet as ln

from .._core import Check, Context, Measurement, host, register

__all__ = ["FlattestMinimaCheck", "bound", "test_direction"]

COND_CAP = 1e3  # THEOREMS2 §18: gauge transforms with condition number <= 1e3
KAPPAS = (1.0, 1.2, 1.5, 1.7, 2.0, 3.0)


def bound(Phi: np.ndarray, N: int) -> float:
    r""":math:`N\sigma_1(\Phi)^{2-2/N}`."""
    return N * np.linalg.svd(Phi, compute_uv=False)[0] ** (2 - 2 / N)


def test_direction(Ws, Phi: np.ndarray, pair: int = 0) -> tuple:
    r"""The proof's direction :math:`\Delta_j = y_jx_{j-1}^\top` from singular pair ``pair`` of :math:`\Phi` (host)."""
    U, _, Vt = np.linalg.svd(Phi)
    W = [host(A) for A in Ws]
    N = len(W)
    xs = [Vt[pair]]
    for j in range(N - 1):
        xs.append(W[j] @ xs[-1])
    ys = [U[:, pair]]
    for j in range(N - 1, 0, -1):
        ys.insert(0, W[j].T @ ys[0])
    return tuple(np.outer(ys[j], xs[j]) for j in range(N))


def _gauge(rng, d: int) -> np.ndarray:
    while True:
        G = np.eye(d) + rng.uniform(0, 1) * rng.standard_normal((d, d))
        if np.linalg.cond(G) <= COND_CAP:
            return G


def _lam_max(loss, Ws) -> float:
    return float(np.linalg.eigvalsh(host(ln.hessian(loss, Ws)))[..., -1])


def _rayleigh(ctx, loss, Ws, D) -> float:
    Dx = tuple(ctx.asarray(d) for d in D)
    HD = ln.hvp(loss, Ws, Dx)
    return sum(float(np.sum(d * host(h))) for d, h in zip(D, HD)) / sum(float(np.sum(d * d)) for d in D)


def _case(rng, *, min_rank: int = 1):
    while True:
        d0, dN = (int(x) for x in rng.integers(1, 5, size=2))
        if min(d0, dN) >= min_rank:
            break
    N = int(rng.integers(2, 6))
    r = min(d0, dN)
    widths = (d0,) + tuple(int(x) for x in rng.integers(r, r + 3, size=N - 1)) + (dN,)
    return rng.standard_normal((dN, d0)), widths


def kappa_sweep(ctx: Context) -> list:
    """``(kappa, S, ||D||_F)`` for :math:`W_1 = \\operatorname{diag}(\\sqrt3,\\kappa)`, :math:`W_2 = \\operatorname{diag}(\\sqrt3,1/\\kappa)`."""
    loss = ln.SquaredLoss.whitened(ctx.asarray(np.diag([3.0, 1.0])))
    out = []
    for k in KAPPAS:
        W1, W2 = np.diag([np.sqrt(3.0), k]), np.diag([np.sqrt(3.0), 1 / k])
        imb = float(np.linalg.norm(W2.T @ W2 - W1 @ W1.T))
        out.append((k, _lam_max(loss, (ctx.asarray(W1), ctx.asarray(W2))), imb))
    return out


@register
class FlattestMinimaCheck(Check):
    id = "s18-flattest-minima"
    title = "Flattest global minima: S >= N s1^(2-2/N) at every global minimum, equality when balanced"
    claim = "balanced min: S = N s1^(2-2/N); gauge-transformed minima and the test direction >= it; kappa-sweep"
    source = "Mulayoff & Michaeli arXiv:2002.04710 (ICML 2020, abstract); proof derived in THEOREMS2 §18"
    status = "DERIVED+VERIFIED"
    control_description = (
        "(a) test direction from the 2nd singular pair; (b) the origin (N=3, not a minimum); (c) 'flattest => balanced' "
        "on the kappa-sweep: each must fail"
    )

    def tol(self, ctx: Context) -> float:
        """1e-10 relative (THEOREMS2, float64), plus ``1e3 eps`` of Hessian round-off in ``ctx.dtype``."""
        return 1e-10 + 1e3 * ctx.eps

    def measure(self, ctx: Context) -> Measurement:
        rng = ctx.rng("s18-measure")
        tol = self.tol(ctx)
        err_bal, ratio_gauge, ratio_dir, fit = 0.0, np.inf, np.inf, 0.0
        n = ctx.pick(25, 300)
        for _ in range(n):
            phi, widths = _case(rng)
            N = len(widths) - 1
            b = bound(phi, N)
            loss = ln.SquaredLoss.whitened(ctx.asarray(phi))
            Ws = ln.init.balanced(ctx.asarray(phi), widths)
            err_bal = max(err_bal, abs(_lam_max(loss, Ws) - b) / b)
            for _ in range(3):
                Gs = [np.eye(widths[0])] + [_gauge(rng, d) for d in widths[1:-1]] + [np.eye(widths[-1])]
                Wt = [Gs[j + 1] @ host(W) @ np.linalg.inv(Gs[j]) for j, W in enumerate(Ws)]
                P = Wt[0]
                for W in Wt[1:]:
                    P = W @ P
                fit = max(fit, float(np.abs(P - phi).max()))
                Wx = tuple(ctx.asarray(W) for W in Wt)
                ratio_gauge = min(ratio_gauge, _lam_max(loss, Wx) / b)
                ratio_dir = min(ratio_dir, _rayleigh(ctx, loss, Wx, test_direction(Wt, phi)) / b)
        sweep = kappa_sweep(ctx)
        sweep_err = max(abs(S - (6.0 if k * k <= 3 else 3 + k * k)) / S for k, S, _ in sweep)
        parts = {
            "balanced minima: |S - N s1^(2-2/N)| / S": Measurement.compare(
                err_bal, tol, note=f"{n} random Phi, depth 2-5, hidden widths in [r, r+2]"
            ),
            "gauge-transformed minima: min S / bound": Measurement.compare(
                ratio_gauge, 1 - tol, ">=", note=f"3 gauges per case, cond <= {COND_CAP:g} (THEOREMS2 saw 1.00044)"
            ),
            "test direction: min Rayleigh quotient / bound": Measurement.compare(
                ratio_dir, 1 - tol, ">=", note="Delta_j = y_j x_{j-1}^T from the top singular pair"
            ),
            "gauge minima are minima: max |W_{1:N} - Phi|": Measurement.compare(
                fit, 1e-9 + 1e3 * ctx.eps, note="the transforms keep the end-to-end matrix"
            ),
            "kappa-sweep: S = 6 (kappa^2 <= 3), 3 + kappa^2 beyond": Measurement.compare(
                sweep_err, tol, note="S: " + ", ".join(f"k={k:g}: {S:.6g}" for k, S, _ in sweep)
            ),
        }
        return Measurement.all_of(parts)

    def control(self, ctx: Context) -> Measurement:
        rng = ctx.rng("s18-control")
        tol = self.tol(ctx)
        ratio2 = np.inf
        for _ in range(ctx.pick(5, 50)):
            phi, widths = _case(rng, min_rank=2)
            N = len(widths) - 1
            loss = ln.SquaredLoss.whitened(ctx.asarray(phi))
            Ws = ln.init.balanced(ctx.asarray(phi), widths)
            ratio2 = min(ratio2, _rayleigh(ctx, loss, Ws, test_direction(Ws, phi, pair=1)) / bound(phi, N))
        phi = rng.standard_normal((3, 3))
        loss = ln.SquaredLoss.whitened(ctx.asarray(phi))
        zero = tuple(ctx.asarray(np.zeros((3, 3))) for _ in range(3))
        ratio0 = _lam_max(loss, zero) / bound(phi, 3)
        imb = [d for k, S, d in kappa_sweep(ctx) if k == 1.5][0]
        parts = {
            "(a) 2nd-pair direction: min Rayleigh / bound": Measurement.compare(
                ratio2, 1 - tol, ">=", note="gives N s2^(2-2/N) at balanced minima"
            ),
            "(b) origin, N=3: S / bound": Measurement.compare(ratio0, 1 - tol, ">=", note="Hessian 0 at the origin"),
            "(c) flattest => balanced? ||D||_F at kappa=1.5": Measurement.compare(
                imb, tol, note="S = 6 = bound there, yet unbalanced (THEOREMS2: 1.81)"
            ),
        }
        return Measurement.any_of(parts, note="each control must fail")
