"""What SentencePiece unigram training costs in memory, per character of the sentence sample.

`jalm tokenizer train` reservoir-samples `--max-sentences` sentences uniformly across all its input shards
(one pass, memory bounded by the sample), then trains SentencePiece on the sample in memory. This script
measures, for growing samples of the bundled corpora, the peak RSS of training above the process's RSS
once the sample is held (`ru_maxrss`, each size in a fresh subprocess), and divides by the sample's
characters: the bytes per character that `jalm.tokenizer.TRAINER_BYTES_PER_CHAR` states and the trainer's
memory estimate uses.

    .venv/bin/python benchmarks/tokenizer_memory.py --sizes 10000 20000 40000 80000 --vocab 8000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys


def max_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def child(size: int, vocab: int) -> dict:
    from jalm.jsonl import read_texts
    from jalm.resources import bundled
    from jalm.tokenizer import _run_trainer, _trainer_options, sample_sentences

    files = [bundled("corpus/wiki_jaquad.jsonl.zst"), bundled("corpus/aozora.jsonl.zst")]
    sentences, counts = sample_sentences(read_texts(files), size, seed=0)
    chars = sum(len(s) for s in sentences)
    before = max_rss()
    _run_trainer(sentences, _trainer_options(vocab, 2), False, files)
    return {
        "sentences": len(sentences),
        "seen": counts["sentences_seen"],
        "chars": chars,
        "before": before,
        "peak": max_rss(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 20_000, 40_000, 80_000])
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.vocab)))
        return 0
    from jalm.tokenizer import TRAINER_BYTES_PER_CHAR

    print(f"vocab {args.vocab}; MiB = 2^20 bytes; stated factor {TRAINER_BYTES_PER_CHAR} B/char")
    print(f"{'sentences':>9s} {'chars':>11s} {'held':>8s} {'training':>9s} {'B/char':>7s}")
    for size in args.sizes:
        command = [sys.executable, __file__, "--vocab", str(args.vocab), "--child", str(size)]
        row = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
        extra = row["peak"] - row["before"]
        print(
            f"{row['sentences']:>9,} {row['chars']:>11,} {row['before'] / 2**20:>7.0f}M "
            f"{extra / 2**20:>8.0f}M {extra / row['chars']:>7.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
