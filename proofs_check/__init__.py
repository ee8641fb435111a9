"""proofs_check: every theorem of THEOREMS.md as an executable check with a negative control.

Run ``python -m proofs_check`` for the verdict table.
"""

from ._core import REGISTRY, Check, Context, Measurement, Verdict, all_checks, register, run_check

__all__ = ["Check", "Context", "Measurement", "Verdict", "REGISTRY", "register", "all_checks", "run_check"]
