"""One loaded causal LM for evaluation: any Hugging Face directory with its own tokenizer.

The model and tokenizer come from `jalm.hf` (one-line errors for a missing directory, weights or
tokenizer). Prompts are always encoded with `add_special_tokens=False`: no BOS in front, never `</s>`
behind, as the text-generation pipeline and the jp-stable harness do.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jalm.errors import JalmError

# A tokenizer's model_max_length above this is transformers' "no limit" placeholder (int(1e30)), not a context.
_TOKENIZER_LIMIT = 1_000_000


@dataclass(frozen=True)
class ModelOptions:
    """How to load the model under evaluation (the keyword arguments of `load_lm`).

    `max_length` overrides the context length read from config.json; `trust_remote_code` stays off unless
    the user asks for it.
    """

    device: str = "cpu"
    dtype: str = "float32"
    use_fast: bool = False
    trust_remote_code: bool = False
    max_length: int | None = None


@dataclass
class LM:
    """A model ready for scoring and greedy decoding, with what the loops need to know about it."""

    model: Any
    tokenizer: Any
    model_dir: Path
    device: str
    dtype: str
    max_length: int
    pad_id: int
    eos_ids: frozenset[int]
    params: int
    # Keyword names this transformers version and model class use (they changed between 4.x and 5.x).
    cache_kwarg: str = "past_key_values"
    accepts_position_ids: bool = True
    logits_kwarg: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    def encode(self, text: str) -> list[int]:
        """Token ids of `text` with no special tokens added (no BOS, no `</s>`)."""
        return list(self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)


def resolve_device(device: str) -> str:
    """'auto' means the first CUDA device when there is one, else the CPU."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def tokenizer_max_length(tokenizer: Any) -> int | None:
    """The tokenizer's model_max_length when it is a real limit (None when unset or transformers' huge
    placeholder)."""
    value = getattr(tokenizer, "model_max_length", None)
    if isinstance(value, int) and 0 < value < _TOKENIZER_LIMIT:
        return value
    return None


def eval_context_length(config: Any, tokenizer: Any) -> int:
    """The longest sequence evaluated: the model's context (jalm.generate.context_length), else the
    tokenizer's model_max_length, else 2048."""
    from jalm.generate import DEFAULT_CONTEXT, context_length

    return context_length(config, default=None) or tokenizer_max_length(tokenizer) or DEFAULT_CONTEXT


def load_lm(
    model_dir: str | Path,
    device: str = "cpu",
    dtype: str = "float32",
    use_fast: bool = False,
    trust_remote_code: bool = False,
    max_length: int | None = None,
) -> LM:
    """Load model and tokenizer from one directory; `max_length` overrides the context length."""
    from jalm.hf import check_model_dir, load_model, load_tokenizer

    path = check_model_dir(model_dir)
    device = resolve_device(device)
    tokenizer = load_tokenizer(path, use_fast=use_fast, trust_remote_code=trust_remote_code)
    model = load_model(path, device=device, dtype=dtype, trust_remote_code=trust_remote_code)
    context = max_length or eval_context_length(model.config, tokenizer)
    if context < 2:
        raise JalmError(f"{path}: context length {context} is too short to evaluate")

    eos_ids = set()
    if tokenizer.eos_token_id is not None:
        eos_ids.add(int(tokenizer.eos_token_id))
    generation_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(generation_eos, int):
        eos_ids.add(generation_eos)
    elif isinstance(generation_eos, (list, tuple)):
        eos_ids.update(int(i) for i in generation_eos)
    # Padding only fills masked positions, so any id works; prefer pad, then eos (as jp-stable does).
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    pad_id = int(pad_id) if pad_id is not None else 0

    forward = inspect.signature(model.forward).parameters
    # transformers 5 renamed `past_key_values` to `cache`; `logits_to_keep` was `num_logits_to_keep`.
    cache_kwarg = "cache" if "cache" in forward else "past_key_values"
    logits_kwarg = next((k for k in ("logits_to_keep", "num_logits_to_keep") if k in forward), None)
    return LM(
        model=model,
        tokenizer=tokenizer,
        model_dir=path,
        device=device,
        dtype=dtype,
        max_length=int(context),
        pad_id=pad_id,
        eos_ids=frozenset(eos_ids),
        params=int(sum(p.numel() for p in model.parameters())),
        cache_kwarg=cache_kwarg,
        accepts_position_ids="position_ids" in forward,
        logits_kwarg=logits_kwarg,
        settings={
            "device": device,
            "dtype": dtype,
            "use_fast": use_fast,
            "trust_remote_code": trust_remote_code,
            "max_length": int(context),
            "tokenizer_class": type(tokenizer).__name__,
        },
    )


def output_cache(output: Any) -> Any:
    """The KV cache a forward pass returned, under whichever name this transformers version uses."""
    for key in ("cache", "past_key_values"):
        if key in output and output[key] is not None:
            return output[key]
    raise JalmError("the model returned no KV cache; it cannot be used for batched greedy decoding")
