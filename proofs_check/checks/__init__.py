"""Theorem checks: importing this package registers each check (one module per theorem or tied group).

Modules are imported in sorted filename order, which follows THEOREMS.md. A module that fails to import does not
stop the others: it is registered as a check that fails with the import error, so the run reports it.
"""

import importlib
import pkgutil
import traceback

from .._core import REGISTRY, Check, Measurement

_MODULES = sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def _broken(name: str, exc: BaseException) -> Check:
    message = "".join(traceback.format_exception_only(type(exc), exc)).strip()

    class ImportFailed(Check):
        id = f"{name}-import"
        title = f"module {name} failed to import"
        claim = message
        source = f"proofs_check/checks/{name}.py"
        status = "MIXED"
        control_description = "none: the module did not import"

        def measure(self, ctx):
            raise ImportError(message)

        def control(self, ctx):  # pragma: no cover - measure raises first
            return Measurement(float("nan"), float("nan"), True)

    return ImportFailed()


for _name in _MODULES:
    try:
        importlib.import_module(f"{__name__}.{_name}")
    except Exception as _exc:  # noqa: BLE001 - reported as a failing check, never swallowed
        _check = _broken(_name, _exc)
        REGISTRY[_check.id] = _check
