r"""Hardt & Ma 2016: small-norm global optima and gradient domination of linear residual networks (THEOREMS.md §8).

**Setting.** :math:`y = Rx + \xi`, :math:`\xi \sim \mathcal N(0, I_d)`, :math:`\mathbb E xx^\top = \Sigma \succ 0`; model
:math:`\hat y = (I + A_\ell)\cdots(I + A_1)x`; risk :math:`f(A) = \mathbb E\|\hat y - y\|^2 = \|E\Sigma^{1/2}\|_F^2 + C`
with :math:`E = (I + A_\ell)\cdots(I + A_1) - R` and :math:`C = d` (Claim 2.3; **no** :math:`\tfrac12`). linnet's
loss is :math:`\ell = ` :meth:`linnet.SquaredLoss.population` :math:`(\Sigma, R\Sigma, R\Sigma R^\top + I)`, whose
value is :math:`\tfrac12 f`: here :math:`f = 2\ell`, :math:`\nabla f = 2\nabla L` and :math:`f - C = 2(\ell - c_0)`.

**Theorem 2.1.** With :math:`\gamma = \max(|\log\sigma_{\max}(R)|, |\log\sigma_{\min}(R)|)`, :math:`\ell \ge 3\gamma`
and (implicitly) :math:`\det R > 0`, there is a global optimum with
:math:`\max_i\|A_i\|_2 \le 2(\sqrt\pi + \sqrt{3\gamma})^2/\ell`. Checked on the construction
:func:`linnet.theory.hardt_ma_factorization` (polar decomposition and real matrix roots): the product reproduces
:math:`R` to :math:`10^{-10}` and the norm is within the bound.

**Theorem 2.2 and eq. (2.3), CORRECTED.** In the ball :math:`\max_i\|A_i\|_2 \le \tau < 1`,

.. math::

    \|\nabla f(A)\|_F^2 \;\ge\; 4\ell(1 - \tau)^{2(\ell-1)}\,\frac{\sigma_{\min}(\Sigma)^2}{\sigma_{\max}(\Sigma)}\,(f(A) - C),

so every critical point in the ball is global. **This is the corrected inequality** (THEOREMS.md §8): eq. (2.3)
as printed in the version read, :math:`\|\nabla f\|_F^2 \ge 4\ell(1-\tau)^{\ell-1}\sigma_{\min}(\Sigma)^2(f - C)`, has
the wrong exponent and misses :math:`1/\sigma_{\max}(\Sigma)`; it is *false* at :math:`A_i = -\tau I`,
:math:`\Sigma = I` (measured and reported below). The corrected form is asserted on random :math:`A` in the ball
(including :math:`A_i = -\tau I`) with random SPD :math:`\Sigma`, and is tight at :math:`A_i = -\tau I`,
:math:`\Sigma = I`. GD from :math:`A = 0` (:func:`linnet.train.gd`, ``residual=True``) stays in the ball and reaches
:math:`f = C`.

**Controls.** (a) :math:`\det R < 0`: every :math:`I + A_i` with :math:`\|A_i\| < 1` has positive determinant, so
:math:`f - C \ge \sigma_{\min}(\Sigma)\sigma_{\min}(R)^2 > 0` there; GD from 0 (balanced, so the product never
turns singular) does not reach :math:`C`. (b) :math:`\tau = 1`: :math:`A_1 = A_2 = -I` is a critical point (every
gradient term has a zero factor) with :math:`f = \|R\Sigma^{1/2}\|_F^2 + C > C`: a critical point in the closed
unit ball that is not global.

**Source.** Hardt & Ma, `Identity Matters in Deep Learning <https://arxiv.org/abs/1611.04231>`_, ICLR 2017:
Theorem 2.1, Theorem 2.2, Claim 2.3, Lemma 2.4, eq. (2.3), App. A.1 (full text read from a public conversion,
version unknown).

**Status.** MIXED: Theorem 2.1 and 2.2 constants CONFIRMED; the :math:`\det R > 0` requirement, the corrected
(2.3) and the construction DERIVED+VERIFIED.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg

import linnet as ln

from .._core import Check, Context, Measurement, host, register
from .._engine import gd_replay
from .s05_no_bad_minima import floored

RECON_RTOL_F64 = 1e-10  # THEOREMS.md §8 check 1: product of the construction equals R
GD_RTOL_F64 = 1e-10  # THEOREMS.md §8 check 2: "rtol 1e-10" for the inequality and its tightness


def hm_loss(ctx: Context, R: np.ndarray, Sigma: np.ndarray):
    r""":math:`\ell` with :math:`f = 2\ell`: population statistics :math:`(\Sigma, R\Sigma, R\Sigma R^\top + I)`."""
    d = R.shape[-1]
    Syx = R @ Sigma
    return ln.SquaredLoss.population(ctx.asarray(Sigma), ctx.asarray(Syx), ctx.asarray(Syx @ R.T + np.eye(d)))


def risk_and_grad(loss, As, R: np.ndarray, Sigma: np.ndarray):
    r"""``(f - C, ||grad f||_F^2, |2 l - f| / f)`` per net on the host.

    :math:`f - C = \|E\Sigma^{1/2}\|_F^2 = \operatorname{tr}(E\Sigma E^\top)` from the end-to-end matrix (Claim 2.3,
    accurate even when :math:`E` is tiny), :math:`\nabla f = 2\nabla L` from the engine, and the relative
    disagreement between the engine's :math:`2\ell` and :math:`f = \|E\Sigma^{1/2}\|_F^2 + d` (the explicit
    conversion between the two normalisations).
    """
    L, G = ln.value_and_grad(loss, As, residual=True)
    E = host(ln.end_to_end(As, residual=True)) - R
    excess = np.einsum("...ij,jk,...ik->...", E, Sigma, E)
    f = excess + R.shape[-1]
    g2 = 4.0 * sum(np.sum(host(g) ** 2, axis=(-2, -1)) for g in G)
    return excess, g2, np.max(np.abs(2.0 * host(L) - f) / f)


def coefficient(ell: int, tau: float, Sigma: np.ndarray, *, corrected: bool = True) -> float:
    """Coefficient of ``f - C`` in eq. (2.3): corrected (default) or as printed (written here independently)."""
    s = np.linalg.eigvalsh(Sigma)
    if corrected:
        return 4 * ell * (1 - tau) ** (2 * (ell - 1)) * s[0] ** 2 / s[-1]
    return 4 * ell * (1 - tau) ** (ell - 1) * s[0] ** 2


def random_spd(rng: np.random.Generator, d: int, cond: float = 10.0) -> np.ndarray:
    """SPD matrix with eigenvalues log-uniform in ``[1/sqrt(cond), sqrt(cond)]``."""
    Q = np.linalg.qr(rng.standard_normal((d, d)))[0]
    w = np.exp(rng.uniform(-0.5, 0.5, d) * math.log(cond))
    return (Q * w) @ Q.T


def random_target(rng: np.random.Generator, d: int, gamma: float, *, sign: int = 1) -> np.ndarray:
    r"""``R = U diag(e^g) V^T`` with ``U, V`` in SO(d), ``g`` uniform in ``[-gamma, gamma]``; ``sign = -1`` flips one
    column (``det R < 0``)."""

    def so(n):
        Q, Rr = np.linalg.qr(rng.standard_normal((n, n)))
        Q = Q * np.sign(np.diagonal(Rr))
        if np.linalg.det(Q) < 0:
            Q[:, 0] = -Q[:, 0]
        return Q

    g = rng.uniform(-gamma, gamma, d)
    g[0] = gamma  # attain gamma
    D = np.exp(g)
    D[-1] *= sign
    return (so(d) * D) @ so(d).T


def ball_samples(rng: np.random.Generator, ell: int, d: int, tau: float, B: int) -> np.ndarray:
    """``(ell, B, d, d)``: random directions with spectral norms uniform in ``[0, tau]``; sample 0 is ``A_i = -tau I``."""
    G = rng.standard_normal((ell, B, d, d))
    G /= np.linalg.norm(G, 2, axis=(-2, -1))[..., None, None]
    A = G * rng.uniform(0, tau, (ell, B, 1, 1))
    A[:, 0] = -tau * np.eye(d)
    return A


def gd_from_zero(ctx: Context, R: np.ndarray, Sigma: np.ndarray, ell: int, *, steps: int):
    r"""GD on the residual net from :math:`A = 0` (:func:`linnet.train.gd`); returns
    ``(excess_T / excess_0, gradient norm, max_t max_i ||A_i(t)||_2, f_T - C)``."""
    d = R.shape[0]
    loss = hm_loss(ctx, R, Sigma)
    As = ln.init.zeros((d,) * (ell + 1), xp=ctx.xp, dtype=ctx.dtype)
    lr = 0.25 / (ell * float(np.linalg.eigvalsh(Sigma)[-1]) * max(np.linalg.norm(R, 2), 1.0) ** 2)
    run = ln.train.gd(
        loss,
        As,
        lr=lr,
        steps=steps,
        residual=True,
        gtol=floored(1e-13, 100, ctx.eps),
        record_every=25,
        keep_history=True,
    )
    norms = max(float(np.max(np.linalg.norm(host(h), 2, axis=(-2, -1)))) for h in run.history)
    e0 = risk_and_grad(loss, As, R, Sigma)[0]
    eT, g2, _ = risk_and_grad(loss, run.weights, R, Sigma)
    return float(eT) / float(e0), math.sqrt(float(g2)), norms, float(eT)


def critical_is_global(ctx: Context, R, Sigma, As) -> tuple[float, float]:
    """``((f - C)/(f(0) - C), ||grad f||)`` at ``As``: the assertion 'this critical point is global'."""
    loss = hm_loss(ctx, R, Sigma)
    d, ell = R.shape[0], len(As)
    e, g2, _ = risk_and_grad(loss, As, R, Sigma)
    e0 = risk_and_grad(loss, ln.init.zeros((d,) * (ell + 1), xp=ctx.xp, dtype=ctx.dtype), R, Sigma)[0]
    return float(e) / float(e0), math.sqrt(float(g2))


@register
class HardtMa(Check):
    id = "s08-hardt-ma"
    title = "Hardt-Ma: small-norm residual optimum; CORRECTED gradient domination (2.3) in the tau-ball"
    claim = "Thm 2.1 bound; corrected (2.3) holds, printed fails"
    source = "Hardt & Ma arXiv:1611.04231 Thm 2.1, Thm 2.2, Claim 2.3, eq. (2.3) corrected; THEOREMS.md §8"
    status = "MIXED"
    control_description = "det R < 0 (GD from 0 cannot reach C) and tau = 1 (A_1 = A_2 = -I: critical, not global)"

    # ---- Theorem 2.1 ------------------------------------------------------------------------------------
    def construction(self, ctx: Context) -> tuple[Measurement, Measurement]:
        rng = ctx.rng("s08-construction")
        d = 4
        targets = [random_target(rng, d, g) for g in (0.3, 1.0, 2.0, 2.0)]
        targets.append(-np.eye(d))  # det = +1, Q has the eigenvalue -1 twice (rotations by pi)
        rot = scipy.linalg.block_diag(*[[[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]] for a in (3.1, 2.9)])
        targets.append(rot @ np.diag([2.0, 1.0, 0.5, 1.5]))  # rotation angles near pi
        recon, ratio, n = 0.0, 0.0, 0
        for R in targets:
            s = np.linalg.svd(R, compute_uv=False)
            gamma = float(max(abs(math.log(s[0])), abs(math.log(s[-1]))))
            bound_h = 2 * (math.sqrt(math.pi) + math.sqrt(3 * gamma)) ** 2  # times 1/l
            for ell in sorted({max(2, math.ceil(3 * gamma)), 10, 50, ctx.pick(200, 1000)}):
                Rx = ctx.asarray(R)
                As = ln.theory.hardt_ma_factorization(Rx, ell)
                P = host(ln.end_to_end(As, residual=True))
                recon = max(recon, float(np.linalg.norm(P - R) / np.linalg.norm(R)))
                top = max(float(np.linalg.norm(host(A), 2)) for A in As)
                bound = bound_h / ell
                engine_bound = float(host(ln.theory.hardt_ma_norm_bound(Rx, ell)))
                if abs(engine_bound - bound) > 1e3 * ctx.eps * bound:
                    bound = float("nan")  # the engine's bound disagrees with the formula: fail loudly
                ratio = max(ratio, top / bound) if not math.isnan(bound) else float("nan")
                n += 1
        # the product of up to 1000 factors: 1e-10 in float64 (THEOREMS.md), floored at 1e4 eps for float32
        return (
            Measurement.compare(
                recon, floored(RECON_RTOL_F64, 1e4, ctx.eps), "<=", f"||prod(I+A_i) - R|| / ||R||, {n} cases"
            ),
            Measurement.compare(ratio, 1.0, "<=", "max_i ||A_i||_2 / (2(sqrt(pi)+sqrt(3 gamma))^2 / l), worst case"),
        )

    # ---- eq. (2.3) corrected --------------------------------------------------------------------------
    def domination(self, ctx: Context):
        rng = ctx.rng("s08-domination")
        d, B = 3, ctx.pick(100, 20_000)
        worst, engine_dev, conversion = np.inf, 0.0, 0.0
        for ell in (2, 3, 6, 10):
            for tau in (0.1, 0.3, 0.6, 0.9):
                Sigma = random_spd(rng, d)
                R = random_target(rng, d, 1.0)
                loss = hm_loss(ctx, R, Sigma)
                A = ball_samples(rng, ell, d, tau, B)
                As = tuple(ctx.asarray(a) for a in A)
                excess, g2, conv = risk_and_grad(loss, As, R, Sigma)
                conversion = max(conversion, float(conv))
                ratio = g2 / (coefficient(ell, tau, Sigma) * excess)
                worst = min(worst, float(np.min(ratio)))
                # the engine's own (corrected) form must say the same
                gd = ln.theory.hardt_ma_gradient_domination(
                    As, ctx.asarray(Sigma), tau, corrected=True, R=ctx.asarray(R)
                )
                engine_dev = max(engine_dev, float(np.max(np.abs(host(gd.lhs) / host(gd.rhs) - ratio) / ratio)))
        # tightness and the printed form at A_i = -tau I, Sigma = I (l = 6, tau = 0.3, THEOREMS.md's example)
        ell, tau = 6, 0.3
        R = random_target(rng, d, 1.0)
        As = tuple(ctx.asarray(-tau * np.eye(d)) for _ in range(ell))
        excess, g2, _ = risk_and_grad(hm_loss(ctx, R, np.eye(d)), As, R, np.eye(d))
        tight = float(g2) / (coefficient(ell, tau, np.eye(d)) * float(excess))
        printed_rhs = coefficient(ell, tau, np.eye(d), corrected=False) * float(excess)
        rt = floored(GD_RTOL_F64, 1e5, ctx.eps)  # 1e-10 is ~4.5e5 eps in float64; 1e5 eps keeps float32 meaningful
        return {
            "corrected (2.3) on the tau-ball": Measurement.compare(
                worst, 1 - rt, ">=", f"min ||grad f||^2 / rhs over {16 * B} samples (l in 2..10, tau in 0.1..0.9)"
            ),
            "corrected (2.3) tight at A_i = -tau I": Measurement.compare(
                abs(tight - 1), rt, "<=", "|lhs/rhs - 1|, Sigma = I, l = 6, tau = 0.3"
            ),
            "printed (2.3) FAILS at A_i = -tau I": Measurement.compare(
                float(g2) / printed_rhs,
                1.0,
                "<",
                f"lhs/printed rhs = (1-tau)^(l-1): {float(g2):.4f} < {printed_rhs:.4f} here (THEOREMS.md's R: 3.1548 < 18.77)",
            ),
            "engine hardt_ma_gradient_domination agrees": Measurement.compare(
                engine_dev, 1e4 * ctx.eps, "<=", "relative"
            ),
            # the explicit conversion: Hardt-Ma's f (no 1/2) is twice linnet's population loss
            "f = 2 x SquaredLoss.population value": Measurement.compare(
                conversion, 1e3 * ctx.eps, "<=", "max |2 l - f| / f"
            ),
        }

    def measure(self, ctx: Context) -> Measurement:
        recon, norm = self.construction(ctx)
        parts = {"Thm 2.1: prod(I + A_i) = R": recon, "Thm 2.1: max||A_i|| <= bound": norm}
        parts.update(self.domination(ctx))
        rng = ctx.rng("s08-gd")
        d, ell, tau = 3, 6, 0.9
        R, Sigma = random_target(rng, d, 0.3), random_spd(rng, d, 4.0)
        rel, gnorm, path_norm, _ = gd_from_zero(ctx, R, Sigma, ell, steps=ctx.pick(5_000, 20_000))
        parts["GD from 0 reaches C (critical => global)"] = Measurement.compare(
            rel, floored(GD_RTOL_F64, 1e3, ctx.eps), "<=", f"(f_T - C)/(f_0 - C), gradient {gnorm:.1e}, det R > 0"
        )
        parts["GD path stays in the tau-ball"] = Measurement.compare(
            path_norm, tau, "<=", f"max_t max_i ||A_i(t)||, tau = {tau}"
        )
        loss = hm_loss(ctx, R, Sigma)
        A0 = tuple(ctx.asarray(0.1 * a) for a in ball_samples(rng, ell, d, 0.9, 2)[:, 1])
        lr = 0.25 / (ell * float(np.linalg.eigvalsh(Sigma)[-1]) * max(np.linalg.norm(R, 2), 1.0) ** 2)
        parts["trainer_replay"] = gd_replay(ctx, loss, A0, lr, residual=True)
        return Measurement.all_of(parts)

    def control(self, ctx: Context) -> Measurement:
        rng = ctx.rng("s08-control")
        d, ell = 3, 6
        # (a) det R < 0: the same GD from 0
        R, Sigma = random_target(rng, d, 0.3, sign=-1), random_spd(rng, d, 4.0)
        rel, gnorm, path_norm, excess = gd_from_zero(ctx, R, Sigma, ell, steps=ctx.pick(5_000, 20_000))
        floor = float(np.linalg.eigvalsh(Sigma)[0] * np.linalg.svd(R, compute_uv=False)[-1] ** 2)
        # (b) tau = 1: A_1 = A_2 = -I, the rest random in the unit ball
        R2, Sigma2 = random_target(rng, d, 0.3), random_spd(rng, d, 4.0)
        A = [-np.eye(d), -np.eye(d)] + [a for a in ball_samples(rng, ell - 2, d, 0.9, 2)[:, 1]]
        rel_b, g_b = critical_is_global(ctx, R2, Sigma2, tuple(ctx.asarray(a) for a in A))
        tol = floored(GD_RTOL_F64, 1e3, ctx.eps)
        # any_of: the control holds if either broken hypothesis still satisfies the assertion, so each must fail
        return Measurement.any_of(
            {
                "det R < 0: GD from 0 reaches C": Measurement.compare(
                    rel,
                    tol,
                    "<=",
                    f"(f_T - C)/(f_0 - C); f_T - C = {excess:.4g} >= sigma_min(S) sigma_min(R)^2 = {floor:.4g}",
                ),
                "tau = 1: critical point A_1 = A_2 = -I is global": Measurement.compare(
                    rel_b, tol, "<=", f"(f - C)/(f(0) - C) at a point with ||grad f|| = {g_b:.1e}"
                ),
            }
        )
