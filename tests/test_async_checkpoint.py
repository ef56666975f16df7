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
