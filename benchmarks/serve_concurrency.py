"""`jalm serve` under several visitors: N completion requests sent at once vs the same N one after another,
through the official `openai` client, for the batching engine and for the engine before it, in one run.

    python benchmarks/serve_concurrency.py --model runs/demo/model [--requests 8] [--threads 1]

Two real servers (`jalm serve` subprocesses on loopback ports, the same model and torch threads) run side by
side: `--max-batch 16` (continuous batching) and `--max-batch 1` (one request at a time through
`model.generate`, the engine before batching). Each round measures, per server, the N requests sent
sequentially and then concurrently (N client threads); the rounds alternate servers so that a change in the
machine's load hits both. Reported: completion tokens/s of each, the ratio concurrent/sequential (medians
over rounds), and the check that every request's greedy output (temperature 0) is identical whether it ran
alone or in the batch, and identical between the two engines. Prompts: the first sentence of N bundled
Aozora works (different lengths). Results go to benchmarks/README.md by hand.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def prompts(n: int) -> list[str]:
    from jalm.jsonl import read_records

    out = []
    for record in itertools.islice(read_records([REPO / "data" / "corpus" / "aozora.jsonl.zst"]), 200):
        text = " ".join(record["text"].split())
        first = text.split("。")[0][:80] + "。"
        if len(first) >= 12:
            out.append(first)
        if len(out) == n:
            return out
    raise SystemExit(f"only {len(out)} prompts found")


def start_server(model: str, max_batch: int, threads: int, max_tokens: int) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(REPO / "src")}
    command = [sys.executable, "-m", "jalm.cli", "serve", "--model", model, "--port", "0"]
    command += ["--max-batch", str(max_batch), "--max-tokens", str(max_tokens), "--log-level", "warning"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    for line in proc.stdout:
        if line.startswith("jalm serve:") and " at http" in line:
            return proc, line.split(" at ")[1].split()[0]
    proc.wait()
    raise SystemExit(f"the server with --max-batch {max_batch} did not start")


def ask(client, name: str, prompt: str, max_tokens: int) -> tuple[str, str, int]:
    reply = client.completions.create(model=name, prompt=prompt, max_tokens=max_tokens, temperature=0)
    choice = reply.choices[0]
    return choice.text, choice.finish_reason, reply.usage.completion_tokens


def measure(client, name: str, texts: list[str], max_tokens: int, concurrent: bool):
    start = time.perf_counter()
    if concurrent:
        with ThreadPoolExecutor(len(texts)) as pool:
            answers = list(pool.map(lambda p: ask(client, name, p, max_tokens), texts))
    else:
        answers = [ask(client, name, p, max_tokens) for p in texts]
    seconds = time.perf_counter() - start
    return answers, sum(a[2] for a in answers) / seconds


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", default="runs/demo/model", help="model directory (default runs/demo/model)"
    )
    parser.add_argument("--requests", type=int, default=8, help="concurrent requests (default 8)")
    parser.add_argument("--max-tokens", type=int, default=64, help="max_tokens of each request (default 64)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per server (default 3; medians)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads of each server (default 1: steadiest on a shared CPU)",
    )
    parser.add_argument("--max-batch", type=int, default=16, help="the batching server's --max-batch")
    args = parser.parse_args()
    if not (Path(args.model) / "config.json").exists():
        print(f"{args.model}: no model directory; run `jalm demo` first or pass --model", file=sys.stderr)
        return 2

    from openai import OpenAI

    texts = prompts(args.requests)
    name = Path(args.model).resolve().name
    engines = {"batching": args.max_batch, "one at a time": 1}
    servers = {
        label: start_server(args.model, mb, args.threads, args.max_tokens) for label, mb in engines.items()
    }
    print(
        f"model {args.model}, {args.requests} requests x max_tokens {args.max_tokens} (greedy), "
        f"{args.threads} torch threads per server, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f} at start, {args.rounds} rounds"
    )
    rates: dict[tuple[str, str], list[float]] = {}
    outputs: dict[tuple[str, str], list] = {}
    try:
        clients = {
            label: OpenAI(base_url=url + "v1", api_key="none", timeout=600)
            for label, (_, url) in servers.items()
        }
        for client in clients.values():  # warm-up: first forwards, tokenizer caches
            ask(client, name, texts[0], 4)
        for _ in range(args.rounds):
            for label, client in clients.items():
                for mode in ("sequential", "concurrent"):
                    answers, rate = measure(client, name, texts, args.max_tokens, mode == "concurrent")
                    rates.setdefault((label, mode), []).append(rate)
                    if outputs.setdefault((label, mode), answers) != answers:
                        raise SystemExit(f"{label}, {mode}: greedy outputs changed between rounds")
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(timeout=30)

    same_alone = {
        label: outputs[(label, "concurrent")] == outputs[(label, "sequential")] for label in engines
    }
    same_engines = outputs[("batching", "sequential")] == outputs[("one at a time", "sequential")]
    tokens = sum(a[2] for a in outputs[("batching", "sequential")])
    finish = sorted({a[1] for a in outputs[("batching", "sequential")]})
    print(f"{tokens} completion tokens per pass (finish reasons: {', '.join(finish)})")
    print(
        "| engine | sequential (tokens/s) | concurrent (tokens/s) | concurrent / sequential | outputs as alone |"
    )
    print("|---|---:|---:|---:|---|")
    for label, max_batch in engines.items():
        seq = statistics.median(rates[(label, "sequential")])
        conc = statistics.median(rates[(label, "concurrent")])
        ratios = [c / s for c, s in zip(rates[(label, "concurrent")], rates[(label, "sequential")])]
        print(
            f"| {label} (`--max-batch {max_batch}`) | {seq:.0f} | {conc:.0f} | "
            f"**{statistics.median(ratios):.2f}x** | {'identical' if same_alone[label] else 'DIFFERENT'} |"
        )
    print(f"greedy outputs of the two engines: {'identical' if same_engines else 'DIFFERENT'}")
    return 0 if all(same_alone.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
