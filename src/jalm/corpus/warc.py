"""WARC, WET and ARC input: web archive records → documents, streaming, one record at a time.

WARC and WET files (plain, gzip per record, or one gzip stream for the whole file) are read with
FastWARC (resiliparse's WARC reader); ARC files, which FastWARC does not read, with warcio. Every
record ends up as one `Item`:
- a document: a 2xx HTTP response (or a `resource`/WET `conversion` record) whose content type is
  HTML or plain text, decoded to text (jalm.corpus.encoding) with its URL, crawl date (WARC-Date),
  record id and the charset used kept in the record;
- a counted non-document (`Item.skipped`): requests, metadata, warcinfo, revisits, other content
  types, non-2xx responses, each under its own count;
- a problem (quarantined): an undecodable page, a record cut short, bytes that cannot be read.
Unreadable bytes (a truncated or corrupt gzip member) do not end the file: reading resumes at the
next record that can be read (see splits.next_warc_record), and the bytes skipped are one problem.

A byte range [start, end) reads the records that start in it, so ranges cut at record starts
(splits.py) divide a file between workers with every record read exactly once.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jalm.corpus.encoding import decode_page
from jalm.corpus.items import Item, stem
from jalm.io import file_size, is_url, open_binary

_HTML_TYPES = ("text/html", "application/xhtml+xml")
_TEXT_TYPES = ("text/plain",)
_LOOKS_LIKE_HTML = re.compile(rb"^\s*(?:<\?xml[^>]*>\s*)?(?:<!DOCTYPE\s+html|<html\b|<head\b|<body\b)", re.I)


def is_arc(path: Path | str) -> bool:
    return str(path).lower().endswith((".arc", ".arc.gz"))


def read_warc(path: Path | str, text_field: str, start: int = 0, end: int | None = None) -> Iterator[Item]:
    """The items of the records that start in [start, end) (the whole file by default). `path` may be a
    URL (a str, read through fsspec; see jalm.io)."""
    if is_arc(path):
        yield from _read_arc(path, text_field)
        return
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    from jalm.corpus.splits import next_warc_record

    name = stem(path)
    url = is_url(path)
    limit = end if end is not None else file_size(path)
    position = start
    with open_binary(path) as handle:
        while position < limit:
            handle.seek(position)
            last = None  # the offset of the last record read whole in this attempt
            try:
                records = ArchiveIterator(
                    handle,
                    record_types=WarcRecordType.any_type,
                    parse_http=True,
                    auto_decode="none",  # Content-Encoding is undone here, after the truncation check
                )
                for record in records:
                    offset = record.stream_pos  # absolute: FastWARC counts from the handle's start
                    if offset >= limit:
                        return
                    item = _item(record, name, text_field)
                    last = offset
                    yield item
                return  # end of file
            except OSError as error:  # a corrupt or truncated compressed member, unparsable bytes
                bad_from = last + 1 if last is not None else position
                # an object is not scanned for the next readable record: the rest is one problem
                resume = None if url else next_warc_record(path, max(bad_from, position + 1), limit)
                bad_to = resume if resume is not None else limit
                yield Item(
                    f"@{bad_from}",
                    bad_to - bad_from,
                    f"unreadable WARC data in bytes {bad_from}-{bad_to} ({type(error).__name__}: {error})",
                    None,
                )
                if resume is None:
                    return
                position = resume


def _item(record: Any, stem: str, text_field: str) -> Item:
    """One WARC record → a document, a counted non-document or a problem."""
    offset = record.stream_pos
    kind = str(record.record_type).rsplit(".", 1)[-1]  # "response", "request", ...

    position = str(offset)
    if kind not in ("response", "resource", "conversion"):
        return Item(position, 0, None, None, kind)
    headers = record.http_headers if record.is_http else None
    if headers is not None:
        status = headers.status_code
        if status is not None and not 200 <= status < 300:
            return Item(position, 0, None, None, f"{kind}: HTTP {status // 100}xx")
        content_type = headers.get("Content-Type") or record.headers.get("WARC-Identified-Payload-Type")
    else:
        content_type = record.headers.get("Content-Type")
    payload = record.reader.read()
    expected = record.content_length
    if len(payload) < expected:
        return Item(position, len(payload), f"truncated record ({len(payload)} of {expected} bytes)", None)
    mime, charset = _content_type(content_type)
    if headers is not None:
        payload, problem = _undo_encodings(payload, headers)
        if problem:
            return Item(position, len(payload), problem, None)
    if kind == "conversion":  # WET text is UTF-8 by definition
        charset = charset or "utf-8"
    where = {
        "id": f"{stem}:{offset}",
        "url": record.headers.get("WARC-Target-URI"),
        "date": record.headers.get("WARC-Date"),
        "warc_record_id": record.record_id,
    }
    return _document(position, kind, payload, mime, charset, where, text_field)


def _document(
    position: str, kind: str, payload: bytes, mime: str, charset: str | None, where: dict, text_field: str
) -> Item:
    """A response's body → a document (or a counted non-HTML type, or an undecodable page)."""
    if not mime or mime == "application/octet-stream":
        mime = "text/html" if _LOOKS_LIKE_HTML.match(payload[:2000]) else (mime or "unknown")
    if mime not in _HTML_TYPES and mime not in _TEXT_TYPES:
        return Item(position, 0, None, None, f"{kind}: {mime}")
    decoded = decode_page(payload, charset)
    if decoded.text is None:
        return Item(position, len(payload), decoded.problem, None)
    out: dict[str, Any] = {
        "id": where["id"],
        text_field: decoded.text,
        **{key: value for key, value in where.items() if key != "id"},
        "encoding": f"{decoded.encoding} ({decoded.source})",
    }
    if mime in _HTML_TYPES:
        out["kind"] = "html"
    return Item(position, len(payload), None, out)


def _content_type(value: str | None) -> tuple[str, str | None]:
    """('text/html', 'shift_jis') from 'text/html; charset=Shift_JIS'."""
    if not value:
        return "", None
    mime, _, params = value.partition(";")
    charset = None
    for param in params.split(";"):
        key, _, val = param.partition("=")
        if key.strip().lower() == "charset" and val.strip():
            charset = val.strip().strip("\"'")
    return mime.strip().lower(), charset


def _undo_encodings(payload: bytes, headers: Any) -> tuple[bytes, str | None]:
    """Undo chunked transfer coding and gzip/deflate/br content coding, as a browser would."""
    if "chunked" in (headers.get("Transfer-Encoding") or "").lower():
        payload = _dechunk(payload)
    coding = (headers.get("Content-Encoding") or "").strip().lower()
    if coding in ("", "identity", "none"):
        return payload, None
    try:
        if coding in ("gzip", "x-gzip", "deflate"):
            try:
                return zlib.decompress(payload, 47), None  # gzip or zlib header
            except zlib.error:
                return zlib.decompress(payload, -15), None  # raw deflate
        if coding == "br":
            import brotli

            return brotli.decompress(payload), None
    except ImportError:
        return payload, "Content-Encoding br needs the brotli package"
    except Exception as error:  # zlib.error, brotli.error
        # Many crawlers store the decoded body but keep the header: a body that is already markup
        # is used as it is.
        if _LOOKS_LIKE_HTML.match(payload[:2000]):
            return payload, None
        return payload, f"undecodable Content-Encoding {coding} ({type(error).__name__})"
    return payload, f"unknown Content-Encoding {coding}"


def _dechunk(payload: bytes) -> bytes:
    out, i = [], 0
    while i < len(payload):
        eol = payload.find(b"\r\n", i)
        if eol < 0:
            break
        try:
            size = int(payload[i:eol].split(b";")[0], 16)
        except ValueError:
            return payload  # not chunked after all (the crawler undid it)
        if size == 0:
            break
        out.append(payload[eol + 2 : eol + 2 + size])
        i = eol + 2 + size + 2
    return b"".join(out)


def _read_arc(path: Path | str, text_field: str) -> Iterator[Item]:
    """ARC files (the Internet Archive's format before WARC), through warcio."""
    try:
        from warcio.archiveiterator import ArchiveIterator
    except ImportError:  # pragma: no cover - warcio is a dependency
        from jalm.errors import JalmError

        raise JalmError(f"{path}: reading ARC files needs warcio (pip install warcio)") from None
    name = stem(path)
    offset = 0
    with open_binary(path) as handle:
        records = ArchiveIterator(handle, arc2warc=True)
        try:
            for record in records:
                payload = record.content_stream().read()  # before get_record_offset, which skips the rest
                offset = records.get_record_offset()
                yield _arc_item(record, payload, offset, name, text_field)
        except Exception as error:  # warcio raises its own parse errors and zlib/EOF errors
            yield Item(
                f"@{offset}", 0, f"unreadable ARC data after byte {offset} ({type(error).__name__})", None
            )


def _arc_item(record: Any, payload: bytes, offset: int, stem: str, text_field: str) -> Item:
    position = str(offset)
    kind = record.rec_type
    if kind != "response":
        return Item(position, 0, None, None, kind)
    status = record.http_headers.get_statuscode() if record.http_headers else None
    if status and status.isdigit() and not 200 <= int(status) < 300:
        return Item(position, 0, None, None, f"response: HTTP {status[0]}xx")
    content_type = record.http_headers.get_header("Content-Type") if record.http_headers else None
    content_type = content_type or record.rec_headers.get_header("Content-Type")
    mime, charset = _content_type(content_type)
    where = {
        "id": f"{stem}:{offset}",
        "url": record.rec_headers.get_header("WARC-Target-URI"),
        "date": record.rec_headers.get_header("WARC-Date"),
        "warc_record_id": None,  # ARC records have no id (warcio makes up a random one)
    }
    return _document(position, "response", payload, mime, charset, where, text_field)
