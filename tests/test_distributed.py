"""torchrun with 2 CPU processes (gloo): DDP and FSDP2 give the 1-process loss curve at the same global batch,
and the GPT-NeoX blocks shard for tensor parallelism without changing the model's outputs.

Each launch costs several seconds, so each mode is one launch; we check what the ranks wrote
(metrics, checkpoints), not only the exit code.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
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


def test_fsdp_accumulation_moves_no_more_data_and_a_rank_elsewhere_is_refused(packed_dir, tmp_path):
    """One launch, two checks (tests/dist_probe.py). FSDP2 with 4 micro-batches per step all-gathers and
    reduce-scatters exactly as often as with 1 micro-batch, and gives the same losses; then a run whose
    ranks see different --out directories (node-local disks) stops with one line naming the problem."""
    out = tmp_path / "probe.json"
    command = [
        *TORCHRUN_2,
        str(Path(__file__).with_name("dist_probe.py")),
        str(packed_dir),
        str(out),
        str(tmp_path),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert out.exists(), result.stderr[-3000:]
    report = json.loads(out.read_text())
    one, four = report["accumulation"]["4x1"], report["accumulation"]["1x4"]
    assert len(one["per_step"]) == len(four["per_step"]) == 4
    first = one["per_step"][0]
    assert first.get("all_gather_single", 0) > 0 and first.get("reduce_scatter_single", 0) > 0, first
    assert four["per_step"] == one["per_step"], (four["per_step"], one["per_step"])
    assert len(one["losses"]) == 4 and four["losses"] == pytest.approx(one["losses"], rel=1e-4, abs=1e-4)
    assert report["foreign_out_code"] == 2
    errors = [line for line in result.stderr.splitlines() if "jalm train: error:" in line]
    assert errors and all("does not see rank 0's run directory" in line for line in errors), result.stderr[
        -3000:
    ]
    assert "rank 1 on" in errors[0] and "--out must be on a filesystem every node shares" in errors[0]


def _worker_pid(launcher: subprocess.Popen, rank: int) -> int | None:
    """The pid of torchrun's worker of `rank` (read from the children's environments)."""
    children = Path(f"/proc/{launcher.pid}/task/{launcher.pid}/children")
    try:
        pids = children.read_text().split()
    except OSError:
        return None
    for pid in pids:
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in environ:
            return int(pid)
    return None


def test_sigterm_on_one_rank_checkpoints_exits_for_a_requeue_and_the_rerun_continues_its_curve(
    packed_dir, single_process_curve, tmp_path
):
    """SIGTERM to rank 1 of a 2-process run mid-training: every rank finishes the step in flight, a
    checkpoint is written and the workers exit with the requeue code 75; the same command run again
    resumes from that checkpoint and the curve is the uninterrupted run's."""
    jalm = Path(sys.executable).with_name("jalm")
    run = tmp_path / "preempted"
    command = [
        *TORCHRUN_2,
        "--no-python",
        str(jalm),
        "train",
        *("--preset", "test", "--data", str(packed_dir), "--out", str(run), "--max-steps", str(STEPS)),
        *("--micro-batch-size", "4", "--global-batch-tokens", "512", "--dtype", "float32"),
        *("--parallel", "fsdp", "--save-every", "0", "--dist-timeout-minutes", "5", "--no-progress"),
    ]
    launcher = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        metrics = run / "metrics.jsonl"
        while launcher.poll() is None and not (metrics.exists() and len(curve(run)) >= 2):
            time.sleep(0.01)
        pid = _worker_pid(launcher, 1)
        assert pid is not None and launcher.poll() is None, "the run ended before it could be signalled"
        os.kill(pid, signal.SIGTERM)
        _, stderr = launcher.communicate(timeout=600)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    stops = [r for r in read_metrics(metrics) if r.get("event") == "preempted"]
    assert len(stops) == 1 and stops[0]["signal"] == "SIGTERM" and 2 <= stops[0]["step"] < STEPS, stderr[
        -3000:
    ]
    step = stops[0]["step"]
    assert f"stopped on SIGTERM at step {step}, checkpoint written; exit 75" in stderr
    # Both ranks said so; torchrun reports the first to exit with 75 (then stops the other one).
    assert stderr.count("jalm train: stopped on SIGTERM") == 2 and "exitcode  : 75" in stderr, stderr[-3000:]
    assert [p.name for p in ckpt.list_checkpoints(run)] == [f"step_{step:08d}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert [p.name for p in ckpt.list_checkpoints(run)] == [f"step_{step:08d}", f"step_{STEPS:08d}"]
    assert curve(run) == pytest.approx(single_process_curve, rel=2e-4, abs=2e-4)


def test_hsdp_2x2_matches_one_process_and_its_checkpoint_resumes_on_2_processes(
    packed_dir, single_process_curve, tmp_path
):
    """HSDP on 4 processes (2 replicas × shard groups of 2) gives the 1-process curve at the same global
    batch; its step-6 checkpoint (written in the background), loaded by 2 processes (one group of 2: another world size and layout),
    continues with the same losses."""
    jalm = Path(sys.executable).with_name("jalm")
    run = tmp_path / "hsdp"

    def command(processes: int, out: Path) -> list[str]:
        return [
            *TORCHRUN_2[:-1],
            f"--nproc_per_node={processes}",
            "--no-python",
            str(jalm),
            "train",
            *("--preset", "test", "--data", str(packed_dir), "--out", str(out), "--max-steps", str(STEPS)),
            *("--micro-batch-size", "2", "--global-batch-tokens", "512", "--dtype", "float32"),
            *("--parallel", "hsdp", "--shard-group-size", "2", "--save-every", "6", "--no-progress"),
            "--async-checkpoint",  # written in the background through a gloo group of its own
        ]

    result = subprocess.run(command(4, run), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((run / "run.json").read_text())["parallel"] == "hsdp"
    assert curve(run) == pytest.approx(single_process_curve, rel=2e-4, abs=2e-4)
    # Resume the 4-process run's step-6 checkpoint on 2 processes.
    resumed = tmp_path / "resumed"
    (resumed / "checkpoints").mkdir(parents=True)
    shutil.copytree(run / "checkpoints" / "step_00000006", resumed / "checkpoints" / "step_00000006")
    result = subprocess.run(command(2, resumed), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert ckpt.read_state(ckpt.latest_checkpoint(resumed))["world_size"] == 2
    later = [r["loss"] for r in read_metrics(resumed / "metrics.jsonl") if "loss" in r and "event" not in r]
    assert len(later) == STEPS - 6
    assert later == pytest.approx(curve(run)[6:], rel=2e-4, abs=2e-4)
