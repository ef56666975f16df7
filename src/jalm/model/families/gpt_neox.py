"""GPT-NeoX: LINE's japanese-large-lm-3.6b layout (rotary on every head dimension, sequential residual,
LayerNorm, GELU MLP, biases, tied head) and jalm's small CPU presets."""

from __future__ import annotations

from pathlib import Path

from jalm.errors import JalmError
from jalm.model.families.base import Family, Finding, ModelPreset, Tensor
from jalm.model.families.common import ROTARY_BASE, check_activation, check_gelu, check_heads, rotary

PRESETS = (
    ModelPreset(
        "3.6b", "gpt_neox", 30, 3072, 32, 12288, description="line-corporation/japanese-large-lm-3.6b"
    ),
    ModelPreset(
        "small", "gpt_neox", 12, 768, 12, 3072, vocab_size=None, description="GPT-NeoX, ~85M + embeddings"
    ),
    ModelPreset("tiny", "gpt_neox", 6, 256, 8, 1024, 512, None, "GPT-NeoX for CPUs, 6.8M with 8k vocab"),
    ModelPreset("mini", "gpt_neox", 4, 128, 4, 512, 512, None, "GPT-NeoX for a few CPU minutes (the demo's)"),
    # For tests: trains in seconds.
    ModelPreset("test", "gpt_neox", 2, 64, 4, 256, 256, None, "2-layer GPT-NeoX for tests"),
)
BOS_ID = 2  # LINE's published GPT-NeoX config says bos 2


def hf_config(preset: ModelPreset, vocab: int):
    from transformers import GPTNeoXConfig

    return GPTNeoXConfig(
        vocab_size=vocab,
        hidden_size=preset.hidden,
        num_hidden_layers=preset.layers,
        num_attention_heads=preset.heads,
        intermediate_size=preset.ffn,
        hidden_act="gelu",
        max_position_embeddings=preset.max_positions,
        rotary_pct=1.0,
        rotary_emb_base=ROTARY_BASE,
        layer_norm_eps=1e-5,
        use_parallel_residual=False,
        tie_word_embeddings=True,
        bos_token_id=BOS_ID,
        eos_token_id=2,
        attention_dropout=0.0,
        hidden_dropout=0.0,
        architectures=["GPTNeoXForCausalLM"],
    )


def portable(data: dict) -> dict:
    """transformers 5 writes rotary settings only as `rope_parameters`; 4.x ignores that key and falls back
    to its default `rotary_pct` 0.25 — a silently different model. We write both spellings."""
    rope = data.get("rope_parameters") or {}
    data["rotary_pct"] = rope.get("partial_rotary_factor", data.get("rotary_pct", 1.0))
    data["rotary_emb_base"] = rope.get("rope_theta", data.get("rotary_emb_base", ROTARY_BASE))
    data.setdefault("rope_scaling", None)
    return data


def shape(config: dict) -> dict:
    return {
        "layers": config["num_hidden_layers"],
        "hidden": config["hidden_size"],
        "heads": config["num_attention_heads"],
        "ffn": config["intermediate_size"],
        "max_positions": config["max_position_embeddings"],
    }


def gguf_tensors(config: dict, model_dir: Path) -> list[Tensor]:
    check_gelu(config.get("hidden_act"), model_dir)
    if config.get("attention_bias") is False:
        raise JalmError(f"{model_dir}: GPT-NeoX without attention biases; llama.cpp's gptneox needs them")
    heads = config["num_attention_heads"]
    plan = [Tensor("token_embd.weight", "gpt_neox.embed_in.weight")]
    for i in range(config["num_hidden_layers"]):
        hf, blk = f"gpt_neox.layers.{i}.", f"blk.{i}."
        for ours, theirs in (
            ("attn_norm", "input_layernorm"),
            ("attn_qkv", "attention.query_key_value"),
            ("attn_output", "attention.dense"),
            ("ffn_norm", "post_attention_layernorm"),
            ("ffn_up", "mlp.dense_h_to_4h"),
            ("ffn_down", "mlp.dense_4h_to_h"),
        ):
            regroup = heads if ours == "attn_qkv" else 0
            plan.append(Tensor(f"{blk}{ours}.weight", f"{hf}{theirs}.weight", qkv_heads=regroup))
            plan.append(Tensor(f"{blk}{ours}.bias", f"{hf}{theirs}.bias", qkv_heads=regroup))
    tied = config.get("tie_word_embeddings", True)
    plan += [
        Tensor("output_norm.weight", "gpt_neox.final_layer_norm.weight"),
        Tensor("output_norm.bias", "gpt_neox.final_layer_norm.bias"),
        # llama.cpp's gptneox has no tied fallback: the embedding is written a second time
        Tensor("output.weight", "gpt_neox.embed_in.weight" if tied else "embed_out.weight"),
    ]
    return plan


def gguf_metadata(writer, config: dict) -> None:
    hidden, heads = config["hidden_size"], config["num_attention_heads"]
    fraction, base = rotary(config)
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(hidden)
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_rope_dimension_count(int(fraction * (hidden // heads)))
    writer.add_rope_freq_base(base)
    writer.add_parallel_residual(bool(config.get("use_parallel_residual", True)))
    writer.add_layer_norm_eps(config["layer_norm_eps"])


def vllm_weights(config: dict) -> dict[str, list[int]]:
    h, v, f = config["hidden_size"], config["vocab_size"], config["intermediate_size"]
    bias = config.get("attention_bias", True)
    names = {"gpt_neox.embed_in.weight": [v, h]}
    for i in range(config["num_hidden_layers"]):
        p = f"gpt_neox.layers.{i}."
        for norm in ("input_layernorm", "post_attention_layernorm"):
            names |= {p + norm + ".weight": [h], p + norm + ".bias": [h]}
        for module, shape_, has_bias in (
            ("attention.query_key_value", [3 * h, h], bias),
            ("attention.dense", [h, h], bias),
            ("mlp.dense_h_to_4h", [f, h], True),
            ("mlp.dense_4h_to_h", [h, f], True),
        ):
            names[p + module + ".weight"] = shape_
            if has_bias:
                names[p + module + ".bias"] = [shape_[0]]
    names |= {"gpt_neox.final_layer_norm.weight": [h], "gpt_neox.final_layer_norm.bias": [h]}
    if not config.get("tie_word_embeddings", False):
        names["embed_out.weight"] = [v, h]
    return names


def vllm_rename(shapes: dict, config: dict) -> dict:
    if config.get("tie_word_embeddings", False):
        shapes.pop("embed_out.weight", None)
    return shapes


def card(config: dict) -> tuple[str, str]:
    rope = config.get("rope_parameters") or {}
    pct = (
        config.get("rotary_pct")
        if config.get("rotary_pct") is not None
        else rope.get("partial_rotary_factor")
    )
    base = (
        config.get("rotary_emb_base") if config.get("rotary_emb_base") is not None else rope.get("rope_theta")
    )
    share = f"{float(pct):.0%}" if isinstance(pct, (int, float)) else "?"
    positions = f"rotary on {share} of each head's dims (base {base if base is not None else '?'})"
    return positions, "parallel" if config.get("use_parallel_residual") else "sequential"


def vllm_architecture(config: dict) -> list[Finding]:
    found = []
    hidden, heads = config["hidden_size"], config["num_attention_heads"]
    rope = config.get("rope_parameters") or {}
    if "rotary_pct" not in config:
        found.append(
            Finding("error", "config.json: no rotary_pct; transformers 4.x (and a vLLM on it) reads 0.25")
        )
    pct = config.get("rotary_pct", rope.get("partial_rotary_factor", 1.0))
    if "partial_rotary_factor" in rope and rope["partial_rotary_factor"] != pct:
        found.append(Finding("error", f"config.json: rotary_pct {pct} ≠ rope_parameters' factor"))
    if int(hidden // heads * pct) % 2:
        found.append(Finding("error", f"config.json: rotary width {int(hidden // heads * pct)} is odd"))
    found += check_heads(hidden, heads)
    found += check_activation(config.get("hidden_act", "gelu"))
    return found


FAMILY = Family(
    model_type="gpt_neox",
    architecture="GPTNeoXForCausalLM",
    presets=PRESETS,
    hf_config=hf_config,
    portable=portable,
    output_projections=("attention.dense", "mlp.dense_4h_to_h"),
    blocks="gpt_neox.layers",
    lora_targets=("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"),
    lora_fan_in_fan_out=False,
    shape=shape,
    gguf_arch="gptneox",
    gguf_tensors=gguf_tensors,
    gguf_metadata=gguf_metadata,
    vllm_weights=vllm_weights,
    vllm_architecture=vllm_architecture,
    vllm_rename=vllm_rename,
    bos_id=BOS_ID,
    saved_bytes={True: (22, 4), False: (36, 8)},  # measured: benchmarks/plan_memory.py
    card=card,
)
