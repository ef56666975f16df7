"""`jalm pack`: clean documents → memory-mapped train/val token streams (format in jalm.data)."""

from __future__ import annotations

import argparse

from jalm.data import pack


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "pack",
        help="tokenize clean documents into memory-mapped token files",
        description="Tokenize clean JSONL documents (no <s>, </s> after each) into train.bin / val.bin, "
        "split by document.",
        epilog="example: jalm pack runs/demo/clean/kept --tokenizer runs/demo/tokenizer --out runs/demo/packed",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("inputs", nargs="+", help="JSONL(.gz/.zst) files or directories of them")
    parser.add_argument("--tokenizer", required=True, help="directory with spiece.model")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument(
        "--val-fraction", type=float, default=0.01, help="share of documents held out (default 0.01)"
    )
    parser.add_argument(
        "--seq-len", type=int, default=512, help="default training sequence length recorded in meta.json"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    meta = pack(args.inputs, args.tokenizer, args.out, args.val_fraction, args.seq_len)
    print(
        f"packed {meta['train_documents']:,} train / {meta['val_documents']:,} val documents: "
        f"{meta['train_tokens']:,} / {meta['val_tokens']:,} tokens "
        f"({meta['train_chars'] / max(meta['train_tokens'], 1):.2f} chars/token) in {meta['seconds']:.1f}s → {args.out}"
    )
    return 0
