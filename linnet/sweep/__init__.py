"""Sweeps: grids (and random or Latin-hypercube samples) of configurations × seeds, in-process or on Dask.

``linnet.sweep`` needs the ``sweep`` extra (dask[distributed], pandas, pyarrow); ``import linnet`` never imports
it. Modules, one concept each:

- :mod:`.spec`: the TOML spec, validated before any work (:func:`load_spec`);
- :mod:`.seeding`: run seeds from (sweep seed, cell, run index);
- :mod:`.chunking`: the tasks (chunks of runs of one cell) and their size;
- :mod:`.runner`: one task, with linnet's public API;
- ``summaries``: the registry of extra per-run columns;
- :mod:`.backends`: in-process and Dask execution;
- :mod:`.storage`: Parquet per chunk and a manifest with the spec hash (resume, refusal of a changed spec);
- :mod:`.progress`, :mod:`.table` (per-cell summary), ``plot`` (phase diagram), ``api`` (:func:`run`).

Command line: ``python -m linnet.sweep SPEC.toml [--workers K | --scheduler ADDR] [--out DIR] [--chunk-size N]``.
"""

from .api import SweepResult, run
from .chunking import Chunk
from .plot import phase_diagram
from .spec import Cell, Spec, load_spec
from .summaries import SUMMARIES, RunContext, register
from .table import summarize

__all__ = [
    "run",
    "SweepResult",
    "load_spec",
    "Spec",
    "Cell",
    "Chunk",
    "summarize",
    "phase_diagram",
    "SUMMARIES",
    "RunContext",
    "register",
]
