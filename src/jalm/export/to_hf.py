"""`jalm export`: a training checkpoint → a Hugging Face model directory that LINE's snippet loads (the package docstring says more)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from jalm.errors import JalmError
from jalm.io import write_atomic


def export(
    run_dir: str | Path,
    out_dir: str | Path,
    checkpoint: str | Path | None = None,
    verify: bool = True,
    clean_stats: str | Path | None = None,
    adapter_only: bool = False,
) -> Path:
    """A pretraining run → a Hugging Face directory; an instruction-tuning run → the same, chat-ready."""
    from jalm.model import build_model, count_parameters, get_preset, hf_config
    from jalm.model.build import portable_config_dict
    from jalm.tokenizer import write_hf_tokenizer_files
    from jalm.train import checkpoint as ckpt
    from jalm.train.loop import RUN_CONFIG

    run_dir, out = Path(run_dir), Path(out_dir)
    run_file = run_dir / RUN_CONFIG
    if not run_file.exists():
        raise JalmError(f"{run_dir}: not a training run directory (no {RUN_CONFIG})")
    run = json.loads(run_file.read_text(encoding="utf-8"))
    if run.get("kind") == "sft":
        from jalm.sft.export import export_sft

        return export_sft(run_dir, run, out, Path(checkpoint) if checkpoint else None, adapter_only)
    if run.get("kind") == "dpo":
        from jalm.dpo.export import export_dpo

        return export_dpo(run_dir, run, out, Path(checkpoint) if checkpoint else None, adapter_only)
    if adapter_only:
        raise JalmError(f"{run_dir}: --adapter-only is for LoRA instruction-tuning runs")
    source = Path(checkpoint) if checkpoint else ckpt.latest_checkpoint(run_dir)
    if source is None:
        raise JalmError(f"{run_dir}: no complete checkpoint to export")
    state = ckpt.read_state(source)
    preset = get_preset(run["preset"])
    if state.get("preset") != preset.name:
        raise JalmError(
            f"{source}: checkpoint of preset {state.get('preset')!r}, but the run is {preset.name!r}"
        )
    config = hf_config(preset, state["vocab_size"])
    model = build_model(config, "cpu")
    ckpt.load_checkpoint(source, model, None)
    model.eval()

    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    write_atomic(out / "config.json", json.dumps(portable_config_dict(config), indent=2) + "\n")
    tokenizer_dir = Path(run["data"]) / "tokenizer"
    if not (tokenizer_dir / "spiece.model").exists():
        raise JalmError(
            f"{tokenizer_dir}: tokenizer of the training data not found (needed beside the weights)"
        )
    shutil.copy2(tokenizer_dir / "spiece.model", out / "spiece.model")
    write_hf_tokenizer_files(out / "spiece.model", out, model_max_length=preset.max_positions)
    training = out / "training"
    training.mkdir(exist_ok=True)
    for name in ("metrics.jsonl", "loss.png", RUN_CONFIG):
        if (run_dir / name).exists():
            shutil.copy2(run_dir / name, training / name)
    if clean_stats is not None:
        if not Path(clean_stats).exists():
            raise JalmError(f"{clean_stats}: no such file")
        shutil.copy2(clean_stats, training / "clean_stats.json")
    provenance = {
        "preset": preset.name,
        "layout": preset.layout,
        "params": count_parameters(model),
        "steps": state["step"],
        "tokens": state["tokens_seen"],
        "run_dir": str(run_dir),
        "checkpoint": str(source),
        "data": run["data"],
        "train_config": run.get("config", {}),
    }
    write_atomic(out / "jalm.json", json.dumps(provenance, indent=2, ensure_ascii=False) + "\n")
    if verify:
        _verify(model, out)
    return out


def _verify(model, out: Path) -> None:
    """Reload what we wrote with transformers' Auto classes and demand identical logits."""
    import torch
    from transformers import AutoModelForCausalLM

    reloaded = AutoModelForCausalLM.from_pretrained(out).eval()
    ids = torch.arange(3, 3 + min(32, model.config.vocab_size - 3)).unsqueeze(0)
    with torch.no_grad():
        if not torch.allclose(
            model(input_ids=ids).logits, reloaded(input_ids=ids).logits, atol=1e-5, rtol=1e-4
        ):
            raise JalmError(f"{out}: exported model does not reproduce the checkpoint's logits")
