"""Progress of a running sweep on stderr: chunks done / total, runs per second, ETA."""

from __future__ import annotations

import sys
import time

__all__ = ["Progress"]


class Progress:
    """Prints one line per finished chunk (nothing when ``enabled`` is false)."""

    def __init__(self, n_chunks: int, n_runs: int, *, enabled: bool = True, stream=None):
        self.n_chunks, self.n_runs = n_chunks, n_runs
        self.done_chunks = self.done_runs = 0
        self.enabled = enabled
        self.stream = sys.stderr if stream is None else stream
        self.t0 = time.perf_counter()

    def say(self, msg: str) -> None:
        if self.enabled:
            print(f"[linnet.sweep] {msg}", file=self.stream, flush=True)

    def update(self, runs: int) -> None:
        self.done_chunks += 1
        self.done_runs += runs
        dt = max(time.perf_counter() - self.t0, 1e-9)
        rate = self.done_runs / dt
        eta = (self.n_runs - self.done_runs) / rate if rate > 0 else float("inf")
        self.say(
            f"{self.done_chunks}/{self.n_chunks} chunks, {self.done_runs}/{self.n_runs} runs, "
            f"{rate:.1f} runs/s, ETA {eta:.0f} s"
        )
