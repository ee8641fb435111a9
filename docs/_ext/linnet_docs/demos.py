"""The demos gallery: linnet's percent-format demos as sphinx-gallery examples.

The demos are Markdown-flavoured percent scripts (they open as notebooks through jupytext). sphinx-gallery wants a
module docstring with a reStructuredText title and reStructuredText comment blocks, so at build time each
``demos/NN_*.py`` is rewritten into ``docs/generated/demos_src/`` with the same code cells and the prose converted
by :mod:`linnet_docs.mdrst`; the demos themselves are not touched. After sphinx-gallery has run, the script and
the notebook offered for download are replaced by the original demo and its jupytext notebook (Markdown prose),
so a reader downloads exactly what the repository holds.
"""

from __future__ import annotations

import pathlib
import re
import shutil

from .mdrst import md_to_rst

__all__ = ["DEMO_GLOB", "demo_paths", "demo_sections", "convert_demo", "write_gallery_sources", "replace_downloads"]

DEMO_GLOB = "[0-9][0-9]_*.py"
_SECTION = re.compile(r"§\s*(\d+)")


def demo_paths(root: pathlib.Path) -> list[pathlib.Path]:
    """The demo scripts of a checkout, in order."""
    return sorted((root / "demos").glob(DEMO_GLOB))


def demo_sections(path: pathlib.Path) -> set[int]:
    """The THEOREMS sections a demo refers to (its ``§N`` mentions)."""
    return {int(n) for n in _SECTION.findall(path.read_text(encoding="utf-8"))}


def convert_demo(text: str) -> str:
    """A sphinx-gallery script for the text of a percent-format demo (first cell: Markdown with a ``#`` title)."""
    import jupytext

    nb = jupytext.reads(text, fmt="py:percent")
    cells = list(nb.cells)
    if not cells or cells[0].cell_type != "markdown" or not cells[0].source.lstrip().startswith("# "):
        raise ValueError("a demo must open with a Markdown cell whose first line is a '# ' title")
    head = md_to_rst(cells[0].source)
    if '"""' in head:
        raise ValueError('the first Markdown cell of a demo must not contain """')
    out = ['r"""' + head + '"""\n']
    for cell in cells[1:]:
        if cell.cell_type == "markdown":
            rst = md_to_rst(cell.source)
            out.append("# %%\n" + "\n".join(("# " + line).rstrip() for line in rst.rstrip("\n").split("\n")) + "\n")
        else:
            # a blank line after the marker keeps leading comments of the code in the code block
            out.append("# %%\n\n" + cell.source.rstrip("\n") + "\n")
    return "\n".join(out)


def write_gallery_sources(root: pathlib.Path, out_dir: pathlib.Path) -> list[pathlib.Path]:
    """Convert every demo into ``out_dir`` (emptied first) with the gallery header ``demos/README.txt``."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    shutil.copyfile(root / "demos" / "README.txt", out_dir / "README.txt")
    written = []
    for path in demo_paths(root):
        target = out_dir / path.name
        target.write_text(convert_demo(path.read_text(encoding="utf-8")), encoding="utf-8")
        written.append(target)
    return written


def replace_downloads(root: pathlib.Path, gallery_dir: pathlib.Path) -> int:
    """Put the original demo and its notebook where sphinx-gallery left the converted ones; returns the count."""
    import jupytext

    n = 0
    for path in demo_paths(root):
        script = gallery_dir / path.name
        if not script.exists():
            continue
        shutil.copyfile(path, script)
        nb = jupytext.read(path, fmt="py:percent")
        jupytext.write(nb, script.with_suffix(".ipynb"), fmt="ipynb")
        n += 1
    return n
