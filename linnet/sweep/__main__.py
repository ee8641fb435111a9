"""``python -m linnet.sweep SPEC.toml [--workers K | --scheduler ADDR] [--out DIR] [--chunk-size N]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m linnet.sweep", description="Run a linnet sweep from a TOML spec.")
    p.add_argument("spec", help="sweep spec (TOML)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--workers", type=int, help="start a local Dask cluster of K worker processes")
    g.add_argument("--scheduler", help="address of an existing Dask scheduler, e.g. tcp://host:8786")
    p.add_argument("--out", default=None, help="results directory (default: sweep-<spec name>)")
    p.add_argument("--chunk-size", type=int, default=None, help="runs per task (default from memory)")
    p.add_argument("--no-plot", action="store_true", help="do not draw the phase diagram")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    a = p.parse_args(argv)
    from . import phase_diagram, run, summarize

    out = Path(a.out) if a.out else Path(f"sweep-{Path(a.spec).stem}")
    try:
        res = run(
            a.spec, out=out, workers=a.workers, scheduler=a.scheduler, chunk_size=a.chunk_size, progress=not a.quiet
        )
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        n = len(list((out / "chunks").glob("chunk-*.parquet"))) if (out / "chunks").is_dir() else 0
        print(f"interrupted: {n} chunks are in {out}; rerun the same command to resume", file=sys.stderr)
        return 130
    res.table.to_parquet(out / "table.parquet", index=False)
    summ = summarize(res.table)
    summ.to_csv(out / "summary.csv", index=False)
    if not a.no_plot:
        phase_diagram(summ, path=out / "phase_diagram.png")
    print(summ.to_string(index=False))
    print(f"{len(res.table)} runs ({len(res.computed)} chunks computed, {len(res.reused)} reused) -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
