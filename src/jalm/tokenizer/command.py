"""`jalm tokenizer train`: the SentencePiece unigram tokenizer and its Hugging Face files (jalm.tokenizer)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from jalm.executors import add_executor_options
from jalm.tokenizer import STATS_FILE, train_tokenizer


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tokenizer",
        help="train the SentencePiece tokenizer and write its Hugging Face files",
        description="Tokenizer stage: SentencePiece unigram with byte fallback, LINE's special ids.",
    )
    commands = parser.add_subparsers(dest="tokenizer_command", metavar="SUBCOMMAND", required=True)
    train = commands.add_parser(
        "train",
        help="train a tokenizer on JSONL text",
        description=(
            "Train a SentencePiece unigram tokenizer (byte fallback, identity normalisation, ids 0..6 = "
            "<unk> <s> </s> <pad> <sep> <mask> <cls>, \\n = 7) on the `text` field of JSONL(.gz/.zst) "
            "files, sampling up to --max-sentences sentences. Writes spiece.model, tokenizer.json, "
            "tokenizer_config.json, special_tokens_map.json and train_stats.json into --out."
        ),
        epilog="example: jalm tokenizer train out/clean/kept --vocab-size 8000 --out out/tokenizer",
    )
    train.add_argument("inputs", nargs="+", metavar="INPUT", help="JSONL(.gz/.zst) files or directories")
    train.add_argument("--out", required=True, type=Path, help="directory to write the tokenizer into")
    train.add_argument(
        "--vocab-size", type=int, default=51200, help="pieces in the vocabulary (default 51200)"
    )
    train.add_argument(
        "--max-sentences",
        type=int,
        default=2_000_000,
        help="sentences sampled uniformly across all inputs for training (default 2000000). SentencePiece "
        "needs about 56 bytes per sampled character (benchmarks/tokenizer_memory.py): at ~50 characters "
        "per sentence the default costs about 5.5 GiB; a sample that cannot fit is refused before training",
    )
    train.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    train.add_argument("--threads", type=int, default=None, help="training threads (default: all cores)")
    train.add_argument("--model-max-length", type=int, default=2048, help="context length (default 2048)")
    train.add_argument("--quiet", action="store_true", help="no progress output")
    train.add_argument(
        "--allow-incomplete",
        action="store_true",
        help="read inputs that a killed or unfinished `jalm clean` left (refused by default)",
    )
    add_executor_options(train)  # the sample's shard jobs (one per file); default: one process, as before
    train.set_defaults(func=run)
    extend = commands.add_parser(
        "extend",
        help="append pieces learned on new text to a base tokenizer, keeping every existing id",
        description=(
            "Learn a SentencePiece model of the base's kind (unigram or BPE) on the `text` field of --data and "
            "append up to --add of its pieces the base lacks, after every existing id. Writes the extended "
            "model under the base's file name, the base's tokenizer_config.json and special_tokens_map.json, "
            "an exact tokenizer.json where one can be written, and jalm_extend.json (what was added, and the "
            "base ids each new piece splits into: `jalm train --init-from BASE` starts each new embedding row "
            "as their mean). Byte-level BPE bases (tokenizer.json only) are refused."
        ),
        epilog="example: jalm tokenizer extend --base models/line-3.6b --data clean/ja --add 8000 --out tok-ext",
    )
    extend.add_argument("--base", required=True, type=Path, help="tokenizer or model directory to extend")
    extend.add_argument("--data", required=True, nargs="+", help="JSONL(.gz/.zst) files or directories")
    extend.add_argument("--add", required=True, type=int, help="pieces to append (at most)")
    extend.add_argument("--out", required=True, type=Path, help="directory to write the tokenizer into")
    extend.add_argument(
        "--max-sentences", type=int, default=200_000, help="sentences sampled (default 200000)"
    )
    extend.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    extend.add_argument("--threads", type=int, default=1, help="training threads (default 1)")
    extend.set_defaults(func=run_extend)


def run(args: argparse.Namespace) -> int:
    out_dir = train_tokenizer(
        args.inputs,
        args.out,
        vocab_size=args.vocab_size,
        max_sentences=args.max_sentences,
        seed=args.seed,
        num_threads=args.threads,
        progress=not args.quiet,
        model_max_length=args.model_max_length,
        allow_incomplete=args.allow_incomplete,
        workers=args.workers,
        executor=args.executor,
        retries=args.retries,
    )
    stats = json.loads((out_dir / STATS_FILE).read_text(encoding="utf-8"))
    print(
        f"tokenizer: vocab {stats['vocab_size']}, {stats['sentences_used']:,} of {stats['sentences_seen']:,} "
        f"sentences used, {stats['chars_per_token']:.2f} chars/token on {stats['chars_per_token_sample']:,} "
        f"sentences, {stats['seconds']:.1f} s → {out_dir}"
    )
    return 0


def run_extend(args: argparse.Namespace) -> int:
    from jalm.tokenizer.extend import extend_tokenizer

    record = extend_tokenizer(
        args.base, args.data, args.add, args.out, args.max_sentences, args.seed, args.threads
    )
    print(
        f"tokenizer extend: {record['base_vocab']} + {record['added']} {record['kind']} pieces "
        f"({record['candidates']} candidates, {record['unreachable_bpe_pieces_skipped']} unreachable BPE pieces "
        f"skipped); tokenizer.json {record['tokenizer_json']} → {args.out}"
    )
    return 0
