"""linnet's Sphinx extension: pages generated from the repository at build time.

- ``generated/api/``: the API reference, one module page per public module and one stub per name of its
  ``__all__`` (:mod:`linnet_docs.api`);
- ``generated/theorems/``: one page per section of the specification (:mod:`linnet_docs.theorems`);
- ``generated/verdicts.rst``: the verdict table of ``python -m proofs_check`` (:mod:`linnet_docs.verdicts`);
- ``generated/figures.rst``: the figures gallery (:mod:`linnet_docs.figures_gallery`);
- ``generated/demos_src/``: the demos rewritten for sphinx-gallery (:mod:`linnet_docs.demos`).

After the build, every name of every documented ``__all__`` must have its HTML page (a warning otherwise, which
``-W`` turns into an error).
"""

from __future__ import annotations

import importlib
import pathlib
import re

from sphinx.util import logging

from . import api, demos, figures_gallery, theorems, verdicts

logger = logging.getLogger(__name__)

GALLERY_DIR = "auto_demos"


def _paths(app):
    docs = pathlib.Path(app.srcdir)
    return docs.parent, docs, docs / "generated"


def generate(app, config):
    root, docs, gen = _paths(app)
    gen.mkdir(exist_ok=True)
    api.write_api_pages(gen / "api", api.api_modules() + api.EXTENSION_MODULES)
    _write_api_index(gen / "api.rst")
    for name, err in api.IMPORT_ERRORS.items():
        logger.warning(f"API reference: {name} does not import ({err}); add what it needs to the docs extra")
    demos.write_gallery_sources(root, gen / "demos_src")
    doc, message = verdicts.run_checks(root, gen / "verdicts.json")
    logger.info(f"[linnet_docs] proofs_check: {message}")
    vmap = None if doc is None else {c["id"]: c for c in doc["checks"]}
    sections, extras = theorems.write_theorem_pages(root, docs, gen / "theorems", vmap)
    numbers = {s.number for s in sections}
    app._linnet_sections = sorted(numbers)
    _write_theorem_index(gen / "theorems.rst", sections, extras)
    n_fig = figures_gallery.write_figures_page(docs, gen, numbers)
    bad = verdicts.write_verdict_page(doc, message, gen / "verdicts.rst")
    for cid in bad:
        logger.warning(f"proofs_check: check {cid} is not ok (failed, errored or its control held)")
    logger.info(f"[linnet_docs] {len(sections)} theorem pages, {n_fig} figures")


def _write_theorem_index(path: pathlib.Path, sections, extras) -> None:
    lines = [".. _theorems:", "", "Theorems", "========", ""]
    lines += [
        "The specification of the theorems that linnet implements and checks, one page per section, rendered",
        "from ``docs/THEOREMS.md`` (§0–§14) and ``docs/THEOREMS2.md`` (§15 on) at build time. Each page shows",
        "the section's status labels (**CONFIRMED**: read in a source; **DERIVED+VERIFIED**: derived here and",
        "checked numerically; **UNCONFIRMED**: recalled, never presented as the paper's) and links to the check,",
        "figure and demo that execute it. The :ref:`verdicts` table gives this build's run of every check.",
        "",
        ".. toctree::",
        "   :maxdepth: 1",
        "",
        "   verdicts",
    ]
    lines += [f"   theorems/s{s.number:02d}" for s in sections]
    lines += [f"   theorems/{e}" for e in extras]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _write_api_index(path: pathlib.Path) -> None:
    lines = ["API reference", "=============", ""]
    lines += [
        "Generated from the docstrings: every name of each module's ``__all__`` has its page. Most users need only",
        "``import linnet as ln``: the calculus and the losses at the top level, the rest in the submodules.",
        "",
        ".. toctree::",
        "   :maxdepth: 1",
        "",
    ]
    lines += [f"   api/{m}" for m in api.api_modules()]
    lines += ["", "The extension points: the check framework and the figure registry (see :doc:`/extending`).", ""]
    lines += [".. toctree::", "   :maxdepth: 1", ""] + [f"   api/{m}" for m in api.EXTENSION_MODULES]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def replace_downloads(app):
    root, docs, _ = _paths(app)
    n = demos.replace_downloads(root, docs / GALLERY_DIR)
    logger.info(f"[linnet_docs] {n} demo downloads are the original scripts and their notebooks")


def documented_name(target: str, canon: dict) -> str | None:
    """The documented spelling of a dotted name, through the deepest documented object on its path."""
    parts = target.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        break
    else:
        return None
    best = None
    for k, attr in enumerate(parts[cut:]):
        obj = getattr(obj, attr, None)
        if obj is None:
            return None
        name = canon.get(id(obj))
        if name is not None:
            best = ".".join([name, *parts[cut + k + 1 :]])
    return best


def resolve_alias(app, env, node, contnode):
    """Resolve ``linnet.losses.Loss`` and the like to the documented name of the same object (``linnet.Loss``)."""
    target = node.get("reftarget", "")
    if node.get("refdomain") != "py" or target.startswith("_"):
        return None
    if node.get("reftype") == "mod" and target.startswith("linnet."):
        new = api.home_module(target, api.api_modules())  # an undocumented module: the page that re-exports it
    elif target.startswith(("linnet.", "proofs_check.", "figures.")):
        new = documented_name(target, _canonical(app))
    else:  # a short name in a docstring of linnet (``SquaredLoss.from_data``): try it at the top level
        new = (
            documented_name(f"linnet.{target}", _canonical(app))
            if node.get("py:module", "").startswith("linnet")
            else None
        )
    if new is None or new == target:
        return None
    node = node.deepcopy()
    node["reftarget"] = new
    domain = env.get_domain("py")
    return domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"], new, node, contnode)


def _canonical(app):
    if not hasattr(app, "_linnet_canonical"):
        app._linnet_canonical = api.canonical_names(api.api_modules() + api.EXTENSION_MODULES)
    return app._linnet_canonical


def skip_namedtuple_fields(app, what, name, obj, skip, options):
    """Leave out NamedTuple fields' generated docstrings ("Alias for field number k"): numpydoc lists them."""
    doc = getattr(obj, "__doc__", None) or ""
    if doc.startswith("Alias for field number"):
        return True
    return None


def check_api_pages(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    out = pathlib.Path(app.outdir) / "generated" / "api"
    modules = api.api_modules() + api.EXTENSION_MODULES
    missing = [n for names in api.api_pages(modules).values() for n in names if not (out / f"{n}.html").exists()]
    missing += [m for m in modules if not (out / f"{m}.html").exists()]
    for n in missing:
        logger.warning(f"API reference: no page for {n}")
    for m in api.undocumented_modules(api.api_modules()):
        logger.warning(f"API reference: public module {m} has names documented nowhere")


_SECTION_REF = re.compile(r"§\s?(\d+)")
_NO_LINK = ("literal", "literal_block", "math", "math_block", "reference", "title", "raw", "desc_signature", "option")


def link_sections(app, doctree, docname):
    """Turn every ``§N`` in running text (docstrings included) into a link to the page of section N."""
    from docutils import nodes

    if app.builder.format != "html":
        return
    known = set(getattr(app, "_linnet_sections", ()))
    for text in list(doctree.findall(nodes.Text)):
        node, skip = text.parent, False
        while node is not None:
            if node.tagname in _NO_LINK:
                skip = True
                break
            node = node.parent
        source = str(text)
        if skip or "§" not in source:
            continue
        pieces, pos = [], 0
        for m in _SECTION_REF.finditer(source):
            n = int(m.group(1))
            target = f"generated/theorems/s{n:02d}"
            if n not in known or target == docname:
                continue
            pieces.append(nodes.Text(source[pos : m.start()]))
            uri = app.builder.get_relative_uri(docname, target)
            pieces.append(nodes.reference("", m.group(0), refuri=uri, internal=True, classes=["theorem-ref"]))
            pos = m.end()
        if pieces:
            pieces.append(nodes.Text(source[pos:]))
            text.parent.replace(text, pieces)


def setup(app):
    app.connect("config-inited", generate, priority=400)
    app.connect("builder-inited", replace_downloads, priority=900)
    app.connect("missing-reference", resolve_alias)
    app.connect("build-finished", check_api_pages)
    app.connect("autodoc-skip-member", skip_namedtuple_fields)
    app.connect("doctree-resolved", link_sections)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
