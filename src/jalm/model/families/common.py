"""Checks several families share (vLLM's attention backends, llama.cpp's activations, rotary settings)."""

from __future__ import annotations

from pathlib import Path

from jalm.errors import JalmError
from jalm.model.families.base import Finding

ROTARY_BASE = 10000
FLASH_ATTENTION_HEAD_SIZES = (32, 64, 96, 128, 160, 192, 224, 256)
# vLLM's get_act_fn names (the ones these architectures use)
ACTIVATIONS = {"gelu", "gelu_new", "gelu_fast", "gelu_pytorch_tanh", "quick_gelu", "relu", "silu"}


def check_gelu(activation: str | None, model_dir: Path) -> None:
    # llama.cpp's GELU is the tanh approximation: exactly "gelu_new", within ~1e-3 of the exact "gelu".
    if activation not in ("gelu", "gelu_new", "gelu_pytorch_tanh"):
        raise JalmError(f"{model_dir}: activation {activation!r}; llama.cpp's gpt2/gptneox use GELU")


def check_activation(name: str) -> list[Finding]:
    """vLLM implements only these activations; anything else is an error in config.json."""
    if name in ACTIVATIONS:
        return []
    return [Finding("error", f"config.json: activation {name!r} is not one vLLM implements")]


def check_heads(hidden: int, heads: int, head_dim: int | None = None) -> list[Finding]:
    if head_dim is None and hidden % heads:
        return [Finding("error", f"config.json: hidden size {hidden} not divisible by {heads} heads")]
    size = head_dim or hidden // heads
    if size not in FLASH_ATTENTION_HEAD_SIZES:
        return [
            Finding(
                "warning",
                f"head size {size} is not one of FlashAttention's "
                f"{', '.join(map(str, FLASH_ATTENTION_HEAD_SIZES))}: vLLM falls back to a slower backend or "
                "refuses",
            )
        ]
    return []


def rotary(config: dict) -> tuple[float, float]:
    """(fraction of each head that rotates, base), from either spelling transformers 4 and 5 write."""
    rope = config.get("rope_parameters") or {}
    if rope.get("rope_type", "default") != "default" or config.get("rope_scaling"):
        raise JalmError("rope scaling is not exported to GGUF (jalm's presets use plain rotary)")
    fraction = rope.get("partial_rotary_factor", config.get("rotary_pct", 1.0))
    base = rope.get("rope_theta", config.get("rotary_emb_base", config.get("rope_theta", ROTARY_BASE)))
    return float(fraction), float(base)
