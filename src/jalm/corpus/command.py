"""`jalm clean`: the command-line face of jalm.corpus.clean."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

EXAMPLE = """examples:
  jalm clean data/corpus/*.jsonl.zst data/noisy/web_raw.jsonl.zst --out runs/clean
  jalm clean crawl/ --out runs/clean --workers 8 --config my_rules.toml
  RAY_ADDRESS=auto jalm clean s3mount/crawl/ --out s3mount/clean --executor ray
  jalm clean crawl/ --out runs/clean --decontaminate data/eval/jsquad-valid-v1.1.json.zst --pii off

inputs: .jsonl/.jsonl.gz/.jsonl.zst and .parquet files (one shard each), folders of .txt/.html
files (one shard per folder; HTML is reduced to its main text). Writes DIR/kept/, DIR/rejected/
(each record with its `reason`: rule and evidence), DIR/quarantine/ (unreadable input, with file
and line), DIR/stats.json, DIR/report.md + report.png. Rerun the same command to resume a killed run.
The default rules: python -c "import jalm.corpus.config as c; print(c.DEFAULT_CONFIG_PATH.read_text())"."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "clean",
        help="normalise, filter and deduplicate raw Japanese documents",
        description="Normalise (NFKC), extract HTML main text, filter with Japanese quality rules, and remove exact "
        "and near duplicates across all shards. Every input document ends up kept, rejected (with its rule and "
        "evidence) or quarantined.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="JSONL(.gz/.zst) or Parquet files, or folders"
    )
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output directory")
    parser.add_argument(
        "--compress", choices=("zst", "gz", "none"), default="zst", help="output shard compression"
    )
    parser.add_argument(
        "--config", type=Path, metavar="FILE", help="TOML or JSON file overriding the default rules"
    )
    parser.add_argument(
        "--workers", type=int, default=1, metavar="N", help="processes, each taking whole shards"
    )
    parser.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="local processes, or Ray (joins RAY_ADDRESS if set, else starts a local Ray with N CPUs)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="delete an earlier run's outputs in DIR first"
    )
    parser.add_argument(
        "--pii",
        choices=("mask", "off"),
        help="replace e-mail addresses, phone numbers, IP addresses and card numbers by placeholders "
        "(default: the config's [pii] mode, mask)",
    )
    parser.add_argument(
        "--decontaminate",
        nargs="+",
        type=Path,
        metavar="FILE",
        help="evaluation sets (.jsonl/.json/.tsv, .gz/.zst): reject documents sharing a 30-character n-gram with them",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def summary_line(stats: dict[str, Any], out: Path) -> str:
    """One line saying what happened to every document, e.g. for the demo's output."""
    n = stats["input"] or 1
    top = sorted(stats["rejected"].items(), key=lambda kv: -kv[1])
    rejected = ", ".join(f"{rule} {count}" for rule, count in top)
    mb = stats["bytes"]["input"] / 1e6
    t = stats.get("timings", {})
    html = (
        f"{stats['html_extracted']} HTML pages reduced to main text; " if stats.get("html_extracted") else ""
    )
    return (
        f"clean: {stats['input']} docs ({mb:.1f} MB) → kept {stats['kept']} ({100 * stats['kept'] / n:.1f}%), "
        f"rejected {stats['rejected_total']}"
        + (f" ({rejected})" if rejected else "")
        + f", quarantined {stats['malformed']}; {html}"
        f"{t.get('total_s', 0):.1f} s, {t.get('mb_per_s') or 0:.1f} MB/s → {out}/ (report.md, stats.json)"
    )


def run(args: argparse.Namespace) -> int:
    from jalm.corpus.config import CleanConfig
    from jalm.corpus.pipeline import clean

    overrides: dict[str, Any] = {}
    if args.pii:
        overrides["pii"] = {"mode": args.pii}
    if args.decontaminate:
        overrides["decontaminate"] = {"files": [str(path.resolve()) for path in args.decontaminate]}
    config = CleanConfig.load(args.config, overrides)
    stats = clean(
        args.inputs,
        args.out,
        config=config,
        workers=args.workers,
        progress=not args.no_progress,
        compress=args.compress,
        executor=args.executor,
        overwrite=args.overwrite,
    )
    print(summary_line(stats, args.out))
    return 0
