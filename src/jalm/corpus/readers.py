"""Input readers. Each input shard yields one `Item` per document, good or bad, never raising for a
bad document: (position, raw byte count, problem or None, record or None).

Shards: a JSONL file (plain, .gz, .zst), a Parquet file, a web archive (.warc, .wet, .arc, each
optionally .gz; see warc.py), or a folder's plain-text/HTML files (.txt, .html, .htm; one document
per file, grouped per folder into one shard). A big plain JSONL or WARC file becomes several shards,
byte ranges cut at record boundaries (splits.py), when the run sets a range size.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jalm.corpus.items import (
    JSONL_SUFFIXES,
    PARQUET_SUFFIXES,
    TEXT_SUFFIXES,
    WARC_SUFFIXES,
    Item,
    Shard,
    kind_of,
    stem,
)
from jalm.errors import JalmError
from jalm.io import file_size, is_hidden, is_url, list_url, open_binary
from jalm.jsonl import iter_lines

_BUFFER = 1 << 20


def plan_shards(inputs: list[str | Path], split_bytes: int | None = None) -> list[Shard]:
    """Turn files and folders into shards, sorted so shard order (and so which duplicate is kept)
    does not depend on the order arguments were given in. With `split_bytes`, a plain JSONL or a
    WARC file bigger than that becomes byte ranges of about that size, in file order."""
    files: list[Path] = []
    urls: dict[str, int] = {}  # inputs on object storage (str, never Path) and their sizes
    for item in inputs:
        if is_url(item):
            urls.update(_url_files(str(item)))
            continue
        path = Path(item)
        if path.is_dir():
            # hidden files are no input: half-written `.tmp-` files, a clean run's `.work/` folder
            found = sorted(
                p for p in path.rglob("*") if p.is_file() and kind_of(p) and not is_hidden(p, path)
            )
            if not found:
                raise JalmError(
                    f"{path}: folder holds no .jsonl(.gz/.zst), .parquet, .warc/.wet/.arc(.gz), .txt or .html files"
                )
            files.extend(found)
        elif path.is_file():
            if kind_of(path) is None:
                raise JalmError(
                    f"{path}: unknown input format (expected .jsonl(.gz/.zst), .parquet, .warc/.wet/.arc(.gz), .txt, .html)"
                )
            files.append(path)
        else:
            raise JalmError(f"{path}: no such file or directory")
    files = sorted(dict.fromkeys(p.resolve() for p in files))
    groups: dict[tuple[str, str], list[Any]] = {}
    for path in [*files, *sorted(urls)]:
        kind = kind_of(path)
        # Text and HTML files are small: one shard per folder; other formats: one shard per file.
        key = (kind, str(path.parent)) if kind == "text" else (kind, str(path))
        groups.setdefault(key, []).append(path)
    shards = []
    used: dict[str, int] = {}
    for (kind, _), paths in groups.items():
        base = paths[0].parent.name if kind == "text" else stem(paths[0])
        used[base] = used.get(base, 0) + 1
        name = base if used[base] == 1 else f"{base}-{used[base]}"
        size = sum(urls[p] if isinstance(p, str) else p.stat().st_size for p in paths)
        cuts = _cuts(paths[0], kind, split_bytes) if split_bytes and size > split_bytes else [0]
        for part, (start, end) in enumerate(zip(cuts, [*cuts[1:], None])):
            part_name = name if len(cuts) == 1 else f"{name}.part{part:04d}"
            n_bytes = (end if end is not None else size) - start
            shards.append(Shard(len(shards), part_name, kind, [str(p) for p in paths], n_bytes, start, end))
    # Names must be unique even when a later base name equals an earlier "name-2".
    assert len({s.name for s in shards}) == len(shards), "shard names collide"
    return shards


def _url_files(url: str) -> dict[str, int]:
    """The input objects a URL names (an object, a prefix or a glob): {url: size}."""
    found = {name: size for name, size in list_url(url) if kind_of(name)}
    if not found:
        raise JalmError(f"{url}: names no .jsonl(.gz/.zst), .parquet or .warc/.wet/.arc(.gz) objects")
    text = [name for name in found if kind_of(name) == "text"]
    if text:
        raise JalmError(f"{text[0]}: .txt/.html inputs are read from local folders only, not object storage")
    return found


def _cuts(path: Path | str, kind: str, split_bytes: int) -> list[int]:
    """Range starts for one file or object (see splits.py); [0] for one that is not cut."""
    from jalm.corpus import splits

    name = str(path).lower()
    if kind == "jsonl" and name.endswith((".jsonl", ".ndjson")):
        return splits.jsonl_cuts(path, split_bytes)
    if kind == "warc" and not name.endswith((".arc", ".arc.gz")):
        return splits.warc_cuts(path, split_bytes)
    return [0]


def read_shard(shard: Shard, text_field: str) -> Iterator[Item]:
    # a URL stays a str (the readers open it through fsspec); Path would turn "s3://" into "s3:/"
    source: Any = shard.paths[0] if is_url(shard.paths[0]) else Path(shard.paths[0])
    if shard.kind == "warc":
        from jalm.corpus.warc import read_warc

        yield from read_warc(source, text_field, shard.start, shard.end)
    elif shard.kind == "jsonl" and (shard.start or shard.end is not None):
        yield from read_jsonl_range(source, text_field, shard.start, shard.end)
    elif shard.kind == "jsonl":
        yield from read_jsonl(source, text_field)
    elif shard.kind == "parquet":
        yield from read_parquet(source, text_field)
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
        if is_url(path) and not _bad_stream(error):
            # the store failed (network, permission), not the data: the run stops and a rerun redoes
            # this shard, rather than quarantining the rest of a good object
            raise JalmError(
                f"{path}: reading the object failed after line {number} ({type(error).__name__}: {error}); "
                "rerun the same command to resume"
            ) from None
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


def _bad_stream(error: BaseException) -> bool:
    """Whether `error` says the bytes are bad (truncated, corrupt) rather than that reading them failed."""
    import gzip
    import zlib

    bad = (EOFError, gzip.BadGzipFile, zlib.error, UnicodeDecodeError)
    return isinstance(error, bad) or "zstd" in type(error).__name__.lower()


def read_jsonl_range(path: Path, text_field: str, start: int, end: int | None) -> Iterator[Item]:
    """The lines of a plain JSONL file that start in [start, end). Their positions are byte offsets
    ("@123"), which do not depend on where the file was cut: a document gets the same id whether
    one worker reads the whole file or several read ranges of it."""
    stem_name = stem(path)
    raw = io.BufferedReader(open_binary(path), buffer_size=_BUFFER) if is_url(path) else None
    with raw or open(path, "rb", buffering=_BUFFER) as handle:
        handle.seek(start)
        offset = start
        for raw in handle:
            if end is not None and offset >= end:
                break
            position = f"@{offset}"
            offset += len(raw)
            if raw.isspace():
                continue
            item = parse_line(position, raw, text_field)
            if item.record is not None:
                item.record.setdefault("id", f"{stem_name}:{position}")
            yield item


def parse_line(position: str, raw: bytes, text_field: str) -> Item:
    try:
        # orjson parses UTF-8 bytes ~3× faster than decoding and json.loads. What it refuses (NaN,
        # lone surrogates, invalid UTF-8 or JSON) takes the standard path, which accepts the same
        # documents as before and words the errors; so does a record with a float or a nested value
        # anywhere, as orjson reads an integer beyond 64 bits as a float (json keeps it exact).
        record = _orjson_loads(raw)
        if type(record) is not dict or not all(type(value) in _FLAT for value in record.values()):
            record = _MISSING
    except ValueError:  # orjson.JSONDecodeError
        record = _MISSING
    try:
        if record is _MISSING:
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


_MISSING = object()
_FLAT = frozenset((str, int, bool, type(None)))  # what orjson reads exactly as json does
try:
    from orjson import loads as _orjson_loads
except ImportError:  # pragma: no cover - orjson is a dependency

    def _orjson_loads(raw: bytes) -> Any:
        raise ValueError


def read_parquet(path: Path, text_field: str) -> Iterator[Item]:
    try:
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - optional dependency
        raise JalmError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow)") from None
    row = 0
    try:
        parquet = pq.ParquetFile(open_binary(path) if is_url(path) else path)
        if text_field not in parquet.schema_arrow.names:
            yield Item(
                "1",
                file_size(path),
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


__all__ = [
    "JSONL_SUFFIXES",
    "PARQUET_SUFFIXES",
    "TEXT_SUFFIXES",
    "WARC_SUFFIXES",
    "Item",
    "Shard",
    "kind_of",
    "stem",
]
