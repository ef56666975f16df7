"""Continued pretraining (`jalm train --init-from DIR`, no --preset): a directory in LINE's release layout
keeps its architecture and tokenizer files, and a run's own export continues where the run stopped."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from jalm.errors import JalmError
from jalm.train import train
from jalm.train.config import default_config
from jalm.train.metrics import read_metrics

PROMPT = "おはようございます、今日の天気は"
# LINE's japanese-large-lm tokenizer_config.json: the slow T5Tokenizer over spiece.model, no tokenizer.json.
LINE_TOKENIZER_CONFIG = {
    "tokenizer_class": "T5Tokenizer",
    "unk_token": "<unk>",
    "bos_token": "<s>",
    "eos_token": "</s>",
    "pad_token": "<pad>",
    "sep_token": "<sep>",
    "extra_ids": 0,
    "additional_special_tokens": [],
    "sp_model_kwargs": {},
    "model_max_length": 2048,
}
TOKENIZER_FILES = ("spiece.model", "tokenizer_config.json", "special_tokens_map.json")


def losses(run_dir: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_metrics(run_dir / "metrics.jsonl") if "loss" in r}


def line_layout(model_dir: Path, out: Path) -> Path:
    """A jalm export rewritten as LINE released theirs: pytorch_model.bin, spiece.model, T5Tokenizer."""
    from safetensors.torch import load_file

    out.mkdir()
    shutil.copy2(model_dir / "config.json", out / "config.json")
    shutil.copy2(model_dir / "spiece.model", out / "spiece.model")
    torch.save(load_file(model_dir / "model.safetensors"), out / "pytorch_model.bin")
    (out / "tokenizer_config.json").write_text(json.dumps(LINE_TOKENIZER_CONFIG, indent=2))
    specials = {k: v for k, v in LINE_TOKENIZER_CONFIG.items() if k.endswith("_token")}
    (out / "special_tokens_map.json").write_text(json.dumps(specials, indent=2))
    return out


def test_a_line_layout_model_continues_pretraining_and_keeps_its_tokenizer(
    tiny_model_dir, small_corpus, tmp_path
):
    from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline, set_seed

    from jalm.cli import main
    from jalm.export import export

    base = line_layout(tiny_model_dir, tmp_path / "line")
    assert not (base / "tokenizer.json").exists() and not (base / "model.safetensors").exists()
    packed = tmp_path / "packed"
    assert (
        main(
            [
                "pack",
                str(small_corpus),
                "--tokenizer",
                str(base),
                "--out",
                str(packed),
                "--seq-len",
                "64",
            ]
        )
        == 0
    )
    assert not (
        packed / "tokenizer" / "pytorch_model.bin"
    ).exists()  # a model directory's weights stay behind
    cfg = default_config(
        str(base), max_steps=4, save_every=0, warmup_steps=2, seq_len=64, micro_batch_size=4, lr=1e-3
    )
    assert cfg.preset == str(base)
    cfg.init_from = str(base)
    train(cfg, packed, tmp_path / "run", device="cpu", progress=False)
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["model_config"]["model_type"] == "gpt_neox"
    out = export(tmp_path / "run", tmp_path / "model")  # verifies its logits against the checkpoint
    for name in TOKENIZER_FILES:
        assert (out / name).read_bytes() == (base / name).read_bytes(), name
    assert not (out / "tokenizer.json").exists()
    # LINE's model-card snippet, on the continued model
    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out, use_fast=False)
    generator = pipeline("text-generation", model=model, tokenizer=tokenizer, device=-1)
    set_seed(101)
    text = generator(
        PROMPT, max_length=30, do_sample=True, pad_token_id=tokenizer.pad_token_id, num_return_sequences=5
    )
    assert len(text) == 5 and all(t["generated_text"].startswith(PROMPT) for t in text)
    assert type(model).__name__ == "GPTNeoXForCausalLM"
    # ... and the weights moved: it is the base, continued
    base_model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert not torch.equal(model.gpt_neox.embed_in.weight, base_model.gpt_neox.embed_in.weight)


def test_init_from_a_runs_own_export_continues_where_the_run_stopped(
    tiny_run_dir, tiny_model_dir, packed_dir, tmp_path
):
    """No --preset: the export's own architecture. After the continued run's first step (warm-up: lr 1e-5)
    its validation loss is the stopped run's final one within 0.02 nats; its first training loss is far
    below the scratch run's first (> 1 nat)."""
    cfg = default_config(
        str(tiny_model_dir),
        max_steps=1,
        save_every=0,
        log_every=1,
        eval_every=1,
        eval_batches=2,
        warmup_steps=10,
        seq_len=64,
        micro_batch_size=4,
    )
    cfg.init_from = str(tiny_model_dir)
    assert cfg.lr == 1e-4 and cfg.warmup_steps == 10  # the continued-pretraining defaults, overridable
    train(cfg, packed_dir, tmp_path / "continued", device="cpu", progress=False)
    stopped = [r["val_loss"] for r in read_metrics(tiny_run_dir / "metrics.jsonl") if "val_loss" in r][-1]
    continued = [
        r["val_loss"] for r in read_metrics(tmp_path / "continued" / "metrics.jsonl") if "val_loss" in r
    ]
    assert abs(continued[0] - stopped) < 0.02, (continued, stopped)
    before, after = losses(tiny_run_dir), losses(tmp_path / "continued")
    assert before[1] - after[1] > 1.0, (before[1], after[1])


def test_data_packed_with_another_tokenizer_is_refused(tiny_model_dir, packed_dir, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(tiny_model_dir, other)
    from sentencepiece import sentencepiece_model_pb2 as pb

    proto = pb.ModelProto()
    proto.ParseFromString((other / "spiece.model").read_bytes())
    proto.pieces[100].score -= 1.0
    (other / "spiece.model").write_bytes(proto.SerializeToString())
    cfg = default_config(str(other), max_steps=1, seq_len=64)
    cfg.init_from = str(other)
    with pytest.raises(JalmError, match="packed with another tokenizer"):
        train(cfg, packed_dir, tmp_path / "run", device="cpu", progress=False)


def test_pickled_code_in_a_bin_file_is_refused_unrun(tmp_path):
    import pickle

    from jalm.model.weights import read_state_dict

    class Boom:
        def __reduce__(self):
            return (print, ("ran pickled code",))

    (tmp_path / "pytorch_model.bin").write_bytes(pickle.dumps({"x": Boom()}))
    with pytest.raises(JalmError, match="refused unread"):
        read_state_dict(tmp_path)


def test_gguf_export_reads_a_line_layout_bin_file(tiny_model_dir, tmp_path):
    """LINE's release has only pytorch_model.bin; GGUF export reads it (weights_only) like safetensors."""
    from jalm.export.gguf import write_gguf

    base = line_layout(tiny_model_dir, tmp_path / "line")
    from_bin = write_gguf(base, tmp_path / "bin.gguf", "f32", progress=False)
    from_safetensors = write_gguf(tiny_model_dir, tmp_path / "st.gguf", "f32", progress=False)
    import gguf
    import numpy as np

    assert from_bin["tensors"] == from_safetensors["tensors"]
    bin_tensors = {t.name: t.data for t in gguf.GGUFReader(tmp_path / "bin.gguf").tensors}
    st_tensors = {t.name: t.data for t in gguf.GGUFReader(tmp_path / "st.gguf").tensors}
    assert bin_tensors.keys() == st_tensors.keys()
    assert all(np.array_equal(bin_tensors[n], st_tensors[n]) for n in bin_tensors)  # the metadata differs


def test_a_qwen2_shaped_model_with_a_byte_level_bpe_tokenizer_continues(small_corpus, tmp_path):
    """Qwen2 (Llama's module names, QKV biases, tied) and a tokenizer.json-only byte-level BPE tokenizer,
    as Qwen and Llama 3 ship: packed with --tokenizer DIR, continued, exported with tokenizer.json as it was."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen2Config

    from jalm.data import pack
    from jalm.export import export
    from jalm.jsonl import read_texts
    from jalm.model import build_model
    from jalm.model.build import portable_config_dict

    base = tmp_path / "qwen"
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator([t for _, t in zip(range(300), read_texts([small_corpus]))], trainer)
    config = Qwen2Config(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=64,
        intermediate_size=176,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.token_to_id("<|endoftext|>"),
    )
    build_model(config).save_pretrained(base)
    (base / "config.json").write_text(json.dumps(portable_config_dict(config)))
    tokenizer.save(str(base / "tokenizer.json"))
    tokenizer_config = {"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "<|endoftext|>"}
    (base / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))

    packed = tmp_path / "packed"
    meta = pack([small_corpus], base, packed, val_fraction=0.1, seq_len=64, progress=False)
    assert meta["eos_id"] == tokenizer.token_to_id("<|endoftext|>")
    cfg = default_config(str(base), max_steps=3, save_every=0, log_every=1, seq_len=64, micro_batch_size=4)
    cfg.init_from = str(base)
    train(cfg, packed, tmp_path / "run", device="cpu", progress=False)
    out = export(tmp_path / "run", tmp_path / "model")
    assert (out / "tokenizer.json").read_bytes() == (base / "tokenizer.json").read_bytes()
    assert type(AutoModelForCausalLM.from_pretrained(out)).__name__ == "Qwen2ForCausalLM"
    assert AutoTokenizer.from_pretrained(out).encode(PROMPT) == tokenizer.encode(PROMPT).ids
    with pytest.raises(JalmError, match="byte-level BPE"):
        from jalm.tokenizer.extend import extend_tokenizer

        extend_tokenizer(base, [small_corpus], 10, tmp_path / "x")
