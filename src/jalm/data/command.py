"""`jalm pack`: clean documents → memory-mapped token shards (format in jalm.data), by shard jobs."""

from __future__ import annotations

import argparse

from jalm.executors import add_executor_options

EPILOG = """examples:
  jalm pack runs/demo/clean/kept --tokenizer runs/demo/tokenizer --out runs/demo/packed
  jalm pack clean/c4/kept --tokenizer tok --out packed/c4 --workers 8
  RAY_ADDRESS=auto jalm pack clean/crawl/kept --tokenizer tok --out packed/crawl --executor ray
Rerunning the same command resumes: shards already packed are kept, the others are (re)done."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "pack",
        help="tokenize clean documents into memory-mapped token shards",
        description="Tokenize clean JSONL documents (no <s>, </s> after each) into token shards, one per "
        "input shard (or byte range of a big plain file), split into train and validation by document.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "inputs",
        nargs="+",
        help="JSONL(.gz/.zst) files or directories of them; or fsspec URLs (s3://bucket/clean/kept/, a glob)",
    )
    parser.add_argument(
        "--tokenizer",
        required=True,
        help="tokenizer or model directory: spiece.model, tokenizer.model or (byte-level BPE) tokenizer.json",
    )
    parser.add_argument(
        "--out", required=True, help="output directory, on a local or shared filesystem (not object storage)"
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
        "--val-fraction", type=float, default=0.01, help="share of documents held out (default 0.01)"
    )
    parser.add_argument(
        "--seq-len", type=int, default=512, help="default training sequence length recorded in meta.json"
    )
    add_executor_options(parser)
    parser.add_argument(
        "--allow-incomplete",
        action="store_true",
        help="read inputs that a killed or unfinished `jalm clean` left (refused by default)",
    )
    parser.add_argument(
        "--shard-mb",
        type=float,
        default=256,
        help="cut plain .jsonl files (or objects) bigger than this into byte ranges of this size (default 256)",
    )
    parser.add_argument(
        "--max-doc-tokens",
        type=int,
        default=1_000_000,
        help="set aside (and count) longer documents; 0: no limit (default 1,000,000)",
    )
    parser.add_argument("--text-field", default="text", help="the JSON field holding the text")
    parser.add_argument(
        "--overwrite", action="store_true", help="delete an earlier pack in OUT first instead of resuming it"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import shutil
    from pathlib import Path

    from jalm.data.packing import META_FILE, pack
    from jalm.data.tokens import SHARDS_DIR
    from jalm.io import refuse_url, set_storage_options

    refuse_url(args.out, "jalm pack")  # before --overwrite touches anything
    set_storage_options(args.storage_option)
    if args.overwrite:
        shutil.rmtree(Path(args.out) / SHARDS_DIR, ignore_errors=True)
        (Path(args.out) / META_FILE).unlink(missing_ok=True)
    meta = pack(
        args.inputs,
        args.tokenizer,
        args.out,
        args.val_fraction,
        args.seq_len,
        workers=args.workers,
        executor=args.executor,
        shard_bytes=max(1, int(args.shard_mb * 2**20)),
        max_doc_tokens=args.max_doc_tokens,
        text_field=args.text_field,
        allow_incomplete=args.allow_incomplete,
        retries=args.retries,
        task_memory=int(args.task_memory_gb * 2**30),
    )
    skipped = meta["skipped"]
    print(
        f"packed {meta['train_documents']:,} train / {meta['val_documents']:,} val documents: "
        f"{meta['train_tokens']:,} / {meta['val_tokens']:,} tokens "
        f"({meta['train_chars'] / max(meta['train_tokens'], 1):.2f} chars/token) in {len(meta['shards'])} shards "
        f"({meta['resumed_shards']} from an earlier run), {meta['seconds']:.1f}s → {args.out}; set aside: "
        f"{skipped['empty']:,} empty, {skipped['too_long']:,} over {meta['max_doc_tokens']:,} tokens"
    )
    return 0
