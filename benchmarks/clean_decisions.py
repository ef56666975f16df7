"""Decisions of the clean stage, snapshotted so that a speed change can be shown to change nothing.

    .venv/bin/python benchmarks/clean_decisions.py snapshot runs/bench_clean/decisions_before.json
    ... change the code ...
    .venv/bin/python benchmarks/clean_decisions.py snapshot runs/bench_clean/decisions_after.json
    .venv/bin/python benchmarks/clean_decisions.py compare runs/bench_clean/decisions_{before,after}.json

A snapshot holds, for the labelled set of clean_quality.py, the bundled data (data/corpus, data/dev,
data/noisy, the synthetic test fixture) and ../shared/data's corpus, dev and noisy files:
- from a full `clean()` run per input set: every output record (kept, rejected with its reason,
  quarantined) as the SHA-256 of its content (keys sorted, so line formatting does not count), by
  document id, and stats.json and report.md without timings;
- in memory, for every document: EACH filter's verdict on its own (not only the first one that
  fires), so a change hidden behind an earlier filter still shows, and the MinHash signature.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np

from clean_common import ROOT, SHARED, WORK, build_labelled_set
from jalm.corpus import clean, dedup
from jalm.corpus.config import CleanConfig
from jalm.corpus.features import Features
from jalm.corpus.filters import FILTERS
from jalm.corpus.normalize import normalize_text
from jalm.jsonl import iter_lines


def input_sets() -> dict[str, list[Path]]:
    bundled = [
        *sorted((ROOT / "data" / "corpus").glob("*.jsonl.zst")),
        ROOT / "data" / "dev" / "wiki_jaquad.jsonl.zst",
        ROOT / "data" / "noisy" / "web_raw.jsonl.zst",
        ROOT / "tests" / "fixtures" / "clean" / "synthetic_noise.jsonl",
    ]
    files, _ = build_labelled_set()
    shared = [
        *sorted((SHARED / "corpus").glob("*.jsonl")),
        *sorted((SHARED / "dev").glob("*.jsonl")),
        SHARED / "noisy" / "web_raw.jsonl",
    ]
    return {"bundled": bundled, "labelled": files, "shared": shared}


def _digest(record: dict) -> str:
    """Of the record's content (keys sorted): the same record however its line is formatted."""
    canonical = json.dumps(record, ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:20]


def run_outputs(name: str, files: list[Path]) -> dict:
    out = WORK / f"decisions_{name}"
    shutil.rmtree(out, ignore_errors=True)
    stats = clean(files, out, progress=False, report=True)
    records = {}
    for sub in ("kept", "rejected", "quarantine"):
        for path in sorted((out / sub).glob("*.jsonl*")):
            for _, raw in iter_lines(path):
                record = json.loads(raw)
                key = record.get("id") or f"{path.name}:{record.get('line')}"
                verdict = "kept" if sub == "kept" else record.get("reason") or record.get("problem")
                records[f"{sub}/{path.name}/{key}"] = [verdict, _digest(record)]
    stats.pop("timings")
    for shard in stats["shards"]:
        shard.pop("seconds")
    report = (out / "report.md").read_text(encoding="utf-8").splitlines()
    report = [line for line in report if not line.startswith("Time ")]  # timings vary
    return {"records": records, "stats": stats, "report_md": report}


def per_filter(files: list[Path]) -> dict:
    config = CleanConfig.load()
    filters = list(config.filters())
    verdicts = {}
    for path in files:
        for number, raw in iter_lines(path):
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            text = record.get("text") if isinstance(record, dict) else None
            if not isinstance(text, str):
                continue
            text = normalize_text(text)
            row = {}
            for name, params in filters:
                row[name] = FILTERS[name](Features(text), params)  # fresh features: no shared state
            sig = dedup.signature(Features(text).ngram_hashes(5), 128)
            row["minhash"] = (
                None if sig is None else hashlib.sha256(np.asarray(sig).tobytes()).hexdigest()[:16]
            )
            verdicts[f"{path.name}:{number}"] = row
    return verdicts


def snapshot(target: Path) -> None:
    data = {}
    for name, files in input_sets().items():
        data[name] = {"run": run_outputs(name, files), "filters": per_filter(files)}
        n = len(data[name]["filters"])
        print(f"{name}: {len(data[name]['run']['records'])} output records, {n} documents judged per filter")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(data, ensure_ascii=False, sort_keys=True), encoding="utf-8")
    print(f"wrote {target}")


def compare(a_path: Path, b_path: Path) -> int:
    a = json.loads(a_path.read_text(encoding="utf-8"))
    b = json.loads(b_path.read_text(encoding="utf-8"))
    problems = 0
    for name in sorted(set(a) | set(b)):
        if name not in a or name not in b:
            print(f"{name}: only in one snapshot")
            problems += 1
            continue
        ra, rb = a[name]["run"], b[name]["run"]
        for part in ("records", "stats", "report_md"):
            if ra[part] != rb[part]:
                problems += 1
                print(f"{name}: {part} differ")
                if part == "records":
                    keys = sorted(
                        set(ra[part]) ^ set(rb[part])
                        | {k for k in ra[part] if ra[part][k] != rb[part].get(k)}
                    )
                    for key in keys[:10]:
                        print(f"  {key}: {ra[part].get(key)} → {rb[part].get(key)}")
        fa, fb = a[name]["filters"], b[name]["filters"]
        diffs = [(doc, f) for doc in fa for f in fa[doc] if fa[doc][f] != fb.get(doc, {}).get(f)]
        if set(fa) != set(fb) or diffs:
            problems += 1
            print(f"{name}: {len(diffs)} per-filter verdicts differ")
            for doc, f in diffs[:10]:
                print(f"  {doc} {f}: {fa[doc][f]!r} → {fb[doc].get(f)!r}")
        n_records = len(ra["records"])
        n_verdicts = sum(len(v) for v in fa.values())
        print(
            f"{name}: {n_records} output records, {len(fa)} documents × {n_verdicts // max(len(fa), 1)} verdicts compared"
        )
    print("IDENTICAL" if not problems else f"{problems} differences")
    return 1 if problems else 0


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("snapshot").add_argument("target", type=Path)
    cmp = sub.add_parser("compare")
    cmp.add_argument("a", type=Path)
    cmp.add_argument("b", type=Path)
    args = parser.parse_args()
    if args.command == "snapshot":
        snapshot(args.target)
    else:
        sys.exit(compare(args.a, args.b))


if __name__ == "__main__":
    main()
