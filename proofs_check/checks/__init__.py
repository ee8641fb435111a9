"""Theorem checks: importing this package registers each check (one module per theorem or tied group).

Modules are imported in the order of THEOREMS.md.
"""

import importlib
import pkgutil

_MODULES = sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))
for _name in _MODULES:
    importlib.import_module(f"{__name__}.{_name}")
