"""The model an instruction-tuning run starts from, and LoRA around it.

A base is a local Hugging Face directory of a known family (GPT-2, GPT-NeoX, Llama and its kin: LINE's published
1.7B / 3.6B after a download, any jalm export) or a `jalm train` run directory (its latest checkpoint, with the tokenizer of its data).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from jalm.errors import JalmError


def describe_base(path: str | Path) -> dict:
    """What the base is (recorded in run.json, so a resumed run and the export rebuild the same model)."""
    path = Path(path)
    run_file = path / "run.json"
    if run_file.exists():
        run = json.loads(run_file.read_text(encoding="utf-8"))
        if run.get("kind") == "sft":
            raise JalmError(f"{path}: an instruction-tuning run; export it first and start from the export")
        from jalm.train import checkpoint as ckpt

        latest = ckpt.latest_checkpoint(path)
        if latest is None:
            raise JalmError(f"{path}: training run without a complete checkpoint")
        return {
            "kind": "jalm_run",
            "path": str(path),
            "checkpoint": str(latest),
            "preset": run["preset"],
            "tokenizer": str(Path(run["data"]) / "tokenizer"),
        }
    from jalm.hf import check_model_dir

    check_model_dir(path)
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    from jalm.model.families import family

    family(config.get("model_type"), f"{path}/config.json")  # a family jalm knows, or one line why not
    return {"kind": "hf", "path": str(path), "tokenizer": str(path)}


def load_base(base: dict, device: torch.device) -> torch.nn.Module:
    """The base model in float32 with SDPA attention, on `device`."""
    if base["kind"] == "jalm_run":
        from jalm.model import build_model, get_preset, hf_config
        from jalm.train import checkpoint as ckpt

        state = ckpt.read_state(Path(base["checkpoint"]))
        model = build_model(hf_config(get_preset(base["preset"]), state["vocab_size"]), device)
        ckpt.load_checkpoint(Path(base["checkpoint"]), model, None)
        return model
    from jalm.hf import load_model

    return load_model(base["path"], device=str(device), dtype="float32").train()


def add_lora(model: torch.nn.Module, rank: int, alpha: float, dropout: float, targets: list[str] | None):
    """Wrap `model` with peft LoRA adapters on every attention and MLP projection (the family's `lora_targets`,
    or `targets`)."""
    from peft import LoraConfig, get_peft_model

    from jalm.model.families import family

    fam = family(model.config.model_type)
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=targets or list(fam.lora_targets),
        fan_in_fan_out=fam.lora_fan_in_fan_out,
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def lora_settings(options) -> dict | None:
    if not options.lora_rank:
        return None
    return {
        "rank": options.lora_rank,
        "alpha": options.lora_alpha,
        "dropout": options.lora_dropout,
        "targets": options.lora_targets,
    }


def build_model(base: dict, lora: dict | None, device: torch.device, seed: int) -> torch.nn.Module:
    """Base model, plus LoRA adapters initialised from `seed` (identically on every rank and on resume)."""
    model = load_base(base, device)
    if lora is None:
        return model
    torch.manual_seed(seed)
    return add_lora(model, lora["rank"], lora["alpha"], lora["dropout"], lora["targets"])
