"""Cut one big input file into byte ranges at record boundaries, so that several workers (or Ray
tasks) share it: plain JSONL at line starts, WARC at record starts (for gzip, at gzip members that
hold a whole WARC record). A range [start, end) is read as the records that *start* in it, so every
record is read exactly once whatever the cuts.

Cuts are found near multiples of the range size by looking forward from there, never by reading the
whole file: a JSONL cut is the next line start; a WARC cut is the next offset where a record can be
read (next_warc_record). A file that cannot be cut (compressed JSONL, a WARC gzipped as one stream,
ARC) stays one range.
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path

from jalm.io import file_size, open_binary

_GZIP_MAGIC = b"\x1f\x8b\x08"
_SCAN_CHUNK = 1 << 20
_MAX_MEMBER = 256 << 20  # a gzip member bigger than this is not verified (no WARC record is that big)
_MAX_HEADER = 64 << 10
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


def is_gzip(path: Path) -> bool:
    with open_binary(path) as handle:
        return handle.read(2) == b"\x1f\x8b"


def jsonl_cuts(path: Path, size: int) -> list[int]:
    """Start offsets of ranges of about `size` bytes, each at the start of a line; [0] if small."""
    total = file_size(path)
    starts = [0]
    with open_binary(path) as handle:
        target = size
        while target < total:
            handle.seek(target - 1)  # a line starts at `target` if the byte before it ends a line
            handle.readline()
            cut = handle.tell()
            if cut >= total:
                break
            if cut > starts[-1]:
                starts.append(cut)
            target = max(cut, target) + size
    return starts


def warc_cuts(path: Path, size: int, max_scan: int | None = None) -> list[int]:
    """Start offsets of ranges of about `size` bytes, each where a WARC record starts; [0] if the file
    is small or cannot be cut (looking at most `max_scan` bytes past each target; default `size`)."""
    total = file_size(path)
    starts = [0]
    target = size
    while target < total:
        cut = next_warc_record(path, target, min(total, target + (max_scan or size)))
        if cut is None:
            break  # e.g. one gzip stream for the whole file: no member starts to cut at
        starts.append(cut)
        target = cut + size
    return starts


def next_warc_record(path: Path, after: int, limit: int | None = None) -> int | None:
    """The first offset in [after, limit) where a whole WARC record can be read, or None."""
    total = file_size(path)
    limit = total if limit is None else min(limit, total)
    gzipped = is_gzip(path)
    marker = _GZIP_MAGIC if gzipped else b"WARC/1."
    with open_binary(path) as handle:
        position = after
        while position < limit:
            handle.seek(position)
            chunk = handle.read(_SCAN_CHUNK + len(marker))
            if not chunk:
                return None
            found = chunk.find(marker)
            while found >= 0 and position + found < limit:
                candidate = position + found
                if gzipped and _whole_warc_member(handle, candidate):
                    return candidate
                if not gzipped and _plain_record_at(handle, candidate, total):
                    return candidate
                found = chunk.find(marker, found + 1)
            position += _SCAN_CHUNK
    return None


def _whole_warc_member(handle, offset: int) -> bool:
    """A gzip member starts at `offset`, decompresses to its end without error, and holds a WARC
    record (its text starts with "WARC/")."""
    handle.seek(offset)
    inflater = zlib.decompressobj(31)
    head = b""
    read = 0
    while not inflater.eof:
        data = handle.read(_SCAN_CHUNK)
        if not data or read > _MAX_MEMBER:
            return False  # the member is cut short (or absurdly large)
        read += len(data)
        try:
            out = inflater.decompress(data)
        except zlib.error:
            return False
        if len(head) < 5:
            head += out[: 5 - len(head)]
            if len(head) == 5 and head != b"WARC/":
                return False
    return head.startswith(b"WARC/")


def _plain_record_at(handle, offset: int, total: int) -> bool:
    """An uncompressed WARC record starts at `offset`: at a line start, a header block with a
    Content-Length, and after its block the record separator and then the end of the file or the
    next record."""
    if offset > 0:
        handle.seek(offset - 1)
        if handle.read(1) != b"\n":
            return False
    handle.seek(offset)
    header = handle.read(_MAX_HEADER)
    end = header.find(b"\r\n\r\n")
    if end < 0:
        return False
    match = _CONTENT_LENGTH.search(header, 0, end + 2)
    if match is None:
        return False
    after = offset + end + 4 + int(match.group(1))
    handle.seek(after)
    tail = handle.read(4 + 7)
    return tail[:4] == b"\r\n\r\n" and (after + 4 == total or tail[4:] == b"WARC/1.")
