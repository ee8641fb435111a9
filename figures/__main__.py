"""``python -m figures [--out DIR] [--format png,pdf] [--seed S] [names...]``; ``--list`` lists the figures."""

from __future__ import annotations

import argparse
import sys
import time

from . import discover, get
from ._style import check_formats


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m figures", description="Regenerate linnet's figures.")
    parser.add_argument("names", nargs="*", metavar="name", help="figures to build (default: all)")
    parser.add_argument("--out", default="figures_out", help="output folder (default: figures_out)")
    parser.add_argument("--format", default="png", help="comma-separated formats among png,pdf (default: png)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--list", action="store_true", help="list the figures and exit")
    args = parser.parse_args(argv)
    NAMES = discover()

    if args.list:
        for i, name in enumerate(NAMES, start=1):
            mod = get(name)
            print(f"{i:2d}  {name:<18s} {mod.TITLE}  [{mod.SOURCE}]")
        return 0
    unknown = [n for n in args.names if n not in NAMES]
    if unknown:
        parser.error(f"unknown figure(s) {', '.join(unknown)}; choose from {', '.join(NAMES)}")
    try:
        formats = check_formats(args.format)
    except ValueError as exc:
        parser.error(str(exc))
    names = args.names or list(NAMES)
    t_all = time.perf_counter()
    for i, name in enumerate(names, start=1):
        print(f"[{i:2d}/{len(names)}] {name} ...", end="", flush=True)
        t0 = time.perf_counter()
        paths = get(name).make(args.out, seed=args.seed, formats=formats)
        print(f" {time.perf_counter() - t0:5.1f} s  -> {', '.join(str(p) for p in paths)}", flush=True)
    print(f"{len(names)} figure(s) in {time.perf_counter() - t_all:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
