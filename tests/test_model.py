"""Presets have the published shapes; the seed's init has the stds it claims."""

from __future__ import annotations

import math

import pytest
import torch

from jalm.errors import JalmError
from jalm.model import build_model, count_parameters, get_preset, hf_config, init_weights
from jalm.model.init import OUTPUT_PROJECTION, init_std, output_projection_std


@pytest.mark.parametrize(
    ("name", "cls", "params"),
    [("1.7b", "GPT2LMHeadModel", 1_652_230_656), ("3.6b", "GPTNeoXForCausalLM", 3_555_876_864)],
)
def test_published_presets_have_exact_parameter_counts_on_meta(name, cls, params):
    model = build_model(hf_config(get_preset(name)), "meta")
    assert type(model).__name__ == cls
    assert count_parameters(model) == params
    assert next(model.parameters()).device.type == "meta"


def test_published_configs_match_line():
    gpt2 = hf_config(get_preset("1.7b"))
    assert (gpt2.n_layer, gpt2.n_embd, gpt2.n_head, gpt2.n_inner, gpt2.n_positions) == (
        24,
        2304,
        24,
        9216,
        2048,
    )
    assert (gpt2.activation_function, gpt2.layer_norm_epsilon, gpt2.vocab_size) == ("gelu", 1e-5, 51200)
    assert (gpt2.bos_token_id, gpt2.eos_token_id, gpt2.tie_word_embeddings) == (1, 2, True)
    neox = hf_config(get_preset("3.6b"))
    assert (neox.num_hidden_layers, neox.hidden_size, neox.num_attention_heads, neox.intermediate_size) == (
        30,
        3072,
        32,
        12288,
    )
    assert (
        neox.rope_parameters["partial_rotary_factor"] == 1.0 and neox.rope_parameters["rope_theta"] == 10000
    )
    assert neox.use_parallel_residual is False and neox.hidden_act == "gelu" and neox.layer_norm_eps == 1e-5
    assert (neox.bos_token_id, neox.eos_token_id, neox.tie_word_embeddings, neox.vocab_size) == (
        2,
        2,
        True,
        51200,
    )


def test_tokenizer_larger_than_published_vocab_is_refused():
    with pytest.raises(JalmError, match="--vocab-size 51200"):
        hf_config(get_preset("1.7b"), vocab_size=64000)


@pytest.mark.parametrize("preset_name", ["tiny", "tiny-gpt2"])
def test_small_init_stds(preset_name):
    preset = get_preset(preset_name)
    model = build_model(hf_config(preset, 4000))
    init_weights(model, preset.hidden, preset.layers, generator=torch.Generator().manual_seed(0))
    base, out = init_std(preset.hidden), output_projection_std(preset.hidden, preset.layers)
    assert math.isclose(base, math.sqrt(2 / (5 * 256))) and math.isclose(out, base / math.sqrt(12))
    projections = 0
    for name, param in model.named_parameters():
        if param.ndim >= 2:
            expected = out if OUTPUT_PROJECTION.search(name) else base
            projections += bool(OUTPUT_PROJECTION.search(name))
            assert abs(param.std().item() - expected) / expected < 0.03, name
            assert abs(param.mean().item()) < expected * 0.05, name
        elif name.endswith("bias"):
            assert torch.count_nonzero(param) == 0, name
        else:
            assert torch.all(param == 1), name
    assert projections == 2 * preset.layers  # attention and MLP output in every block


def test_unknown_preset_is_one_line_error():
    with pytest.raises(JalmError, match="unknown preset 'huge'"):
        get_preset("huge")


def test_fp32_attention_runs_in_float32_under_bf16_autocast():
    """The float32 attention path must not be re-cast to bf16 by CPU autocast (which lists SDPA as a bf16
    op): its output equals a float32 reference to float32 rounding, where a bf16 kernel is off by ~1e-3."""
    from types import SimpleNamespace

    from jalm.model.attention import sdpa_fp32_forward

    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 4, 64, 32, generator=generator).bfloat16().float() for _ in range(3))
    module = SimpleNamespace(is_causal=True, training=False, num_key_value_groups=1)
    reference = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output, _ = sdpa_fp32_forward(module, q, k, v, None, dropout=0.0, scaling=None, is_causal=True)
        bf16_kernel = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert output.dtype == torch.float32
    assert (bf16_kernel.float() - reference).abs().max() > 1e-3  # the check can fail: autocast does cast
    assert (output.float() - reference.transpose(1, 2)).abs().max() < 1e-5
