"""torchrun with 2 CPU processes (gloo): DDP and FSDP2 give the 1-process loss curve at the same global batch,
and the GPT-NeoX blocks shard for tensor parallelism without changing the model's outputs.

Each launch costs several seconds, so each mode is one launch; we check what the ranks wrote
(metrics, checkpoints), not only the exit code.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from jalm.train import checkpoint as ckpt
from jalm.train import train
from jalm.train.config import default_config
from jalm.train.metrics import read_metrics

STEPS = 12
TORCHRUN_2 = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


def curve(run_dir: Path) -> list[float]:
    return [r["loss"] for r in read_metrics(run_dir / "metrics.jsonl") if "loss" in r and "event" not in r]


@pytest.fixture(scope="module")
def single_process_curve(packed_dir, tmp_path_factory) -> list[float]:
    run = tmp_path_factory.mktemp("single")
    cfg = default_config(
        "test", max_steps=STEPS, micro_batch_size=4, grad_accum=2, dtype="float32", save_every=0
    )
    train(cfg, packed_dir, run, device="cpu", progress=False)
    return curve(run)


@pytest.mark.parametrize("parallel", ["ddp", "fsdp"])
def test_two_processes_match_one_process(parallel, packed_dir, single_process_curve, tmp_path):
    jalm = Path(sys.executable).with_name("jalm")
    run = tmp_path / parallel
    command = [
        *TORCHRUN_2,
        "--no-python",
        str(jalm),
        "train",
        "--preset",
        "test",
        "--data",
        str(packed_dir),
        "--out",
        str(run),
        "--max-steps",
        str(STEPS),
        "--micro-batch-size",
        "4",
        "--global-batch-tokens",  # 4 × 64 × 2 processes: grad_accum 1, as the 1-process run's 2
        "512",
        "--dtype",
        "float32",
        "--parallel",
        parallel,
        "--save-every",
        "6",
        "--no-progress",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    got = curve(run) if (run / "metrics.jsonl").exists() else []
    assert len(got) == STEPS, result.stderr[-3000:]
    assert got == pytest.approx(single_process_curve, rel=2e-4, abs=2e-4)
    latest = ckpt.latest_checkpoint(run)
    assert latest is not None and latest.name == f"step_{STEPS:08d}"
    assert ckpt.read_state(latest)["world_size"] == 2


def test_tensor_parallel_gpt_neox_matches_the_unsharded_model(tmp_path):
    """transformers' GPT-NeoX under jalm's TP plan (2 gloo ranks) gives the same logits and gradients."""
    out = tmp_path / "tp.json"
    command = [
        *TORCHRUN_2,
        str(Path(__file__).with_name("tp_probe.py")),
        str(out),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert out.exists(), result.stderr[-3000:]
    diffs = json.loads(out.read_text())
    assert diffs["sharded"], "no parameter was sharded"
    assert any("query_key_value" in name for name in diffs["sharded"])
    assert diffs["logits"] < 1e-5 and diffs["loss"] < 1e-6 and diffs["grad"] < 1e-5, diffs


def test_tensor_parallel_refuses_the_gpt2_layout():
    from jalm.model import build_model, get_preset, hf_config
    from jalm.train.tensor_parallel import tensor_parallel_plan

    model = build_model(hf_config(get_preset("test-gpt2"), 300), torch.device("meta"))
    with pytest.raises(ValueError, match="GPT-NeoX layout"):
        tensor_parallel_plan(model)
