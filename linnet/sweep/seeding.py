"""Seeds of a sweep: every run's generator derives from (sweep seed, cell, run index) alone.

``numpy.random.SeedSequence([seed, cell, run])`` gives independent, reproducible streams, so a run's initial
weights (and hence its row of the table) do not depend on how runs are grouped into chunks, on the number of
workers, or on the scheduler.
"""

from __future__ import annotations

import numpy as np

__all__ = ["run_rng", "problem_rng", "PROBLEM_TAG"]

#: Second word of the problem's seed sequence; a run's sequence has the cell index (>= 0) there instead, so the
#: two never coincide.
PROBLEM_TAG = 2**32 - 1


def run_rng(seed: int, cell: int, run: int) -> np.random.Generator:
    """The generator of run ``run`` of cell ``cell``."""
    return np.random.default_rng(np.random.SeedSequence([seed, cell, run]))


def problem_rng(seed: int) -> np.random.Generator:
    """The generator of the sweep's problem (target and data), shared by every cell."""
    return np.random.default_rng(np.random.SeedSequence([seed, PROBLEM_TAG]))
