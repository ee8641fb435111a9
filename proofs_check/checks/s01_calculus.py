r"""Closed-form calculus of the deep linear loss (THEOREMS.md §1).

**Statement.** For :math:`L(W_1..W_N) = \frac1{2m}\|W_N\cdots W_1X - Y\|_F^2` and :math:`G = \nabla\ell(W_{1:N})
= (W_{1:N}X - Y)X^\top/m`, with no hypothesis (identities):

- gradient :math:`\partial L/\partial W_j = W_{j+1:N}^\top\,G\,W_{1:j-1}^\top`;
- Hessian-vector product :math:`(HV)_j = W_{j+1:N}^\top(\delta W\Lambda_{xx})W_{1:j-1}^\top + \sum_{k>j}(W_{k+1:N}
  V_kW_{j+1:k-1})^\top G\,W_{1:j-1}^\top + \sum_{k<j}W_{j+1:N}^\top G\,(W_{k+1:j-1}V_kW_{1:k-1})^\top`,
  :math:`\delta W = \sum_k W_{k+1:N}V_kW_{1:k-1}` (the first term is the Gauss–Newton part, the others vanish
  where :math:`G = 0`);
- the dense Hessian has the HVPs as columns and is symmetric;
- the centred (population) form :math:`\tfrac12\|(W-\Phi)\Lambda_{xx}^{1/2}\|_F^2 + c_0` equals the data form.

**Check.** The engine's ``ln.grad``, ``ln.hvp``, ``ln.hessian``, ``ln.loss`` in the context's backend and dtype
against central finite differences (:math:`h = 10^{-6}`) of an independent host reference written from the
definition in float64, on random depths :math:`N\in\{1..5\}`, widths :math:`d_j\in\{1..6\}`, samples
:math:`m\in\{1..40\}`; and against exact sympy derivatives on a tiny net with rational entries.

**Controls.** (a) A deliberately wrong gradient (:math:`W_{1:j-1}` without the transpose; square layers so that
it runs) fails the finite-difference test by orders of magnitude. (b) The Gauss–Newton-only HVP fails it away
from a critical point (it passes at an interpolating global minimum, which is part of the measurement).

**Source.** Gradient and Hessian quadratic form: N. Cohen, "Foundations of Deep Learning", Lecture 3 (third-party
transcription), eqs. (2)–(3); Arora, Cohen, Golowich & Hu, arXiv:1810.02281. The HVP expansion is derived for
THEOREMS.md §1.

**Status.** Gradient and quadratic form CONFIRMED (secondary source); HVP DERIVED+VERIFIED: MIXED.
"""

from __future__ import annotations

import numpy as np

import linnet as ln
from linnet import product as _p

from .._core import EPS64, Check, Context, Measurement, fd_bound, host, register, roundoff_bound

FD_STEP = 1e-6  # THEOREMS.md §1: central differences with h = 1e-6, in float64 on the host


def fd_tol(ctx: Context, tol64: float) -> float:
    """A finite-difference tolerance: THEOREMS' float64 figure, plus the engine's round-off in ``ctx.dtype``.

    The finite differences run in float64 on the host, so the float64 figure holds for them; in float32 the
    engine's own round-off (observed below ``10 eps`` relative on these sizes; ``1e3 eps`` allowed) is added.
    """
    return tol64 + 1e3 * ctx.eps


def roundoff_tol(ctx: Context, tol64: float) -> float:
    """A round-off tolerance: THEOREMS' float64 figure scaled by ``eps(dtype) / eps(float64)``."""
    return tol64 * ctx.eps / EPS64


def rounded(ctx: Context, a: np.ndarray) -> np.ndarray:
    """``a`` rounded to ``ctx.dtype`` and back, so the host reference sees the very numbers the engine sees."""
    return np.asarray(a, dtype=ctx.dtype).astype(np.float64)


# ---- host reference, from the definition (float64 NumPy, loops) -------------------------------------------------
def ref_partial(Ws, i: int, j: int, dim: int) -> np.ndarray:
    """:math:`W_{i:j} = W_j \\cdots W_i` (1-based), the identity of size ``dim`` when ``i > j``."""
    out = np.eye(dim)
    for k in range(i, j + 1):
        out = Ws[k - 1] @ out
    return out


def ref_loss(Ws, X, Y) -> float:
    E = ref_partial(Ws, 1, len(Ws), X.shape[0]) @ X - Y
    return 0.5 * float(np.sum(E * E)) / X.shape[1]


def ref_grad(Ws, X, Y) -> list:
    r""":math:`W_{j+1:N}^\top G W_{1:j-1}^\top` with :math:`G = (W_{1:N}X - Y)X^\top/m`."""
    N, d0, m = len(Ws), X.shape[0], X.shape[1]
    G = (ref_partial(Ws, 1, N, d0) @ X - Y) @ X.T / m
    out = []
    for j in range(1, N + 1):
        S = ref_partial(Ws, j + 1, N, Ws[j - 1].shape[0])
        P = ref_partial(Ws, 1, j - 1, d0)
        out.append(S.T @ G @ P.T)
    return out


def _axpy(Ws, h, Ds):
    return [W + h * D for W, D in zip(Ws, Ds)]


def _flat(Ws) -> np.ndarray:
    return np.concatenate([np.ravel(W) for W in Ws])


# ---- problems --------------------------------------------------------------------------------------------------
def random_problem(rng: np.random.Generator, *, square: int | None = None, interpolating: bool = False):
    """Random widths/data/weights on the host (float64).

    Entries are Gaussian with standard deviation :math:`0.7/\\sqrt{d_{j-1}}`, so that every layer, and the
    end-to-end matrix, has norm of order 1 (THEOREMS §1: "scaled by 0.7, keeps the product of order 1").
    """
    if square:
        N = 3
        widths = (square,) * (N + 1)
    else:
        N = int(rng.integers(1, 6))
        widths = tuple(int(w) for w in rng.integers(1, 7, size=N + 1))
    m = int(rng.integers(1, 41)) if not square else 10
    Ws = [0.7 * rng.standard_normal((widths[j + 1], widths[j])) / np.sqrt(widths[j]) for j in range(N)]
    X = rng.standard_normal((widths[0], m))
    Y = ref_partial(Ws, 1, N, widths[0]) @ X if interpolating else rng.standard_normal((widths[-1], m))
    return widths, Ws, X, Y


def to_engine(ctx: Context, Ws, X, Y):
    """Round the host problem to ``ctx.dtype`` and move it to the backend; returns host copies and engine arrays."""
    Ws = [rounded(ctx, W) for W in Ws]
    X, Y = rounded(ctx, X), rounded(ctx, Y)
    loss = ln.SquaredLoss.from_data(ctx.asarray(X), ctx.asarray(Y))
    return Ws, X, Y, loss, tuple(ctx.asarray(W) for W in Ws)


# ---- the individual assertions ---------------------------------------------------------------------------------
def grad_fd_error(ctx, Ws, X, Y, eWs, loss, rng, grad_fn=None) -> float:
    r""":math:`|\mathrm{FD} - \langle g, D\rangle| / \max(1, |\mathrm{FD}|)` along a random direction ``D``."""
    g = [host(a) for a in (grad_fn or ln.grad)(loss, eWs)]
    D = [rng.standard_normal(W.shape) for W in Ws]
    fd = (ref_loss(_axpy(Ws, FD_STEP, D), X, Y) - ref_loss(_axpy(Ws, -FD_STEP, D), X, Y)) / (2 * FD_STEP)
    exact = sum(float(np.sum(a * b)) for a, b in zip(g, D))
    return abs(fd - exact) / max(1.0, abs(fd))


def hvp_fd_error(ctx, Ws, X, Y, eWs, loss, rng, hvp_fn=None) -> float:
    r""":math:`\max|HV - \mathrm{FD}| / \max(1, \max|HV|)`, FD of the reference gradient along ``V``."""
    V = [rounded(ctx, rng.standard_normal(W.shape)) for W in Ws]
    hv = _flat([host(a) for a in (hvp_fn or ln.hvp)(loss, eWs, tuple(ctx.asarray(v) for v in V))])
    gp, gm = ref_grad(_axpy(Ws, FD_STEP, V), X, Y), ref_grad(_axpy(Ws, -FD_STEP, V), X, Y)
    fd = (_flat(gp) - _flat(gm)) / (2 * FD_STEP)
    return float(np.max(np.abs(hv - fd)) / max(1.0, float(np.max(np.abs(hv)))))


def lp_errors(ctx, rng, p: float = 4.0) -> tuple[float, float, float]:
    r"""The :math:`L^p` loss of the engine (``ln.LpLoss``) on a random problem: relative value error against
    :math:`\sum|R|^p/(pm)` on the host, and gradient and HVP against central differences of the host value and of
    the host gradient :math:`\mathrm{sign}(R)|R|^{p-1}X^\top/m` pulled back through the product (both float64)."""
    _, Ws, X, Y = random_problem(rng)
    Ws, X, Y = [rounded(ctx, W) for W in Ws], rounded(ctx, X), rounded(ctx, Y)
    m, N = X.shape[1], len(Ws)
    loss = ln.LpLoss(ctx.asarray(X), ctx.asarray(Y), p=p)
    eWs = tuple(ctx.asarray(W) for W in Ws)

    def value(Ws_):
        return float(np.sum(np.abs(ref_partial(Ws_, 1, N, X.shape[0]) @ X - Y) ** p)) / (p * m)

    def grad(Ws_):
        We = ref_partial(Ws_, 1, N, X.shape[0])
        R = We @ X - Y
        G = (np.sign(R) * np.abs(R) ** (p - 1)) @ X.T / m
        d = [X.shape[0]] + [W.shape[0] for W in Ws_]
        return [ref_partial(Ws_, j + 2, N, d[j + 1]).T @ G @ ref_partial(Ws_, 1, j, d[0]).T for j in range(N)]

    v = value(Ws)
    val_err = abs(float(host(ln.loss(loss, eWs))) - v) / max(v, 1e-300)
    D = [rng.standard_normal(W.shape) for W in Ws]
    fd = (value(_axpy(Ws, FD_STEP, D)) - value(_axpy(Ws, -FD_STEP, D))) / (2 * FD_STEP)
    g = [host(a) for a in ln.grad(loss, eWs)]
    exact = sum(float(np.sum(a * b)) for a, b in zip(g, D))
    grad_err = abs(fd - exact) / max(1.0, abs(fd))
    V = [rounded(ctx, rng.standard_normal(W.shape)) for W in Ws]
    hv = _flat([host(a) for a in ln.hvp(loss, eWs, tuple(ctx.asarray(x) for x in V))])
    fdh = (_flat(grad(_axpy(Ws, FD_STEP, V))) - _flat(grad(_axpy(Ws, -FD_STEP, V)))) / (2 * FD_STEP)
    hvp_err = float(np.max(np.abs(hv - fdh)) / max(1.0, float(np.max(np.abs(hv)))))
    return val_err, grad_err, hvp_err


def hessian_fd_error(ctx, Ws, X, Y, eWs, loss) -> float:
    """Dense ``ln.hessian`` against the FD Hessian (columns: FD of the reference gradient along unit vectors)."""
    H = host(ln.hessian(loss, eWs))
    P = H.shape[-1]
    cols = []
    shapes = [W.shape for W in Ws]
    for k in range(P):
        e = np.zeros(P)
        e[k] = 1.0
        E, i = [], 0
        for s in shapes:
            n = s[0] * s[1]
            E.append(e[i : i + n].reshape(s))
            i += n
        cols.append(
            (_flat(ref_grad(_axpy(Ws, FD_STEP, E), X, Y)) - _flat(ref_grad(_axpy(Ws, -FD_STEP, E), X, Y)))
            / (2 * FD_STEP)
        )
    Hfd = np.stack(cols, axis=1)
    return float(np.max(np.abs(H - Hfd)) / max(1.0, float(np.max(np.abs(H)))))


def hvp_symmetry_error(ctx, Ws, eWs, loss, rng) -> float:
    r""":math:`|\langle U,HV\rangle - \langle V,HU\rangle| / (\|U\|\|V\|\max(1, \|HV\|+\|HU\|))`."""
    U = [rounded(ctx, rng.standard_normal(W.shape)) for W in Ws]
    V = [rounded(ctx, rng.standard_normal(W.shape)) for W in Ws]
    hu = _flat([host(a) for a in ln.hvp(loss, eWs, tuple(ctx.asarray(u) for u in U))])
    hv = _flat([host(a) for a in ln.hvp(loss, eWs, tuple(ctx.asarray(v) for v in V))])
    u, v = _flat(U), _flat(V)
    den = np.linalg.norm(u) * np.linalg.norm(v) * max(1.0, np.linalg.norm(hv) + np.linalg.norm(hu))
    return float(abs(u @ hv - v @ hu) / den)


def value_error(ctx, Ws, X, Y, eWs, loss) -> float:
    """Engine loss (centred form, and the population constructor) against the data definition, relative."""
    ref = ref_loss(Ws, X, Y)
    m = X.shape[1]
    pop = ln.SquaredLoss.population(ctx.asarray(X @ X.T / m), ctx.asarray(Y @ X.T / m), ctx.asarray(Y @ Y.T / m))
    errs = [abs(float(host(ln.loss(lf, eWs))) - ref) / max(abs(ref), 1e-300) for lf in (loss, pop)]
    return max(errs)


def wrong_grad(loss, Ws):
    r"""A deliberately wrong gradient: :math:`W_{j+1:N}^\top G\,W_{1:j-1}` (prefix not transposed)."""
    xp = ln._backend.namespace(*Ws)
    parts = _p.partials(tuple(Ws), xp)
    G = loss.grad(parts.prefix[-1])
    out = []
    for j in range(1, len(Ws) + 1):
        S, P = parts.suffix[j], parts.prefix[j - 1]
        left = G if S is None else xp.matmul(S.mT, G)
        out.append(left if P is None else xp.matmul(left, P))
    return tuple(out)


def sympy_error(ctx: Context) -> float | None:
    """Max relative error of ``ln.grad`` and ``ln.hessian`` against exact sympy derivatives (``None`` without sympy).

    Tiny net: widths (2, 2, 1, 2), m = 3, entries k/4 with small integers k (exact in float32 and float64).
    """
    try:
        import sympy as sp
    except ImportError:  # a dependency; tolerated missing only in stripped-down environments
        return None
    rng = ctx.rng("s01-sympy")
    widths, m = (2, 2, 1, 2), 3
    shapes = [(widths[j + 1], widths[j]) for j in range(len(widths) - 1)]
    syms = [sp.Matrix(r, c, lambda i, k, j=j: sp.Symbol(f"w{j}_{i}{k}")) for j, (r, c) in enumerate(shapes)]
    Wv = [rng.integers(-4, 5, size=s) for s in shapes]
    Xv, Yv = rng.integers(-3, 4, size=(widths[0], m)), rng.integers(-3, 4, size=(widths[-1], m))
    E = syms[2] * syms[1] * syms[0] * sp.Matrix(Xv) - sp.Matrix(Yv)
    L = sum(e**2 for e in E) / (2 * m)
    flat = [s for M in syms for s in M]  # row-major per layer, layers 1..N: the engine's parameter order
    point = {s: sp.Rational(int(v), 4) for s, v in zip(flat, np.concatenate([w.ravel() for w in Wv]))}
    g_exact = np.array([float(sp.diff(L, s).subs(point)) for s in flat])
    H_exact = np.array([[float(sp.diff(L, a, b).subs(point)) for b in flat] for a in flat])
    eWs = tuple(ctx.asarray(w / 4.0) for w in Wv)
    loss = ln.SquaredLoss.from_data(ctx.asarray(Xv.astype(float)), ctx.asarray(Yv.astype(float)))
    g = _flat([host(a) for a in ln.grad(loss, eWs)])
    H = host(ln.hessian(loss, eWs))
    return max(
        float(np.linalg.norm(g - g_exact) / max(np.linalg.norm(g_exact), 1e-300)),
        float(np.linalg.norm(H - H_exact) / max(np.linalg.norm(H_exact), 1e-300)),
    )


@register
class CalculusCheck(Check):
    id = "s01-calculus"
    title = "Closed-form gradient, HVP and Hessian of the deep linear loss"
    claim = (
        "ln.grad / ln.hvp / ln.hessian equal central FD (≤ {bound:gradient vs FD}) and sympy "
        "(≤ {bound:grad & Hessian vs sympy}), random shapes, N ≤ 5"
    )
    source = "Cohen FODL Lecture 3 eqs. (2)-(3) (transcription); ACGH arXiv:1810.02281; THEOREMS.md §1"
    status = "MIXED"
    control_description = (
        "(a) a wrong gradient W_{j+1:N}^T G W_{1:j-1} (prefix not transposed, square layers) and (b) the "
        "Gauss–Newton-only HVP at a non-critical point must both fail the same finite-difference test"
    )

    # THEOREMS §1's float64 figures are ceilings (1e-6 for finite differences, 1e-10 / 1e-12 for identities); the
    # bounds applied derive from the dtype and the FD step: _core.fd_bound (2.2e-8 in float64, 1.2e-5 in float32)
    # and _core.roundoff_bound (2.2e-13 / 1.2e-4), each two decades over its error scale.
    HESSIAN_MAX_PARAMS = 60  # dense FD Hessian only on the smaller shapes (2P gradient evaluations)

    def measure(self, ctx: Context) -> Measurement:
        rng = ctx.rng("s01-measure")
        n_cases = ctx.pick(12, 400)
        worst = {"grad": 0.0, "hvp": 0.0, "hessian": 0.0, "symmetry": 0.0, "value": 0.0}
        n_hess = 0
        for _ in range(n_cases):
            Ws, X, Y, loss, eWs = to_engine(ctx, *random_problem(rng)[1:])
            worst["grad"] = max(worst["grad"], grad_fd_error(ctx, Ws, X, Y, eWs, loss, rng))
            worst["hvp"] = max(worst["hvp"], hvp_fd_error(ctx, Ws, X, Y, eWs, loss, rng))
            worst["symmetry"] = max(worst["symmetry"], hvp_symmetry_error(ctx, Ws, eWs, loss, rng))
            worst["value"] = max(worst["value"], value_error(ctx, Ws, X, Y, eWs, loss))
            if sum(W.size for W in Ws) <= self.HESSIAN_MAX_PARAMS:
                worst["hessian"] = max(worst["hessian"], hessian_fd_error(ctx, Ws, X, Y, eWs, loss))
                n_hess += 1
        # Gauss–Newton-only HVP at an interpolating global minimum (G = 0): must pass the same FD test
        gn_at_min = 0.0
        for _ in range(ctx.pick(3, 50)):
            Ws, X, Y, loss, eWs = to_engine(ctx, *random_problem(rng, interpolating=True)[1:])
            gn_at_min = max(gn_at_min, hvp_fd_error(ctx, Ws, X, Y, eWs, loss, rng, hvp_fn=ln.gauss_newton_hvp))
        fd, exact = fd_bound(FD_STEP, ctx.eps), roundoff_bound(ctx.eps)  # tolerances from the dtype (_core)
        parts = {
            "gradient vs FD": Measurement.compare(
                worst["grad"], fd, note=f"|FD-<g,D>|/max(1,|FD|), worst of {n_cases} shapes"
            ),
            "HVP vs FD of gradient": Measurement.compare(worst["hvp"], fd, note="max|HV-FD|/max(1,max|HV|)"),
            "dense Hessian vs FD": Measurement.compare(
                worst["hessian"], fd, note=f"{n_hess} shapes with P <= {self.HESSIAN_MAX_PARAMS}"
            ),
            "HVP symmetry": Measurement.compare(worst["symmetry"], exact, note="|<U,HV>-<V,HU>| relative"),
            "loss value (centred & population forms)": Measurement.compare(
                worst["value"], exact, note="vs ||WX-Y||^2/(2m), relative"
            ),
            "GN-only HVP at interpolating minimum": Measurement.compare(
                gn_at_min, fd, note="G = 0: the Gauss–Newton part is the whole HVP"
            ),
        }
        lp = np.max([lp_errors(ctx, rng) for _ in range(ctx.pick(6, 100))], axis=0)
        parts["Lp loss (p=4): value vs host"] = Measurement.compare(lp[0], exact, note="sum|WX-Y|^p/(pm), relative")
        parts["Lp loss (p=4): gradient and HVP vs FD"] = Measurement.compare(
            max(lp[1], lp[2]), fd, note="FD of the host value and of the host gradient"
        )
        # the eigensolver's lambda_max (exact HVPs, lean operator for the squared loss) against the dense Hessian,
        # at non-critical points of square and rectangular nets (where the gradient terms of the HVP matter)
        rng_top = ctx.rng("s01-top")
        top_err = 0.0
        for k in range(ctx.pick(6, 60)):
            _, Wt, Xt, Yt = random_problem(rng_top, square=3 if k % 2 == 0 else None)
            Wt, Xt, Yt, loss_t, eWt = to_engine(ctx, Wt, Xt, Yt)
            if sum(W.size for W in Wt) <= 2:
                continue
            ev = np.linalg.eigvalsh(host(ln.hessian(loss_t, eWt)))
            top = float(host(ln.landscape.top_hessian_eigenvalue(loss_t, eWt).value))
            top_err = max(top_err, abs(top - ev[-1]) / max(float(np.max(np.abs(ev))), 1e-300))
        parts["top_hessian_eigenvalue vs dense lambda_max"] = Measurement.compare(
            top_err,
            max(1e-9, 1e3 * ctx.eps),
            note="|top - eigvalsh(ln.hessian)[-1]| / ||H||, random non-critical points",
        )
        s = sympy_error(ctx)
        if s is not None:
            parts["grad & Hessian vs sympy"] = Measurement.compare(
                s, exact, note="widths (2,2,1,2), m=3, rational entries"
            )
        return Measurement.all_of(parts, note="worst case over random depths 1-5, widths 1-6, m 1-40")

    def control(self, ctx: Context) -> Measurement:
        rng = ctx.rng("s01-control")
        wrong, gn = [], []
        for _ in range(ctx.pick(4, 50)):
            Ws, X, Y, loss, eWs = to_engine(ctx, *random_problem(rng, square=3)[1:])
            wrong.append(grad_fd_error(ctx, Ws, X, Y, eWs, loss, rng, grad_fn=wrong_grad))
            gn.append(hvp_fd_error(ctx, Ws, X, Y, eWs, loss, rng, hvp_fn=ln.gauss_newton_hvp))
        # the smallest error over the cases is the control's figure: every case must fail
        parts = {
            "wrong gradient (prefix not transposed) vs FD": Measurement.compare(
                min(wrong), fd_bound(FD_STEP, ctx.eps), note="square layers (3,3,3,3), m=10; best case"
            ),
            "GN-only HVP at non-critical point vs FD": Measurement.compare(
                min(gn), fd_bound(FD_STEP, ctx.eps), note="random data, G != 0; best case"
            ),
        }
        return Measurement.any_of(parts, note="each broken formula must fail the FD test (figure: best case)")
