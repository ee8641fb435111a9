r"""No bad local minima for deep linear networks (THEOREMS.md §5).

**Hypotheses.** Squared loss :math:`\ell(W) = \|WX - Y\|_F^2/(2m)` with :math:`X` of full row rank; any depth
:math:`N \ge 2` and any widths, a bottleneck :math:`r = \min_j d_j < \min(d_0, d_N)` allowed.

**Conclusion.** Every local minimum of :math:`L(W_1, \dots, W_N) = \ell(W_N \cdots W_1)` is global, and the
global value is that of reduced-rank regression,

.. math::

    L^\star = \tfrac12\Big(\operatorname{tr}\Lambda_{yy} - \sum_{i \le r}\lambda_i\big(\Lambda_{yx}\Lambda_{xx}^{-1}\Lambda_{xy}\big)\Big).

**Measured.** Many random inits per depth/width configuration, trained as *one* batched run of
:func:`linnet.train.gd`. Each run ends in one of: the global value (:math:`|L - L^\star| \le 10^{-8} L^\star`),
a non-global point still moving (gradient norm :math:`\ge 10^{-6}`), a non-global strict saddle (dense Hessian
with :math:`\lambda_{\min} < -10^{-8}\|H\|`), or a *violation*: a non-global second-order stationary point. The
check asserts zero violations, that :func:`linnet.theory.global_min` agrees with an independent host evaluation
of the reduced-rank formula, and that no rank-:math:`r` competitor (random, or locally optimised by SciPy over a
factorisation :math:`R = AB`) beats :math:`L^\star`.

The saddle branch is exercised: two nets per configuration start exactly at strict saddles (Baldi–Hornik points
lifted to the configuration's depth, with a swap, ``planted_saddles``) and every one must end classified as a
non-global strict saddle (a Hessian or classification fault turns them into violations).

**Control.** The non-convex end-to-end loss :math:`\ell(z) = (z^2-1)^2 + 0.3z` lifted to :math:`\ell(w_2w_1)`
has a non-global local minimum near :math:`z \approx 0.96`; the same assertion must find violations there.

**Source.** Kawaguchi, `Deep learning without poor local minima <https://arxiv.org/abs/1605.07110>`_, NeurIPS
2016 (abstract: every local minimum is global); Lu & Kawaguchi, `Depth creates no bad local minima
<https://arxiv.org/abs/1702.08580>`_, 2017, Theorems 1-2 (via Golikov's slides). Reduced-rank closed form:
THEOREMS.md §5, derived and verified there.

**Status.** Main statements CONFIRMED; Kawaguchi's theorem numbers and exact assumptions UNCONFIRMED (not used
here); the reduced-rank formula DERIVED+VERIFIED. Reported as MIXED.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import scipy.optimize

import linnet as ln
from linnet.backend import namespace, to_numpy

from .._core import Check, Context, Measurement, register
from .._engine import gd_replay

# THEOREMS.md §5 (a), float64 figures. Each is floored at k * eps so that a float32 run asks only for what its
# round-off allows (k chosen so the floor never binds in float64).
VALUE_RTOL_F64 = 1e-8  # |L - L*| / L* for "reached the global minimum"
MOVING_GTOL_F64 = 1e-6  # a gradient norm at least this large means "not at a critical point"
HESS_RTOL_F64 = 1e-8  # lambda_min(H) >= -HESS_RTOL ||H|| means "second-order stationary"
GD_GTOL_F64 = 1e-11  # training stops a net once its gradient norm is this small


def floored(value_f64: float, k: float, eps: float) -> float:
    """``max(value_f64, k * eps)``: THEOREMS.md's float64 tolerance, floored at ``k`` round-off units."""
    return max(value_f64, k * eps)


# ---- data --------------------------------------------------------------------------------------------------
def regression_data(rng: np.random.Generator, d0: int, dN: int, m: int, *, noise: float = 0.3):
    r"""Host data :math:`X` (``d0 x m``, full row rank) and :math:`Y = \Phi X + E` with a controlled spectrum.

    :math:`\Lambda_{xx}` has eigenvalues geometrically spaced in :math:`[0.5, 2]`, :math:`\Phi` singular values
    evenly spaced in :math:`[0.8, 2]`, and the noise :math:`E` is orthogonal to the rows of :math:`X`, so
    :math:`\Lambda_{yx}\Lambda_{xx}^{-1} = \Phi` exactly and the reduced-rank eigenvalues are well separated.
    """
    Z = rng.standard_normal((d0, m))
    w, V = np.linalg.eigh(Z @ Z.T / m)
    Z = (V / np.sqrt(w)) @ V.T @ Z  # exactly whitened rows
    Q = np.linalg.qr(rng.standard_normal((d0, d0)))[0]
    X = (Q * np.sqrt(np.geomspace(2.0, 0.5, d0))) @ Q.T @ Z
    k = min(d0, dN)
    U = np.linalg.qr(rng.standard_normal((dN, k)))[0]
    Vk = np.linalg.qr(rng.standard_normal((d0, k)))[0]
    Phi = (U * np.linspace(2.0, 0.8, k)) @ Vk.T
    E = rng.standard_normal((dN, m))
    E = E - (E @ np.linalg.pinv(X)) @ X
    return X, Phi @ X + noise * E


def rrr_value(X: np.ndarray, Y: np.ndarray, r: int) -> float:
    """Reduced-rank regression minimum (host float64, written independently of linnet)."""
    m = X.shape[1]
    Sxx, Syx = X @ X.T / m, Y @ X.T / m
    lam = np.sort(np.linalg.eigvalsh(Syx @ np.linalg.solve(Sxx, Syx.T)))[::-1]
    return 0.5 * (float(np.sum(Y * Y)) / m - float(np.sum(lam[:r])))


def brute_force_rank_r(X: np.ndarray, Y: np.ndarray, r: int, rng: np.random.Generator, *, n_random: int, n_local: int):
    """Smallest loss over rank-``r`` competitors: random ``A B`` products and SciPy BFGS over ``(A, B)``."""
    m = X.shape[1]
    dN, d0 = Y.shape[0], X.shape[0]
    scale = np.linalg.norm(Y) / max(np.linalg.norm(X), 1e-300)

    R = rng.standard_normal((n_random, dN, r)) @ rng.standard_normal((n_random, r, d0)) * (scale / math.sqrt(r))
    D = R @ X - Y
    best_random = float(np.min(np.sum(D * D, axis=(-2, -1)))) / (2 * m)

    def fg(theta):
        A, B = theta[: dN * r].reshape(dN, r), theta[dN * r :].reshape(r, d0)
        D = A @ B @ X - Y
        G = D @ X.T / m
        return float(np.sum(D * D)) / (2 * m), np.concatenate([(G @ B.T).ravel(), (A.T @ G).ravel()])

    best_local = np.inf
    for _ in range(n_local):
        th0 = rng.standard_normal(r * (dN + d0))
        res = scipy.optimize.minimize(fg, th0, jac=True, method="BFGS", options={"gtol": 1e-10, "maxiter": 3000})
        best_local = min(best_local, float(res.fun))
    return best_random, best_local


# ---- the double well (non-convex control, also used by §7) -------------------------------------------------
DOUBLE_WELL_TILT = 0.3


def double_well_loss(shape=(1, 1)) -> ln.CallableLoss:
    r"""Entrywise :math:`\ell(W) = \sum_{ab} (W_{ab}^2 - 1)^2 + 0.3\,W_{ab}` (non-convex; THEOREMS.md §5 control (ii))."""
    c = DOUBLE_WELL_TILT

    def value(W):
        xp = namespace(W)
        return xp.sum((W * W - 1) ** 2 + c * W, axis=(-2, -1))

    def grad(W):
        return 4 * W * (W * W - 1) + c

    def hvp(W, D):
        return (12 * W * W - 4) * D

    return ln.CallableLoss(value, grad, hvp, shape=shape, convex=False)


def double_well_min(n_entries: int) -> float:
    """Global minimum of the entrywise double well, from the real roots of :math:`4z^3 - 4z + 0.3` (brute force)."""
    roots = np.roots([4.0, 0.0, -4.0, DOUBLE_WELL_TILT])
    z = roots[np.abs(roots.imag) < 1e-12].real
    return n_entries * float(np.min((z * z - 1) ** 2 + DOUBLE_WELL_TILT * z))


# ---- one batched ensemble, classified ----------------------------------------------------------------------
class Ensemble(NamedTuple):
    """Outcome counts of one batched GD run (one depth/width configuration)."""

    widths: tuple
    n: int
    converged: int  # stopped by the gradient tolerance
    global_: int  # |L - L*| <= rtol |L*|
    strict_saddle: int  # non-global, small gradient, lambda_min < -htol ||H||
    violations: int  # non-global, small gradient, second-order stationary
    moving: int  # non-global, gradient >= the "moving" threshold (unconverged)
    diverged: int
    max_global_gap: float  # largest |L - L*| / |L*| among global runs
    min_violation_gap: float  # smallest relative gap among violations (nan if none)
    replay: tuple = (0.0, 0.1)  # (figure, bound) of the trainer's first steps against W - lr grad L
    label_mismatch: int = 0  # end points where landscape.classify disagrees with the check's own classification
    planted: int = 0  # nets started exactly at a known strict saddle (the last ones of the batch)
    planted_strict: int = 0  # of those, end points the check classified as non-global strict saddles


def random_inits(ctx: Context, widths, B: int, key: str, lo: float, hi: float):
    """Gaussian layers with per-net scale ``s / sqrt(d_{j-1})``, ``s`` log-uniform in ``[lo, hi]``."""
    rng = ctx.rng(key)
    Ws = ln.init.gaussian(widths, scale=1.0, batch=(B,), seed=rng, xp=ctx.xp, dtype=ctx.dtype)
    s = np.exp(rng.uniform(math.log(lo), math.log(hi), B))
    xp = ctx.xp
    return tuple(W * xp.reshape(ctx.asarray(s / math.sqrt(W.shape[-1])), (B, 1, 1)) for W in Ws)


def _take(Ws, idx, xp):
    ix = xp.asarray(np.asarray(idx, dtype=np.int64))
    return tuple(xp.take(W, ix, axis=0) for W in Ws)


def hessian_extremes(loss, Ws, idx, xp, chunk: int = 256):
    """``(lambda_min, ||H||_2)`` of the dense Hessian (:func:`linnet.hessian`) for the nets ``idx``, on the host."""
    lmin, hnorm = [], []
    for k in range(0, len(idx), chunk):
        H = to_numpy(ln.hessian(loss, _take(Ws, idx[k : k + chunk], xp))).astype(np.float64)
        e = np.linalg.eigvalsh(H)
        lmin.append(e[:, 0])
        hnorm.append(np.max(np.abs(e), axis=-1))
    if not lmin:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(lmin), np.concatenate(hnorm)


def run_ensemble(ctx: Context, loss, Ws, L_star: float, *, lr: float, steps: int, planted: int = 0) -> Ensemble:
    """Train the batch with :func:`linnet.train.gd` and classify every run against the global value ``L_star``;
    the last ``planted`` nets start at known strict saddles (they exercise the saddle branch of the classification)."""
    xp, eps = ctx.xp, ctx.eps
    widths = (Ws[0].shape[-1],) + tuple(W.shape[-2] for W in Ws)
    gtol = floored(GD_GTOL_F64, 100, eps)
    run = ln.train.gd(loss, Ws, lr=lr, steps=steps, gtol=gtol)
    Wf = run.weights
    L, G = ln.value_and_grad(loss, Wf)
    L = to_numpy(L).astype(np.float64)
    gn = np.sqrt(sum(np.sum(to_numpy(g).astype(np.float64) ** 2, axis=(-2, -1)) for g in G))
    status = to_numpy(run.status)
    gap = (L - L_star) / abs(L_star)
    is_global = np.abs(gap) <= floored(VALUE_RTOL_F64, 100, eps)
    small = (~is_global) & (gn < floored(MOVING_GTOL_F64, 1e3, eps))
    idx = np.flatnonzero(small)
    lmin, hnorm = hessian_extremes(loss, Wf, idx, xp)
    strict = lmin < -floored(HESS_RTOL_F64, 1e3, eps) * hnorm
    viol = idx[~strict]
    # landscape.classify on a few end points against this classification (global / strict saddle / other)
    label_mismatch = 0
    pick = np.concatenate([np.flatnonzero(is_global)[:4], idx[strict][:4], viol[:2]]).astype(np.int64)
    if pick.size and isinstance(loss, ln.SquaredLoss):
        cls = ln.landscape.classify(
            loss,
            _take(Wf, pick, xp),
            gtol=floored(MOVING_GTOL_F64, 1e3, eps),
            htol=floored(HESS_RTOL_F64, 1e3, eps),
            vtol=floored(VALUE_RTOL_F64, 100, eps),
        )
        labels = np.asarray(cls.label).reshape(-1)
        want = np.where(is_global[pick], "global minimum", np.where(np.isin(pick, idx[strict]), "strict saddle", ""))
        label_mismatch = int(np.sum((want != "") & (labels != want)))
    return Ensemble(
        widths=widths,
        n=int(L.size),
        converged=int(np.sum(status == ln.train.CONVERGED)),
        global_=int(np.sum(is_global)),
        strict_saddle=int(np.sum(strict)),
        violations=int(viol.size),
        moving=int(np.sum((~is_global) & ~small)),
        diverged=int(np.sum(status == ln.train.DIVERGED)),
        max_global_gap=float(np.max(np.abs(gap[is_global]), initial=0.0)),
        min_violation_gap=float(np.min(gap[viol])) if viol.size else float("nan"),
        replay=tuple(gd_replay(ctx, loss, _take(Ws, [0], xp), lr)[:2]),
        label_mismatch=label_mismatch,
        planted=planted,
        planted_strict=int(np.sum(np.isin(np.arange(L.size - planted, L.size), idx[strict]))),
    )


def _summary(ens: list[Ensemble]) -> dict:
    keys = (
        "n",
        "converged",
        "global_",
        "strict_saddle",
        "violations",
        "moving",
        "diverged",
        "planted",
        "planted_strict",
    )
    out = {k.rstrip("_"): int(sum(getattr(e, k) for e in ens)) for k in keys}
    out["per_config"] = [e._asdict() for e in ens]
    return out


def planted_saddles(ctx: Context, loss, widths, key: str):
    r"""Strict saddles to plant in an ensemble: Baldi–Hornik points lifted to the depth of ``widths``
    (:func:`.s05b_saddles.lifted_point`) for :math:`I = \{2\}` and, where two modes fit, :math:`I = \{1, 3\}`. Each
    has a swap (:math:`\lambda_1 > \lambda_2`, resp. :math:`\lambda_2 > \lambda_3`), hence negative curvature at every
    depth (s05b asserts the rule); GD started there stops at once (gradient at round-off), so the check's saddle
    branch must label them strict saddles. Batched layers ``(P, d_j, d_{j-1})``."""
    from .s05b_saddles import lifted_point  # s05b imports this module

    r = min(widths[1:-1] + (widths[-1],))
    sets = [(1,)] + ([(0, 2)] if r >= 2 and widths[-1] >= 3 else [])
    rng = ctx.rng(key)
    pts = [lifted_point(ctx, loss, I, widths, rng) for I in sets]
    return tuple(ctx.xp.stack([p[j] for p in pts], axis=0) for j in range(len(widths) - 1))


# quick: a few hundred nets over five configurations (two with a bottleneck); full: >= 1e5 inits on a GPU
QUICK_CONFIGS = ((4, 3, 3), (5, 2, 4), (4, 4, 4, 3), (5, 6, 2, 6, 4), (3, 4, 4, 4, 3))
FULL_CONFIGS = QUICK_CONFIGS + ((6, 8, 5), (8, 3, 6), (6, 2, 5, 4), (6, 8, 3, 8, 8, 5), (4, 5, 5, 5, 5, 5, 3))


@register
class NoBadMinima(Check):
    id = "s05-no-bad-minima"
    title = "Kawaguchi; Lu-Kawaguchi: every local minimum is global"
    claim = "2nd-order stationary GD end points are global (RRR)"
    source = "Kawaguchi arXiv:1605.07110 (abstract); Lu & Kawaguchi arXiv:1702.08580 Thm 1-2; THEOREMS.md §5"
    status = "MIXED"
    control_description = "non-convex end-to-end loss (z^2-1)^2 + 0.3 z lifted to l(w2 w1): a non-global local minimum"

    def ensembles(self, ctx: Context, configs=None, per_config=None) -> list[Ensemble]:
        configs = configs or ctx.pick(QUICK_CONFIGS, FULL_CONFIGS)
        B = per_config or ctx.pick(100, 12288)
        out = []
        for c, widths in enumerate(configs):
            N = len(widths) - 1
            X, Y = regression_data(ctx.rng(f"s05-data-{c}"), widths[0], widths[-1], 8 * widths[0])
            loss = ln.SquaredLoss.from_data(ctx.asarray(X), ctx.asarray(Y))
            L_star = float(to_numpy(ln.theory.global_min(loss, widths).value))
            # GD step: half of 1 / (N lambda_max(Sxx) max(sigma_1(Phi), 1)^(2 - 2/N)), the balanced sharpness scale
            lam_x = float(np.linalg.eigvalsh(X @ X.T / X.shape[1])[-1])
            s1 = float(np.linalg.svd(Y @ np.linalg.pinv(X), compute_uv=False)[0])
            lr = 0.5 / (N * lam_x * max(s1, 1.0) ** (2 - 2 / N))
            lo = 0.2 if N <= 4 else 0.5  # deeper nets escape the origin slowly from tiny inits
            Ws = random_inits(ctx, widths, B, f"s05-init-{c}", lo, 1.0)
            saddles = planted_saddles(ctx, loss, widths, f"s05-planted-{c}")
            Ws = tuple(ctx.xp.concat([W, P], axis=0) for W, P in zip(Ws, saddles))
            n_pl = int(saddles[0].shape[0])
            out.append(run_ensemble(ctx, loss, Ws, L_star, lr=lr, steps=ctx.pick(20_000, 60_000), planted=n_pl))
        return out

    def closed_form(self, ctx: Context) -> tuple[Measurement, Measurement]:
        """``global_min`` against the host formula, and brute-force rank-``r`` competitors."""
        errs, margins = [], []
        for c, widths in enumerate(((5, 2, 4), (6, 8, 3, 8, 5), (4, 1, 3))):
            X, Y = regression_data(ctx.rng(f"s05-rrr-{c}"), widths[0], widths[-1], 8 * widths[0])
            r = min(widths)
            loss = ln.SquaredLoss.from_data(ctx.asarray(X), ctx.asarray(Y))
            gm = ln.theory.global_min(loss, widths)
            ref = rrr_value(X, Y, r)
            We = to_numpy(gm.We).astype(np.float64)
            D = We @ X - Y
            direct = float(np.sum(D * D)) / (2 * X.shape[1])  # the returned We attains the returned value
            sv = np.linalg.svd(We, compute_uv=False)
            rank_excess = float(np.sum(sv[r:])) / float(sv[0])
            errs.append(max(abs(float(to_numpy(gm.value)) - ref) / ref, abs(direct - ref) / ref, rank_excess))
            b_rand, b_loc = brute_force_rank_r(
                X, Y, r, ctx.rng(f"s05-bf-{c}"), n_random=ctx.pick(2000, 20000), n_local=ctx.pick(10, 50)
            )
            margins.append(min(b_rand, b_loc) / ref - 1.0)
        # the formula is evaluated to round-off: 1e3 eps relative (1e3 covers eigensolver and sums over d <= 8)
        closed = Measurement.compare(max(errs), 1e3 * ctx.eps, "<=", "global_min vs host RRR formula (rel)")
        # local optimisation reaches L* to ~1e-12; a competitor below L*(1 - 1e-10) would refute the closed form
        brute = Measurement.compare(min(margins), -1e-10, ">=", "best rank-r competitor / L* - 1")
        return closed, brute

    def measure(self, ctx: Context) -> Measurement:
        ens = self.ensembles(ctx)
        s = _summary(ens)
        closed, brute = self.closed_form(ctx)
        parts = {
            "violations": Measurement.compare(
                s["violations"],
                0,
                "<=",
                f"{s['n']} runs: {s['global']} global, {s['strict_saddle']} strict saddles, {s['moving']} moving, "
                f"{s['violations']} non-global second-order stationary",
                **s,
            ),
            "rrr_closed_form": closed,
            "rrr_brute_force": brute,
            # the runs counted must have converged: none left moving, and most reach the global value
            "no run left moving": Measurement.compare(s["moving"], 0, "<=", "non-global, gradient >= moving threshold"),
            "fraction reaching the global value": Measurement.compare(
                s["global"] / (s["n"] - s["planted"]),
                0.5,
                ">=",
                "random inits (planted saddles left out), by the loss at the end point, against L* (RRR)",
            ),
            # the saddle branch must be exercised: every planted strict saddle is found to be one
            "planted strict saddles labelled strict": Measurement.compare(
                s["planted_strict"],
                s["planted"],
                ">=",
                f"of {s['planted']} nets started at lifted Baldi-Hornik saddles",
            ),
            "classify agrees (global / strict saddle)": Measurement.compare(
                sum(e.label_mismatch for e in ens), 0, "<=", "landscape.classify on up to 10 end points per config"
            ),
            "trainer_replay (worst config)": Measurement.compare(
                *max((e.replay for e in ens), key=lambda r: r[0] / r[1]), "<=", "first GD iterates vs W - lr grad L"
            ),
        }
        return Measurement.all_of(parts)

    def control(self, ctx: Context) -> Measurement:
        B = ctx.pick(64, 4096)
        loss = double_well_loss((1, 1))
        Ws = random_inits(ctx, (1, 1, 1), B, "s05-control", 0.3, 0.8)
        e = run_ensemble(ctx, loss, Ws, double_well_min(1), lr=0.01, steps=ctx.pick(5_000, 20_000))
        s = _summary([e])
        return Measurement.compare(
            s["violations"],
            0,
            "<=",
            f"{s['n']} runs: {s['global']} global, {s['violations']} non-global second-order stationary "
            f"(value gap {e.min_violation_gap:.3g})",
            **s,
        )
