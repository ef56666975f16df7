"""The seed's initialisation (GPT-NeoX "small_init" + Megatron's scaled output projections).

Every weight matrix and embedding ~ N(0, σ²) with σ = sqrt(2 / (5 · hidden)); the output projections of
attention and MLP (the matrices that write into the residual stream) use σ / sqrt(2 · layers), so the
residual stream's variance does not grow with depth. Biases are zero and LayerNorms / RMSNorms are identity.
The same recipe for every family; each names its output projections (model/families/).
"""

from __future__ import annotations

import math
import re

import torch

from jalm.model.families import FAMILIES

# Names of the residual-writing projections in every family's transformers class.
OUTPUT_PROJECTION = re.compile(
    r"\.("
    + "|".join(sorted({re.escape(n) for f in FAMILIES.values() for n in f.output_projections}))
    + r")\.weight$"
)


def init_std(hidden: int) -> float:
    return math.sqrt(2.0 / (5.0 * hidden))


def output_projection_std(hidden: int, layers: int) -> float:
    return init_std(hidden) / math.sqrt(2.0 * layers)


@torch.no_grad()
def init_weights(
    model: torch.nn.Module, hidden: int, layers: int, scheme: str = "small_init", generator=None
) -> None:
    """Initialise in place. scheme: "small_init" (the seed's) or "normal_0.02" (a flat std, for experiments)."""
    if scheme not in ("small_init", "normal_0.02"):
        raise ValueError(f"unknown init scheme {scheme!r}")
    std = init_std(hidden) if scheme == "small_init" else 0.02
    out_std = output_projection_std(hidden, layers) if scheme == "small_init" else 0.02
    for name, param in model.named_parameters():
        if param.ndim >= 2:
            param.normal_(0.0, out_std if OUTPUT_PROJECTION.search(name) else std, generator=generator)
        elif name.endswith("bias"):
            param.zero_()
        else:  # LayerNorm weights
            param.fill_(1.0)
