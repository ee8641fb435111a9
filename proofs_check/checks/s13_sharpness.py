r"""Sharpness of the balanced global minimum and the linear-stability threshold of GD (THEOREMS.md §13).

**Statement.** GD :math:`\theta \mapsto \theta - \eta\nabla L` is linearly stable at a minimum iff
:math:`\lambda_{\max}(H) \le 2/\eta` (CONFIRMED: Cohen et al. arXiv:2103.00065). For the whitened loss
:math:`L = \tfrac12\|W_N\cdots W_1 - \Phi\|_F^2`:

- scalar case: at any global minimum :math:`\lambda_{\max} = \phi^2\sum_i w_i^{-2} \ge N|\phi|^{2-2/N}`, with equality
  iff balanced (AM–GM): the balanced minimum is the flattest (DERIVED+VERIFIED, proven);
- matrix case: at a balanced global minimum :math:`\lambda_{\max} = N\sigma_1(\Phi)^{2-2/N}` (DERIVED+VERIFIED), and at
  *every* global minimum :math:`\lambda_{\max} \ge N\sigma_1(\Phi)^{2-2/N}` (a proven inequality, THEOREMS2.md §18,
  DERIVED+VERIFIED: the Rayleigh quotient of the direction :math:`\Delta_j = y_jx_{j-1}^\top` built from the top singular
  pair is already that large, by AM–GM and Cauchy–Schwarz; it settles the former conjecture of §13 and agrees with
  Mulayoff & Michaeli, ICML 2020, arXiv:2002.04710, whose abstract (CONFIRMED) says flat minima are nearly balanced;
  their theorem numbers UNCONFIRMED);
- consequence: with :math:`S = N|\phi|^{2-2/N}`, GD from a small (≤ 5 %) perturbation of the balanced minimum
  converges for :math:`\eta \le 0.99\cdot2/S` and not for :math:`\eta \ge 1.01\cdot2/S` (no minimum is stable).

**Check.** Top eigenvalue of the engine's dense ``ln.hessian`` at constructed minima against
``ln.theory.sharpness_balanced`` and ``ln.theory.sharpness_scalar_min``; random unbalanced (scalar) and
gauge-transformed (matrix) minima against the bound; the threshold experiment (:math:`N = 3`, :math:`\phi = 2`) as one
batch of perturbed nets in ``ln.train.gd`` with per-net step sizes :math:`(0.90, 0.99, 1.01, 1.10)\cdot2/S`,
"converged" meaning :math:`\ell \le 10^{-20}` (float64).

**Control.** The lower bound with a hypothesis removed must fail, each part on its own: at points that are not global
minima (the origin at depth :math:`\ge 3`, where :math:`H = 0`; balanced layers scaled by 0.7), and with the test
direction built from the second singular pair (which certifies only :math:`N\sigma_2^{2-2/N}`; matrices with
:math:`\sigma_2 \ge 0.3\sigma_1`).

**Source.** Cohen, Kaur, Li, Kolter & Talwalkar arXiv:2103.00065 (the 2/η criterion); Saxe et al.
arXiv:1312.6120 App. B (same value); the sharpness formulas are derived for THEOREMS.md §13; the lower bound at every
global minimum: THEOREMS2.md §18 (proof), Mulayoff & Michaeli arXiv:2002.04710 (ICML 2020); Marion & Chizat
arXiv:2405.13456 (related lower bound, constant UNCONFIRMED, not used).

**Status.** DERIVED+VERIFIED (the 2/η criterion CONFIRMED; the matrix lower bound proven in THEOREMS2.md §18).
"""

from __future__ import annotations

import numpy as np

import linnet as ln

from .._core import Check, Context, Measurement, host, register
from .s01_calculus import fd_tol
from .s12_symmetry import COND_CAP, _gl

__all__ = ["SharpnessCheck", "top_eigenvalue"]

SCALAR_CASES = tuple((N, phi) for N in (2, 3, 5) for phi in (2.5, -1.7))


def top_eigenvalue(loss, Ws) -> np.ndarray:
    """Largest eigenvalue of the engine's dense Hessian, per net (host float64)."""
    return np.linalg.eigvalsh(host(ln.hessian(loss, Ws)))[..., -1]


def rel(a, b) -> np.ndarray:
    return np.abs(np.asarray(a, dtype=float) - np.asarray(b, dtype=float)) / np.abs(np.asarray(b, dtype=float))


def scalar_minimum(ctx: Context, N: int, phi: float, logs: np.ndarray | None = None):
    """Scalar layers ``(B, 1, 1)`` with product ``phi``: balanced (``logs=None``) or with log-spread ``logs``."""
    logs = np.zeros((1, N)) if logs is None else logs - logs.mean(axis=-1, keepdims=True)
    w = np.abs(phi) ** (1.0 / N) * np.exp(logs)
    w[:, 0] *= np.sign(phi)
    loss = ln.SquaredLoss.whitened(ctx.asarray(np.array([[phi]])))
    return loss, tuple(ctx.asarray(w[:, j, None, None]) for j in range(N)), w


def matrix_case(ctx: Context, rng, *, min_rank: int = 1, min_gap: float = 0.0):
    r"""Random ``Phi`` (d_N x d_0 in 1..4) and widths with every hidden width >= rank, depth 2..4.

    ``min_rank`` and ``min_gap`` (a floor on :math:`\sigma_2/\sigma_1`) are for the control, whose wrong
    formula differs from the right one only through the second singular value.
    """
    while True:
        d0, dN = (int(x) for x in rng.integers(1, 5, size=2))
        if min(d0, dN) < min_rank:
            continue
        phi = rng.standard_normal((dN, d0))
        s = np.linalg.svd(phi, compute_uv=False)
        if min_gap == 0.0 or s[1] >= min_gap * s[0]:
            break
    N = int(rng.integers(2, 5))
    r = min(d0, dN)
    widths = (d0,) + tuple(int(x) for x in rng.integers(r, 6, size=N - 1)) + (dN,)
    Phi = ctx.asarray(phi)
    return Phi, widths, ln.SquaredLoss.whitened(Phi)


def test_direction_quotient(loss, Ws, Phi_h: np.ndarray, pair: int = 0) -> float:
    r"""Rayleigh quotient :math:`\langle\Delta, H\Delta\rangle/\|\Delta\|^2` (``ln.hvp``) of the test direction of
    THEOREMS2.md §18 built from singular pair ``pair`` :math:`(u, v)` of :math:`\Phi`:
    :math:`\Delta_j = y_j x_{j-1}^\top`, :math:`x_j = W_{1:j}v`, :math:`y_j = W_{j+1:N}^\top u`. At a global minimum
    and ``pair = 0`` it is at least :math:`N\sigma_1^{2-2/N}` (AM-GM and Cauchy-Schwarz)."""
    U, _, Vt = np.linalg.svd(Phi_h)
    u, v = U[:, pair], Vt[pair]
    W = [host(w) for w in Ws]
    N = len(W)
    xs = [v]
    for w in W:
        xs.append(w @ xs[-1])
    ys = [None] * (N + 1)
    ys[N] = u
    for j in range(N, 0, -1):
        ys[j - 1] = W[j - 1].T @ ys[j]
    D = [np.outer(ys[j], xs[j - 1]) for j in range(1, N + 1)]
    like = Ws[0]
    HD = ln.hvp(loss, Ws, tuple(host_to(like, d) for d in D))
    num = sum(float(np.sum(host(h) * d)) for h, d in zip(HD, D))
    return num / sum(float(np.sum(d * d)) for d in D)


def host_to(like, a: np.ndarray):
    """``a`` as an array of ``like``'s namespace and dtype."""
    from linnet.backend import from_host, namespace

    return from_host(a, namespace(like), like.dtype)


def _unbalanced_scalar_minima(ctx: Context, rng) -> tuple:
    """Random unbalanced scalar minima, lambda_max = phi^2 sum w^-2 >= N |phi|^(2-2/N): ``(ratio, err)``, the
    least lambda_max over the balanced formula and the worst relative error of the closed form."""
    ratio_su, err_su = np.inf, 0.0
    for N, phi in SCALAR_CASES:
        loss, Ws, w = scalar_minimum(ctx, N, phi, logs=0.5 * rng.standard_normal((ctx.pick(20, 500), N)))
        lam = top_eigenvalue(loss, Ws)
        formula = float(host(ln.theory.sharpness_balanced(ctx.asarray(np.array([[phi]])), N)))
        closed = host(ln.theory.sharpness_scalar_min(ctx.asarray(np.stack([host(W)[:, 0, 0] for W in Ws], -1)), phi))
        ratio_su = min(ratio_su, float(np.min(lam / formula)))
        err_su = max(err_su, float(np.max(rel(lam, closed))))
    return ratio_su, err_su


def _gauge_transformed_minima(ctx: Context, rng, cases: list) -> tuple:
    """The balanced matrix minima of ``cases`` moved by random gauge transformations G_j: ``(ratio_gauge,
    ratio_dir)``, the least lambda_max and the least test-direction quotient, each over the balanced formula."""
    ratio_gauge = ratio_dir = np.inf
    for _phi, widths, loss, Ws, _, formula in cases:
        for _ in range(ctx.pick(3, 10)):
            Gs = [np.eye(widths[0])] + [_gl(rng, d) for d in widths[1:-1]] + [np.eye(widths[-1])]
            Wt = tuple(ctx.asarray(Gs[j + 1] @ host(W) @ np.linalg.inv(Gs[j])) for j, W in enumerate(Ws))
            ratio_gauge = min(ratio_gauge, float(top_eigenvalue(loss, Wt)) / formula)
            ratio_dir = min(ratio_dir, test_direction_quotient(loss, Wt, host(_phi)) / formula)
    return ratio_gauge, ratio_dir


@register
class SharpnessCheck(Check):
    id = "s13-sharpness"
    title = "Sharpness of the balanced global minimum and the 2/S stability threshold of GD"
    claim = (
        "balanced min: lambda_max = N|phi|^(2-2/N) (scalar, flattest) = N s1(Phi)^(2-2/N) (matrix; <= lambda_max "
        "at every global min, proven); GD converges at 0.99*2/S, not at 1.01*2/S; heavy ball at 2(1+beta)/S"
    )
    source = (
        "Cohen et al. arXiv:2103.00065 (2/eta); Saxe et al. arXiv:1312.6120 App. B; Mulayoff & Michaeli "
        "arXiv:2002.04710; THEOREMS.md §13, THEOREMS2.md §18"
    )
    status = "DERIVED+VERIFIED"
    control_description = (
        "the lower bound lambda_max >= N s1^(2-2/N) without its hypotheses: at non-minima (the origin at depth >= 3; "
        "balanced layers scaled by 0.7) and with the test direction of the second singular pair; each must fail"
    )

    EQ_TOL = 1e-9  # THEOREMS §13: lambda_max equals the formula to 1e-9 relative (float64)
    LR_FACTORS = (0.90, 0.99, 1.01, 1.10)  # times 2/S; THEOREMS §13 threshold experiment
    PERTURBATION = 0.05  # relative, "<= 5% so that the basin is the balanced one"
    N_THR, PHI_THR = 3, 2.0

    def tol(self, ctx: Context) -> float:
        """1e-9 in float64; plus ``1e3 eps`` of round-off in the Hessian and its eigenvalues in float32."""
        return fd_tol(ctx, self.EQ_TOL)

    def ftol(self, ctx: Context) -> float:
        """ "Converged": loss <= 1e-20 (THEOREMS); in float32 the floor is the round-off ``(100 eps |phi|)^2``."""
        return max(1e-20, (100 * ctx.eps * abs(self.PHI_THR)) ** 2)

    # ---- pieces -----------------------------------------------------------------------------------------------
    def scalar_balanced(self, ctx: Context) -> list:
        """``(N, phi, measured lambda_max, formula)`` at the balanced scalar minima."""
        out = []
        for N, phi in SCALAR_CASES:
            loss, Ws, _ = scalar_minimum(ctx, N, phi)
            formula = float(host(ln.theory.sharpness_balanced(ctx.asarray(np.array([[phi]])), N)))
            out.append((N, phi, float(top_eigenvalue(loss, Ws)[0]), formula))
        return out

    def matrix_balanced(self, ctx: Context, rng, n: int, **kw) -> list:
        """``(Phi, widths, loss, Ws, measured, formula)`` at balanced matrix minima."""
        out = []
        for _ in range(n):
            Phi, widths, loss = matrix_case(ctx, rng, **kw)
            Ws = ln.init.balanced(Phi, widths)
            formula = float(host(ln.theory.sharpness_balanced(Phi, len(widths) - 1)))
            out.append((Phi, widths, loss, Ws, float(top_eigenvalue(loss, Ws)), formula))
        return out

    def threshold(self, ctx: Context, n_nets: int, steps: int, *, beta: float = 0.0, factors=None) -> dict:
        r"""One batched run of ``ln.train.gd`` (``beta = 0``) or ``ln.train.momentum`` from perturbed balanced minima
        with step sizes ``factors * 2(1 + beta)/S`` (heavy ball on a quadratic is stable iff
        :math:`\eta\lambda < 2(1 + \beta)`, Polyak 1964). Returns the fraction of nets the trainer reports
        converged per factor, its status codes, and the relative error of the loss it reports at step 0 against
        a host evaluation of :math:`\tfrac12(\prod_j w_j - \phi)^2`."""
        rng = ctx.rng("s13-threshold" if beta == 0.0 else f"s13-threshold-{beta}")
        factors = self.LR_FACTORS if factors is None else factors
        N, phi = self.N_THR, self.PHI_THR
        S = float(host(ln.theory.sharpness_balanced(ctx.asarray(np.array([[phi]])), N)))
        k = len(factors)
        w = abs(phi) ** (1.0 / N) * (1.0 + self.PERTURBATION * rng.uniform(-1.0, 1.0, size=(k, n_nets, N)))
        w[..., 0] *= np.sign(phi)
        Ws = tuple(ctx.asarray(w[..., j, None, None]) for j in range(N))
        loss = ln.SquaredLoss.whitened(ctx.asarray(np.array([[phi]])))
        lr = ctx.asarray(np.asarray(factors)[:, None] * 2.0 * (1.0 + beta) / S)
        if beta == 0.0:
            run = ln.train.gd(loss, Ws, lr=lr, steps=steps, ftol=self.ftol(ctx), record_every=steps)
        else:
            run = ln.train.momentum(loss, Ws, lr=lr, beta=beta, steps=steps, ftol=self.ftol(ctx), record_every=steps)
        status = host(run.status)
        w32 = np.stack([host(W)[..., 0, 0] for W in Ws], -1)  # the weights as the dtype holds them
        r0 = np.prod(w32, axis=-1) - phi
        # error relative to |r| |phi|: the round-off of the residual r (a few eps |phi|) times dL/dr = r
        scale = np.abs(r0) * abs(phi)
        loss_err = float(np.max(np.abs(host(run.loss)[0] - 0.5 * r0**2) / scale))
        # and ln.loss (the generic evaluation) at the same points
        loss_err = max(loss_err, float(np.max(np.abs(host(ln.loss(loss, Ws)) - 0.5 * r0**2) / scale)))
        return {"frac": (status == ln.train.CONVERGED).mean(axis=1), "status": status, "loss_err": loss_err}

    # ---- the check --------------------------------------------------------------------------------------------
    def measure(self, ctx: Context) -> Measurement:
        rng = ctx.rng("s13-measure")
        tol = self.tol(ctx)
        sb = self.scalar_balanced(ctx)
        err_sb = max(rel(m, f) for _, _, m, f in sb)
        ratio_su, err_su = _unbalanced_scalar_minima(ctx, rng)
        # matrix balanced minima, and gauge-transformed ones (the conjecture)
        cases = self.matrix_balanced(ctx, rng, ctx.pick(12, 300))
        err_mb = max(rel(m, f) for *_, m, f in cases)
        ratio_gauge, ratio_dir = _gauge_transformed_minima(ctx, rng, cases)
        # the GD threshold experiment (quick: 5e3 steps, enough here: the 0.99 runs converge in < 2e3 steps)
        n_nets, steps = ctx.pick(20, 1000), ctx.pick(5000, 20000)
        thr = self.threshold(ctx, n_nets, steps)
        frac = thr["frac"]
        # far above the threshold the trainer must report the divergence itself
        wild = self.threshold(ctx, ctx.pick(5, 50), 2000, factors=(5.0,))
        diverged = float(np.mean(wild["status"] == ln.train.DIVERGED))
        # heavy ball: the threshold moves to 2(1 + beta)/S
        beta = 0.5
        hb = self.threshold(ctx, ctx.pick(10, 500), steps, beta=beta, factors=(0.9, 1.1))["frac"]
        loss_tol = 100 * ctx.eps
        below = [f for c, f in zip(self.LR_FACTORS, frac) if c < 1]
        above = [f for c, f in zip(self.LR_FACTORS, frac) if c > 1]
        parts = {
            "scalar balanced: lambda_max = N|phi|^(2-2/N)": Measurement.compare(
                err_sb, tol, note="relative error; N in (2,3,5), phi in (2.5,-1.7)"
            ),
            "scalar minima: lambda_max = phi^2 sum w^-2": Measurement.compare(
                err_su, tol, note="ln.hessian vs ln.theory.sharpness_scalar_min, random unbalanced minima"
            ),
            "scalar minima are sharper (AM-GM): min lambda_max / formula": Measurement.compare(
                ratio_su, 1 - tol, ">=", note="random unbalanced minima, log-spread 0.5"
            ),
            "matrix balanced: lambda_max = N s1(Phi)^(2-2/N)": Measurement.compare(
                err_mb, tol, note=f"relative error; {len(cases)} random Phi, depth 2-4, hidden widths >= rank"
            ),
            "every global min: lambda_max >= N s1^(2-2/N) (min ratio, gauge)": Measurement.compare(
                ratio_gauge, 1 - tol, ">=", note=f"G_j = I + 0.5Z, cond <= {COND_CAP:g} (THEOREMS saw min 1.044)"
            ),
            "proof's test direction (top singular pair): quotient >= bound": Measurement.compare(
                ratio_dir, 1 - tol, ">=", note="<D, H D>/|D|^2 by ln.hvp at the same gauge-transformed minima (§18)"
            ),
            "GD converges for eta <= 0.99*2/S (fraction)": Measurement.compare(
                min(below), 1.0, ">=", note=f"N=3, phi=2, {n_nets} nets per eta, <=5% perturbation, {steps} steps"
            ),
            "GD does not converge for eta >= 1.01*2/S (fraction)": Measurement.compare(
                max(above), 0.0, "<=", note=f"converged: loss <= {self.ftol(ctx):.1e}"
            ),
        }
        parts.update(
            {
                "GD's reported loss and ln.loss = host value (step 0)": Measurement.compare(
                    thr["loss_err"],
                    loss_tol,
                    note="|run.loss[0] - 0.5 r^2| / (|r| |phi|), r = w_N...w_1 - phi on the host",
                ),
                "GD at 5*2/S: reported diverged (fraction)": Measurement.compare(
                    diverged, 1.0, ">=", note="the trainer's own status"
                ),
                "heavy ball (beta=0.5) converges at 0.9*2(1+beta)/S (fraction)": Measurement.compare(
                    hb[0], 1.0, ">=", note="ln.train.momentum; above 2/S, where plain GD cannot converge"
                ),
                "heavy ball does not converge at 1.1*2(1+beta)/S (fraction)": Measurement.compare(
                    hb[1], 0.0, "<=", note="linear stability of heavy ball, Polyak 1964"
                ),
            }
        )
        return Measurement.all_of(parts)

    def control(self, ctx: Context) -> Measurement:
        """The lower bound with a hypothesis of §18 removed must fail: at points that are not global minima
        (the origin at depth 3, where H = 0; balanced layers scaled by 0.7, product 0.7^N Phi), and for the test
        direction built from the *second* singular pair (which certifies only N s2^(2-2/N))."""
        tol = self.tol(ctx)
        cases = self.matrix_balanced(ctx, ctx.rng("s13-control"), ctx.pick(6, 100), min_rank=2, min_gap=0.3)
        r_origin = r_shrunk = r_second = -np.inf
        for Phi, widths, loss, Ws, _, formula in cases:
            N = len(widths) - 1
            Z = tuple(W * 0 for W in Ws)
            if N >= 3:
                r_origin = max(r_origin, float(top_eigenvalue(loss, Z)) / formula)
            r_shrunk = max(r_shrunk, float(top_eigenvalue(loss, tuple(0.7 * W for W in Ws))) / formula)
            r_second = max(r_second, test_direction_quotient(loss, Ws, host(Phi), pair=1) / formula)
        if r_origin == -np.inf:  # no depth-3+ case drawn: the origin of a depth-3 net on the first Phi
            Phi, widths, loss = cases[0][:3]
            Z = ln.init.zeros((widths[0], widths[0], widths[0], widths[-1]), xp=ctx.xp, dtype=ctx.dtype)
            r_origin = float(top_eigenvalue(loss, Z)) / float(host(ln.theory.sharpness_balanced(Phi, 3)))
        parts = {
            "not a minimum: the origin (N >= 3, H = 0)": Measurement.compare(
                r_origin, 1 - tol, ">=", note="largest lambda_max / N s1^(2-2/N)"
            ),
            "not a minimum: balanced layers x 0.7": Measurement.compare(
                r_shrunk, 1 - tol, ">=", note="largest lambda_max / N s1^(2-2/N)"
            ),
            "test direction from the 2nd singular pair": Measurement.compare(
                r_second, 1 - tol, ">=", note="largest quotient / N s1^(2-2/N), sigma_2 >= 0.3 sigma_1"
            ),
        }
        return Measurement.any_of(parts, note="each violated hypothesis must break the bound (figure: the first)")
