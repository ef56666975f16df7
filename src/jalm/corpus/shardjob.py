"""The two per-shard jobs of a clean run. Each is a plain function of a picklable job (a dataclass)
and of a `Report` callback for progress, so the same job runs inline, in a local process pool, or as
a Ray task (see executors.py).

filter_shard (pass 1, FilterJob): read → (HTML extraction) → normalise → filters → user stages →
  write rejected/ and quarantine/, keep survivors in .work/candidates/, dedup keys in .work/keys/.
finish_shard (pass 3, FinishJob, after the run-wide dedup pass): survivors minus duplicates → kept/.

Each job writes its outputs under temporary names and renames them when done (jalm.io.atomic_path),
then writes its marker (.work/pass1/NAME.json, .work/pass3/NAME.json) last: a shard with a marker is
complete, a shard without one is redone from scratch, so a killed run resumes with nothing lost or
doubled.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import shutil
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from jalm.corpus import dedup
from jalm.corpus.config import CleanConfig
from jalm.corpus.dedup_runs import RunWriter
from jalm.corpus.features import Features, lookup_table
from jalm.corpus.filters import FILTERS
from jalm.corpus.html import extract_main_text, is_html
from jalm.corpus.normalize import normalize_with_codes
from jalm.corpus.readers import Item, Shard, read_shard
from jalm.corpus.refine import Refiner
from jalm.corpus.stages import Stage, load_stages
from jalm.corpus.urlfilter import url_filter
from jalm.executors import Report, ignore_report
from jalm.io import atomic_path, open_compressed, write_atomic

SUFFIXES = {"zst": ".jsonl.zst", "gz": ".jsonl.gz", "none": ".jsonl"}
# Output shards: zstd level 1 (about 2.6× smaller than JSONL at ~300 MB/s here; level 3 gives 3.0× at
# ~150 MB/s), as output compression should cost little next to filtering; gzip level 1. A 128 kB zstd
# window (level 1 has 512 kB): ~10% faster here for ~3% larger files, as documents are a few kB to
# tens of kB and rarely repeat one further back.
OUTPUT_COMPRESSION: dict[str, Any] = {"level": 1, "window_log": 17}
_DIGITS = re.compile(r"\d+")
N_EXAMPLES = 3  # examples per rule and shard, for the report
EXAMPLE_CHARS = 300
_COPY_CHUNK = 1 << 20  # bytes: survivors' lines are tens of kB
_REPORT_EVERY_S = 0.5


@dataclass(frozen=True)
class FilterJob:
    """Pass 1 of one shard: the shard, the run's output directory, its settings (CleanConfig.settings),
    output compression (a key of SUFFIXES) and the user stages given as objects (clean(stages=...))."""

    shard: Shard
    out: Path
    settings: dict[str, Any]
    compress: str
    stages: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class FinishJob:
    """Pass 3 of one shard: its survivors go to kept/, except `drops` (position among the survivors →
    duplicate reason), which go to rejected/NAME.duplicates."""

    out: Path
    name: str
    compress: str
    text_field: str
    drops: Mapping[int, str] = field(default_factory=dict)  # dedup_pairs.ShardDrops in a clean run


def tune_allocator() -> None:
    """Keep freed memory in the process instead of returning it to the OS at once (glibc only).

    Every document allocates and frees arrays of up to a few MB (n-gram hashes, hash tables).
    With glibc's defaults each of those over 128 kB is a fresh mmap, page-faulted in and unmapped
    again, which cost more CPU time than the arithmetic on them (2-3× on a 10,000-character
    document). Raising the mmap and trim thresholds lets malloc reuse the memory; the price is
    that a worker keeps its peak memory until it exits. Done once per process."""
    global _allocator_tuned
    if _allocator_tuned:
        return
    _allocator_tuned = True
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_TRIM_THRESHOLD, 512 << 20)
        libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)  # glibc's upper limit on 64-bit systems
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to tune
        pass


_allocator_tuned = False
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def rule_of(reason: str) -> str:
    return reason.split(":", 1)[0]


def _dumps(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False) + "\n"


def _line(record: dict[str, Any]) -> bytes:
    """One output JSONL line as UTF-8, compact. orjson writes it ~8× faster than json.dumps plus
    encoding; it is used for records of strings, integers, booleans and nulls only (it would write
    NaN as null), and json.dumps, with the same separators, for anything else or what it refuses
    (integers beyond 64 bits, non-string keys)."""
    if _orjson is not None and all(type(value) in _PLAIN for value in record.values()):
        try:
            return _orjson.dumps(record, option=_orjson.OPT_APPEND_NEWLINE)
        except TypeError:  # orjson.JSONEncodeError
            pass
    return (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


_PLAIN = frozenset((str, int, bool, type(None)))
try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - orjson is a dependency; json.dumps writes the same records
    _orjson = None


# ---- pass 1 ------------------------------------------------------------------------------------


def filter_shard(job: FilterJob, report: Report = ignore_report) -> dict[str, Any]:
    """Pass 1 of one shard; returns its stats, which are also its marker."""
    tune_allocator()
    started = time.perf_counter()
    shard, out = job.shard, Path(job.out)
    work = out / ".work"
    config = CleanConfig(job.settings)
    judge = Judge(config, load_stages(config.settings.get("stages", []), job.stages))
    keys = _DedupKeys(config.section("dedup"), work, shard.name, shard.index)
    stats = _pass1_stats(shard)
    ticker = _Ticker(report)
    quarantine = out / "quarantine" / f"{shard.name}.jsonl"
    quarantine_out = None  # opened at the first unreadable document: most shards have none
    with (
        ExitStack() as later,  # closes (and commits) what is opened inside, after the others
        atomic_path(out / "rejected" / f"{shard.name}{SUFFIXES[job.compress]}") as rejected_path,
        # Survivors wait uncompressed: they are read once more, by finish_shard, then deleted.
        atomic_path(work / "candidates" / f"{shard.name}.jsonl") as candidates_path,
        open_compressed(rejected_path, "wb", **OUTPUT_COMPRESSION) as rejected_out,
        open_compressed(candidates_path, "wb", **OUTPUT_COMPRESSION) as candidates_out,
    ):
        for item in read_shard(shard, config.text_field):
            if item.skipped is not None:  # a web archive record that holds no document: counted
                stats["non_documents"][item.skipped] += 1
                ticker.add(1, item.n_bytes)
                continue
            stats["input"] += 1
            stats["bytes"]["input"] += item.n_bytes
            if item.problem is not None:
                if quarantine_out is None:
                    quarantine_path = later.enter_context(atomic_path(quarantine))
                    quarantine_out = later.enter_context(open_compressed(quarantine_path, "wt"))
                quarantine_out.write(_dumps(_quarantine(shard, item, stats)))
            else:
                record = item.record
                record.setdefault("id", f"{shard.name}:{item.position}")
                reason, text, features = judge(record, record[config.text_field], stats)
                record[config.text_field] = text
                if reason is None:
                    candidates_out.write(_line(record))
                    stats["candidates"] += 1
                    stats["bytes"]["candidates"] += item.n_bytes
                    keys.add(str(record["id"]), text, features, item.n_bytes)
                else:
                    _reject(stats, rejected_out, record, reason, item.n_bytes, text)
            ticker.add(1, item.n_bytes)
    # Only shards with unreadable input keep a quarantine file (an earlier, killed attempt's goes too).
    if not stats["malformed"]:
        quarantine.unlink(missing_ok=True)
    ticker.flush()
    keys.write(work, shard.name)
    stats["seconds"] = round(time.perf_counter() - started, 3)
    stats["worker_pid"] = os.getpid()
    write_atomic(work / "pass1" / f"{shard.name}.json", json.dumps(stats, ensure_ascii=False))
    return stats


def _pass1_stats(shard: Shard) -> dict[str, Any]:
    return {
        "name": shard.name,
        "paths": shard.paths,
        "range": [shard.start, shard.end],
        "input": 0,
        "malformed": 0,
        "quarantined": Counter(),
        "rejected": Counter(),
        "candidates": 0,
        "html_extracted": 0,
        "non_documents": Counter(),
        "bytes": {"input": 0, "malformed": 0, "rejected": Counter(), "candidates": 0},
        "filter_seconds": defaultdict(float),
        "examples": defaultdict(list),
    }


def _quarantine(shard: Shard, item: Item, stats: dict[str, Any]) -> dict[str, Any]:
    """Count an unreadable document by its problem; return its quarantine record (file, line, problem)."""
    stats["malformed"] += 1
    stats["bytes"]["malformed"] += item.n_bytes
    stats["quarantined"][_DIGITS.sub("N", item.problem.split(" (")[0])] += 1
    where = shard.paths[0] if shard.kind != "text" else str(Path(shard.paths[0]).parent / item.position)
    line = item.position
    if shard.kind == "warc":  # a byte offset, where the record (or the unreadable data) starts
        return {"file": where, "offset": line.lstrip("@"), "problem": item.problem}
    return {"file": where, "line": line, "problem": item.problem}


def _reject(
    stats: dict[str, Any], out: IO[bytes], record: dict[str, Any], reason: str, n_bytes: int, text: str
) -> None:
    """Count a rejected document under its rule, write it with its reason, keep it as an example."""
    rule = rule_of(reason)
    stats["rejected"][rule] += 1
    stats["bytes"]["rejected"][rule] += n_bytes
    record["reason"] = reason
    out.write(_line(record))
    if len(stats["examples"][rule]) < N_EXAMPLES:
        example = {"id": str(record.get("id")), "reason": reason, "text": text[:EXAMPLE_CHARS]}
        stats["examples"][rule].append(example)


class Judge:
    """Decides one document: HTML extraction, normalisation, the filters, decontamination, line cleaning
    and PII masking (refine.py), then the user stages, timing
    each step into the shard's stats. Set up once per shard from the run's configuration."""

    def __init__(self, config: CleanConfig, stages: list[Stage]) -> None:
        self.config = config
        self.filters = [(name, FILTERS[name], params) for name, params in config.filters()]
        self.table = lookup_table([(name, params) for name, _, params in self.filters])
        self.html = config.section("html")
        self.length = config.settings.get("filters", {}).get("length", {})
        self.stages = stages
        urls = config.section("url_filter")
        self.urls = url_filter(urls.get("block", []), urls.get("allow", [])) if urls.get("block") else None
        self.refine = Refiner(config.settings)  # decontamination, line cleaning, PII masking

    def __call__(
        self, record: dict[str, Any], text: str, stats: dict[str, Any]
    ) -> tuple[str | None, str, Features | None]:
        """Return (reason or None, the text as it will be written, its features for dedup)."""
        limit, seconds = self.length, stats["filter_seconds"]
        if self.urls is not None and isinstance(record.get("url"), str):
            t0 = time.perf_counter()
            reason = self.urls.check(record["url"])
            seconds["url_filter"] += time.perf_counter() - t0
            if reason is not None:
                return reason, text, None
        if limit.get("enabled", True) and "max_chars" in limit and len(text) > 2 * limit["max_chars"]:
            # Far too long to be a document (a dump, a concatenation): say so without normalising it.
            return f"length: {len(text)} chars > {limit['max_chars']} (before normalisation)", text, None
        if is_html(record, text, self.html.get("extract", "auto")):
            t0 = time.perf_counter()
            main = extract_main_text(
                text, self.html.get("include_tables", True), self.html.get("extractor", "resiliparse")
            )
            seconds["html_extraction"] += time.perf_counter() - t0
            if not main or not main.strip():
                return f"html_extraction: no main text found in {len(text)} chars of HTML", text, None
            stats["html_extracted"] += 1
            record["extracted_from"] = "html"
            text = main
        t0 = time.perf_counter()
        text, codes = normalize_with_codes(text, self.config.normalize)
        seconds["normalize"] += time.perf_counter() - t0
        features = Features(text, self.table, codes)
        for name, function, params in self.filters:
            t0 = time.perf_counter()
            reason = function(features, params)
            seconds[name] += time.perf_counter() - t0
            if reason is not None:
                return reason, text, features
        reason, text, features = self.refine(record, text, features, stats)
        if reason is not None:
            return reason, text, features
        for stage in self.stages:
            t0 = time.perf_counter()
            reason, text = stage(text)
            seconds[getattr(stage, "name", "stage")] += time.perf_counter() - t0
            if reason is not None:
                return reason, text, features
            features = None  # the stage may have changed the text
        return None, text, features


class _DedupKeys:
    """The dedup keys of a shard's survivors, in order: exact hashes and MinHash signatures go to sorted
    runs on disk as they come (dedup_runs.RunWriter, at most the budget's share buffered), sizes stay."""

    def __init__(self, cfg: dict[str, Any], work: Path, name: str, index: int) -> None:
        self.cfg = cfg
        self.num_hashes = cfg.get("bands", 16) * cfg.get("rows", 8)
        self.runs = RunWriter(work / "keys", name, index, cfg)
        self.n_bytes: list[int] = []

    def add(self, doc_id: str, text: str, features: Features | None, n_bytes: int) -> None:
        self.n_bytes.append(n_bytes)
        exact = dedup.exact_hash(text, features.codes if features is not None else None)
        sig = None
        if self.cfg.get("near", True):
            features = features or Features(text)
            ngrams = features.ngram_hashes(self.cfg.get("ngram", 5))
            sig = dedup.signature(ngrams, self.num_hashes, self.cfg.get("seed", 0))
        self.runs.add(doc_id, exact, sig)

    def write(self, work: Path, name: str) -> None:
        """The last run and the manifest, and the survivors' sizes for pass 3's byte counts."""
        self.runs.close()
        write_atomic(work / "keys" / f"{name}.bytes.json", json.dumps(self.n_bytes))


class _Ticker:
    """Sums documents and bytes and hands them to `report` at most every _REPORT_EVERY_S seconds."""

    def __init__(self, report: Report) -> None:
        self.report = report
        self.docs = self.bytes = 0
        self.last = time.monotonic()

    def add(self, docs: int, n_bytes: int) -> None:
        self.docs += docs
        self.bytes += n_bytes
        if time.monotonic() - self.last > _REPORT_EVERY_S:
            self.flush()
            self.last = time.monotonic()

    def flush(self) -> None:
        self.report(self.docs, self.bytes)
        self.docs = self.bytes = 0


# ---- pass 3 ------------------------------------------------------------------------------------


def finish_shard(job: FinishJob, report: Report = ignore_report) -> dict[str, Any]:
    """Pass 3: write kept/NAME from the shard's survivors, minus the duplicates found run-wide.
    (Its progress is not reported: the bar counts the documents of pass 1.)"""
    name, out = job.name, Path(job.out)
    work = out / ".work"
    suffix = SUFFIXES[job.compress]
    candidate_bytes = json.loads((work / "keys" / f"{name}.bytes.json").read_text(encoding="utf-8"))
    stats: dict[str, Any] = {
        "name": name,
        "kept": 0,
        "rejected": Counter(),
        "bytes": {"kept": 0, "rejected": Counter()},
        "examples": defaultdict(list),
    }
    dup_path = out / "rejected" / f"{name}.duplicates{suffix}"
    # Survivors were written as UTF-8 JSON lines in pass 1: kept ones are copied as they are.
    with (
        atomic_path(out / "kept" / f"{name}{suffix}") as kept_tmp,
        open(work / "candidates" / f"{name}.jsonl", "rb", buffering=_COPY_CHUNK) as src,  # long lines
        open_compressed(kept_tmp, "wb", **OUTPUT_COMPRESSION) as kept_out,
    ):
        if not job.drops:
            shutil.copyfileobj(src, kept_out, _COPY_CHUNK)
            stats["kept"] = len(candidate_bytes)
            stats["bytes"]["kept"] = sum(candidate_bytes)
        else:
            with (
                atomic_path(dup_path) as dup_tmp,
                open_compressed(dup_tmp, "wb", **OUTPUT_COMPRESSION) as dup_out,
            ):
                for position, line in enumerate(src):
                    if position not in job.drops:
                        kept_out.write(line)
                        stats["kept"] += 1
                        stats["bytes"]["kept"] += candidate_bytes[position]
                        continue
                    record = json.loads(line)
                    text = record.get(job.text_field, "")
                    _reject(stats, dup_out, record, job.drops[position], candidate_bytes[position], text)
    if not job.drops:  # no duplicates in this shard: no duplicates file (nor one from an earlier attempt)
        dup_path.unlink(missing_ok=True)
    # The survivors file is deleted by the pipeline once this marker exists (see pipeline.cleanup).
    write_atomic(work / "pass3" / f"{name}.json", json.dumps(stats, ensure_ascii=False))
    return stats
