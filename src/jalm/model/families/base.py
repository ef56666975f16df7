"""What a model family is: the facts jalm needs about one layout, in one record (see families/__init__.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from transformers import PretrainedConfig


@dataclass(frozen=True)
class ModelPreset:
    name: str
    layout: str  # the family's model_type: "gpt2", "gpt_neox" or "llama"
    layers: int
    hidden: int
    heads: int
    ffn: int
    max_positions: int = 2048
    # None: take the vocabulary size from the tokenizer (small presets); the published ones are fixed.
    vocab_size: int | None = 51200
    description: str = ""
    kv_heads: int | None = None  # grouped-query attention (Llama family); None: one K/V head per head
    # A Hugging Face model directory whose config.json this preset describes (`jalm train --init-from DIR`):
    # the model is built from that config, keeping the base's architecture exactly.
    source: str | None = None


@dataclass(frozen=True)
class Tensor:
    """One GGUF tensor: its name, the checkpoint tensor it comes from, and how it is rearranged."""

    name: str
    source: str
    transpose: bool = False  # GPT-2's Conv1D stores (in, out); ggml wants (out, in) like a Linear layer
    qkv_heads: int = 0  # GPT-NeoX's fused QKV, interleaved per head: regroup into all Q, all K, all V
    # Llama's Q and K: transformers rotates halves of each head, llama.cpp's `llama` adjacent pairs;
    # convert_hf_to_gguf.py permutes the rows of each head (this many heads) to match.
    rope_heads: int = 0


@dataclass(frozen=True)
class Finding:
    level: str  # "error": vLLM would refuse it or compute another model; "warning": works, but see why
    message: str


@dataclass(frozen=True)
class Family:
    """Everything jalm knows about one layout. Functions take config.json as a dict unless said otherwise."""

    model_type: str  # config.json's model_type (and the preset's layout)
    architecture: str  # transformers' class name, config.json's architectures[0]
    presets: tuple[ModelPreset, ...]
    # preset, vocabulary size → the transformers config, in the published models' terms
    hf_config: Callable[[ModelPreset, int], PretrainedConfig]
    # config.to_dict() → the dict to write as config.json, read the same by transformers 4.x and 5.x
    portable: Callable[[dict], dict]
    # the init recipe: names of the residual-writing projections (σ / sqrt(2 · layers))
    output_projections: tuple[str, ...]
    blocks: str  # dotted path of the ModuleList of blocks that FSDP2 wraps one by one
    lora_targets: tuple[str, ...]
    lora_fan_in_fan_out: bool  # weights stored (in, out) (GPT-2's Conv1D)
    # config.json → the ModelPreset-shaped facts (layers, hidden, heads, ffn, positions, kv_heads)
    shape: Callable[[dict], dict]
    # --- GGUF: llama.cpp's architecture, its tensors, its hyper-parameters
    gguf_arch: str
    gguf_tensors: Callable[[dict, Path], list[Tensor]]
    gguf_metadata: Callable[[Any, dict], None]  # (gguf.GGUFWriter, config)
    # --- vLLM: the tensors its loader expects (name → shape), and its architecture checks
    vllm_weights: Callable[[dict], dict[str, list[int]]]
    vllm_architecture: Callable[[dict], list[Finding]]
    # vLLM's loader renames/skips some checkpoint names before matching (GPT-2: bare names, lm_head)
    vllm_rename: Callable[[dict, dict], dict] = lambda shapes, config: shapes
    bos_id: int = 1
    eos_id: int = 2
    # activation memory saved per token in one block: (coefficient of hidden, of ffn), bf16 / float32
    saved_bytes: dict[bool, tuple[int, int]] = field(default_factory=dict)
    # other model_types whose checkpoints have this family's module names (trained, tuned, wrapped alike)
    also: tuple[str, ...] = ()
    # the model card's "position encoding" and "residual" rows, from config.json
    card: Callable[[dict], tuple[str, str]] = lambda config: ("?", "?")


def config_value(config: dict, *keys: str, default: Any = None) -> Any:
    for key in keys:
        if config.get(key) is not None:
            return config[key]
    return default
