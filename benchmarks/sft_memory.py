"""Peak memory of `jalm sft`: LoRA against full fine-tuning of the same model on the same batches.

Each configuration runs in a fresh subprocess and reports its own RSS high-water mark
(`resource.getrusage(RUSAGE_SELF).ru_maxrss`) when training is over but before the final checkpoint is
written (the training peak: weights, gradients, optimizer state, activations), and again at the end of the
run (checkpoint included). A `load` child imports what a run imports, loads the base model as `jalm sft`
does and touches every weight (transformers 5 maps safetensors files, so weights count in RSS once read;
training reads them all in its first forward): the floor every configuration shares.

Same base model (GPT-NeoX of the `small` preset, 12 × 768, with an 8,000-piece tokenizer: 91.2M
parameters, random small_init weights; set up as in sft_throughput.py), same conversations (the bundled
instruction set), same batches: packed rows of `--seq-len` positions, `--micro` rows per step (so every step
has the same shape whatever the conversations' lengths); no gradient accumulation, no activation
checkpointing, no compile, float32 unless `--dtype auto` (jalm's default: bf16 autocast on a CPU with
AVX512-BF16). LoRA: rank `--lora-rank` on every attention and MLP projection (jalm's targets), alpha 16,
with dropout 0.05 (`lora`, jalm's default before this measurement; 0 since) and without dropout (`lora-nodrop`: peft's dropout keeps a
dropped-out copy of each adapted projection's input for the backward pass).

    .venv/bin/python benchmarks/sft_memory.py --micro 2 8 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sft_throughput import ROOT, conditions_text, prepare_base, prepare_data  # noqa: E402

CHILDREN = ("load", "full", "lora", "lora-nodrop")


def max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def child(args, base: Path, data: Path, name: str, micro: int) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    if name == "load":
        from jalm.sft import base as sft_base
        from jalm.sft.train import sft  # noqa: F401  (the imports a run has)

        model = sft_base.load_base(sft_base.describe_base(base), torch.device("cpu"))
        with torch.no_grad():
            sum(float(p.sum()) for p in model.parameters())  # read every weight once, as training does
        return {"peak_mib": max_rss_mib(), "params": sum(p.numel() for p in model.parameters())}

    from jalm.sft.train import SftOptions, sft, sft_config
    from jalm.train.trainer import Trainer

    peaks: dict[str, float] = {}
    original_save = Trainer.save

    def save(self):  # the run's only checkpoint is the final one (save_every 0): note the peak before it
        peaks.setdefault("before_checkpoint", max_rss_mib())
        original_save(self)

    Trainer.save = save
    lora = name.startswith("lora")
    options = SftOptions(
        model=str(base),
        data=[str(data)],
        val_fraction=0.0,
        decontaminate=False,
        batching="packed",
        lora_rank=args.lora_rank if lora else 0,
        lora_dropout=0.0 if name == "lora-nodrop" else 0.05,
    )
    cfg = sft_config(
        lora=lora,
        seq_len=args.seq_len,
        micro_batch_size=micro,
        grad_accum=1,
        max_steps=args.steps,
        warmup_steps=0,
        log_every=1,
        save_every=0,
        dtype=args.dtype,
        compile=False,
        seed=0,
    )
    run = Path(tempfile.mkdtemp(prefix="bench-sft-mem-")) / "run"
    summary = sft(options, cfg, run, device="cpu", progress=False)
    info = json.loads((run / "run.json").read_text(encoding="utf-8"))
    shutil.rmtree(run.parent, ignore_errors=True)  # the final checkpoint (~1 GB for full fine-tuning)
    return {
        "peak_mib": peaks.get("before_checkpoint", max_rss_mib()),
        "peak_with_checkpoint_mib": max_rss_mib(),
        "params": summary["params"],
        "trainable_params": summary["trainable_params"],
        "bf16": info["bf16"],
        "steps": summary["steps"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="small")
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--micro", type=int, nargs="+", default=[2, 8], help="packed rows per step")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--lora-rank", type=int, default=16)
    parser.add_argument("--dtype", choices=["float32", "auto"], default="float32")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work", default=str(ROOT / "runs" / "bench-sft"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    base = prepare_base(work, args.preset, args.vocab)
    data = prepare_data(work, base, args.seq_len)
    if args.child:
        name, micro = args.child.split(":")
        print(json.dumps(child(args, base, data, name, int(micro))))
        return 0
    results: dict[str, dict[str, list[dict]]] = {str(m): {name: [] for name in CHILDREN} for m in args.micro}
    for round_index in range(args.rounds):
        order = CHILDREN if round_index % 2 == 0 else tuple(reversed(CHILDREN))
        for micro in args.micro:
            for name in order:
                if name == "load" and micro != args.micro[0]:
                    continue  # the floor does not depend on the batch
                command = [sys.executable, __file__, *sys.argv[1:], "--child", f"{name}:{micro}"]
                done = subprocess.run(command, capture_output=True, text=True)
                if done.returncode != 0:
                    sys.stderr.write(done.stderr[-6000:])
                    raise SystemExit(f"child {name}:{micro} failed ({done.returncode})")
                results[str(micro)][name].append(json.loads(done.stdout.strip().splitlines()[-1]))
                (work / f"result-memory-{args.dtype}.json").write_text(
                    json.dumps({"runs": results}, indent=2)
                )
    load = results[str(args.micro[0])]["load"]
    floor = statistics.median(r["peak_mib"] for r in load)
    print(f"conditions: {conditions_text(args)}")
    print(
        f"model {args.preset} ({load[0]['params'] / 1e6:.1f}M parameters), packed rows of {args.seq_len}, "
        f"{args.steps} steps, dtype {args.dtype}, LoRA rank {args.lora_rank}, {args.rounds} rounds (median); "
        f"load floor {floor:.0f} MiB\n"
    )
    medians: dict = {"load": floor}
    for micro in args.micro:
        runs = results[str(micro)]
        print(f"{micro} × {args.seq_len} tokens per step")
        print(f"  {'':12s} {'peak RSS MiB':>13s} {'over load':>10s} {'with checkpoint':>16s}  trainable")
        table = {}
        for name in CHILDREN[1:]:
            peak = statistics.median(r["peak_mib"] for r in runs[name])
            end = statistics.median(r["peak_with_checkpoint_mib"] for r in runs[name])
            table[name] = {"peak_mib": peak, "peak_with_checkpoint_mib": end}
            print(
                f"  {name:12s} {peak:13.0f} {peak - floor:10.0f} {end:16.0f}  "
                f"{runs[name][0]['trainable_params']:,}"
            )
        full = table["full"]["peak_mib"]
        for name in ("lora", "lora-nodrop"):
            lora = table[name]["peak_mib"]
            print(
                f"  {name} / full: {lora / full:.2f} of the peak ({full - lora:+.0f} MiB saved), "
                f"{(lora - floor) / (full - floor):.2f} of what training adds to the floor"
            )
        medians[str(micro)] = table
        print()
    summary = {"median": medians, "runs": results, "args": vars(args)}
    (work / f"result-memory-{args.dtype}.json").write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
