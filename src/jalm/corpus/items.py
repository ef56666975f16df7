"""What every reader yields and how inputs are named: the shard, the item, the input kinds by suffix.

Below readers.py and warc.py (and any reader added later), so a reader module never imports another.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".json.gz", ".json.zst", ".ndjson")
PARQUET_SUFFIXES = (".parquet",)
TEXT_SUFFIXES = (".txt", ".html", ".htm")
WARC_SUFFIXES = (".warc", ".warc.gz", ".wet", ".wet.gz", ".arc", ".arc.gz")


class Item(NamedTuple):
    position: str  # line number (JSONL), row number (Parquet) or file name (folders), for ids and reports
    n_bytes: int
    problem: str | None
    record: dict[str, Any] | None
    skipped: str | None = None  # a web archive record that is no document, by type (request, metadata…)


@dataclass
class Shard:
    """One unit of work: the files it reads and the name its outputs get."""

    index: int
    name: str
    kind: str  # jsonl | parquet | text | warc
    paths: list[str] = field(default_factory=list)
    n_bytes: int = 0
    start: int = 0  # a byte range of paths[0]: the records that start in [start, end)
    end: int | None = None  # None: to the end of the file


def _name(path: Path | str) -> str:
    """A local path's or a URL's last part (a URL is kept as a str)."""
    return path.name if isinstance(path, Path) else str(path).rstrip("/").rsplit("/", 1)[-1]


def kind_of(path: Path | str) -> str | None:
    name = _name(path).lower()
    if name.endswith(JSONL_SUFFIXES):
        return "jsonl"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if name.endswith(TEXT_SUFFIXES):
        return "text"
    if name.endswith(WARC_SUFFIXES):
        return "warc"
    return None


_WARC_NAME = re.compile(r"(?:\.warc\.wet|\.warc|\.wet|\.arc)(?:\.gz)?$", re.IGNORECASE)


def stem(path: Path | str) -> str:
    name = _name(path)
    if _WARC_NAME.search(name):
        return _WARC_NAME.sub("", name) or "warc"
    for suffix in (".gz", ".zst", ".jsonl", ".ndjson", ".json", ".parquet"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name or "shard"
