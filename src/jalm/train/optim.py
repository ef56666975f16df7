"""AdamW with the seed's betas; weight decay only on matrices (not biases or LayerNorms)."""

from __future__ import annotations

import torch


def build_optimizer(model: torch.nn.Module, cfg, device: torch.device) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (decay if param.ndim >= 2 else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # The fused kernel exists for CPU and CUDA tensors; DTensor parameters (FSDP2) need the foreach path.
    fused = not any(type(p).__name__ == "DTensor" for p in decay)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=1e-8, fused=fused)
