"""A grid of ordinary `jalm train` runs, one directory each, skipped when already finished with the same config."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jalm.experiment.scale import Scale
from jalm.io import write_atomic

RESULT_FILE = "result.json"


@dataclass
class RunSpec:
    variant: str  # the label the report uses, e.g. "cosine"
    seed: int
    data: str  # packed directory
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.variant}-seed{self.seed}"


def train_config(scale: Scale, spec: RunSpec, steps: int | None = None):
    """The run's TrainConfig: the preset's defaults, the scale's batch and budget, then the variant's changes.

    float32 everywhere: bf16 autocast depends on the CPU, and results should not.
    """
    from jalm.train.config import default_config

    settings = {
        "seq_len": scale.seq_len,
        "micro_batch_size": scale.micro_batch_size,
        "max_steps": steps or scale.steps,
        "warmup_steps": scale.warmup_steps,
        "seed": spec.seed,
        "dtype": "float32",
        "compile": False,
        "log_every": 1,
        "eval_every": 0,
        "eval_batches": scale.eval_batches,
        "save_every": 0,
        "keep_last": 1,
    }
    settings.update(spec.overrides)
    return default_config(scale.preset, **settings)


def run_one(
    spec: RunSpec,
    cfg,
    run_dir: Path,
    device: str = "cpu",
    progress: bool = True,
    keep_checkpoint: bool = False,
) -> dict[str, Any]:
    """Train one run, or return the recorded result of an identical finished one."""
    from jalm.train import train

    config = json.loads(cfg.to_json())
    result_path = run_dir / RESULT_FILE
    if result_path.exists():
        result = json.loads(result_path.read_text(encoding="utf-8"))
        if result.get("config") == config and result.get("data") == spec.data:
            return result
    if run_dir.exists():  # unfinished, or made with other settings: start over
        shutil.rmtree(run_dir)
    started = time.perf_counter()
    summary = train(cfg, spec.data, run_dir, device=device, progress=progress)
    if not keep_checkpoint:  # the curves are the result; the weights are not needed again
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    result = {
        "name": spec.name,
        "variant": spec.variant,
        "seed": spec.seed,
        "data": spec.data,
        "config": config,
        "summary": summary,
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_atomic(result_path, json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return result


def run_grid(
    specs: list[RunSpec],
    scale: Scale,
    runs_dir: Path,
    steps: int | None = None,
    device: str = "cpu",
    progress: bool = True,
    keep_checkpoint: bool = False,
) -> dict[str, dict]:
    """Run every spec (in order) into runs_dir/<variant>-seed<k>; returns {name: result}."""
    results = {}
    for i, spec in enumerate(specs, 1):
        if progress:
            print(f"[{i}/{len(specs)}] {spec.name}", flush=True)
        cfg = train_config(scale, spec, steps)
        results[spec.name] = run_one(spec, cfg, runs_dir / spec.name, device, progress, keep_checkpoint)
    return results
