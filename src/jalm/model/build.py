"""Build Hugging Face configs and models from presets, with configs that mean the same to transformers 4 and 5."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jalm.errors import JalmError
from jalm.model.families import ModelPreset, family
from jalm.model.families.common import ROTARY_BASE

if TYPE_CHECKING:
    import torch
    from transformers import PretrainedConfig, PreTrainedModel

EOS_ID = 2
__all__ = [
    "EOS_ID",
    "ROTARY_BASE",
    "build_model",
    "count_parameters",
    "hf_config",
    "portable_config_dict",
    "preset_from_config",
    "transformer_blocks",
]


def resolve_vocab_size(preset: ModelPreset, tokenizer_vocab: int | None) -> int:
    if preset.vocab_size is None:
        if tokenizer_vocab is None:
            raise JalmError(
                f"preset {preset.name!r} takes its vocabulary size from the tokenizer; none given"
            )
        return tokenizer_vocab
    if tokenizer_vocab is not None and tokenizer_vocab > preset.vocab_size:
        raise JalmError(
            f"tokenizer has {tokenizer_vocab} pieces but preset {preset.name!r} has a vocabulary of "
            f"{preset.vocab_size}; train the tokenizer with --vocab-size {preset.vocab_size}"
        )
    return preset.vocab_size


def hf_config(preset: ModelPreset, vocab_size: int | None = None) -> PretrainedConfig:
    """The transformers config for a preset, in the published models' terms (its family's); for a preset
    made from a model directory, that directory's own config (a larger tokenizer grows its vocabulary)."""
    if preset.source is not None:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(preset.source)
        if vocab_size is not None and vocab_size > config.vocab_size:
            config.vocab_size = vocab_size  # an extended tokenizer (jalm tokenizer extend)
        return config
    return family(preset.layout).hf_config(preset, resolve_vocab_size(preset, vocab_size))


def portable_config_dict(config: PretrainedConfig) -> dict:
    """config.json contents that transformers 4.x and 5.x read the same way (each family says how)."""
    data = config.to_dict()
    data = family(data.get("model_type")).portable(data)
    data.pop("dtype", None)
    data["torch_dtype"] = "float32"
    return data


def build_model(config: PretrainedConfig, device: str | torch.device = "cpu") -> PreTrainedModel:
    """Instantiate transformers' own class for the layout, with SDPA attention, on `device` (meta allowed)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa")
    return model


def count_parameters(model: torch.nn.Module) -> int:
    """Unique parameters (tied embeddings counted once), as the published counts are."""
    return sum(p.numel() for p in model.parameters())


def transformer_blocks(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The repeated blocks of a model (its family's `blocks` path): what FSDP2 shards one by one."""
    module, config = model, getattr(model, "config", None)
    path = family(getattr(config, "model_type", None), type(model).__name__).blocks
    for part in path.split("."):
        module = getattr(module, part, None)
        if module is None:
            raise ValueError(f"don't know the blocks of {type(model).__name__} (no {path})")
    return list(module)


def preset_from_config(config: dict, name: str) -> ModelPreset:
    """A preset describing a model directory's config.json (for --init-from, planning and MFU)."""
    fam = family(config.get("model_type"), name)
    facts = fam.shape(config)
    return ModelPreset(
        name=name,
        layout=fam.model_type,
        layers=facts["layers"],
        hidden=facts["hidden"],
        heads=facts["heads"],
        ffn=facts["ffn"],
        max_positions=facts["max_positions"],
        vocab_size=config["vocab_size"],
        description=f"the {config.get('model_type')} model in {name}",
        kv_heads=facts.get("kv_heads"),
        source=name,
    )
