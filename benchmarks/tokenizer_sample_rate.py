"""Tokenizer sampling speed per core: MB of uncompressed JSONL per CPU-second, for the single-process
reservoir (`jalm tokenizer train`, default) and one shard job of the parallel sample (--workers N),
on the bundled corpus (data/corpus/*.jsonl.zst, as `jalm clean` writes kept/), then the hours a
650 GB corpus takes on N cores at that rate (the parallel sample scales with cores: one job per file).

    PYTHONPATH=src nice -n 10 .venv/bin/python benchmarks/tokenizer_sample_rate.py
"""

from __future__ import annotations

import time
from pathlib import Path

from jalm.io import open_compressed
from jalm.jsonl import read_texts
from jalm.tokenizer import sample_sentences
from jalm.tokenizer.sample import SampleJob, sample_file

ROOT = Path(__file__).resolve().parents[1]
FILES = sorted((ROOT / "data" / "corpus").glob("*.jsonl.zst"))
CORPUS_GB = 650
REPEATS = 3


def _mb(files: list[Path]) -> float:
    total = 0
    for path in files:
        with open_compressed(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                total += len(chunk)
    return total / 1e6


def _best_cpu(run) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        start = time.process_time()
        run()
        best = min(best, time.process_time() - start)
    return best


def main() -> None:
    mb = _mb(FILES)
    single = _best_cpu(lambda: sample_sentences(read_texts(FILES), 2_000_000, 0))
    job = _best_cpu(lambda: [sample_file(SampleJob(str(f), 2_000_000, 0)) for f in FILES])
    print(f"input: {', '.join(f.name for f in FILES)}: {mb:.1f} MB of JSONL (uncompressed)")
    print("| sampler | MB/s per core (CPU time, best of 3) |")
    print("|---|---|")
    print(f"| single-process reservoir (default) | {mb / single:.1f} |")
    print(f"| one shard job of the parallel sample | {mb / job:.1f} |")
    print()
    rate = mb / job
    print(f"| cores | hours to sample {CORPUS_GB} GB (at {rate:.1f} MB/s per core, reading every byte) |")
    print("|---|---|")
    for cores in (1, 16, 64, 256):
        print(f"| {cores} | {CORPUS_GB * 1e3 / rate / cores / 3600:.2f} |")


if __name__ == "__main__":
    main()
