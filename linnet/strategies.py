r"""Hypothesis strategies for property tests of deep linear networks.

Public, so that users can write their own property tests with the same building blocks as linnet's suite.
This module imports :mod:`hypothesis` at the top: install it with the ``test`` extra
(``pip install -e ".[test]"``); nothing else in linnet imports this module.

Every array is drawn through an integer seed and built on the host with NumPy (as :mod:`linnet.init` does),
then moved to the requested namespace and dtype. So no draw contains NaN, inf or subnormals, a failing example
shrinks to a small seed, and conditioning is controlled **by construction** (singular values drawn in a fixed
range) rather than by filtering.

Examples
--------
>>> from hypothesis import given
>>> import linnet as ln
>>> from linnet import strategies as lst
>>> @given(lst.nets(max_depth=3, max_width=3))
... def test_product_shape(Ws):
...     assert ln.end_to_end(Ws).shape == (Ws[-1].shape[-2], Ws[0].shape[-1])
>>> test_product_shape()
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

try:
    from hypothesis import strategies as st
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        'linnet.strategies needs hypothesis, which the `test` extra installs: pip install "linnet[test]" '
        '(or pip install -e ".[test]" in a checkout; or pip install hypothesis)'
    ) from exc

from . import init as _init
from ._backend import from_host, get_namespace, namespace, resolve_dtype
from .losses import LpLoss, SquaredLoss

__all__ = [
    "seeds",
    "widths",
    "weights",
    "nets",
    "directions",
    "squared_losses",
    "lp_losses",
    "invertible_matrices",
    "spd_matrices",
    "well_conditioned",
]

_SEED_MAX = 2**32 - 1


def seeds() -> st.SearchStrategy[int]:
    """Non-negative integer seeds for NumPy's ``default_rng`` (shrink towards 0)."""
    return st.integers(min_value=0, max_value=_SEED_MAX)


def widths(
    min_depth: int = 1, max_depth: int = 4, min_width: int = 1, max_width: int = 4
) -> st.SearchStrategy[tuple[int, ...]]:
    """Widths ``(d_0, ..., d_N)`` with depth ``N`` in ``[min_depth, max_depth]`` and each width in range."""
    if not 1 <= min_depth <= max_depth:
        raise ValueError(
            f"`min_depth`, `max_depth` must satisfy 1 <= min_depth <= max_depth, got {min_depth}, {max_depth}"
        )
    if not 1 <= min_width <= max_width:
        raise ValueError(
            f"`min_width`, `max_width` must satisfy 1 <= min_width <= max_width, got {min_width}, {max_width}"
        )
    return st.integers(min_depth, max_depth).flatmap(
        lambda n: st.tuples(*([st.integers(min_width, max_width)] * (n + 1)))
    )


def _namespace_and_dtype(xp: Any, dtype: Any):
    xp = get_namespace(xp)
    return xp, resolve_dtype(dtype, xp)


def weights(
    widths: Sequence[int], scale: float = 0.7, *, xp: Any = None, dtype: Any = None, batch: Any = ()
) -> st.SearchStrategy[tuple]:
    r"""Layers of the given widths drawn by :func:`linnet.init.gaussian` from a drawn seed (entries :math:`\mathcal N(0, \mathrm{scale}^2)`)."""
    widths = tuple(int(w) for w in widths)
    return seeds().map(lambda s: _init.gaussian(widths, scale, batch=batch, seed=s, xp=xp, dtype=dtype))


def nets(
    min_depth: int = 1,
    max_depth: int = 4,
    min_width: int = 1,
    max_width: int = 4,
    *,
    scale: float = 0.7,
    xp: Any = None,
    dtype: Any = None,
    batch: Any = (),
) -> st.SearchStrategy[tuple]:
    """Whole nets: widths from :func:`widths`, then layers from :func:`weights` (the default scale 0.7 follows THEOREMS.md §1)."""
    return widths(min_depth, max_depth, min_width, max_width).flatmap(
        lambda w: weights(w, scale, xp=xp, dtype=dtype, batch=batch)
    )


def directions(Ws: Sequence[Any], scale: float = 1.0) -> st.SearchStrategy[tuple]:
    """Directions shaped like ``Ws`` (same namespace, dtype and batch shape), standard normal times ``scale``."""
    Ws = tuple(Ws)
    widths_ = (int(Ws[0].shape[-1]),) + tuple(int(W.shape[-2]) for W in Ws)
    batch = tuple(int(b) for b in Ws[0].shape[:-2])
    xp = namespace(*Ws)
    return seeds().map(lambda s: _init.gaussian(widths_, scale, batch=batch, seed=s, xp=xp, dtype=Ws[0].dtype))


def _haar(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """An ``(n, k)`` matrix with orthonormal columns (``k <= n``), Haar distributed."""
    Q, R = np.linalg.qr(rng.standard_normal((n, k)))
    d = np.sign(np.diagonal(R))
    return Q * np.where(d == 0, 1.0, d)


def well_conditioned(rng: np.random.Generator, rows: int, cols: int, cond_max: float = 4.0) -> np.ndarray:
    """A host ``(rows, cols)`` matrix with singular values in ``[1, cond_max]`` (full rank by construction)."""
    k = min(rows, cols)
    s = np.exp(rng.uniform(0.0, np.log(cond_max), size=k))
    return (_haar(rng, rows, k) * s) @ _haar(rng, cols, k).T


def _data(rng, d0, dN, m, noise, cond_max):
    X = well_conditioned(rng, d0, m, cond_max) * np.sqrt(m)  # full row rank, Lambda_xx eigenvalues in [1, cond^2]
    A = rng.standard_normal((dN, d0))
    Y = A @ X + noise * rng.standard_normal((dN, m))
    return X, Y


def squared_losses(
    d0: int,
    dN: int,
    *,
    kinds: Sequence[str] = ("data", "whitened", "population"),
    min_samples: Optional[int] = None,
    max_samples: int = 12,
    noise: float = 0.5,
    cond_max: float = 4.0,
    xp: Any = None,
    dtype: Any = None,
) -> st.SearchStrategy[SquaredLoss]:
    r"""Squared losses for end-to-end shape ``(dN, d0)``: from data, whitened, or population statistics.

    Data have full-row-rank ``X`` (``d0 x m`` with ``m >= d0`` and :math:`\Lambda_{xx}` condition number at most
    ``cond_max**2``) and ``Y = A X + noise``; the population form uses the same data's second moments.
    """
    kinds = tuple(kinds)
    bad = set(kinds) - {"data", "whitened", "population"}
    if not kinds or bad:
        raise ValueError(f"`kinds` must be a non-empty subset of ('data', 'whitened', 'population'), got {kinds!r}")
    lo = d0 if min_samples is None else max(int(min_samples), d0)
    hi = max(lo, int(max_samples))
    xp_, dt = _namespace_and_dtype(xp, dtype)

    def build(args):
        kind, m, seed = args
        rng = np.random.default_rng(seed)
        if kind == "whitened":
            return SquaredLoss.whitened(from_host(rng.standard_normal((dN, d0)), xp_, dt))
        X, Y = _data(rng, d0, dN, m, noise, cond_max)
        if kind == "data":
            return SquaredLoss.from_data(from_host(X, xp_, dt), from_host(Y, xp_, dt))
        Sxx, Syx, Syy = X @ X.T / m, Y @ X.T / m, Y @ Y.T / m
        Sxx = 0.5 * (Sxx + Sxx.T)
        return SquaredLoss.population(*(from_host(a, xp_, dt) for a in (Sxx, Syx, Syy)))

    return st.tuples(st.sampled_from(kinds), st.integers(lo, hi), seeds()).map(build)


def lp_losses(
    d0: int,
    dN: int,
    *,
    ps: Sequence[float] = (2.0, 3.0, 4.0),
    max_samples: int = 12,
    noise: float = 0.5,
    xp: Any = None,
    dtype: Any = None,
) -> st.SearchStrategy[LpLoss]:
    r""":class:`~linnet.LpLoss` problems :math:`\sum|WX-Y|^p/(pm)` with ``p`` drawn from ``ps`` and full-row-rank ``X``."""
    xp_, dt = _namespace_and_dtype(xp, dtype)

    def build(args):
        p, m, seed = args
        X, Y = _data(np.random.default_rng(seed), d0, dN, m, noise, 4.0)
        return LpLoss(from_host(X, xp_, dt), from_host(Y, xp_, dt), p=p)

    return st.tuples(st.sampled_from(tuple(ps)), st.integers(d0, max(d0, max_samples)), seeds()).map(build)


def invertible_matrices(d: int, cond_max: float = 10.0, *, xp: Any = None, dtype: Any = None) -> st.SearchStrategy[Any]:
    r""":math:`G = I + t\,Z/2` with Gaussian :math:`Z`, ``t = 1`` halved until :math:`\kappa(G) \le` ``cond_max`` (THEOREMS.md §12)."""
    if not cond_max > 1:
        raise ValueError(f"`cond_max` must be > 1, got {cond_max!r}")
    xp_, dt = _namespace_and_dtype(xp, dtype)

    def build(seed):
        Z = np.random.default_rng(seed).standard_normal((d, d))
        t = 1.0
        G = np.eye(d) + 0.5 * Z
        while np.linalg.cond(G) > cond_max:  # terminates: G -> I as t -> 0
            t *= 0.5
            G = np.eye(d) + 0.5 * t * Z
        return from_host(G, xp_, dt)

    return seeds().map(build)


def spd_matrices(d: int, cond_max: float = 10.0, *, xp: Any = None, dtype: Any = None) -> st.SearchStrategy[Any]:
    r"""Symmetric positive definite :math:`Q\,\mathrm{diag}(\lambda)\,Q^\top` with :math:`\lambda \in [1, \mathrm{cond\_max}]`, Haar :math:`Q`."""
    if not cond_max >= 1:
        raise ValueError(f"`cond_max` must be >= 1, got {cond_max!r}")
    xp_, dt = _namespace_and_dtype(xp, dtype)

    def build(seed):
        rng = np.random.default_rng(seed)
        Q = _haar(rng, d, d)
        lam = np.exp(rng.uniform(0.0, np.log(cond_max), size=d))
        S = (Q * lam) @ Q.T
        return from_host(0.5 * (S + S.T), xp_, dt)

    return seeds().map(build)
