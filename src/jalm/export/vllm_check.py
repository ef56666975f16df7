"""`jalm export MODEL_DIR --check vllm`: does a model directory meet what vLLM reads for GPT-2 and GPT-NeoX?

vLLM has its own implementation of both architectures and its own weight loader; a directory that
transformers loads can still fail there, or, worse, load and compute something else. What is checked here
comes from vLLM's `model_executor/models/gpt2.py` and `gpt_neox.py`, its generation-config handling and its
attention backends (read from vLLM's source, 2025–2026 versions; `benchmarks/gpu_vllm.py` is the end-to-end
check on a GPU):

- GPT-2: vLLM asserts `add_cross_attention`, `scale_attn_by_inverse_layer_idx` and `reorder_and_upcast_attn`
  are off, always scales attention by 1/sqrt(head size), and its loader skips `lm_head.weight`: an untied
  GPT-2 would load with its output layer never set.
- GPT-NeoX: the rotary width is int(head size × rotary_pct) and must be even; the config must say
  `rotary_pct` for transformers 4.x readers as well as `rope_parameters` for 5.x.
- Weights: every tensor name must be one vLLM's loader knows (an unknown name is a KeyError there), and
  every parameter must be present (the tied output layer aside).
- Attention: vLLM's FlashAttention backend supports head sizes 32, 64, …, 256; another size falls back to a
  slower backend or is refused.
- generation_config.json: vLLM applies its temperature, top_p, top_k, min_p, repetition_penalty and
  max_new_tokens as default sampling parameters even when `do_sample` is false, where transformers decodes
  greedily: the same request would sample in one and not the other.
- Tokenizer: vLLM uses tokenizer.json (the fast tokenizer); `</s>` must be id 2 as the configs say; the chat
  endpoint needs a `chat_template`.

Only JSON and the safetensors headers are read: no weights are loaded and torch is not needed.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

from jalm.errors import JalmError

ARCHITECTURES = {"GPT2LMHeadModel": "gpt2", "GPTNeoXForCausalLM": "gpt_neox"}
FLASH_ATTENTION_HEAD_SIZES = (32, 64, 96, 128, 160, 192, 224, 256)
# vLLM's get_act_fn names (the ones these architectures use)
ACTIVATIONS = {"gelu", "gelu_new", "gelu_fast", "gelu_pytorch_tanh", "quick_gelu", "relu"}
VLLM_SAMPLING_DEFAULTS = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty", "max_new_tokens")
# Tensors HF checkpoints may hold that vLLM's loaders skip on purpose.
SKIPPED_SUFFIXES = (".attn.bias", ".attn.masked_bias", "attention.bias", "attention.masked_bias", "inv_freq")


@dataclass(frozen=True)
class Finding:
    level: str  # "error": vLLM would refuse it or compute another model; "warning": works, but see why
    message: str


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise JalmError(f"{path}: missing") from None
    except (OSError, json.JSONDecodeError) as error:
        raise JalmError(f"{path}: cannot read it as JSON ({error})") from None


def safetensors_shapes(model_dir: Path) -> dict[str, list[int]]:
    """Tensor name → shape from the safetensors headers (single file or sharded index)."""
    index = model_dir / "model.safetensors.index.json"
    files = sorted(set(_json(index)["weight_map"].values())) if index.exists() else ["model.safetensors"]
    shapes: dict[str, list[int]] = {}
    for name in files:
        path = model_dir / name
        try:
            with path.open("rb") as handle:
                (size,) = struct.unpack("<Q", handle.read(8))
                header = json.loads(handle.read(size))
        except FileNotFoundError:
            raise JalmError(f"{path}: missing (vLLM loads safetensors weights)") from None
        except (struct.error, json.JSONDecodeError, UnicodeDecodeError):
            raise JalmError(f"{path}: not a safetensors file") from None
        shapes.update({key: value["shape"] for key, value in header.items() if key != "__metadata__"})
    return shapes


def expected_gpt2(config: dict) -> dict[str, list[int]]:
    h, v = config["n_embd"], config["vocab_size"]
    inner = config.get("n_inner") or 4 * h
    names = {"transformer.wte.weight": [v, h], "transformer.wpe.weight": [config["n_positions"], h]}
    for i in range(config["n_layer"]):
        p = f"transformer.h.{i}."
        for norm in ("ln_1", "ln_2"):
            names |= {p + norm + ".weight": [h], p + norm + ".bias": [h]}
        # HF's GPT-2 uses Conv1D: weights are stored (in, out); vLLM transposes them on load
        for module, shape in (("attn.c_attn", [h, 3 * h]), ("attn.c_proj", [h, h])):
            names |= {p + module + ".weight": shape, p + module + ".bias": [shape[1]]}
        for module, shape in (("mlp.c_fc", [h, inner]), ("mlp.c_proj", [inner, h])):
            names |= {p + module + ".weight": shape, p + module + ".bias": [shape[1]]}
    names |= {"transformer.ln_f.weight": [h], "transformer.ln_f.bias": [h]}
    return names


def expected_gpt_neox(config: dict) -> dict[str, list[int]]:
    h, v, f = config["hidden_size"], config["vocab_size"], config["intermediate_size"]
    bias = config.get("attention_bias", True)
    names = {"gpt_neox.embed_in.weight": [v, h]}
    for i in range(config["num_hidden_layers"]):
        p = f"gpt_neox.layers.{i}."
        for norm in ("input_layernorm", "post_attention_layernorm"):
            names |= {p + norm + ".weight": [h], p + norm + ".bias": [h]}
        for module, shape, has_bias in (
            ("attention.query_key_value", [3 * h, h], bias),
            ("attention.dense", [h, h], bias),
            ("mlp.dense_h_to_4h", [f, h], True),
            ("mlp.dense_4h_to_h", [h, f], True),
        ):
            names[p + module + ".weight"] = shape
            if has_bias:
                names[p + module + ".bias"] = [shape[0]]
    names |= {"gpt_neox.final_layer_norm.weight": [h], "gpt_neox.final_layer_norm.bias": [h]}
    if not config.get("tie_word_embeddings", False):
        names["embed_out.weight"] = [v, h]
    return names


def check_architecture(config: dict, layout: str) -> list[Finding]:
    found = []
    if layout == "gpt2":
        hidden, heads = config["n_embd"], config["n_head"]
        for flag in ("add_cross_attention", "scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn"):
            if config.get(flag):
                found.append(Finding("error", f"config.json: {flag} is on; vLLM's GPT-2 asserts it is off"))
        if not config.get("scale_attn_weights", True):
            found.append(Finding("error", "config.json: scale_attn_weights is off; vLLM always scales"))
        if not config.get("tie_word_embeddings", True):
            found.append(
                Finding(
                    "error", "config.json: untied GPT-2; vLLM's loader skips lm_head.weight (never loaded)"
                )
            )
        activation = config.get("activation_function", "gelu_new")
    else:
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
        activation = config.get("hidden_act", "gelu")
    if hidden % heads:
        found.append(Finding("error", f"config.json: hidden size {hidden} not divisible by {heads} heads"))
    elif hidden // heads not in FLASH_ATTENTION_HEAD_SIZES:
        found.append(
            Finding(
                "warning",
                f"head size {hidden // heads} is not one of FlashAttention's "
                f"{', '.join(map(str, FLASH_ATTENTION_HEAD_SIZES))}: vLLM falls back to a slower backend or "
                "refuses",
            )
        )
    if activation not in ACTIVATIONS:
        found.append(Finding("error", f"config.json: activation {activation!r} is not one vLLM implements"))
    return found


def check_weights(model_dir: Path, config: dict, layout: str) -> list[Finding]:
    shapes = safetensors_shapes(model_dir)
    if layout == "gpt2":  # vLLM adds the prefix to bare names and skips lm_head (tied)
        shapes = {
            (k if k.startswith("transformer.") or k.startswith("lm_head") else "transformer." + k): s
            for k, s in shapes.items()
        }
        shapes.pop("lm_head.weight", None)
        expected = expected_gpt2(config)
    else:
        expected = expected_gpt_neox(config)
        if config.get("tie_word_embeddings", False):
            shapes.pop("embed_out.weight", None)
    found = []
    unknown = sorted(k for k in shapes if k not in expected and not k.endswith(SKIPPED_SUFFIXES))
    missing = sorted(k for k in expected if k not in shapes)
    wrong = sorted(k for k in expected if k in shapes and list(shapes[k]) != expected[k])
    for names, what in (
        (unknown, "unknown to vLLM's loader"),
        (missing, "missing"),
        (wrong, "of the wrong shape"),
    ):
        if names:
            shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            found.append(Finding("error", f"weights: {len(names)} tensors {what}: {shown}"))
    return found


def check_generation_config(model_dir: Path) -> list[Finding]:
    path = model_dir / "generation_config.json"
    if not path.exists():
        return [Finding("warning", "no generation_config.json: vLLM stops only at the tokenizer's </s>")]
    config = _json(path)
    found = []
    eos = config.get("eos_token_id")
    if 2 not in (eos if isinstance(eos, list) else [eos]):
        found.append(
            Finding("error", f"generation_config.json: eos_token_id {eos!r} does not include </s> (2)")
        )
    applied = [key for key in VLLM_SAMPLING_DEFAULTS if key in config]
    if applied:
        found.append(
            Finding(
                "warning",
                f"generation_config.json sets {', '.join(applied)}: vLLM applies them as default sampling "
                f"parameters even with do_sample={config.get('do_sample', False)} (start vLLM with "
                "--generation-config vllm to ignore them)",
            )
        )
    return found


def check_tokenizer(model_dir: Path, config: dict, layout: str) -> list[Finding]:
    found = []
    if not (model_dir / "tokenizer.json").exists():
        return [Finding("error", "no tokenizer.json: vLLM's default (fast) tokenizer cannot load")]
    tokenizer = _json(model_dir / "tokenizer.json")
    vocab = tokenizer.get("model", {}).get("vocab") or []
    pieces = [entry[0] if isinstance(entry, list) else entry for entry in vocab]
    if len(pieces) > 2 and pieces[2] != "</s>":
        found.append(Finding("error", f"tokenizer.json: id 2 is {pieces[2]!r}, not </s>"))
    if len(pieces) > config["vocab_size"]:
        found.append(
            Finding(
                "error", f"tokenizer has {len(pieces)} pieces, the model only {config['vocab_size']} rows"
            )
        )
    tokenizer_config = _json(model_dir / "tokenizer_config.json")
    if not tokenizer_config.get("chat_template") and not (model_dir / "chat_template.jinja").exists():
        found.append(
            Finding(
                "warning", "no chat_template: /v1/chat/completions needs --chat-template (completions work)"
            )
        )
    positions = config.get("n_positions" if layout == "gpt2" else "max_position_embeddings")
    if tokenizer_config.get("model_max_length") not in (None, positions):
        found.append(
            Finding(
                "warning",
                f"tokenizer model_max_length {tokenizer_config['model_max_length']} ≠ the model's {positions} "
                "positions (vLLM's max_model_len follows the model)",
            )
        )
    return found


def check_vllm(model_dir: str | Path) -> list[Finding]:
    """What vLLM would make of this model directory: errors and warnings, each one line."""
    model_dir = Path(model_dir)
    config = _json(model_dir / "config.json")
    architectures = config.get("architectures") or []
    if len(architectures) != 1 or architectures[0] not in ARCHITECTURES:
        return [
            Finding(
                "error", f"config.json: architectures {architectures} is not one of {sorted(ARCHITECTURES)}"
            )
        ]
    layout = ARCHITECTURES[architectures[0]]
    if config.get("model_type") != layout:
        return [Finding("error", f"config.json: model_type {config.get('model_type')!r} ≠ {layout!r}")]
    return (
        check_architecture(config, layout)
        + check_weights(model_dir, config, layout)
        + check_generation_config(model_dir)
        + check_tokenizer(model_dir, config, layout)
    )
