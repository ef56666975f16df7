"""Build Hugging Face configs and models from presets, with configs that mean the same to transformers 4 and 5."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jalm.errors import JalmError
from jalm.model.presets import ModelPreset

if TYPE_CHECKING:
    import torch
    from transformers import PretrainedConfig, PreTrainedModel

# LINE's special ids: 0 <unk>, 1 <s>, 2 </s>, 3 <pad>. The published GPT-2 config says bos 1, the
# GPT-NeoX one bos 2; both say eos 2 and set no pad id.
BOS_ID = {"gpt2": 1, "gpt_neox": 2}
EOS_ID = 2
ROTARY_BASE = 10000


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
    """The transformers config for a preset, in the published models' terms."""
    from transformers import GPT2Config, GPTNeoXConfig

    vocab = resolve_vocab_size(preset, vocab_size)
    if preset.layout == "gpt2":
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
            bos_token_id=BOS_ID["gpt2"],
            eos_token_id=EOS_ID,
            tie_word_embeddings=True,
            architectures=["GPT2LMHeadModel"],
        )
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
        bos_token_id=BOS_ID["gpt_neox"],
        eos_token_id=EOS_ID,
        attention_dropout=0.0,
        hidden_dropout=0.0,
        architectures=["GPTNeoXForCausalLM"],
    )


def portable_config_dict(config: PretrainedConfig) -> dict:
    """config.json contents that transformers 4.x and 5.x read the same way.

    transformers 5 writes rotary settings only as `rope_parameters`; 4.x ignores that key and falls back
    to its default `rotary_pct` 0.25 — a silently different model. We write both spellings.
    """
    data = config.to_dict()
    if data.get("model_type") == "gpt_neox":
        rope = data.get("rope_parameters") or {}
        data["rotary_pct"] = rope.get("partial_rotary_factor", 1.0)
        data["rotary_emb_base"] = rope.get("rope_theta", ROTARY_BASE)
        data.setdefault("rope_scaling", None)
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
