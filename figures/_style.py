"""Shared look and byte-reproducible saving for every figure.

Every figure is drawn with Matplotlib's object API (``matplotlib.figure.Figure``, no pyplot state) on the Agg
backend, inside :func:`style` (Matplotlib's defaults plus the settings below, whatever the user's matplotlibrc
says), and saved by :func:`save` with the metadata that carries a version or a date stripped, so two runs
write identical bytes.

Values at round-off level (a loss converged to ~1e-30, the balancedness gap of a balanced init) carry digits that
depend on the order in which the BLAS kernel sums, so drawn as they are they move antialiased pixels between
machines. :func:`floored` draws them at a stated floor instead (derived from the dtype's ε, or from an integration
tolerance, in each figure), so every committed image is byte-identical whatever OpenBLAS kernel regenerates it; the
figures' ``data()`` keep the true values, which the tests check.

Colours are the Okabe–Ito palette (Okabe & Ito, "Color Universal Design", 2008), safe for the common
colour-vision deficiencies.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterable, Sequence

import matplotlib

matplotlib.use("Agg", force=False)

import numpy as np  # noqa: E402
from matplotlib import style as _mpl_style  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

__all__ = [
    "PALETTE",
    "C",
    "style",
    "new_figure",
    "save",
    "FORMATS",
    "DPI",
    "WIDTH",
    "HEIGHT",
    "EPS",
    "LOG_GRID",
    "FINE_LOG_GRID",
    "floored",
    "on_log_grid",
    "loss_floor",
]

#: Okabe–Ito colours in plotting order (black last: it is kept for theory curves).
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
#: The same colours by name.
C = {
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "green": "#009E73",
    "purple": "#CC79A7",
    "orange": "#E69F00",
    "sky": "#56B4E9",
    "yellow": "#F0E442",
    "black": "#000000",
    "grey": "#7F7F7F",
}

#: Unit round-off of float64, the dtype every figure computes in.
EPS = float(np.finfo(np.float64).eps)
#: Grids, in decades, on which drawn values are rounded by :func:`on_log_grid`. ``LOG_GRID`` (1/200 decade: a value
#: moves by 0.6% at most) for :func:`floored` values, known to ~6 digits just above their floor, on axes of at most
#: ~35 px per decade (a shift under 0.09 px); it is 15-40x coarser than Agg's 1/256-pixel grid there, so such a value
#: rounds to the same grid point on every BLAS kernel but with a probability of ~1e-4. ``FINE_LOG_GRID`` (1e-4 decade)
#: for values known to ~10 digits or better (fits, norms) on axes of up to ~210 px per decade (about 0.01 px).
LOG_GRID = 0.005
FINE_LOG_GRID = 1e-4

#: Size of a one-panel figure in inches (README size) and the raster resolution.
WIDTH, HEIGHT, DPI = 5.0, 3.5, 110
FORMATS = ("png", "pdf")

_RC = {
    "axes.prop_cycle": matplotlib.cycler(color=PALETTE),
    "font.size": 8.5,
    "axes.titlesize": 9.0,
    "axes.labelsize": 8.5,
    "legend.fontsize": 7.0,
    "legend.framealpha": 0.85,
    "xtick.labelsize": 7.5,
    "ytick.labelsize": 7.5,
    "figure.titlesize": 10.0,
    "lines.linewidth": 1.4,
    "lines.markersize": 4.0,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.5,
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "image.cmap": "cividis",
    "svg.hashsalt": "linnet",
    "pdf.compression": 6,
    "path.simplify": True,
}

# Metadata that would differ between runs or Matplotlib versions: stripped.
_METADATA = {
    "png": {"Software": None},
    "pdf": {"Creator": None, "Producer": None, "CreationDate": None},
}


def on_log_grid(x, grid: float = FINE_LOG_GRID) -> np.ndarray:
    """``x`` rounded to a grid of ``grid`` decades in log10 (zeros and signs kept; an invisible change, see
    :data:`LOG_GRID`).

    Values whose last digits depend on the BLAS kernel's summation order become the same floats on every kernel
    (unless one sits within its round-off of a grid boundary), so the renderer gets the same input. That matters
    beyond sub-pixel accuracy: where consecutive vertices are collinear (a power law on log-log axes, a fitted
    line, a plateau) Agg's line joins follow the sign of a cross product that is pure round-off.
    """
    x = np.asarray(x, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.sign(x) * 10.0 ** (np.round(np.log10(np.abs(x)) / grid) * grid)
    return np.where(np.isfinite(x) & (x != 0), r, x)


def floored(x, floor: float) -> np.ndarray:
    """``x`` as drawn on a log axis: ``max(x, floor)`` on the :data:`LOG_GRID` grid (:func:`on_log_grid`).

    ``floor`` is a round-off floor stated by the figure (and drawn there): below it the value's digits are round-off
    and depend on the BLAS kernel's summation order, so it is drawn at the floor; above it the value is known to
    about six digits or better, and the rounding to 1/200 decade (invisible) keeps the remaining round-off from
    reaching the pixels. Only the drawing is floored; ``data()`` returns the true values.
    """
    return on_log_grid(np.maximum(np.asarray(x, dtype=float), floor), LOG_GRID)


def loss_floor(scale: float, digits: int = 6) -> float:
    """Round-off floor of a loss ``½‖r‖²`` whose residual ``r`` is computed with absolute round-off ``~ε·scale``:
    ``½(10^digits·ε·scale)²``, the loss below which ``r`` has fewer than ``digits`` significant digits."""
    return 0.5 * (10.0**digits * EPS * scale) ** 2


@contextlib.contextmanager
def style():
    """Matplotlib's default style plus the linnet settings, for the duration of a ``with`` block."""
    with _mpl_style.context(["default", _RC]):
        yield


def new_figure(ncols: int = 1, *, width: float | None = None, height: float = HEIGHT, **subplot_kw):
    """A ``Figure`` (constrained layout) and its ``ncols`` axes (a tuple)."""
    w = WIDTH * (1.0 if ncols == 1 else 0.85 * ncols) if width is None else width
    fig = Figure(figsize=(w, height), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False, **subplot_kw)[0]
    return fig, tuple(axes)


def check_formats(formats: Iterable[str] | str) -> tuple[str, ...]:
    """Validate ``formats`` (``"png"``, ``"pdf"`` or a sequence of them)."""
    if isinstance(formats, str):
        formats = tuple(f.strip() for f in formats.split(",") if f.strip())
    formats = tuple(formats)
    bad = [f for f in formats if f not in FORMATS]
    if not formats or bad:
        raise ValueError(f"`formats` must be a non-empty subset of {FORMATS}, got {formats!r}")
    return formats


def save(fig: Figure, out_dir, name: str, formats: Sequence[str] = ("png",)) -> list[Path]:
    """Save ``fig`` as ``out_dir/name.<fmt>`` for each format, with run-dependent metadata stripped."""
    formats = check_formats(formats)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = out / f"{name}.{fmt}"
        fig.savefig(path, format=fmt, dpi=DPI, metadata=_METADATA[fmt])
        paths.append(path)
    return paths
