"""Reference log-probabilities without a second model in memory: one pass of the base before training,
stored in the run and reused by every rerun and resume.

The pass runs on the model the run starts from, before the Trainer loads any checkpoint: for full
fine-tuning that is the base itself, under LoRA the base with its adapters switched off (peft's
`disable_adapter`, which is also what the adapters start equal to). Processes split the pairs
(rank::world) and sum their shares. The file `reference_logps.npz` holds the train and held-out
(N, 2) float64 arrays and a key (base, token ids, precision); a key that differs means other data or
another base, and the pass runs again. Reference-free losses (simpo, orpo) skip all of this.
"""

from __future__ import annotations

import hashlib
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from jalm.dpo.dataset import PairExample, collate_pairs
from jalm.dpo.losses import sequence_logps
from jalm.io import write_atomic
from jalm.train import distributed as distrib

REFERENCE_FILE = "reference_logps.npz"


def reference_key(base: dict, examples: list[PairExample], bf16: bool) -> str:
    digest = hashlib.sha256(f"{base.get('path')}|{base.get('checkpoint')}|{bf16}".encode())
    for example in examples:
        for part in (example.prompt, example.chosen, example.rejected):
            digest.update(part.tobytes())
            digest.update(b"|")
    return digest.hexdigest()


@torch.no_grad()
def compute_logps(
    model,
    examples: list[PairExample],
    micro: int,
    pad_id: int,
    device,
    autocast=nullcontext,
    env: distrib.DistEnv | None = None,
) -> np.ndarray:
    """(N, 2) summed reply log-probabilities of every pair; with `env`, each process computes its share
    and the shares are summed across processes."""
    rank, world = (env.rank, env.world_size) if env is not None else (0, 1)
    out = torch.zeros((len(examples), 2), dtype=torch.float64, device=device)
    mine = list(range(rank, len(examples), world))
    mine.sort(key=lambda i: -examples[i].positions)  # similar lengths together: little padding
    was_training = model.training
    model.eval()
    for start in range(0, len(mine), micro):
        indices = mine[start : start + micro]
        arrays = collate_pairs(examples, indices, pad_id)
        batch = {k: torch.from_numpy(v).to(device) for k, v in arrays.items()}
        with autocast():
            logps, _ = sequence_logps(model, **batch)
        out[indices] = logps.double()
    model.train(was_training)
    if world > 1:
        torch.distributed.all_reduce(out)
    return out.cpu().numpy()


def reference_logps(
    run_dir: Path,
    model,
    key: str,
    sets: dict[str, list[PairExample]],
    micro: int,
    pad_id: int,
    env: distrib.DistEnv,
    autocast,
    progress: bool = False,
) -> tuple[dict[str, np.ndarray], bool]:
    """The stored reference log-probabilities of each set when their key matches, else one pass of the
    base (adapters off under LoRA) and store them; returns (arrays by set name, reused)."""
    path = run_dir / REFERENCE_FILE
    if path.exists():
        stored = np.load(path)
        if str(stored["key"]) == key and all(name in stored for name in sets):
            return {name: stored[name] for name in sets}, True
    adapters_off = model.disable_adapter() if hasattr(model, "disable_adapter") else nullcontext()
    with adapters_off:
        arrays = {
            name: compute_logps(model, examples, micro, pad_id, env.device, autocast, env)
            for name, examples in sets.items()
        }
    if env.is_main:
        import io

        buffer = io.BytesIO()
        np.savez(buffer, key=np.asarray(key), **arrays)
        write_atomic(path, buffer.getvalue())
    distrib.barrier()
    return arrays, False
