"""`jalm clean`: the command-line face of jalm.corpus.clean."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from jalm.executors import add_executor_options

EXAMPLE = """examples:
  jalm clean data/corpus/*.jsonl.zst data/noisy/web_raw.jsonl.zst --out runs/clean
  jalm clean crawl/ --out runs/clean --workers 8 --config my_rules.toml
  RAY_ADDRESS=auto jalm clean s3mount/crawl/ --out s3mount/clean --executor ray
  jalm clean CC-MAIN-*.warc.gz --out runs/web --workers 8 --url-block blocklist.txt
  jalm clean 's3://bucket/crawl-data/CC-MAIN-2024-10/segments/*/wet/*.warc.wet.gz' --out runs/cc --workers 16
  jalm clean crawl/ --out runs/clean --decontaminate data/eval/jsquad-valid-v1.1.json.zst --pii off

inputs: .jsonl/.jsonl.gz/.jsonl.zst and .parquet files (one shard each), web archives
(.warc/.wet/.arc, plain or .gz: HTML and text responses become documents with url, date and
warc_record_id; other records are counted by type), folders of .txt/.html files (one shard per
folder; HTML is reduced to its main text). Plain JSONL and WARC files over --split-mb are cut into
byte ranges at record boundaries, one shard each. Inputs may be fsspec URLs (s3://, gs://; pip install
'jalm[cloud]'), read by the jobs themselves, credentials the store's usual way. Writes DIR/kept/, DIR/rejected/
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
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="JSONL(.gz/.zst), Parquet or WARC/WET files, or folders; or fsspec URLs of them (an object, a "
        "prefix or a glob: s3://bucket/crawl-data/*/segments/*/wet/*.warc.wet.gz)",
    )
    parser.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="output directory, on a local or shared filesystem (not object storage)",
    )
    parser.add_argument(
        "--storage-option",
        action="append",
        metavar="KEY=VALUE",
        help="an option of the inputs' object store when they are URLs (s3://, gs://), e.g. "
        "endpoint_url=http://127.0.0.1:9000 for an S3-compatible server (repeatable; credentials: the store's "
        "usual environment variables and config files)",
    )
    parser.add_argument(
        "--compress", choices=("zst", "gz", "none"), default="zst", help="output shard compression"
    )
    parser.add_argument(
        "--config", type=Path, metavar="FILE", help="TOML or JSON file overriding the default rules"
    )
    add_executor_options(parser)
    parser.add_argument(
        "--extractor",
        choices=("resiliparse", "resiliparse-full", "trafilatura"),
        help="HTML main-text extractor (default from the config: resiliparse; resiliparse-full keeps every "
        "block but nav/header/footer/aside and leaves menus to the line rules)",
    )
    parser.add_argument(
        "--url-block",
        action="append",
        type=Path,
        metavar="FILE",
        help="reject documents whose url matches this list (domains, URL patterns with *, re:REGEX); repeatable",
    )
    parser.add_argument(
        "--url-allow",
        action="append",
        type=Path,
        metavar="FILE",
        help="exceptions to --url-block: URLs on this list are never blocked; repeatable",
    )
    parser.add_argument(
        "--split-mb",
        type=float,
        metavar="MB",
        help="cut plain JSONL and WARC files (or objects) bigger than this into ranges of this size "
        "(0: never; default 256)",
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
    parser.add_argument(
        "--memory-per-worker",
        metavar="SIZE",
        help="memory budget of each dedup process, e.g. 2GB or 512MB: the dedup steps cut their work into "
        "parts that fit it, whatever the number of documents (default from the config's [dedup] memory: 2GB)",
    )
    parser.add_argument(
        "--keep-intermediate",
        action="store_true",
        help="keep dedup's sorted key runs and pair files under DIR/.work/ after the run (removed by default)",
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
        + (
            f"{sum(stats['non_documents'].values())} web archive records without a document counted; "
            if stats.get("non_documents")
            else ""
        )
        + f"{t.get('total_s', 0):.1f} s, {t.get('mb_per_s') or 0:.1f} MB/s → {out}/ (report.md, stats.json)"
    )


def input_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The config keys that --extractor, --url-block/--url-allow, --split-mb, --pii, --decontaminate and
    --memory-per-worker set."""
    out: dict[str, Any] = {}
    if getattr(args, "extractor", None):
        out["html"] = {"extractor": args.extractor}
    # Absolute paths: workers (and Ray tasks) may run elsewhere than the current directory.
    urls = {
        key: [str(p.resolve()) for p in getattr(args, f"url_{key}", None) or []] for key in ("block", "allow")
    }
    if urls["block"] or urls["allow"]:
        out["url_filter"] = urls
    if getattr(args, "split_mb", None) is not None:
        out["input"] = {"split_mb": args.split_mb}
    if getattr(args, "pii", None):
        out["pii"] = {"mode": args.pii}
    if getattr(args, "memory_per_worker", None):
        from jalm.corpus.dedup_runs import parse_bytes

        parse_bytes(args.memory_per_worker)  # a mistake is one line now, not after pass 1
        out["dedup"] = {"memory": args.memory_per_worker}
    if getattr(args, "decontaminate", None):
        out["decontaminate"] = {"files": [str(path.resolve()) for path in args.decontaminate]}
    return out


def run(args: argparse.Namespace) -> int:
    from jalm.corpus.config import CleanConfig
    from jalm.corpus.pipeline import clean
    from jalm.io import set_storage_options

    set_storage_options(args.storage_option)
    config = CleanConfig.load(args.config, overrides=input_overrides(args))
    stats = clean(
        args.inputs,
        args.out,
        config=config,
        workers=args.workers,
        progress=not args.no_progress,
        compress=args.compress,
        executor=args.executor,
        overwrite=args.overwrite,
        keep_intermediate=args.keep_intermediate,
        retries=args.retries,
        task_memory=int(args.task_memory_gb * 2**30),
    )
    print(summary_line(stats, args.out))
    return 0
