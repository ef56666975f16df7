"""Reading and writing JSONL text files, plain or compressed (.gz, .zst), with line numbers.

Readers come in two flavours: `read_records` is strict (the first bad line stops with a
`JalmError` naming file and line) and is used by every stage after cleaning; the clean stage
reads leniently with `iter_lines` and accounts for every bad line itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from jalm.errors import JalmError
from jalm.io import atomic_path, is_hidden, is_url, list_url, open_compressed


def iter_lines(path: str | Path, buffering: int = -1) -> Iterator[tuple[int, bytes]]:
    """Yield (1-based line number, raw bytes) for each line that is not blank, so a caller can decide
    what a bad line means. `buffering`: a plain file's read buffer (see jalm.io.open_compressed)."""
    with open_compressed(path, "rb", buffering=buffering) as stream:
        for number, line in enumerate(stream, start=1):
            if not line.isspace():  # bytes.isspace() is what `line.strip()` tests, without a copy
                yield number, line


def parse_record(path: str | Path, number: int, line: bytes, text_field: str = "text") -> dict[str, Any]:
    """Decode one JSONL line into a record with a string `text_field`, or raise a one-line JalmError."""
    try:
        record = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError:
        raise JalmError(f"{path}:{number}: not valid UTF-8") from None
    except json.JSONDecodeError as error:
        raise JalmError(f"{path}:{number}: not valid JSON ({error.msg})") from None
    if not isinstance(record, dict):
        raise JalmError(f"{path}:{number}: a JSON object was expected, got {type(record).__name__}")
    if not isinstance(record.get(text_field), str):
        raise JalmError(f"{path}:{number}: no string field {text_field!r}")
    return record


def read_records(paths: Iterable[str | Path], text_field: str = "text") -> Iterator[dict[str, Any]]:
    """Strictly read JSONL records from one or more files (plain, .gz or .zst)."""
    for path in paths:
        try:
            for number, line in iter_lines(path):
                yield parse_record(path, number, line, text_field)
        except (OSError, EOFError) as error:
            raise JalmError(f"{path}: cannot be read ({error})") from None


def read_texts(paths: Iterable[str | Path], text_field: str = "text") -> Iterator[str]:
    """Strictly read the text field of every record."""
    for record in read_records(paths, text_field):
        yield record[text_field]


def write_records(path: str | Path, records: Iterable[dict[str, Any]]) -> int:
    """Write records as JSONL (compressed by suffix: zstd level 10, gzip 9) atomically; return how many
    were written."""
    count = 0
    with atomic_path(path) as tmp, open_compressed(tmp, "wt") as out:
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    return count


def expand_inputs(
    inputs: Iterable[str | Path],
    patterns: tuple[str, ...] = ("*.jsonl", "*.jsonl.gz", "*.jsonl.zst"),
    urls: bool = False,
) -> list[Path]:
    """Turn files and directories into a sorted list of input files; a missing path is a JalmError.
    With `urls` (stages that read object storage: pack), an fsspec URL (an object, a prefix or a glob; see
    jalm.io.list_url) gives its objects as str URLs."""
    files: list[Path] = []
    for item in inputs:
        if urls and is_url(item):
            suffixes = tuple(pattern.lstrip("*") for pattern in patterns)
            found_urls = [url for url, _ in list_url(str(item)) if url.endswith(suffixes)]
            if not found_urls:
                raise JalmError(f"{item}: names no {', '.join(patterns)} objects")
            files.extend(found_urls)  # type: ignore[arg-type]  # URLs stay str
            continue
        item = Path(item)
        if item.is_dir():
            # hidden files are no input: half-written `.tmp-` files, a clean run's `.work/` folder
            found = sorted({p for pattern in patterns for p in item.rglob(pattern) if not is_hidden(p, item)})
            if not found:
                raise JalmError(f"{item}: directory holds no {', '.join(patterns)} files")
            files.extend(found)
        elif item.exists():
            files.append(item)
        else:
            raise JalmError(f"{item}: no such file or directory")
    return files
