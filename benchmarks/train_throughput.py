"""Training throughput: `jalm train` against a plain loop over transformers' own model class.

Same model config (the `tiny` preset, GPT-NeoX 6×256), same batch (16 × 512 tokens), same packed data.
The baseline is what a user writes first: `GPTNeoXForCausalLM(config)` with default settings (fp32,
`labels=` loss), `torch.optim.AdamW` defaults, no compile. jalm adds bf16 autocast (where the CPU has
AVX512-BF16/AMX), `torch.compile`, fused AdamW and its own loss on pre-shifted windows.

Both run in the same invocation, alternately, in fresh subprocesses; we report steady-state tokens/s
(after warm-up steps, which include compilation) and the ratio, plus both loss curves.

    .venv/bin/python benchmarks/train_throughput.py --steps 40 --warmup 10
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def prepare_data(work: Path, vocab: int) -> Path:
    from jalm.data import pack
    from jalm.resources import bundled
    from jalm.tokenizer import train_tokenizer

    packed = work / "packed"
    if not (packed / "meta.json").exists():
        corpus = [bundled("corpus/wiki_jaquad.jsonl.zst")]
        train_tokenizer(corpus, work / "tokenizer", vocab_size=vocab, max_sentences=40_000, progress=False)
        pack(corpus, work / "tokenizer", packed, val_fraction=0.01, seq_len=512, progress=False)
    return packed


def run_plain(packed: Path, steps: int, warmup: int, batch: int, seq_len: int, lr: float) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    from jalm.data import SequenceSampler, get_windows, load_tokens, num_windows, read_meta
    from jalm.model import get_preset, hf_config

    torch.manual_seed(0)
    tokens = load_tokens(packed)
    sampler = SequenceSampler(num_windows(tokens, seq_len), seed=0)
    model = AutoModelForCausalLM.from_config(hf_config(get_preset("tiny"), read_meta(packed)["vocab_size"]))
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    losses, start = [], None
    for step in range(steps):
        if step == warmup:
            start = time.perf_counter()
        window = torch.from_numpy(get_windows(tokens, sampler.take(batch), seq_len))
        ids = window[:, :-1]
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(round(loss.item(), 4))
    seconds = time.perf_counter() - start
    return {"tokens_per_s": (steps - warmup) * batch * seq_len / seconds, "losses": losses}


def run_jalm(packed: Path, steps: int, warmup: int, batch: int, seq_len: int, lr: float) -> dict:
    from jalm.train import train
    from jalm.train.config import default_config
    from jalm.train.metrics import read_metrics

    run = Path(tempfile.mkdtemp()) / "run"
    cfg = default_config(
        "tiny",
        max_steps=steps,
        micro_batch_size=batch,
        seq_len=seq_len,
        lr=lr,
        warmup_steps=0,
        schedule="constant",
        compile=True,
        log_every=1,
        save_every=0,
        eval_batches=1,
    )
    train(cfg, packed, run, device="cpu", progress=False)
    records = [r for r in read_metrics(run / "metrics.jsonl") if "tokens_per_s" in r]
    measured = records[warmup:]
    seconds = measured[-1]["elapsed_s"] - records[warmup - 1]["elapsed_s"]
    return {"tokens_per_s": len(measured) * batch * seq_len / seconds, "losses": [r["loss"] for r in records]}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--work", default=str(ROOT / "runs" / "bench-train"))
    parser.add_argument("--child", choices=["plain", "jalm"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    packed = prepare_data(work, args.vocab)
    if args.child:
        fn = run_plain if args.child == "plain" else run_jalm
        print(json.dumps(fn(packed, args.steps, args.warmup, args.batch, args.seq_len, args.lr)))
        return 0
    results = {}
    for name in ("plain", "jalm"):
        command = [sys.executable, __file__, "--child", name, *sys.argv[1:]]
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        results[name] = json.loads(out.strip().splitlines()[-1])
    ratio = results["jalm"]["tokens_per_s"] / results["plain"]["tokens_per_s"]
    print(f"plain transformers loop: {results['plain']['tokens_per_s']:8.0f} tokens/s")
    print(f"jalm train:              {results['jalm']['tokens_per_s']:8.0f} tokens/s   ratio {ratio:.2f}x")
    print(
        f"loss after {args.steps} steps: plain {results['plain']['losses'][-1]:.3f}, jalm {results['jalm']['losses'][-1]:.3f}"
    )
    (work / "result.json").write_text(json.dumps({**results, "ratio": ratio, "args": vars(args)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
