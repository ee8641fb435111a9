r"""Laurent & von Brecht 2018: with a convex differentiable loss and no bottleneck, local minima are global (THEOREMS.md §7).

**Hypotheses.** :math:`\ell: \mathbb R^{d_N\times d_0} \to \mathbb R` convex and differentiable;
:math:`L(W_1, \dots, W_N) = \ell(W_N\cdots W_1)`; every hidden width at least :math:`\min(d_0, d_N)`
(FODL form of the width condition).

**Conclusion.** Every local minimum of :math:`L` is a global minimum.

**Measured.** Four convex differentiable losses: :class:`linnet.LpLoss` (:math:`p = 4`), :class:`linnet.HuberLoss`,
a quadratic with a non-identity metric (:meth:`linnet.SquaredLoss.population` with a random SPD
:math:`\Sigma_{xx}`), and a multi-output logistic loss
:math:`\ell(W) = \frac1m\sum_{ik}\log(1 + e^{-y_{ik}(WX)_{ik}})` on non-separable labels (defined here as a
:class:`linnet.CallableLoss`; its minimum is attained). For each, a batch of random inits trained by
:func:`linnet.train.gd`; at every end point that is second-order stationary (gradient norm :math:`\le 10^{-8}`,
dense-Hessian :math:`\lambda_{\min} \ge -10^{-8}\|H\|`) the check asserts
:math:`\ell(W_{1:N}) - \min\ell \le 10^{-6}|\min\ell|`. The right side is the convex problem on the end-to-end
matrix solved directly on the host (SciPy trust-region Newton with the loss's gradient and Hessian, best of
several starts).

**Control.** The non-convex entrywise double well :math:`\ell(W) = \sum_{ab}(W_{ab}^2 - 1)^2 + 0.3W_{ab}` (§5):
GD ends at second-order stationary points that are not global, so the same assertion fails. (A
non-differentiable convex loss, the theorem's sharpness example, is UNCONFIRMED in THEOREMS.md and omitted.)

**Source.** Laurent & von Brecht, `Deep linear networks with arbitrary loss: all local minima are global
<https://arxiv.org/abs/1712.01473>`_, ICML 2018 (abstract); width condition and proof idea in N. Cohen,
*Foundations of Deep Learning*, Lecture 3, Thm 3.

**Status.** CONFIRMED.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.optimize

import linnet as ln
from linnet.backend import namespace, to_numpy

from .._core import Check, Context, Measurement, register
from .._engine import gd_replay
from .s05_no_bad_minima import double_well_loss, floored, hessian_extremes, random_inits

GAP_RTOL_F64 = 1e-6  # THEOREMS.md §7: l(W_e) - min l <= 1e-6 relative
GTOL_F64 = 1e-8  # THEOREMS.md §7: "converged" means gradient norm <= 1e-8
# GD itself runs to a 1000x smaller gradient: a residual gradient g bends the Hessian by about -|g|, which at
# |g| = 1e-8 would sit right at the -1e-8 ||H|| second-order threshold and flag global minima as saddles
TRAIN_GTOL_F64 = 1e-11
HESS_RTOL_F64 = 1e-8  # THEOREMS.md §7: lambda_min(H) >= -1e-8 ||H||


def logistic_loss(X, Y) -> ln.CallableLoss:
    r"""Multi-output logistic loss :math:`\ell(W) = \frac1m\sum_{ik}\log(1 + \exp(-Y_{ik}(WX)_{ik}))`, labels :math:`\pm1`.

    Convex and :math:`C^\infty`: :math:`\nabla\ell = -\frac1m(Y\odot\sigma(-Y\odot WX))X^\top` and
    :math:`\nabla^2\ell[D] = \frac1m(\sigma(Z)\sigma(-Z)\odot DX)X^\top` with :math:`Z = WX`, computed through
    ``logaddexp`` so nothing overflows. ``X``, ``Y`` live in the namespace and dtype the loss is used with.
    """
    m = X.shape[-1]

    def _softplus(Z):
        xp = namespace(Z)
        return xp.logaddexp(xp.zeros_like(Z), Z)

    def value(W):
        xp = namespace(W)
        return xp.sum(_softplus(-Y * xp.matmul(W, X)), axis=(-2, -1)) / m

    def grad(W):
        xp = namespace(W)
        Z = Y * xp.matmul(W, X)
        return -xp.matmul(Y * xp.exp(-_softplus(Z)), X.mT) / m

    def hvp(W, D):
        xp = namespace(W)
        Z = xp.matmul(W, X)
        w = xp.exp(-_softplus(Z) - _softplus(-Z))
        return xp.matmul(w * xp.matmul(D, X), X.mT) / m

    return ln.CallableLoss(value, grad, hvp, shape=(Y.shape[-2], X.shape[-2]), convex=True)


def problems(rng: np.random.Generator, d0: int, dN: int, m: int) -> dict:
    """Host data of the four convex losses: ``name -> (constructor(as_array), host float64 loss)``."""
    X = rng.standard_normal((d0, m))
    Phi = rng.standard_normal((dN, d0)) / math.sqrt(d0)
    Y = Phi @ X + 0.5 * rng.standard_normal((dN, m))
    S = rng.standard_normal((d0, d0))
    Sxx = S @ S.T / d0 + 0.5 * np.eye(d0)  # a non-identity metric
    Syy = Phi @ Sxx @ Phi.T + np.eye(dN)
    sgn = np.sign(Phi @ X)
    labels = np.where(rng.random((dN, m)) < 0.8, sgn, -sgn)  # 20% flipped: not separable, minimum attained
    makers = {
        "l4": lambda a: ln.LpLoss(a(X), a(Y), p=4),
        "Huber": lambda a: ln.HuberLoss(a(X), a(Y), delta=0.5),
        "quadratic (metric Sxx)": lambda a: ln.SquaredLoss.population(a(Sxx), a(Phi @ Sxx), a(Syy)),
        "logistic": lambda a: logistic_loss(a(X), a(labels)),
    }
    return {k: (f, f(lambda z: np.asarray(z, dtype=np.float64))) for k, f in makers.items()}


def convex_min(loss, rng: np.random.Generator, n_starts: int = 3):
    """``(min value, minimiser)`` of an end-to-end loss on the host: SciPy ``trust-exact`` with the loss's own
    gradient and the dense Hessian assembled from its ``hvp``, best of the zero start and ``n_starts`` random ones."""
    shp = loss.shape
    n = shp[0] * shp[1]
    basis = np.eye(n).reshape(n, *shp)

    def f(w):
        return float(loss.value(w.reshape(shp)))

    def g(w):
        return np.asarray(loss.grad(w.reshape(shp)), dtype=np.float64).ravel()

    def h(w):
        H = np.asarray(loss.hvp(w.reshape(shp)[None], basis), dtype=np.float64).reshape(n, n)
        return 0.5 * (H + H.T)

    best = None
    for w0 in [np.zeros(n)] + [rng.standard_normal(n) for _ in range(n_starts)]:
        with np.errstate(all="ignore"):
            r = scipy.optimize.minimize(
                f, w0, jac=g, hess=h, method="trust-exact", options={"gtol": 1e-13, "maxiter": 500}
            )
        if best is None or r.fun < best.fun:
            best = r
    return float(best.fun), best.x.reshape(shp)


def sharpness_lr(loss, We: np.ndarray, depth: int) -> float:
    r"""GD step: :math:`0.5 / (N\beta\max(\|W^\star\|_2, 1)^{2-2/N})`, :math:`\beta = \lambda_{\max}\nabla^2\ell(W^\star)`
    (the scale of the sharpness of a balanced minimum, THEOREMS.md §13)."""
    n = We.size
    basis = np.eye(n).reshape(n, *We.shape)
    H = np.asarray(loss.hvp(We[None], basis), dtype=np.float64).reshape(n, n)
    beta = float(np.linalg.eigvalsh(0.5 * (H + H.T))[-1])
    return 0.5 / (depth * beta * max(float(np.linalg.norm(We, 2)), 1.0) ** (2 - 2 / depth))


def second_order_gaps(ctx: Context, loss, Ws, min_value: float, *, lr: float, steps: int) -> dict:
    """Train with :func:`linnet.train.gd`; relative gaps ``(l - min l)/|min l|`` at the second-order stationary end
    points, and counts."""
    eps = ctx.eps
    gtol = floored(GTOL_F64, 1e3, eps)
    run = ln.train.gd(loss, Ws, lr=lr, steps=steps, gtol=floored(TRAIN_GTOL_F64, 100, eps))
    L, G = ln.value_and_grad(loss, run.weights)
    L = np.asarray(to_numpy(L), dtype=np.float64)
    gn = np.sqrt(sum(np.sum(np.asarray(to_numpy(g), dtype=np.float64) ** 2, axis=(-2, -1)) for g in G))
    idx = np.flatnonzero(gn <= gtol)
    lmin, hnorm = hessian_extremes(loss, run.weights, idx, ctx.xp)
    sosp = idx[lmin >= -floored(HESS_RTOL_F64, 1e3, eps) * hnorm]
    gaps = (L[sosp] - min_value) / abs(min_value)
    return {
        "n": int(L.size),
        "second_order": int(sosp.size),
        "strict_saddle": int(idx.size - sosp.size),
        "unconverged": int(L.size - idx.size),
        "max_gap": float(np.max(gaps)) if gaps.size else float("nan"),
    }


# depths 2 and 3; every hidden width >= min(d_0, d_N) = 3 (no bottleneck)
CONFIGS = {"l4": (4, 5, 4, 3), "Huber": (4, 4, 3), "quadratic (metric Sxx)": (4, 3, 5, 3), "logistic": (4, 5, 4, 3)}


@register
class LaurentVonBrecht(Check):
    id = "s07-laurent-von-brecht"
    title = "Laurent-von Brecht: convex differentiable loss, no bottleneck => local minima are global"
    claim = "convex loss, no bottleneck: SOSP => global"
    source = "Laurent & von Brecht arXiv:1712.01473 (ICML 2018, abstract); FODL Lecture 3 Thm 3; THEOREMS.md §7"
    status = "CONFIRMED"
    control_description = (
        "non-convex entrywise double well (z^2-1)^2 + 0.3 z: second-order stationary non-global points"
    )

    def _assert(self, ctx: Context, runs: dict, extra: dict | None = None) -> Measurement:
        """The assertion: each run has second-order stationary end points, and all are within the gap tolerance."""
        tol = floored(GAP_RTOL_F64, 1e3, ctx.eps)
        parts = {}
        for name, r in runs.items():
            parts[name] = Measurement.compare(
                r["max_gap"] if r["second_order"] else float("nan"),
                tol,
                "<=",
                f"max relative gap over {r['second_order']}/{r['n']} second-order stationary end points "
                f"({r['strict_saddle']} strict saddles, {r['unconverged']} unconverged)",
            )
        parts.update(extra or {})
        return Measurement.all_of(parts)

    def measure(self, ctx: Context) -> Measurement:
        B = ctx.pick(24, 4096)
        runs, replays = {}, {}
        for c, (name, (make, host)) in enumerate(problems(ctx.rng("s07-data"), 4, 3, 40).items()):
            widths = CONFIGS[name]
            assert min(widths[1:-1]) >= min(widths[0], widths[-1])  # no bottleneck: the theorem's hypothesis
            mv, We = convex_min(host, ctx.rng(f"s07-ref-{c}"))
            loss = make(ctx.asarray)
            Ws = random_inits(ctx, widths, B, f"s07-init-{c}", 0.3, 1.0)
            lr = sharpness_lr(host, We, len(widths) - 1)
            runs[name] = second_order_gaps(ctx, loss, Ws, mv, lr=lr, steps=ctx.pick(20_000, 60_000))
            replays[name] = gd_replay(ctx, loss, Ws, lr)
        worst = max(replays.values(), key=lambda r: r.figure / r.bound)
        return self._assert(ctx, runs, extra={"trainer_replay (worst problem)": worst})

    def control(self, ctx: Context) -> Measurement:
        widths = (2, 3, 2)
        loss = double_well_loss((2, 2))
        mv, _ = convex_min(loss, ctx.rng("s07-control-ref"))
        Ws = random_inits(ctx, widths, ctx.pick(24, 4096), "s07-control", 0.3, 0.8)
        return self._assert(
            ctx, {"double well": second_order_gaps(ctx, loss, Ws, mv, lr=0.01, steps=ctx.pick(5_000, 20_000))}
        )
