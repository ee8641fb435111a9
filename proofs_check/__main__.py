"""``python -m proofs_check``: the verdict table of every theorem check (see :mod:`proofs_check.cli`)."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
