"""jalm.io: atomic writes leave the whole file or nothing; compressed files round-trip by suffix."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

from jalm.errors import JalmError
from jalm.io import atomic_path, open_compressed, temp_path, write_atomic
from jalm.jsonl import iter_lines, read_records, write_records


def test_atomic_path_renames_on_success_and_keeps_the_suffix(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "kept.jsonl.zst"
    with atomic_path(target) as tmp:
        assert tmp == temp_path(target) == tmp_path / "sub" / f".tmp-{os.getpid()}-kept.jsonl.zst"
        with open_compressed(tmp, "wt") as handle:  # the temporary name picks the same compression
            handle.write('{"text": "吾輩は猫である。"}\n')
        assert not target.exists()
    assert [r["text"] for r in read_records([target])] == ["吾輩は猫である。"]
    assert sorted(p.name for p in target.parent.iterdir()) == ["kept.jsonl.zst"]


def test_atomic_path_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "stats.json"
    write_atomic(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half", encoding="utf-8")
        raise RuntimeError("killed")
    assert target.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["stats.json"]


def test_write_atomic_takes_bytes_and_text(tmp_path: Path) -> None:
    write_atomic(tmp_path / "a.bin", b"\x00\xff")
    write_atomic(tmp_path / "b.txt", "改行\n")
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\xff"
    assert (tmp_path / "b.txt").read_bytes() == "改行\n".encode()


@pytest.mark.parametrize("name", ["x.jsonl", "x.jsonl.gz", "x.jsonl.zst"])
def test_compressed_round_trip_and_blank_lines(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    with open_compressed(path, "wb", level=1, window_log=17) as handle:
        handle.write(b'{"text": "a"}\n \n\n{"text": "b"}\n')
    assert list(iter_lines(path)) == [(1, b'{"text": "a"}\n'), (4, b'{"text": "b"}\n')]
    assert list(iter_lines(path, buffering=1 << 20)) == list(iter_lines(path))
    with open_compressed(path) as handle:
        assert handle.read().count("text") == 2
    if name.endswith(".gz"):
        assert gzip.decompress(path.read_bytes()).startswith(b'{"text"')


def test_write_records_counts_and_reads_back(tmp_path: Path) -> None:
    records = [{"text": "一"}, {"text": "二", "id": 2}]
    assert write_records(tmp_path / "r.jsonl.gz", records) == 2
    assert list(read_records([tmp_path / "r.jsonl.gz"])) == records


def test_missing_file_is_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(JalmError, match="no-such.jsonl.zst: no such file"):
        open_compressed(tmp_path / "no-such.jsonl.zst")
