r"""Implicit regularization closed forms (THEOREMS2.md §16a, §20, §22), beside the simulations that test them.

- :func:`q_alpha`, :func:`q_alpha_argmin`: the implicit regulariser :math:`Q^D_\alpha` of diagonal linear networks
  and the interpolant that gradient flow reaches (Woodworth, Gunasekar, Lee, Moroshko, Savarese, Golan, Soudry &
  Srebro, `Kernel and Rich Regimes in Overparametrized Models <https://arxiv.org/abs/2002.09277>`_, COLT 2020;
  the form of Thm 1 and its depth-:math:`D` analogue recalled, exact constants UNCONFIRMED; the formulas here
  are DERIVED+VERIFIED in §20).
- :func:`entropy_argmin`: the finite-:math:`\alpha` limit of the symmetric factorization with commuting
  measurements (Gunasekar et al., `arXiv:1705.09280 <https://arxiv.org/abs/1705.09280>`_; the entropy form is
  DERIVED+VERIFIED in §16a).
- :func:`min_l1_interpolant`, :func:`min_l2_interpolant`: the rich and kernel limits.
- :func:`gfs_sharpness`: the sharpness of the gradient-flow solution of a scalar network (§22, DERIVED+VERIFIED;
  Kreisler, Nacson, Soudry & Carmon arXiv:2305.13064 define it, paper not read).

These are small dense host computations (Newton on a convex dual, an LP, a bisection), so they run in float64
NumPy/SciPy on the host, like the other one-off constructions of :mod:`linnet.theory`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validate import check_bool, check_opt_positive, check_real

__all__ = [
    "h_depth",
    "q_alpha",
    "q_alpha_argmin",
    "entropy_argmin",
    "min_l1_interpolant",
    "min_l2_interpolant",
    "gfs_sharpness",
]


def _depth(depth: Any) -> int:
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 2:
        raise ValueError(f"`depth` must be an int >= 2, got {depth!r}")
    return int(depth)


def _alpha(alpha: Any) -> float:
    try:
        a = float(alpha)
    except (TypeError, ValueError):
        raise ValueError(f"`alpha` must be a real number > 0, got {alpha!r}") from None
    if not np.isfinite(a) or a <= 0:
        raise ValueError(f"`alpha` must be finite and > 0, got {alpha!r}")
    return a


def _vector_data(X: Any, y: Any, xname: str, yname: str):
    """``X (m, d)`` and ``y (m,)`` as finite float64 host arrays (``ValueError`` naming the argument otherwise)."""
    X, y = check_real(X, xname), check_real(y, yname)
    if X.ndim != 2:
        raise ValueError(f"`{xname}` must be a matrix (m, d), got shape {X.shape}")
    if y.shape != (X.shape[0],):
        raise ValueError(f"`{yname}` must have shape (m,) = ({X.shape[0]},) (the rows of `{xname}`), got {y.shape}")
    return X, y


def _full_row_rank(X: np.ndarray, name: str) -> None:
    """The dual Newton systems :math:`X D X^\top` (``D > 0``) are invertible iff ``X`` has full row rank."""
    if X.shape[0] > X.shape[1] or np.linalg.matrix_rank(X) < X.shape[0]:
        raise ValueError(
            f"`{name}` must have full row rank (independent rows, m <= d): got shape {X.shape} "
            f"and rank {np.linalg.matrix_rank(X)}"
        )


def _finite(out: np.ndarray, what: str) -> np.ndarray:
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{what}: the result is not finite in float64 (the inputs are out of its range)")
    return out


def _HD(D: int):
    """``(H, h, h')`` of the dual: :math:`H' = h_D`, on :math:`\\mathbb R` (D = 2) or :math:`(-1, 1)` (D >= 3)."""
    if D == 2:
        return (lambda s: 2 * np.cosh(s)), (lambda s: 2 * np.sinh(s)), (lambda s: 2 * np.cosh(s))
    e = D / (D - 2)

    def H(s):
        with np.errstate(divide="ignore", invalid="ignore"):
            v = (D - 2) / 2 * ((1 - s) ** (-2 / (D - 2)) + (1 + s) ** (-2 / (D - 2)))
        return np.where(np.abs(s) < 1, v, np.inf)

    def h(s):
        return (1 - s) ** (-e) - (1 + s) ** (-e)

    def dh(s):
        return e * ((1 - s) ** (-e - 1) + (1 + s) ** (-e - 1))

    return H, h, dh


def h_depth(s: Any, depth: int) -> np.ndarray:
    r""":math:`h_2(s) = 2\sinh s`; :math:`h_D(s) = (1-s)^{-D/(D-2)} - (1+s)^{-D/(D-2)}` on :math:`(-1,1)`, :math:`D\ge3`."""
    D = _depth(depth)
    s = check_real(s, "s")
    if D >= 3 and np.any(np.abs(s) >= 1):
        raise ValueError(f"`s` must lie in (-1, 1) for depth {D}, got max |s| = {np.abs(s).max()}")
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        out = _HD(D)[1](s)
    return _finite(out, f"`s` (max |s| = {np.abs(s).max():g}) with `depth` = {D}")


def _h_inverse(z: np.ndarray, D: int) -> np.ndarray:
    if D == 2:
        return np.arcsinh(z / 2)
    h = _HD(D)[1]
    lo, hi = -np.ones_like(z), np.ones_like(z)
    for _ in range(200):  # bisection to the last bit (h increasing on (-1, 1))
        mid = 0.5 * (lo + hi)
        up = h(mid) < z
        lo, hi = np.where(up, mid, lo), np.where(up, hi, mid)
    return 0.5 * (lo + hi)


def q_alpha(beta: Any, alpha: float, depth: int) -> np.ndarray:
    r""":math:`Q^D_\alpha(\beta) = \alpha^D\sum_i q_D(\beta_i/\alpha^D)`, :math:`q_D = \int_0^z h_D^{-1}` (last axis summed).

    :math:`q_D(z) = z\,s - H_D(s) + H_D(0)` with :math:`s = h_D^{-1}(z)` (Legendre); for :math:`D=2`,
    :math:`q_2(z) = 2 - \sqrt{4+z^2} + z\operatorname{arcsinh}(z/2)`. Status: DERIVED+VERIFIED (THEOREMS2 §20).

    Examples
    --------
    >>> import numpy as np, linnet as ln
    >>> float(ln.theory.q_alpha(np.array([0.0, 0.0]), 0.5, 2))
    0.0
    """
    D, a = _depth(depth), _alpha(alpha)
    b = check_real(beta, "beta")
    if b.ndim < 1:
        raise ValueError(f"`beta` must be an array (..., d) (the last axis is summed), got a scalar {beta!r}")
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        z = b / a**D
        H = _HD(D)[0]
        s = _h_inverse(z, D)
        out = a**D * np.sum(z * s - H(s) + H(np.zeros(())), axis=-1)
    return _finite(out, f"`beta` / `alpha`^D (`alpha` = {a:g}, `depth` = {D})")


def _dual_newton(X, y, scale, H, h, dh, *, tol, max_iter=500, names="`X`, `y`"):
    """Minimise :math:`\\phi(\\nu) = \\text{scale}\\sum_i H((X^\\top\\nu)_i) - y^\\top\\nu`; return ``scale h(X^T nu)``."""
    m = X.shape[0]
    nu = np.zeros(m)

    def phi(v):
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return scale * np.sum(H(X.T @ v)) - y @ v

    def resid_norm(v):
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return np.linalg.norm(X @ (scale * h(X.T @ v)) - y)

    f = phi(nu)
    for _ in range(max_iter):
        s = X.T @ nu
        beta = scale * h(s)
        g = X @ beta - y
        gn = np.linalg.norm(g)
        d = scale * dh(s)
        # round-off floor: s carries ~eps |s| error, which moves beta by scale h'(s) eps |s|
        floor = (
            64
            * np.finfo(np.float64).eps
            * (np.linalg.norm(y) + np.linalg.norm(X, 2) * np.linalg.norm(d * (np.abs(s) + 1)))
        )
        if gn <= max(tol, floor):
            return beta
        step = np.linalg.solve((X * d) @ X.T, g)
        t = 1.0
        while t > 1e-30:  # Armijo on the dual; near the end (changes below round-off) on the residual norm
            cand = nu - t * step
            fc = phi(cand)
            if np.isfinite(fc) and (fc <= f - 1e-4 * t * (g @ step) or resid_norm(cand) <= (1 - 1e-4 * t) * gn):
                break
            t *= 0.5
        else:
            raise ValueError(
                f"{names}: dual Newton stalled at ||X beta - y|| = {gn:g} (tolerance {tol:g}); "
                "the data or the scale are out of the range this solver resolves in float64"
            )
        nu, f = cand, fc
    raise ValueError(f"{names}: dual Newton did not reach ||X beta - y|| <= {tol:g} in {max_iter} iterations")


def q_alpha_argmin(X: Any, y: Any, alpha: float, depth: int, *, tol: float | None = None) -> np.ndarray:
    r""":math:`\arg\min\{Q^D_\alpha(\beta) : X\beta = y\}` (``X`` is ``(m, d)``, rows are samples, as in the paper).

    The KKT condition is :math:`\beta = \alpha^D h_D(X^\top\nu)`; :math:`\nu` minimises the convex dual
    :math:`\alpha^D\sum_iH_D((X^\top\nu)_i) - y^\top\nu` (:math:`H_D' = h_D`), solved by damped Newton from 0.
    This is where gradient flow on :math:`\beta = w_+^D - w_-^D` from :math:`w_\pm(0) = \alpha\mathbf 1` ends
    when it interpolates (THEOREMS2 §20, DERIVED+VERIFIED).
    """
    D, a = _depth(depth), _alpha(alpha)
    X, y = _vector_data(X, y, "X", "y")
    _full_row_rank(X, "X")
    tol = check_opt_positive(tol, "tol")
    tol = 1e-13 * max(1.0, float(np.linalg.norm(y))) if tol is None else tol
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        out = _dual_newton(X, y, a**D, *_HD(D), tol=tol, names="`X`, `y`, `alpha`, `depth`")
    return _finite(out, "`X`, `y`, `alpha`, `depth`")


def entropy_argmin(A: Any, y: Any, alpha: float, *, tol: float | None = None) -> np.ndarray:
    r""":math:`\arg\min\{\sum_i x_i\log(x_i/\alpha^2) - x_i : Ax = y,\ x \ge 0\}` (``A`` is ``(m, n)``).

    The eigenvalues of :math:`X_\infty(\alpha)` for the tied factorization :math:`X = UU^\top`, :math:`U(0) = \alpha I`
    with commuting measurements :math:`A_k = Q\operatorname{diag}(a_k)Q^\top` (THEOREMS2 §16a, DERIVED+VERIFIED):
    :math:`x = \alpha^2\exp(A^\top\nu)`, :math:`\nu` from the convex dual by damped Newton in the log domain.
    """
    a = _alpha(alpha)
    A, y = _vector_data(A, y, "A", "y")
    _full_row_rank(A, "A")
    tol = check_opt_positive(tol, "tol")
    tol = 1e-13 * max(1.0, float(np.linalg.norm(y))) if tol is None else tol
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        out = _dual_newton(A, y, a**2, np.exp, np.exp, np.exp, tol=tol, names="`A`, `y`, `alpha`")
    return _finite(out, "`A`, `y`, `alpha`")


def min_l1_interpolant(X: Any, y: Any, *, nonnegative: bool = False) -> np.ndarray:
    r""":math:`\arg\min\{\|\beta\|_1 : X\beta = y\}` (or with :math:`\beta\ge0`: the min-trace LP) by HiGHS."""
    from scipy.optimize import linprog

    X, y = _vector_data(X, y, "X", "y")
    nonnegative = check_bool(nonnegative, "nonnegative")
    m, d = X.shape
    if nonnegative:
        res = linprog(np.ones(d), A_eq=X, b_eq=y, bounds=(0, None), method="highs")
        if not res.success:
            raise ValueError(f"`X`, `y`: the LP min 1^T x s.t. X x = y, x >= 0 failed: {res.message}")
        return res.x
    res = linprog(np.ones(2 * d), A_eq=np.hstack([X, -X]), b_eq=y, bounds=(0, None), method="highs")
    if not res.success:
        raise ValueError(f"`X`, `y`: the LP min ||beta||_1 s.t. X beta = y failed: {res.message}")
    return res.x[:d] - res.x[d:]


def min_l2_interpolant(X: Any, y: Any) -> np.ndarray:
    r""":math:`X^+ y`, the minimum-:math:`\ell_2` interpolant (the kernel limit :math:`\alpha\to\infty`)."""
    X, y = _vector_data(X, y, "X", "y")
    return np.linalg.pinv(X) @ y


def gfs_sharpness(w: Any, y: float) -> np.ndarray:
    r"""Sharpness :math:`\phi(w) = \lambda_{\max}\nabla^2L(\mathrm{GFS}(w))` of the gradient-flow solution of the
    scalar net :math:`L = \tfrac12(\prod_iw_i - y)^2` (last axis: layers; batched over leading axes).

    Gradient flow conserves :math:`c_i = w_i^2 - w_1^2`; at the limit :math:`w_i^2 = s + c_i` with
    :math:`\tfrac12\sum_i\log(s+c_i) = \log|y|`, and :math:`\phi = y^2\sum_i 1/(s+c_i)` (THEOREMS2 §22,
    DERIVED+VERIFIED; valid where the flow reaches a global minimum with the sign pattern of ``w``).
    :math:`s` by bisection to the last bit.

    Examples
    --------
    >>> import numpy as np, linnet as ln
    >>> float(ln.theory.gfs_sharpness(np.array([1.0, 1.0]), 4.0))  # balanced: N |y|^(2-2/N) = 2 * 4
    8.0
    """
    w = check_real(w, "w")
    if w.ndim < 1:
        raise ValueError(f"`w` must be a finite array (..., N) of scalar layers, got shape {w.shape}")
    yh = check_real(y, "y")
    if yh.ndim != 0:
        raise ValueError(f"`y` must be a real number (a scalar), got an array of shape {yh.shape}")
    y = float(yh)
    if y == 0:
        raise ValueError(f"`y` must be finite and nonzero, got {y!r}")
    N = w.shape[-1]
    c = w**2 - w[..., :1] ** 2
    lo = np.maximum(0.0, -c.min(axis=-1))
    hi = lo + abs(y) ** (2.0 / N)
    target = 2 * np.log(abs(y))
    for _ in range(1100):  # bisection: the bracket halves each time, down to adjacent floats
        mid = 0.5 * (lo + hi)
        with np.errstate(divide="ignore", invalid="ignore"):
            g = np.sum(np.log(mid[..., None] + c), axis=-1)
        up = g < target
        lo, hi = np.where(up, mid, lo), np.where(up, hi, mid)
        nxt = 0.5 * (lo + hi)
        if np.all((nxt == lo) | (nxt == hi)):
            break
    s = 0.5 * (lo + hi)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        out = y**2 * np.sum(1.0 / (s[..., None] + c), axis=-1)
    return _finite(out, "`w`, `y`")
