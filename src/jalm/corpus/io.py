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
    """A text writer compressed by suffix. zstd level 1 (about 2.6× smaller than JSONL at ~300 MB/s
    here; level 3 gives 3.0× at ~150 MB/s): output compression should cost little next to filtering."""
    if path.name.endswith((".zst", ".gz")):
        return io.TextIOWrapper(open_binary_writer(path, level), encoding="utf-8", write_through=False)
    return open(path, "w", encoding="utf-8")


def open_binary_writer(path: Path, level: int = 1) -> IO[bytes]:
    """The byte stream under open_writer: for copying lines that are already UTF-8 JSON.
    zstd gets a 128 kB window (level 1 has 512 kB): ~10% faster here for ~3% larger files, as
    documents are a few kB to tens of kB and rarely repeat one further back."""
    if path.name.endswith(".zst"):
        import zstandard

        params = zstandard.ZstdCompressionParameters.from_level(level, window_log=17)
        return zstandard.ZstdCompressor(compression_params=params).stream_writer(open(path, "wb"))
    if path.name.endswith(".gz"):
        return gzip.open(path, "wb", compresslevel=min(max(level, 1), 9))
    return open(path, "wb")
