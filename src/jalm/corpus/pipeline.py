"""The clean stage, end to end, in three passes over shards:

1. filter (one job per shard): read, extract HTML, normalise, filter; write rejected/ and
   quarantine/; keep survivors and their dedup keys under DIR/.work/;
2. dedup (dedup_pairs.py: jobs per key range of each LSH band and of the exact hashes, per bucket of
   candidate pairs, then one resolve job): find duplicates across all shards from the sorted runs of
   keys, confirm them, join them (union-find) and pick the one copy to keep, in memory bounded by the
   [dedup] memory budget per process;
3. finish (one job per shard): write kept/ = survivors minus duplicates.

Then stats.json, report.md and report.png. Passes 1 and 3 are resumable per shard (see shardjob.py), pass 2
per part: rerunning the same command after a crash redoes only what has no completion marker.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

from jalm.corpus import dedup_pairs, shardjob
from jalm.corpus.config import CleanConfig
from jalm.corpus.readers import Shard, plan_shards
from jalm.corpus.refine import merge_refine
from jalm.corpus.shardjob import SUFFIXES, FilterJob, FinishJob
from jalm.errors import JalmError
from jalm.executors import DEFAULT_RETRIES, DEFAULT_TASK_MEMORY, Executor
from jalm.io import INCOMPLETE_MARKER, begin_run, end_run, refuse_url, remove_temp_files, write_atomic

STATS_VERSION = 1


def clean(
    inputs: list[Path | str],
    out_dir: Path | str,
    config: CleanConfig | None = None,
    workers: int | None = None,
    progress: bool = True,
    compress: str = "zst",
    executor: str = "local",
    stages: list[Any] | None = None,
    report: bool = True,
    overwrite: bool = False,
    keep_intermediate: bool = False,
    retries: int = DEFAULT_RETRIES,
    task_memory: int = DEFAULT_TASK_MEMORY,
) -> dict[str, Any]:
    """Clean `inputs` (JSONL/.gz/.zst, Parquet, web archives, text/HTML folders; all but text/HTML also as
    fsspec URLs: s3://bucket/prefix/, a glob) into the local or shared folder `out_dir`; return the stats.

    Writes out_dir/kept/, rejected/ (records with `reason`), quarantine/ (unreadable input with file
    and line), stats.json and report.md/report.png. `stages`: extra processors run after the
    filters, e.g. a HojiChar `Compose`. Rerunning with the same arguments resumes a killed run (or
    returns the finished run's stats); `overwrite=True` deletes an earlier run's outputs first.
    Dedup's intermediate files (.work/keys, .work/dedup) are removed when the run completes, unless
    `keep_intermediate`. The dedup memory budget per process is the config's [dedup] memory.
    """
    config = config or CleanConfig.load()
    if compress not in SUFFIXES:
        raise JalmError(f"compression must be one of {', '.join(SUFFIXES)}, got {compress!r}")
    if workers is not None and workers < 1:
        raise JalmError(f"--workers must be at least 1, got {workers}")
    refuse_url(out_dir, "jalm clean")
    out = Path(out_dir).absolute()  # jobs may run elsewhere than the current directory (Ray)
    split_mb = config.section("input").get("split_mb", 0)
    shards = plan_shards(inputs, split_bytes=int(split_mb * 1e6) if split_mb else None)
    if overwrite:
        remove_outputs(out)
    _check_or_write_plan(out, shards, config, compress, stages)
    begin_run(out, "jalm clean")  # until the end, later stages refuse out/kept/ as input
    remove_temp_files(out)  # a killed run's half-written files
    started = time.perf_counter()
    with Executor(workers, executor, retries, task_memory) as runner:
        stats = _run(shards, out, config, compress, stages, runner, _bar(progress, len(shards)), started)
    remove_temp_files(out)  # those of workers that died and were replaced
    elapsed = time.perf_counter() - started
    stats["timings"]["total_s"] = round(elapsed, 3)
    stats["timings"]["docs_per_s"] = round(stats["input"] / elapsed, 1) if elapsed else None
    stats["timings"]["mb_per_s"] = round(stats["bytes"]["input"] / 1e6 / elapsed, 3) if elapsed else None
    write_atomic(out / "stats.json", json.dumps(stats, ensure_ascii=False, indent=2) + "\n")
    if report:
        from jalm.corpus.report import write_report

        write_report(out, stats)
    cleanup(out / ".work", shards, keep_intermediate)
    end_run(out)
    return stats


def _run(shards, out, config, compress, stages, runner, bar, started) -> dict[str, Any]:
    """The three passes; returns the merged stats (timings filled in by the caller)."""
    work = out / ".work"
    _filter_pass(shards, out, config, compress, stages, runner, bar)
    pass1 = {s.name: _read_json(work / "pass1" / f"{s.name}.json") for s in shards}
    t_filter = time.perf_counter()
    by_shard, counters = _group_pass(shards, work, config.section("dedup"), runner, bar)
    t_group = time.perf_counter()
    _finish_pass(shards, out, config, compress, by_shard, runner, bar)
    pass3 = {s.name: _read_json(work / "pass3" / f"{s.name}.json") for s in shards}
    if bar is not None:
        bar.close()
    end = time.perf_counter()
    stats = merge_stats(shards, pass1, pass3, counters, config, runner.workers, runner.kind)
    stats["timings"].update(
        {
            "filter_pass_s": round(t_filter - started, 3),
            "dedup_group_s": round(t_group - t_filter, 3),
            "write_pass_s": round(end - t_group, 3),
        }
    )
    return stats


def _filter_pass(shards, out, config, compress, stages, runner, bar) -> None:
    """Pass 1: filters, per shard (those without a marker)."""
    todo = [s for s in shards if not (out / ".work" / "pass1" / f"{s.name}.json").exists()]
    jobs = [FilterJob(_absolute(s), out, config.settings, compress, list(stages or [])) for s in todo]
    if bar is not None and len(todo) < len(shards):
        bar.write(f"clean: resuming, {len(shards) - len(todo)} of {len(shards)} shards already filtered")
    on_done = _shard_done(bar, len(shards), len(shards) - len(todo))
    runner.run(shardjob.filter_shard, jobs, bar, on_done=on_done)


def _absolute(shard: Shard) -> Shard:
    """The shard with absolute paths: a job may run in another directory, or on another node (Ray)."""
    paths = [p if "://" in p else str(Path(p).absolute()) for p in shard.paths]
    return dataclasses.replace(shard, paths=paths)


def _group_pass(shards, work, dedup_cfg, runner, bar) -> tuple[dict[str, Any], dict[str, int]]:
    """Pass 2: duplicates across all shards, out of core (dedup_pairs.py); ({shard: drops}, counters).
    Each step's parts run as jobs with their own markers, so a resumed run redoes only unfinished parts."""
    done = work / "dedup_counters.json"
    if done.exists():  # a finished run's dedup (its intermediate files may be gone)
        return {}, _read_json(done)
    if not (dedup_cfg.get("exact", True) or dedup_cfg.get("near", True)):
        return {}, {}
    if bar is not None:
        bar.set_description_str("clean [dedup]")
    listing = [(s.index, s.name) for s in shards]
    plan = dedup_pairs.make_plan(work, listing, dedup_cfg, runner.workers)
    for step in ("exact", "near", "bucket"):
        runner.run(dedup_pairs.run_part, dedup_pairs.jobs(work, listing, plan, step))
    [counters] = runner.run(dedup_pairs.resolve_job, [dedup_pairs.Part(work, listing, plan, "resolve")])
    write_atomic(done, json.dumps(counters))
    drops = {s.name: dedup_pairs.ShardDrops(work, listing, s.index, plan) for s in shards}
    return drops, counters


def _finish_pass(shards, out, config, compress, by_shard, runner, bar) -> None:
    """Pass 3: kept shards (those without a marker)."""
    if bar is not None:
        bar.set_description_str("clean [write]")
    jobs = [
        FinishJob(out, s.name, compress, config.text_field, by_shard.get(s.name, {}))
        for s in shards
        if not (out / ".work" / "pass3" / f"{s.name}.json").exists()
    ]
    runner.run(shardjob.finish_shard, jobs)


def _bar(progress: bool, n_shards: int) -> Any:
    if not progress:
        return None
    from jalm.progress import progress_bar

    return progress_bar(desc=f"clean [0/{n_shards} shards]", unit="doc", dynamic_ncols=True, smoothing=0.1)


def _shard_done(bar: Any, total: int, already: int):
    done = [already]

    def update(_: dict[str, Any]) -> None:
        done[0] += 1
        if bar is not None:
            bar.set_description_str(f"clean [{done[0]}/{total} shards]")

    return update


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _fingerprint(
    shards: list[Shard], config: CleanConfig, compress: str, stages: list[Any] | None
) -> dict[str, Any]:
    settings = json.dumps(config.settings, sort_keys=True, ensure_ascii=False)
    return {
        "shards": [{"name": s.name, "paths": s.paths} for s in shards],
        "config_sha256": hashlib.sha256(settings.encode("utf-8")).hexdigest(),
        "compress": compress,
        "stages": [type(s).__name__ for s in stages or []],
    }


def _check_or_write_plan(
    out: Path, shards: list[Shard], config: CleanConfig, compress: str, stages: list[Any] | None
) -> None:
    """A resumed run must be the same run: same inputs, config and compression."""
    plan_path = out / ".work" / "plan.json"
    plan = _fingerprint(shards, config, compress, stages)
    if plan_path.exists():
        previous = _read_json(plan_path)
        if previous != plan:
            differs = [key for key in plan if plan[key] != previous.get(key)]
            raise JalmError(
                f"{out}: holds a clean run with other {' and '.join(differs)}; "
                "use a new --out directory or --overwrite to start afresh"
            )
        return
    if (out / "stats.json").exists() or any(
        (out / sub).exists() and any((out / sub).iterdir()) for sub in ("kept", "rejected")
    ):
        raise JalmError(
            f"{out}: holds outputs of another clean run; use a new --out directory or --overwrite"
        )
    for sub in ("kept", "rejected", "quarantine"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    write_atomic(plan_path, json.dumps(plan, ensure_ascii=False, indent=1))


OUTPUTS = (
    "kept",
    "rejected",
    "quarantine",
    ".work",
    "stats.json",
    "report.md",
    "report.png",
    INCOMPLETE_MARKER,
)


def remove_outputs(out: Path) -> None:
    """Delete what a clean run writes (and nothing else a user may keep in the folder)."""
    for name in OUTPUTS:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def cleanup(work: Path, shards: list[Shard], keep_intermediate: bool = False) -> None:
    """Survivor files are no longer needed once their kept shard is written, nor, once every kept shard
    is, dedup's keys and pairs (kept with `keep_intermediate`)."""
    for shard in shards:
        if (work / "pass3" / f"{shard.name}.json").exists():
            (work / "candidates" / f"{shard.name}.jsonl").unlink(missing_ok=True)
    candidates = work / "candidates"
    if candidates.exists() and not any(candidates.iterdir()):
        shutil.rmtree(candidates)
    finished = all((work / "pass3" / f"{shard.name}.json").exists() for shard in shards)
    if finished and not keep_intermediate:
        for name in ("keys", "dedup"):
            if (work / name).exists():
                shutil.rmtree(work / name)


def merge_stats(shards, pass1, pass3, counters, config, workers, executor) -> dict[str, Any]:
    rejected: Counter[str] = Counter()
    rejected_bytes: Counter[str] = Counter()
    quarantined: Counter[str] = Counter()
    non_documents: Counter[str] = Counter()
    cpu: Counter[str] = Counter()
    examples: dict[str, list[dict[str, Any]]] = {}
    total = {"input": 0, "kept": 0, "malformed": 0, "html_extracted": 0}
    b = {"input": 0, "kept": 0, "malformed": 0}
    per_shard = []
    for shard in shards:
        p1, p3 = pass1[shard.name], pass3[shard.name]
        for key in ("input", "malformed", "html_extracted"):
            total[key] += p1[key]
        total["kept"] += p3["kept"]
        b["input"] += p1["bytes"]["input"]
        b["malformed"] += p1["bytes"]["malformed"]
        b["kept"] += p3["bytes"]["kept"]
        for source in (p1, p3):
            rejected.update(source["rejected"])
            rejected_bytes.update(source["bytes"]["rejected"])
            for rule, items in source["examples"].items():
                bucket = examples.setdefault(rule, [])
                bucket.extend(items[: max(0, shardjob.N_EXAMPLES - len(bucket))])
        quarantined.update(p1["quarantined"])
        non_documents.update(p1.get("non_documents", {}))
        cpu.update(p1["filter_seconds"])
        per_shard.append(
            {
                "name": shard.name,
                "paths": shard.paths,
                **({"range": [shard.start, shard.end]} if shard.start or shard.end is not None else {}),
                "input": p1["input"],
                "kept": p3["kept"],
                "rejected": sum(p1["rejected"].values()) + sum(p3["rejected"].values()),
                "malformed": p1["malformed"],
                "seconds": p1["seconds"],
            }
        )
    order = sorted(rejected, key=lambda rule: (-rejected[rule], rule))
    return {
        "version": STATS_VERSION,
        "input": total["input"],
        "kept": total["kept"],
        "rejected": {rule: rejected[rule] for rule in order},
        "rejected_total": sum(rejected.values()),
        "malformed": total["malformed"],
        "quarantined": dict(quarantined.most_common()),
        "html_extracted": total["html_extracted"],
        # web archive records that hold no document (requests, metadata, images…), by type; every
        # record is kept, rejected, quarantined or counted here: records = input + these
        "non_documents": dict(non_documents.most_common()),
        "records": total["input"] + sum(non_documents.values()),
        "bytes": {
            "input": b["input"],
            "kept": b["kept"],
            "rejected": {rule: rejected_bytes[rule] for rule in order},
            "malformed": b["malformed"],
        },
        "dedup": counters,
        "refine": merge_refine([pass1[shard.name].get("refine", {}) for shard in shards]),
        "shards": per_shard,
        "examples": {rule: examples[rule] for rule in order if rule in examples},
        "timings": {
            "workers": workers,
            "executor": executor,
            "cpu_s_by_step": {k: round(v, 3) for k, v in cpu.most_common()},
        },
        "config": config.settings,
    }
