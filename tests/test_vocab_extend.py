"""`jalm tokenizer extend` and `--init-from` with the extended tokenizer: existing ids and embeddings kept,
new rows the mean of their pieces' rows, the new tokenizer.json exact against its own SentencePiece model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sentencepiece as spm
import torch
from sentencepiece import sentencepiece_model_pb2 as pb

from jalm.errors import JalmError
from jalm.jsonl import read_texts
from jalm.tokenizer.extend import extend_tokenizer


def _proto(path: Path) -> pb.ModelProto:
    proto = pb.ModelProto()
    proto.ParseFromString(path.read_bytes())
    return proto


@pytest.fixture(scope="module")
def extended(tiny_model_dir, small_corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("extended")
    extend_tokenizer(tiny_model_dir, [small_corpus], 300, out)
    return out


def test_every_existing_piece_keeps_its_id_and_the_new_ones_follow(tiny_model_dir, extended):
    base, new = _proto(tiny_model_dir / "spiece.model"), _proto(extended / "spiece.model")
    record = json.loads((extended / "jalm_extend.json").read_text())
    assert record["added"] == 300 and len(new.pieces) == len(base.pieces) + 300
    for old, kept in zip(base.pieces, new.pieces):
        assert (old.piece, old.score, old.type) == (kept.piece, kept.score, kept.type)
    assert {p.piece for p in new.pieces[len(base.pieces) :]}.isdisjoint({p.piece for p in base.pieces})
    sp = spm.SentencePieceProcessor(model_file=str(tiny_model_dir / "spiece.model"))
    for new_id, ids in list(record["splits"].items())[:50]:
        assert sp.decode(ids) == new.pieces[int(new_id)].piece.replace("▁", " ")


def test_extended_tokenizer_json_is_exact_and_shorter(small_corpus, tiny_model_dir, extended):
    from tokenizers import Tokenizer

    sp = spm.SentencePieceProcessor(model_file=str(extended / "spiece.model"))
    base = spm.SentencePieceProcessor(model_file=str(tiny_model_dir / "spiece.model"))
    fast = Tokenizer.from_file(str(extended / "tokenizer.json"))
    texts = [t for _, t in zip(range(300), read_texts([small_corpus]))]
    new_tokens = base_tokens = 0
    for text in texts:
        ids = sp.encode(text)
        assert fast.encode(text, add_special_tokens=False).ids == ids
        assert fast.decode(ids, skip_special_tokens=False) == sp.decode(ids) == text
        new_tokens, base_tokens = new_tokens + len(ids), base_tokens + len(base.encode(text))
    assert new_tokens < base_tokens


def test_init_from_with_the_extension_keeps_rows_and_means_the_new_ones(
    tiny_model_dir, small_corpus, extended, tmp_path
):
    from transformers import AutoModelForCausalLM

    from jalm.data import pack
    from jalm.export import export
    from jalm.model import build_model, get_preset, hf_config
    from jalm.train import train
    from jalm.train.config import default_config
    from jalm.train.loop import extension_splits, load_hf_weights

    vocab = len(_proto(extended / "spiece.model").pieces)
    splits = extension_splits(extended)
    model = build_model(hf_config(get_preset(str(tiny_model_dir)), vocab))
    load_hf_weights(model, tiny_model_dir, splits)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    old, new = base.get_input_embeddings().weight, model.get_input_embeddings().weight
    assert new.shape[0] == vocab and torch.equal(new[: old.shape[0]], old)
    for new_id, ids in splits.items():
        assert torch.allclose(new[new_id], old[ids].mean(0), atol=1e-6), new_id
    assert model.get_output_embeddings().weight is new  # tied head: the same (mean) rows
    for name, tensor in base.state_dict().items():
        if "embed" not in name and "lm_head" not in name:  # the (tied) vocabulary matrices grew
            assert torch.equal(model.state_dict()[name], tensor), name

    packed = tmp_path / "packed"
    pack([small_corpus], extended, packed, val_fraction=0.1, seq_len=64, progress=False)
    cfg = default_config(str(tiny_model_dir), max_steps=2, save_every=0, seq_len=64, micro_batch_size=4)
    cfg.init_from = str(tiny_model_dir)
    train(cfg, packed, tmp_path / "run", device="cpu", progress=False)
    out = export(tmp_path / "run", tmp_path / "model")
    assert json.loads((out / "config.json").read_text())["vocab_size"] == vocab
    assert (out / "spiece.model").read_bytes() == (extended / "spiece.model").read_bytes()


def test_bpe_base_gets_reachable_merges_and_byte_level_bpe_is_refused(small_corpus, tmp_path):
    texts = [t for _, t in zip(range(2000), read_texts([small_corpus]))]
    base = tmp_path / "bpe"
    base.mkdir()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts),
        model_prefix=str(base / "tokenizer"),
        model_type="bpe",
        vocab_size=2000,
        character_coverage=0.98,
        byte_fallback=True,
        minloglevel=2,
    )
    record = extend_tokenizer(base, [small_corpus], 200, tmp_path / "out", max_sentences=5000)
    old, new = _proto(base / "tokenizer.model"), _proto(tmp_path / "out" / "tokenizer.model")
    assert [p.piece for p in new.pieces[: len(old.pieces)]] == [p.piece for p in old.pieces]
    assert record["kind"] == "bpe" and 0 < record["added"] <= 200
    sp = spm.SentencePieceProcessor(model_file=str(tmp_path / "out" / "tokenizer.model"))
    produced = {i for text in texts[:500] for i in sp.encode(text)}
    assert any(i >= len(old.pieces) for i in produced)  # SentencePiece's BPE really uses the new merges
    (tmp_path / "bbpe").mkdir()
    (tmp_path / "bbpe" / "tokenizer.json").write_text("{}")
    with pytest.raises(JalmError, match="byte-level BPE"):
        extend_tokenizer(tmp_path / "bbpe", [small_corpus], 10, tmp_path / "x")


@pytest.mark.parametrize("tf4", [False, True])
def test_extended_tokenizer_is_exact_under_both_transformers_majors(small_corpus, extended, tf4):
    import os
    import subprocess
    import sys

    probe = Path(__file__).with_name("tf_compat_probe.py")
    texts = [t[:2000] for _, t in zip(range(100), read_texts([small_corpus]))]
    path = str(Path(sys.prefix) / "tf4") if tf4 else ""
    env = {**os.environ, "PYTHONPATH": path, "USE_TORCH": "0"}
    done = subprocess.run(
        [sys.executable, str(probe), str(extended)],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["transformers"].startswith("4." if tf4 else "5.")
    sp = spm.SentencePieceProcessor(model_file=str(extended / "spiece.model"))
    for mode in ("slow", "fast"):
        assert "error" not in result[mode], result[mode]
        assert result[mode]["ids"] == [sp.encode(t) for t in texts], mode
        assert result[mode]["decoded"] == texts, mode
