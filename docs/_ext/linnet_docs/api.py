"""API reference pages, generated from each public module's ``__all__`` (so a new public name cannot be missed).

For every module of :data:`API_MODULES` the build writes ``generated/api/<module>.rst``: the module docstring,
then an ``autosummary`` table with one stub page per name of ``__all__`` (submodules named in ``__all__`` link to
their own module page instead). :func:`undocumented_modules` lists public ``linnet`` submodules that are neither
documented here nor fully re-exported by a documented module; :func:`api_modules` adds them after the curated
list, so a new public module gets its pages without anyone editing this file, and the tests check the result.
"""

from __future__ import annotations

import importlib
import inspect
import pathlib
import pkgutil
import types

__all__ = [
    "API_MODULES",
    "EXTENSION_MODULES",
    "api_modules",
    "public_names",
    "api_pages",
    "write_api_pages",
    "undocumented_modules",
    "canonical_names",
    "home_module",
]

#: The curated modules, in the order of the reference's table of contents (:func:`api_modules` adds the others).
API_MODULES = (
    "linnet",
    "linnet.init",
    "linnet.train",
    "linnet.train.observers",
    "linnet.train.observers.base",
    "linnet.train.driver",
    "linnet.theory",
    "linnet.landscape",
    "linnet.linalg",
    "linnet.product",
    "linnet.backend",
    "linnet.testing",
    "linnet.strategies",
    "linnet.diagonal",
    "linnet.tied",
    "linnet.ivp",
    "linnet.sweep",
    "linnet.sweep.backends",
    "linnet.sweep.chunking",
    "linnet.sweep.progress",
    "linnet.sweep.runner",
    "linnet.sweep.seeding",
    "linnet.sweep.spec",
    "linnet.sweep.storage",
    "linnet.sweep.table",
)

#: Public linnet modules that could not be imported while looking for undocumented ones (name -> error).
IMPORT_ERRORS: dict[str, str] = {}

#: The extension points (checks and figures), documented after the engine.
EXTENSION_MODULES = ("proofs_check", "figures")


def api_modules() -> tuple[str, ...]:
    """The documented linnet modules: :data:`API_MODULES`, then every other public module with an ``__all__``
    that the top level names as a submodule or whose names are not all documented already."""
    import linnet

    named = [f"linnet.{n}" for n in linnet.__all__ if isinstance(getattr(linnet, n), types.ModuleType)]
    extra = [m for m in named if m not in API_MODULES]
    extra += [m for m in undocumented_modules(API_MODULES + tuple(extra)) if m not in extra]
    return API_MODULES + tuple(extra)


def public_names(module: str) -> list[str]:
    """The ``__all__`` of a module (a module without ``__all__`` is an error: the reference would guess)."""
    mod = importlib.import_module(module)
    names = getattr(mod, "__all__", None)
    if names is None:
        raise ValueError(f"module {module!r} has no __all__; the API reference is built from it")
    return list(names)


def _is_module(module: str, name: str) -> bool:
    return isinstance(getattr(importlib.import_module(module), name), types.ModuleType)


def api_pages(modules=API_MODULES) -> dict[str, list[str]]:
    """``{module: [fully qualified names that get a stub page]}`` (submodules excluded: they have module pages)."""
    return {m: [f"{m}.{n}" for n in public_names(m) if not _is_module(m, n)] for m in modules}


def _module_page(module: str, modules) -> str:
    names = public_names(module)
    subs = [f"{module}.{n}" for n in names if _is_module(module, n)]
    objs = [n for n in names if not _is_module(module, n)]
    title = f"``{module}``"
    out = [
        title,
        "=" * len(title),
        "",
        f".. automodule:: {module}",
        "   :no-members:",
        "",
        f".. currentmodule:: {module}",
        "",
    ]
    if subs:
        out += ["Submodules", "----------", ""]
        out += [f"- :doc:`{s}`" for s in subs if s in modules]
        out += [f"- ``{s}``" for s in subs if s not in modules]
        out += [""]
    if objs:
        out += ["Public names", "------------", "", ".. autosummary::", "   :toctree: .", "   :nosignatures:", ""]
        out += [f"   {n}" for n in objs]
        out += [""]
    return "\n".join(out)


def write_api_pages(out_dir: pathlib.Path, modules=API_MODULES) -> list[str]:
    """Write one page per module into ``out_dir`` (emptied of stale pages first); returns the page names."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*.rst"):
        old.unlink()
    for m in modules:
        (out_dir / f"{m}.rst").write_text(_module_page(m, modules), encoding="utf-8")
    return list(modules)


def canonical_names(modules=API_MODULES) -> dict[int, str]:
    """``{id(object): documented name}`` for every documented class and function (first module wins)."""
    out: dict[int, str] = {}
    for m, names in api_pages(modules).items():
        mod = importlib.import_module(m)
        for full in names:
            obj = getattr(mod, full.rsplit(".", 1)[1])
            if inspect.isclass(obj) or inspect.isfunction(obj):
                out.setdefault(id(obj), full)
    return out


def home_module(name: str, modules) -> str | None:
    """The documented module that re-exports the public names of module ``name`` (``linnet.losses`` -> ``linnet``)."""
    try:
        mod = importlib.import_module(name)
    except ImportError:
        return None
    ids = {id(getattr(mod, n)) for n in getattr(mod, "__all__", ()) if hasattr(mod, n)}
    for m in modules:
        doc = importlib.import_module(m)
        if any(id(getattr(doc, n, None)) in ids for n in public_names(m)):
            return m
    return None


def undocumented_modules(modules=API_MODULES) -> list[str]:
    """Public ``linnet`` submodules whose public names are not all documented under some documented module."""
    import linnet

    documented = set()
    for m, names in api_pages(modules).items():
        mod = importlib.import_module(m)
        documented |= {id(getattr(mod, n.rsplit(".", 1)[1])) for n in names}
    missing = []
    for info in pkgutil.walk_packages(linnet.__path__, "linnet.", onerror=lambda name: None):
        if any(part.startswith("_") for part in info.name.split(".")) or info.name in modules:
            continue
        try:
            mod = importlib.import_module(info.name)
        except ImportError as exc:  # an optional dependency the docs extra lacks: reported by the build
            IMPORT_ERRORS[info.name] = f"{type(exc).__name__}: {exc}"
            continue
        names = getattr(mod, "__all__", None)
        if names is None:
            continue
        if any(
            id(getattr(mod, n)) not in documented for n in names if not isinstance(getattr(mod, n), types.ModuleType)
        ):
            missing.append(info.name)
    return missing
