"""Packing real text: no <s>, </s> after each document, a split by document, strict input errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from jalm.data import SequenceSampler, get_windows, load_tokens, num_windows, pack, read_meta
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
