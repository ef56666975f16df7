"""Experiment trackers, for real and offline: a run logged to W&B (offline mode), MLflow (a file store) and
TensorBoard holds, read back with each tool's own files, exactly the numbers of metrics.jsonl — training
losses, validation losses, the guard's events — for pretraining and instruction tuning, and a resumed run
continues the same tracker runs without sending a step twice. A missing package fails in one line."""

from __future__ import annotations

import json
import math
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from jalm.errors import JalmError
from jalm.train import train
from jalm.train.config import default_config
from jalm.train.metrics import read_metrics
from jalm.train.trackers import STATE_FILE, tracker_names

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """No network, nothing written outside tmp_path; MLflow's file-store switch left as jalm finds it."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb-home" / name.lower()))
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "unset")
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE")  # restored to absent afterwards, whatever jalm sets
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


# --- reading each tracker back with its own files -------------------------------------------------------


def jsonl_numbers(run_dir: Path) -> dict[int, dict[str, float]]:
    """step → every number metrics.jsonl holds for it, keyed as the trackers key them."""
    out: dict[int, dict[str, float]] = {}
    for record in read_metrics(run_dir / "metrics.jsonl"):
        prefix = f"event/{record['event']}/" if "event" in record else ""
        for key, value in record.items():
            if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                out.setdefault(record["step"], {})[prefix + key] = float(value)
    return out


def wandb_records(path: Path) -> list:
    """The protobuf records of a .wandb file (a LevelDB-style log: 32 KiB blocks of CRC'd chunks)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    position, block, records, pending = 7, 32768, [], b""
    while position + 7 <= len(data):
        left = block - position % block
        if left < 7:  # a block's tail too short for a chunk header is padding
            position += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[position : position + 7])
        if kind == 0 and length == 0:
            position += left
            continue
        pending += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # FULL or LAST
            record = pb.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def wandb_history(run_dir: Path, run_id: str) -> tuple[dict[int, dict[str, float]], list, int]:
    """step → numbers of every offline segment of the W&B run, its run records, and its segment count."""
    files = sorted((run_dir / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb"))
    history: dict[int, dict[str, float]] = {}
    runs = []
    for path in files:
        for record in wandb_records(path):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                runs.append(record.run)
            if kind != "history":
                continue
            row = {
                item.key or "/".join(item.nested_key): json.loads(item.value_json)
                for item in record.history.item
            }
            step = int(row.pop("_step"))
            assert step not in history, f"W&B got step {step} twice"
            history[step] = {k: float(v) for k, v in row.items() if not k.startswith("_")}
    return history, runs, len(files)


def mlflow_history(run_dir: Path):
    from mlflow.tracking import MlflowClient

    state = json.loads((run_dir / STATE_FILE).read_text())["mlflow"]
    client = MlflowClient(tracking_uri=state["uri"])
    run = client.get_run(state["run_id"])
    history: dict[int, dict[str, float]] = {}
    for key in run.data.metrics:
        for metric in client.get_metric_history(run.info.run_id, key):
            assert key not in history.get(metric.step, {}), f"MLflow got {key} at step {metric.step} twice"
            history.setdefault(metric.step, {})[key] = metric.value
    experiment = client.get_experiment(run.info.experiment_id)
    runs = client.search_runs([run.info.experiment_id])
    return history, run, experiment, runs


def tensorboard_history(run_dir: Path) -> dict[int, dict[str, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    history: dict[int, dict[str, float]] = {}
    for key in events.Tags()["scalars"]:
        for event in events.Scalars(key):
            assert key not in history.get(event.step, {}), f"TensorBoard holds {key} at {event.step} twice"
            history.setdefault(event.step, {})[key] = event.value
    return history


def assert_same_numbers(got: dict, expected: dict, keys: tuple[str, ...], rel: float = 0.0) -> None:
    for key in keys:
        want = {step: values[key] for step, values in expected.items() if key in values}
        have = {step: values[key] for step, values in got.items() if key in values}
        assert sorted(have) == sorted(want), (key, sorted(have), sorted(want))
        for step, value in want.items():
            if math.isnan(value):
                assert math.isnan(have[step]), (key, step)
            else:
                assert have[step] == pytest.approx(value, rel=rel, abs=0), (key, step, have[step], value)


# --- the tests ------------------------------------------------------------------------------------------

KEYS = ("loss", "lr", "grad_norm", "tokens", "val_loss", "event/skip/loss", "event/skip/grad_norm")


def test_three_trackers_hold_the_metrics_of_a_run_and_its_resumption(packed_dir, tmp_path):
    run = tmp_path / "run"
    common = {"save_every": 3, "eval_every": 3, "dtype": "float32", "schedule": "constant"}
    common["trackers"] = "wandb,mlflow,tensorboard"
    # A NaN at step 2 makes a guard event; validation at 3 and 6.
    cfg = default_config("test", max_steps=6, extra={"inject": {"step": 1, "kind": "nan"}}, **common)
    train(cfg, packed_dir, run, device="cpu", progress=False)
    state = json.loads((run / STATE_FILE).read_text())
    assert state["wandb"]["step"] == state["mlflow"]["step"] == 6
    first_wandb, first_mlflow = state["wandb"]["id"], state["mlflow"]["run_id"]

    # As if killed after step 6 was logged but before its checkpoint: the rerun redoes 4-6, then goes on.
    shutil.rmtree(run / "checkpoints" / "step_00000006")
    cfg = default_config("test", max_steps=8, **common)
    train(cfg, packed_dir, run, device="cpu", progress=False)

    expected = jsonl_numbers(run)
    assert sorted(expected) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert math.isnan(expected[2]["event/skip/loss"]) and "loss" not in expected[2]
    assert {step for step, values in expected.items() if "val_loss" in values} == {3, 6, 8}
    state = json.loads((run / STATE_FILE).read_text())
    assert (state["wandb"]["id"], state["mlflow"]["run_id"]) == (first_wandb, first_mlflow)

    # W&B: two offline segments of one run (the second resumes it), each step once, the config once.
    history, runs, segments = wandb_history(run, first_wandb)
    assert segments == 2 and sorted(history) == list(range(1, 9))
    assert_same_numbers(history, expected, KEYS)
    assert {r.project for r in runs} == {"jalm"} and {r.display_name for r in runs} == {"run"}
    configs = [{i.key: json.loads(i.value_json) for i in r.config.update} for r in runs]
    assert configs[0]["config"]["max_steps"] == 6 and configs[0]["preset"] == "test"

    # MLflow: one run in experiment "jalm", resumed and finished, the config as flat parameters.
    history, mlflow_run, experiment, runs = mlflow_history(run)
    assert experiment.name == "jalm" and len(runs) == 1
    assert mlflow_run.info.run_name == "run" and mlflow_run.info.status == "FINISHED"
    assert mlflow_run.data.params["config.trackers"] == "wandb,mlflow,tensorboard"
    assert mlflow_run.data.params["config.lr"] == str(cfg.lr)
    assert state["mlflow"]["uri"] == (run / "mlflow").resolve().as_uri()
    assert_same_numbers(history, expected, KEYS)
    # per-source counts ("tokens/NAME") beside "tokens": MLflow's file store holds them as "tokens.NAME"
    per_source = [key for key in expected[1] if key.startswith("tokens/")]
    assert per_source and all(history[1][key.replace("/", ".")] == expected[1][key] for key in per_source)

    # TensorBoard (float32 scalars): events after the checkpoint were purged and rewritten.
    assert_same_numbers(tensorboard_history(run), expected, KEYS, rel=1e-6)


def test_instruction_tuning_logs_its_step_0_validation_too(tiny_model_dir, tmp_path):
    from jalm.sft.records import read_conversations
    from jalm.sft.train import SftOptions, sft, sft_config

    conversations, _ = read_conversations([REPO / "data" / "sft" / "demo.jsonl.zst"])
    data = tmp_path / "train.jsonl"
    with open(data, "w", encoding="utf-8") as out:
        for conversation in conversations[:120]:
            out.write(json.dumps({"messages": conversation.messages}, ensure_ascii=False) + "\n")
    options = SftOptions(model=str(tiny_model_dir), data=[str(data)], val_fraction=0.1)
    cfg = sft_config(
        lora=False,
        seq_len=128,
        micro_batch_size=4,
        max_steps=3,
        save_every=0,
        log_every=1,
        dtype="float32",
        trackers="mlflow,wandb",
        tracker_project="sft-test",
        tracker_run_name="chat-1",
    )
    sft(options, cfg, tmp_path / "sft", device="cpu", progress=False)
    expected = jsonl_numbers(tmp_path / "sft")
    assert "val_loss" in expected[0] and sorted(expected) == [0, 1, 2, 3]
    history, run, experiment, _ = mlflow_history(tmp_path / "sft")
    assert (experiment.name, run.info.run_name) == ("sft-test", "chat-1")
    assert_same_numbers(history, expected, ("loss", "val_loss", "lr"))
    wandb_id = json.loads((tmp_path / "sft" / STATE_FILE).read_text())["wandb"]["id"]
    history, runs, _ = wandb_history(tmp_path / "sft", wandb_id)
    assert runs[0].project == "sft-test" and runs[0].display_name == "chat-1"
    assert_same_numbers(history, expected, ("loss", "val_loss", "lr"))


def test_tracker_names_and_the_old_tensorboard_switch():
    assert tracker_names("") == []
    assert tracker_names("wandb, MLflow,wandb") == ["wandb", "mlflow"]
    assert tracker_names("tensorboard,wandb", tensorboard=True) == ["tensorboard", "wandb"]
    with pytest.raises(JalmError, match=r"unknown tracker 'comet'; choose from tensorboard, wandb, mlflow"):
        default_config("test", trackers="wandb,comet").validate()


@pytest.mark.parametrize("name", ["wandb", "mlflow"])
def test_a_missing_tracker_package_is_one_line_naming_the_extra(name, packed_dir, tmp_path):
    """The package is made unimportable for real (None in sys.modules), in a fresh `jalm train` process."""
    code = (
        f"import sys; sys.modules[{name!r}] = None; from jalm.cli import main; "
        "raise SystemExit(main(sys.argv[1:]))"
    )
    command = [sys.executable, "-c", code, "train", "--preset", "test", "--data", str(packed_dir)]
    command += [
        "--out",
        str(tmp_path / "run"),
        "--max-steps",
        "2",
        "--no-progress",
        "--trackers",
        f"tensorboard,{name}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert f"--trackers {name} needs the {name} package: pip install 'jalm[{name}]'" in result.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()
