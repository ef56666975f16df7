"""Every input document ends up kept, rejected or quarantined, even on hostile input."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from jalm.corpus import clean
from jalm.jsonl import read_records

ROOT = Path(__file__).resolve().parents[1]
AOZORA = ROOT / "data" / "corpus" / "aozora.jsonl.zst"


@pytest.fixture(scope="module")
def real_texts() -> list[str]:
    return [r["text"] for _, r in zip(range(12), read_records([AOZORA]))]


def jsonl_bytes(records: list[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")


def count_lines(path: Path) -> int:
    return sum(1 for _ in read_records(sorted(path.glob("*.jsonl*"))))


def test_bad_input_is_accounted_for(tmp_path: Path, real_texts: list[str]) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    # 1. a JSONL file mixing good lines with every kind of bad line
    lines = [
        json.dumps({"text": real_texts[0]}).encode(),
        b"{this is not json",
        b'{"text": "caf\xe9 latin-1 bytes are not UTF-8"}',
        json.dumps({"title": "no text field"}).encode(),
        json.dumps({"text": None}).encode(),
        json.dumps(["an", "array"]).encode(),
        json.dumps({"text": ""}).encode(),  # empty document: readable, rejected by length
        json.dumps({"text": "   \n\u3000 "}).encode(),  # white space only: the same
        json.dumps({"text": real_texts[1]}).encode(),
    ]
    (inputs / "mixed.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    # 2. a 50 MB document (a dump mistaken for a document)
    huge = ("これは巨大な文書の一部です。" * 4_000_000)[: 50 * 1024 * 1024 // 3]
    (inputs / "huge.jsonl").write_text(
        json.dumps({"text": huge}, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    # 3. a truncated .gz (download cut off): its readable lines count, the rest is reported
    full = gzip.compress(jsonl_bytes([{"text": t} for t in real_texts[2:10]]))
    (inputs / "cut.jsonl.gz").write_bytes(full[: len(full) // 2])
    # 4. a corrupt .zst
    (inputs / "corrupt.jsonl.zst").write_bytes(b"\x28\xb5\x2f\xfd garbage that is not a zstd frame")

    out = tmp_path / "out"
    stats = clean([inputs], out, progress=False)

    assert stats["input"] == stats["kept"] + stats["rejected_total"] + stats["malformed"]
    assert stats["kept"] == count_lines(out / "kept")
    assert stats["rejected_total"] == count_lines(out / "rejected")
    quarantined = [
        json.loads(line) for path in sorted((out / "quarantine").glob("*.jsonl")) for line in path.open()
    ]
    assert stats["malformed"] == len(quarantined)
    problems = {(Path(q["file"]).name, q["line"]): q["problem"] for q in quarantined}
    assert problems[("mixed.jsonl", "2")].startswith("not valid JSON")
    assert problems[("mixed.jsonl", "3")].startswith("not valid UTF-8")
    assert problems[("mixed.jsonl", "4")] == "no string field 'text'"
    assert problems[("mixed.jsonl", "5")] == "no string field 'text'"
    assert problems[("mixed.jsonl", "6")].startswith("not a JSON object")
    assert any(
        name == "cut.jsonl.gz" and p.startswith("unreadable after line") for (name, _), p in problems.items()
    )
    assert any(name == "corrupt.jsonl.zst" for name, _ in problems)
    # The empty and blank documents and the 50 MB one are rejected by length, with evidence.
    rejected = {r["id"]: r["reason"] for r in read_records(sorted((out / "rejected").glob("*.jsonl*")))}
    assert rejected["mixed:7"].startswith("length: 0 chars < ")
    assert rejected["mixed:8"].startswith("length: 0 chars < ")
    assert rejected["huge:1"].startswith(f"length: {len(huge)} chars > ")
    # The readable part of the truncated file was cleaned, not lost.
    cut = next(s for s in stats["shards"] if s["name"] == "cut")
    assert cut["input"] - cut["malformed"] >= 1 and cut["malformed"] == 1
    assert stats["quarantined"]["unreadable after line N"] == 2  # the .gz and the .zst
    # Bytes add up too: every input byte is in kept, a rejection rule, or quarantine.
    b = stats["bytes"]
    assert b["input"] == b["kept"] + sum(b["rejected"].values()) + b["malformed"]


def test_text_folder_with_bad_file(tmp_path: Path, real_texts: list[str]) -> None:
    folder = tmp_path / "pages"
    folder.mkdir()
    (folder / "a.txt").write_text(real_texts[0], encoding="utf-8")
    (folder / "b.txt").write_bytes(real_texts[1].encode("shift_jis", errors="ignore"))
    (folder / "c.txt").write_text("", encoding="utf-8")
    stats = clean([folder], tmp_path / "out", progress=False)
    assert stats["input"] == 3
    assert stats["kept"] == 1 and stats["malformed"] == 1 and stats["rejected"] == {"length": 1}
    (line,) = (tmp_path / "out" / "quarantine" / "pages.jsonl").read_text(encoding="utf-8").splitlines()
    entry = json.loads(line)
    assert entry["file"].endswith("b.txt") and entry["problem"].startswith("not valid UTF-8")
