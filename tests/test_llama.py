"""The Llama family end to end: trained, exported (transformers' own LlamaForCausalLM on both majors),
GGUF-exported and read back, vLLM-checked, and tuned with `jalm sft` (grouped-query attention throughout)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from jalm.model import build_model, count_parameters, get_preset, hf_config
from jalm.train.metrics import read_metrics
from test_export import probe


@pytest.fixture(scope="module")
def llama_run(packed_dir, tmp_path_factory) -> Path:
    from jalm.train import train
    from jalm.train.config import default_config

    out = tmp_path_factory.mktemp("llama-run")
    cfg = default_config("test-llama-gqa", max_steps=30, save_every=15, dtype="float32")
    train(cfg, packed_dir, out, device="cpu", progress=False)
    return out


@pytest.fixture(scope="module")
def llama_dir(llama_run, tmp_path_factory) -> Path:
    from jalm.export import export

    return export(llama_run, tmp_path_factory.mktemp("llama") / "model")  # verifies logits itself


def test_llm_jp_presets_have_the_published_shapes_on_meta():
    config = hf_config(get_preset("llm-jp-3-1.8b"))
    assert (config.num_hidden_layers, config.hidden_size, config.intermediate_size) == (24, 2048, 7168)
    assert (config.num_attention_heads, config.num_key_value_heads, config.max_position_embeddings) == (
        16,
        16,
        4096,
    )
    assert (config.rms_norm_eps, config.hidden_act, config.tie_word_embeddings) == (1e-5, "silu", False)
    assert not config.attention_bias and not config.mlp_bias
    model = build_model(config, "meta")
    assert type(model).__name__ == "LlamaForCausalLM"
    # 2 × 99584 × 2048 embeddings + 24 × (4 × 2048² + 3 × 2048 × 7168 + 2 × 2048) + 2048
    assert count_parameters(model) == 2 * 99584 * 2048 + 24 * (4 * 2048**2 + 3 * 2048 * 7168 + 4096) + 2048
    gqa = build_model(hf_config(get_preset("llm-jp-3-1.8b-gqa")), "meta")
    assert gqa.model.layers[0].self_attn.k_proj.weight.shape == (4 * 128, 2048)


def test_llama_trains_and_transformers_4_and_5_load_it_alike(llama_run, llama_dir):
    losses = [r["loss"] for r in read_metrics(llama_run / "metrics.jsonl") if "loss" in r]
    assert losses[-1] < losses[0] - 1.0, losses
    config = json.loads((llama_dir / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and config["rope_theta"] == 10000
    assert config["num_key_value_heads"] == 2
    five, four = probe(llama_dir, tf4=False), probe(llama_dir, tf4=True)
    assert five["transformers"].startswith("5.") and four["transformers"].startswith("4.")
    assert five["class"] == four["class"] == "LlamaForCausalLM"
    assert four["prompt_ids"] == five["prompt_ids"] and four["greedy"] == five["greedy"]
    assert four["logits"] == pytest.approx(five["logits"], abs=1e-4)


def test_llama_gguf_is_llama_cpp_llama_and_holds_the_weights(llama_dir, tmp_path):
    import gguf
    from safetensors.torch import load_file

    from jalm.export.gguf import write_gguf

    out = tmp_path / "m.gguf"
    report = write_gguf(llama_dir, out, "f32", progress=False)
    assert report["architecture"] == "llama" and report["tokenizer"] == "plamo2"
    reader = gguf.GGUFReader(out)

    def field(key):
        return reader.get_field(key).contents()

    assert field("llama.attention.head_count") == 4 and field("llama.attention.head_count_kv") == 2
    assert field("llama.attention.layer_norm_rms_epsilon") == pytest.approx(1e-5)
    assert field("llama.rope.dimension_count") == 16 and field("tokenizer.ggml.model") == "plamo2"
    tensors = {
        t.name: np.asarray(t.data).reshape([int(n) for n in reversed(t.shape)]) for t in reader.tensors
    }
    weights = load_file(llama_dir / "model.safetensors")
    assert np.array_equal(tensors["output.weight"], weights["lm_head.weight"].numpy())
    assert np.array_equal(
        tensors["blk.1.ffn_gate.weight"], weights["model.layers.1.mlp.gate_proj.weight"].numpy()
    )
    # Q and K rows per head: transformers' halves [x0..x7 | y0..y7] → llama.cpp's pairs (x0 y0 x1 y1 ...)
    for name, heads in (("q", 4), ("k", 2)):
        hf = weights[f"model.layers.0.self_attn.{name}_proj.weight"].numpy().reshape(heads, 2, 8, 64)
        ours = tensors[f"blk.0.attn_{name}.weight"].reshape(heads, 8, 2, 64)
        assert np.array_equal(ours, hf.swapaxes(1, 2))


def test_vllm_check_passes_a_llama_export_and_finds_a_broken_one(llama_dir, tmp_path):
    import shutil

    from jalm.export.vllm_check import check_vllm

    assert [f for f in check_vllm(llama_dir) if f.level == "error"] == []
    broken = tmp_path / "broken"
    shutil.copytree(llama_dir, broken)
    config = json.loads((broken / "config.json").read_text())
    config["num_key_value_heads"] = 3
    (broken / "config.json").write_text(json.dumps(config))
    errors = [f.message for f in check_vllm(broken) if f.level == "error"]
    assert any("K/V groups" in m for m in errors) and any("wrong shape" in m for m in errors)


def test_lora_sft_on_a_llama_base_targets_every_projection(llama_dir, tmp_path):
    from jalm.export import export
    from jalm.sft.records import read_conversations
    from jalm.sft.train import sft
    from test_sft import DEMO_SFT, _config, _options

    conversations, _ = read_conversations([DEMO_SFT])
    data = tmp_path / "train.jsonl"
    data.write_text(
        "".join(json.dumps({"messages": c.messages}, ensure_ascii=False) + "\n" for c in conversations[:200])
    )
    summary = sft(
        _options(llama_dir, data, lora_rank=4),
        _config(True, max_steps=3),
        tmp_path / "run",
        "cpu",
        progress=False,
    )
    # rank × (in + out): q 64→64, k 64→32, v 64→32, o 64→64, gate 64→176, up 64→176, down 176→64; 2 layers
    per_layer = 4 * (128 + 96 + 96 + 128 + 240 + 240 + 240)
    assert summary["trainable_params"] == 2 * per_layer
    merged = export(tmp_path / "run", tmp_path / "model")  # verifies the merged logits itself
    assert json.loads((merged / "config.json").read_text())["architectures"] == ["LlamaForCausalLM"]
