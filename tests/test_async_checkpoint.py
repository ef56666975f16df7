"""Checkpoints written in the background (DCP async_save) resume exactly like synchronous ones."""

from __future__ import annotations

import shutil

import pytest

from jalm.train import checkpoint as ckpt
from jalm.train import train
from jalm.train.config import default_config
from jalm.train.metrics import read_metrics


def losses(run_dir) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_metrics(run_dir / "metrics.jsonl") if "loss" in r}


def test_async_checkpoints_resume_with_the_synchronous_ones_losses(packed_dir, tmp_path):
    common = {"max_steps": 12, "save_every": 4, "dtype": "float32"}
    curves = {}
    for name, background in (("sync", False), ("async", True)):
        cfg = default_config("test", async_checkpoint=background, **common)
        train(cfg, packed_dir, tmp_path / name, device="cpu", progress=False)
        assert [p.name for p in ckpt.list_checkpoints(tmp_path / name)] == ["step_00000008", "step_00000012"]
        assert not list((tmp_path / name / "checkpoints").glob(".tmp-*"))
        curves[name] = losses(tmp_path / name)
    assert curves["async"] == curves["sync"] and len(curves["sync"]) == 12
    for name in ("sync", "async"):  # resume each run's step-8 checkpoint in a fresh directory
        resumed = tmp_path / f"{name}-resumed"
        shutil.copytree(
            tmp_path / name / "checkpoints" / "step_00000008", resumed / "checkpoints" / "step_00000008"
        )
        cfg = default_config("test", async_checkpoint=True, **common)
        train(cfg, packed_dir, resumed, device="cpu", progress=False)
        later = losses(resumed)
        assert sorted(later) == list(range(9, 13))
        assert later == pytest.approx({s: curves["sync"][s] for s in range(9, 13)}, abs=1e-6)


def test_kill_9_during_a_background_write_leaves_the_previous_checkpoint(packed_dir, tmp_path, kill_9):
    """SIGKILL while a background checkpoint is being written: the half-written one is never loaded, the
    previous one is, and the rerun ends with the uninterrupted run's losses."""
    import subprocess
    import sys

    from jalm.train.checkpoint import load_checkpoint

    def cli(run_dir):
        command = [sys.executable, "-m", "jalm.cli", "train", "--preset", "test", "--data", str(packed_dir)]
        command += ["--out", str(run_dir), "--max-steps", "40", "--save-every", "10", "--async-checkpoint"]
        command += ["--dtype", "float32", "--no-progress"]
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    reference = cli(tmp_path / "reference")
    assert reference.wait(timeout=300) == 0, reference.stderr.read()
    victim = cli(tmp_path / "victim")
    writing = tmp_path / "victim" / "checkpoints" / ".tmp-step_00000020"
    kill_9(victim, writing.exists)
    latest = ckpt.latest_checkpoint(tmp_path / "victim")
    assert latest is not None and latest.name in ("step_00000010", "step_00000020")
    if latest.name == "step_00000010":  # the write in flight was cut: it is not a checkpoint
        assert writing.exists() and not (writing / ckpt.STATE_FILE).exists()
    from jalm.model import build_model, get_preset, hf_config

    meta_vocab = ckpt.read_state(latest)["vocab_size"]
    model = build_model(hf_config(get_preset("test"), meta_vocab), "cpu")
    assert load_checkpoint(latest, model, None)["step"] == int(latest.name[len("step_") :])
    resumed = cli(tmp_path / "victim")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    assert losses(tmp_path / "victim") == losses(tmp_path / "reference")
