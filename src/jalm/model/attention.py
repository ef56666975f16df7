"""Float32 attention inside bf16 training on CPUs without AMX.

On AVX512-BF16 CPUs without AMX tiles, PyTorch's bf16 flash-attention kernel is slower than its float32
one (220 vs 207 ms forward + backward at 16 × 8 heads × 511 × 32: benchmarks/attention_dtype.py), while the
matmuls around it are 2.3x faster in bf16. So under bf16 autocast only the attention kernel runs in
float32: more exact, and expected to be no slower.

CPU autocast lists `scaled_dot_product_attention` among its bf16 ops and would cast float32 inputs back to
bf16, so the kernel runs with autocast disabled (figures measured before 2026-11-30 had attention in bf16).
Measured once the kernel really ran in float32 (`benchmarks/train_throughput.py --rounds 2
--bf16-attention`, `tiny` at 16 × 512, 2026-11-30): a whole compiled step reached 0.94x the tokens/s of
bf16 attention (the casts around the kernel cost more than the kernel saves). We keep float32 for its
exactness; whether 6 % is worth it is an open choice, to be settled on more rounds than that one run.

It is transformers' own SDPA path with a cast around it, registered under its own name through
transformers' attention and mask interfaces, so the causal mask is still skipped in favour of
`is_causal` and nothing is materialised. Exports never carry the name: it is set on the training model.
"""

from __future__ import annotations

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

FP32_SDPA = "jalm_sdpa_fp32"


def sdpa_fp32_forward(module, query, key, value, attention_mask, **kwargs):
    """transformers' SDPA attention computed in float32, returned in the query's dtype."""
    dtype = query.dtype
    if attention_mask is not None and attention_mask.is_floating_point():
        attention_mask = attention_mask.float()
    with torch.autocast(query.device.type, enabled=False):  # else autocast re-casts the inputs to bf16
        output, weights = sdpa_attention_forward(
            module, query.float(), key.float(), value.float(), attention_mask, **kwargs
        )
    return output.to(dtype), weights


def fp32_attention_pays(device: torch.device, bf16: bool) -> bool:
    """True on a CPU that trains in bf16 without AMX (measured on AVX512-BF16; AMX CPUs keep bf16)."""
    return device.type == "cpu" and bf16 and not torch.cpu._is_amx_tile_supported()


def use_fp32_attention(model: torch.nn.Module) -> None:
    """Switch a transformers model to float32 SDPA (in place)."""
    AttentionInterface.register(FP32_SDPA, sdpa_fp32_forward)
    AttentionMaskInterface.register(FP32_SDPA, ALL_MASK_ATTENTION_FUNCTIONS["sdpa"])
    model.set_attn_implementation(FP32_SDPA)
