r"""End-to-end dynamics of Arora, Cohen & Hazan: the preconditioned flow (THEOREMS.md §4).

Hypotheses: gradient flow :math:`\dot W_j = -\partial L/\partial W_j` on :math:`L = \ell(W_N\cdots W_1)` for a
:math:`C^1` loss, from an exactly **balanced** initialization (:math:`W_{j+1}^\top W_{j+1} = W_jW_j^\top`);
any widths.

Conclusion: the end-to-end matrix obeys

.. math:: \dot W_e = -\sum_{j=1}^N [W_eW_e^\top]^{\frac{j-1}{N}}\,\nabla\ell(W_e)\,[W_e^\top W_e]^{\frac{N-j}{N}},

which depends on the depth only, not on the hidden widths; in vectorised form
:math:`\operatorname{vec}\dot W_e = -P_{W}\operatorname{vec}\nabla\ell` with :math:`P_W` of eigenvalues
:math:`\sum_j\sigma_r^{2(N-j)/N}\sigma_{r'}^{2(j-1)/N}`, so :math:`\lambda_{\min}(P_W) = N\sigma_{\min}^{2(N-1)/N}`
(square) or :math:`\sigma_{\min}^{2(N-1)/N}` (:math:`d_0\ne d_N`). GD follows the discrete rule up to
:math:`O(\eta^2)` per step, so the deviation over a fixed time scales like :math:`\eta`.

Source: Arora, Cohen & Hazan, `On the Optimization of Deep Networks: Implicit Acceleration by
Overparameterization <https://arxiv.org/abs/1802.06509>`_, ICML 2018 (end-to-end update rule, width
independence); preconditioner spectrum: FODL Lecture 4, Prop. 1 (secondary).

Status (THEOREMS.md §4): update rule and preconditioner spectrum CONFIRMED; the GD scaling check is DERIVED.
Controls: an unbalanced init (:math:`\|D\|\sim1`) breaks the agreement; swapping the left and right Gram matrices
in the rule (square, non-symmetric :math:`W`) breaks it too. (Swapping only the exponents is *not* a control: it
reindexes the same sum.)
"""

from __future__ import annotations

import numpy as np
from scipy.integrate import solve_ivp

import linnet as ln
from linnet.linalg import e2e_velocity, gram_powers, preconditioner, preconditioner_eigenvalues

from .._core import EPS64, Check, Context, Measurement, host, register
from .._engine import gd_replay


def _tol(ctx: Context, tol64: float) -> float:
    """THEOREMS' float64 tolerance; in float32 the same number of digits short of sqrt(eps) (integrations)."""
    return tol64 * np.sqrt(ctx.eps / EPS64)


def _ode_tols(ctx: Context) -> tuple[float, float]:
    # THEOREMS §4: DOP853 with rtol 1e-11; no tighter than ~10 eps of the dtype
    return max(1e-11, 10 * ctx.eps), max(1e-13, 10 * ctx.eps)


def _problem(ctx: Context, d0: int, dN: int, m: int = 24):
    rng = ctx.rng(f"s04-data-{d0}-{dN}")
    X = rng.standard_normal((d0, m))
    Y = rng.standard_normal((dN, d0)) @ X + 0.3 * rng.standard_normal((dN, m))
    return ln.SquaredLoss.from_data(ctx.asarray(X), ctx.asarray(Y))


def _vec(M, xp):
    """Column-major vec (THEOREMS §0)."""
    return xp.reshape(M.mT, tuple(M.shape[:-2]) + (-1,))


def _scipy_e2e(loss, We0_h: np.ndarray, depth: int, T: float, ctx: Context, swapped: bool = False) -> np.ndarray:
    """Independent reference: scipy DOP853 on the end-to-end ODE (velocity from linnet.linalg, float64 host)."""
    lh = ln.SquaredLoss(*(None if a is None else host(a) for a in (loss.Sxx, loss.Syx, loss.Phi, loss.c0, loss.tr_yy)))
    shp = We0_h.shape
    N = depth

    def rhs(t, y):
        W = y.reshape(shp)
        G = lh.grad(W)
        if not swapped:
            return -host(e2e_velocity(W, G, N)).reshape(-1)
        # deliberately broken: [W^T W] on the left, [W W^T] on the right (square W only)
        left, right = gram_powers(W, [k / N for k in range(N)])
        v = sum(right[j - 1] @ G @ left[N - j] for j in range(1, N + 1))
        return -np.asarray(v).reshape(-1)

    rtol, atol = _ode_tols(ctx)
    sol = solve_ivp(rhs, (0.0, T), We0_h.reshape(-1), method="DOP853", rtol=rtol, atol=atol)
    return sol.y[:, -1].reshape(shp)


@register
class EndToEndDynamics(Check):
    id = "s04-end-to-end"
    title = "End-to-end dynamics (ACH): balanced layer-wise flow = preconditioned flow"
    claim = "layer GF from balanced init == e2e preconditioned ODE ({bound:layers_vs_e2e_scipy}), width-free; P_W spectrum; GD dev ~ eta"
    source = "Arora, Cohen & Hazan, arXiv 1802.06509 (e2e rule); P_W spectrum: FODL Lecture 4 Prop. 1 (secondary); THEOREMS.md §4"
    status = "CONFIRMED"
    control_description = (
        "unbalanced init (||D|| ~ 1) and the rule with swapped Gram matrices (square non-symmetric W) both "
        "miss the layer-wise flow by far more than 1e-8"
    )

    depth = 3
    T = 3.0

    def _layer_vs_e2e(self, ctx: Context, loss, Ws, *, swapped: bool = False):
        """max-abs gap at time T between the layer-wise GF product and (engine, scipy) e2e flows."""
        rtol, atol = _ode_tols(ctx)
        N = len(Ws)
        lay = ln.train.gradient_flow(loss, Ws, t_final=self.T, rtol=rtol, atol=atol)
        We_lay = host(ln.end_to_end(lay.weights))
        We0 = ln.end_to_end(Ws)
        ref = _scipy_e2e(loss, host(We0), N, self.T, ctx, swapped=swapped)
        gap_ref = float(np.max(np.abs(We_lay - ref)))
        if swapped:
            return gap_ref, None, We_lay
        e2e = ln.train.end_to_end_flow(loss, We0, depth=N, t_final=self.T, rtol=rtol, atol=atol)
        We_e2e = host(e2e.weights[0])
        return gap_ref, float(np.max(np.abs(We_lay - We_e2e))), We_lay

    def layer_flow_accuracy(self, ctx: Context) -> Measurement:
        r"""``ln.train.gradient_flow`` on a two-layer net whose layers differ in scale by 300x, against scipy's
        DOP853 at rtol 1e-13 on the layer ODE written out by hand (:math:`\dot W_1 = -W_2^T G`,
        :math:`\dot W_2 = -G W_1^T`, :math:`G = W_2W_1 - \Phi`): the error of *each* layer relative to its own
        size. At the requested rtol = 1e-6 the observed error is rtol/25 to rtol/3 over seeds 0-6; the bound is rtol
        itself (an integrator that controls the error of one layer only lands 7-10x above it), floored at 1e3 eps."""
        rng = ctx.rng("s04-flow-accuracy")
        d0, d1, d2 = 3, 4, 2
        Phi = rng.standard_normal((d2, d0))
        W1 = 1.5 * rng.standard_normal((d1, d0))
        W2 = 0.01 * rng.standard_normal((d2, d1))
        W1, W2 = (np.asarray(W, dtype=ctx.dtype).astype(np.float64) for W in (W1, W2))
        Phi = np.asarray(Phi, dtype=ctx.dtype).astype(np.float64)
        T, rtol = 2.0, 1e-6

        def rhs(_t, th):
            A, B = th[: d1 * d0].reshape(d1, d0), th[d1 * d0 :].reshape(d2, d1)
            G = B @ A - Phi
            return np.concatenate([(-B.T @ G).ravel(), (-G @ A.T).ravel()])

        sol = solve_ivp(
            rhs, (0.0, T), np.concatenate([W1.ravel(), W2.ravel()]), method="DOP853", rtol=1e-13, atol=1e-15
        )
        ref = (sol.y[: d1 * d0, -1].reshape(d1, d0), sol.y[d1 * d0 :, -1].reshape(d2, d1))
        loss = ln.SquaredLoss.whitened(ctx.asarray(Phi))
        run = ln.train.gradient_flow(loss, (ctx.asarray(W1), ctx.asarray(W2)), t_final=T, rtol=rtol, atol=1e-2 * rtol)
        err = max(float(np.max(np.abs(host(w) - r)) / np.max(np.abs(r))) for w, r in zip(run.weights, ref))
        return Measurement.compare(
            err, max(rtol, 1e3 * ctx.eps), "<=", "max_j |W_j(T) - ref_j| / |ref_j|, layers 300x apart, rtol 1e-6"
        )

    def measure(self, ctx: Context) -> Measurement:
        N = self.depth
        d0, dN = 4, 2
        loss = _problem(ctx, d0, dN)
        A = 0.5 * ctx.rng("s04-A").standard_normal((dN, d0))
        tol = _tol(ctx, 1e-8)  # THEOREMS §4 check 1 and 4: 1e-8 in float64

        # 1. balanced, non-square, hidden widths larger than needed (rank 2)
        wide = (d0, 6, 5, dN)
        Ws = ln.init.balanced(ctx.asarray(A), wide)
        gap_ref, gap_eng, We_a = self._layer_vs_e2e(ctx, loss, Ws)
        # 4. width independence: other hidden widths, same W_e(0)
        other = (d0, 2, 9, dN)
        Ws2 = ln.init.balanced(ctx.asarray(A), other)
        rtol, atol = _ode_tols(ctx)
        We_b = host(ln.end_to_end(ln.train.gradient_flow(loss, Ws2, t_final=self.T, rtol=rtol, atol=atol).weights))
        gap_width = float(np.max(np.abs(We_a - We_b)))

        # 2. P_W spectrum (non-square and square W)
        spec = self._spectrum(ctx)

        # 3. GD vs the discrete end-to-end rule: deviation over a fixed time ~ eta
        devs = []
        for lr in (0.02, 0.01):
            k = int(round(1.0 / lr))
            g = ln.train.gd(loss, Ws, lr=lr, steps=k)
            e = ln.train.end_to_end_gd(loss, ln.end_to_end(Ws), depth=N, lr=lr, steps=k)
            devs.append(float(np.max(np.abs(host(ln.end_to_end(g.weights)) - host(e.weights[0])))))
        ratio = devs[0] / devs[1]
        replay = gd_replay(ctx, loss, Ws, 0.02)

        parts = {
            "layers_vs_e2e_scipy": Measurement.compare(
                gap_ref,
                tol,
                "<=",
                f"max|W_e^layers(T) - W_e^e2e(T)|, T={self.T}, widths {wide}, e2e by scipy DOP853 on e2e_velocity",
            ),
            "layers_vs_e2e_engine": Measurement.compare(gap_eng, tol, "<=", "same against ln.train.end_to_end_flow"),
            "width_independence": Measurement.compare(
                gap_width, tol, "<=", f"max|W_e(T)| gap between widths {wide} and {other}, same balanced W_e(0)"
            ),
            **spec,
            "gd_deviation_order_eta": Measurement.all_of(
                {
                    "ratio_low": Measurement.compare(ratio, 1.6, ">="),
                    "ratio_high": Measurement.compare(ratio, 2.5, "<="),
                },
                note=f"dev(eta=0.02)/dev(eta=0.01) over t=1: {devs[0]:.3g}/{devs[1]:.3g}; bounds [1.6, 2.5]",
            ),
            "trainer_replay": replay,
            "layer_flow_per_layer_accuracy": self.layer_flow_accuracy(ctx),
        }
        return Measurement.all_of(parts, note=f"N={N}, d0={d0}, dN={dN}")

    def _spectrum(self, ctx: Context) -> dict:
        xp, N = ctx.xp, self.depth
        out = {}
        rtol_spec = _tol(ctx, 1e-10) if ctx.dtype == "float64" else 1e2 * np.sqrt(ctx.eps)  # THEOREMS §4: 1e-10 rel
        for name, (r, c) in (("nonsquare", (2, 4)), ("square", (3, 3))):
            Wh = ctx.rng(f"s04-pw-{name}").standard_normal((r, c))
            W = ctx.asarray(Wh)
            P = preconditioner(W, N)
            ev_dense = host(xp.linalg.eigvalsh(P))
            ev_eng = host(preconditioner_eigenvalues(W, N))
            s = np.linalg.svd(Wh, compute_uv=False)
            sr = np.concatenate([s, np.zeros(r - len(s))])
            sc = np.concatenate([s, np.zeros(c - len(s))])
            ev_host = np.sort(
                sum(
                    (sr[:, None] ** (2 * (N - j) / N)) * (sc[None, :] ** (2 * (j - 1) / N)) for j in range(1, N + 1)
                ).reshape(-1)
            )
            scale = ev_host.max()
            lam_min = (N if r == c else 1) * s.min() ** (2 * (N - 1) / N)
            # top eigenvector vec(u1 v1^T), column-major
            U, _, Vt = np.linalg.svd(Wh)
            v = np.outer(U[:, 0], Vt[0]).reshape(-1, order="F")
            Pv = host(P) @ v
            lam1 = N * s[0] ** (2 * (N - 1) / N)
            # the dense P_W and e2e_velocity are the same linear map: P vec(G) = vec(velocity)
            G = ctx.asarray(ctx.rng(f"s04-G-{name}").standard_normal((r, c)))
            map_gap = float(
                np.max(
                    np.abs(host(xp.matmul(P, _vec(G, xp)[..., None])[..., 0]) - host(_vec(e2e_velocity(W, G, N), xp)))
                )
            )
            out[f"P_W_spectrum_{name}"] = Measurement.compare(
                max(np.max(np.abs(ev_dense - ev_host)), np.max(np.abs(ev_eng - ev_host))) / scale,
                rtol_spec,
                "<=",
                f"{r}x{c}: sorted eig(P_W) and preconditioner_eigenvalues vs the SVD formula, relative",
            )
            lam_eng = float(host(ln.theory.preconditioner_min_eig(W, N)))
            out[f"lambda_min_{name}"] = Measurement.compare(
                max(abs(ev_dense[0] - lam_min), abs(lam_eng - lam_min)) / scale,
                rtol_spec,
                "<=",
                f"lambda_min(P_W)={ev_dense[0]:.9g} (dense), {lam_eng:.9g} (ln.theory.preconditioner_min_eig) vs "
                f"{'N ' if r == c else ''}sigma_min^(2(N-1)/N)={lam_min:.9g}",
            )
            out[f"eigvec_{name}"] = Measurement.compare(
                np.max(np.abs(Pv - lam1 * v)) / scale,
                rtol_spec,
                "<=",
                "P_W vec(u1 v1^T) = N sigma_1^(2(N-1)/N) vec(u1 v1^T)",
            )
            out[f"P_W_is_velocity_{name}"] = Measurement.compare(
                map_gap / scale, rtol_spec, "<=", "P_W vec(G) == vec(e2e_velocity(W, G))"
            )
        return out

    def control(self, ctx: Context) -> Measurement:
        tol = _tol(ctx, 1e-8)
        # (a) unbalanced: Gaussian layers with ||D_j|| ~ 1, e2e flow started from the same W_e(0)
        d0, dN = 4, 2
        loss = _problem(ctx, d0, dN)
        Wu = ln.init.gaussian((d0, 6, 5, dN), scale=0.6, seed=ctx.rng("s04-unbal"), xp=ctx.xp, dtype=ctx.dtype)
        D = float(host(ln.theory.balancedness(Wu)))
        gap_u, gap_u_eng, _ = self._layer_vs_e2e(ctx, loss, Wu)
        # (b) balanced square net, the rule with the Gram matrices swapped
        lsq = _problem(ctx, 3, 3)
        Asq = 0.7 * ctx.rng("s04-Asq").standard_normal((3, 3))
        Wsq = ln.init.balanced(ctx.asarray(Asq), (3, 4, 5, 3))
        gap_s, _, _ = self._layer_vs_e2e(ctx, lsq, Wsq, swapped=True)
        return Measurement.any_of(
            {
                "unbalanced_init": Measurement.compare(
                    max(gap_u, gap_u_eng),
                    tol,
                    "<=",
                    f"layer GF vs e2e ODE from an init with balancedness delta={D:.3g}",
                ),
                "swapped_grams": Measurement.compare(
                    gap_s,
                    tol,
                    "<=",
                    "layer GF vs the rule with [W^T W] on the left and [W W^T] on the right (square W)",
                ),
            }
        )
