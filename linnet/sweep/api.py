"""``linnet.sweep.run``: a sweep from its spec to its table."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, NamedTuple, Optional

import numpy as np

from .backends import make_backend
from .chunking import Chunk, auto_chunk_size, plan
from .progress import Progress
from .spec import load_spec
from .storage import Store

__all__ = ["run", "SweepResult"]


class SweepResult(NamedTuple):
    """What :func:`run` returns.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per run, sorted by ``(cell, run)`` (columns: :data:`linnet.sweep.runner.COLUMNS`, then the
        spec's summaries).
    computed : tuple of Chunk
        Chunks computed by this call.
    reused : tuple of Chunk
        Chunks found on disk and not recomputed.
    out : Path or None
    dashboard : str or None
        The Dask dashboard address, when a cluster was used.
    """

    table: Any
    computed: tuple
    reused: tuple
    out: Optional[Path]
    dashboard: Optional[str]


def _frame(cols_list):
    import pandas as pd

    return pd.concat([pd.DataFrame(c) for c in cols_list], ignore_index=True)


def _finish(table, spec):
    table = table.sort_values(["cell", "run"], kind="stable").reset_index(drop=True)
    expected = spec.n_runs
    keys = table["cell"].to_numpy() * spec.runs + table["run"].to_numpy()
    if len(table) != expected or len(np.unique(keys)) != expected:
        raise RuntimeError(f"sweep table has {len(table)} rows ({len(np.unique(keys))} distinct), expected {expected}")
    return table


def run(
    spec: Any,
    *,
    out: Any = None,
    workers: Optional[int] = None,
    scheduler: Optional[str] = None,
    client: Any = None,
    chunk_size: Optional[int] = None,
    progress: bool = True,
    on_chunk: Optional[Callable[[Chunk], None]] = None,
) -> SweepResult:
    """Run a sweep: every cell of ``spec`` times ``spec.runs`` seeds, chunk by chunk.

    Parameters
    ----------
    spec : path to a TOML file, mapping or Spec
        Validated entirely before any task is submitted (:func:`linnet.sweep.load_spec`).
    out : path, optional
        Results directory: each chunk is written there as it finishes, and a later call with the same spec
        resumes, computing only the missing runs. A directory of another spec is refused (``ValueError``).
        Without ``out`` nothing is written.
    workers : int, optional
        Start a local Dask cluster of that many single-threaded worker processes.
    scheduler : str, optional
        Address of an existing Dask scheduler.
    client : distributed.Client, optional
        An existing client (used as is, not closed).
    chunk_size : int, optional
        Runs per task (default from :data:`linnet.sweep.chunking.MEMORY_BUDGET`).
    progress : bool
        Chunks done / total, runs/s and ETA on stderr, and the dashboard address.
    on_chunk : callable, optional
        Called with each chunk after it is stored (hooks for tests and tools).

    Returns
    -------
    SweepResult

    Examples
    --------
    >>> import linnet.sweep as sw
    >>> res = sw.run({"runs": 4, "grid": {"scale": [0.1, 1.0]}, "train": {"steps": 300}}, progress=False)
    >>> len(res.table), list(sw.summarize(res.table)["frac_global"])
    (8, [1.0, 1.0])
    """
    spec = load_spec(spec)
    if chunk_size is None:
        chunk_size = auto_chunk_size(spec)
    elif isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ValueError(f"`chunk_size` must be an int >= 1, got {chunk_size!r}")
    chunk_size = int(chunk_size)
    store = Store(out, spec) if out is not None else None
    done = store.done() if store is not None else []
    chunks = plan(spec, chunk_size, done)
    backend = make_backend(workers=workers, scheduler=scheduler, client=client)
    prog = Progress(len(chunks), sum(c.n for c in chunks), enabled=progress)
    if backend.dashboard:
        prog.say(f"Dask dashboard: {backend.dashboard}")
    if done:
        prog.say(f"resuming: {len(done)} chunks on disk, {len(chunks)} to compute")
    computed, kept = [], []
    try:
        for ch, cols in backend.map(spec.raw, spec.cells, chunks):
            if store is not None:
                store.write(ch, cols)
            else:
                kept.append(cols)
            computed.append(ch)
            prog.update(ch.n)
            if on_chunk is not None:
                on_chunk(ch)
    finally:
        backend.close()
    table = store.read() if store is not None else (_frame(kept) if kept else None)
    table = _finish(table, spec)
    return SweepResult(table, tuple(computed), tuple(done), None if out is None else Path(out), backend.dashboard)
