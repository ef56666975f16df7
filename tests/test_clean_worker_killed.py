"""`jalm clean --workers 2`: a worker SIGKILLed in the middle of a shard job is replaced and the job
rerun; the run completes with every document accounted for, the same as an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from jalm.corpus import clean
from jalm.io import TMP_PREFIX
from jalm.jsonl import read_records

ROOT = Path(__file__).resolve().parents[1]
WIKI = ROOT / "data" / "corpus" / "wiki_jaquad.jsonl.zst"


def _outputs(out: Path) -> tuple[Counter, Counter]:
    kept = Counter(r["id"] for r in read_records(sorted((out / "kept").glob("*.jsonl*"))))
    rejected = Counter(r["id"] for r in read_records(sorted((out / "rejected").glob("*.jsonl*"))))
    return kept, rejected


def _kill_worker_mid_job(out: Path, process: subprocess.Popen) -> int:
    """SIGKILL the worker writing shard part-0's survivors (its PID is in its temporary file's name)."""
    candidates = out / ".work" / "candidates"
    while process.poll() is None:
        writing = list(candidates.glob(f"{TMP_PREFIX}*-part-0.jsonl")) if candidates.exists() else []
        if writing:
            pid = int(writing[0].name.removeprefix(TMP_PREFIX).split("-")[0])
            os.kill(pid, signal.SIGKILL)
            return pid
        time.sleep(0.01)
    raise AssertionError("the run ended before a worker could be killed")


def test_worker_killed_mid_job_is_retried(tmp_path: Path) -> None:
    records = list(read_records([WIKI]))
    (tmp_path / "in").mkdir()
    for n in range(2):
        with open(tmp_path / "in" / f"part-{n}.jsonl", "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records[n::2])
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    command = [sys.executable, "-m", "jalm", "clean", str(tmp_path / "in"), "--out", str(out)]
    process = subprocess.Popen(
        [*command, "--workers", "2", "--retries", "1", "--no-progress"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    pid = _kill_worker_mid_job(out, process)
    _, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    assert f"filter_shard of shard part-0: worker {pid} died (SIGKILL); retrying (1 of 1)" in err

    reference = clean([tmp_path / "in"], tmp_path / "reference", workers=1, progress=False, report=False)
    kept, rejected = _outputs(out)
    assert (kept, rejected) == _outputs(tmp_path / "reference")
    assert max((kept + rejected).values()) == 1  # nothing doubled by the rerun
    assert sum((kept + rejected).values()) == len(records) == reference["input"]  # nothing lost
    assert not list(out.rglob(f"{TMP_PREFIX}*"))  # the dead worker's half-written files are gone
