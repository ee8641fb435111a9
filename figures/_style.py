"""Shared look and byte-reproducible saving for every figure.

Every figure is drawn with Matplotlib's object API (``matplotlib.figure.Figure``, no pyplot state) on the Agg
backend, inside :func:`style` (Matplotlib's defaults plus the settings below, whatever the user's matplotlibrc
says), and saved by :func:`save` with the metadata that carries a version or a date stripped, so two runs
write identical bytes.

Colours are the Okabe–Ito palette (Okabe & Ito, "Color Universal Design", 2008), safe for the common
colour-vision deficiencies.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterable, Sequence

import matplotlib

matplotlib.use("Agg", force=False)

from matplotlib import style as _mpl_style  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

__all__ = ["PALETTE", "C", "style", "new_figure", "save", "FORMATS", "DPI", "WIDTH", "HEIGHT"]

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
