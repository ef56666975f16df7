"""Input readers. Each input shard yields one `Item` per document, good or bad, never raising for a
bad document: (position, raw byte count, problem or None, record or None).

Shards: a JSONL file (plain, .gz, .zst), a Parquet file, or a folder's plain-text/HTML files
(.txt, .html, .htm; one document per file, grouped per folder into one shard).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from jalm.errors import JalmError
from jalm.jsonl import iter_lines

JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".json.gz", ".json.zst", ".ndjson")
PARQUET_SUFFIXES = (".parquet",)
TEXT_SUFFIXES = (".txt", ".html", ".htm")
_BUFFER = 1 << 20


class Item(NamedTuple):
    position: str  # line number (JSONL), row number (Parquet) or file name (folders), for ids and reports
    n_bytes: int
    problem: str | None
    record: dict[str, Any] | None


@dataclass
class Shard:
    """One unit of work: the files it reads and the name its outputs get."""

    index: int
    name: str
    kind: str  # jsonl | parquet | text
    paths: list[str] = field(default_factory=list)
    n_bytes: int = 0


def kind_of(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(JSONL_SUFFIXES):
        return "jsonl"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if name.endswith(TEXT_SUFFIXES):
        return "text"
    return None


def stem(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".zst", ".jsonl", ".ndjson", ".json", ".parquet"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name or "shard"


def plan_shards(inputs: list[str | Path]) -> list[Shard]:
    """Turn files and folders into shards, sorted so shard order (and so which duplicate is kept)
    does not depend on the order arguments were given in."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and kind_of(p))
            if not found:
                raise JalmError(f"{path}: folder holds no .jsonl(.gz/.zst), .parquet, .txt or .html files")
            files.extend(found)
        elif path.is_file():
            if kind_of(path) is None:
                raise JalmError(
                    f"{path}: unknown input format (expected .jsonl(.gz/.zst), .parquet, .txt, .html)"
                )
            files.append(path)
        else:
            raise JalmError(f"{path}: no such file or directory")
    files = sorted(dict.fromkeys(p.resolve() for p in files))
    groups: dict[tuple[str, str], list[Path]] = {}
    for path in files:
        kind = kind_of(path)
        # Text and HTML files are small: one shard per folder; other formats: one shard per file.
        key = (kind, str(path.parent)) if kind == "text" else (kind, str(path))
        groups.setdefault(key, []).append(path)
    shards = []
    used: dict[str, int] = {}
    for index, ((kind, _), paths) in enumerate(groups.items()):
        base = paths[0].parent.name if kind == "text" else stem(paths[0])
        used[base] = used.get(base, 0) + 1
        name = base if used[base] == 1 else f"{base}-{used[base]}"
        size = sum(p.stat().st_size for p in paths)
        shards.append(Shard(index, name, kind, [str(p) for p in paths], size))
    # Names must be unique even when a later base name equals an earlier "name-2".
    assert len({s.name for s in shards}) == len(shards), "shard names collide"
    return shards


def read_shard(shard: Shard, text_field: str) -> Iterator[Item]:
    if shard.kind == "jsonl":
        yield from read_jsonl(Path(shard.paths[0]), text_field)
    elif shard.kind == "parquet":
        yield from read_parquet(Path(shard.paths[0]), text_field)
    else:
        yield from read_text_files([Path(p) for p in shard.paths], text_field)


def read_jsonl(path: Path, text_field: str) -> Iterator[Item]:
    """Every non-blank line is a document or a reported problem; a stream that ends early (a
    truncated .gz/.zst) is reported as one final problem so the run goes on."""
    number = 0
    try:
        # A 1 MB read buffer for plain files: documents are long lines (tens of kB), and with the
        # default 8 kB buffer each one is read and joined in pieces.
        for number, raw in iter_lines(path, buffering=_BUFFER):
            yield parse_line(str(number), raw, text_field)
    except Exception as error:
        # A truncated or corrupt stream: gzip raises EOFError/BadGzipFile (OSError), zstandard its
        # own ZstdError. Anything else is a bug and propagates.
        if (
            not isinstance(error, (OSError, EOFError, ValueError))
            and "zstd" not in type(error).__name__.lower()
        ):
            raise
        yield Item(
            str(number + 1), 0, f"unreadable after line {number} ({type(error).__name__}: {error})", None
        )


def parse_line(position: str, raw: bytes, text_field: str) -> Item:
    try:
        record = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as error:
        return Item(position, len(raw), f"not valid UTF-8 (byte {error.start})", None)
    except json.JSONDecodeError as error:
        return Item(position, len(raw), f"not valid JSON ({error.msg})", None)
    if not isinstance(record, dict):
        return Item(position, len(raw), f"not a JSON object ({type(record).__name__})", None)
    if not isinstance(record.get(text_field), str):
        return Item(position, len(raw), f"no string field {text_field!r}", None)
    return Item(position, len(raw), None, record)


def read_parquet(path: Path, text_field: str) -> Iterator[Item]:
    try:
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - optional dependency
        raise JalmError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow)") from None
    row = 0
    try:
        parquet = pq.ParquetFile(path)
        if text_field not in parquet.schema_arrow.names:
            yield Item(
                "1",
                path.stat().st_size,
                f"no column {text_field!r} (columns: {parquet.schema_arrow.names})",
                None,
            )
            return
        for batch in parquet.iter_batches(batch_size=1024):
            for record in batch.to_pylist():
                row += 1
                text = record.get(text_field)
                if not isinstance(text, str):
                    yield Item(str(row), 0, f"no string field {text_field!r}", None)
                else:
                    yield Item(str(row), len(text.encode("utf-8")), None, _jsonable(record))
    except (OSError, ValueError) as error:  # pyarrow.ArrowInvalid is a ValueError
        yield Item(str(row + 1), 0, f"unreadable after row {row} ({type(error).__name__}: {error})", None)


def _jsonable(record: dict[str, Any]) -> dict[str, Any]:
    """Parquet rows can hold dates and bytes; keep the output JSON-serialisable."""
    out = {}
    for key, value in record.items():
        if isinstance(value, (str, int, float, bool, type(None), list, dict)):
            out[key] = value
        elif isinstance(value, bytes):
            out[key] = value.decode("utf-8", errors="replace")
        else:
            out[key] = str(value)
    return out


def read_text_files(paths: list[Path], text_field: str) -> Iterator[Item]:
    for path in paths:
        try:
            raw = path.read_bytes()
        except OSError as error:
            yield Item(path.name, 0, f"unreadable ({error.strerror})", None)
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            yield Item(path.name, len(raw), "not valid UTF-8", None)
            continue
        record: dict[str, Any] = {text_field: text, "source": str(path)}
        if path.suffix.lower() in (".html", ".htm"):
            record["kind"] = "html"
        yield Item(path.name, len(raw), None, record)
