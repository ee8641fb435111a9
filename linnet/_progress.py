"""Progress display of long computations on stderr (a tqdm bar when tqdm is installed: the ``progress`` extra).

A public function that may run long wraps its loop in :func:`task`; the loop calls :func:`tick` at points where
it synchronises with the host anyway. Nothing is shown unless asked (``progress=True``) or, by default
(``progress=None``), when stderr is a terminal, outside pytest and unless ``LINNET_PROGRESS=0``
(``LINNET_PROGRESS=1`` forces it on). Even then the bar appears only once the computation has run for
:data:`DELAY` seconds, so short calls stay silent. Without tqdm a plain one-line counter is written instead.
The display never changes a result.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import sys
import time
from typing import Any, Optional

from ._validate import check_bool

__all__ = ["DELAY", "task", "tick", "wanted"]

DELAY = 2.0  # seconds before a bar appears when not forced

_ACTIVE: contextvars.ContextVar = contextvars.ContextVar("linnet_progress", default=None)


def wanted(progress: Any) -> bool:
    """Whether to show progress: ``progress`` (a bool, or ``None`` for the automatic choice; see the module)."""
    if progress is not None:
        return check_bool(progress, "progress")
    env = os.environ.get("LINNET_PROGRESS", "").strip()
    if env in ("0", "1"):
        return env == "1"
    if "PYTEST_CURRENT_TEST" in os.environ:
        return False
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


class _Plain:
    """Fallback without tqdm: ``desc: n/total`` rewritten in place on stderr, at most twice a second."""

    def __init__(self, total: Optional[int], desc: str, unit: str, delay: float):
        self.total, self.desc, self.unit, self.delay = total, desc, unit, delay
        self.n, self.t0, self.last, self.shown = 0, time.monotonic(), 0.0, False

    def update(self, k: int) -> None:
        self.n += k
        now = time.monotonic()
        if now - self.t0 >= self.delay and now - self.last >= 0.5:
            self.last, self.shown = now, True
            of = f"/{self.total}" if self.total else ""
            sys.stderr.write(f"\r{self.desc}: {self.n}{of} {self.unit} ({now - self.t0:.0f} s)")
            sys.stderr.flush()

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _bar(total: Optional[int], desc: str, unit: str, delay: float):
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _Plain(total, desc, unit, delay)
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, delay=delay, leave=False, dynamic_ncols=True)


@contextlib.contextmanager
def task(desc: str, *, total: Optional[int] = None, unit: str = "it", progress: Any = None):
    """Show the progress of the computation inside the ``with`` block (if :func:`wanted`); yields nothing useful."""
    if not wanted(progress):
        yield None
        return
    bar = _bar(total, desc, unit, 0.0 if progress is True else DELAY)
    token = _ACTIVE.set(bar)
    try:
        yield bar
    finally:
        _ACTIVE.reset(token)
        bar.close()


def tick(position: Optional[int] = None) -> None:
    """Advance the active bar to ``position`` (or by one); a no-op when no progress is shown."""
    bar = _ACTIVE.get()
    if bar is None:
        return
    bar.update(1 if position is None else max(0, int(position) - int(bar.n)))
