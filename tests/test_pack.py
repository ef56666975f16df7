"""Packing real text: no <s>, </s> after each document, a split by document, strict input errors."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from jalm.data import SequenceSampler, get_windows, is_validation, load_tokens, num_windows, pack, read_meta
from jalm.errors import JalmError
from jalm.jsonl import read_texts
from jalm.tokenizer import load_sentencepiece


def test_packed_streams_are_documents_joined_by_eos(packed_dir, tokenizer_dir, small_corpus):
    sp = load_sentencepiece(tokenizer_dir)
    meta = read_meta(packed_dir)
    train, val = load_tokens(packed_dir, "train").to_array(), load_tokens(packed_dir, "val").to_array()
    texts = list(read_texts([small_corpus]))
    assert meta["train_documents"] + meta["val_documents"] == len(texts)
    assert meta["val_documents"] > 0 and meta["train_tokens"] == len(train) and meta["val_tokens"] == len(val)
    assert int((train == sp.eos_id()).sum()) == meta["train_documents"]
    assert int((train == sp.bos_id()).sum()) == 0
    # The first training document comes back exactly, followed by </s>.
    first = sp.encode(next(t for t in texts if not _is_val(t, meta)))
    assert train[: len(first)].tolist() == first and train[len(first)] == sp.eos_id()


def _is_val(text, meta):
    from jalm.data import is_validation

    return is_validation(text, meta["val_fraction"])


def test_split_is_by_document_and_deterministic(small_corpus, tokenizer_dir, tmp_path):
    a = pack([small_corpus], tokenizer_dir, tmp_path / "a", val_fraction=0.1, seq_len=64, progress=False)
    b = pack([small_corpus], tokenizer_dir, tmp_path / "b", val_fraction=0.1, seq_len=64, progress=False)
    assert np.array_equal(load_tokens(tmp_path / "a").to_array(), load_tokens(tmp_path / "b").to_array())
    assert a["val_documents"] == b["val_documents"]


def test_sampler_is_resumable_and_covers_every_window():
    sampler = SequenceSampler(num_windows=10, seed=3)
    first = sampler.take(7).tolist()
    resumed = SequenceSampler(num_windows=10, seed=3, position=sampler.position)
    rest = resumed.take(3).tolist()
    assert sorted(first + rest) == list(range(10))
    assert SequenceSampler(10, seed=3).take(20).tolist()[10:] != first + rest  # a new epoch, a new order


def test_windows_overlap_by_one_token_for_targets():
    tokens = np.arange(100, dtype=np.uint16)
    assert num_windows(tokens, 10) == 9
    windows = get_windows(tokens, np.array([0, 2]), 10)
    assert windows.shape == (2, 11) and windows[1, 0] == 20 and windows[1, -1] == 30


def test_bad_jsonl_line_stops_with_file_and_line(tokenizer_dir, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps({"text": "吾輩は猫である。"}, ensure_ascii=False) + "\n{not json\n", encoding="utf-8"
    )
    with pytest.raises(JalmError, match=r"bad\.jsonl:2: not valid JSON"):
        pack([bad], tokenizer_dir, tmp_path / "out", progress=False)
    no_text = tmp_path / "no_text.jsonl"
    no_text.write_text('{"body": "x"}\n', encoding="utf-8")
    with pytest.raises(JalmError, match=r"no_text\.jsonl:1: no string field 'text'"):
        pack([no_text], tokenizer_dir, tmp_path / "out", progress=False)


def test_empty_corpus_and_missing_file_are_one_line_errors(tokenizer_dir, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(JalmError, match="no documents"):
        pack([empty], tokenizer_dir, tmp_path / "out", progress=False)
    with pytest.raises(JalmError, match="missing.jsonl: no such file"):
        pack([tmp_path / "missing.jsonl"], tokenizer_dir, tmp_path / "out", progress=False)


# --- pack by shard ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sharded_inputs(small_corpus, tmp_path_factory):
    """The small corpus as one plain file (cut into byte ranges) plus a compressed file holding two empty
    documents (one only whitespace) among real ones."""
    from jalm.jsonl import write_records

    folder = tmp_path_factory.mktemp("inputs")
    shutil.copy(small_corpus, folder / "big.jsonl")
    texts = list(read_texts([small_corpus]))[:6]
    records = [
        {"text": texts[0]},
        {"text": ""},
        {"text": texts[1]},
        {"text": " \n "},
        *[{"text": t} for t in texts[2:]],
    ]
    write_records(folder / "extra.jsonl.zst", records)
    return folder


def _pack_files(out):
    """Every shard file's bytes, by name (markers without their timings and process ids)."""
    files = {}
    for path in sorted((out / "shards").iterdir()):
        if path.suffix == ".json":
            marker = json.loads(path.read_text())
            files[path.name] = {
                k: v for k, v in marker.items() if k not in ("seconds", "cpu_seconds", "worker_pid")
            }
        else:
            files[path.name] = path.read_bytes()
    return files


def _meta_without_timings(out):
    return {k: v for k, v in read_meta(out).items() if k not in ("seconds", "resumed_shards", "workers")}


SHARD_BYTES = 60_000  # the ~850 kB corpus file becomes byte ranges


def test_two_workers_pack_what_one_packs_and_no_document_is_lost_or_doubled(
    sharded_inputs, tokenizer_dir, tmp_path
):
    kwargs = {"val_fraction": 0.1, "seq_len": 64, "progress": False, "shard_bytes": SHARD_BYTES}
    one = pack([sharded_inputs], tokenizer_dir, tmp_path / "one", workers=1, **kwargs)
    two = pack([sharded_inputs], tokenizer_dir, tmp_path / "two", workers=2, **kwargs)
    assert _meta_without_timings(tmp_path / "one") == _meta_without_timings(tmp_path / "two")
    assert _pack_files(tmp_path / "one") == _pack_files(tmp_path / "two")
    ranges = -(-(sharded_inputs / "big.jsonl").stat().st_size // SHARD_BYTES)
    assert len(one["shards"]) == ranges + 1 > 5 and one == {**two, "seconds": one["seconds"], "workers": 1}

    # Every document once: the byte ranges' streams, document by document, are the input's documents.
    sp = load_sentencepiece(tokenizer_dir)
    texts = list(read_texts(sorted(sharded_inputs.iterdir())))
    assert one["skipped"] == {"empty": 2, "too_long": 0}
    assert one["train_documents"] + one["val_documents"] + 2 == len(texts)
    expected = [sp.encode(t) + [sp.eos_id()] for t in texts if t.strip() and not is_validation(t, 0.1)]
    got = []
    for shard in one["shards"]:
        tokens = np.fromfile(tmp_path / "one" / "shards" / f"{shard['name']}.train.bin", dtype=np.uint16)
        ends = np.fromfile(tmp_path / "one" / "shards" / f"{shard['name']}.train.idx", dtype=np.uint64)
        assert len(ends) == shard["train_documents"] and (len(ends) == 0 or ends[-1] == len(tokens))
        got += [tokens[a:b].tolist() for a, b in zip([0, *ends[:-1]], ends)]
    assert got == expected
    assert np.array_equal(
        load_tokens(tmp_path / "one").to_array(),
        np.concatenate([np.array(doc, dtype=np.uint16) for doc in expected]),
    )


def _cli_pack(inputs, tokenizer_dir, out, *extra):
    command = [sys.executable, "-m", "jalm.cli", "pack", str(inputs), "--tokenizer", str(tokenizer_dir)]
    command += ["--out", str(out), "--val-fraction", "0.1", "--seq-len", "64", *extra]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_kill_9_during_pack_then_rerun_gives_the_uninterrupted_result(
    sharded_inputs, tokenizer_dir, tmp_path, kill_9
):
    small = ["--shard-mb", str(8_000 / 2**20)]  # ~57 shards of 8 kB, so the kill lands mid-run
    reference = _cli_pack(sharded_inputs, tokenizer_dir, tmp_path / "reference", *small)
    assert reference.wait(timeout=300) == 0, reference.stderr.read()
    # Progress in a log: input bytes against the total (percentage, time left), documents/s, tokens/s.
    last = reference.stderr.read().strip().splitlines()[-1]
    assert re.search(r"^pack: .*B \(100%\) \[.*<.*, [\d,.]+ docs/s, [\d,.]+ tokens/s\]$", last), last

    victim = _cli_pack(sharded_inputs, tokenizer_dir, tmp_path / "victim", *small)
    shards = tmp_path / "victim" / "shards"

    def markers():  # complete shards (a marker being written has a temporary name)
        return [p for p in shards.glob("*.json") if not p.name.startswith(".tmp-")] if shards.is_dir() else []

    kill_9(victim, lambda: bool(markers()), poll_s=0.005)
    assert not (tmp_path / "victim" / "meta.json").exists()
    done_before = len(markers())

    resumed = _cli_pack(sharded_inputs, tokenizer_dir, tmp_path / "victim", *small)
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    assert _pack_files(tmp_path / "victim") == _pack_files(tmp_path / "reference")
    assert _meta_without_timings(tmp_path / "victim") == _meta_without_timings(tmp_path / "reference")
    assert read_meta(tmp_path / "victim")["resumed_shards"] >= done_before > 0
    assert "from an earlier run" in resumed.stdout.read()


def test_long_documents_are_set_aside_counted_and_located(sharded_inputs, tokenizer_dir, tmp_path):
    meta = pack(
        [sharded_inputs],
        tokenizer_dir,
        tmp_path / "out",
        val_fraction=0.1,
        seq_len=64,
        progress=False,
        shard_bytes=SHARD_BYTES,
        max_doc_tokens=2000,
    )
    total = len(list(read_texts(sorted(sharded_inputs.iterdir()))))
    too_long = meta["skipped"]["too_long"]
    assert 0 < too_long < total
    assert meta["train_documents"] + meta["val_documents"] + too_long + meta["skipped"]["empty"] == total
    assert all("tokens)" in where for where in meta["skipped_examples"]["too_long"])
    streams = load_tokens(tmp_path / "out").to_array()
    ends = np.flatnonzero(streams == 2)
    assert np.diff(np.concatenate([[-1], ends])).max() <= 2000 + 1  # no document over the limit (+ </s>)


def test_a_rerun_with_other_settings_is_refused_and_format_1_still_reads(
    packed_dir, small_corpus, tokenizer_dir, tmp_path
):
    pack([small_corpus], tokenizer_dir, tmp_path / "out", val_fraction=0.1, seq_len=64, progress=False)
    with pytest.raises(JalmError, match=r"shards/small\.json: a shard packed from other settings"):
        pack([small_corpus], tokenizer_dir, tmp_path / "out", val_fraction=0.2, seq_len=64, progress=False)
    # A directory packed before shards (one train.bin / val.bin) reads as one stream, as before.
    old = tmp_path / "old"
    old.mkdir()
    tokens = load_tokens(packed_dir).to_array()
    tokens.tofile(old / "train.bin")
    (old / "val.bin").write_bytes(b"")
    meta = {k: v for k, v in read_meta(packed_dir).items() if k not in ("shards", "format")}
    (old / "meta.json").write_text(json.dumps(meta))
    assert np.array_equal(load_tokens(old).to_array(), tokens) and len(load_tokens(old, "val")) == 0


def test_a_bad_line_inside_a_byte_range_is_named_by_its_line_number(small_corpus, tokenizer_dir, tmp_path):
    lines = small_corpus.read_text(encoding="utf-8").splitlines(keepends=True)
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(lines[:50]) + "{not json\n" + "".join(lines[50:]), encoding="utf-8")
    with pytest.raises(JalmError, match=r"bad\.jsonl:51: not valid JSON"):
        pack([bad], tokenizer_dir, tmp_path / "out", progress=False, shard_bytes=SHARD_BYTES)


def test_ray_executor_packs_what_local_workers_pack(sharded_inputs, tokenizer_dir, tmp_path):
    import ray

    kwargs = {"val_fraction": 0.1, "seq_len": 64, "progress": False, "shard_bytes": SHARD_BYTES}
    pack([sharded_inputs], tokenizer_dir, tmp_path / "local", **kwargs)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        pack([sharded_inputs], tokenizer_dir, tmp_path / "ray", executor="ray", workers=2, **kwargs)
    finally:
        ray.shutdown()
    pids = {json.loads(p.read_text())["worker_pid"] for p in (tmp_path / "ray" / "shards").glob("*.json")}
    assert os.getpid() not in pids  # the jobs ran in Ray workers
    assert _pack_files(tmp_path / "ray") == _pack_files(tmp_path / "local")
    assert _meta_without_timings(tmp_path / "ray") == _meta_without_timings(tmp_path / "local")
