"""`jalm train --plan`'s memory estimate against the measured peak of real training steps on CPU.

Each configuration runs in a fresh subprocess: it imports what a run imports (torch, transformers' model
classes, jalm's trainer), notes its RSS high-water mark (`ru_maxrss`) as the baseline, then trains
`--steps` real steps of the preset with `jalm.train.train` on the packed data (its defaults: micro-batch,
sequence length; no compile) and notes the high-water mark again when training is over, before the final
validation and checkpoint. Measured = peak − baseline; the estimate is the plan's peak without its
"runtime" line (the process with torch loaded, which the baseline already holds).

    .venv/bin/python benchmarks/plan_memory.py --presets test mini tiny --dtypes auto float32

`--data` defaults to runs/demo/packed (`make demo`) and is otherwise packed from the bundled Wikipedia
corpus with an 8,000-piece tokenizer under runs/bench-plan/.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_throughput import ROOT, prepare_data  # noqa: E402

MIB = 1024**2


def max_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def child(args, data: Path, preset: str, dtype: str, checkpointing: bool) -> dict:
    import torch
    import transformers.models.gpt2.modeling_gpt2  # noqa: F401  (imported by a run before it builds)
    import transformers.models.gpt_neox.modeling_gpt_neox  # noqa: F401
    from torch.distributed._tools.mem_tracker import MemTracker

    from jalm.train import train
    from jalm.train.config import default_config
    from jalm.train.trainer import Trainer

    torch.set_num_threads(args.threads)
    baseline = max_rss()
    peaks: dict[str, int] = {}
    original_step, original_finish = Trainer.train_step, Trainer._finish

    def train_step(self):  # the last step runs under torch's MemTracker: the peak of live tensor bytes
        if self.step < args.steps - 1:
            return original_step(self)
        peaks["train"] = max_rss()  # the RSS peak of the steps before (the tracker's bookkeeping aside)
        tracker = MemTracker()
        tracker.track_external(self.model, self.optimizer)
        with tracker:
            result = original_step(self)
        peaks["tensors"] = sum(snap["Total"] for snap in tracker.get_tracker_snapshot("peak").values())
        return result

    def finish(self):  # training is over: note the peak before the final validation and checkpoint
        peaks.setdefault("train", max_rss())
        return original_finish(self)

    Trainer.train_step, Trainer._finish = train_step, finish
    cfg = default_config(
        preset,
        max_steps=args.steps,
        save_every=0,
        eval_batches=1,
        log_every=1,
        dtype=dtype,
        activation_checkpointing=checkpointing,
        compile=False,
    )
    with tempfile.TemporaryDirectory(prefix="bench-plan-") as run:
        train(cfg, data, Path(run) / "run", device="cpu", progress=False)
    return {"baseline": baseline, "peak": peaks["train"], "tensors": peaks.get("tensors", 0)}


def estimate(data: Path, preset: str, dtype: str, checkpointing: bool) -> dict:
    from jalm.train.config import default_config
    from jalm.train.plan import plan_for_run

    cfg = default_config(preset, dtype=dtype, activation_checkpointing=checkpointing)
    plan = plan_for_run(cfg, data, device="cpu", processes=1)
    lines = plan.memory
    runtime = lines["runtime"][0]
    return {
        "estimate": plan.peak_bytes - runtime,
        "tensor_estimate": plan.peak_bytes - runtime - lines["kernels"][0] - lines["allocator slack"][0],
        "lines": {name: b for name, (b, _) in plan.memory.items()},
        "bf16": plan.bf16,
        "tokens": plan.tokens_per_micro,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--presets", nargs="+", default=["test", "mini", "tiny"])
    parser.add_argument(
        "--dtypes", nargs="+", default=["auto", "float32"], choices=["auto", "float32", "bfloat16"]
    )
    parser.add_argument("--checkpointing", nargs="+", default=["off", "on"], choices=["off", "on"])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data", help="a packed directory (default: runs/demo/packed, else one built here)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    demo = ROOT / "runs" / "demo" / "packed"
    if args.data:
        data = Path(args.data)
    elif (demo / "meta.json").exists():
        data = demo
    else:
        data = prepare_data(ROOT / "runs" / "bench-plan", 8000)
    if args.child:
        preset, dtype, ckpt = args.child.split(":")
        print(json.dumps(child(args, data, preset, dtype, ckpt == "on")))
        return 0
    print(f"data {data}, {args.steps} steps, {args.threads} threads; MiB = 2^20 bytes")
    print(
        f"{'preset':8s} {'dtype':8s} {'ckpt':4s} {'tokens':>7s} {'baseline':>9s} {'measured':>9s} "
        f"{'estimate':>9s} {'error':>7s} | {'tensors':>8s} {'w/o slack':>9s} {'error':>7s}"
    )
    rows = []
    for preset in args.presets:
        for dtype in args.dtypes:
            for ckpt in args.checkpointing:
                command = [sys.executable, __file__, *sys.argv[1:], "--child", f"{preset}:{dtype}:{ckpt}"]
                done = subprocess.run(command, capture_output=True, text=True)
                if done.returncode != 0:
                    sys.stderr.write(done.stderr[-6000:])
                    raise SystemExit(f"child {preset}:{dtype}:{ckpt} failed ({done.returncode})")
                measured = json.loads(done.stdout.strip().splitlines()[-1])
                est = estimate(data, preset, dtype, ckpt == "on")
                used = measured["peak"] - measured["baseline"]
                error = est["estimate"] / used - 1
                label = ("bf16" if est["bf16"] else "float32") if dtype == "auto" else dtype
                rows.append(
                    {
                        "preset": preset,
                        "dtype": label,
                        "checkpointing": ckpt,
                        **measured,
                        **est,
                        "measured": used,
                        "error": error,
                    }
                )
                tensor_error = est["tensor_estimate"] / measured["tensors"] - 1
                rows[-1]["tensor_error"] = tensor_error
                print(
                    f"{preset:8s} {label:8s} {ckpt:4s} {est['tokens']:7d} {measured['baseline'] / MIB:9.0f} "
                    f"{used / MIB:9.0f} {est['estimate'] / MIB:9.0f} {error:+7.1%} | "
                    f"{measured['tensors'] / MIB:8.0f} {est['tensor_estimate'] / MIB:9.0f} {tensor_error:+7.1%}",
                    flush=True,
                )
    worst = max(abs(r["error"]) for r in rows)
    print(f"largest error: {worst:.1%} (estimate / measured − 1)")
    out = ROOT / "runs" / "bench-plan"
    out.mkdir(parents=True, exist_ok=True)
    (out / "result-plan-memory.json").write_text(json.dumps({"rows": rows, "args": vars(args)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
