r"""Weight-space symmetry of deep linear nets, its generator and the Hessian's null directions (THEOREMS.md §12).

**Statement.** For invertible :math:`G_j \in GL(d_j)` on the hidden layers,
:math:`L(\dots, G_jW_jG_{j-1}^{-1}, \dots) = L(W)` (CONFIRMED). The generator :math:`V_{\mathcal A} = M_{\mathcal A}\theta`,
:math:`\mathcal A = (A_1..A_{N-1})`, :math:`A_j\in\mathbb R^{d_j\times d_j}`, has :math:`A_jW_j - W_jA_{j-1}` in
slot :math:`j` (:math:`A_0 = A_N = 0`), and

- :math:`\langle\nabla L, V_{\mathcal A}\rangle = 0` (the conservation law of §2, CONFIRMED);
- :math:`H V_{\mathcal A} = -M_{\mathcal A}^\top\nabla L` (DERIVED+VERIFIED);
- so at a critical point :math:`HV_{\mathcal A} = 0` and :math:`\operatorname{nullity}(H) \ge
  \operatorname{rank}(\mathcal A\mapsto V_{\mathcal A})`, the rank computed numerically;
- away from critical points :math:`V_{\mathcal A}` is in general **not** a null direction.

**Check.** Random nets (singular values in [0.6, 1.4]), data and generators (depth 2–4, widths 1–5): the invariance under :math:`G = I + 0.5Z`
(condition number capped), the two identities with the engine's ``ln.grad`` / ``ln.hvp``; at interpolating global
minima, :math:`\|HV\| \le 10^{-10}\|H\|\|V\|` for every generator direction and the nullity count of
``ln.hessian``.

**Control.** At a non-critical point :math:`\|HV_{\mathcal A}\|` is not small (relative size :math:`\ge 10^{-3}`), so the
null-direction assertion fails: this catches code or a spec that "projects out symmetry directions" everywhere.

**Source.** Golikov (seed slides, scalar rescaling); Zhao et al. arXiv:2210.17216 (Fig. 1, :math:`U\to Ug^{-1}`,
:math:`V\to gV`); Kunin et al. arXiv:2012.04728 (abstract); Saxe et al. arXiv:1312.6120 (Noether). The Hessian
identity is derived for THEOREMS.md §12.

**Status.** Invariance and conservation CONFIRMED; Hessian identity DERIVED+VERIFIED: MIXED.
"""

from __future__ import annotations

import numpy as np

import linnet as ln

from .._core import Check, Context, Measurement, host, register, roundoff_bound
from .s01_calculus import rounded

__all__ = ["SymmetryCheck", "generator", "generator_adjoint", "generator_matrix"]

COND_CAP = 20.0  # THEOREMS §12: G = I + 0.5 Z "with a condition-number cap"


def generator(Ws, As) -> tuple:
    r""":math:`V_{\mathcal A}`: slot :math:`j` is :math:`A_jW_j - W_jA_{j-1}` (``As[j-1]`` acts on hidden layer ``j``)."""
    xp = ln._backend.namespace(*Ws)
    N = len(Ws)
    out = []
    for j in range(1, N + 1):  # layer j maps d_{j-1} -> d_j
        V = xp.zeros_like(Ws[j - 1])
        if j <= N - 1:
            V = V + xp.matmul(As[j - 1], Ws[j - 1])
        if j >= 2:
            V = V - xp.matmul(Ws[j - 1], As[j - 2])
        out.append(V)
    return tuple(out)


def generator_adjoint(Ws, As, Gs) -> tuple:
    r""":math:`M_{\mathcal A}^\top g`: slot :math:`j` is :math:`A_j^\top g_j - g_jA_{j-1}^\top` (so :math:`\langle M_{\mathcal A}\theta, g\rangle
    = \langle\theta, M_{\mathcal A}^\top g\rangle`)."""
    xp = ln._backend.namespace(*Gs)
    N = len(Gs)
    out = []
    for j in range(1, N + 1):
        V = xp.zeros_like(Gs[j - 1])
        if j <= N - 1:
            V = V + xp.matmul(As[j - 1].mT, Gs[j - 1])
        if j >= 2:
            V = V - xp.matmul(Gs[j - 1], As[j - 2].mT)
        out.append(V)
    return tuple(out)


def generator_matrix(Ws_host) -> np.ndarray:
    r"""Host matrix of :math:`\mathcal A \mapsto V_{\mathcal A}`: shape ``(P, sum_j d_j^2)`` over the hidden layers."""
    widths = (Ws_host[0].shape[1],) + tuple(W.shape[0] for W in Ws_host)
    cols = []
    for h in range(1, len(widths) - 1):
        d = widths[h]
        for a in range(d):
            for b in range(d):
                As = [np.zeros((widths[k], widths[k])) for k in range(1, len(widths) - 1)]
                As[h - 1][a, b] = 1.0
                cols.append(np.concatenate([np.ravel(V) for V in generator(Ws_host, As)]))
    return np.stack(cols, axis=1)


def _flat(Ws) -> np.ndarray:
    return np.concatenate([np.ravel(host(W)) for W in Ws])


def _gl(rng, d: int) -> np.ndarray:
    """``I + 0.5 Z`` with condition number at most ``COND_CAP`` (resampled until it is)."""
    while True:
        G = np.eye(d) + 0.5 * rng.standard_normal((d, d))
        if np.linalg.cond(G) <= COND_CAP:
            return G


def _layer(rng, rows: int, cols: int) -> np.ndarray:
    """A layer with singular values in [0.6, 1.4] (keeps the Hessian's nonzero spectrum away from zero)."""
    k = min(rows, cols)
    U = np.linalg.qr(rng.standard_normal((rows, rows)))[0][:, :k]
    V = np.linalg.qr(rng.standard_normal((cols, cols)))[0][:, :k]
    return (U * rng.uniform(0.6, 1.4, size=k)) @ V.T


def random_case(ctx: Context, rng, *, interpolating: bool):
    """Depth 2–4, widths 1–5, ``m = 3 d_0 + 3`` samples; interpolating: ``Y = W_{1:N}X`` (a global minimum)."""
    N = int(rng.integers(2, 5))
    widths = tuple(int(w) for w in rng.integers(1, 6, size=N + 1))
    m = 3 * widths[0] + 3
    Ws = [rounded(ctx, _layer(rng, widths[j + 1], widths[j])) for j in range(N)]
    X = rounded(ctx, rng.standard_normal((widths[0], m)))
    if interpolating:
        We = Ws[0]
        for W in Ws[1:]:
            We = W @ We
        Y = rounded(ctx, We @ X)
    else:
        Y = rounded(ctx, rng.standard_normal((widths[-1], m)))
    loss = ln.SquaredLoss.from_data(ctx.asarray(X), ctx.asarray(Y))
    return widths, Ws, loss, tuple(ctx.asarray(W) for W in Ws)


def random_generator(ctx: Context, rng, widths) -> tuple:
    return tuple(ctx.asarray(rounded(ctx, rng.standard_normal((d, d)))) for d in widths[1:-1])


def relative_hv(ctx, loss, eWs, As) -> tuple[float, float]:
    r""":math:`\|HV_{\mathcal A}\|` and :math:`\|H\|\,\|V_{\mathcal A}\|` (spectral norm of the dense Hessian)."""
    V = generator(eWs, As)
    hv = _flat(ln.hvp(loss, eWs, V))
    Hn = float(np.max(np.abs(np.linalg.eigvalsh(host(ln.hessian(loss, eWs))))))
    return float(np.linalg.norm(hv)), Hn * float(np.linalg.norm(_flat(V)))


@register
class SymmetryCheck(Check):
    id = "s12-symmetry"
    title = "GL(d_j) symmetry: generator orthogonal to the gradient, H V_A = -M_A^T grad, null at critical points"
    claim = (
        "L invariant under GL(d_j); <grad,V_A>=0; H V_A=-M_A^T grad; H V_A=0 and nullity >= rank(gen) at minima "
        "(each to {bound})"
    )
    source = "Zhao et al. arXiv:2210.17216 Fig. 1; Kunin et al. arXiv:2012.04728; THEOREMS.md §12"
    status = "MIXED"
    control_description = (
        "at a non-critical point (random data) ||H V_A|| is not small (>= 1e-3 relative), so the assertion "
        "||H V_A|| <= 1e3 eps ||H|| ||V_A|| (the round-off bound of the dtype) made at minima must fail there"
    )

    # THEOREMS §12's float64 figures (1e-12 invariance and orthogonality, 1e-8 identity, 1e-10 null) are ceilings;
    # every part is an exact identity, so each is held to _core.roundoff_bound of the dtype (2.2e-13 in float64,
    # 1.2e-4 in float32: two decades over ROUNDOFF_TERMS eps).
    CONTROL_MIN = 1e-3  # the control's ||H V_A|| must be at least this (relative)

    def null_threshold(self, ctx: Context) -> float:
        """Eigenvalues below this times ``lambda_max`` count as zero: 1e-9 in float64, ``1e3 eps`` above that."""
        return max(1e-9, 1e3 * ctx.eps)

    def measure(self, ctx: Context) -> Measurement:
        rng = ctx.rng("s12-measure")
        worst = {"inv": 0.0, "ortho": 0.0, "ident": 0.0}
        for _ in range(ctx.pick(30, 1000)):
            widths, Ws, loss, eWs = random_case(ctx, rng, interpolating=False)
            # invariance under W_j -> G_j W_j G_{j-1}^{-1} on every hidden layer
            Gs = [np.eye(widths[0])] + [_gl(rng, d) for d in widths[1:-1]] + [np.eye(widths[-1])]
            Wt = [Gs[j + 1] @ Ws[j] @ np.linalg.inv(Gs[j]) for j in range(len(Ws))]
            L0 = float(host(ln.loss(loss, eWs)))
            L1 = float(host(ln.loss(loss, tuple(ctx.asarray(W) for W in Wt))))
            worst["inv"] = max(worst["inv"], abs(L1 - L0) / abs(L0))
            # the generator against the gradient and the Hessian
            As = random_generator(ctx, rng, widths)
            V = generator(eWs, As)
            g = ln.grad(loss, eWs)
            gf, vf = _flat(g), _flat(V)
            worst["ortho"] = max(worst["ortho"], abs(gf @ vf) / (np.linalg.norm(gf) * np.linalg.norm(vf)))
            hv = _flat(ln.hvp(loss, eWs, V))
            mg = _flat(generator_adjoint(eWs, As, g))
            # round-off scale ||H|| ||V||: the Gauss-Newton part J^T Lxx J V is zero only up to round-off (J V = 0
            # by cancellation), which is large against M^T g near a critical point
            Hn = float(np.max(np.abs(np.linalg.eigvalsh(host(ln.hessian(loss, eWs))))))
            scale = Hn * np.linalg.norm(vf) + np.linalg.norm(mg)
            worst["ident"] = max(worst["ident"], np.linalg.norm(hv + mg) / scale)
        # global minima: every generator direction is null; nullity >= numerical rank of the generator
        null_rel, slack, gap = 0.0, np.inf, np.inf
        tau = self.null_threshold(ctx)
        for _ in range(ctx.pick(15, 300)):
            widths, Ws, loss, eWs = random_case(ctx, rng, interpolating=True)
            H = host(ln.hessian(loss, eWs))
            ev = np.linalg.eigvalsh(H)
            Hn = float(np.max(np.abs(ev)))
            Gm = generator_matrix(Ws)
            null_rel = max(null_rel, float(np.linalg.norm(H @ Gm, 2) / (Hn * np.linalg.norm(Gm, 2))))
            sv = np.linalg.svd(Gm, compute_uv=False)
            rank = int(np.sum(sv > tau * sv[0])) if sv.size else 0
            nullity = int(np.sum(np.abs(ev) <= tau * Hn))
            slack = min(slack, nullity - rank)
            nonzero = np.abs(ev)[np.abs(ev) > tau * Hn]
            if nonzero.size:
                gap = min(gap, float(np.min(nonzero) / Hn))
        parts = {
            "<grad, V_A> = 0": Measurement.compare(
                worst["ortho"], roundoff_bound(ctx.eps), note="|<g,V>|/(|g||V|), random points"
            ),
            "invariance under GL(d_j)": Measurement.compare(
                worst["inv"],
                roundoff_bound(ctx.eps),
                note=f"|dL|/|L|, G = I + 0.5Z, cond <= {COND_CAP:g}",
            ),
            "H V_A = -M_A^T grad": Measurement.compare(
                worst["ident"],
                roundoff_bound(ctx.eps),
                note="|HV + M^T g|/(|H||V| + |M^T g|), random points",
            ),
            "H V = 0 on the generator's range at global minima": Measurement.compare(
                null_rel, roundoff_bound(ctx.eps), note="||H Gen||_2/(||H|| ||Gen||_2), interpolating minima"
            ),
            "nullity(H) - rank(generator) at global minima": Measurement.compare(
                slack,
                0,
                ">=",
                note=f"eigenvalues below {tau:.0e} lambda_max counted null; next eigenvalue >= {gap:.2g} lambda_max",
            ),
        }
        return Measurement.all_of(parts)

    def control(self, ctx: Context) -> Measurement:
        rng = ctx.rng("s12-control")
        smallest = np.inf
        for _ in range(ctx.pick(10, 300)):
            widths, Ws, loss, eWs = random_case(ctx, rng, interpolating=False)
            hv, scale = relative_hv(ctx, loss, eWs, random_generator(ctx, rng, widths))
            smallest = min(smallest, hv / scale)
        m = Measurement.compare(
            smallest,
            roundoff_bound(ctx.eps),
            note=f"non-critical points; smallest ||HV||/(||H|| ||V||) (THEOREMS asks >= {self.CONTROL_MIN:g})",
        )
        # a control that fails only narrowly (below 1e-3 relative) counts as holding: it does not discriminate
        return m._replace(holds=m.holds or smallest < self.CONTROL_MIN)
