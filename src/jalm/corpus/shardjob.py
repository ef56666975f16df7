"""The two per-shard jobs of a clean run. Both are plain functions of a picklable dict, so the same
job runs inline, in a local process pool, or as a Ray task.

filter_shard (pass 1): read → (HTML extraction) → normalise → filters → user stages → write
  rejected/ and quarantine/, keep survivors in .work/candidates/, dedup keys in .work/keys/.
finish_shard (pass 3, after the run-wide dedup pass): survivors minus duplicates → kept/.

Each job writes its outputs under temporary names and renames them when done, then writes its
marker (.work/pass1/NAME.json, .work/pass3/NAME.json) last: a shard with a marker is complete, a
shard without one is redone from scratch, so a killed run resumes with nothing lost or doubled.
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
from pathlib import Path
from typing import Any

from jalm.corpus import dedup
from jalm.corpus.config import CleanConfig
from jalm.corpus.filters import FILTERS, Features, lookup_table
from jalm.corpus.html import extract_main_text, is_html
from jalm.corpus.io import SUFFIXES, atomic_path, open_binary_writer
from jalm.corpus.normalize import normalize_text
from jalm.corpus.readers import Shard, read_shard
from jalm.corpus.stages import load_stages

_DIGITS = re.compile(r"\d+")
N_EXAMPLES = 3  # examples per rule and shard, for the report
EXAMPLE_CHARS = 300
_COPY_CHUNK = 1 << 20  # bytes: survivors' lines are tens of kB
_progress_queue = None  # set in pool workers by executors.init_worker


def report_progress(docs: int, n_bytes: int) -> None:
    if _progress_queue is not None:
        _progress_queue.put((docs, n_bytes))


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


def filter_shard(job: dict[str, Any]) -> dict[str, Any]:
    tune_allocator()
    shard = Shard(**job["shard"])
    out, work = Path(job["out"]), Path(job["out"]) / ".work"
    config = CleanConfig(job["settings"])
    suffix = SUFFIXES[job["compress"]]
    text_field = config.text_field
    filters = [(name, FILTERS[name], params) for name, params in config.filters()]
    table = lookup_table([(name, params) for name, _, params in filters])
    html_cfg = config.section("html")
    dedup_cfg = config.section("dedup")
    num_hashes = dedup_cfg.get("bands", 16) * dedup_cfg.get("rows", 8)
    stages = load_stages(config.settings.get("stages", []), job.get("stages"))
    started = time.perf_counter()

    stats: dict[str, Any] = {
        "name": shard.name,
        "paths": shard.paths,
        "input": 0,
        "malformed": 0,
        "quarantined": Counter(),
        "rejected": Counter(),
        "candidates": 0,
        "html_extracted": 0,
        "bytes": {"input": 0, "malformed": 0, "rejected": Counter(), "candidates": 0},
        "filter_seconds": defaultdict(float),
        "examples": defaultdict(list),
    }
    ids: list[str] = []
    exact: list[int] = []
    sigs: list[Any] = []
    candidate_bytes: list[int] = []
    pending_docs = pending_bytes = 0
    last_report = time.monotonic()

    quarantine_final = out / "quarantine" / f"{shard.name}.jsonl"
    quarantine_tmp = quarantine_final.with_name(f".tmp{os.getpid()}.{quarantine_final.name}")
    quarantine_final.parent.mkdir(parents=True, exist_ok=True)
    with (
        atomic_path(out / "rejected" / f"{shard.name}{suffix}") as rejected_path,
        # Survivors wait uncompressed: they are read once more, by finish_shard, then deleted.
        atomic_path(work / "candidates" / f"{shard.name}.jsonl") as candidates_path,
        open_binary_writer(rejected_path) as rejected_out,
        open_binary_writer(candidates_path) as candidates_out,
        open(quarantine_tmp, "w", encoding="utf-8") as quarantine_out,
    ):
        for item in read_shard(shard, text_field):
            stats["input"] += 1
            stats["bytes"]["input"] += item.n_bytes
            pending_docs += 1
            pending_bytes += item.n_bytes
            if item.problem is not None:
                stats["malformed"] += 1
                stats["bytes"]["malformed"] += item.n_bytes
                stats["quarantined"][_DIGITS.sub("N", item.problem.split(" (")[0])] += 1
                where = (
                    shard.paths[0]
                    if shard.kind != "text"
                    else str(Path(shard.paths[0]).parent / item.position)
                )
                quarantine_out.write(_dumps({"file": where, "line": item.position, "problem": item.problem}))
            else:
                record = item.record
                record.setdefault("id", f"{shard.name}:{item.position}")
                reason, text, features = judge(
                    record, record[text_field], filters, html_cfg, config, stages, stats, table
                )
                record[text_field] = text
                if reason is None:
                    candidates_out.write(_line(record))
                    stats["candidates"] += 1
                    stats["bytes"]["candidates"] += item.n_bytes
                    candidate_bytes.append(item.n_bytes)
                    ids.append(str(record["id"]))
                    exact.append(dedup.exact_hash(text, features.codes if features is not None else None))
                    sigs.append(_signature(features, text, dedup_cfg, num_hashes))
                else:
                    rule = rule_of(reason)
                    stats["rejected"][rule] += 1
                    stats["bytes"]["rejected"][rule] += item.n_bytes
                    record["reason"] = reason
                    rejected_out.write(_line(record))
                    if len(stats["examples"][rule]) < N_EXAMPLES:
                        example = {"id": str(record["id"]), "reason": reason, "text": text[:EXAMPLE_CHARS]}
                        stats["examples"][rule].append(example)
            if time.monotonic() - last_report > 0.5:
                report_progress(pending_docs, pending_bytes)
                pending_docs = pending_bytes = 0
                last_report = time.monotonic()
    # Only shards with unreadable input get a quarantine file (an earlier, killed attempt's is replaced).
    if stats["malformed"]:
        os.replace(quarantine_tmp, quarantine_final)
    else:
        quarantine_tmp.unlink()
        if quarantine_final.exists():
            quarantine_final.unlink()
    report_progress(pending_docs, pending_bytes)
    dedup.write_keys(work, shard.name, ids, exact, sigs, dedup_cfg)
    with atomic_path(work / "keys" / f"{shard.name}.bytes.json") as tmp:
        tmp.write_text(json.dumps(candidate_bytes), encoding="utf-8")
    stats["seconds"] = round(time.perf_counter() - started, 3)
    stats["worker_pid"] = os.getpid()
    with atomic_path(work / "pass1" / f"{shard.name}.json") as tmp:
        tmp.write_text(json.dumps(stats, ensure_ascii=False), encoding="utf-8")
    return stats


def judge(
    record, text, filters, html_cfg, config, stages, stats, table=None
) -> tuple[str | None, str, Features | None]:
    """Return (reason or None, the text as it will be written, its features for dedup)."""
    limit = config.settings.get("filters", {}).get("length", {})
    if limit.get("enabled", True) and "max_chars" in limit and len(text) > 2 * limit["max_chars"]:
        # Far too long to be a document (a dump, a concatenation): say so without normalising it.
        return f"length: {len(text)} chars > {limit['max_chars']} (before normalisation)", text, None
    if is_html(record, text, html_cfg.get("extract", "auto")):
        t0 = time.perf_counter()
        main = extract_main_text(text, html_cfg.get("include_tables", True))
        stats["filter_seconds"]["html_extraction"] += time.perf_counter() - t0
        if not main or not main.strip():
            return f"html_extraction: no main text found in {len(text)} chars of HTML", text, None
        stats["html_extracted"] += 1
        record["extracted_from"] = "html"
        text = main
    t0 = time.perf_counter()
    text = normalize_text(text, config.normalize)
    stats["filter_seconds"]["normalize"] += time.perf_counter() - t0
    features = Features(text, table)
    for name, function, params in filters:
        t0 = time.perf_counter()
        reason = function(features, params)
        stats["filter_seconds"][name] += time.perf_counter() - t0
        if reason is not None:
            return reason, text, features
    for stage in stages:
        t0 = time.perf_counter()
        reason, text = stage(text)
        stats["filter_seconds"][getattr(stage, "name", "stage")] += time.perf_counter() - t0
        if reason is not None:
            return reason, text, features
        features = None  # the stage may have changed the text
    return None, text, features


def _signature(features: Features | None, text: str, cfg: dict[str, Any], num_hashes: int):
    if not cfg.get("near", True):
        return None
    features = features or Features(text)
    return dedup.signature(features.ngram_hashes(cfg.get("ngram", 5)), num_hashes, cfg.get("seed", 0))


def finish_shard(job: dict[str, Any]) -> dict[str, Any]:
    """Pass 3: write kept/NAME from the shard's survivors, minus the duplicates found run-wide."""
    name = job["name"]
    out, work = Path(job["out"]), Path(job["out"]) / ".work"
    suffix = SUFFIXES[job["compress"]]
    drops = {int(k): v for k, v in job["drops"].items()}
    candidate_bytes = json.loads((work / "keys" / f"{name}.bytes.json").read_text(encoding="utf-8"))
    candidates = work / "candidates" / f"{name}.jsonl"
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
        open(candidates, "rb", buffering=_COPY_CHUNK) as src,  # lines of tens of kB: a large buffer
        open_binary_writer(kept_tmp) as kept_out,
    ):
        if not drops:
            shutil.copyfileobj(src, kept_out, _COPY_CHUNK)
            stats["kept"] = len(candidate_bytes)
            stats["bytes"]["kept"] = sum(candidate_bytes)
        else:
            with atomic_path(dup_path) as dup_tmp, open_binary_writer(dup_tmp) as dup_out:
                for position, line in enumerate(src):
                    if position not in drops:
                        kept_out.write(line)
                        stats["kept"] += 1
                        stats["bytes"]["kept"] += candidate_bytes[position]
                        continue
                    record = json.loads(line)
                    reason = drops[position]
                    record["reason"] = reason
                    rule = rule_of(reason)
                    stats["rejected"][rule] += 1
                    stats["bytes"]["rejected"][rule] += candidate_bytes[position]
                    dup_out.write(_line(record))
                    if len(stats["examples"][rule]) < N_EXAMPLES:
                        text = record.get(job["text_field"], "")
                        example = {
                            "id": str(record.get("id")),
                            "reason": reason,
                            "text": text[:EXAMPLE_CHARS],
                        }
                        stats["examples"][rule].append(example)
    if not drops:  # no duplicates in this shard: no duplicates file (nor one from an earlier attempt)
        dup_path.unlink(missing_ok=True)
    # The survivors file is deleted by the pipeline once this marker exists (see pipeline.cleanup).
    with atomic_path(work / "pass3" / f"{name}.json") as tmp:
        tmp.write_text(json.dumps(stats, ensure_ascii=False), encoding="utf-8")
    return stats
