"""A registry of realistic engine faults, injected one at a time by monkeypatching (no file is edited).

Each fault is one small function ``fault(mp)`` that replaces one engine attribute through ``mp`` (a
``pytest.MonkeyPatch``) and is registered with the ids of the theorem checks whose *subject* the fault touches
(the checks that must catch it, decided from what the fault breaks, not from what was measured). The seams are
documented engine attributes: public functions and methods of ``linnet.product``, ``losses``, ``calculus``,
``theory.*``, ``landscape``, ``init`` and the trainers, plus a few private hooks of the fast paths and the
trainers' drivers (marked ``fast path`` in ``area``; retarget these when those internals move).

Part 2 (checks s15-s22) has its own seams: the diagonal map (``linnet.diagonal``: its pullback, HVP, prefix/suffix
products, the per-net step sizes of its trainers, ``lift``), the tied map (``linnet.tied``), the flow integrator
(``linnet.ivp.integrate``), the implicit-regularization closed forms (``linnet.theory.implicit``: ``q_alpha``,
``q_alpha_argmin``, the :math:`h_D` family, ``entropy_argmin``, ``min_l1_interpolant``, ``gfs_sharpness``),
``theory.effective_rank``, the logistic loss and ``max_margin_direction``, and the dense Hessian at global minima
(s18). The private ones (``diagonal._pullback``, ``_partials``, ``_descent``, ``theory.implicit._HD``) carry the
areas ``diagonal`` and ``theory``; retarget them when those internals move. Checks that cache their runs between
``measure`` and ``control`` (s16, s20, s22) are emptied before and after each fault (:func:`clear_check_caches`).

Why monkeypatch seams rather than a mutation tool (mutmut, cosmic-ray): a mutation tool generates hundreds of
mutants, most of them equivalent or trivially crashing, and runs the whole main job once per mutant in a fresh
process; at ~15 s per run of ``python -m proofs_check`` on two cores that is hours per sweep, and which mutants
exist changes with every edit of the engine, so the score is not reproducible across commits. A fixed registry of
named faults, each a model of a bug class that was actually seen (sign flips, dropped factors 1/2 or 1/m,
missing transposes, dropped HVP terms, wrong exponents, disabled divergence detection, wrong eigensolver mode),
runs in-process (the checks' imports are shared), deterministically, and only the checks a fault names need to
run in CI.

``python -m tests.faults`` runs every fault against every check and prints the score.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from typing import Callable, NamedTuple

import numpy as np


class Fault(NamedTuple):
    name: str
    area: str
    checks: tuple  # ids (prefixes such as "s05-") of the checks whose subject the fault touches
    description: str
    inject: Callable


FAULTS: dict[str, Fault] = {}


def fault(name: str, area: str, checks: tuple, description: str):
    """Register ``inject(mp)`` as a named fault."""

    def deco(fn):
        if name in FAULTS:
            raise ValueError(f"duplicate fault {name!r}")
        FAULTS[name] = Fault(name, area, tuple(checks), description, fn)
        return fn

    return deco


def replace(mp, module, attr: str, new) -> None:
    """Replace ``module.attr`` and every alias of the same object bound in a loaded ``linnet`` or
    ``proofs_check`` module (``from .x import f`` copies the binding, so patching one module is not enough)."""
    old = getattr(module, attr)
    mp.setattr(module, attr, new)
    for name, mod in list(sys.modules.items()):
        if mod is None or mod is module or not name.startswith(("linnet", "proofs_check")):
            continue
        for k, v in list(vars(mod).items()):
            if v is old:
                mp.setattr(mod, k, new)


def wrap(mp, module, attr: str, make: Callable) -> None:
    """``replace`` with ``make(original)`` (``module`` may also be a class: a method wrapped around the original)."""
    replace(mp, module, attr, make(getattr(module, attr)))


def force_keywords(mp, module, attr: str, **fixed) -> None:
    """``module.attr`` called with the keyword arguments ``fixed``, whatever its caller passed."""
    wrap(mp, module, attr, lambda f: lambda *a, **k: f(*a, **{**k, **fixed}))


def _np(a):
    from linnet._backend import to_numpy

    return to_numpy(a)


# ---- product map -----------------------------------------------------------------------------------------------
@fault("pullback-sign", "product", ("s01-", "s02-", "s05-", "s10-", "s12-"), "layer gradients negated")
def _pullback_sign(mp):
    import linnet.product as p

    wrap(mp, p, "pullback", lambda f: lambda *a, **k: tuple(None if g is None else -g for g in f(*a, **k)))


@fault("pullback-first-layer-dropped", "product", ("s01-", "s02-", "s12-"), "gradient of layer 1 is zero")
def _pullback_drop(mp):
    import linnet.product as p

    def make(f):
        def g(*a, **k):
            out = f(*a, **k)
            return (out[0] * 0,) + tuple(out[1:])

        return g

    wrap(mp, p, "pullback", make)


@fault(
    "pullback-derivative-term-dropped",
    "product",
    ("s01-", "s12-", "s13-", "s06-"),
    "HVP: the dS^T G P^T term of the second-order part is dropped",
)
def _pullback_derivative(mp):
    import linnet.product as p

    def g(pp, G, Vs, xp, *, dP=None, dS=None):
        N = len(pp.factors)
        dP = p.pushforward_prefixes(pp, Vs, xp) if dP is None else dP
        out = []
        for j in range(1, N + 1):
            if dP[j - 1] is None:
                out.append(None)
            else:
                out.append(xp.matmul(p._mm(p._t(pp.suffix[j]), G, xp), dP[j - 1].mT))
        return tuple(out)

    replace(mp, p, "pullback_derivative", g)


@fault("residual-identity-dropped", "product", ("s08-",), "residual factors I + W_j computed as W_j")
def _residual(mp):
    import linnet.product as p

    wrap(mp, p, "factors", lambda f: lambda Ws, residual, xp: f(Ws, False, xp))


@fault(
    "end-to-end-order",
    "product",
    ("s04-", "s12-", "s01-", "s08-"),
    "end_to_end multiplies the layers in the wrong order when all are square",
)
def _e2e_order(mp):
    import linnet.product as p

    def make(f):
        def g(Ws, *, residual=False):
            if all(W.shape[-1] == W.shape[-2] == Ws[0].shape[-1] for W in Ws):
                return f(tuple(reversed(Ws)), residual=residual)
            return f(Ws, residual=residual)

        return g

    wrap(mp, p, "end_to_end", make)


# ---- losses ----------------------------------------------------------------------------------------------------
@fault(
    "whitened-value-x2",
    "losses",
    ("s09-", "s13-", "s10-", "s06-", "s03-"),
    "SquaredLoss.whitened: value is ||W - Phi||^2 (the 1/2 dropped), generic path",
)
def _whitened_value(mp):
    from linnet.losses import SquaredLoss

    def make(orig):
        def value(self, W):
            v = orig(self, W)
            return 2 * v if self.Sxx is None and self.Phi is not None else v

        return value

    wrap(mp, SquaredLoss, "value", make)


@fault(
    "whitened-value-x2-kernel",
    "fast path",
    ("s09-", "s13-", "s10-", "s03-"),
    "the NumPy kernel reports twice the whitened squared loss",
)
def _whitened_value_kernel(mp):
    from linnet._fastpaths import natural, transposed

    def small(f):  # the transposed layout's loss block: (value, G^T) of a block
        def g(WeT, lc, *a, **k):
            v, Gt = f(WeT, lc, *a, **k)
            return (2 * v if "SxxT" not in lc and "raw" not in lc else v), Gt

        return g

    def large(f):  # the natural layout's bound calls: one more, doubling the block's values
        def g(Ws, lc, residual, lo, hi, vals, *a, **k):
            ops = f(Ws, lc, residual, lo, hi, vals, *a, **k)
            if "Sxx" not in lc and "raw" not in lc:
                v = vals[lo:hi]
                ops.append(lambda: np.multiply(v, 2, out=v))
            return ops

        return g

    wrap(mp, transposed, "loss_block", small)
    wrap(mp, natural, "block_ops", large)


@fault(
    "data-loss-1-over-m-dropped",
    "losses",
    ("s05-", "s07-", "s11-", "s01-"),
    "SquaredLoss.from_data: statistics not divided by m (loss m times too large)",
)
def _from_data_m(mp):
    from linnet.losses import SquaredLoss

    orig = SquaredLoss.from_data.__func__

    def from_data(cls, X, Y):
        m = X.shape[-1]
        return orig(cls, X * m**0.5, Y * m**0.5)

    mp.setattr(SquaredLoss, "from_data", classmethod(from_data))


@fault(
    "squared-value-half-dropped",
    "losses",
    ("s05-", "s06-", "s07-", "s01-", "s11-", "s12-"),
    "SquaredLoss.value (data/population form): the 1/2 dropped, gradient unchanged",
)
def _squared_value(mp):
    from linnet.losses import SquaredLoss

    def make(orig):
        def value(self, W):
            v = orig(self, W)
            return 2 * v - self.c0 if self.Sxx is not None and self.Phi is not None else v

        return value

    wrap(mp, SquaredLoss, "value", make)


@fault(
    "squared-hvp-ignores-Sxx",
    "losses",
    ("s01-", "s06-", "s11-", "s05-"),
    "SquaredLoss.hvp returns D (Sxx taken as the identity)",
)
def _squared_hvp(mp):
    from linnet.losses import SquaredLoss

    mp.setattr(SquaredLoss, "hvp", lambda self, W, D: D)


@fault("lp-hvp-exponent", "losses", ("s01-", "s07-"), "LpLoss.hvp with weight |R|^(p-1) instead of (p-1)|R|^(p-2)")
def _lp_hvp(mp):
    from linnet.losses import LpLoss

    def hvp(self, W, D):
        R, xp = self._residual(W)
        w = xp.abs(R) ** (self.p - 1)
        return xp.matmul(w * xp.matmul(D, self.X), self.X.mT) / self.m

    mp.setattr(LpLoss, "hvp", hvp)


@fault("lp-grad-sign-of-residual-dropped", "losses", ("s01-", "s07-"), "LpLoss.grad uses |R|^(p-1) without sign(R)")
def _lp_grad(mp):
    from linnet.losses import LpLoss

    def grad(self, W):
        R, xp = self._residual(W)
        return xp.matmul(xp.abs(R) ** (self.p - 1), self.X.mT) / self.m

    mp.setattr(LpLoss, "grad", grad)


@fault(
    "sgd-minibatch-scaled-by-m",
    "losses",
    ("s11-",),
    "SquaredLoss.subsample divides the minibatch statistics by m instead of the batch size",
)
def _subsample_scale(mp):
    from linnet.losses import SquaredLoss

    def make(orig):
        def subsample(self, idx):
            out = orig(self, idx)
            b, m = out.data[0].shape[-1], self.data[0].shape[-1]
            return SquaredLoss(out.Sxx * b / m, out.Syx * b / m, None, None, out.tr_yy * b / m, data=out.data)

        return subsample

    wrap(mp, SquaredLoss, "subsample", make)


@fault("sgd-same-minibatch", "trainers", ("s11-",), "sgd draws the same minibatch (the first b samples) every step")
def _sgd_same(mp):
    import linnet.train._minibatch as mb

    class FixedRng:  # the draws of _Minibatches (sgd's and diagonal.sgd's): always the first b samples
        def __init__(self, seed):
            self.bit_generator = np.random.default_rng(0).bit_generator  # its state is recorded for resume

        def choice(self, m, size, replace=False):
            return np.arange(size)

    mp.setattr(mb, "host_rng", FixedRng)  # only the minibatch module's binding: host_rng serves init too


# ---- calculus --------------------------------------------------------------------------------------------------
@fault(
    "hvp-second-order-term-dropped",
    "calculus",
    ("s01-", "s12-", "s06-", "s05b-"),
    "ln.hvp returns the Gauss-Newton part only",
)
def _hvp_gn(mp):
    import linnet.calculus as c

    replace(mp, c, "hvp", c.gauss_newton_hvp)


@fault(
    "hessian-layer-signs",
    "calculus",
    ("s01-", "s12-"),
    "ln.hessian: off-diagonal layer blocks of odd layers negated (same spectrum, wrong matrix)",
)
def _hessian_signs(mp):
    import linnet.calculus as c

    def make(f):
        def g(loss, Ws, *, residual=False):
            H = f(loss, Ws, residual=residual)
            xp = __import__("linnet._backend", fromlist=["namespace"]).namespace(H)
            s = np.concatenate([np.full(W.shape[-1] * W.shape[-2], (-1.0) ** j) for j, W in enumerate(Ws)])
            s = xp.asarray(s, dtype=H.dtype)
            return H * s[:, None] * s[None, :]

        return g

    wrap(mp, c, "hessian", make)


@fault(
    "grad-relative-1e-5",
    "calculus",
    ("s01-", "s12-"),
    "ln.grad off by a relative 1e-5 (a wrong constant deep in a sum)",
)
def _grad_rel(mp):
    import linnet.calculus as c

    wrap(mp, c, "grad", lambda f: lambda *a, **k: tuple(g * (1 + 1e-5) for g in f(*a, **k)))


# ---- theory ----------------------------------------------------------------------------------------------------
@fault(
    "global-min-rank-plus-one",
    "theory",
    ("s05-", "s06-", "s07-"),
    "theory.global_min uses rank r + 1 (the bottleneck ignored by one)",
)
def _global_min(mp):
    import linnet.theory.minima as mn

    def make(f):
        def g(loss, widths):
            res = f(loss, widths)
            if res.We is not None and res.rank < min(loss.shape):
                best = mn.rrr(loss, res.rank + 1)
                return mn.GlobalMin(best.value, best.We, res.rank)
            return res

        return g

    wrap(mp, mn, "global_min", make)


@fault("sharpness-exponent", "theory", ("s13-",), "theory.sharpness_balanced uses sigma^(2 - 1/N)")
def _sharp(mp):
    import linnet.theory.sharpness as sh

    def g(Phi, depth):
        s1 = float(np.max(np.linalg.svd(_np(Phi), compute_uv=False)))
        return np.float64(depth * s1 ** (2.0 - 1.0 / depth))

    replace(mp, sh, "sharpness_balanced", g)


@fault("saxe-mode-time-scale", "theory", ("s10-",), "theory.saxe_mode with tau halved")
def _saxe(mp):
    import linnet.theory.saxe as sx

    wrap(mp, sx, "saxe_mode", lambda f: lambda t, s, u0, *, tau=1.0: f(t, s, u0, tau=tau / 2))


@fault("saxe-deep-exponent", "theory", ("s10-",), "deep Saxe ODE solved with beta = 1 - 1/D instead of 1 - 2/D")
def _saxe_deep(mp):
    import linnet.theory.saxe as sx

    def make(f):
        def g(v, beta, xp):
            return f(v, 0.5 * (1.0 + beta) if beta else beta, xp)

        return g

    wrap(mp, sx, "_deep_T", make)


@fault("acgh-rate-exponent", "theory", ("s03-",), "acgh_constants: the rate c^(2(N-1)/N) computed as c^((N-1)/N)")
def _acgh(mp):
    import linnet.theory.convergence as cv

    def make(f):
        def g(Phi, c, depth, *, eta=None):
            return f(Phi, c**0.5, depth, eta=eta)

        return g

    wrap(mp, cv, "acgh_constants", make)


@fault("deficiency-margin-sign", "theory", ("s03-",), "deficiency_margin returns sigma_min(Phi) + ||We - Phi||")
def _margin(mp):
    import linnet.theory.convergence as cv

    def make(f):
        def g(We, Phi):
            from linnet._backend import namespace

            xp = namespace(We)
            return f(We, Phi) + 2 * xp.sqrt(xp.sum((We - Phi) ** 2, axis=(-2, -1)))

        return g

    wrap(mp, cv, "deficiency_margin", make)


@fault("balancedness-orientation", "theory", ("s02-",), "balancedness_gaps: W W^T - W^T W orientation swapped")
def _bal(mp):
    import linnet.theory.balance as b

    def g(Ws):
        from linnet._backend import namespace

        xp = namespace(Ws[0])
        return tuple(
            xp.matmul(Ws[j + 1].mT, Ws[j + 1]) - xp.matmul(Ws[j].mT, Ws[j])
            if Ws[j].shape[-1] == Ws[j + 1].shape[-1]
            else xp.matmul(Ws[j + 1].mT, Ws[j + 1]) - xp.matmul(Ws[j], Ws[j].mT) * 1.01
            for j in range(len(Ws) - 1)
        )

    replace(mp, b, "balancedness_gaps", g)


@fault("baldi-hornik-values", "theory", ("s06-",), "baldi_hornik_points: value with the selected eigenvalues halved")
def _bh(mp):
    import linnet.theory.minima as mn

    def make(f):
        def g(loss, p, *, rtol=None):
            pts = f(loss, p, rtol=rtol)
            return [pt._replace(value=pt.value * 1.01) for pt in pts]

        return g

    wrap(mp, mn, "baldi_hornik_points", make)


@fault("hardt-ma-norm-bound", "theory", ("s08-",), "hardt_ma_norm_bound without the 1/N root")
def _hm(mp):
    import linnet.theory.residual as rs

    wrap(mp, rs, "hardt_ma_norm_bound", lambda f: lambda R, depth: f(R, depth) * 0.5)


@fault("bhl-sufficient-lr-doubled", "theory", ("s09-",), "bhl_sufficient_lr twice too large")
def _bhl(mp):
    import linnet.theory.residual as rs

    wrap(mp, rs, "bhl_sufficient_lr", lambda f: lambda eigs, depth: f(eigs, depth) * 2.0)


# ---- init ------------------------------------------------------------------------------------------------------
@fault(
    "balanced-init-unbalanced",
    "init",
    ("s02-", "s04-", "s10-", "s13-"),
    "init.balanced scales W_1 by 1.01 and W_N by 1/1.01 (same product, not balanced)",
)
def _balanced(mp):
    import linnet.init as it

    def make(f):
        def g(A, widths, *, rtol=None):
            Ws = list(f(A, widths, rtol=rtol))
            Ws[0], Ws[-1] = Ws[0] * 1.01, Ws[-1] / 1.01
            return tuple(Ws)

        return g

    wrap(mp, it, "balanced", make)


# ---- linalg ----------------------------------------------------------------------------------------------------
@fault(
    "e2e-velocity-exponent", "linalg", ("s04-", "s03-"), "e2e_velocity: the preconditioner powers j/N taken as j/(N+1)"
)
def _e2e_vel(mp):
    import linnet.linalg as la

    wrap(mp, la, "e2e_velocity", lambda f: lambda W, G, depth, *, rtol=None: f(W, G, depth + 1, rtol=rtol))


# ---- trainers --------------------------------------------------------------------------------------------------
def _scaled_lr(mp, factor: float):
    import linnet.train._args as ar

    def make(f):
        def g(lr, xp, dt, name="lr"):
            lr, shape = f(lr, xp, dt, name)
            return lr * factor, shape

        return g

    wrap(mp, ar, "_check_lr", make)


@fault(
    "gd-lr-halved",
    "trainers",
    ("s02-", "s03-", "s04-", "s05-", "s06-", "s07-", "s08-", "s09-", "s11-", "s13-"),
    "every descent trainer takes steps of lr / 2",
)
def _lr_half(mp):
    _scaled_lr(mp, 0.5)


@fault(
    "gd-lr-1e-3",
    "trainers",
    ("s02-", "s03-", "s04-", "s05-", "s06-", "s07-", "s08-", "s09-", "s11-", "s13-"),
    "every descent trainer takes steps of lr * 1e-3",
)
def _lr_tiny(mp):
    _scaled_lr(mp, 1e-3)


@fault("divergence-never-detected", "trainers", ("s13-", "s09-"), "the divergence test always passes")
def _div(mp):
    import linnet.train.trajectory as tr

    replace(mp, tr, "_loss_ok", lambda L, limit, xp: xp.ones(L.shape, dtype=xp.bool))


@fault("momentum-beta-ignored", "trainers", ("s13-",), "momentum runs plain GD (beta dropped on every path)")
def _mom(mp):
    import linnet.train.descent as d

    wrap(
        mp,
        d,
        "_layer_descent",
        lambda f: lambda loss, Ws, *, beta, residual, **kw: f(loss, Ws, beta=0.0, residual=residual, **kw),
    )


@fault(
    "momentum-beta-ignored-numpy",
    "fast path",
    ("s13-",),
    "the NumPy update buffer applies W - s V instead of W - s M (momentum buffer computed, then unused)",
)
def _mom_np(mp):
    import linnet.train._buffers as d

    def make(orig):
        def upd(self, lo, hi, W, V, Mom, Wn, Mn, sa, beta):
            saved = [w[lo:hi].copy() for w in W]
            orig(self, lo, hi, W, V, Mom, Wn, Mn, sa, beta)
            if beta:
                for j in range(len(W)):
                    s = sa[j] if isinstance(sa[j], float) else sa[j][lo:hi]
                    Wn[j][lo:hi] = saved[j] - s * V[j][lo:hi]

        return upd

    wrap(mp, d._NumpyBuffers, "_update_range", make)


@fault(
    "flow-error-norm-one-layer",
    "fast path",
    ("s04-", "s02-", "s10-"),
    "gradient_flow's step control measures the error of layer 1 only",
)
def _flow_err(mp):
    import linnet.train._stages as st

    def make(orig):
        def err(self, j, v, vn, atol, rtol, tiny):
            e = orig(self, j, v, vn, atol, rtol, tiny)
            return e if j == 0 else e * 0

        return err

    wrap(mp, st._NumpyStages, "error_sq", make)


@fault("flow-loose-tolerance", "trainers", ("s04-", "s02-", "s10-"), "gradient_flow ignores rtol/atol (uses 1e-3)")
def _flow_tol(mp):
    import linnet.train.flow as fl

    force_keywords(mp, fl, "gradient_flow", rtol=1e-3, atol=1e-3)


# ---- landscape -------------------------------------------------------------------------------------------------
@fault("classify-wrong-rank", "landscape", ("s06-", "s05-"), "classify compares with the global value of rank r + 1")
def _cls_rank(mp):
    import linnet.theory as th
    import linnet.theory.minima as mn

    def make(f):
        return lambda loss, rank: f(loss, rank + 1)

    wrap(mp, mn, "rrr_value", make)
    mp.setattr(th, "rrr_value", mn.rrr_value)


@fault(
    "classify-index1-not-strict",
    "landscape",
    ("s06-", "s05-", "s05b-"),
    "classify labels saddles of index 1 as non-strict",
)
def _cls_index(mp):
    import linnet.landscape as ls

    def make(f):
        def g(*a, **k):
            r = f(*a, **k)
            lab = np.asarray(r.label, dtype=object)
            one = np.broadcast_to(_np(r.index) == 1, lab.shape)
            lab = np.where((lab == "strict saddle") & one, "non-strict saddle", lab)
            return r._replace(label=str(lab) if lab.ndim == 0 else lab.astype(str))

        return g

    wrap(mp, ls, "classify", make)


@fault(
    "eigsh-largest-magnitude",
    "landscape",
    ("s01-", "s06-", "s13-", "s05b-"),
    "the top Hessian eigenvalue asks eigsh for the largest magnitude (LM) instead of the largest algebraic (LA)",
)
def _eigsh(mp):
    import scipy.sparse.linalg as spl

    orig = spl.eigsh

    @functools.wraps(orig)
    def eigsh(*a, **k):
        if k.get("which") == "LA":
            k["which"] = "LM"
        return orig(*a, **k)

    mp.setattr(spl, "eigsh", eigsh)


@fault(
    "lean-hvp-term-dropped",
    "fast path",
    ("s01-", "s13-", "s06-"),
    "LeanHVP (top eigenvalue): the S_j^T G dP^T term dropped",
)
def _lean_term(mp):
    import linnet._fastpaths as fp

    def make(orig):
        def hvp(self, Vs):
            saved = self.StG
            self.StG = [None if x is None else x * 0 for x in saved]
            try:
                return orig(self, Vs)
            finally:
                self.StG = saved

        return hvp

    wrap(mp, fp.LeanHVP, "hvp", make)


@fault(
    "lean-hvp-transpose",
    "fast path",
    ("s01-", "s13-", "s06-"),
    "LeanHVP (top eigenvalue): G P^T used untransposed (G^T) in the dS term where shapes allow",
)
def _lean_t(mp):
    import linnet._fastpaths as fp

    orig_init = fp.LeanHVP.__init__

    def init(self, loss_fn, Ws, residual=False):
        orig_init(self, loss_fn, Ws, residual)
        self.GPt = [None if x is None else (x.mT if x.shape[-1] == x.shape[-2] else x) for x in self.GPt]

    mp.setattr(fp.LeanHVP, "__init__", init)


# ---- part 2: diagonal map (linnet.diagonal) ---------------------------------------------------------------------
@fault(
    "diagonal-pullback-own-layer",
    "diagonal",
    ("s20-", "s21-", "s22-"),
    "diagonal pullback: dL/dw_j = grad l(W) * (prod of ALL layers) (layer j's own factor not left out); "
    "reaches grad, value_and_grad, flow and the Gauss-Newton part of hvp/hessian",
)
def _diag_pullback(mp):
    import linnet.diagonal.calculus as dg

    wrap(
        mp,
        dg,
        "_pullback",
        lambda f: lambda G, p, s, xp, like: tuple(g * W for g, W in zip(f(G, p, s, xp, like), like)),
    )


@fault(
    "diagonal-hvp-last-direction-dropped",
    "diagonal",
    ("s21-", "s22-"),
    "diagonal.hvp ignores the direction of the last layer (a loop off by one): the dense Hessian's last block "
    "columns are zero before symmetrization",
)
def _diag_hvp(mp):
    import linnet.diagonal as dg

    def make(f):
        def hvp(loss, Ws, Vs):
            Vs = tuple(Vs)
            return f(loss, Ws, Vs[:-1] + (Vs[-1] * 0,))

        return hvp

    wrap(mp, dg, "hvp", make)


@fault(
    "diagonal-suffix-last-layer-dropped",
    "diagonal",
    ("s19-", "s20-", "s21-", "s22-"),
    "diagonal.calculus._partials: the suffix loop starts one layer early, so every suffix product misses w_N (gradients of "
    "layers 1..N-1 lack the factor w_N; gd, flow, grad and hvp all use it)",
)
def _diag_suffix(mp):
    import linnet.diagonal.calculus as dg

    def partials(Ws):
        N = len(Ws)
        p = [None] * (N + 1)
        for j in range(1, N + 1):
            p[j] = dg._mul(Ws[j - 1], p[j - 1])
        s = [None] * (N + 1)
        for j in range(N - 2, -1, -1):
            s[j] = dg._mul(Ws[j], s[j + 1])
        return p, s

    replace(mp, dg, "_partials", partials)


@fault(
    "diagonal-per-net-lr-ignored",
    "diagonal",
    ("s19-", "s21-", "s22-"),
    "diagonal gd/momentum/sgd: an array of per-net step sizes is replaced by its first entry for every net",
)
def _diag_lr(mp):
    import linnet.diagonal.training as dg

    def make(f):
        def descent(loss, Ws, beta, lr, *a, **k):
            if hasattr(lr, "shape") and lr.ndim > 0 and lr.shape[0] > 1:
                lr = lr * 0 + lr[(0,) * lr.ndim]
            return f(loss, Ws, beta, lr, *a, **k)

        return descent

    wrap(mp, dg, "_descent", make)


@fault(
    "diagonal-lift-sign", "diagonal", ("s20-",), "diagonal.lift returns [X; X] (the minus of the second tower dropped)"
)
def _diag_lift(mp):
    import linnet.diagonal as dg

    def make(f):
        def lift(X):
            L = f(X)
            d = L.shape[-2] // 2
            from linnet._backend import namespace

            return namespace(L).concat([L[..., :d, :], -L[..., d:, :]], axis=-2)

        return lift

    wrap(mp, dg, "lift", make)


# ---- part 2: tied map, flows -----------------------------------------------------------------------------------
@fault(
    "tied-grad-chain-factor-dropped",
    "tied",
    ("s16-",),
    "tied.value_and_grad/grad return G + G^T (the chain-rule factor W1 of d(W1^T W1) dropped)",
)
def _tied_grad(mp):
    import linnet.tied as td

    def value_and_grad(loss, W1):
        loss_fn, W1, xp, We = td._prepare(loss, W1)
        G = loss_fn.grad(We)
        return loss_fn.value(We), G + G.mT

    replace(mp, td, "value_and_grad", value_and_grad)


@fault(
    "ivp-tolerances-ignored",
    "ivp",
    ("s16-", "s20-"),
    "ivp.integrate drops the rtol/atol it is given and runs at the solver defaults (1e-3, 1e-6)",
)
def _ivp_tol(mp):
    import linnet.ivp as iv

    force_keywords(mp, iv, "integrate", rtol=1e-3, atol=1e-6)


@fault(
    "ivp-rhs-last-block-halved",
    "ivp",
    ("s16-", "s20-"),
    "ivp.integrate's right-hand side: the gradient of the last array halved (layers flow at different rates)",
)
def _ivp_rhs(mp):
    import linnet.ivp as iv

    def make(f):
        def integrate(grad_flat, *a, **k):
            def g(W):
                G = tuple(grad_flat(W))
                return G[:-1] + (0.5 * G[-1],)

            return f(g, *a, **k)

        return integrate

    wrap(mp, iv, "integrate", make)


# ---- part 2: implicit-regularization closed forms (linnet.theory.implicit) --------------------------------------
@fault(
    "q-alpha-argmin-alpha-not-powered",
    "theory",
    ("s20-",),
    "theory.q_alpha_argmin scales by alpha instead of alpha^D (the normalisation slip)",
)
def _qargmin(mp):
    import linnet.theory.implicit as im

    wrap(
        mp, im, "q_alpha_argmin", lambda f: lambda X, y, alpha, depth, **k: f(X, y, alpha ** (1.0 / depth), depth, **k)
    )


@fault(
    "h-depth-exponent",
    "theory",
    ("s20-",),
    "h_D (D >= 3) with exponent -(D-1)/(D-2) instead of -D/(D-2) (H, h, h' kept consistent): h_depth, q_alpha, "
    "q_alpha_argmin",
)
def _hdepth(mp):
    import linnet.theory.implicit as im

    def make(f):
        def HD(D):
            if D == 2:
                return f(D)
            e = (D - 1) / (D - 2)

            def H(s):
                with np.errstate(divide="ignore", invalid="ignore"):
                    v = ((1 - s) ** (1 - e) + (1 + s) ** (1 - e)) / (e - 1)
                return np.where(np.abs(s) < 1, v, np.inf)

            return (
                H,
                lambda s: (1 - s) ** (-e) - (1 + s) ** (-e),
                lambda s: e * ((1 - s) ** (-e - 1) + (1 + s) ** (-e - 1)),
            )

        return HD

    wrap(mp, im, "_HD", make)


@fault(
    "q-alpha-legendre-sign",
    "theory",
    ("s20-",),
    "theory.q_alpha: q_D(z) = z s + H(s) - H(0) (the sign of H in the Legendre transform flipped)",
)
def _qalpha(mp):
    import linnet.theory.implicit as im

    def q_alpha(beta, alpha, depth):
        D, a = im._depth(depth), im._alpha(alpha)
        b = im.check_real(beta, "beta")
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            z = b / a**D
            H = im._HD(D)[0]
            s = im._h_inverse(z, D)
            return a**D * np.sum(z * s + H(s) - H(np.zeros(())), axis=-1)

    replace(mp, im, "q_alpha", q_alpha)


@fault(
    "entropy-argmin-alpha-not-squared",
    "theory",
    ("s16-",),
    "theory.entropy_argmin uses x = alpha exp(A^T nu) (alpha for alpha^2)",
)
def _entropy(mp):
    import linnet.theory.implicit as im

    wrap(mp, im, "entropy_argmin", lambda f: lambda A, y, alpha, **k: f(A, y, float(alpha) ** 0.5, **k))


@fault(
    "min-l1-interpolant-tower-sign",
    "theory",
    ("s20-",),
    "theory.min_l1_interpolant (signed): returns x+ + x- = |beta| (the sign of the negative part dropped)",
)
def _minl1(mp):
    import linnet.theory.implicit as im

    def make(f):
        def min_l1(X, y, *, nonnegative=False):
            out = f(X, y, nonnegative=nonnegative)
            return out if nonnegative else np.abs(out)

        return min_l1

    wrap(mp, im, "min_l1_interpolant", make)


@fault(
    "gfs-sharpness-half-log",
    "theory",
    ("s22-",),
    "theory.gfs_sharpness solves sum log(s + c_i) = log|y| (the 1/2 dropped on the wrong side)",
)
def _gfs(mp):
    import linnet.theory.implicit as im

    wrap(mp, im, "gfs_sharpness", lambda f: lambda w, y: f(w, np.sqrt(abs(float(y)))) * abs(float(y)))


# ---- part 2: low-rank helpers, classification ------------------------------------------------------------------
@fault(
    "effective-rank-energy",
    "theory",
    ("s15-",),
    "theory.effective_rank with p = sigma^2 / sum sigma^2 (the spectral energy, not the singular values)",
)
def _erank(mp):
    import linnet.theory.lowrank as lr

    def make(f):
        def erank(W):
            from linnet._backend import namespace

            return f(namespace(W).matmul(W, W.mT))

        return erank

    wrap(mp, lr, "effective_rank", make)


@fault(
    "logistic-grad-1-over-m",
    "losses",
    ("s17-",),
    "LogisticLoss.grad divides by m under reduction='sum' (the value is the sum, the gradient the mean)",
)
def _logistic_grad(mp):
    from linnet.losses_classification import LogisticLoss

    def make(orig):
        def grad(self, W):
            g = orig(self, W)
            return g / self.m if self.reduction == "sum" else g

        return grad

    wrap(mp, LogisticLoss, "grad", make)


@fault(
    "max-margin-min-norm-fit",
    "losses",
    ("s17-",),
    "max_margin_direction returns the min-norm fit of <w, z_i> = 1, rescaled to min margin 1, not the SVM",
)
def _max_margin(mp):
    import linnet.losses_classification as lc

    def make(f):
        def mmd(X, y, *, normalize=False, tol=1e-10):
            from linnet._backend import from_host, namespace

            Xh, yh = _np(X).astype(np.float64), _np(y).astype(np.float64)
            Z = Xh * yh[None, :]
            w = np.linalg.pinv(Z.T) @ np.ones(Z.shape[1])
            w = w / np.min(Z.T @ w)
            if normalize:
                w = w / np.linalg.norm(w)
            return from_host(w[None, :], namespace(X), X.dtype)

        return mmd

    wrap(mp, lc, "max_margin_direction", make)


# ---- part 2: dense Hessian at global minima (s18) --------------------------------------------------------------
@fault(
    "hessian-cross-layer-blocks-dropped",
    "calculus",
    ("s18-", "s01-"),
    "ln.hessian returns its layer-diagonal blocks only (the cross-layer blocks dropped)",
)
def _hessian_blocks(mp):
    import linnet.calculus as c

    def make(f):
        def g(loss, Ws, *, residual=False):
            H = f(loss, Ws, residual=residual)
            from linnet._backend import namespace

            xp = namespace(H)
            lab = np.concatenate([np.full(W.shape[-1] * W.shape[-2], j) for j, W in enumerate(Ws)])
            return H * xp.asarray((lab[:, None] == lab[None, :]).astype(np.float64), dtype=H.dtype)

        return g

    wrap(mp, c, "hessian", make)


# ---- running -----------------------------------------------------------------------------------------------------
def clear_check_caches() -> None:
    """Drop the results that checks keep between ``measure`` and ``control`` (s16, s20, s22 cache their flows and
    runs per context): a cache filled under one fault must not answer for the clean engine or for another fault."""
    from proofs_check import _core

    for c in _core.all_checks():
        if isinstance(getattr(c, "_cache", None), dict):
            c._cache = {}


@contextlib.contextmanager
def injected(name: str):
    """Context manager: the fault ``name`` active inside the block (outside pytest); the checks' caches are
    cleared on entry and on exit."""
    import pytest

    mp = pytest.MonkeyPatch()
    clear_check_caches()
    try:
        FAULTS[name].inject(mp)
        yield FAULTS[name]
    finally:
        mp.undo()
        clear_check_caches()


def run_checks(ids=None, *, seed: int = 0, dtype: str = "float64") -> dict:
    """``{check id: ok}`` of the main job's checks (all, or those whose id starts with one of ``ids``)."""
    from proofs_check import _core

    ctx = _core.Context(seed=seed, dtype=dtype)
    out = {}
    for c in _core.all_checks():
        if ids is None or c.id.startswith(tuple(ids)):
            out[c.id] = _core.run_check(c, ctx).ok
    return out


def score(names=None, *, only_named: bool = False, stream=sys.stderr) -> dict:
    """Run each fault (all by default); ``{name: (caught, caught_by_named, failing check ids)}``."""
    res = {}
    for name in names or list(FAULTS):
        f = FAULTS[name]
        with injected(name):
            oks = run_checks(f.checks if only_named else None)
        failing = sorted(k for k, ok in oks.items() if not ok)
        named = [k for k in failing if k.startswith(f.checks)]
        res[name] = (bool(failing), bool(named), failing)
        if stream is not None:
            print(f"{name:40s} {'caught' if named else 'MISSED':7s} {', '.join(failing)}", file=stream, flush=True)
    return res


if __name__ == "__main__":  # python -m tests.faults [--named] [FAULT ...]: all faults unless names are given
    only = "--named" in sys.argv[1:]
    chosen = [a for a in sys.argv[1:] if a != "--named"]
    unknown = [a for a in chosen if a not in FAULTS]
    if unknown:
        sys.exit(f"unknown fault(s) {unknown}; registered: {', '.join(FAULTS)}")
    r = score(chosen or None, only_named=only)
    n = sum(v[1] for v in r.values())
    print(f"faults caught by a named check: {n}/{len(r)}")
