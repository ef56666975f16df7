"""MFU of the `1.7b` preset at sequence length 2048 on one GPU, as one short command.

    python benchmarks/gpu_mfu.py --steps 30 --micro-batch-size 8

`--device cpu --preset test --seq-len 64` checks the script itself on a machine without a GPU (the
test suite does this); MFU is only reported on CUDA.

Builds a packed directory of random tokens (throughput does not depend on the text), runs `jalm train`
with bf16, torch.compile and fused AdamW, and prints tokens/s and MFU (PaLM's 6N + 12·L·H·T FLOPs per
token against the card's dense bf16 peak) averaged over the steps after warm-up.

`--scaling` (issue 21) instead measures, side by side in one process: tokens/s with 1 and with 8
micro-batches per optimizer step (accumulation should cost nothing), the stall of a synchronous and an
asynchronous checkpoint (extra seconds per save against a run without saves), and the activation-
checkpointing choice `jalm train`'s plan makes for each preset on this card (1 and 8 GPUs).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="1.7b")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--micro-batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--activation-checkpointing", action=argparse.BooleanOptionalAction, default=False)
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--scaling", action="store_true", help="accumulation, checkpoint stall, AC choice")
    args = parser.parse_args()

    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: this benchmark needs a GPU", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="gpu-mfu-") as work:  # the final checkpoint is tens of GB
        return scaling(args, Path(work)) if args.scaling else run(args, Path(work))


def _packed(args, work: Path, windows: int) -> Path:
    packed = work / "packed"
    if packed.exists():
        return packed
    (packed / "tokenizer").mkdir(parents=True)
    tokens = np.random.default_rng(0).integers(7, 51200, size=args.seq_len * windows + 1)
    tokens.astype(np.uint16).tofile(packed / "train.bin")
    tokens[: args.seq_len * 4 + 1].astype(np.uint16).tofile(packed / "val.bin")
    (packed / "meta.json").write_text(
        json.dumps({"dtype": "uint16", "vocab_size": 51200, "eos_id": 2, "seq_len": args.seq_len})
    )
    return packed


def scaling(args, work: Path) -> int:
    """Accumulation cost, checkpoint stall and the plan's activation-checkpointing choice, one process."""
    import torch

    from jalm.train import train
    from jalm.train.config import default_config
    from jalm.train.metrics import read_metrics
    from jalm.train.plan import plan_for_run

    packed = _packed(args, work, args.micro_batch_size * 8 * (args.steps + 2))
    common = {
        "max_steps": args.steps,
        "micro_batch_size": args.micro_batch_size,
        "seq_len": args.seq_len,
        "warmup_steps": 5,
        "compile": args.compile,
        "activation_checkpointing": args.activation_checkpointing,
        "dtype": "bfloat16" if args.device == "cuda" else "auto",
        "log_every": 1,
        "eval_batches": 1,
    }

    def measure(name: str, **overrides) -> list[dict]:
        train(default_config(args.preset, **{**common, **overrides}), packed, work / name, device=args.device)
        return [r for r in read_metrics(work / name / "metrics.jsonl") if "tokens_per_s" in r]

    result: dict = {"device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu"}
    for accum in (1, 8):
        records = measure(f"accum{accum}", grad_accum=accum, save_every=0)[args.warmup :]
        result[f"tokens_per_s_{accum}_micro_batches"] = round(
            sum(r["tokens_per_s"] for r in records) / len(records)
        )
    # Checkpoint stall: the same steps with a save every `every` steps, minus the run without saves.
    every = max(args.steps // 4, 1)
    saves = len(range(every, args.steps, every))
    base = measure("nosave", save_every=0)
    for name, background in (("sync", False), ("async", True)):
        records = measure(name, save_every=every, async_checkpoint=background)
        extra = records[-1]["elapsed_s"] - base[-1]["elapsed_s"]
        result[f"{name}_checkpoint_stall_s"] = round(extra / max(saves, 1), 2)
    choices = {}
    for preset in ("1.7b", "3.6b", "small", "tiny"):
        for gpus in (1, 8):
            cfg = default_config(preset, activation_checkpointing=False)
            plan = plan_for_run(cfg, packed, device=args.device, processes=gpus)
            choices[f"{preset}x{gpus}"] = "off" if plan.fits else "on"
    result["plan_activation_checkpointing"] = choices
    result.update({"preset": args.preset, "seq_len": args.seq_len, "micro_batch_size": args.micro_batch_size})
    result.update({"date": time.strftime("%Y-%m-%d"), "torch": torch.__version__})
    print(json.dumps(result))
    return 0


def run(args, work: Path) -> int:
    import torch

    from jalm.train import train
    from jalm.train.config import default_config
    from jalm.train.metrics import read_metrics
    from jalm.train.plan import plan_for_run

    packed = work / "packed"
    (packed / "tokenizer").mkdir(parents=True)
    tokens = np.random.default_rng(0).integers(
        7, 51200, size=args.seq_len * args.micro_batch_size * (args.steps + 2) + 1
    )
    tokens.astype(np.uint16).tofile(packed / "train.bin")
    tokens[: args.seq_len * 4 + 1].astype(np.uint16).tofile(packed / "val.bin")
    (packed / "meta.json").write_text(
        json.dumps({"dtype": "uint16", "vocab_size": 51200, "eos_id": 2, "seq_len": args.seq_len})
    )
    cfg = default_config(
        args.preset,
        max_steps=args.steps,
        micro_batch_size=args.micro_batch_size,
        seq_len=args.seq_len,
        warmup_steps=5,
        compile=args.compile,
        activation_checkpointing=args.activation_checkpointing,
        dtype="bfloat16" if args.device == "cuda" else "auto",
        log_every=1,
        save_every=0,
        eval_batches=1,
    )
    train(cfg, packed, work / "run", device=args.device, progress=True)
    records = [r for r in read_metrics(work / "run" / "metrics.jsonl") if "tokens_per_s" in r][args.warmup :]
    result = {
        "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
        "preset": args.preset,
        "seq_len": args.seq_len,
        "micro_batch_size": args.micro_batch_size,
        "tokens_per_s": round(sum(r["tokens_per_s"] for r in records) / len(records)),
    }
    if args.device == "cuda":
        result["mfu"] = round(sum(r["mfu"] for r in records) / len(records), 4)
        result["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 1)
        result["reserved_memory_gib"] = round(torch.cuda.max_memory_reserved() / 2**30, 1)
        # `jalm train --plan`'s estimate for the same run, without its assumed CUDA-context line (which
        # max_memory_allocated does not count either)
        plan = plan_for_run(cfg, packed, device="cuda", processes=1)
        result["plan_estimate_gib"] = round((plan.peak_bytes - plan.memory["runtime"][0]) / 2**30, 1)
        result["date"] = time.strftime("%Y-%m-%d")
        result["torch"] = torch.__version__
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
