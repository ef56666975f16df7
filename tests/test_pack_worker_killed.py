"""`jalm pack --workers 2`: a worker SIGKILLed mid-shard is replaced and the shard packed again; the
result equals an uninterrupted pack (the same executors as `jalm clean`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from jalm.data.packing import pack
from jalm.io import TMP_PREFIX
from jalm.jsonl import read_records

ROOT = Path(__file__).resolve().parents[1]
WIKI = ROOT / "data" / "corpus" / "wiki_jaquad.jsonl.zst"


def test_pack_worker_killed_mid_shard_is_retried(tmp_path: Path, tokenizer_dir: Path) -> None:
    records = list(read_records([WIKI]))
    (tmp_path / "in").mkdir()
    for n in range(2):
        with open(tmp_path / "in" / f"part-{n}.jsonl", "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records[n::2])
    out = tmp_path / "packed"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    command = [sys.executable, "-m", "jalm", "pack", str(tmp_path / "in"), "--tokenizer", str(tokenizer_dir)]
    process = subprocess.Popen(
        [*command, "--out", str(out), "--workers", "2", "--retries", "1"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    shards, pid = out / "shards", None
    while pid is None:
        assert process.poll() is None, "the pack ended before a worker could be killed"
        writing = list(shards.glob(f"{TMP_PREFIX}*-part-0.*")) if shards.exists() else []
        if writing:
            pid = int(writing[0].name.removeprefix(TMP_PREFIX).split("-")[0])
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)
    _, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    assert f"pack_shard of shard part-0: worker {pid} died (SIGKILL); retrying (1 of 1)" in err
    meta = json.loads((out / "meta.json").read_text(encoding="utf-8"))
    reference = pack([tmp_path / "in"], tokenizer_dir, tmp_path / "reference", progress=False)
    keys = [k for k in reference if k.startswith(("train_", "val_"))] + ["skipped", "shards"]
    assert {k: meta[k] for k in keys} == {k: reference[k] for k in keys}
    names = sorted(p.name for p in (tmp_path / "reference" / "shards").glob("*.bin"))
    assert names == ["part-0.train.bin", "part-0.val.bin", "part-1.train.bin", "part-1.val.bin"]
    for name in names:
        assert (out / "shards" / name).read_bytes() == (tmp_path / "reference" / "shards" / name).read_bytes()
    assert not list(out.rglob(f"{TMP_PREFIX}*"))
