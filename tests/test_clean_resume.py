"""A clean run killed with SIGKILL resumes at shard granularity: nothing lost, nothing doubled."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from jalm.corpus import clean
from jalm.errors import JalmError
from jalm.jsonl import read_records

ROOT = Path(__file__).resolve().parents[1]
WIKI = ROOT / "data" / "corpus" / "wiki_jaquad.jsonl.zst"
N_SHARDS = 8


def make_shards(folder: Path) -> int:
    folder.mkdir()
    records = list(read_records([WIKI]))[:320]
    for n in range(N_SHARDS):
        part = records[n::N_SHARDS]
        if n == 3:
            part = part + [records[0]]  # an exact duplicate of a document in shard 0
        with open(folder / f"part-{n}.jsonl", "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in part)
    return 320 + 1


def outputs(out: Path) -> tuple[Counter, Counter]:
    kept = Counter(r["id"] for r in read_records(sorted((out / "kept").glob("*.jsonl*"))))
    rejected = Counter(r["id"] for r in read_records(sorted((out / "rejected").glob("*.jsonl*"))))
    return kept, rejected


def test_killed_run_resumes_without_loss_or_doubles(tmp_path: Path) -> None:
    n_docs = make_shards(tmp_path / "in")
    out = tmp_path / "out"
    code = f"from jalm.corpus import clean; clean([{str(tmp_path / 'in')!r}], {str(out)!r}, progress=False)"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    process = subprocess.Popen([sys.executable, "-c", code], env=env)
    markers = out / ".work" / "pass1"
    deadline = time.monotonic() + 120
    while not (markers.exists() and any(markers.glob("[!.]*.json"))):
        assert process.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    # (a marker being written when the kill came is a temporary file, not a marker: the rerun removes it)
    done_before = {
        p.name: p.stat().st_mtime_ns for p in markers.glob("*.json") if not p.name.startswith(".tmp-")
    }
    assert 0 < len(done_before) < N_SHARDS  # killed in the middle of the filter pass
    assert not (out / "stats.json").exists()

    stats = clean([tmp_path / "in"], out, progress=False)
    # Shards finished before the kill were not redone.
    assert {
        p.name: p.stat().st_mtime_ns for p in markers.glob("*.json") if p.name in done_before
    } == done_before
    kept, rejected = outputs(out)
    assert max(kept.values()) == 1 and (not rejected or max(rejected.values()) == 1)
    assert sum(kept.values()) + sum(rejected.values()) + stats["malformed"] == stats["input"] == n_docs
    # Exactly what an uninterrupted run produces.
    reference = clean([tmp_path / "in"], tmp_path / "reference", progress=False)
    assert outputs(tmp_path / "reference") == (kept, rejected)
    assert {k: reference[k] for k in ("input", "kept", "rejected", "malformed", "bytes")} == {
        k: stats[k] for k in ("input", "kept", "rejected", "malformed", "bytes")
    }
    assert stats["rejected"].get("exact_duplicate") == 1
    assert not list(out.rglob(".tmp-*"))  # no leftover of the killed run
    # Rerunning a finished run changes nothing.
    again = clean([tmp_path / "in"], out, progress=False)
    assert again["kept"] == stats["kept"] and outputs(out) == (kept, rejected)


def test_resume_refuses_a_different_run(tmp_path: Path) -> None:
    make_shards(tmp_path / "in")
    clean([tmp_path / "in" / "part-0.jsonl"], tmp_path / "out", progress=False)
    with pytest.raises(JalmError, match="other shards"):
        clean([tmp_path / "in" / "part-1.jsonl"], tmp_path / "out", progress=False)
    (tmp_path / "out" / "notes.txt").write_text("the user's own file", encoding="utf-8")
    stats = clean([tmp_path / "in" / "part-1.jsonl"], tmp_path / "out", progress=False, overwrite=True)
    assert [s["name"] for s in stats["shards"]] == ["part-1"]
    assert [p.name for p in (tmp_path / "out" / "kept").iterdir()] == ["part-1.jsonl.zst"]
    assert (tmp_path / "out" / "notes.txt").exists()
