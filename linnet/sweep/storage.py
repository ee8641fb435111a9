"""A sweep's directory: ``manifest.json`` (the spec and its hash) and one Parquet file per finished chunk.

Each chunk is written as soon as it finishes, to a temporary name then renamed, so a file on disk is always
complete. Plain dtypes only (int64, float64, str): no pickle. A directory whose manifest holds another spec hash
is refused: results of two different specs are never mixed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .chunking import Chunk

__all__ = ["Store"]

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


class Store:
    """The on-disk results of one sweep spec (``out`` is created when missing)."""

    def __init__(self, out, spec):
        self.out = Path(out)
        self.chunks_dir = self.out / "chunks"
        self.spec = spec
        man = self.out / MANIFEST
        h = spec.hash()
        if man.exists():
            old = json.loads(man.read_text())
            if old.get("spec_hash") != h:
                changed = sorted(
                    k for k in set(old.get("spec", {})) | set(spec.raw) if old.get("spec", {}).get(k) != spec.raw.get(k)
                )
                raise ValueError(
                    f"sweep spec changed since the results in {str(self.out)!r} were written "
                    f"(spec hash {old.get('spec_hash', '?')[:12]} on disk, {h[:12]} now; differing keys: "
                    f"{', '.join(changed) or '?'}); refusing to mix them: use another `out` or remove that directory"
                )
        else:
            self.out.mkdir(parents=True, exist_ok=True)
            tmp = man.with_suffix(".tmp")
            tmp.write_text(json.dumps({"format": FORMAT_VERSION, "spec_hash": h, "spec": spec.raw}, indent=1))
            os.replace(tmp, man)
        self.chunks_dir.mkdir(exist_ok=True)

    def done(self) -> list[Chunk]:
        """Chunks already on disk."""
        out = []
        for p in self.chunks_dir.glob("chunk-*.parquet"):
            _, c, a, b = p.stem.split("-")
            out.append(Chunk(int(c), int(a), int(b)))
        return sorted(out)

    def write(self, chunk: Chunk, cols: dict) -> Path:
        """Write one finished chunk atomically."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({k: pa.array(np.asarray(v)) for k, v in cols.items()})
        path = self.chunks_dir / f"{chunk.name}.parquet"
        tmp = self.chunks_dir / f".{chunk.name}.tmp"
        pq.write_table(table, tmp)
        os.replace(tmp, path)
        return path

    def read(self):
        """Every chunk on disk as one pandas DataFrame sorted by (cell, run)."""
        import pandas as pd

        paths = sorted(self.chunks_dir.glob("chunk-*.parquet"))
        if not paths:
            return None
        frames = [pd.read_parquet(p) for p in paths]
        return pd.concat(frames, ignore_index=True)
