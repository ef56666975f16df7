"""`jalm export MODEL_DIR --check vllm`: does a model directory meet what vLLM reads for its architecture?

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

- Llama: vLLM's `llama.py` loader expects `model.layers.N.self_attn.{q,k,v,o}_proj` and
  `mlp.{gate,up,down}_proj`, skips `lm_head.weight` when tied; K/V heads must divide the heads;
  transformers 4.x reads `rope_theta` (5.x `rope_parameters`).

What each architecture expects lives in its family (jalm.model.families: `vllm_weights`,
`vllm_architecture`, `vllm_rename`); this module applies them. Only JSON and the safetensors headers are
read: no weights are loaded and torch is not needed.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from jalm.errors import JalmError
from jalm.model.families import FAMILIES, Finding, family

ARCHITECTURES = {f.architecture: f.model_type for f in FAMILIES.values()}
VLLM_SAMPLING_DEFAULTS = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty", "max_new_tokens")
# Tensors HF checkpoints may hold that vLLM's loaders skip on purpose.
SKIPPED_SUFFIXES = (".attn.bias", ".attn.masked_bias", "attention.bias", "attention.masked_bias", "inv_freq")
__all__ = ["Finding", "check_vllm"]


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


def check_architecture(config: dict, layout: str) -> list[Finding]:
    return family(layout).vllm_architecture(config)


def check_weights(model_dir: Path, config: dict, layout: str) -> list[Finding]:
    fam = family(layout)
    shapes = fam.vllm_rename(safetensors_shapes(model_dir), config)
    expected = fam.vllm_weights(config)
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
    positions = family(layout).shape(config)["max_positions"]
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
