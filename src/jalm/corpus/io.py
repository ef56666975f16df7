"""Output files of the clean stage: compressed JSONL writers and atomic renames (for resuming)."""

from __future__ import annotations

import gzip
import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

SUFFIXES = {"zst": ".jsonl.zst", "gz": ".jsonl.gz", "none": ".jsonl"}


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling path; rename it onto `path` only if the block succeeds, so a killed
    run never leaves a half-written file under the final name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp{os.getpid()}.{path.name}")  # keeps the suffix: it picks the compression
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def open_writer(path: Path, level: int = 1) -> IO[str]:
    """A text writer compressed by suffix. zstd level 1 (about 2.6× smaller than JSONL at ~140 MB/s
    here; level 3 gives 3.0× at ~60 MB/s): output compression should cost little next to filtering."""
    if path.name.endswith(".zst"):
        import zstandard

        raw = zstandard.ZstdCompressor(level=level).stream_writer(open(path, "wb"))
        return io.TextIOWrapper(raw, encoding="utf-8", write_through=False)
    if path.name.endswith(".gz"):
        return gzip.open(path, "wt", encoding="utf-8", compresslevel=min(max(level, 1), 9))
    return open(path, "w", encoding="utf-8")
