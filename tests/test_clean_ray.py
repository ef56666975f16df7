"""The same shard jobs on a local Ray instance give the same result as local processes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import ray

from jalm.corpus import clean
from jalm.jsonl import read_records

ROOT = Path(__file__).resolve().parents[1]


def test_ray_executor_matches_local(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    records = list(read_records([ROOT / "data" / "corpus" / "aozora.jsonl.zst"]))[:40]
    for n in range(3):
        part = records[n::3] + ([records[0]] if n == 2 else [])  # one duplicate across shards
        (inputs / f"part-{n}.jsonl").write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in part), encoding="utf-8"
        )
    with (inputs / "part-1.jsonl").open("a", encoding="utf-8") as handle:
        handle.write("{broken\n")

    local = clean([inputs], tmp_path / "local", workers=1, progress=False, report=False)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        on_ray = clean([inputs], tmp_path / "ray", executor="ray", progress=False, report=False)
        markers = (tmp_path / "ray" / ".work" / "pass1").glob("*.json")
        pids = {json.loads(marker.read_text(encoding="utf-8"))["worker_pid"] for marker in markers}
    finally:
        ray.shutdown()
    assert os.getpid() not in pids  # the filter jobs ran in Ray workers
    assert on_ray["timings"]["executor"] == "ray"
    for key in ("input", "kept", "rejected", "malformed", "bytes"):
        assert on_ray[key] == local[key]
    assert on_ray["rejected"]["exact_duplicate"] == 1 and on_ray["malformed"] == 1
    for sub in ("kept", "rejected"):
        a = [r["id"] for r in read_records(sorted((tmp_path / "local" / sub).glob("*.jsonl*")))]
        b = [r["id"] for r in read_records(sorted((tmp_path / "ray" / sub).glob("*.jsonl*")))]
        assert a == b


def test_ray_task_whose_worker_dies_is_retried(tmp_path: Path) -> None:
    """A Ray worker SIGKILLed mid-task (as when its node is lost) reruns the task (max_retries); with
    no retries left the run stops with one line. Without --workers, the jobs use the cluster's CPUs."""
    import signal

    import pytest

    from jalm.errors import JalmError
    from jalm.executors import Executor

    flag = str(tmp_path / "flag")

    def kill_first_try(job: int, report=None) -> int:  # a closure: Ray ships it by value
        if job == 2 and not os.path.exists(flag):
            Path(flag).write_text("killed once", encoding="utf-8")
            os.kill(os.getpid(), signal.SIGKILL)
        return job * 2

    def always_killed(job: int, report=None) -> int:
        if job == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        return job

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        with Executor(None, "ray", retries=1, memory=64 << 20) as runner:
            assert runner.workers == 2  # the cluster's CPUs
            assert runner.run(kill_first_try, list(range(4))) == [0, 2, 4, 6]
        assert os.path.exists(flag)
        with Executor(None, "ray", retries=0) as runner, pytest.raises(JalmError) as error:
            runner.run(always_killed, list(range(4)))
    finally:
        ray.shutdown()
    assert "always_killed of int" in str(error.value) and "\n" not in str(error.value)
    assert "on try 1 of 1" in str(error.value)
