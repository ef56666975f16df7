"""Quality of the clean stage against HojiChar on the labelled set (see clean_common.py).

    .venv/bin/python benchmarks/clean_quality.py            # prints the tables for benchmarks/README.md
    .venv/bin/python benchmarks/clean_quality.py --raw-html # the technical pages from raw HTML, per extractor

Measures, for jalm (default config) and for HojiChar's Japanese filters + its near-dedup, the share
of clean documents kept (by source) and of noise removed (by category), and which rules cost clean
documents. Writes runs/bench_clean/quality.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from collections import Counter, defaultdict

from clean_common import (
    WORK,
    build_labelled_set,
    hojichar_pipeline,
    hojichar_reason,
    read_jsonl,
    technical_pages,
)
from jalm.corpus import clean
from jalm.jsonl import read_records


def run_jalm(files) -> tuple[set[str], dict[str, str], float]:
    out = WORK / "jalm_out"
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    clean(files, out, progress=False)
    elapsed = time.perf_counter() - started
    kept = {r["id"] for r in read_records(sorted((out / "kept").glob("*.jsonl*")))}
    reasons = {r["id"]: r["reason"] for r in read_records(sorted((out / "rejected").glob("*.jsonl*")))}
    return kept, reasons, elapsed


def run_hojichar(files, **options) -> tuple[set[str], dict[str, str], float]:
    from hojichar import Document

    pipeline = hojichar_pipeline(**options)
    kept, reasons = set(), {}
    started = time.perf_counter()
    for path in files:
        for record in read_jsonl(path):
            document = pipeline.apply(Document(record["text"]))
            if document.is_rejected:
                reasons[record["id"]] = hojichar_reason(document)
            else:
                kept.add(record["id"])
    return kept, reasons, time.perf_counter() - started


def table(labels, results) -> list[str]:
    by = defaultdict(list)
    for doc_id, info in labels.items():
        by[(info["label"], info["category"])].append(doc_id)
    names = list(results)
    lines = ["| set | category | docs | " + " | ".join(names) + " |", "|---|---|---:|" + "---:|" * len(names)]
    for label in ("clean", "noise"):
        verb = "kept" if label == "clean" else "removed"
        ids_all = [i for (lab, _), ids in by.items() if lab == label for i in ids]
        for (lab, category), ids in sorted(by.items()):
            if lab != label:
                continue
            cells = _right_shares(results, names, label, ids, "{:.1f}%")
            lines.append(f"| {label} ({verb}) | {category} | {len(ids)} | {cells} |")
        cells = _right_shares(results, names, label, ids_all, "**{:.1f}%**")
        lines.append(f"| **{label} ({verb})** | **all** | **{len(ids_all)}** | {cells} |")
    return lines


def _right_shares(results: dict, names: list[str], label: str, ids: list[str], template: str) -> str:
    """Per pipeline, the percentage of `ids` it got right (kept if clean, removed if noise), as cells."""
    shares = [sum((i in results[name][0]) == (label == "clean") for i in ids) / len(ids) for name in names]
    return " | ".join(template.format(100 * share) for share in shares)


def raw_html_technical() -> None:
    """The quality set's technical help pages fed as raw HTML (kind html) to `jalm clean`, once per
    extractor: pages kept and why the others were lost (the labels are those of the main table)."""
    from jalm.corpus.config import CleanConfig
    from jalm.corpus.html import EXTRACTORS

    pages = technical_pages(raw_html=True)
    with tempfile.TemporaryDirectory() as tmp:
        source = WORK / "technical_raw_html.jsonl"
        source.parent.mkdir(parents=True, exist_ok=True)
        with open(source, "w", encoding="utf-8") as handle:
            for i, page in enumerate(pages):
                handle.write(
                    json.dumps({"id": f"technical-{i}", "kind": "html", **page}, ensure_ascii=False) + "\n"
                )
        for extractor in EXTRACTORS:
            out = f"{tmp}/{extractor}"
            config = CleanConfig.load(overrides={"html": {"extractor": extractor}})
            stats = clean([source], out, config, progress=False, report=False)
            lost = {rule: n for rule, n in stats["rejected"].items() if n}
            print(f"{extractor}: technical pages kept {stats['kept']}/{len(pages)}; lost: {lost}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--raw-html", action="store_true", help="only the technical pages, from raw HTML")
    if parser.parse_args().raw_html:
        raw_html_technical()
        return
    files, labels = build_labelled_set()
    n_bytes = sum(p.stat().st_size for p in files)
    print(
        f"labelled set: {len(labels)} documents ({n_bytes / 1e6:.1f} MB) in {len(files)} shards under {files[0].parent}"
    )
    results = {
        "jalm": run_jalm(files),
        "HojiChar 0.18.1 defaults": run_hojichar(files),
        "HojiChar, ignore_confused=True": run_hojichar(files, ignore_confused=True),
    }
    print()
    print("\n".join(table(labels, results)))
    print()
    for name, (kept, reasons, elapsed) in results.items():
        lost = Counter(
            reasons[i].split(":", 1)[0]
            for i, info in labels.items()
            if info["label"] == "clean" and i in reasons
        )
        missed = Counter(
            info["category"] for i, info in labels.items() if info["label"] == "noise" and i in kept
        )
        print(
            f"{name}: clean documents lost by rule: {dict(lost.most_common())}; noise kept by category: {dict(missed.most_common())}; {elapsed:.1f} s"
        )
    summary = {
        name: {
            "kept": sorted(kept),
            "reasons": reasons,
            "seconds": elapsed,
        }
        for name, (kept, reasons, elapsed) in results.items()
    }
    (WORK / "quality.json").write_text(
        json.dumps({"labels": labels, "results": summary}, ensure_ascii=False, indent=1), encoding="utf-8"
    )


if __name__ == "__main__":
    main()
