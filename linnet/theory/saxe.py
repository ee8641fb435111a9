r"""Exact learning curves of Saxe, McClelland & Ganguli (THEOREMS.md §10).

Saxe, McClelland & Ganguli, `Exact solutions to the nonlinear dynamics of learning in deep linear neural networks
<https://arxiv.org/abs/1312.6120>`_, ICLR 2014: from a decoupled balanced start each mode strength :math:`u`
evolves on its own. Two layers: :math:`\tau\dot u = 2u(s - u)` (:func:`saxe_mode`, eq. 12; :func:`saxe_time`,
eq. 11). Depth :math:`D`: :math:`\tau\dot u = Du^{2-2/D}(s - u)` (:func:`saxe_deep_rhs`, eq. 15), solved exactly
by quadrature (:func:`saxe_deep_time`) and Newton inversion (:func:`saxe_deep_mode`); the infinite-depth limit is
:func:`saxe_time_deep_limit` (eq. 17). In linnet's normalisation :math:`s = \sigma_\alpha(\Lambda_{yx})` of
whitened data, :math:`\tau = 1` and :math:`t = \eta k` after :math:`k` GD steps.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._backend import from_host
from .._validate import check_positive
from ._common import _all_positive, _check_all, _depth, _int, _scalars

__all__ = [
    "saxe_mode",
    "saxe_time",
    "saxe_deep_rhs",
    "saxe_deep_time",
    "saxe_deep_mode",
    "saxe_time_deep_limit",
]


def _same_side(s, u0, uf) -> None:
    """Both ends of a two-layer or infinite-depth trajectory lie on the same side of its fixed point ``s``."""
    _check_all((s - u0) * (s - uf) > 0, "uf", "on the same side of s as u0 (the flow never crosses s)", uf)


def saxe_mode(t: Any, s: Any, u0: Any, *, tau: float = 1.0) -> Any:
    r"""Mode strength of a two-layer net under gradient flow from a decoupled balanced start (Saxe eq. 12).

    .. math:: u(t) = \frac{s\,e^{2st/\tau}}{e^{2st/\tau} - 1 + s/u_0} = \frac{s}{1 + (s/u_0 - 1)e^{-2st/\tau}},

    the solution of :math:`\tau\dot u = 2u(s - u)`, :math:`u(0) = u_0 > 0` (the second form is evaluated: no
    overflow for :math:`t \ge 0`). In linnet's normalisation (THEOREMS.md §10) :math:`s = \sigma_\alpha(\Lambda_{yx})`
    of whitened data, :math:`\tau = 1` and :math:`t = \eta k` after :math:`k` GD steps. Saxe, McClelland & Ganguli,
    `arXiv:1312.6120 <https://arxiv.org/abs/1312.6120>`_, eq. (12), CONFIRMED. Broadcasts.

    Examples
    --------
    >>> import linnet as ln
    >>> float(ln.theory.saxe_mode(0.0, 2.0, 0.1)), round(float(ln.theory.saxe_mode(50.0, 2.0, 0.1)), 12)
    (0.1, 2.0)
    """
    tau = check_positive(tau, "tau")
    xp, t, s, u0 = _scalars(t, s, u0, names=("t", "s", "u0"))
    _all_positive(s=s, u0=u0)
    _check_all(t >= 0, "t", ">= 0", t)
    return s / (1.0 + (s / u0 - 1.0) * xp.exp(-2.0 * s * t / tau))


def saxe_time(s: Any, u0: Any, uf: Any, *, tau: float = 1.0) -> Any:
    r"""Time for a two-layer mode to go from :math:`u_0` to :math:`u_f` (Saxe eq. 11).

    .. math:: t = \frac{\tau}{2s}\ln\frac{u_f(s - u_0)}{u_0(s - u_f)}

    :math:`u_0` and :math:`u_f` must lie on the same side of :math:`s` (negative result: :math:`u_f` lies before
    :math:`u_0` on the trajectory). `arXiv:1312.6120 <https://arxiv.org/abs/1312.6120>`_, eq. (11), CONFIRMED.

    Examples
    --------
    >>> import linnet as ln
    >>> round(float(ln.theory.saxe_time(1.0, 0.5, 0.9)), 6)
    1.098612
    """
    tau = check_positive(tau, "tau")
    xp, s, u0, uf = _scalars(s, u0, uf, names=("s", "u0", "uf"))
    _all_positive(s=s, u0=u0, uf=uf)
    _same_side(s, u0, uf)
    return tau / (2.0 * s) * xp.log(uf * (s - u0) / (u0 * (s - uf)))


def saxe_deep_rhs(u: Any, s: Any, depth: int, *, tau: float = 1.0) -> Any:
    r"""Right side of Saxe eq. (15) for a balanced depth-:math:`D` mode: :math:`\dot u = D\,u^{2-2/D}(s - u)/\tau`.

    :math:`D` counts weight matrices (Saxe's :math:`N_l - 1`); it equals the scalar case of the end-to-end
    dynamics of §4. `arXiv:1312.6120 <https://arxiv.org/abs/1312.6120>`_, eq. (15), CONFIRMED.
    """
    D = _depth(depth)
    tau = check_positive(tau, "tau")
    xp, u, s = _scalars(u, s, names=("u", "s"))
    _check_all(u >= 0, "u", ">= 0", u)
    return D * u ** (2.0 - 2.0 / D) * (s - u) / tau


# Gauss–Legendre rules of _deep_T: points per unit-width panel for v < 0, and in the single rule for v >= 0.
_GL_NODES = 12
_GL_TAIL = 24


def _deep_T(v, beta: float, xp):
    r"""Antiderivative :math:`T(v) = \int_0^v (1 + e^{-x})^\beta dx` (array code, elementwise).

    :math:`T(v) = v + H(v)` with :math:`h(x) = (1+e^{-x})^\beta - 1`. For :math:`v \ge 0`,
    :math:`H(v) = \int_{e^{-v}}^1 \mathrm{expm1}(\beta\,\mathrm{log1p}(y))/y\,dy` (analytic integrand, one
    Gauss–Legendre rule); for :math:`v < 0`, composite Gauss–Legendre on panels of width :math:`\le 1`.
    """
    dt = v.dtype
    if beta == 0.0:
        return v * 1
    # v >= 0 part
    xt, wt = np.polynomial.legendre.leggauss(_GL_TAIL)
    xt = from_host(xt, xp, dt)
    wt = from_host(wt, xp, dt)
    vp = xp.maximum(v, xp.zeros_like(v))
    a = xp.exp(-vp)[..., None]  # lower limit in y
    y = a + (1.0 - a) * (xt + 1.0) / 2.0
    g = xp.expm1(beta * xp.log1p(y)) / y
    Hpos = xp.sum(g * wt, axis=-1) * (1.0 - a[..., 0]) / 2.0
    # v < 0 part: H(v) = -int_v^0 h
    vn = xp.minimum(v, xp.zeros_like(v))
    K = max(1, int(math.ceil(float(xp.max(-vn)))))
    xn, wn = np.polynomial.legendre.leggauss(_GL_NODES)
    nodes = (np.arange(K)[:, None] + (xn[None, :] + 1.0) / 2.0).reshape(-1) / K  # in (0, 1)
    weights = np.tile(wn / (2.0 * K), K)
    nodes = from_host(nodes, xp, dt)
    weights = from_host(weights, xp, dt)
    x = vn[..., None] * nodes  # points in (v, 0)
    h = xp.expm1(beta * xp.log1p(xp.exp(-x)))
    Hneg = vn * xp.sum(h * weights, axis=-1)  # -int_v^0 h = v * mean of h over (v, 0)
    return v + xp.where(v >= 0, Hpos, Hneg)


def _deep_checks(s, u0, name_u="u0"):
    _check_all(s > 0, "s", "> 0", s)
    _check_all((u0 > 0) & (u0 < s), name_u, "in (0, s) (the deep solution is for modes growing from below s)", u0)


def _to_v(u, s, xp):
    return xp.log(u / (s - u))


def saxe_deep_time(s: Any, u0: Any, uf: Any, depth: int, *, tau: float = 1.0) -> Any:
    r"""Exact time for a balanced depth-:math:`D` mode to go from :math:`u_0` to :math:`u_f` under eq. (15).

    Separating variables in :math:`\tau\dot u = Du^{2-2/D}(s-u)` and substituting
    :math:`v = \ln\frac{u}{s-u}` (so :math:`u = s/(1+e^{-v})`) gives, with :math:`\beta = 1 - 2/D`,

    .. math::

        t = \frac{\tau}{D\,s^{1+\beta}}\int_{v_0}^{v_f}(1 + e^{-v})^{\beta}\,dv ,

    an integral with an analytic integrand, evaluated by Gauss–Legendre quadrature to round-off (no ODE
    solver). :math:`D = 2` reduces to eq. (11) exactly. Needs :math:`0 < u_0, u_f < s`. Saxe, McClelland &
    Ganguli, `arXiv:1312.6120 <https://arxiv.org/abs/1312.6120>`_, eq. (15) (CONFIRMED); the quadrature is
    linnet's. Broadcasts.

    Examples
    --------
    >>> import linnet as ln
    >>> a = ln.theory.saxe_deep_time(1.0, 0.5, 0.9, 2); b = ln.theory.saxe_time(1.0, 0.5, 0.9)
    >>> abs(float(a) - float(b)) < 1e-14
    True
    """
    D = _depth(depth)
    tau = check_positive(tau, "tau")
    xp, s, u0, uf = _scalars(s, u0, uf, names=("s", "u0", "uf"))
    _deep_checks(s, u0)
    _deep_checks(s, uf, "uf")
    if D == 1:  # linear flow tau u' = s - u
        return tau * xp.log((s - u0) / (s - uf))
    beta = 1.0 - 2.0 / D
    v0, vf = xp.broadcast_arrays(_to_v(u0, s, xp), _to_v(uf, s, xp))
    return tau / (D * s ** (1.0 + beta)) * (_deep_T(vf, beta, xp) - _deep_T(v0, beta, xp))


def saxe_deep_mode(t: Any, s: Any, u0: Any, depth: int, *, tau: float = 1.0, max_iter: int = 200) -> Any:
    r"""Mode strength :math:`u(t)` of a balanced depth-:math:`D` mode (eq. 15), by inverting :func:`saxe_deep_time`.

    Solves :math:`T(v) = T(v_0) + tDs^{1+\beta}/\tau` for :math:`v` (notation of :func:`saxe_deep_time`) by
    Newton's method; :math:`T` is increasing and concave, so Newton from :math:`v_0` converges monotonically.
    Returns :math:`u = s/(1+e^{-v})`. :math:`D = 2` reproduces eq. (12). Needs :math:`0 < u_0 < s`,
    :math:`t \ge 0`. Broadcasts.

    Examples
    --------
    >>> import linnet as ln
    >>> a = ln.theory.saxe_deep_mode(1.5, 2.0, 0.01, 2); b = ln.theory.saxe_mode(1.5, 2.0, 0.01)
    >>> abs(float(a) - float(b)) < 1e-12
    True
    """
    D = _depth(depth)
    tau = check_positive(tau, "tau")
    xp, t, s, u0 = _scalars(t, s, u0, names=("t", "s", "u0"))
    _deep_checks(s, u0)
    _check_all(t >= 0, "t", ">= 0", t)
    t, s, u0 = xp.broadcast_arrays(t, s, u0)
    if D == 1:  # linear flow tau u' = s - u
        return s - (s - u0) * xp.exp(-t / tau)
    beta = 1.0 - 2.0 / D  # in [0, 1): T is concave, Newton from v0 is monotone
    v0 = _to_v(u0, s, xp)
    T0 = _deep_T(v0, beta, xp)
    target = T0 + t * D * s ** (1.0 + beta) / tau
    v = v0 * 1
    hi = v0 + (target - T0)  # T' >= 1, so the root is at most this
    eps = float(xp.finfo(v.dtype).eps)
    for _ in range(_int(max_iter, "max_iter")):
        F = _deep_T(v, beta, xp) - target
        dF = (1.0 + xp.exp(-v)) ** beta
        step = -F / dF
        v_new = xp.minimum(xp.maximum(v + step, v), hi)
        done = bool(xp.all(xp.abs(v_new - v) <= 4 * eps * xp.maximum(xp.abs(v), xp.ones_like(v))))
        v = v_new
        if done:
            break
    return s / (1.0 + xp.exp(-v))


def saxe_time_deep_limit(s: Any, u0: Any, uf: Any, n_layers: Any, *, tau: float = 1.0) -> Any:
    r"""Learning time in the infinite-depth limit (Saxe eq. 17), for :math:`\tau\dot u = N_l u^2(s - u)` (eq. 16).

    .. math::

        t = \frac{\tau}{N_l}\left[\frac1{s^2}\log\frac{u_f(u_0 - s)}{u_0(u_f - s)} + \frac1{s u_0}
            - \frac1{s u_f}\right]

    :math:`N_l` is Saxe's number of layers of units (large; eq. 15 with :math:`D = N_l - 1` approaches it).
    `arXiv:1312.6120 <https://arxiv.org/abs/1312.6120>`_, eq. (17), CONFIRMED and re-derived by partial
    fractions (THEOREMS.md §10).

    Examples
    --------
    >>> import linnet as ln
    >>> round(float(ln.theory.saxe_time_deep_limit(1.0, 0.5, 0.9, 1)), 6)
    3.086113
    """
    tau = check_positive(tau, "tau")
    xp, s, u0, uf, n = _scalars(s, u0, uf, n_layers, names=("s", "u0", "uf", "n_layers"))
    _check_all(n > 0, "n_layers", "> 0", n_layers)
    _all_positive(s=s, u0=u0, uf=uf)
    _same_side(s, u0, uf)
    return tau / n * (xp.log(uf * (u0 - s) / (u0 * (uf - s))) / s**2 + 1.0 / (s * u0) - 1.0 / (s * uf))
