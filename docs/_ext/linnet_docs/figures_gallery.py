"""The figures gallery: one entry per module of :mod:`figures` (title, image, caption, source, theorem links).

The image is the committed PNG ``docs/gallery/<name>.png`` when there is one; a figure without it is drawn at
build time with its ``make()`` into ``generated/figures/``, so a new figure module appears without further steps.
"""

from __future__ import annotations

import importlib
import pathlib

from .theorems import figure_sections

__all__ = ["figure_image", "write_figures_page"]


def figure_image(docs: pathlib.Path, out: pathlib.Path, mod) -> str:
    """The site path (``/gallery/<name>.png``) of a figure's image, drawing it into ``out/figures`` if not committed."""
    name = mod.__name__.split(".")[-1]
    png = docs / "gallery" / f"{name}.png"
    if not png.exists():
        gen = out / "figures"
        png = gen / f"{name}.png"
        if not png.exists():
            gen.mkdir(parents=True, exist_ok=True)
            mod.make(gen)
    return "/" + png.relative_to(docs).as_posix()


def write_figures_page(docs: pathlib.Path, out: pathlib.Path, sections: set[int]) -> int:
    """Write ``figures.rst`` into ``out`` (a folder inside ``docs``); returns the number of figures."""
    figures = importlib.import_module("figures")
    title = "Figures gallery"
    lines = [title, "=" * len(title), ""]
    lines += [
        "Each figure shows one result of the specification, computed with :mod:`linnet` alone; its tests check the",
        "plotted data against the theory. Regenerate them all with ``python -m figures`` (or one, e.g.",
        "``python -m figures saxe_curves``).",
        "",
    ]
    mods = figures.all_figures()
    for mod in mods:
        name = mod.__name__.split(".")[-1]
        rel = figure_image(docs, out, mod)
        heading = f"{getattr(mod, 'TITLE', name)}"
        links = ", ".join(f":ref:`§{s} <theorem-s{s}>`" for s in sorted(figure_sections(mod)) if s in sections)
        lines += [f".. _figure-{name}:", "", heading, "-" * len(heading), ""]
        lines += [f".. figure:: {rel}", "   :width: 100%", f"   :alt: {heading}", ""]
        caption = getattr(mod, "CAPTION", "").replace("|", r"\|")  # |t| is not an RST substitution
        lines += [f"   {caption}", ""]
        lines += [f"**Source:** {getattr(mod, 'SOURCE', '')}." + (f" **Theorem pages:** {links}." if links else "")]
        lines += ["", f"Module :mod:`{mod.__name__}`, regenerate with ``python -m figures {name}``.", ""]
        lines += [f".. automodule:: {mod.__name__}", "   :no-members:", ""]
    (out / "figures.rst").write_text("\n".join(lines), encoding="utf-8")
    return len(mods)
