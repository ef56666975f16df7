"""Speed of the clean stage against HojiChar on the same input, and scaling with workers.

    .venv/bin/python benchmarks/clean_speed.py [--repeats 3] [--workers 1 2 4]

Input: the labelled set of clean_quality.py (real clean documents + synthetic noise), re-sharded
into 8 JSONL shards. MB are UTF-8 bytes of the documents' text, the same count for every row.
Rows (best of --repeats, runs interleaved so that load from other processes hits all alike):
- HojiChar pipeline: clean_common.hojichar_pipeline() (its Japanese filters with defaults + its
  MinHash dedup) over texts already in memory: no reading, parsing or writing is timed;
- jalm filters: normalisation + all default filters + MinHash signature over the same in-memory
  texts (the work HojiChar's row does);
- jalm clean, 1 worker: the whole `clean()` from JSONL shards on disk to kept/rejected .zst shards,
  stats.json and report (reading, HTML detection, dedup passes, writing included);
- jalm clean, 1 worker, no report: the same without report.md/report.png (matplotlib's import and
  the chart are a fixed ~1 CPU-second, whatever the corpus size);
- jalm clean, N workers: the same with N processes (scaling);
- jalm clean, 1 worker, filters + dedup only: the default run with line cleaning and PII masking off,
  the same kind of work as HojiChar's row (filters and MinHash dedup; its pipeline has neither);
- jalm clean, 1 worker, + decontamination: the default run (which has line cleaning, PII masking and
  the language identifier on) also checking every kept document against JSQuAD dev and the three
  AI王 dev files (`--decontaminate`), its index built inside the run;
- start-up: the CPU seconds of a whole `python -m jalm clean` process on one small file (interpreter,
  imports, config, fastText model; + the decontamination index), the fixed cost of a run that the
  rows above do not pay (they run in this process, imports done), reported apart.
Two clocks, because this machine is shared: wall seconds, and CPU seconds of this process plus its
finished children (resource.getrusage), which other users' load barely changes. "MB per CPU-second"
is the per-core throughput; a wall-clock speed-up with workers needs idle cores to mean anything.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time

from clean_common import ROOT, WORK, build_labelled_set, hojichar_pipeline, read_jsonl, require_shared
from jalm.corpus import clean, dedup
from jalm.corpus.config import CleanConfig
from jalm.corpus.features import Features
from jalm.corpus.filters import FILTERS
from jalm.corpus.normalize import normalize_text
from jalm.corpus.shardjob import tune_allocator


def shard(files, n: int = 8):
    out = WORK / "speed_shards"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    records = [r for path in files for r in read_jsonl(path)]
    handles = [open(out / f"part-{i:02d}.jsonl", "w", encoding="utf-8") for i in range(n)]
    for i, record in enumerate(records):
        handles[i % n].write(json.dumps(record, ensure_ascii=False) + "\n")
    for handle in handles:
        handle.close()
    return sorted(out.glob("*.jsonl")), [r["text"] for r in records]


def cpu_seconds() -> float:
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usage)


def measured(function, *args) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one call."""
    cpu, wall = cpu_seconds(), time.perf_counter()
    function(*args)
    return time.perf_counter() - wall, cpu_seconds() - cpu


def time_hojichar(texts) -> float:
    from hojichar import Document

    pipeline = hojichar_pipeline()
    started = time.perf_counter()
    for text in texts:
        pipeline.apply(Document(text))
    return time.perf_counter() - started


def time_jalm_filters(texts) -> float:
    config = CleanConfig.load()
    filters = [(FILTERS[name], params) for name, params in config.filters()]
    started = time.perf_counter()
    for text in texts:
        features = Features(normalize_text(text))
        for function, params in filters:
            if function(features, params) is not None:
                break
        else:
            dedup.signature(features.ngram_hashes(5), 128)
    return time.perf_counter() - started


def time_jalm_clean(files, workers: int, report: bool = True, config: CleanConfig | None = None) -> float:
    out = WORK / f"speed_out_{workers}"
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    clean(files, out, config=config, workers=workers, progress=False, report=report)
    return time.perf_counter() - started


def eval_files() -> list[str]:
    shared = require_shared()
    return [str(shared / "eval" / "jsquad-valid-v1.1.json")] + sorted(
        str(p) for p in (shared / "eval" / "aio").glob("*.tsv")
    )


def startup_cpu(extra: list[str], repeats: int) -> float:
    """Least CPU seconds of a fresh `python -m jalm clean` of one small file (one document)."""
    tiny = WORK / "startup" / "one.jsonl"
    tiny.parent.mkdir(parents=True, exist_ok=True)
    text = read_jsonl(require_shared() / "dev" / "wiki_jaquad.jsonl")[0]["text"]
    tiny.write_text(json.dumps({"text": text}, ensure_ascii=False) + "\n", encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    best = float("inf")
    for _ in range(repeats):
        command = [sys.executable, "-m", "jalm", "clean", str(tiny), "--out", str(tiny.parent / "out")]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(
            [*command, "--overwrite", "--no-progress", *extra], check=True, env=env, capture_output=True
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        best = min(best, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    # clean() tunes the allocator of the process it runs in (see shardjob.tune_allocator); doing it
    # first puts every row, HojiChar's included, under the same allocator settings.
    tune_allocator()
    files, _ = build_labelled_set()
    shards, texts = shard(files)
    mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    print(
        f"input: {len(texts)} documents, {mb:.1f} MB of text, {len(shards)} shards; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}"
    )
    rows = [
        ("HojiChar pipeline (in memory)", time_hojichar, (texts,)),
        ("jalm filters (in memory)", time_jalm_filters, (texts,)),
    ]
    rows += [
        (f"jalm clean, {w} worker{'s' if w > 1 else ''} (disk to disk)", time_jalm_clean, (shards, w))
        for w in args.workers
    ]
    rows.insert(3, ("jalm clean, 1 worker, no report", time_jalm_clean, (shards, 1, False)))
    # HojiChar's row filters and deduplicates; jalm's default run also cleans lines and masks PII.
    same_work = CleanConfig.load(overrides={"lines": {"enabled": False}, "pii": {"mode": "off"}})
    rows.insert(
        4,
        (
            "jalm clean, 1 worker, filters + dedup only (HojiChar's work)",
            time_jalm_clean,
            (shards, 1, True, same_work),
        ),
    )
    decontaminate = CleanConfig.load(overrides={"decontaminate": {"files": eval_files()}})
    rows.insert(
        5, ("jalm clean, 1 worker, + decontamination", time_jalm_clean, (shards, 1, True, decontaminate))
    )
    wall: dict[str, float] = {}
    cpu: dict[str, float] = {}
    for _ in range(args.repeats):
        for name, function, call_args in rows:
            seconds, cpu_s = measured(function, *call_args)
            wall[name] = min(wall.get(name, float("inf")), seconds)
            cpu[name] = min(cpu.get(name, float("inf")), cpu_s)
    base = mb / cpu["HojiChar pipeline (in memory)"]
    one = wall["jalm clean, 1 worker (disk to disk)"]
    print(
        "\n| run | wall s | MB/s (wall) | CPU s | MB per CPU-second | × HojiChar per CPU-second | wall speed-up vs 1 worker |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, seconds in wall.items():
        per_cpu = mb / cpu[name]
        speedup = f"{one / seconds:.2f}" if name.startswith("jalm clean") else ""
        print(
            f"| {name} | {seconds:.2f} | {mb / seconds:.2f} | {cpu[name]:.2f} | {per_cpu:.2f} | {per_cpu / base:.1f} | {speedup} |"
        )
    plain = startup_cpu([], args.repeats)
    with_eval = startup_cpu(["--decontaminate", *eval_files()], args.repeats)
    print(
        f"\nstart-up, a fresh `python -m jalm clean` of one document: {plain:.2f} CPU-s; "
        f"with --decontaminate (JSQuAD dev + 3 AI王 files): {with_eval:.2f} CPU-s"
    )
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
