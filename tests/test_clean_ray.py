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
