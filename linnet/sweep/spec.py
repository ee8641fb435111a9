r"""Sweep specifications: parsing, validation and expansion into cells.

A spec is a TOML file (or the equivalent ``dict``)::

    seed = 0                 # the sweep seed: every run's seed derives from it (see :mod:`.seeding`)
    runs = 256               # runs (random initializations) per cell
    summaries = ["init_margin"]  # optional extra per-run columns (:mod:`.summaries`)

    [problem]
    loss = "whitened"        # or "squared" (Gaussian data X, Y = Phi X + noise)
    d_in = 4
    d_out = 1
    target_scale = 1.0       # Phi has i.i.d. N(0, target_scale^2) entries, drawn from the sweep seed
    n_samples = 64           # "squared" only
    noise = 0.0              # "squared" only

    [grid]                   # axes; every combination is a cell
    depth = [2, 3, 4]
    width = [4]              # hidden width of every hidden layer
    init = ["gaussian", "balanced"]   # or "orthogonal", "identity" (identity + N(0, scale^2) noise)
    scale = [0.1, 0.3, 1.0]
    lr = [0.05]

    [sample]                 # optional: continuous axes drawn at random or by Latin hypercube
    method = "lhs"           # or "random"
    n = 8
    scale = [0.01, 1.0]      # [low, high], log-uniform when log = true
    log = true

    [train]
    optimizer = "gd"         # or "momentum" (with beta)
    steps = 2000
    tol = 1e-8               # a run reached the global minimum when L - L* <= tol
    classify = false         # critical-point label of the final point (dense Hessian: small nets only)
    backend = "numpy"        # or "cupy" on GPU workers (init draws stay on the host: same seeds, same nets)

Every key is checked before any work starts; a bad one raises ``ValueError`` naming it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import sys
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

__all__ = ["Spec", "Cell", "load_spec", "INITS", "LOSSES", "OPTIMIZERS", "AXES"]

INITS = ("gaussian", "orthogonal", "balanced", "identity")
LOSSES = ("whitened", "squared")
OPTIMIZERS = ("gd", "momentum")
#: grid axes and their kinds; every axis has a default, so a grid may name only some of them
AXES = {"depth": "int", "width": "int", "init": "init", "scale": "scale", "lr": "lr"}
_DEFAULTS = {"depth": 2, "width": 4, "init": "gaussian", "scale": 0.1, "lr": 0.05}
_SAMPLEABLE = ("scale", "lr")

_TOP = {"seed", "runs", "summaries", "problem", "grid", "sample", "train"}
_PROBLEM = {"loss": "whitened", "d_in": 4, "d_out": 1, "target_scale": 1.0, "n_samples": 64, "noise": 0.0}
_TRAIN = {"optimizer": "gd", "beta": 0.9, "steps": 1000, "tol": 1e-8, "classify": False, "backend": "numpy"}
#: array backends a task may train on (the worker must have it; "array_api_strict" is the CPU stand-in for CuPy)
BACKENDS = ("numpy", "cupy", "array_api_strict")
_SAMPLE = {"method", "n", "log", *_SAMPLEABLE}


@dataclass(frozen=True)
class Cell:
    """One configuration of the sweep (``index`` is its position in ``Spec.cells``)."""

    index: int
    depth: int
    width: int
    init: str
    scale: float
    lr: float


@dataclass(frozen=True)
class Spec:
    """A validated sweep specification (build it with :func:`load_spec`)."""

    raw: Mapping  # the normalised spec, plain JSON types, defaults filled in
    cells: tuple  # of Cell

    @property
    def seed(self) -> int:
        return self.raw["seed"]

    @property
    def runs(self) -> int:
        return self.raw["runs"]

    @property
    def problem(self) -> Mapping:
        return self.raw["problem"]

    @property
    def train(self) -> Mapping:
        return self.raw["train"]

    @property
    def summaries(self) -> tuple:
        return tuple(self.raw["summaries"])

    @property
    def n_runs(self) -> int:
        return len(self.cells) * self.runs

    def widths(self, cell: Cell) -> tuple:
        """``(d_in, width, ..., width, d_out)`` with ``depth`` layers."""
        p = self.problem
        return (p["d_in"],) + (cell.width,) * (cell.depth - 1) + (p["d_out"],)

    def hash(self) -> str:
        """SHA-256 of the normalised spec: what the results on disk belong to."""
        return hashlib.sha256(json.dumps(self.raw, sort_keys=True).encode()).hexdigest()


def _fail(key: str, expected: str, got: Any):
    raise ValueError(f"sweep spec: `{key}` must be {expected}, got {got!r}")


def _int(v, key, low=1):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
        _fail(key, f"an int >= {low}", v)
    return int(v)


def _real(v, key, positive=True, allow_zero=False):
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v):
        _fail(key, "a finite real", v)
    v = float(v)
    if positive and (v < 0 or (v == 0 and not allow_zero)):
        _fail(key, "a real >= 0" if allow_zero else "a real > 0", v)
    return v


def _name(v, key, choices):
    if v not in choices:
        _fail(key, f"one of {', '.join(choices)}", v)
    return str(v)


def _check_axis_value(axis, v, key):
    kind = AXES[axis]
    if kind == "int":
        return _int(v, key)
    if kind == "init":
        return _name(v, key, INITS)
    if kind == "scale":
        return _real(v, key, allow_zero=True)
    return _real(v, key)  # lr > 0


def _unknown(d: Mapping, allowed, where: str):
    for k in d:
        if k not in allowed:
            _fail(f"{where}{k}", f"a known key ({', '.join(sorted(allowed))})", k)


def _section(raw, name, defaults):
    sec = raw.get(name, {})
    if not isinstance(sec, Mapping):
        _fail(name, "a table", sec)
    _unknown(sec, defaults, f"{name}.")
    return {k: sec.get(k, v) for k, v in defaults.items()}


def _sample_points(sample: Mapping, seed: int) -> list[dict]:
    """Points of the continuous axes, drawn from the sweep seed (uniform or log-uniform per axis)."""
    n = sample["n"]
    axes = [a for a in _SAMPLEABLE if a in sample]
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5A4D]))  # fixed tag: the sampling stream
    if sample["method"] == "random":
        u = rng.random((n, len(axes)))
    else:  # Latin hypercube: one point in each of n strata per axis, strata shuffled independently
        u = (np.stack([rng.permutation(n) for _ in axes], axis=1) + rng.random((n, len(axes)))) / n
    pts = []
    for i in range(n):
        p = {}
        for j, a in enumerate(axes):
            lo, hi = sample[a]
            p[a] = (
                float(np.exp(np.log(lo) + u[i, j] * (np.log(hi) - np.log(lo))))
                if sample["log"]
                else float(lo + u[i, j] * (hi - lo))
            )
        pts.append(p)
    return pts


def _norm_sample(s, seed):
    if not isinstance(s, Mapping):
        _fail("sample", "a table", s)
    _unknown(s, _SAMPLE, "sample.")
    out = {
        "method": _name(s.get("method", "random"), "sample.method", ("random", "lhs")),
        "n": _int(s.get("n"), "sample.n"),
        "log": bool(s.get("log", False)),
    }
    axes = [a for a in _SAMPLEABLE if a in s]
    if not axes:
        _fail("sample", f"a range for at least one of {', '.join(_SAMPLEABLE)}", dict(s))
    for a in axes:
        r = s[a]
        if not isinstance(r, (list, tuple)) or len(r) != 2:
            _fail(f"sample.{a}", "a [low, high] pair", r)
        lo, hi = (_real(x, f"sample.{a}", allow_zero=not out["log"] and a == "scale") for x in r)
        if not lo < hi:
            _fail(f"sample.{a}", "a [low, high] pair with low < high", r)
        out[a] = [lo, hi]
    return out


def load_spec(spec: Any) -> Spec:
    """Validate a spec (a path to a TOML file, a TOML string's parsed ``dict``, or a :class:`Spec`).

    Raises
    ------
    ValueError
        Naming the key: unknown keys, empty grids, sizes ``<= 0``, unknown init, loss or optimizer names,
        step sizes ``<= 0``, a sampled axis also in the grid.

    Examples
    --------
    >>> from linnet.sweep import load_spec
    >>> s = load_spec({"runs": 8, "grid": {"depth": [2, 3], "init": ["gaussian", "balanced"]}})
    >>> len(s.cells), s.n_runs, s.widths(s.cells[-1])
    (4, 32, (4, 4, 4, 1))
    >>> load_spec({"grid": {"lr": [0.0]}})
    Traceback (most recent call last):
    ...
    ValueError: sweep spec: `grid.lr` must be a real > 0, got 0.0
    """
    if isinstance(spec, Spec):
        return spec
    if isinstance(spec, (str, bytes)) or hasattr(spec, "__fspath__"):
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover
            import tomli as tomllib
        with open(spec, "rb") as f:
            spec = tomllib.load(f)
    if not isinstance(spec, Mapping):
        raise ValueError(f"`spec` must be a path to a TOML file or a mapping, got {type(spec).__name__}")
    _unknown(spec, _TOP, "")
    seed = _int(spec.get("seed", 0), "seed", low=0)
    runs = _int(spec.get("runs", 1), "runs")
    summaries = spec.get("summaries", [])
    from .summaries import SUMMARIES

    if not isinstance(summaries, (list, tuple)):
        _fail("summaries", "a list of names", summaries)
    for s in summaries:
        _name(s, "summaries", tuple(SUMMARIES))

    problem = _section(spec, "problem", _PROBLEM)
    problem["loss"] = _name(problem["loss"], "problem.loss", LOSSES)
    for k in ("d_in", "d_out", "n_samples"):
        problem[k] = _int(problem[k], f"problem.{k}")
    problem["target_scale"] = _real(problem["target_scale"], "problem.target_scale")
    problem["noise"] = _real(problem["noise"], "problem.noise", allow_zero=True)

    train = _section(spec, "train", _TRAIN)
    train["optimizer"] = _name(train["optimizer"], "train.optimizer", OPTIMIZERS)
    train["steps"] = _int(train["steps"], "train.steps")
    train["tol"] = _real(train["tol"], "train.tol")
    train["beta"] = _real(train["beta"], "train.beta", allow_zero=True)
    if train["beta"] >= 1:
        _fail("train.beta", "a real in [0, 1)", train["beta"])
    train["backend"] = _name(train["backend"], "train.backend", BACKENDS)
    if not isinstance(train["classify"], bool):
        _fail("train.classify", "true or false", train["classify"])

    grid = spec.get("grid", {})
    if not isinstance(grid, Mapping):
        _fail("grid", "a table", grid)
    _unknown(grid, AXES, "grid.")
    axes = {}
    for a in AXES:
        vals = grid.get(a, [_DEFAULTS[a]])
        if not isinstance(vals, (list, tuple)):
            vals = [vals]
        if len(vals) == 0:
            _fail(f"grid.{a}", "a non-empty list", vals)
        axes[a] = [_check_axis_value(a, v, f"grid.{a}") for v in vals]
        if len(set(axes[a])) != len(axes[a]):
            _fail(f"grid.{a}", "a list without repeats", vals)

    raw = {"seed": seed, "runs": runs, "summaries": list(summaries), "problem": problem, "train": train}
    raw["grid"] = axes
    points = [{}]
    if "sample" in spec:
        sample = _norm_sample(spec["sample"], seed)
        for a in _SAMPLEABLE:
            if a in sample and a in grid:
                _fail(f"grid.{a}", f"absent when `sample.{a}` is given", grid[a])
        raw["sample"] = sample
        points = _sample_points(sample, seed)
    cells = []
    for combo in itertools.product(*(axes[a] for a in AXES)):
        base = dict(zip(AXES, combo))
        for p in points:
            cells.append(Cell(index=len(cells), **{**base, **p}))
    r = min(problem["d_in"], problem["d_out"])
    for c in cells:
        if c.init == "balanced" and c.depth > 1 and c.width < r:
            _fail("grid.width", f">= min(d_in, d_out) = {r} with a balanced init (a Gaussian A has rank {r})", c.width)
    return Spec(raw=raw, cells=tuple(cells))
