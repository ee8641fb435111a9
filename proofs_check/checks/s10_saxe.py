r"""Exact learning dynamics of Saxe, McClelland & Ganguli (THEOREMS.md §10).

Hypotheses: whitened input (:math:`\Sigma^{11} = I`), :math:`\ell(W) = \tfrac12\|W - \Phi\|_F^2` with
:math:`\Phi = \sum_\alpha s_\alpha u_\alpha v_\alpha^\top`; a **decoupled, balanced** initialization
:math:`W_l = R_{l+1}D_lR_l^\top` (:math:`R_1 = V`, :math:`R_{N+1} = U`, every layer carrying :math:`a_\alpha =
u_{0\alpha}^{1/D}`); gradient flow (time :math:`t = \eta k` in linnet's normalisation, :math:`\tau = 1`).

Conclusion: each mode strength :math:`u_\alpha(t) = u_\alpha^\top W_{1:N}(t)v_\alpha` evolves alone and the
end-to-end matrix stays diagonal in the :math:`(U, V)` frame. Depth 2 (eq. 12):
:math:`u(t) = s e^{2st}/(e^{2st} - 1 + s/u_0)`, reaching :math:`u_f` at :math:`t = \frac1{2s}\ln\frac{u_f(s-u_0)}
{u_0(s-u_f)}` (eq. 11). Depth :math:`D` (eq. 15): :math:`\dot u = Du^{2-2/D}(s-u)`. Discrete GD follows eq. 12
with :math:`t = \eta k` up to :math:`O(\eta)`.

Source: Saxe, McClelland & Ganguli, `Exact solutions to the nonlinear dynamics of learning in deep linear neural
networks <https://arxiv.org/abs/1312.6120>`_, ICLR 2014, eqs. (8)-(12), (15).

Status (THEOREMS.md §10): all equations CONFIRMED (full text read). The O(η) GD check is DERIVED.
Controls: a non-whitened :math:`\Sigma^{11}` (decoupled init from the SVD of :math:`\Sigma^{31}`) breaks the
decoupled closed form; an unbalanced start :math:`a_0 \ne b_0` breaks eq. 12 with :math:`u_0 = a_0b_0` (while the
hyperbola :math:`a^2 - b^2` is still conserved).
"""

from __future__ import annotations

import numpy as np
from scipy.integrate import solve_ivp

import linnet as ln

from .._core import EPS64, Check, Context, Measurement, host, register


def _tol(ctx: Context, tol64: float) -> float:
    """THEOREMS' float64 tolerance; in float32 scaled by sqrt(eps32/eps64) (integration-limited figures)."""
    return tol64 * np.sqrt(ctx.eps / EPS64)


def _ode_tols(ctx: Context) -> tuple[float, float]:
    return max(1e-12, 100 * ctx.eps), max(1e-14, 10 * ctx.eps)  # THEOREMS §10: rtol 1e-12


def _frame(ctx: Context, d0: int, dN: int, s):
    rng = ctx.rng(f"s10-frame-{d0}-{dN}")
    r = len(s)
    U = np.linalg.qr(rng.standard_normal((dN, dN)))[0][:, :r]
    V = np.linalg.qr(rng.standard_normal((d0, d0)))[0][:, :r]
    return U, V, (U * np.asarray(s)) @ V.T


def _modes(hist, U: np.ndarray, V: np.ndarray) -> np.ndarray:
    """U^T W_e(t) V for recorded layer histories (n_rec, ..., d_j, d_{j-1}) -> (n_rec, ..., r, r)."""
    We = host(hist[0])
    for H in hist[1:]:
        We = host(H) @ We
    return U.T @ We @ V


def _split(M: np.ndarray):
    r = M.shape[-1]
    diag = np.diagonal(M, axis1=-2, axis2=-1)
    off = M - diag[..., None] * np.eye(r)
    return diag, off


@register
class SaxeExactDynamics(Check):
    id = "s10-saxe"
    title = "Saxe-McClelland-Ganguli exact solutions (eqs. 11, 12, 15)"
    claim = "decoupled balanced GF: modes follow eq.12 ({bound:eq12_modes}), stay decoupled ({bound:decoupled}); eq.11 time; eq.15 deep; GD O(eta)"
    source = "Saxe, McClelland & Ganguli, arXiv 1312.6120, eqs. (11), (12), (15); THEOREMS.md §10"
    status = "CONFIRMED"
    control_description = (
        "non-whitened Sigma_xx (decoupled init from the SVD of Sigma_yx) and an unbalanced start a0 != b0 both "
        "miss eq. 12 by far more than 1e-8"
    )

    d0, dN = 5, 4
    s = (3.0, 2.0, 1.0)
    u0 = (1e-3, 1e-2, 5e-3)
    T = 8.0

    def _depth2_gf(self, ctx: Context, loss, Ws, times):
        rtol, atol = _ode_tols(ctx)
        run = ln.train.gradient_flow(
            loss, Ws, t_final=float(times[-1]), times=list(times), rtol=rtol, atol=atol, keep_history=True
        )
        return run

    def measure(self, ctx: Context) -> Measurement:
        s, u0 = np.array(self.s), np.array(self.u0)
        U, V, Phi = _frame(ctx, self.d0, self.dN, s)
        loss = ln.SquaredLoss.whitened(ctx.asarray(Phi))
        tol = _tol(ctx, 1e-8)  # THEOREMS §10: modes to 1e-8
        tol_off = _tol(ctx, 1e-10)  # THEOREMS §10: off-diagonals to 1e-10
        parts = {}

        # 1. depth 2, hidden width 4 > rank 3, Haar-random hidden frame
        Ws = ln.init.decoupled(
            ctx.asarray(U), ctx.asarray(V), ctx.asarray(u0), (self.d0, 4, self.dN), seed=ctx.rng("s10-hidden")
        )
        uf = 0.9 * s
        t_star = host(ln.theory.saxe_time(ctx.asarray(s), ctx.asarray(u0), ctx.asarray(uf)))
        grid = np.linspace(0.0, self.T, 41)
        times = np.unique(np.concatenate([grid, t_star]))
        run = self._depth2_gf(ctx, loss, Ws, times)
        M = _modes(run.history, U, V)
        diag, off = _split(M)
        eq12 = host(ln.theory.saxe_mode(ctx.asarray(times[:, None]), ctx.asarray(s), ctx.asarray(u0)))
        We_T = host(ln.end_to_end(run.weights))
        outside = We_T - U @ (U.T @ We_T @ V) @ V.T  # anything outside span(U) x span(V)
        parts["eq12_modes"] = Measurement.compare(
            float(np.max(np.abs(diag - eq12))),
            tol,
            "<=",
            f"max_t,alpha |u_alpha(t) - eq.12|, s={self.s}, u0={self.u0}, t in [0, {self.T}]",
        )
        parts["decoupled"] = Measurement.compare(
            max(float(np.max(np.abs(off))), float(np.max(np.abs(outside)))),
            tol_off,
            "<=",
            "max off-diagonal of U^T W_e V (and W_e outside span U x span V)",
        )

        # 2. eq. 11: at t* = saxe_time(s, u0, 0.9 s) the simulated mode equals 0.9 s; timing error relative
        k = [int(np.argmin(np.abs(times - t))) for t in t_star]
        u_at = np.array([diag[k[a], a] for a in range(len(s))])
        dt = np.abs(u_at - uf) / (2 * uf * (s - uf))  # |u(t*) - uf| / u'(t*)
        parts["eq11_time_gf"] = Measurement.compare(
            float(np.max(dt / t_star)),
            tol,
            "<=",
            f"relative timing error of eq.11 at u_f = 0.9 s: t* = {np.round(t_star, 6).tolist()}",
        )
        parts["eq11_time_event"] = self._event_time(ctx, s, u0, uf, t_star)

        # 3. deep (D = 3, 5): matrix GF and the scalar-layer ODE against eq. 15
        for D in (3, 5):
            parts[f"eq15_depth{D}"] = self._deep(ctx, loss, U, V, s, D)

        # 4. discrete GD at O(eta)
        errs = []
        for lr in (0.02, 0.01):
            k_steps = int(round(self.T / lr))
            g = ln.train.gd(loss, Ws, lr=lr, steps=k_steps, record_every=int(round(0.5 / lr)), keep_history=True)
            tt = host(g.times).reshape(-1)
            dg, _ = _split(_modes(g.history, U, V))
            ref = host(ln.theory.saxe_mode(ctx.asarray(tt[:, None]), ctx.asarray(s), ctx.asarray(u0)))
            errs.append(float(np.max(np.abs(dg - ref))))
        ratio = errs[0] / errs[1]
        parts["gd_order_eta"] = Measurement.all_of(
            {"low": Measurement.compare(ratio, 1.6, ">="), "high": Measurement.compare(ratio, 2.5, "<=")},
            note=f"max|u_GD(eta k) - eq.12| at eta=0.02 / at eta=0.01: {errs[0]:.3g}/{errs[1]:.3g}; in [1.6, 2.5]",
        )
        return Measurement.all_of(parts, note=f"whitened, d0={self.d0}, dN={self.dN}, s={self.s}")

    def _event_time(self, ctx: Context, s, u0, uf, t_star) -> Measurement:
        """Independent reference: scipy DOP853 on the layer-wise mode ODE a' = b(s-ab), b' = a(s-ab), event ab = uf."""
        worst = 0.0
        for a_s, a_u0, a_uf, a_t in zip(s, u0, uf, t_star):

            def rhs(t, y, s_=a_s):
                a, b = y
                r = s_ - a * b
                return [b * r, a * r]

            def hit(t, y, uf_=a_uf):
                return y[0] * y[1] - uf_

            hit.terminal = True
            a0 = np.sqrt(a_u0)
            sol = solve_ivp(rhs, (0, 10 * a_t), [a0, a0], method="DOP853", rtol=1e-13, atol=1e-15, events=hit)
            worst = max(worst, abs(sol.t_events[0][0] - a_t) / a_t)
        return Measurement.compare(worst, _tol(ctx, 1e-8), "<=", "scipy event time of u = u_f vs eq.11, relative")

    def _deep(self, ctx: Context, loss, U, V, s, D: int) -> Measurement:
        u0 = np.array([0.05, 0.1, 0.08])
        T = 4.0
        times = np.linspace(0.0, T, 21)
        widths = (self.d0,) + (4,) * (D - 1) + (self.dN,)
        Ws = ln.init.decoupled(ctx.asarray(U), ctx.asarray(V), ctx.asarray(u0), widths, seed=ctx.rng(f"s10-deep{D}"))
        rtol, atol = _ode_tols(ctx)
        run = ln.train.gradient_flow(loss, Ws, t_final=T, times=list(times), rtol=rtol, atol=atol, keep_history=True)
        diag, off = _split(_modes(run.history, U, V))
        eq15 = host(ln.theory.saxe_deep_mode(ctx.asarray(times[:, None]), ctx.asarray(s), ctx.asarray(u0), D))
        # independent reference: scipy on the D scalar layers a_i' = prod_{j != i} a_j (s - prod a), a_i(0) = u0^(1/D)
        ref = np.empty_like(eq15)
        for al in range(len(s)):

            def rhs(t, a, s_=s[al]):
                p = np.prod(a)
                return np.array([np.prod(np.delete(a, i)) for i in range(D)]) * (s_ - p)

            sol = solve_ivp(
                rhs, (0, T), np.full(D, u0[al] ** (1.0 / D)), method="DOP853", rtol=1e-13, atol=1e-15, t_eval=times
            )
            ref[:, al] = np.prod(sol.y, axis=0)
        return Measurement.all_of(
            {
                "gf_vs_eq15": Measurement.compare(float(np.max(np.abs(diag - eq15))), _tol(ctx, 1e-8), "<="),
                "scalar_ode_vs_eq15": Measurement.compare(float(np.max(np.abs(ref - eq15))), _tol(ctx, 1e-9), "<="),
                "decoupled": Measurement.compare(float(np.max(np.abs(off))), _tol(ctx, 1e-10), "<="),
            },
            note=f"D={D}: max|matrix GF mode - eq.15 (saxe_deep_mode)| (1e-8), scalar-layer ODE vs eq.15 (1e-9), off-diag",
        )

    def control(self, ctx: Context) -> Measurement:
        s, u0 = np.array(self.s), np.array(self.u0)
        tol = _tol(ctx, 1e-8)
        times = np.linspace(0.0, self.T, 41)
        eq12 = ln.theory.saxe_mode(ctx.asarray(times[:, None]), ctx.asarray(s), ctx.asarray(u0))
        eq12 = host(eq12)

        # (b) non-whitened Sigma_xx; the decoupled init uses the SVD of Sigma_yx (the paper's Sigma^31)
        U, V, Syx = _frame(ctx, self.d0, self.dN, s)
        B = ctx.rng("s10-sxx").standard_normal((self.d0, self.d0))
        Sxx = np.eye(self.d0) + 0.3 * (B @ B.T) / self.d0
        Syy = Syx @ np.linalg.solve(Sxx, Syx.T) + np.eye(self.dN)
        lossb = ln.SquaredLoss.population(ctx.asarray(Sxx), ctx.asarray(Syx), ctx.asarray(Syy))
        Wb = ln.init.decoupled(ctx.asarray(U), ctx.asarray(V), ctx.asarray(u0), (self.d0, 4, self.dN))
        run_b = self._depth2_gf(ctx, lossb, Wb, times)
        db, _ = _split(_modes(run_b.history, U, V))

        # (c) whitened but unbalanced: W1 scaled by k, W2 by 1/k (u0 = a0 b0 unchanged, a0 != b0)
        k = 3.0
        lossc = ln.SquaredLoss.whitened(ctx.asarray(U @ np.diag(s) @ V.T))
        W1, W2 = ln.init.decoupled(ctx.asarray(U), ctx.asarray(V), ctx.asarray(u0), (self.d0, 3, self.dN))
        run_c = self._depth2_gf(ctx, lossc, (k * W1, W2 / k), times)
        dc, _ = _split(_modes(run_c.history, U, V))
        # the hyperbola a^2 - b^2 of each mode is still conserved (hidden frame = identity here)
        H1, H2 = host(run_c.history[0]), host(run_c.history[1])
        a = np.einsum("ia,tia->ta", U, H2[:, :, :3])  # a_alpha = u_alpha^T W2 e_alpha
        b = np.einsum("tai,ia->ta", H1[:, :3, :], V)  # b_alpha = e_alpha^T W1 v_alpha
        hyp = float(np.max(np.abs((a**2 - b**2) - (a[0] ** 2 - b[0] ** 2))))

        return Measurement.any_of(
            {
                "non_whitened": Measurement.compare(
                    float(np.max(np.abs(db - eq12))), tol, "<=", "max|u_alpha(t) - eq.12| with Sigma_xx != I"
                ),
                "unbalanced": Measurement.compare(
                    float(np.max(np.abs(dc - eq12))),
                    tol,
                    "<=",
                    f"max|u_alpha(t) - eq.12(u0 = a0 b0)| with a0/b0 = {k**2:g}; "
                    f"a^2 - b^2 still conserved to {hyp:.2g}",
                ),
            }
        )
