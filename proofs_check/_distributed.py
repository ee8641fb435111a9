"""Run the selected checks on Dask's distributed scheduler: one task per check (``--workers K`` / ``--scheduler``).

The cluster comes from :class:`linnet.sweep.backends.DaskBackend` (a ``LocalCluster`` of ``K`` single-threaded
worker processes on 127.0.0.1, or a client of an existing scheduler), so ``proofs_check`` and ``linnet.sweep``
start and stop clusters the same way. Each task runs :func:`run_on_worker` on one check (pickled by reference to
its registered class) and the context; it returns the verdict and, when the check raised, its traceback as text.
The checks draw every random number from ``Context.rng(key)`` (seeded by the run's seed), so a verdict does not
depend on which worker ran it: the table and reports equal the in-process run's apart from the timings.
"""

from __future__ import annotations

import time
import traceback
import uuid
from typing import Callable, Iterator, Sequence

from . import _core

__all__ = ["EXTRA_MESSAGE", "dask_available", "connect", "run_on_worker", "run_checks"]

EXTRA_MESSAGE = (
    "--workers and --scheduler need Dask's distributed scheduler, from the `sweep` extra: pip install 'linnet[sweep]'"
)


def dask_available() -> bool:
    """Whether ``distributed`` imports here."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        return False
    return True


def _plain(v: _core.Verdict) -> _core.Verdict:
    """The verdict with its ``details`` as plain dicts (a ``mappingproxy`` default does not pickle)."""
    return v._replace(
        result=v.result._replace(details=dict(v.result.details)),
        control=v.control._replace(details=dict(v.control.details)),
    )


def run_on_worker(check: _core.Check, ctx: _core.Context) -> tuple[_core.Verdict, str | None]:
    """Run one check (as the in-process run does) and return ``(verdict, traceback text or None)``."""
    tb: list[str] = []

    def on_error(_check, exc):
        tb.append("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))

    t0 = time.perf_counter()
    v = _core.run_check(check, ctx, on_error=on_error)
    if tb:  # run_check reports no time for a crash: keep the wall time spent, as the in-process run does
        v = v._replace(seconds=time.perf_counter() - t0)
    return _plain(v), (tb[0] if tb else None)


def connect(*, workers: int | None = None, scheduler: str | None = None):
    """The ``linnet.sweep`` Dask backend (its ``client``, ``dashboard`` and ``close()``) for these options.

    Raises ``ValueError`` naming the address when no scheduler answers there (after Dask's connect timeout).
    """
    from linnet.sweep.backends import make_backend

    try:
        return make_backend(workers=workers, scheduler=scheduler)
    except (OSError, TimeoutError) as exc:
        if scheduler is None:
            raise
        raise ValueError(
            f"`--scheduler`: no Dask scheduler answers at {scheduler!r} ({type(exc).__name__}: {exc})"
        ) from exc


def run_checks(
    checks: Sequence[_core.Check],
    ctx: _core.Context,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    on_start: Callable[[str | None], None] | None = None,
) -> Iterator[tuple[int, _core.Verdict, str | None]]:
    """Submit one task per check; yield ``(index in checks, verdict, traceback or None)`` in completion order.

    Raises ``ValueError`` (before any task) when ``scheduler`` does not answer. A task that fails outside the check (its worker lost more often than the scheduler allows, a check that does not
    pickle) becomes an error verdict for that check, as a crash in the check would. ``on_start`` receives the
    dashboard address once the cluster is up. The cluster started here is closed when the iterator finishes.
    """
    from distributed import as_completed

    backend = connect(workers=workers, scheduler=scheduler)
    try:
        if on_start is not None:
            on_start(backend.dashboard)
        tag = uuid.uuid4().hex[:12]  # fresh keys per run: two runs on one scheduler never share a task
        futs = {}
        for i, check in enumerate(checks):
            f = backend.client.submit(run_on_worker, check, ctx, key=f"proofs_check-{tag}-{i}-{check.id}")
            futs[f] = i
        try:
            for f in as_completed(futs):
                i = futs[f]
                try:
                    v, tb = f.result()
                except Exception as exc:  # noqa: BLE001 - a task lost is a failure of that check, reported
                    v = _core.error_verdict(checks[i], exc)
                    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
                f.release()
                yield i, v, tb
        finally:
            backend.client.cancel([f for f in futs if not f.done()])
    finally:
        backend.close()
