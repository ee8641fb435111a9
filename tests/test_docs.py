"""The documentation site covers the API, the specification and the demos (docs/_ext/linnet_docs).

The fast tests check the generators without building; ``test_site_builds`` (slow) builds the site with warnings as
errors and counts its pages. CI builds the site in ``.ci/run`` as well.
"""

import importlib.util
import pathlib
import subprocess
import sys
import types

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXT = ROOT / "docs" / "_ext" / "linnet_docs"


def _load(name):
    """A module of the docs extension, loaded from its file (the package itself needs Sphinx)."""
    spec = importlib.util.spec_from_file_location(f"linnet_docs_{name}", EXT / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


api = _load("api")


def _ext(name):
    """A module of the docs extension package (skipped without the docs extra, which brings Sphinx)."""
    pytest.importorskip("sphinx")
    pytest.importorskip("markdown_it")
    sys.path.insert(0, str(EXT.parent))
    try:
        return importlib.import_module(f"linnet_docs.{name}")
    finally:
        sys.path.remove(str(EXT.parent))


def _autosummary_entries(page: str) -> list[str]:
    lines = page.split("\n")
    start = lines.index(".. autosummary::")
    return [ln.strip() for ln in lines[start + 1 :] if ln.startswith("   ") and not ln.strip().startswith(":")]


def test_every_public_name_has_an_api_page(tmp_path):
    """Each name of each documented module's __all__ is an autosummary entry (a stub page) or a module page."""
    required = {
        "linnet",
        "linnet.train",
        "linnet.theory",
        "linnet.landscape",
        "linnet.init",
        "linnet.strategies",
        "linnet.testing",
        "linnet.linalg",
    }
    modules = api.api_modules()
    assert required <= set(modules)
    api.write_api_pages(tmp_path, modules)
    for module in modules:
        page = (tmp_path / f"{module}.rst").read_text()
        entries = set(_autosummary_entries(page)) if ".. autosummary::" in page else set()
        mod = importlib.import_module(module)
        for name in mod.__all__:
            if isinstance(getattr(mod, name), types.ModuleType):
                assert f"{module}.{name}" in modules, f"submodule {module}.{name} has no page"
            else:
                assert name in entries, f"{module}.{name} has no API page"


def test_no_public_linnet_module_is_left_out(monkeypatch):
    """Every public linnet submodule with an __all__ is documented, or all its names are re-exported by one that is;
    a module the curated list lacks is found and added."""
    assert api.undocumented_modules(api.api_modules()) == []
    curated = tuple(m for m in api.API_MODULES if m != "linnet.testing")
    monkeypatch.setattr(api, "API_MODULES", curated)
    assert api.undocumented_modules(curated) == ["linnet.testing"]
    assert "linnet.testing" in api.api_modules()


def test_a_new_name_gets_a_page_and_a_module_without_all_is_refused(tmp_path, monkeypatch):
    """The pages come from __all__: a name added there appears; a module without __all__ is an error."""
    fake = types.ModuleType("linnet_fake_docs_mod")
    fake.__all__ = ["brand_new"]
    fake.brand_new = lambda: None
    monkeypatch.setitem(sys.modules, "linnet_fake_docs_mod", fake)
    api.write_api_pages(tmp_path, ("linnet_fake_docs_mod",))
    assert _autosummary_entries((tmp_path / "linnet_fake_docs_mod.rst").read_text()) == ["brand_new"]
    del fake.__all__
    with pytest.raises(ValueError, match="__all__"):
        api.write_api_pages(tmp_path, ("linnet_fake_docs_mod",))


def test_the_specification_splits_into_sections_0_to_22():
    """THEOREMS.md holds §0-§14 and THEOREMS2.md §15-§22, each with a status line from §1 on, every check mapped."""
    th = _ext("theorems")
    numbers = []
    for fname in ("THEOREMS.md", "THEOREMS2.md"):
        pre, secs, notes = th.split_spec((ROOT / "docs" / fname).read_text(), fname)
        assert pre and notes, fname
        numbers += [s.number for s in secs]
        for s in secs:
            labels, paragraphs = th.status_labels(s.body)
            if s.number > 0:
                assert labels and paragraphs, f"§{s.number} shows no status label"
    assert numbers == list(range(23))
    from proofs_check import all_checks

    for c in all_checks():
        assert th.check_section(c.id) in numbers, c.id
    assert th.section_numbers("THEOREMS.md §5-§6, §11") == {5, 6, 11}
    assert th.check_section("s05b-saddles") == 5 and th.check_section("import-x") is None


def test_demos_convert_for_the_gallery():
    """Each demo becomes a sphinx-gallery script: a titled docstring, every code cell verbatim, clean RST prose."""
    jupytext = pytest.importorskip("jupytext")
    demos, mdrst = _ext("demos"), _ext("mdrst")
    from docutils.core import publish_doctree

    paths = demos.demo_paths(ROOT)
    assert len(paths) >= 8
    for path in paths:
        text = path.read_text()
        out = demos.convert_demo(text)
        compile(out, path.name, "exec")
        nb = jupytext.reads(text, fmt="py:percent")
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.source.rstrip("\n") in out, f"{path.name}: a code cell changed"
        prose = "\n\n".join(mdrst.md_to_rst(c.source) for c in nb.cells if c.cell_type == "markdown")
        doc = publish_doctree(prose, settings_overrides={"report_level": 2, "halt_level": 2})
        assert doc.children[0].tagname in ("title", "section"), path.name
    with pytest.raises(ValueError, match="title"):
        demos.convert_demo("# %% [markdown]\n# no title here\n\n# %%\nx = 1\n")
    with pytest.raises(ValueError, match="not supported"):
        mdrst.md_to_rst("| a | b |\n|---|---|\n\n<div>html</div>\n")


def test_markdown_to_rst_keeps_maths_and_markup():
    """Inline and display maths, emphasis, code and lists come out as their reStructuredText forms."""
    mdrst = _ext("mdrst")
    rst = mdrst.md_to_rst("# T\n\n**Claim** $a_1$s and `x*`.\n\n$$u=1$$\n\n1. one\n2. two\n")
    assert rst.startswith("T\n=\n")
    assert "**Claim** :math:`a_1`\\ s and ``x*``" in rst
    assert ".. math::\n\n   u=1" in rst
    assert "1. one\n2. two" in rst


def test_getting_started_code_runs():
    """The Python blocks of the getting-started page run in order and do what their comments say."""
    import re

    page = (ROOT / "docs" / "getting_started.rst").read_text()
    blocks = re.findall(r"\.\. code-block:: python\n\n((?:   .*\n|\n)+)", page)
    assert len(blocks) >= 2
    ns = {}
    for block in blocks:
        exec(compile("\n".join(line[3:] for line in block.split("\n")), "getting_started.rst", "exec"), ns)
    assert tuple(ns["ln"].end_to_end(ns["Ws"]).shape) == (256, 3, 4)
    assert ns["L"].shape == (256,) and len(ns["G"]) == 3
    assert -1e-12 <= ns["gap"] < 1e-6


@pytest.mark.slow
def test_site_builds(tmp_path):
    """The README command's build succeeds with -W -n, and every API name and every demo has its HTML page."""
    pytest.importorskip("sphinx")
    pytest.importorskip("sphinx_gallery")
    out = tmp_path / "html"
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-q", "docs", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    for names in api.api_pages(api.api_modules() + api.EXTENSION_MODULES).values():
        for name in names:
            assert (out / "generated" / "api" / f"{name}.html").exists(), name
    demo_pages = sorted((out / "auto_demos").glob("[0-9][0-9]_*.html"))
    assert len(demo_pages) >= 8
    for page in demo_pages:
        assert "sphx-glr-single-img" in page.read_text() or "sphx-glr-multi-img" in page.read_text(), page.name
    assert len(list((out / "generated" / "theorems").glob("s[0-9][0-9].html"))) == 23
