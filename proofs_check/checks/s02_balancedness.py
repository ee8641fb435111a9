r"""Balancedness: conserved under gradient flow, exact one-step drift under GD (THEOREMS.md §2).

**Statement.** For any differentiable :math:`L = \ell(W_N\cdots W_1)` and :math:`G_j = \partial L/\partial W_j`,
:math:`G_jW_j^\top = W_{j+1}^\top G_{j+1}`. Hence, with :math:`D_j = W_{j+1}^\top W_{j+1} - W_jW_j^\top`
(input Gram of layer :math:`j+1` minus output Gram of layer :math:`j`):

- gradient flow :math:`\dot W_j = -G_j` conserves every :math:`D_j` (CONFIRMED);
- one GD step :math:`W_j^+ = W_j - \eta G_j`, the same :math:`\eta` in every layer, changes it by exactly
  :math:`D_j^+ - D_j = \eta^2(G_{j+1}^\top G_{j+1} - G_jG_j^\top)` (DERIVED+VERIFIED), so over a fixed time
  :math:`t = \eta k` the drift is :math:`O(\eta t)`: halving :math:`\eta` halves it;
- with weight decay :math:`\lambda`, :math:`\dot W_j = -G_j - \lambda W_j` gives :math:`D_j(t) = e^{-2\lambda t}D_j(0)`
  (DERIVED+VERIFIED).

**Check.** One GD step on random nets and data (shapes as §1, :math:`\eta\in[10^{-3},10^{-1}]`) against the
predicted drift; gradient flow (Dormand–Prince, tight tolerances) from balanced and unbalanced inits, and with
weight decay; the drift ratio between :math:`\eta` and :math:`\eta/2` over a fixed time, for a batch of nets.

**Controls.** (a) The wrong orientation :math:`W_{j+1}W_{j+1}^\top - W_j^\top W_j` (square layers) is not conserved
by the same flow (relative change :math:`\ge 10^{-3}`); (b) per-layer step sizes :math:`\eta_j \ne \eta_{j+1}` give an
:math:`O(\eta)` drift, so the ratio leaves :math:`[1.6, 2.5]` (it is about 1).

**Source.** Conservation: Du, Hu & Lee, arXiv:1806.00900; N. Cohen FODL Lecture 4, Lemma 1 (transcription);
ACGH arXiv:1810.02281 (δ-balancedness); Saxe et al. arXiv:1312.6120, eq. 14 text (Noether). Drift and weight
decay: derived for THEOREMS.md §2 (consistent with Kunin et al. arXiv:2012.04728).

**Status.** Conservation CONFIRMED; exact GD drift and weight decay DERIVED+VERIFIED: MIXED.
"""

from __future__ import annotations

import numpy as np

import linnet as ln

from .._core import Check, Context, Measurement, host, register, roundoff_bound
from .s01_calculus import fd_tol, random_problem, rounded

__all__ = ["BalancednessCheck", "gaps", "gd_run", "flow"]


def gaps(Ws) -> tuple:
    r""":math:`D_j = W_{j+1}^\top W_{j+1} - W_jW_j^\top` (``ln.theory.balancedness_gaps``)."""
    return ln.theory.balancedness_gaps(Ws)


def wrong_gaps(Ws) -> tuple:
    r"""The wrong orientation :math:`W_{j+1}W_{j+1}^\top - W_j^\top W_j` (square layers only)."""
    xp = ln._backend.namespace(*Ws)
    return tuple(xp.matmul(Ws[j + 1], Ws[j + 1].mT) - xp.matmul(Ws[j].mT, Ws[j]) for j in range(len(Ws) - 1))


def gd_run(loss, Ws, *, lr: float, steps: int, lr_per_layer=None) -> tuple:
    """Final weights of ``steps`` steps of ``ln.train.gd``."""
    return tuple(ln.train.gd(loss, Ws, lr=lr, steps=steps, lr_per_layer=lr_per_layer).weights)


def flow(ctx: Context, loss, Ws, *, t_final: float, weight_decay: float = 0.0) -> tuple:
    r"""Final weights of gradient flow :math:`\dot W_j = -G_j - \lambda W_j` to ``t_final``, tight tolerances.

    Without weight decay: ``ln.train.gradient_flow`` (rtol :math:`10^{-12}`, atol :math:`10^{-14}`, floored at
    the dtype's round-off by the engine). With weight decay (not in the engine's flow): SciPy's DOP853
    on the flattened parameters of one net, right-hand side from ``ln.grad`` in the context's backend and dtype.
    """
    rtol, atol = max(1e-12, 100 * ctx.eps), max(1e-14, ctx.eps)  # THEOREMS §2; the floor is the dtype's round-off
    if weight_decay == 0.0:
        run = ln.train.gradient_flow(loss, Ws, t_final=t_final, rtol=rtol, atol=atol)
        if not bool(np.all(host(run.status) == ln.train.CONVERGED)):
            raise RuntimeError(f"gradient flow did not reach t = {t_final}: status {run.status_names}")
        return tuple(run.weights)
    from scipy.integrate import solve_ivp

    widths = (Ws[0].shape[-1],) + tuple(W.shape[-2] for W in Ws)

    def rhs(_t, y):
        W = ln.unflatten(ctx.asarray(y), widths)
        g = host(ln.flatten(ln.grad(loss, W)))
        return -g - weight_decay * y

    y0 = host(ln.flatten(Ws))
    sol = solve_ivp(rhs, (0.0, t_final), y0, method="DOP853", rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"DOP853 failed: {sol.message}")
    return ln.unflatten(ctx.asarray(sol.y[:, -1]), widths)


def _fro(A) -> np.ndarray:
    return np.linalg.norm(host(A), axis=(-2, -1))


def conservation_error(D0, D1) -> float:
    r""":math:`\max_j \|D_j(T) - D_j(0)\|_F / \max(1, \|D_j(0)\|_F)` (worst net, worst layer)."""
    return max(float(np.max(_fro(b - a) / np.maximum(1.0, _fro(a)))) for a, b in zip(D0, D1))


def drift_size(D0, D1) -> np.ndarray:
    r"""Per net: :math:`\max_j \|D_j(t) - D_j(0)\|_F`."""
    return np.max(np.stack([_fro(b - a) for a, b in zip(D0, D1)]), axis=0)


@register
class BalancednessCheck(Check):
    id = "s02-balancedness"
    title = "Balancedness: conserved by gradient flow, exact O(eta^2) drift under GD"
    claim = "GF conserves D_j; one GD step moves D_j by eta^2(G'G - GG'); drift(eta)/drift(eta/2) in [1.6,2.5]"
    source = "Du-Hu-Lee arXiv:1806.00900; Cohen FODL Lec. 4 Lemma 1; ACGH arXiv:1810.02281; THEOREMS.md §2"
    status = "MIXED"
    control_description = (
        "(a) the wrong orientation W_{j+1}W_{j+1}^T - W_j^T W_j along the same flow, and (b) GD with per-layer "
        "step sizes (1, 0.5, 1, ...), must both fail: (a) the conservation test, (b) the [1.6, 2.5] ratio test"
    )

    # THEOREMS §2.1: the one-step drift to 1e-12 relative to |D|max + eta^2|G|^2 + 1 (a ceiling): an exact identity,
    # held to _core.roundoff_bound of the dtype (2.2e-13 in float64, 1.2e-4 in float32)
    FLOW_TOL = 1e-8  # THEOREMS §2.2, relative to max(1, |D(0)|)
    RATIO = (1.6, 2.5)  # THEOREMS §2.3
    WRONG_MIN_CHANGE = 1e-3  # THEOREMS §2 control (a)
    T = 3.0  # flow horizon (THEOREMS: 3-10)
    T_GD, LR = 1.0, 0.02  # fixed time and the larger step of the ratio test
    WEIGHT_DECAY = 0.3

    # ---- pieces ---------------------------------------------------------------------------------------------
    def one_step_drift(self, ctx: Context) -> float:
        rng = ctx.rng("s02-one-step")
        worst = 0.0
        for _ in range(ctx.pick(10, 300)):
            _, Ws, X, Y = random_problem(rng)
            if len(Ws) < 2:
                Ws = Ws + [0.7 * rng.standard_normal((2, Ws[-1].shape[0]))]
                Y = rng.standard_normal((2, X.shape[1]))
            lr = float(10 ** rng.uniform(-3, -1))
            loss = ln.SquaredLoss.from_data(ctx.asarray(rounded(ctx, X)), ctx.asarray(rounded(ctx, Y)))
            eWs = tuple(ctx.asarray(rounded(ctx, W)) for W in Ws)
            Gs = ln.grad(loss, eWs)
            Wp = gd_run(loss, eWs, lr=lr, steps=1)
            D0, D1, pred = gaps(eWs), gaps(Wp), ln.theory.gd_drift(eWs, Gs, lr)
            g2 = sum(float(np.sum(host(G) ** 2)) for G in Gs)
            for a, b, p in zip(D0, D1, pred):
                err = np.max(np.abs(host(b) - host(a) - host(p)))
                worst = max(worst, float(err / (np.max(np.abs(host(a))) + lr**2 * g2 + 1.0)))
        return worst

    def flow_problem(self, ctx: Context, key: str, *, square: bool = False, balanced: bool = False):
        """A data problem (m = 12) and one net of widths (3, 4, 4, 3), or square (3, 3, 3, 3)."""
        rng = ctx.rng(key)
        widths = (3, 3, 3, 3) if square else (3, 4, 4, 3)
        m = 12
        X = rounded(ctx, rng.standard_normal((widths[0], m)))
        Y = rounded(ctx, rng.standard_normal((widths[-1], m)))
        loss = ln.SquaredLoss.from_data(ctx.asarray(X), ctx.asarray(Y))
        if balanced:
            A = ctx.asarray(0.3 * rng.standard_normal((widths[-1], widths[0])))
            Ws = ln.init.balanced(A, widths)
        else:
            Ws = tuple(
                ctx.asarray(0.6 * rng.standard_normal((widths[j + 1], widths[j])) / np.sqrt(widths[j]))
                for j in range(len(widths) - 1)
            )
        return loss, Ws

    def gd_ratios(self, ctx: Context, key: str, lr_per_layer=None) -> np.ndarray:
        """drift(eta) / drift(eta/2) over the fixed time ``T_GD``, for a batch of nets (one run each)."""
        rng = ctx.rng(key)
        B, widths, m = ctx.pick(8, 256), (3, 4, 4, 3), 12
        X = rounded(ctx, rng.standard_normal((widths[0], m)))
        Y = rounded(ctx, rng.standard_normal((widths[-1], m)))
        loss = ln.SquaredLoss.from_data(ctx.asarray(X), ctx.asarray(Y))
        Ws = tuple(
            ctx.asarray(0.5 * rng.standard_normal((B, widths[j + 1], widths[j])) / np.sqrt(widths[j]))
            for j in range(len(widths) - 1)
        )
        D0 = gaps(Ws)
        drifts = []
        for lr in (self.LR, self.LR / 2):
            steps = int(round(self.T_GD / lr))
            drifts.append(drift_size(D0, gaps(gd_run(loss, Ws, lr=lr, steps=steps, lr_per_layer=lr_per_layer))))
        return drifts[0] / drifts[1]

    # ---- the check --------------------------------------------------------------------------------------------
    def measure(self, ctx: Context) -> Measurement:
        one = self.one_step_drift(ctx)
        flows = {}
        for name, kw in (("balanced", dict(balanced=True)), ("unbalanced", dict())):
            loss, Ws = self.flow_problem(ctx, f"s02-flow-{name}", **kw)
            flows[name] = conservation_error(gaps(Ws), gaps(flow(ctx, loss, Ws, t_final=self.T)))
        loss, Ws = self.flow_problem(ctx, "s02-flow-wd")
        D0, D1 = gaps(Ws), gaps(flow(ctx, loss, Ws, t_final=self.T, weight_decay=self.WEIGHT_DECAY))
        decay = np.exp(-2 * self.WEIGHT_DECAY * self.T)
        wd_err = max(float(np.max(_fro(host(b) - decay * host(a)) / np.maximum(1.0, _fro(a)))) for a, b in zip(D0, D1))
        r = self.gd_ratios(ctx, "s02-ratio")
        # flow tolerances: THEOREMS' 1e-8 in float64; in float32 the integrator's floor (100 eps) and the
        # right-hand side's round-off add about 1e3 eps
        parts = {
            "one-step GD drift = eta^2(G'G - GG')": Measurement.compare(
                one, roundoff_bound(ctx.eps), note="max err / (|D|max + eta^2|G|^2 + 1), eta in [1e-3, 1e-1]"
            ),
            "GF conserves D_j (balanced init)": Measurement.compare(
                flows["balanced"], fd_tol(ctx, self.FLOW_TOL), note=f"|D(T)-D(0)|/max(1,|D(0)|), T={self.T}"
            ),
            "GF conserves D_j (unbalanced init)": Measurement.compare(
                flows["unbalanced"], fd_tol(ctx, self.FLOW_TOL), note=f"|D(T)-D(0)|/max(1,|D(0)|), T={self.T}"
            ),
            "weight decay: D(T) = exp(-2 lambda T) D(0)": Measurement.compare(
                wd_err, fd_tol(ctx, self.FLOW_TOL), note=f"lambda={self.WEIGHT_DECAY}, DOP853"
            ),
            "drift ratio eta/(eta/2), min": Measurement.compare(
                float(np.min(r)), self.RATIO[0], ">=", note=f"{r.size} nets, t={self.T_GD}, eta={self.LR}"
            ),
            "drift ratio eta/(eta/2), max": Measurement.compare(float(np.max(r)), self.RATIO[1], "<="),
        }
        return Measurement.all_of(parts)

    def control(self, ctx: Context) -> Measurement:
        loss, Ws = self.flow_problem(ctx, "s02-control-orientation", square=True)
        W1 = flow(ctx, loss, Ws, t_final=self.T)
        wrong = conservation_error(wrong_gaps(Ws), wrong_gaps(W1))
        c = (1.0, 0.5) * 2
        r = self.gd_ratios(ctx, "s02-ratio", lr_per_layer=c[:3])
        orient = Measurement.compare(
            wrong,
            fd_tol(ctx, self.FLOW_TOL),
            note=f"relative change {wrong:.3g} (THEOREMS asks >= {self.WRONG_MIN_CHANGE:g}); square (3,3,3,3)",
        )
        ratio = Measurement.compare(
            float(np.min(r)),
            self.RATIO[0],
            ">=",
            note=f"lr factors {c[:3]}; ratios in [{np.min(r):.3g}, {np.max(r):.3g}]",
        )
        parts = {
            "wrong orientation conserved by GF": orient._replace(holds=orient.holds or wrong < self.WRONG_MIN_CHANGE),
            "per-layer step sizes: drift ratio >= 1.6": ratio,
        }
        return Measurement.any_of(parts, note="each broken input must fail its test")
