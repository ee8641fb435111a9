r"""Width-1 deep linear nets need exponentially many GD steps in the depth (THEOREMS2.md §19).

**Statement (abstract CONFIRMED).** For scalar layers :math:`w_1..w_k` and :math:`f(\prod_iw_i)`, e.g.
:math:`f(x) = \tfrac12(x-1)^2`, GD with a constant step from standard random inits needs a number of iterations that
grows exponentially with the depth :math:`k`. Mechanism (DERIVED): :math:`\mathbb E\log|w_j| \approx -0.635` for
:math:`w_j\sim\mathcal N(0,1)`, so :math:`|p|\approx e^{-0.635k}` and every gradient :math:`f'(p)p/w_i` is exponentially small,
while stability caps the step.

**Check.** For each depth :math:`k`, 9 inits :math:`w\sim\mathcal N(0,I_k)` conditioned on :math:`p>0`, each run at
:math:`\eta\in\{1, 0.1, 0.01\}` (one batch of :math:`27` scalar nets on the engine's diagonal map, ``ln.diagonal.gd``,
per-net step sizes); iterations to reach :math:`f\le10^{-2}f(0)`, the best over :math:`\eta` per init (a diverged or
capped run counts as failed); the median over inits. Asserted: the median increases with :math:`k`, and the
least-squares slope of :math:`\log(\text{median})` against :math:`k` exceeds 0.1 (THEOREMS2 observed 0.33 per layer).
Quick scale: :math:`k\in\{4, 8, 12\}`, cap :math:`5\times10^3`; full: :math:`k\in\{4, 8, \dots, 24\}`, cap :math:`2\times10^5`.

**Control (the init hypothesis).** Near-identity init :math:`w_i = 1+0.1\xi_i/\sqrt k-0.3/k`, :math:`\eta = 0.5/k`: the same
slope test fails (THEOREMS2: 4–6 iterations for every :math:`k` up to 64): depth alone costs nothing.

**Source.** Shamir, "Exponential Convergence Time of Gradient Descent for One-Dimensional Deep Linear Neural
Networks", arXiv:1809.08587, COLT 2019 (abstract; assumptions on :math:`f`, init distributions, step-size range and
the :math:`\exp(\Omega(k))` constant UNCONFIRMED).

**Status** (THEOREMS2 §19). Qualitative statement CONFIRMED; constants and exact hypotheses UNCONFIRMED; mechanism and
measurements DERIVED+VERIFIED (measured, statistical). Reported as MIXED.
"""

from __future__ import annotations

import numpy as np

import linnet as ln

from .._core import Check, Context, Measurement, host, register

__all__ = ["WidthOneDepthCheck", "steps_to_converge", "gaussian_inits", "near_identity_inits"]

ETAS = (1.0, 0.1, 0.01)
N_INITS = 9
SLOPE_MIN = 0.1  # THEOREMS2 §19: fitted slope of log(median) against k must exceed 0.1 (observed 0.33)


def gaussian_inits(rng, k: int, n: int) -> np.ndarray:
    """``(n, k)`` standard Gaussian layers, conditioned on a positive product (rejection)."""
    out = []
    while len(out) < n:
        w = rng.standard_normal(k)
        if np.prod(w) > 0:
            out.append(w)
    return np.array(out)


def near_identity_inits(rng, k: int, n: int) -> np.ndarray:
    """``(n, k)`` layers :math:`1 + 0.1\\xi/\\sqrt k - 0.3/k` (the control's init)."""
    return 1 + 0.1 * rng.standard_normal((n, k)) / np.sqrt(k) - 0.3 / k


def steps_to_converge(ctx: Context, w0: np.ndarray, etas, cap: int) -> np.ndarray:
    """Per init (rows of ``w0``), the fewest GD steps over ``etas`` to reach :math:`f\\le10^{-2}f(0)`; ``inf`` if
    every step size diverged or hit ``cap``. :math:`f(p) = \\tfrac12(p-1)^2`."""
    n, k = w0.shape
    e = len(etas)
    W = np.repeat(w0, e, axis=0)  # (n e, k): init i with every eta
    lr = np.tile(np.asarray(etas, dtype=float), n)
    f0 = 0.5 * (np.prod(W, axis=-1) - 1.0) ** 2
    loss = ln.SquaredLoss.whitened(ctx.asarray(np.array([[1.0]])))
    Ws = tuple(ctx.asarray(W[:, j, None, None]) for j in range(k))
    run = ln.diagonal.gd(loss, Ws, lr=ctx.asarray(lr), steps=cap, ftol=ctx.asarray(1e-2 * f0), record_every=cap)
    steps = np.where(host(run.status) == ln.diagonal.CONVERGED, host(run.steps), np.inf)
    return steps.reshape(n, e).min(axis=1)


def _slope(ks, med) -> float:
    med = np.asarray(med, dtype=float)
    if not np.all(np.isfinite(med)):
        return float("nan")
    return float(np.polyfit(np.asarray(ks, dtype=float), np.log(np.maximum(med, 1.0)), 1)[0])


@register
class WidthOneDepthCheck(Check):
    id = "s19-width-one-depth"
    title = "Width-1 deep linear nets: GD steps grow exponentially with depth from Gaussian inits"
    claim = "median steps to f <= 1e-2 f(0) increasing in k; slope of log(median) vs k > 0.1"
    source = "Shamir arXiv:1809.08587 (COLT 2019), abstract; constants UNCONFIRMED; THEOREMS2 §19"
    status = "MIXED"
    control_description = "near-identity init (eta = 0.5/k): the slope test must fail (depth alone costs nothing)"

    def depths(self, ctx: Context) -> tuple:
        return ctx.pick((4, 8, 12), (4, 8, 12, 16, 20, 24))

    def medians(self, ctx: Context, init, etas_of_k, cap: int, key: str):
        rng = ctx.rng(key)
        ks = self.depths(ctx) if key == "s19" else (2, 4, 8, 16, 32, 64)
        meds, capped = [], []
        for k in ks:
            s = steps_to_converge(ctx, init(rng, k, N_INITS), etas_of_k(k), cap)
            meds.append(float(np.median(s)))
            capped.append(int(np.sum(~np.isfinite(s))))
        return ks, np.array(meds), capped

    def measure(self, ctx: Context) -> Measurement:
        cap = ctx.pick(5_000, 200_000)
        ks, med, capped = self.medians(ctx, gaussian_inits, lambda k: ETAS, cap, "s19")
        slope = _slope(ks, med)
        note = ", ".join(f"k={k}: {m:g} ({c} failed)" for k, m, c in zip(ks, med, capped))
        parts = {
            "slope of log(median steps) per layer": Measurement.compare(slope, SLOPE_MIN, ">", note=note),
            "median increasing in k: min ratio of consecutive medians": Measurement.compare(
                float(np.min(med[1:] / med[:-1])), 1.0, ">", note=f"cap {cap}, best of eta in {ETAS}, {N_INITS} inits"
            ),
        }
        return Measurement.all_of(parts)

    def control(self, ctx: Context) -> Measurement:
        ks, med, capped = self.medians(ctx, near_identity_inits, lambda k: (0.5 / k,), 2_000, "s19-control")
        slope = _slope(ks, med)
        note = ", ".join(f"k={k}: {m:g}" for k, m in zip(ks, med))
        return Measurement.any_of(
            {"near-identity init: slope of log(median steps)": Measurement.compare(slope, SLOPE_MIN, ">", note=note)}
        )
