r"""Large step sizes reduce imbalance: :math:`D^+ = (1-\eta^2r^2)D` for scalar GD (THEOREMS2.md §21).

**Statement.** For :math:`f(x,y) = \tfrac12(xy-\mu)^2`, GD :math:`x^+ = x-\eta ry`, :math:`y^+ = y-\eta rx`
(:math:`r = xy-\mu`) gives, for :math:`D := y^2-x^2`, exactly :math:`D^+ = (1-\eta^2r^2)D`. So :math:`|D|` is
non-increasing whenever :math:`\eta|r|\le\sqrt2` and conserved only where :math:`r = 0`; larger steps keep
:math:`|r_t|` large for longer, so the final minimum is more balanced and flatter (sharpness
:math:`x^2+y^2 = \sqrt{D^2+4\mu^2}`). Gradient flow conserves :math:`D` (§2).

**Check.** :math:`\mu = 1`, :math:`(x_0, y_0) = (3, 0.1)`, :math:`\eta\in\{0.01, 0.05, 0.1, 0.15, 0.2, 0.21\}`, one batch of
scalar nets on the engine's diagonal map (``ln.diagonal.gd`` with per-net step sizes, weights recorded every
step), run to :math:`\ell\le\tfrac12 10^{-26}` (:math:`|r|<10^{-13}`). Asserted: the recursion at every step
(relative error :math:`\le10^{-14}` in float64, scaled by eps in float32); every run reduces :math:`|D|` (by more
than :math:`10^{-8}` relative, far above the flow's conservation error); final :math:`|D|` non-increasing in
:math:`\eta`; final sharpness (top eigenvalue of the engine's dense Hessian, equal to :math:`x^2+y^2`) :math:`\le2/\eta`, and that
eigenvalue equal to the top eigenvalue of the closed-form Hessian :math:`\begin{pmatrix}y^2&2xy-\mu\\2xy-\mu&x^2\end{pmatrix}`
at the final weights (host float64) to ``roundoff_bound(eps)``: the sharpness asserted is the loss's, not the engine's.

**Controls.** (a) Gradient flow (DOP853, ``ln.diagonal.flow``) conserves :math:`D` to :math:`10^{-10}`: "the run
reduced :math:`|D|`" fails. (b) Per-layer steps :math:`\eta_x = \eta`, :math:`\eta_y = 0.5\eta` break the identity at
:math:`O(\eta)` (§2 control (b)).

**Source.** Wang, Chen, Zhao & Tu (author list UNCONFIRMED), "Large learning rate tames homogeneity",
arXiv:2110.03677, ICLR 2022: paper not read; its step-size windows and rates UNCONFIRMED. The identity is a special
case of §2's drift, derived for THEOREMS2 §21.

**Status** (THEOREMS2 §21). Identity and measurements DERIVED+VERIFIED; the paper's theorem UNCONFIRMED (not read).
"""

from __future__ import annotations

import numpy as np

import linnet as ln

from .._core import EPS64, Check, Context, Measurement, host, register, roundoff_bound

__all__ = ["LargeStepImbalanceCheck"]

MU, X0, Y0 = 1.0, 3.0, 0.1
ETAS = (0.01, 0.05, 0.1, 0.15, 0.2, 0.21)
REDUCED = 1e-8  # relative reduction of |D| that counts as "reduced" (GF conserves it to ~1e-10 at rtol 1e-12)


def _loss(ctx):
    return ln.SquaredLoss.whitened(ctx.asarray(np.array([[MU]])))


@register
class LargeStepImbalanceCheck(Check):
    id = "s21-large-step-imbalance"
    title = "Large step sizes reduce imbalance: D+ = (1 - eta^2 r^2) D for scalar GD"
    claim = "D+ = (1-eta^2 r^2) D every step; |D_final| < |D_0|, non-increasing in eta; final sharpness <= 2/eta"
    source = "Wang et al. arXiv:2110.03677 (ICLR 2022; not read, UNCONFIRMED); identity derived in THEOREMS2 §21"
    status = "MIXED"
    control_description = (
        "(a) gradient flow conserves D (|D| not reduced); (b) per-layer steps eta_y = eta_x / 2 break the identity"
    )

    def tol(self, ctx: Context) -> float:
        """1e-14 relative per step in float64 (THEOREMS2; observed 4.3e-16), scaled by eps in float32."""
        return 1e-14 * ctx.eps / EPS64

    def ftol(self, ctx: Context) -> float:
        return max(0.5e-26, (100 * ctx.eps) ** 2)

    def run_gd(self, ctx: Context):
        n = len(ETAS)
        Ws = (ctx.asarray(np.full((n, 1, 1), X0)), ctx.asarray(np.full((n, 1, 1), Y0)))
        return ln.diagonal.gd(
            _loss(ctx), Ws, lr=ctx.asarray(np.array(ETAS)), steps=200_000, ftol=self.ftol(ctx), record_weights=True
        )

    def measure(self, ctx: Context) -> Measurement:
        run = self.run_gd(ctx)
        x, y = host(run.history[0])[..., 0, 0], host(run.history[1])[..., 0, 0]  # (T, n)
        eta = np.array(ETAS)
        D = y**2 - x**2
        r = x * y - MU
        pred = (1 - eta**2 * r[:-1] ** 2) * D[:-1]
        moved = np.abs(D[1:] - D[:-1]) > 0  # frozen (converged) nets repeat their last iterate
        err = float(np.max(np.abs(D[1:] - pred)[moved] / np.abs(D[:-1])[moved]))
        conv = host(run.status) == ln.diagonal.CONVERGED
        Df = np.abs(host(D[-1]))
        S = np.linalg.eigvalsh(host(ln.diagonal.hessian(_loss(ctx), run.weights)))[..., -1]
        # reference: the closed-form Hessian of (xy - mu)^2 / 2 at the final weights, on the host in float64
        xf, yf = x[-1], y[-1]
        off = 2 * xf * yf - MU
        S_ref = np.linalg.eigvalsh(np.stack([np.stack([yf**2, off], -1), np.stack([off, xf**2], -1)], -2))[..., -1]
        parts = {
            "identity D+ = (1 - eta^2 r^2) D: max relative error": Measurement.compare(
                err, self.tol(ctx), note=f"every step of {len(ETAS)} runs, eta in {ETAS}"
            ),
            "every run converged (fraction)": Measurement.compare(float(conv.mean()), 1.0, ">="),
            "|D| reduced: min (|D_0| - |D_final|) / |D_0|": Measurement.compare(
                float(np.min(1 - Df / abs(Y0**2 - X0**2))),
                REDUCED,
                ">=",
                note="final |D|: " + ", ".join(f"{v:.4f}" for v in Df),
            ),
            "final |D| non-increasing in eta: max increase": Measurement.compare(float(np.max(np.diff(Df))), 0.0, "<="),
            "final sharpness * eta / 2 (max)": Measurement.compare(
                float(np.max(S * eta / 2)), 1.0, "<=", note="sharpness: " + ", ".join(f"{v:.3f}" for v in S)
            ),
            "final sharpness: engine Hessian vs closed form [[y^2, 2xy-mu], [2xy-mu, x^2]] (max rel. error)": (
                Measurement.compare(
                    float(np.max(np.abs(S - S_ref) / S_ref)),
                    roundoff_bound(ctx.eps),
                    note="top eigenvalues at the final weights; x^2 + y^2 there: "
                    + ", ".join(f"{v:.3f}" for v in xf**2 + yf**2),
                )
            ),
        }
        return Measurement.all_of(parts)

    def control(self, ctx: Context) -> Measurement:
        fl = ln.diagonal.flow(
            ln.SquaredLoss.whitened(np.array([[MU]])),
            (np.array([[X0]]), np.array([[Y0]])),
            t_max=100.0,
            ftol=0.5e-24,
            rtol=1e-12,
            atol=1e-15,
        )
        xf, yf = float(fl.weights[0][0, 0]), float(fl.weights[1][0, 0])
        D0 = Y0**2 - X0**2
        red_gf = 1 - abs(yf**2 - xf**2) / abs(D0)
        # (b) per-layer steps on the recorded GD states: the identity's residual
        run = self.run_gd(ctx)
        x, y = host(run.history[0])[:-1, :, 0, 0], host(run.history[1])[:-1, :, 0, 0]
        eta = np.array(ETAS)
        r = x * y - MU
        xn, yn = x - eta * r * y, y - 0.5 * eta * r * x
        D = y**2 - x**2
        err_b = float(np.max(np.abs((yn**2 - xn**2) - (1 - 0.5 * eta**2 * r**2) * D) / np.abs(D)))
        parts = {
            "(a) gradient flow: (|D_0| - |D_final|) / |D_0|": Measurement.compare(
                red_gf, REDUCED, ">=", note=f"DOP853 rtol 1e-12, loss {fl.loss[-1]:.1e}"
            ),
            "(b) per-layer steps: identity error (best form)": Measurement.compare(
                err_b, self.tol(ctx), note="eta_y = eta_x / 2, compared with (1 - eta_x eta_y r^2) D"
            ),
        }
        return Measurement.any_of(parts, note="each control must fail")
