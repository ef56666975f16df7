"""Megatron-style tensor parallelism for GPT-NeoX blocks on a DTensor device mesh.

The plan is transformers' own (`GPTNeoXConfig.base_model_tp_plan`): QKV and h→4h split by columns,
the attention output and 4h→h projections by rows, so each block needs one all-reduce after attention
and one after the MLP. GPT-NeoX's fused QKV weight is laid out head by head, so a column split hands each
rank whole heads, and the attention code reshapes with `-1` heads, so it runs on the local heads as is.
Embeddings and the LM head stay replicated.

This keeps the model code ready for TP (tested on 2 CPU processes); `jalm train` itself shards with
FSDP2, which fits both published sizes. GPT-2's Conv1D projections are not `nn.Linear`, so torch's
parallel styles do not apply to the GPT-2 layout; use FSDP2 for it.
"""

from __future__ import annotations

import torch
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.tensor.parallel import (
    ColwiseParallel,
    ParallelStyle,
    RowwiseParallel,
    parallelize_module,
)

STYLES = {"colwise": ColwiseParallel, "rowwise": RowwiseParallel}


def tensor_parallel_plan(model: torch.nn.Module) -> dict[str, ParallelStyle]:
    """Module path pattern → parallel style, from the config's own TP plan (block projections only)."""
    config = model.config
    plan = getattr(config, "base_model_tp_plan", None) or {}
    if config.model_type != "gpt_neox" or not plan:
        raise ValueError(
            f"tensor parallelism needs the GPT-NeoX layout, not {config.model_type!r}; use FSDP2"
        )
    prefix = model.base_model_prefix
    return {f"{prefix}.{path}": STYLES[style]() for path, style in plan.items() if style in STYLES}


def apply_tensor_parallel(model: torch.nn.Module, mesh: DeviceMesh) -> torch.nn.Module:
    """Shard the block projections of `model` across `mesh` (1-D) in place; returns the model."""
    heads, ranks = model.config.num_attention_heads, mesh.size()
    if heads % ranks or model.config.intermediate_size % ranks:
        raise ValueError(
            f"{heads} heads / {model.config.intermediate_size} MLP width do not split over {ranks} ranks"
        )
    return parallelize_module(model, mesh, tensor_parallel_plan(model))
