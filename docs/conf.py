"""Sphinx configuration of linnet's documentation site.

Build it with ``python -m sphinx -W --keep-going -n docs docs/_build/html`` (after ``pip install -e ".[docs]"``).
Environment variables for faster local builds: ``LINNET_DOCS_SKIP_CHECKS=1`` skips the proofs_check run,
``LINNET_DOCS_SKIP_GALLERY=1`` does not execute the demos. CI sets neither.
"""

import os
import pathlib
import sys

DOCS = pathlib.Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))  # the checkout's linnet, proofs_check and figures, not an installed copy
sys.path.insert(0, str(DOCS / "_ext"))

from linnet_docs.api import EXTENSION_MODULES, api_modules  # noqa: E402

import linnet  # noqa: E402

project = "linnet"
author = "the linnet developers"
copyright = "the linnet developers, BSD-3-Clause"
version = release = linnet.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx.ext.intersphinx",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
    "linnet_docs",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = [
    "_build",
    "generated/demos_src",
    "THEOREMS.md",
    "THEOREMS2.md",
    "auto_demos/*.ipynb",
    "**.md5",
    "gallery",
]
templates_path = ["_templates"]
nitpicky = True
html_theme = "furo"
html_title = f"linnet {release}"
pygments_style = "sphinx"
suppress_warnings = []

# ---- API reference ----
# the module pages are written by linnet_docs at config-inited; naming them keeps stub generation incremental-safe
autosummary_generate = [f"generated/api/{m}.rst" for m in api_modules() + EXTENSION_MODULES]
autosummary_imported_members = True
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "none"  # numpydoc's Parameters sections carry the types
numpydoc_show_class_members = False
numpydoc_xref_param_type = False
numpydoc_validation_checks = set()
add_module_names = False

# intersphinx: no network at build time on CI machines, so external names are listed below instead
intersphinx_mapping = {}

nitpick_ignore_regex = [
    (r"py:.*", r"(linnet|proofs_check|figures)\.(.*\.)?_.*"),  # private helpers named in docstrings
    (r"py:.*", r"_.*"),
    (r"py:.*", r"(numpy|np|scipy|cupy|hypothesis|matplotlib|array_api_strict|array_api_compat)(\..*)?"),
    (r"py:class", r"(Array|ArrayLike|Sequence|Callable|Any|NamedTuple|typing\..*|collections\..*|optional)"),
    (r"py:class", r"(int|float|bool|str|tuple|list|dict|None|object|type|complex|slice)"),
]

# ---- MyST (theorem pages) ----
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3

# ---- sphinx-gallery (demos) ----
sphinx_gallery_conf = {
    "examples_dirs": ["generated/demos_src"],
    "gallery_dirs": ["auto_demos"],
    "filename_pattern": r"/\d\d_",  # every demo runs
    "ignore_pattern": r"__init__\.py",
    "plot_gallery": os.environ.get("LINNET_DOCS_SKIP_GALLERY", "").strip() in ("", "0"),
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
    "reset_modules": ("matplotlib",),
    "capture_repr": (),
    "show_memory": False,
    "show_signature": False,
    "min_reported_time": 1e9,
    "write_computation_times": False,
}
