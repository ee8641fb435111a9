"""Execution backends: where chunks run. In-process by default; Dask's distributed scheduler on request.

A backend has ``map(raw, cells, chunks)``, an iterator of ``(chunk, columns)`` in completion order, ``dashboard``
(an address or ``None``) and ``close()``. Results come back to the caller, which writes them: workers need no
shared file system.

The Dask backend (Dask's own scheduler, nothing home-made) starts a ``distributed.LocalCluster`` of
``workers`` single-threaded processes on 127.0.0.1, or connects to the scheduler at ``scheduler``, or uses a
given ``distributed.Client``. A worker that dies mid-task is replaced by its nanny and the scheduler
reruns its tasks elsewhere (``retries`` more attempts on errors); each chunk's result is taken once.
"""

from __future__ import annotations

import dataclasses
import uuid

from .runner import run_chunk

__all__ = ["InProcess", "DaskBackend", "make_backend"]

#: Extra attempts of a task that raised (a killed worker is rescheduled by Dask independently of this).
RETRIES = 3


class InProcess:
    """Runs every chunk in this process, in order."""

    dashboard = None

    def map(self, raw, cells, chunks):
        for ch in chunks:
            yield ch, run_chunk(raw, dataclasses.asdict(cells[ch.cell]), ch.start, ch.stop)

    def close(self):
        pass


class DaskBackend:
    """Runs chunks as Dask tasks (one task per chunk)."""

    def __init__(self, *, workers=None, scheduler=None, client=None):
        from distributed import Client, LocalCluster

        self._own = []
        if client is not None:
            self.client = client
        elif scheduler is not None:
            self.client = Client(scheduler)
            self._own = [self.client]
        else:
            cluster = LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0"
            )
            self.client = Client(cluster)
            self._own = [self.client, cluster]
        self.dashboard = getattr(self.client, "dashboard_link", None)

    def map(self, raw, cells, chunks):
        from distributed import as_completed

        tag = uuid.uuid4().hex[:12]  # fresh keys per call: a resumed sweep never meets the cancelled tasks of the last
        futs = {}
        for ch in chunks:
            f = self.client.submit(
                run_chunk,
                raw,
                dataclasses.asdict(cells[ch.cell]),
                ch.start,
                ch.stop,
                key=f"linnet-sweep-{tag}-{ch.name}",
                retries=RETRIES,
            )
            futs[f] = ch
        try:
            for f in as_completed(futs):
                cols = f.result()
                f.release()
                yield futs[f], cols
        finally:
            self.client.cancel([f for f in futs if not f.done()])

    def close(self):
        for obj in self._own:
            obj.close()


def make_backend(*, workers=None, scheduler=None, client=None):
    """In-process unless one of ``workers`` (int >= 1), ``scheduler`` (address) or ``client`` is given."""
    given = [n for n, v in (("workers", workers), ("scheduler", scheduler), ("client", client)) if v is not None]
    if len(given) > 1:
        raise ValueError(f"give at most one of `workers`, `scheduler`, `client`; got {', '.join(given)}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"`workers` must be an int >= 1, got {workers!r}")
    if scheduler is not None and (not isinstance(scheduler, str) or not scheduler):
        raise ValueError(f"`scheduler` must be an address such as 'tcp://host:8786', got {scheduler!r}")
    if not given:
        return InProcess()
    return DaskBackend(workers=workers, scheduler=scheduler, client=client)
