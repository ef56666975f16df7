"""`kill -9` of a whole `jalm clean` run: the later stages refuse its output in one line (unless
--allow-incomplete), never read a temporary file, and a rerun gives the uninterrupted run's output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from jalm.corpus import clean
from jalm.data.packing import pack
from jalm.errors import JalmError
from jalm.io import INCOMPLETE_MARKER, TMP_PREFIX
from jalm.jsonl import expand_inputs, read_records
from jalm.tokenizer import train_tokenizer

ROOT = Path(__file__).resolve().parents[1]
WIKI = ROOT / "data" / "corpus" / "wiki_jaquad.jsonl.zst"


def _outputs(out: Path) -> tuple[Counter, Counter]:
    kept = Counter(r["id"] for r in read_records(sorted((out / "kept").glob("*.jsonl*"))))
    rejected = Counter(r["id"] for r in read_records(sorted((out / "rejected").glob("*.jsonl*"))))
    return kept, rejected


def test_killed_run_is_refused_then_resumed(tmp_path: Path, kill_9, tokenizer_dir: Path) -> None:
    records = list(read_records([WIKI]))
    (tmp_path / "in").mkdir()
    for n in range(3):
        with open(tmp_path / "in" / f"part-{n}.jsonl", "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records[n::3])
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    command = [
        sys.executable,
        "-m",
        "jalm",
        "clean",
        str(tmp_path / "in"),
        "--out",
        str(out),
        "--no-progress",
    ]
    process = subprocess.Popen(command, env=env)
    kept = out / "kept"
    # Killed in the last pass, with a kept shard written and the next one half-written.
    kill_9(process, lambda: kept.exists() and any(kept.glob(f"{TMP_PREFIX}*")) and any(kept.glob("[!.]*")))
    assert any(kept.glob(f"{TMP_PREFIX}*")) and (out / INCOMPLETE_MARKER).exists()

    # No later stage reads it: each refuses in one line naming the run...
    for stage in (
        lambda: train_tokenizer([kept], tmp_path / "tok", vocab_size=300, progress=False),
        lambda: pack([kept], tokenizer_dir, tmp_path / "packed", progress=False),
    ):
        with pytest.raises(JalmError, match="jalm clean` run that did not complete") as error:
            stage()
        assert "\n" not in str(error.value)
    # ...and when told to read it anyway, reads whole shards only: no temporary file, nor .work/.
    assert all(not p.name.startswith(TMP_PREFIX) for p in expand_inputs([kept]))
    assert all(".work" not in p.parts for p in expand_inputs([out]))
    meta = pack([kept], tokenizer_dir, tmp_path / "packed", progress=False, allow_incomplete=True)
    whole = sum(1 for _ in read_records(sorted(kept.glob("[!.]*.jsonl*"))))
    assert meta["train_documents"] + meta["val_documents"] + sum(meta["skipped"].values()) == whole
    assert not (tmp_path / "packed" / INCOMPLETE_MARKER).exists()

    rerun = subprocess.run(command, env=env)
    assert rerun.returncode == 0
    reference = clean([tmp_path / "in"], tmp_path / "reference", progress=False, report=False)
    assert _outputs(out) == _outputs(tmp_path / "reference")
    stats = json.loads((out / "stats.json").read_text(encoding="utf-8"))
    assert {k: stats[k] for k in ("input", "kept", "rejected", "bytes")} == {
        k: reference[k] for k in ("input", "kept", "rejected", "bytes")
    }
    assert not list(out.rglob(f"{TMP_PREFIX}*")) and not (out / INCOMPLETE_MARKER).exists()
    pack([kept], tokenizer_dir, tmp_path / "packed2", progress=False)  # complete now: accepted


def test_train_refuses_an_unfinished_pack(tmp_path: Path, packed_dir: Path, capsys) -> None:
    import shutil

    from jalm.cli import main

    packed = tmp_path / "packed"
    shutil.copytree(packed_dir, packed)
    (packed / INCOMPLETE_MARKER).write_text("jalm pack\n", encoding="utf-8")  # as a killed pack leaves it
    args = [
        "train",
        "--preset",
        "tiny",
        "--data",
        str(packed),
        "--out",
        str(tmp_path / "run"),
        "--max-steps",
        "1",
    ]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "`jalm pack` run that did not complete" in err and "--allow-incomplete" in err
    assert not (tmp_path / "run").exists()
