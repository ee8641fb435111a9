"""Chunks: the tasks of a sweep. A chunk is runs ``[start, stop)`` of one cell, trained as one batch of nets.

Chunks cover exactly the runs not yet on disk (:func:`plan`), so a resumed sweep recomputes only what is missing,
whatever chunk size the earlier, interrupted sweep used.
"""

from __future__ import annotations

from typing import Iterable, NamedTuple

__all__ = ["Chunk", "plan", "auto_chunk_size", "MEMORY_BUDGET"]

#: Bytes one task may use for its batch (weights, gradients, momentum, recorded losses, dense Hessians).
MEMORY_BUDGET = 64 * 2**20
#: Upper bound on the automatic chunk size (larger batches gain little and make progress coarse).
MAX_CHUNK = 1024


class Chunk(NamedTuple):
    cell: int
    start: int
    stop: int

    @property
    def n(self) -> int:
        return self.stop - self.start

    @property
    def name(self) -> str:
        return f"chunk-{self.cell:06d}-{self.start:09d}-{self.stop:09d}"


def auto_chunk_size(spec) -> int:
    """Largest chunk whose per-net memory (float64) fits :data:`MEMORY_BUDGET`, in ``[1, min(runs, MAX_CHUNK)]``.

    Per net: about 6 copies of its parameters (weights, gradients, momentum, work buffers), one recorded loss per
    step, and with ``classify`` a dense Hessian and its eigen-decomposition (2 P^2).
    """
    worst = 1
    for cell in spec.cells:
        w = spec.widths(cell)
        P = sum(a * b for a, b in zip(w[:-1], w[1:]))
        per = 8 * (6 * P + spec.train["steps"] + 1 + (2 * P * P if spec.train["classify"] else 0))
        worst = max(worst, per)
    return max(1, min(spec.runs, MAX_CHUNK, MEMORY_BUDGET // worst))


def plan(spec, chunk_size: int, done: Iterable[Chunk] = ()) -> list[Chunk]:
    """The chunks (of at most ``chunk_size`` runs) covering every run of ``spec`` not covered by ``done``."""
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"`chunk_size` must be an int >= 1, got {chunk_size!r}")
    covered: dict[int, list] = {}
    for c in done:
        covered.setdefault(c.cell, []).append((c.start, c.stop))
    out = []
    for cell in spec.cells:
        i = 0
        for a, b in sorted(covered.get(cell.index, [])) + [(spec.runs, spec.runs)]:
            while i < a:  # the gap [i, a) is missing
                j = min(a, i + chunk_size)
                out.append(Chunk(cell.index, i, j))
                i = j
            i = max(i, b)
    return out
