"""GPT-2: LINE's japanese-large-lm-1.7b layout (learned positions, LayerNorm, GELU MLP, biases, tied head)."""

from __future__ import annotations

from pathlib import Path

from jalm.errors import JalmError
from jalm.model.families.base import Family, Finding, ModelPreset, Tensor
from jalm.model.families.common import check_activation, check_gelu, check_heads

PRESETS = (
    ModelPreset("1.7b", "gpt2", 24, 2304, 24, 9216, description="line-corporation/japanese-large-lm-1.7b"),
    ModelPreset("tiny-gpt2", "gpt2", 6, 256, 8, 1024, 512, None, "GPT-2 layout for CPUs"),
    # For tests: trains in seconds.
    ModelPreset("test-gpt2", "gpt2", 2, 64, 4, 256, 256, None, "2-layer GPT-2 for tests"),
)
BOS_ID = 1  # LINE's published GPT-2 config says bos 1 (GPT-NeoX's says 2); both say eos 2, no pad id


def hf_config(preset: ModelPreset, vocab: int):
    from transformers import GPT2Config

    return GPT2Config(
        vocab_size=vocab,
        n_positions=preset.max_positions,
        n_embd=preset.hidden,
        n_layer=preset.layers,
        n_head=preset.heads,
        n_inner=preset.ffn,
        activation_function="gelu",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        layer_norm_epsilon=1e-5,
        bos_token_id=BOS_ID,
        eos_token_id=2,
        tie_word_embeddings=True,
        architectures=["GPT2LMHeadModel"],
    )


def shape(config: dict) -> dict:
    hidden = config["n_embd"]
    return {
        "layers": config["n_layer"],
        "hidden": hidden,
        "heads": config["n_head"],
        "ffn": config.get("n_inner") or 4 * hidden,
        "max_positions": config["n_positions"],
    }


def gguf_tensors(config: dict, model_dir: Path) -> list[Tensor]:
    check_gelu(config.get("activation_function"), model_dir)
    if config.get("scale_attn_by_inverse_layer_idx") or config.get("reorder_and_upcast_attn"):
        raise JalmError(f"{model_dir}: GPT-2 attention variants llama.cpp does not implement")
    if config.get("scale_attn_weights") is False:
        raise JalmError(f"{model_dir}: unscaled GPT-2 attention; llama.cpp scales by 1/sqrt(head size)")
    plan = [
        Tensor("token_embd.weight", "transformer.wte.weight"),
        Tensor("position_embd.weight", "transformer.wpe.weight"),
    ]
    for i in range(config["n_layer"]):
        hf, blk = f"transformer.h.{i}.", f"blk.{i}."
        for ours, theirs, conv1d in (
            ("attn_norm", "ln_1", False),
            ("attn_qkv", "attn.c_attn", True),
            ("attn_output", "attn.c_proj", True),
            ("ffn_norm", "ln_2", False),
            ("ffn_up", "mlp.c_fc", True),
            ("ffn_down", "mlp.c_proj", True),
        ):
            plan.append(Tensor(f"{blk}{ours}.weight", f"{hf}{theirs}.weight", transpose=conv1d))
            plan.append(Tensor(f"{blk}{ours}.bias", f"{hf}{theirs}.bias"))
    plan += [
        Tensor("output_norm.weight", "transformer.ln_f.weight"),
        Tensor("output_norm.bias", "transformer.ln_f.bias"),
    ]
    if not config.get("tie_word_embeddings", True):
        plan.append(Tensor("output.weight", "lm_head.weight"))
    return plan  # tied: llama.cpp's gpt2 reads token_embd as the output matrix


def gguf_metadata(writer, config: dict) -> None:
    hidden = config["n_embd"]
    writer.add_context_length(config["n_positions"])
    writer.add_embedding_length(hidden)
    writer.add_block_count(config["n_layer"])
    writer.add_feed_forward_length(config.get("n_inner") or 4 * hidden)
    writer.add_head_count(config["n_head"])
    writer.add_layer_norm_eps(config["layer_norm_epsilon"])


def vllm_weights(config: dict) -> dict[str, list[int]]:
    h, v = config["n_embd"], config["vocab_size"]
    inner = config.get("n_inner") or 4 * h
    names = {"transformer.wte.weight": [v, h], "transformer.wpe.weight": [config["n_positions"], h]}
    for i in range(config["n_layer"]):
        p = f"transformer.h.{i}."
        for norm in ("ln_1", "ln_2"):
            names |= {p + norm + ".weight": [h], p + norm + ".bias": [h]}
        # HF's GPT-2 uses Conv1D: weights are stored (in, out); vLLM transposes them on load
        for module, shape_ in (("attn.c_attn", [h, 3 * h]), ("attn.c_proj", [h, h])):
            names |= {p + module + ".weight": shape_, p + module + ".bias": [shape_[1]]}
        for module, shape_ in (("mlp.c_fc", [h, inner]), ("mlp.c_proj", [inner, h])):
            names |= {p + module + ".weight": shape_, p + module + ".bias": [shape_[1]]}
    names |= {"transformer.ln_f.weight": [h], "transformer.ln_f.bias": [h]}
    return names


def vllm_rename(shapes: dict, config: dict) -> dict:
    """vLLM adds the prefix to bare names and skips lm_head (tied)."""
    shapes = {
        (k if k.startswith("transformer.") or k.startswith("lm_head") else "transformer." + k): s
        for k, s in shapes.items()
    }
    shapes.pop("lm_head.weight", None)
    return shapes


def vllm_architecture(config: dict) -> list[Finding]:
    found = []
    for flag in ("add_cross_attention", "scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn"):
        if config.get(flag):
            found.append(Finding("error", f"config.json: {flag} is on; vLLM's GPT-2 asserts it is off"))
    if not config.get("scale_attn_weights", True):
        found.append(Finding("error", "config.json: scale_attn_weights is off; vLLM always scales"))
    if not config.get("tie_word_embeddings", True):
        found.append(
            Finding("error", "config.json: untied GPT-2; vLLM's loader skips lm_head.weight (never loaded)")
        )
    found += check_heads(config["n_embd"], config["n_head"])
    found += check_activation(config.get("activation_function", "gelu_new"))
    return found


FAMILY = Family(
    model_type="gpt2",
    architecture="GPT2LMHeadModel",
    presets=PRESETS,
    hf_config=hf_config,
    portable=lambda data: data,
    output_projections=("attn.c_proj", "mlp.c_proj"),
    blocks="transformer.h",
    # GPT-2's linear maps are Conv1D (weights stored input × output): peft's fan_in_fan_out
    lora_targets=("c_attn", "c_proj", "c_fc"),
    lora_fan_in_fan_out=True,
    shape=shape,
    gguf_arch="gpt2",
    gguf_tensors=gguf_tensors,
    gguf_metadata=gguf_metadata,
    vllm_weights=vllm_weights,
    vllm_architecture=vllm_architecture,
    vllm_rename=vllm_rename,
    bos_id=BOS_ID,
    saved_bytes={True: (24, 4), False: (40, 8)},  # measured: benchmarks/plan_memory.py
    card=lambda config: ("learned absolute", "sequential pre-LN"),
)
