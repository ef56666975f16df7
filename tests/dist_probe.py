"""Run under torchrun (gloo) by tests/test_distributed.py: several distributed checks in one launch.

usage: dist_probe.py PACKED_DIR OUT_JSON WORK_DIR
- "accumulation": FSDP2 runs with 1 and 4 micro-batches per step at the same global batch; every
  all-gather and reduce-scatter inside `train_step` is counted (torch.distributed's functions wrapped),
  and the losses are recorded;
- "foreign_out": the real CLI with a different --out on each rank (node-local disks), which must stop
  with one line.
"""

from __future__ import annotations

import collections
import json
import os
import sys
from pathlib import Path

import torch.distributed as dist

from jalm.train import distributed as distrib
from jalm.train import train
from jalm.train import trainer as trainer_module
from jalm.train.config import default_config
from jalm.train.metrics import read_metrics

COUNTED = (
    "all_gather_single",
    "reduce_scatter_single",
    "all_gather_into_tensor",
    "reduce_scatter_tensor",
    "all_reduce",
)
counts: collections.Counter = collections.Counter()
counting = [False]


def wrap(name: str):
    original = getattr(dist, name)

    def counted(*args, **kwargs):
        if counting[0]:
            counts[name] += 1
        return original(*args, **kwargs)

    setattr(dist, name, counted)


def main() -> None:
    packed, out, work = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    rank = int(os.environ["RANK"])
    for name in COUNTED:
        wrap(name)
    original_step = trainer_module.Trainer.train_step
    per_step: list[dict] = []

    def train_step(self):
        counts.clear()
        counting[0] = True
        try:
            return original_step(self)
        finally:
            counting[0] = False
            per_step.append(dict(counts))

    trainer_module.Trainer.train_step = train_step
    distrib.teardown = distrib.barrier  # keep the process group across the runs of this launch
    report: dict = {"accumulation": {}}
    for micro, accum in ((4, 1), (1, 4)):
        per_step.clear()
        run = work / f"fsdp_{micro}x{accum}"
        cfg = default_config(
            "test", max_steps=4, micro_batch_size=micro, grad_accum=accum, dtype="float32", save_every=0
        )
        train(cfg, packed, run, device="cpu", parallel="fsdp", progress=False)
        losses = [r["loss"] for r in read_metrics(run / "metrics.jsonl") if "loss" in r] if rank == 0 else []
        report["accumulation"][f"{micro}x{accum}"] = {"per_step": list(per_step), "losses": losses}
    trainer_module.Trainer.train_step = original_step

    from jalm.cli import main as cli_main

    args = ["train", "--preset", "test", "--data", str(packed), "--max-steps", "2", "--no-progress"]
    code = cli_main([*args, "--out", str(work / f"node{rank}"), "--parallel", "ddp"])
    report["foreign_out_code"] = code
    if rank == 0:
        out.write_text(json.dumps(report))


if __name__ == "__main__":
    main()
