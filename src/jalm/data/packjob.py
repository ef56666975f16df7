"""One pack job: one input shard (a JSONL file, or a byte range of a big plain one) → its own token files.

A job writes, under the packed directory's shards/ folder:
  NAME.train.bin, NAME.val.bin   the shard's documents' token ids, each document followed by </s>
  NAME.train.idx, NAME.val.idx   the index: where each document ends in the .bin (uint64 token offsets)
  NAME.json                      the marker: source, settings, counts; written last
Every file is written under a temporary name and renamed when whole (jalm.io.atomic_path), the marker
last: a shard with a marker is complete, one without is redone from the start, so a killed run resumes
with no document lost or doubled.

A byte range [start, end) owns the lines that begin inside it: it skips the line it starts in the
middle of (the previous range's last line) and reads past `end` to finish its own last line.

The job is a plain function of a picklable `PackJob` and a progress callback, so it runs inline, in a
local process pool or as a Ray task (jalm.executors).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from jalm.data.split import is_validation
from jalm.data.tokens import SHARDS_DIR
from jalm.errors import JalmError
from jalm.io import atomic_path, base_name, is_url, open_binary, write_atomic
from jalm.jsonl import parse_record

BATCH = 256  # documents per SentencePiece call
SPLITS = ("train", "val")
EXAMPLES = 5  # locations of set-aside documents kept per shard and reason
_REPORT_EVERY_S = 0.5
_BUFFER = 1 << 20  # documents are long lines


@dataclass(frozen=True)
class PackJob:
    name: str
    path: str
    start: int  # byte range of a plain file; 0, -1: the whole file
    end: int
    planned_bytes: int  # the input bytes this job stands for (for the progress bar)
    out: str  # the packed directory
    tokenizer: str  # spiece.model
    settings: dict[str, Any]  # what must match for a shard to be reused: see pack.settings_of
    threads: int = 1  # SentencePiece threads (0: all cores)

    def source(self) -> dict[str, Any]:
        return {"path": self.path, "start": self.start, "end": self.end, "bytes": self.planned_bytes}


def marker_path(out: str | Path, name: str) -> Path:
    return Path(out) / SHARDS_DIR / f"{name}.json"


def read_marker(out: str | Path, name: str) -> dict[str, Any] | None:
    path = marker_path(out, name)
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def _noop(*counts: int) -> None:
    """The report of a job whose progress nobody follows (a Ray task)."""


def pack_shard(job: PackJob, report: Callable[..., None] = _noop) -> dict[str, Any]:
    """Tokenize one shard; returns its marker. `report(documents, input_bytes, tokens)` as it goes."""
    started = time.perf_counter()
    settings, field = job.settings, job.settings["text_field"]
    sp = _sentencepiece(job.tokenizer)
    cpu_started = time.process_time()  # after the process's one-time imports and tokenizer load
    ticker = _Ticker(report, job.planned_bytes)
    with (
        _ShardOutput(job, sp.eos_id()) as output,
        _LineReader(_source(job.path), job.start, job.end) as reader,
    ):
        batch: list[tuple[str, str]] = []  # (where, text)
        for where, line in reader:
            text = _parse(job.path, where, line, field)
            if not text.strip():
                output.set_aside("empty", f"{job.path}:{where}")
                ticker.add(1, reader.consumed(), 0)
                continue
            batch.append((f"{job.path}:{where}", text))
            if len(batch) == BATCH:
                _encode(sp, job.threads, batch, output, ticker, reader.consumed())
        _encode(sp, job.threads, batch, output, ticker, reader.consumed())
    ticker.finish()
    marker = {
        "name": job.name,
        "source": job.source(),
        "settings": settings,
        **output.counts(),
        "seconds": round(time.perf_counter() - started, 3),
        "cpu_seconds": round(time.process_time() - cpu_started, 3),  # all the worker's threads, after set-up
        "worker_pid": os.getpid(),
    }
    write_atomic(marker_path(job.out, job.name), json.dumps(marker, ensure_ascii=False, indent=1))
    return marker


def _encode(sp: Any, threads: int, batch: list, output: _ShardOutput, ticker: _Ticker, consumed: int) -> None:
    """Tokenize a batch of (where, text) in one SentencePiece call, write it, and empty the batch."""
    if batch:
        ids = sp.encode([text for _, text in batch], num_threads=threads)
        tokens = sum(output.add(where, text, doc) for (where, text), doc in zip(batch, ids))
        ticker.add(len(batch), consumed, tokens)
        batch.clear()


class _ShardOutput:
    """A shard's four files, written under temporary names and renamed on a clean exit, and its counts."""

    def __init__(self, job: PackJob, eos: int) -> None:
        import numpy as np

        self.job, self.eos, self.np = job, eos, np
        self.dtype = np.dtype(job.settings["dtype"])
        self.limit, self.fraction = job.settings["max_doc_tokens"], job.settings["val_fraction"]
        self.totals = {split: {"documents": 0, "tokens": 0, "chars": 0} for split in SPLITS}
        self.ends: dict[str, list[int]] = {split: [] for split in SPLITS}  # the index: documents' end offsets
        self.skipped = {"empty": 0, "too_long": 0}
        self.examples: dict[str, list[str]] = {"empty": [], "too_long": []}
        self.stack = ExitStack()

    def __enter__(self) -> _ShardOutput:
        folder = Path(self.job.out) / SHARDS_DIR
        paths = {
            (split, kind): self.stack.enter_context(atomic_path(folder / f"{self.job.name}.{split}.{kind}"))
            for split in SPLITS
            for kind in ("bin", "idx")
        }
        self.index_paths = {split: paths[split, "idx"] for split in SPLITS}
        self.handles = {split: self.stack.enter_context(open(paths[split, "bin"], "wb")) for split in SPLITS}
        return self

    def __exit__(self, *exc: Any) -> None:
        if exc[0] is None:
            for split in SPLITS:
                self.handles[split].close()
                self.np.asarray(self.ends[split], dtype=self.np.uint64).tofile(self.index_paths[split])
        self.stack.__exit__(*exc)

    def set_aside(self, reason: str, where: str) -> None:
        self.skipped[reason] += 1
        if len(self.examples[reason]) < EXAMPLES:
            self.examples[reason].append(where)

    def add(self, where: str, text: str, doc: list[int]) -> int:
        """Write one document's ids and </s> to its split (or set it aside); return the tokens written."""
        if not doc:
            self.set_aside("empty", where)
            return 0
        if self.limit and len(doc) > self.limit:
            self.set_aside("too_long", f"{where} ({len(doc):,} tokens)")
            return 0
        split = "val" if is_validation(text, self.fraction) else "train"
        doc.append(self.eos)
        self.handles[split].write(self.np.asarray(doc, dtype=self.dtype).tobytes())
        total = self.totals[split]
        total["documents"] += 1
        total["tokens"] += len(doc)
        total["chars"] += len(text)
        self.ends[split].append(total["tokens"])
        return len(doc)

    def counts(self) -> dict[str, Any]:
        return {
            **{
                f"{split}_{key}": value
                for split, total in self.totals.items()
                for key, value in total.items()
            },
            "skipped": self.skipped,
            "skipped_examples": {reason: where for reason, where in self.examples.items() if where},
        }


_SENTENCEPIECE: dict[str, Any] = {}


def _sentencepiece(model_file: str) -> Any:
    """One loaded tokenizer per process and model file: a worker packs many shards."""
    if model_file not in _SENTENCEPIECE:
        import numpy  # noqa: F401  (imported here so a job's timing starts after the process's imports)

        from jalm.tokenizer.encoder import load_encoder  # SentencePiece, or tokenizer.json (byte-level BPE)

        _SENTENCEPIECE[model_file] = load_encoder(model_file)
    return _SENTENCEPIECE[model_file]


class _LineReader:
    """The non-blank lines of a JSONL file (plain, .gz, .zst) or of a byte range of a plain one, as
    (where, bytes): `where` is the line number, or "byte N" inside a range that does not start at 0
    (turned into a line number if the line turns out to be bad). `consumed()` is how many bytes of the
    file (compressed bytes for .gz/.zst) have been read, for the progress bar."""

    def __init__(self, path: Path | str, start: int, end: int) -> None:
        self.path, self.start, self.end = path, start, end
        self.raw: IO[bytes] | None = None

    def __enter__(self) -> _LineReader:
        try:
            if is_url(self.path):  # an object on object storage, read through fsspec in big reads
                self.raw = io.BufferedReader(open_binary(self.path), buffer_size=_BUFFER)
            else:
                self.raw = open(self.path, "rb", buffering=_BUFFER)
        except OSError as error:
            raise JalmError(f"{self.path}: cannot be read ({error.strerror})") from None
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.raw is not None:
            self.raw.close()

    def consumed(self) -> int:
        return max(0, self.raw.tell() - self.start)

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        try:
            if self.end >= 0:
                yield from self._range()
            else:
                yield from self._whole()
        except (OSError, EOFError) as error:
            raise JalmError(f"{self.path}: cannot be read ({error})") from None
        except Exception as error:  # zstandard's ZstdError: a truncated or corrupt stream
            if "zstd" in type(error).__name__.lower():
                raise JalmError(f"{self.path}: cannot be read ({error})") from None
            raise

    def _whole(self) -> Iterator[tuple[str, bytes]]:
        stream = _decompressing(self.path, self.raw)
        for number, line in enumerate(stream, start=1):
            if not line.isspace():
                yield str(number), line

    def _range(self) -> Iterator[tuple[str, bytes]]:
        raw = self.raw
        if self.start > 0:
            raw.seek(self.start - 1)
            raw.readline()  # the rest of the line that began before the range (or just its "\n")
        number = 1
        while raw.tell() < self.end:
            offset = raw.tell()
            line = raw.readline()
            if not line:
                break
            if not line.isspace():
                yield (str(number) if self.start == 0 else f"byte {offset}"), line
            number += 1


def _source(path: str) -> Path | str:
    """A job's input: a local Path, or a URL kept as a str (Path would turn "s3://" into "s3:/")."""
    return path if is_url(path) else Path(path)


def _decompressing(path: Path | str, raw: IO[bytes]) -> IO[bytes]:
    name = base_name(path).lower()
    if name.endswith(".gz"):
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if name.endswith(".zst"):
        import zstandard

        return io.BufferedReader(
            zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True, closefd=False)
        )
    return raw


def _parse(path: str, where: str, line: bytes, text_field: str) -> str:
    """The text of a JSONL line; a bad line stops the run with its file and line number."""
    try:
        return parse_record(path, where, line, text_field)[text_field]
    except JalmError:
        if where.startswith("byte "):  # inside a byte range: count the lines before it, once
            parse_record(path, line_number(path, int(where[5:])), line, text_field)
        raise


def line_number(path: str | Path, offset: int) -> int:
    """The 1-based line number of the line starting at byte `offset` of a plain file (for errors)."""
    count = 1
    with open(path, "rb") as handle:
        while offset > 0:
            chunk = handle.read(min(offset, _BUFFER))
            if not chunk:
                break
            count += chunk.count(b"\n")
            offset -= len(chunk)
    return count


class _Ticker:
    """Sums documents, input bytes and tokens; reports them at most every _REPORT_EVERY_S seconds."""

    def __init__(self, report: Callable[..., None], planned_bytes: int) -> None:
        self.report, self.planned = report, planned_bytes
        self.docs = self.tokens = self.bytes_reported = self.bytes_now = 0
        self.last = time.monotonic()

    def add(self, docs: int, consumed: int, tokens: int) -> None:
        self.docs += docs
        self.tokens += tokens
        self.bytes_now = min(consumed, self.planned)
        if time.monotonic() - self.last > _REPORT_EVERY_S:
            self.flush()

    def flush(self) -> None:
        self.report(self.docs, self.bytes_now - self.bytes_reported, self.tokens)
        self.bytes_reported = self.bytes_now
        self.docs = self.tokens = 0
        self.last = time.monotonic()

    def finish(self) -> None:
        self.bytes_now = self.planned  # the job stands for all its planned bytes, whatever it read
        self.flush()
