"""Training throughput: `jalm train` against a plain loop over transformers' own model class.

Same model config (the `tiny` preset, GPT-NeoX 6×256), same batch (16 × 512 tokens), same packed data in
the same order, same initial weights (the seed's small_init) and the same recipe (AdamW β=(0.9, 0.95),
weight decay 0.1 on matrices, clipping at 1.0, constant LR). The baseline is the loop a user writes
first: `GPTNeoXForCausalLM(config)` with transformers' default settings (fp32, SDPA, `labels=` loss),
`torch.optim.AdamW` (foreach), no compile. `jalm train --compile` adds bf16 autocast (where the CPU has
AVX512-BF16/AMX), one `torch.compile` graph for model + loss, and fused AdamW.

Both run in the same invocation in fresh subprocesses, alternating order round by round; we report
tokens per median step after warm-up (which includes compilation) over all rounds, the ratio overall and
per round, and how far apart the two loss curves are (bf16 against fp32 arithmetic: the curves should
agree to a few hundredths).

    .venv/bin/python benchmarks/train_throughput.py --steps 30 --warmup 8 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import statistics
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
    from jalm.model.init import init_weights

    torch.manual_seed(0)
    tokens = load_tokens(packed)
    sampler = SequenceSampler(num_windows(tokens, seq_len), seed=0)
    preset = get_preset("tiny")
    model = AutoModelForCausalLM.from_config(hf_config(preset, read_meta(packed)["vocab_size"]))
    init_weights(
        model, preset.hidden, preset.layers, "small_init", generator=torch.Generator().manual_seed(0)
    )
    model.train()
    matrices = [p for p in model.parameters() if p.ndim >= 2]
    others = [p for p in model.parameters() if p.ndim < 2]
    groups = [{"params": matrices, "weight_decay": 0.1}, {"params": others, "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95))
    losses, step_seconds = [], []
    for _ in range(steps):
        start = time.perf_counter()
        window = torch.from_numpy(get_windows(tokens, sampler.take(batch), seq_len))
        ids = window[:, :-1]
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        losses.append(round(loss.item(), 4))
        step_seconds.append(time.perf_counter() - start)
    return {"step_seconds": step_seconds[warmup:], "losses": losses}


def run_jalm_bf16_attention(*args) -> dict:
    """jalm as `run_jalm`, but with attention left to autocast (bf16) instead of the float32 kernel."""
    import jalm.model.attention

    jalm.model.attention.fp32_attention_pays = lambda device, bf16: False
    return run_jalm(*args)


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
        beta1=0.9,
        beta2=0.95,
        weight_decay=0.1,
        grad_clip=1.0,
        init="small_init",
        seed=0,
        compile=True,
        log_every=1,
        save_every=0,
        eval_batches=1,
    )
    train(cfg, packed, run, device="cpu", progress=False)
    records = [r for r in read_metrics(run / "metrics.jsonl") if "tokens_per_s" in r]
    elapsed = [r["elapsed_s"] for r in records]
    step_seconds = [b - a for a, b in zip(elapsed[warmup - 1 :], elapsed[warmup:])]
    return {"step_seconds": step_seconds, "losses": [r["loss"] for r in records]}


SIDES = {"plain": run_plain, "jalm": run_jalm, "jalm-bf16-attention": run_jalm_bf16_attention}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=8)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--rounds", type=int, default=2, help="alternating plain/jalm launches of each")
    parser.add_argument("--work", default=str(ROOT / "runs" / "bench-train"))
    parser.add_argument(
        "--bf16-attention",
        action="store_true",
        help="also run jalm with attention in bf16 (autocast's choice) to price the float32 kernel",
    )
    parser.add_argument("--child", choices=list(SIDES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    packed = prepare_data(work, args.vocab)
    if args.child:
        fn = SIDES[args.child]
        print(json.dumps(fn(packed, args.steps, args.warmup, args.batch, args.seq_len, args.lr)))
        return 0
    # Alternate the order each round so a slow spell on a shared machine hits both; the median step time
    # over all rounds ignores the odd step that another process stole.
    names = ["plain", "jalm"] + (["jalm-bf16-attention"] if args.bf16_attention else [])
    results = {name: [] for name in names}
    for round_index in range(args.rounds):
        for name in names if round_index % 2 == 0 else names[::-1]:
            command = [sys.executable, __file__, "--child", name, *sys.argv[1:]]
            out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
            results[name].append(json.loads(out.strip().splitlines()[-1]))
    tokens_per_step = args.batch * args.seq_len
    speed = {
        name: tokens_per_step / statistics.median(s for run in runs for s in run["step_seconds"])
        for name, runs in results.items()
    }
    ratio = speed["jalm"] / speed["plain"]
    per_round = [
        statistics.median(p["step_seconds"]) / statistics.median(j["step_seconds"])
        for p, j in zip(results["plain"], results["jalm"])
    ]
    print(f"plain transformers loop: {speed['plain']:8.0f} tokens/s (median step)")
    print(f"jalm train --compile:    {speed['jalm']:8.0f} tokens/s   ratio {ratio:.2f}x")
    print("ratio per round: " + ", ".join(f"{r:.2f}x" for r in per_round))
    if args.bf16_attention:
        bf16_attention = speed["jalm-bf16-attention"]
        print(
            f"jalm, bf16 attention:    {bf16_attention:8.0f} tokens/s   float32 attention is "
            f"{speed['jalm'] / bf16_attention:.2f}x of it"
        )
    plain_losses, jalm_losses = results["plain"][0]["losses"], results["jalm"][0]["losses"]
    gap = max(abs(a - b) for a, b in zip(plain_losses, jalm_losses))
    print(
        f"loss after {args.steps} steps: plain {plain_losses[-1]:.3f}, jalm {jalm_losses[-1]:.3f}; "
        f"largest per-step gap {gap:.3f}"
    )
    summary = {
        "runs": results,
        "tokens_per_s": speed,
        "ratio": ratio,
        "ratio_per_round": per_round,
        "max_loss_gap": gap,
        "args": vars(args),
    }
    (work / "result.json").write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
