"""Run under torchrun: tensor-parallel GPT-NeoX gives the unsharded model's logits and gradients.

Every rank builds the same model from the same seed, keeps an unsharded copy as the reference, shards
the other with jalm's TP plan, and compares. Rank 0 writes the largest differences to argv[1] as JSON.
"""

from __future__ import annotations

import copy
import json
import sys

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.distributed.device_mesh import init_device_mesh

from jalm.model import build_model, get_preset, hf_config, init_weights
from jalm.train.tensor_parallel import apply_tensor_parallel


def loss_of(model, ids):
    logits = model(input_ids=ids[:, :-1]).logits
    return logits, F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), ids[:, 1:].reshape(-1))


def main() -> None:
    dist.init_process_group("gloo")
    preset = get_preset("test")
    model = build_model(hf_config(preset, 300), torch.device("cpu"))
    init_weights(model, preset.hidden, preset.layers, generator=torch.Generator().manual_seed(0))
    reference = copy.deepcopy(model)
    apply_tensor_parallel(model, init_device_mesh("cpu", (dist.get_world_size(),)))
    ids = torch.randint(0, 300, (2, 33), generator=torch.Generator().manual_seed(1))
    ref_logits, ref_loss = loss_of(reference, ids)
    tp_logits, tp_loss = loss_of(model, ids)
    ref_loss.backward()
    tp_loss.backward()
    grad_diffs = {}
    for (name, ref_param), param in zip(reference.named_parameters(), model.parameters()):
        grad = param.grad.full_tensor() if hasattr(param.grad, "full_tensor") else param.grad
        grad_diffs[name] = (grad - ref_param.grad).abs().max().item()
    sharded = [n for n, p in model.named_parameters() if type(p).__name__ == "DTensor"]
    if dist.get_rank() == 0:
        result = {
            "logits": (tp_logits - ref_logits).abs().max().item(),
            "loss": abs(tp_loss.item() - ref_loss.item()),
            "grad": max(grad_diffs.values()),
            "sharded": sharded,
        }
        with open(sys.argv[1], "w") as f:
            json.dump(result, f)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
