"""Llama: RMSNorm, SwiGLU MLP, rotary on every head dimension, no biases, untied head, optional grouped-query
attention — the layout of LLM-jp-3, Sarashina2, Swallow and most Japanese models since 2024.

Mistral- and Qwen2/3-shaped checkpoints use the same module names (`model.layers`, `q_proj` ... `down_proj`),
so `--init-from` and `jalm sft` treat them as this family (`also`); export to GGUF and the vLLM check are
for model_type "llama" only.

The LLM-jp-3 presets copy the shapes of llm-jp/llm-jp-3-1.8b and -3.7b (config.json: layers, width, FFN,
heads, 4096 positions, RMSNorm 1e-5, rope θ 10000, untied, vocabulary 99,584); those numbers are written
from the published model cards, not read from the hub here (no network).
"""

from __future__ import annotations

from pathlib import Path

from jalm.errors import JalmError
from jalm.model.families.base import Family, Finding, ModelPreset, Tensor
from jalm.model.families.common import ROTARY_BASE, check_activation, check_heads, rotary

LLMJP_VOCAB = 99584
PRESETS = (
    ModelPreset(
        "llm-jp-3-1.8b", "llama", 24, 2048, 16, 7168, 4096, LLMJP_VOCAB, "llm-jp/llm-jp-3-1.8b shape"
    ),
    ModelPreset(
        "llm-jp-3-3.7b", "llama", 28, 3072, 24, 8192, 4096, LLMJP_VOCAB, "llm-jp/llm-jp-3-3.7b shape"
    ),
    # The 1.8b shape with grouped-query attention, 4 query heads per K/V head (as Llama 3 and LLM-jp-4 8B do).
    ModelPreset(
        "llm-jp-3-1.8b-gqa", "llama", 24, 2048, 16, 7168, 4096, LLMJP_VOCAB, "1.8b with 4 K/V heads", 4
    ),
    ModelPreset("tiny-llama", "llama", 6, 256, 8, 704, 512, None, "Llama layout for CPUs"),
    # For tests: trains in seconds.
    ModelPreset("test-llama", "llama", 2, 64, 4, 176, 256, None, "2-layer Llama for tests"),
    ModelPreset("test-llama-gqa", "llama", 2, 64, 4, 176, 256, None, "2-layer Llama, 2 K/V heads", 2),
)
BOS_ID = 1  # jalm's tokenizer: 1 <s>, 2 </s> (as LLM-jp's)


def hf_config(preset: ModelPreset, vocab: int):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab,
        hidden_size=preset.hidden,
        intermediate_size=preset.ffn,
        num_hidden_layers=preset.layers,
        num_attention_heads=preset.heads,
        num_key_value_heads=preset.kv_heads or preset.heads,
        hidden_act="silu",
        max_position_embeddings=preset.max_positions,
        rms_norm_eps=1e-5,
        rope_theta=float(ROTARY_BASE),
        attention_bias=False,
        mlp_bias=False,
        attention_dropout=0.0,
        tie_word_embeddings=False,
        bos_token_id=BOS_ID,
        eos_token_id=2,
        architectures=["LlamaForCausalLM"],
    )


def portable(data: dict) -> dict:
    """transformers 5 writes `rope_parameters`; 4.x reads `rope_theta` and `rope_scaling`. Both are written."""
    rope = data.get("rope_parameters") or {}
    data["rope_theta"] = rope.get("rope_theta", data.get("rope_theta", ROTARY_BASE))
    if rope.get("rope_type", "default") == "default":
        data["rope_scaling"] = None
    return data


def shape(config: dict) -> dict:
    return {
        "layers": config["num_hidden_layers"],
        "hidden": config["hidden_size"],
        "heads": config["num_attention_heads"],
        "ffn": config["intermediate_size"],
        "max_positions": config.get("max_position_embeddings", 2048),
        "kv_heads": config.get("num_key_value_heads") or config["num_attention_heads"],
    }


def _head_dim(config: dict) -> int:
    return config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]


def gguf_tensors(config: dict, model_dir: Path) -> list[Tensor]:
    if config.get("hidden_act", "silu") != "silu":
        raise JalmError(f"{model_dir}: activation {config.get('hidden_act')!r}; llama.cpp's llama uses SiLU")
    if config.get("attention_bias") or config.get("mlp_bias"):
        raise JalmError(f"{model_dir}: Llama with biases; llama.cpp's llama reads none")
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads") or heads
    plan = [Tensor("token_embd.weight", "model.embed_tokens.weight")]
    for i in range(config["num_hidden_layers"]):
        hf, blk = f"model.layers.{i}.", f"blk.{i}."
        plan += [
            Tensor(f"{blk}attn_norm.weight", f"{hf}input_layernorm.weight"),
            Tensor(f"{blk}attn_q.weight", f"{hf}self_attn.q_proj.weight", rope_heads=heads),
            Tensor(f"{blk}attn_k.weight", f"{hf}self_attn.k_proj.weight", rope_heads=kv_heads),
            Tensor(f"{blk}attn_v.weight", f"{hf}self_attn.v_proj.weight"),
            Tensor(f"{blk}attn_output.weight", f"{hf}self_attn.o_proj.weight"),
            Tensor(f"{blk}ffn_norm.weight", f"{hf}post_attention_layernorm.weight"),
            Tensor(f"{blk}ffn_gate.weight", f"{hf}mlp.gate_proj.weight"),
            Tensor(f"{blk}ffn_up.weight", f"{hf}mlp.up_proj.weight"),
            Tensor(f"{blk}ffn_down.weight", f"{hf}mlp.down_proj.weight"),
        ]
    plan.append(Tensor("output_norm.weight", "model.norm.weight"))
    if not config.get("tie_word_embeddings", False):
        plan.append(Tensor("output.weight", "lm_head.weight"))
    return plan  # tied: llama.cpp's llama reads token_embd as the output matrix when `output` is absent


def gguf_metadata(writer, config: dict) -> None:
    _, base = rotary(config)
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_head_count_kv(config.get("num_key_value_heads") or config["num_attention_heads"])
    writer.add_rope_dimension_count(_head_dim(config))
    writer.add_rope_freq_base(base)
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_vocab_size(config["vocab_size"])
    if _head_dim(config) != config["hidden_size"] // config["num_attention_heads"]:
        writer.add_key_length(_head_dim(config))
        writer.add_value_length(_head_dim(config))


def vllm_weights(config: dict) -> dict[str, list[int]]:
    h, v, f = config["hidden_size"], config["vocab_size"], config["intermediate_size"]
    d, heads = _head_dim(config), config["num_attention_heads"]
    kv = config.get("num_key_value_heads") or heads
    names = {"model.embed_tokens.weight": [v, h], "model.norm.weight": [h]}
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        names |= {p + "input_layernorm.weight": [h], p + "post_attention_layernorm.weight": [h]}
        for module, shape_, bias in (
            ("self_attn.q_proj", [heads * d, h], "attention_bias"),
            ("self_attn.k_proj", [kv * d, h], "attention_bias"),
            ("self_attn.v_proj", [kv * d, h], "attention_bias"),
            ("self_attn.o_proj", [h, heads * d], "attention_bias"),
            ("mlp.gate_proj", [f, h], "mlp_bias"),
            ("mlp.up_proj", [f, h], "mlp_bias"),
            ("mlp.down_proj", [h, f], "mlp_bias"),
        ):
            names[p + module + ".weight"] = shape_
            if config.get(bias):
                names[p + module + ".bias"] = [shape_[0]]
    if not config.get("tie_word_embeddings", False):
        names["lm_head.weight"] = [v, h]
    return names


def vllm_rename(shapes: dict, config: dict) -> dict:
    if config.get("tie_word_embeddings", False):  # vLLM's Llama skips lm_head when tied
        shapes.pop("lm_head.weight", None)
    return shapes


def card(config: dict) -> tuple[str, str]:
    rope = config.get("rope_parameters") or {}
    base = rope.get("rope_theta", config.get("rope_theta", "?"))
    heads = config["num_attention_heads"]
    kv = config.get("num_key_value_heads") or heads
    grouping = f", {kv} K/V heads (grouped-query)" if kv != heads else ""
    return f"rotary on every head dim (base {base}){grouping}", "sequential pre-RMSNorm, SwiGLU MLP"


def vllm_architecture(config: dict) -> list[Finding]:
    found = []
    heads = config["num_attention_heads"]
    kv = config.get("num_key_value_heads") or heads
    if heads % kv:
        found.append(Finding("error", f"config.json: {heads} heads do not split into {kv} K/V groups"))
    rope = config.get("rope_parameters") or {}
    theta = rope.get("rope_theta", config.get("rope_theta"))
    if "rope_theta" not in config and theta not in (None, ROTARY_BASE):
        found.append(
            Finding(
                "error",
                f"config.json: no rope_theta; transformers 4.x (and a vLLM on it) reads 10000, not {theta}",
            )
        )
    found += check_heads(config["hidden_size"], heads, config.get("head_dim"))
    found += check_activation(config.get("hidden_act", "silu"))
    return found


FAMILY = Family(
    model_type="llama",
    architecture="LlamaForCausalLM",
    presets=PRESETS,
    hf_config=hf_config,
    portable=portable,
    output_projections=("self_attn.o_proj", "mlp.down_proj"),
    blocks="model.layers",
    lora_targets=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    lora_fan_in_fan_out=False,
    shape=shape,
    gguf_arch="llama",
    gguf_tensors=gguf_tensors,
    gguf_metadata=gguf_metadata,
    vllm_weights=vllm_weights,
    vllm_architecture=vllm_architecture,
    vllm_rename=vllm_rename,
    bos_id=BOS_ID,
    # Not measured: GPT-NeoX's hidden coefficient, and SwiGLU keeps gate, up, SiLU(gate) and their product.
    saved_bytes={True: (22, 8), False: (36, 16)},
    also=("mistral", "qwen2", "qwen3"),
    card=card,
)
