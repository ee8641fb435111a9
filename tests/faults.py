"""A registry of realistic engine faults, injected one at a time by monkeypatching (no file is edited).

Each fault is one small function ``fault(mp)`` that replaces one engine attribute through ``mp`` (a
``pytest.MonkeyPatch``) and is registered with the ids of the theorem checks whose *subject* the fault touches
(the checks that must catch it, decided from what the fault breaks, not from what was measured). The seams are
documented engine attributes: public functions and methods of ``linnet.product``, ``losses``, ``calculus``,
``theory.*``, ``landscape``, ``init`` and the trainers, plus a few private hooks of the fast paths and the
trainers' drivers (marked ``fast path`` in ``area``; retarget these when those internals move).

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
    """``replace`` with ``make(original)``."""
    replace(mp, module, attr, make(getattr(module, attr)))


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

    orig = SquaredLoss.value

    def value(self, W):
        v = orig(self, W)
        return 2 * v if self.Sxx is None and self.Phi is not None else v

    mp.setattr(SquaredLoss, "value", value)


@fault(
    "whitened-value-x2-kernel",
    "fast path",
    ("s09-", "s13-", "s10-", "s03-"),
    "the NumPy kernel reports twice the whitened squared loss",
)
def _whitened_value_kernel(mp):
    import linnet._fastpaths as fp

    def make(f):
        def g(loss_fn, *a, **k):
            r = f(loss_fn, *a, **k)
            if r is None or loss_fn.Sxx is not None or loss_fn.Phi is None:
                return r
            return (2 * r[0],) + tuple(r[1:])

        return g

    wrap(mp, fp, "value_and_grads", make)


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

    orig = SquaredLoss.value

    def value(self, W):
        v = orig(self, W)
        return 2 * v - self.c0 if self.Sxx is not None and self.Phi is not None else v

    mp.setattr(SquaredLoss, "value", value)


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

    orig = SquaredLoss.subsample

    def subsample(self, idx):
        out = orig(self, idx)
        b, m = out.data[0].shape[-1], self.data[0].shape[-1]
        return SquaredLoss(out.Sxx * b / m, out.Syx * b / m, None, None, out.tr_yy * b / m, data=out.data)

    mp.setattr(SquaredLoss, "subsample", subsample)


@fault("sgd-same-minibatch", "trainers", ("s11-",), "sgd draws the same minibatch (the first b samples) every step")
def _sgd_same(mp):
    import linnet.train.stochastic as st

    class FixedRng:
        def __init__(self, seed):
            self.rng = np.random.default_rng(0)

        def choice(self, m, size, replace=False):
            return np.arange(size)

    mp.setattr(st, "host_rng", FixedRng)


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

    orig = d._NumpyBuffers._update_range

    def upd(self, lo, hi, W, V, Mom, Wn, Mn, sa, beta):
        saved = [w[lo:hi].copy() for w in W]
        orig(self, lo, hi, W, V, Mom, Wn, Mn, sa, beta)
        if beta:
            for j in range(len(W)):
                s = sa[j] if isinstance(sa[j], float) else sa[j][lo:hi]
                Wn[j][lo:hi] = saved[j] - s * V[j][lo:hi]

    mp.setattr(d._NumpyBuffers, "_update_range", upd)


@fault(
    "flow-error-norm-one-layer",
    "fast path",
    ("s04-", "s02-", "s10-"),
    "gradient_flow's step control measures the error of layer 1 only",
)
def _flow_err(mp):
    import linnet.train._stages as st

    orig = st._NumpyStages.error_sq

    def err(self, j, v, vn, atol, rtol, tiny):
        e = orig(self, j, v, vn, atol, rtol, tiny)
        return e if j == 0 else e * 0

    mp.setattr(st._NumpyStages, "error_sq", err)


@fault("flow-loose-tolerance", "trainers", ("s04-", "s02-", "s10-"), "gradient_flow ignores rtol/atol (uses 1e-3)")
def _flow_tol(mp):
    import linnet.train.flow as fl

    def make(f):
        def g(*a, **k):
            k["rtol"], k["atol"] = 1e-3, 1e-3
            return f(*a, **k)

        return g

    wrap(mp, fl, "gradient_flow", make)


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

    def hvp(self, Vs):
        saved = self.StG
        self.StG = [None if x is None else x * 0 for x in saved]
        try:
            return orig(self, Vs)
        finally:
            self.StG = saved

    orig = fp.LeanHVP.hvp
    mp.setattr(fp.LeanHVP, "hvp", hvp)


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


# ---- running -----------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def injected(name: str):
    """Context manager: the fault ``name`` active inside the block (outside pytest)."""
    import pytest

    mp = pytest.MonkeyPatch()
    try:
        FAULTS[name].inject(mp)
        yield FAULTS[name]
    finally:
        mp.undo()


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
