"""``python -m proofs_check``: run every registered theorem check and print the verdict table.

Exit status: 0 when every selected check holds and every negative control fails as it must; 1 when a check
fails, crashes, or its control holds (a defect of the check); 2 on a usage error (bad option, no check selected,
backend not available here, ``--workers``/``--scheduler`` without the ``sweep`` extra).

``--workers K`` (a local Dask cluster of K worker processes) or ``--scheduler ADDRESS`` (an existing Dask
scheduler) runs each selected check as one task (``proofs_check/_distributed.py``); the table and reports are
in the registry's order and equal the in-process run's for the same seed and scale, apart from timings.

Progress goes to stderr, one line when a check starts and one when it ends, so the table on stdout stays clean
when piped; ``--quiet`` silences it.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from typing import Sequence, TextIO

from . import _core
from . import report as _report

__all__ = ["main", "build_parser", "select"]

LIST_WIDTH = 100  # ``--list`` lines fit this many columns (title and source clipped with an ellipsis)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m proofs_check",
        description=(
            "Run each theorem of THEOREMS.md as a numerical check with a negative control. "
            "Exit status 0 iff every check holds and every control fails."
        ),
    )
    p.add_argument("--list", action="store_true", help="list the selected checks and exit")
    p.add_argument(
        "-k",
        dest="select",
        action="append",
        default=[],
        metavar="SUBSTR",
        help="select checks whose id or title contains SUBSTR (case-insensitive); repeat or comma-separate for several",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--dtype", choices=("float64", "float32"), default="float64", help="floating dtype (default float64)"
    )
    p.add_argument(
        "--backend",
        choices=("numpy", "array_api_strict", "cupy"),
        default="numpy",
        help="array backend the engine runs on (default numpy)",
    )
    p.add_argument(
        "--scale", choices=("quick", "full"), default="quick", help="quick: CI sizes; full: ensembles for a GPU"
    )
    p.add_argument("--json", metavar="PATH", help="write the verdicts and run metadata as JSON")
    p.add_argument("--report", metavar="PATH.md", help="write a Markdown report")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--workers",
        type=_positive_int,
        metavar="K",
        help="run each check as a task on a local Dask cluster of K worker processes (needs the `sweep` extra)",
    )
    where.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run each check as a task on the Dask scheduler at ADDRESS, e.g. tcp://host:8786 (needs `sweep`)",
    )
    return p


def _positive_int(text: str) -> int:
    """argparse type of ``--workers``: an int >= 1."""
    try:
        k = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int >= 1, got {text!r}") from None
    if k < 1:
        raise argparse.ArgumentTypeError(f"expected an int >= 1, got {k}")
    return k


def _patterns(raw: Sequence[str]) -> list[str]:
    return [s.strip().lower() for item in raw for s in item.split(",") if s.strip()]


def select(checks: Sequence[_core.Check], raw_patterns: Sequence[str]) -> list[_core.Check]:
    """Checks whose id or title contains any of the patterns (all checks when there is none)."""
    pats = _patterns(raw_patterns)
    if not pats:
        return list(checks)
    return [c for c in checks if any(p in c.id.lower() or p in c.title.lower() for p in pats)]


def _backend_ok(name: str) -> str | None:
    """``None`` if the backend imports (and, for cupy, sees a device), else the reason."""
    from linnet.backend import available_backends

    if name in available_backends():
        return None
    return f"backend {name!r} is not available here (available: {', '.join(available_backends())})"


def _progress(stream: TextIO | None, text: str) -> None:
    if stream is not None:
        print(text, file=stream, flush=True)


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Entry point; returns the exit status."""
    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    args = build_parser().parse_args(argv)
    try:
        checks = _core.all_checks()
    except Exception:  # noqa: BLE001 - a check module that does not import is a failure, reported
        print("error: the check modules failed to import:\n" + traceback.format_exc(), file=stderr)
        return 1
    chosen = select(checks, args.select)
    if not chosen:
        why = f"matches -k {', '.join(_patterns(args.select))}" if args.select else "is registered"
        print(f"error: no check {why}", file=stderr)
        return 2

    if args.list:
        _print_list(chosen, stdout)
        return 0

    reason = _backend_ok(args.backend)
    if reason:
        print(f"error: {reason}", file=stderr)
        return 2
    ctx = _core.Context(backend=args.backend, dtype=args.dtype, seed=args.seed, scale=args.scale)
    meta = _report.metadata(ctx, argv=list(argv) if argv is not None else None)
    progress = _Progress(None if args.quiet else stderr, stderr, len(chosen))
    progress.line(f"proofs_check: {len(chosen)} checks on {ctx.backend}/{ctx.dtype}, seed {ctx.seed}, {ctx.scale}")

    t_all = time.perf_counter()
    if args.workers is not None or args.scheduler is not None:
        verdicts = _run_distributed(chosen, ctx, args.workers, args.scheduler, progress)
        if verdicts is None:
            return 2
    else:
        verdicts = _run_in_process(chosen, ctx, progress)
    progress.line(f"proofs_check: done in {time.perf_counter() - t_all:.1f} s")

    print(_report.format_table(verdicts), file=stdout)
    print("", file=stdout)
    print(_report.summary_line(verdicts), file=stdout)
    if args.json:
        _report.write_json(args.json, _report.to_json(verdicts, meta, tracebacks=progress.tracebacks))
    if args.report:
        _report.write_markdown(args.report, _report.to_markdown(verdicts, meta, chosen))
    return 0 if all(v.ok for v in verdicts) else 1


def _print_list(chosen: Sequence[_core.Check], stdout: TextIO) -> None:
    """``--list``: one line per check (id, status, title, source), clipped to :data:`LIST_WIDTH` columns."""
    w0 = max(len(c.id) for c in chosen)
    w1 = max(len(c.status) for c in chosen)
    title_w = max(LIST_WIDTH - w0 - w1 - 6 - 20, 10)  # leaves 20 columns for the source
    rows = [(c.id, c.status, _report._clip(c.title, title_w), c.source) for c in chosen]
    w2 = max(len(r[2]) for r in rows)
    for r in rows:
        head = f"{r[0]:<{w0}}  {r[1]:<{w1}}  {r[2]:<{w2}}  "
        print((head + _report._clip(r[3], max(LIST_WIDTH - len(head), 1))).rstrip(), file=stdout)


class _Progress:
    """The progress lines of a run (to ``prog``, ``None`` when quiet) and the tracebacks of the checks that
    crashed (printed to ``stderr`` even when quiet, and kept for the JSON report)."""

    def __init__(self, prog: TextIO | None, stderr: TextIO, n: int) -> None:
        self.prog, self.stderr, self.n = prog, stderr, n
        self.tracebacks: dict[str, str] = {}

    def line(self, text: str) -> None:
        _progress(self.prog, text)

    def tag(self, i: int, check: _core.Check) -> str:
        """``[i/n] id``, the prefix of a check's lines."""
        return f"[{i:>{len(str(self.n))}}/{self.n}] {check.id}"

    def on_error(self, check, exc) -> None:
        self.tracebacks[check.id] = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))

    def done(self, tag: str, check: _core.Check, v) -> None:
        """The line that ends a check: verdict, control, measurement (or the crash's note) and time."""
        _progress(
            self.prog,
            f"{tag}: {_report.verdict_word(v)}, control {_report.control_word(v)} "
            f"({_report.format_measurement(v.result) if not _report.is_error(v) else v.result.note}) "
            f"{v.seconds:.1f} s",
        )
        if check.id in self.tracebacks:
            _progress(self.stderr, self.tracebacks[check.id].rstrip())


def _run_in_process(chosen: Sequence[_core.Check], ctx: _core.Context, progress: _Progress) -> list:
    """The verdicts of ``chosen``, run one after the other in this process."""
    verdicts = []
    for i, check in enumerate(chosen, start=1):
        tag = progress.tag(i, check)
        progress.line(f"{tag} ... {check.title}")
        t0 = time.perf_counter()
        v = _core.run_check(check, ctx, on_error=progress.on_error)
        if _report.is_error(v):  # run_check reports no time for a crash: keep the wall time spent
            v = v._replace(seconds=time.perf_counter() - t0)
        verdicts.append(v)
        progress.done(tag, check, v)
    return verdicts


def _run_distributed(
    chosen: Sequence[_core.Check], ctx: _core.Context, workers: int | None, scheduler: str | None, progress: _Progress
) -> list | None:
    """The verdicts of ``chosen``, each run as a Dask task (``workers`` local processes or the ``scheduler``),
    in the registry's order; ``None``, after the error is printed, when Dask or the scheduler is missing."""
    from . import _distributed

    if not _distributed.dask_available():
        print(f"error: {_distributed.EXTRA_MESSAGE}", file=progress.stderr)
        return None
    n = progress.n
    where = f"{workers} local workers" if workers is not None else f"scheduler {scheduler}"
    slots: list = [None] * n
    runs = _distributed.run_checks(
        chosen,
        ctx,
        workers=workers,
        scheduler=scheduler,
        on_start=lambda dash: progress.line(f"proofs_check: {n} tasks on {where} (dashboard {dash})"),
    )
    try:
        for k, (i, v, tb) in enumerate(runs, start=1):  # completion order; the table keeps the registry's
            if tb is not None:
                progress.tracebacks[chosen[i].id] = tb
            slots[i] = v
            progress.done(progress.tag(k, chosen[i]), chosen[i], v)
    except ValueError as exc:  # raised before any task: the scheduler does not answer
        print(f"error: {exc}", file=progress.stderr)
        return None
    return slots
