"""Does `jalm pack` scale with workers, and does the sampler's memory stay flat with many shards?

    python benchmarks/pack_scaling.py                       # both parts
    python benchmarks/pack_scaling.py --part pack --workers 1 2 --repeats 3
    python benchmarks/pack_scaling.py --part sampler --tokens 8e9 --shards 1 64

Part 1, pack throughput: the bundled corpus (data/corpus/*.jsonl.zst, decompressed and repeated
`--copies` times into one plain JSONL file, cut into `--jobs` byte ranges) packed with each worker count, one SentencePiece thread
per job, runs interleaved, medians of `--repeats`. Reported: tokens per CPU-second inside the jobs (each
job's process_time, all its threads; per-worker throughput; timed after each process's one-time imports and tokenizer load), tokens per
wall-second, and the start-up cost apart: the CPU the whole call spent (this process and its finished
children, from getrusage) that no job accounts for (spawning workers, their imports and tokenizer
loads, planning, meta.json).

Part 2, sampler memory: a synthetic packed dataset of `--tokens` uint16 tokens (sparse files: no disk
is written, the pages read back are zeros) as 1 and as 64 shards; a fresh process opens it, builds the
sampler and draws and reads 200 steps of 64 windows of 2,049 tokens. Reported: the process's anonymous
memory (RssAnon: what the sampler and its index hold, not the file pages the memory maps read) after
set-up and after the draws, against the baseline, the earlier sampler (`rng.permutation` of every
window's index, 8 bytes per window, per rank).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SEQ_LEN = 2048


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def prepare_corpus(work: Path, copies: int) -> Path:
    from jalm.jsonl import read_records

    corpus = work / "corpus.jsonl"
    records = list(read_records(sorted((REPO / "data" / "corpus").glob("*.jsonl.zst"))))
    with open(corpus, "w", encoding="utf-8") as out:
        for _ in range(copies):
            for record in records:
                out.write(json.dumps({"text": record["text"]}, ensure_ascii=False) + "\n")
    return corpus


def bench_pack(args: argparse.Namespace, work: Path) -> list[dict]:
    from jalm.data import pack
    from jalm.tokenizer import train_tokenizer

    corpus = prepare_corpus(work, args.copies)
    tokenizer = Path(args.tokenizer) if args.tokenizer else work / "tokenizer"
    if not args.tokenizer:
        train_tokenizer([corpus], tokenizer, vocab_size=8000, max_sentences=50_000, progress=False)
    shard_bytes = -(-corpus.stat().st_size // args.jobs)
    rows: dict[int, list[dict]] = {w: [] for w in args.workers}
    for repeat, workers in itertools.product(range(args.repeats), args.workers):
        out = work / f"packed-{workers}"
        shutil.rmtree(out, ignore_errors=True)
        cpu0, wall0 = cpu_seconds(), time.perf_counter()
        meta = pack(
            [corpus],
            tokenizer,
            out,
            seq_len=SEQ_LEN,
            progress=False,
            workers=workers,
            shard_bytes=shard_bytes,
            threads=1,
        )
        wall, cpu = time.perf_counter() - wall0, cpu_seconds() - cpu0
        markers = [json.loads((out / "shards" / f"{s['name']}.json").read_text()) for s in meta["shards"]]
        job_cpu = sum(m["cpu_seconds"] for m in markers)
        tokens = meta["train_tokens"] + meta["val_tokens"]
        row = {
            "workers": workers,
            "jobs": len(markers),
            "tokens": tokens,
            "wall_s": round(wall, 2),
            "cpu_s": round(cpu, 2),
            "job_cpu_s": round(job_cpu, 2),
            "tokens_per_job_cpu_s": round(tokens / job_cpu),
            "tokens_per_wall_s": round(tokens / wall),
            "startup_cpu_s": round(cpu - job_cpu, 2),
            "repeat": repeat,
        }
        print(json.dumps(row), flush=True)
        rows[workers].append(row)
    return [summarise(rows[w]) for w in args.workers]


def summarise(rows: list[dict]) -> dict:
    """Medians over the repeats, with the range of the per-CPU-second throughput."""
    per_cpu = sorted(r["tokens_per_job_cpu_s"] for r in rows)
    keys = ("wall_s", "tokens_per_wall_s", "startup_cpu_s")
    return {
        **rows[0],
        **{key: statistics.median(r[key] for r in rows) for key in keys},
        "tokens_per_job_cpu_s": statistics.median(per_cpu),
        "range": (per_cpu[0], per_cpu[-1]),
    }


CHILD = r"""
import json, sys, resource
from pathlib import Path

def anon_kb():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1])

mode, folder, seq_len = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
import numpy as np
from jalm.data import get_windows, num_windows
from jalm.data.mixture import open_datasets, parse_sources
from jalm.data.sampler import MixtureSampler
base = anon_kb()
(dataset,) = open_datasets(parse_sources([str(folder)]))
windows = num_windows(dataset.train, seq_len)
if mode == "new":
    sampler = MixtureSampler([windows], [1.0], seed=0)
    take = lambda n: sampler.take(n)[1]
else:  # the earlier sampler: a permutation of every window's index, per epoch
    order = np.random.default_rng([0, 0]).permutation(windows)
    position = 0
    def take(n):
        global position
        position += n
        return order[position - n : position]
setup = anon_kb()
checksum = 0
for _ in range(200):
    batch = get_windows(dataset.train, take(64), seq_len)
    checksum += int(batch[:, 0].sum())
after = anon_kb()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"windows": windows, "base_kb": base, "setup_kb": setup, "after_kb": after, "peak_rss_kb": peak}))
"""


def synthetic_packed(folder: Path, tokens: int, shards: int) -> None:
    """A format-2 packed directory of `tokens` zero tokens in `shards` sparse files."""
    (folder / "shards").mkdir(parents=True)
    per = tokens // shards
    rows = []
    for i in range(shards):
        name = f"s{i:05d}"
        with open(folder / "shards" / f"{name}.train.bin", "wb") as handle:
            handle.truncate(per * 2)
        rows.append(
            {"name": name, "train_tokens": per, "val_tokens": 0, "train_documents": 1, "val_documents": 0}
        )
    meta = {
        "format": 2,
        "dtype": "uint16",
        "vocab_size": 51200,
        "eos_id": 2,
        "train_tokens": per * shards,
        "val_tokens": 0,
        "shards": rows,
    }
    (folder / "meta.json").write_text(json.dumps(meta))


def bench_sampler(args: argparse.Namespace, work: Path) -> list[dict]:
    rows = []
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    for shards in args.shards:
        folder = work / f"synthetic-{shards}"
        synthetic_packed(folder, int(args.tokens), shards)
        for mode in ("new", "permutation") if shards == args.shards[0] else ("new",):
            command = [sys.executable, "-c", CHILD, mode, str(folder), str(SEQ_LEN)]
            result = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
            measured = json.loads(result.stdout.strip().splitlines()[-1])
            row = {
                "sampler": "jalm (Feistel, sharded)" if mode == "new" else "earlier (rng.permutation)",
                "shards": shards,
                "windows": measured["windows"],
                "setup_MiB": round((measured["setup_kb"] - measured["base_kb"]) / 1024, 2),
                "after_200_steps_MiB": round((measured["after_kb"] - measured["base_kb"]) / 1024, 2),
                "peak_rss_MiB": round(measured["peak_rss_kb"] / 1024, 1),
            }
            print(json.dumps(row), flush=True)
            rows.append(row)
        shutil.rmtree(folder)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--part", choices=("pack", "sampler", "both"), default="both")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--jobs", type=int, default=16, help="byte ranges the corpus is cut into")
    parser.add_argument("--copies", type=int, default=4, help="times the bundled corpus is repeated")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tokenizer", help="a tokenizer directory (default: train an 8,000-piece one)")
    parser.add_argument("--tokens", type=float, default=8e9, help="synthetic dataset size for the sampler")
    parser.add_argument("--shards", type=int, nargs="+", default=[1, 64, 1024])
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "src"))
    with tempfile.TemporaryDirectory(prefix="pack_scaling-") as tmp:
        work = Path(tmp)
        if args.part in ("pack", "both"):
            rows = bench_pack(args, work)
            base = rows[0]
            print(f"\nmedians of {args.repeats} interleaved runs")
            print(
                "| workers | jobs | tokens | wall s | tokens/wall-s | tokens per job CPU-s (range) "
                "| × 1 worker | start-up CPU s |"
            )
            print("|---:|---:|---:|---:|---:|---:|---:|---:|")
            for r in rows:
                low, high = r["range"]
                print(
                    f"| {r['workers']} | {r['jobs']} | {r['tokens']:,} | {r['wall_s']} | {r['tokens_per_wall_s']:,.0f} | "
                    f"{r['tokens_per_job_cpu_s']:,.0f} ({low:,}–{high:,}) | "
                    f"{r['tokens_per_job_cpu_s'] / base['tokens_per_job_cpu_s']:.2f} | {r['startup_cpu_s']} |"
                )
        if args.part in ("sampler", "both"):
            rows = bench_sampler(args, work)
            print(
                "\n| sampler | shards | windows | anonymous memory after set-up | after 200 steps | peak RSS (incl. the file pages read) |"
            )
            print("|---|---:|---:|---:|---:|---:|")
            for r in rows:
                print(
                    f"| {r['sampler']} | {r['shards']} | {r['windows']:,} | {r['setup_MiB']} MiB | "
                    f"{r['after_200_steps_MiB']} MiB | {r['peak_rss_MiB']} MiB |"
                )


if __name__ == "__main__":
    main()
