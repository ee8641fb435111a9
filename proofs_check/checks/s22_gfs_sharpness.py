r"""GD and the sharpness of the gradient-flow solution in scalar networks (THEOREMS2.md §22).

**Statement (as usually summarised; paper not read, conditions UNCONFIRMED).** For :math:`L(w) = \tfrac12(\prod_iw_i-y)^2`,
the GF-solution sharpness :math:`\phi(w) = \lambda_{\max}\nabla^2L(\mathrm{GFS}(w))` (closed form:
:math:`\mathrm{GFS}(w)_i^2 = s + c_i`, :math:`c_i = w_i^2 - w_1^2`, :math:`\tfrac12\sum_i\log(s+c_i) = \log|y|`,
:math:`\phi = y^2\sum_i1/(s+c_i)`; DERIVED+VERIFIED) decreases monotonically along GD, also beyond the stability
threshold, so GD ends at a minimum of sharpness :math:`\le2/\eta`. **Observed in THEOREMS2 only in a restricted
sense:** for :math:`N = 3` most edge-of-stability runs left the positive orthant or diverged, and some showed increases
of :math:`\phi` before leaving.

**Check (asserts only what was observed).** :math:`N\in\{2,3,4\}` with :math:`y = 1, 2, 1.5`, 3 positive unbalanced inits
:math:`w_0 = 1.5|\xi|+0.2` each, :math:`2/\eta` at :math:`S_{\min}+f(\phi(w_0)-S_{\min})`, :math:`f\in\{0.5,0.9\}` (EoS), or at
:math:`\phi(w_0)/0.9` (stable); GD on the engine's diagonal map (scalar layers, ``ln.diagonal.gd``, every iterate
recorded), :math:`\phi(w_t)` by :func:`linnet.theory.gfs_sharpness`. Asserted, for the runs that stay in the positive
orthant and converge: :math:`\phi` non-increasing at every step (relative tolerance :math:`10^{-12}` in float64) and final
sharpness (engine Hessian) :math:`\le(2/\eta)(1+10^{-6})`; at least one EoS run qualifies. Runs that leave the orthant,
diverge or hit the cap are counted and reported, never failed on. "Stay in the positive orthant" is taken literally:
every layer :math:`w_{t,i} > 0` at every iterate. A positive *product* is not enough: a large first step can carry an
even number of layers through zero at once (:math:`N = 2`: :math:`(1.64, 1.55)\mapsto(-0.75, -0.96)` at seed 3;
:math:`N = 4`, two layers, at seed 4), and across that jump :math:`\phi` rose by 0.76% and 12.7%, although each
orthant of positive product is a copy of the positive one (flipping an even number of signs maps GD orbits to GD
orbits and keeps :math:`\phi`); such runs are outside what THEOREMS2 observed and are logged with the others.
The quantities are checked against references at every converged net's final weights :math:`w_T` (residual
:math:`r = \prod_iw_{T,i} - y`): the engine's top Hessian eigenvalue against that of the closed form
:math:`H = gg^\top + rK` (:math:`g_i = \prod_{j\ne i}w_j`, :math:`K_{ik} = \prod_{j\ne i,k}w_j`) on the host, to
``roundoff_bound(eps)``; and :math:`\phi(w_T)` (the closed form) against that eigenvalue, since
:math:`\phi(w) = \lambda_{\max}\nabla^2L(\mathrm{GFS}(w))` and :math:`\mathrm{GFS}(w_T) = w_T` up to :math:`r`. To first
order the gap is :math:`\le5|r/y|` relative: the minimum with the same :math:`c_i` lies :math:`|\delta s|\le2|ry|/\phi` away
(:math:`\phi` moves by :math:`\le2|r/y|`), :math:`\|g\|^2 = (y+r)^2\sum_iw_i^{-2}` by :math:`2|r/y|` and :math:`\|rK\|` adds
:math:`|r/y|`; the bound is ``HEADROOM`` times :math:`5|r/y| + 10\epsilon_{64}`.

**Control.** The *current* sharpness :math:`\lambda_{\max}\nabla^2L(w_t)` in place of :math:`\phi`: monotonicity fails
in the EoS runs (THEOREMS2 designed this control without running it; it is run here).

**Source.** Kreisler, Nacson, Soudry & Carmon, "Gradient Descent Monotonically Decreases the Sharpness of Gradient
Flow Solutions in Scalar Networks and Beyond", arXiv:2305.13064, ICML 2023 (not read; theorem conditions UNCONFIRMED).

**Status** (THEOREMS2 §22). Closed form DERIVED+VERIFIED; monotonicity observed only in the restricted sense above;
the paper's theorem UNCONFIRMED (not read). Reported as MIXED.
"""

from __future__ import annotations

import numpy as np

import linnet as ln

from .._core import EPS64, HEADROOM, ROUNDOFF_TERMS, Check, Context, Measurement, host, register, roundoff_bound

__all__ = ["GFSSharpnessCheck"]

CASES = ((2, 1.0), (3, 2.0), (4, 1.5))
FRACTIONS = (0.5, 0.9)  # EoS placements of 2/eta; plus the stable placement phi(w0)/0.9
N_INITS = 3
#: first-order scale of |phi(w_T) - lambda_max H(w_T)| / lambda_max at a net with residual r = prod w - y: the
#: minimum GFS(w_T) lies 2|r/y| away in s (relative change of phi <= 2|r/y|), |g|^2 moves by 2|r/y| and rK adds
#: |r/y| (module docstring, Check)
PHI_R_TERMS = 5.0


def _runs(ctx: Context, steps: int):
    """Per case: ``(N, y, eta (B,), eos (B,), history w (T, B, N), status (B,), final Hessian top eig (B,))``."""
    rng = ctx.rng("s22")
    out = []
    for N, y in CASES:
        w0 = 1.5 * np.abs(rng.standard_normal((N_INITS, N))) + 0.2
        phi0 = ln.theory.gfs_sharpness(w0, y)
        smin = N * abs(y) ** (2 - 2 / N)
        two_over = [smin + f * (phi0 - smin) for f in FRACTIONS] + [phi0 / 0.9]
        eta = np.concatenate([2.0 / t for t in two_over])
        eos = np.array([True] * (len(FRACTIONS) * N_INITS) + [False] * N_INITS)
        W = np.tile(w0, (len(two_over), 1))
        loss = ln.SquaredLoss.whitened(ctx.asarray(np.array([[y]])))
        Ws = tuple(ctx.asarray(W[:, i, None, None]) for i in range(N))
        ftol = max(1e-26, (100 * ctx.eps * abs(y)) ** 2)
        run = ln.diagonal.gd(loss, Ws, lr=ctx.asarray(eta), steps=steps, ftol=ftol, record_weights=True)
        hist = np.stack([host(h)[..., 0, 0] for h in run.history], axis=-1)
        lam = np.linalg.eigvalsh(host(ln.diagonal.hessian(loss, run.weights)))[..., -1]
        out.append((N, y, eta, eos, hist, host(run.status), lam))
    return out


def _qualifying(hist, status):
    r"""Runs that converged and stayed in the positive orthant (THEOREMS2 §22): every layer of every iterate
    positive, ``hist (T, B, N)``.

    Not merely a product that never changed sign: a step that flips an even number of layers at once keeps the
    product positive but jumps across the orthants, and :math:`\phi` can rise across that step (module docstring).
    """
    return (host(status) == ln.diagonal.CONVERGED) & np.all(hist > 0, axis=(0, -1))


def _hessian_reference(w: np.ndarray, y: float) -> np.ndarray:
    r"""Top eigenvalue of the Hessian of :math:`\tfrac12(\prod_iw_i - y)^2` from its closed form (host float64):
    :math:`H = gg^\top + rK`, :math:`g_i = \prod_{j\ne i}w_j`, :math:`K_{ik} = \prod_{j\ne i,k}w_j` (:math:`i\ne k`),
    :math:`r = \prod_iw_i - y`; ``w`` is ``(B, N)``."""
    B, N = w.shape
    g = np.stack([np.prod(np.delete(w, i, axis=-1), axis=-1) for i in range(N)], axis=-1)
    K = np.zeros((B, N, N))
    for i in range(N):
        for k in range(N):
            if i != k:
                K[:, i, k] = np.prod(np.delete(w, [i, k], axis=-1), axis=-1)
    r = np.prod(w, axis=-1) - y
    return np.linalg.eigvalsh(g[:, :, None] * g[:, None, :] + r[:, None, None] * K)[:, -1]


def _max_rel_increase(values, hist_active):
    """Largest step-to-step relative increase of ``values (T, B)`` among steps where the net still moved."""
    inc = (values[1:] - values[:-1]) / np.abs(values[:-1])
    return float(np.max(np.where(hist_active, inc, -np.inf)))


@register
class GFSSharpnessCheck(Check):
    id = "s22-gfs-sharpness"
    title = "GD decreases the GF-solution sharpness of scalar nets (restricted, as observed)"
    claim = "runs staying positive and converging: phi(w_t) non-increasing every step; final sharpness <= 2/eta"
    source = "Kreisler, Nacson, Soudry & Carmon arXiv:2305.13064 (ICML 2023; not read, UNCONFIRMED); THEOREMS2 §22"
    status = "MIXED"
    control_description = "current sharpness lambda_max(H(w_t)) in place of phi: not monotone in the EoS runs"

    def __init__(self):
        self._cache = {}

    def tol(self, ctx: Context) -> float:
        """1e-12 relative (THEOREMS2, float64), scaled by eps in float32."""
        return 1e-12 * ctx.eps / EPS64

    def runs(self, ctx: Context):
        key = (ctx.seed, ctx.scale, ctx.dtype, ctx.backend)
        if key not in self._cache:
            self._cache = {key: _runs(ctx, ctx.pick(20_000, 20_000))}
        return self._cache[key]

    def measure(self, ctx: Context) -> Measurement:
        inc, ratio, n_ok, n_eos_ok, n_all, notes = -np.inf, 0.0, 0, 0, 0, []
        hess_err, phi_err = 0.0, 0.0
        for N, y, eta, eos, hist, status, lam in self.runs(ctx):
            conv = host(status) == ln.diagonal.CONVERGED
            if conv.any():
                wT = hist[-1, conv]  # converged nets are frozen at their last iterate
                ref = _hessian_reference(wT, y)
                hess_err = max(hess_err, float(np.max(np.abs(lam[conv] - ref) / ref)))
                # at a converged net GFS(w_T) is w_T up to the residual r: phi(w_T) = lambda_max there to O(r/y)
                r = np.abs(np.prod(wT, axis=-1) - y) / abs(y)
                phi_T = ln.theory.gfs_sharpness(wT, y)
                phi_err = max(
                    phi_err, float(np.max(np.abs(phi_T - ref) / ref / (PHI_R_TERMS * r + ROUNDOFF_TERMS * EPS64)))
                )
            ok = _qualifying(hist, status)
            n_all += len(ok)
            n_ok += int(ok.sum())
            n_eos_ok += int((ok & eos).sum())
            notes.append(f"N={N}: {int(ok.sum())}/{len(ok)} qualify")
            if ok.any():
                h = hist[:, ok]
                phi = ln.theory.gfs_sharpness(h, y)
                moved = np.any(h[1:] != h[:-1], axis=-1)
                inc = max(inc, _max_rel_increase(phi, moved))
                ratio = max(ratio, float(np.max(lam[ok] * eta[ok] / 2)))
        parts = {
            "qualifying runs: max relative increase of phi per step": Measurement.compare(
                inc, self.tol(ctx), note="; ".join(notes) + " (others left the orthant, diverged or hit the cap)"
            ),
            "qualifying runs: final sharpness * eta / 2 (max)": Measurement.compare(ratio, 1 + 1e-6, "<="),
            "EoS runs that qualify (count)": Measurement.compare(float(n_eos_ok), 1.0, ">=", note=f"of {n_all} runs"),
            "converged runs: engine final sharpness vs closed-form Hessian gg^T + rK (max rel. error)": (
                Measurement.compare(hess_err, roundoff_bound(ctx.eps), note="host float64 at the final weights")
            ),
            "converged runs: |phi(w_T) - lambda_max| / lambda_max in units of 5|r/y| + 10 eps64 (max)": (
                Measurement.compare(
                    phi_err,
                    HEADROOM,
                    note="phi by theory.gfs_sharpness, lambda_max of the closed-form Hessian at w_T "
                    "(phi is lambda_max at GFS(w), and GFS(w_T) = w_T up to the residual r)",
                )
            ),
        }
        return Measurement.all_of(parts)

    def control(self, ctx: Context) -> Measurement:
        inc = -np.inf
        for N, y, _eta, eos, hist, status, _lam in self.runs(ctx):
            ok = _qualifying(hist, status) & eos
            if not ok.any():
                continue
            h = hist[:, ok]
            loss = ln.SquaredLoss.whitened(np.array([[y]]))
            Ws = tuple(h[..., i, None, None] for i in range(N))
            cur = np.linalg.eigvalsh(ln.diagonal.hessian(loss, Ws))[..., -1]
            moved = np.any(h[1:] != h[:-1], axis=-1)
            inc = max(inc, _max_rel_increase(cur, moved))
        part = Measurement.compare(inc, self.tol(ctx), note="qualifying EoS runs, lambda_max of the current Hessian")
        return Measurement.any_of({"current sharpness: max relative increase per step": part})
