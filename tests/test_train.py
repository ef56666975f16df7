"""Training on real packed text: the loss falls, runs resume exactly after kill -9, faults are caught."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from jalm.errors import JalmError
from jalm.model.attention import fp32_attention_pays
from jalm.train import checkpoint as ckpt
from jalm.train import train
from jalm.train.config import default_config
from jalm.train.metrics import read_metrics
from jalm.train.schedule import lr_at


def losses(run_dir: Path) -> dict[int, float]:
    return {
        r["step"]: r["loss"]
        for r in read_metrics(run_dir / "metrics.jsonl")
        if "loss" in r and "event" not in r
    }


def test_loss_goes_down_and_metrics_have_every_field(tiny_run_dir):
    records = [r for r in read_metrics(tiny_run_dir / "metrics.jsonl") if "tokens_per_s" in r]
    assert [r["step"] for r in records] == list(range(1, 31))
    for key in ("step", "loss", "lr", "grad_norm", "tokens_per_s", "tokens"):
        assert all(key in r for r in records), key
    first, last = records[0]["loss"], records[-1]["loss"]
    assert last < first - 0.5, (first, last)
    assert (tiny_run_dir / "loss.png").stat().st_size > 1000
    assert [p.name for p in ckpt.list_checkpoints(tiny_run_dir)] == ["step_00000015", "step_00000030"]


def test_compiled_and_bf16_steps_follow_the_eager_float32_curve(packed_dir, tmp_path):
    """`--compile` (model and loss, z-loss included, in one graph) changes the kernels, not the run;
    bf16 autocast (with float32 attention on CPUs without AMX) stays within bf16 rounding of it."""
    runs = {
        "eager": {"dtype": "float32"},
        "compiled": {"dtype": "float32", "compile": True},
        "bf16": {"dtype": "bfloat16"},
    }
    curves = {}
    for name, overrides in runs.items():
        cfg = default_config("test", max_steps=8, z_loss=1e-4, save_every=0, **overrides)
        train(cfg, packed_dir, tmp_path / name, device="cpu", progress=False)
        curves[name] = list(losses(tmp_path / name).values())
    assert len(curves["eager"]) == 8
    assert curves["compiled"] == pytest.approx(curves["eager"], abs=1e-3)
    assert curves["bf16"] == pytest.approx(curves["eager"], abs=0.01)
    run_config = json.loads((tmp_path / "bf16" / "run.json").read_text())
    expected = "jalm_sdpa_fp32" if fp32_attention_pays(torch.device("cpu"), bf16=True) else "sdpa"
    assert run_config["bf16"] is True and run_config["attention"] == expected


def test_global_batch_in_tokens_sets_gradient_accumulation(packed_dir, tmp_path):
    common = {"max_steps": 4, "micro_batch_size": 2, "seq_len": 64, "dtype": "float32", "save_every": 0}
    train(default_config("test", grad_accum=3, **common), packed_dir, tmp_path / "explicit", progress=False)
    derived = default_config("test", global_batch_tokens=3 * 2 * 64, **common)
    train(derived, packed_dir, tmp_path / "derived", progress=False)
    assert losses(tmp_path / "derived") == losses(tmp_path / "explicit")
    assert json.loads((tmp_path / "derived" / "run.json").read_text())["grad_accum"] == 3
    with pytest.raises(JalmError, match=r"global_batch_tokens 300 is not a multiple of .* = 128$"):
        train(default_config("test", global_batch_tokens=300, **common), packed_dir, tmp_path / "bad")


def test_schedule_warmup_then_cosine_to_floor():
    peak = 1.5e-4
    assert lr_at(0, peak, 10, 100) == pytest.approx(peak / 10)
    assert lr_at(9, peak, 10, 100) == pytest.approx(peak)
    assert lr_at(55, peak, 10, 100) == pytest.approx(peak * (0.1 + 0.9 * 0.5))
    assert lr_at(100, peak, 10, 100) == pytest.approx(peak * 0.1)
    assert lr_at(39, peak, 10, 100, "inverse_sqrt") == pytest.approx(peak * 0.5)
    assert lr_at(50, peak, 10, 100, "constant") == peak


def _cli_train(packed_dir: Path, run_dir: Path, *extra: str) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "jalm.cli",
        "train",
        "--preset",
        "test",
        "--data",
        str(packed_dir),
        "--out",
        str(run_dir),
        "--max-steps",
        "60",
        "--save-every",
        "20",
        "--no-progress",
        *extra,
    ]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_kill_9_then_resume_reproduces_the_uninterrupted_run(packed_dir, tmp_path, same_checkpoint, kill_9):
    reference = _cli_train(packed_dir, tmp_path / "reference")
    assert reference.wait(timeout=300) == 0, reference.stderr.read()

    victim = _cli_train(packed_dir, tmp_path / "victim")
    kill_9(victim, (tmp_path / "victim" / "checkpoints" / "step_00000020").exists)
    assert ckpt.latest_checkpoint(tmp_path / "victim").name != "step_00000060"

    resumed = _cli_train(packed_dir, tmp_path / "victim")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    expected, got = losses(tmp_path / "reference"), losses(tmp_path / "victim")
    assert got == expected  # every step's logged loss (5 decimals)
    same_checkpoint(tmp_path / "reference", tmp_path / "victim")  # and the weights, bit for bit


def test_partial_checkpoints_are_never_loaded_and_corrupt_ones_fail_in_one_line(
    tiny_run_dir, packed_dir, tmp_path
):
    run = tmp_path / "run"
    shutil.copytree(tiny_run_dir, run)
    root = run / "checkpoints"
    # A save interrupted before its rename, and a final-named directory without its state file.
    shutil.copytree(root / "step_00000030", root / ".tmp-step_00000045")
    (root / "step_00000060").mkdir()
    assert ckpt.latest_checkpoint(run).name == "step_00000030"
    summary = train(
        default_config("test", max_steps=35, save_every=0), packed_dir, run, device="cpu", progress=False
    )
    assert summary["steps"] == 35
    assert min(s for s in losses(run) if s > 30) == 31  # resumed from 30, not from the partial 45

    shard = next((root / "step_00000035").glob("*.distcp"))
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 3])
    with pytest.raises(JalmError, match=r"step_00000035: checkpoint cannot be loaded"):
        train(default_config("test", max_steps=40), packed_dir, run, device="cpu", progress=False)


def test_a_run_of_another_preset_or_vocabulary_is_refused(tiny_run_dir, packed_dir, tmp_path):
    with pytest.raises(JalmError, match="holds a run of preset 'test', not 'test-gpt2'"):
        train(
            default_config("test-gpt2", max_steps=31), packed_dir, tiny_run_dir, device="cpu", progress=False
        )
    other = tmp_path / "packed"
    shutil.copytree(packed_dir, other)
    meta = json.loads((other / "meta.json").read_text())
    meta["vocab_size"] = 5000
    (other / "meta.json").write_text(json.dumps(meta))
    run = tmp_path / "run"
    shutil.copytree(tiny_run_dir, run)
    with pytest.raises(JalmError, match=r"checkpoint of preset 'test' \(vocab 4000\)"):
        train(default_config("test", max_steps=31), other, run, device="cpu", progress=False)


@pytest.mark.parametrize(("kind", "action"), [("nan", "skip"), ("spike", "rollback")])
def test_injected_nan_or_spike_is_caught_and_the_run_finishes(packed_dir, tmp_path, kind, action):
    cfg = default_config(
        "test", max_steps=30, save_every=10, spike_action=action, extra={"inject": {"step": 22, "kind": kind}}
    )
    summary = train(cfg, packed_dir, tmp_path / "run", device="cpu", progress=False)
    events = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if "event" in r]
    assert [e["event"] for e in events] == [action]
    assert summary["steps"] == 30 and summary["skipped_steps"] == 1
    assert all(v == v and v < 20 for v in losses(tmp_path / "run").values())  # finite, no spike applied


def test_time_budget_fixes_max_steps_from_measured_speed(packed_dir, tmp_path):
    cfg = default_config("test", max_steps=100_000, time_budget_s=4.0, calibration_steps=8, save_every=0)
    summary = train(cfg, packed_dir, tmp_path / "run", device="cpu", progress=False)
    assert 3 < summary["steps"] < 100_000
    state = ckpt.read_state(ckpt.latest_checkpoint(tmp_path / "run"))
    assert state["max_steps"] == summary["steps"]


def test_train_cli_errors_are_one_line(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "jalm.cli",
            "train",
            "--preset",
            "tiny",
            "--data",
            str(tmp_path / "nope"),
            "--out",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ},
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "nope: no such directory" in result.stderr


def test_continued_pretraining_starts_from_the_exported_weights(
    tiny_model_dir, tiny_run_dir, packed_dir, tmp_path
):
    cfg = default_config("test", max_steps=3, save_every=0, init_from=str(tiny_model_dir), tensorboard=True)
    train(cfg, packed_dir, tmp_path / "continued", device="cpu", progress=False)
    scratch_first = losses(tiny_run_dir)[1]
    continued_first = losses(tmp_path / "continued")[1]
    assert continued_first < scratch_first - 0.5, (continued_first, scratch_first)
    assert any((tmp_path / "continued" / "tensorboard").glob("events.out.tfevents.*"))


def test_gpt2_weights_load_and_mismatched_shapes_are_refused(tmp_path):
    import torch

    from jalm.model import build_model, get_preset, hf_config
    from jalm.train.loop import load_hf_weights

    source = build_model(hf_config(get_preset("test-gpt2"), 500))
    source.save_pretrained(tmp_path / "gpt2")
    target = build_model(hf_config(get_preset("test-gpt2"), 500))
    load_hf_weights(target, tmp_path / "gpt2")
    for (name, a), b in zip(source.state_dict().items(), target.state_dict().values()):
        assert torch.equal(a, b), name
    with pytest.raises(JalmError, match="the preset builds a GPTNeoXForCausalLM"):
        load_hf_weights(build_model(hf_config(get_preset("test"), 500)), tmp_path / "gpt2")
    with pytest.raises(JalmError, match="pick the matching --preset"):
        load_hf_weights(build_model(hf_config(get_preset("tiny-gpt2"), 500)), tmp_path / "gpt2")


def test_gpu_benchmark_script_runs_end_to_end_on_cpu(tmp_path):
    """benchmarks/gpu_mfu.py is meant to run as one command when a GPU is lent; keep it from rotting."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_mfu.py"
    command = [sys.executable, str(script), "--device", "cpu", "--preset", "test", "--seq-len", "64"]
    command += ["--micro-batch-size", "2", "--steps", "4", "--warmup", "1", "--no-compile"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["device"] == "cpu" and report["tokens_per_s"] > 0 and "mfu" not in report


def test_rollback_without_a_checkpoint_skips_the_step_and_keeps_counting_tokens(packed_dir, tmp_path):
    """Nothing to roll back to: the bad step is skipped, and the token count goes on (it was reset to 0)."""
    cfg = default_config(
        "test",
        max_steps=12,
        save_every=0,
        spike_action="rollback",
        extra={"inject": {"step": 6, "kind": "nan"}},
    )
    summary = train(cfg, packed_dir, tmp_path / "run", device="cpu", progress=False)
    records = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert [r["event"] for r in records if "event" in r] == ["rollback"]
    per_step = cfg.micro_batch_size * cfg.seq_len
    assert all(r["tokens"] == r["step"] * per_step for r in records if "tokens" in r)
    assert summary["tokens"] == 12 * per_step and summary["steps"] == 12
