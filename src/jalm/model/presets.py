"""Named model shapes. `1.7b` and `3.6b` are LINE's published configs; the small ones fit a laptop CPU.

We train transformers' own `GPT2LMHeadModel` / `GPTNeoXForCausalLM` rather than a model of our own, so
export is exact by construction — the released directory holds the very classes we trained (docs/design.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from jalm.errors import JalmError


@dataclass(frozen=True)
class ModelPreset:
    name: str
    layout: str  # "gpt2" (learned absolute positions) or "gpt_neox" (rotary on all head dims)
    layers: int
    hidden: int
    heads: int
    ffn: int
    max_positions: int = 2048
    # None: take the vocabulary size from the tokenizer (small presets); the published ones are fixed.
    vocab_size: int | None = 51200
    description: str = ""


PRESETS: dict[str, ModelPreset] = {
    p.name: p
    for p in (
        ModelPreset(
            "1.7b", "gpt2", 24, 2304, 24, 9216, description="line-corporation/japanese-large-lm-1.7b"
        ),
        ModelPreset(
            "3.6b", "gpt_neox", 30, 3072, 32, 12288, description="line-corporation/japanese-large-lm-3.6b"
        ),
        ModelPreset(
            "small", "gpt_neox", 12, 768, 12, 3072, vocab_size=None, description="GPT-NeoX, ~85M + embeddings"
        ),
        ModelPreset("tiny", "gpt_neox", 6, 256, 8, 1024, 512, None, "GPT-NeoX for CPUs, 6.8M with 8k vocab"),
        ModelPreset(
            "mini", "gpt_neox", 4, 128, 4, 512, 512, None, "GPT-NeoX for a few CPU minutes (the demo's)"
        ),
        ModelPreset("tiny-gpt2", "gpt2", 6, 256, 8, 1024, 512, None, "GPT-2 layout for CPUs"),
        # For tests: trains in seconds.
        ModelPreset("test", "gpt_neox", 2, 64, 4, 256, 256, None, "2-layer GPT-NeoX for tests"),
        ModelPreset("test-gpt2", "gpt2", 2, 64, 4, 256, 256, None, "2-layer GPT-2 for tests"),
    )
}


def get_preset(name: str) -> ModelPreset:
    if name not in PRESETS:
        raise JalmError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]
