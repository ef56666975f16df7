"""`jalm export`: a training checkpoint → a Hugging Face model directory that LINE's snippet loads (the package docstring says more).

The directory is written beside `out_dir` under a hidden name and renamed to `out_dir` only after the
reloaded model reproduced the checkpoint's logits (jalm.model.agreement), so a refused export leaves
nothing that looks usable; `verify=False` (`--no-verify`) skips the check for every kind of run.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from jalm.errors import JalmError
from jalm.io import staged_directory, write_atomic


def export(
    run_dir: str | Path,
    out_dir: str | Path,
    checkpoint: str | Path | None = None,
    verify: bool = True,
    clean_stats: str | Path | None = None,
    adapter_only: bool = False,
) -> Path:
    """A pretraining run → a Hugging Face directory; an instruction-tuning run → the same, chat-ready."""
    from jalm.model import build_model, get_preset, hf_config
    from jalm.train import checkpoint as ckpt
    from jalm.train.loop import RUN_CONFIG

    run_dir, out = Path(run_dir), Path(out_dir)
    run_file = run_dir / RUN_CONFIG
    if not run_file.exists():
        raise JalmError(f"{run_dir}: not a training run directory (no {RUN_CONFIG})")
    run = json.loads(run_file.read_text(encoding="utf-8"))
    if run.get("kind") == "sft":
        from jalm.sft.export import export_sft

        source = Path(checkpoint) if checkpoint else None
        return export_sft(run_dir, run, out, source, adapter_only, verify=verify)
    if run.get("kind") == "dpo":
        from jalm.dpo.export import export_dpo

        source = Path(checkpoint) if checkpoint else None
        return export_dpo(run_dir, run, out, source, adapter_only, verify=verify)
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
    tokenizer_dir = Path(run["data"]) / "tokenizer"
    if (
        not (preset.source is not None and (tokenizer_dir / "tokenizer_config.json").is_file())
        and not (tokenizer_dir / "spiece.model").exists()
    ):
        raise JalmError(
            f"{tokenizer_dir}: tokenizer of the training data not found (needed beside the weights)"
        )
    if clean_stats is not None and not Path(clean_stats).exists():
        raise JalmError(f"{clean_stats}: no such file")
    with staged_directory(out) as staging:
        _write(run_dir, run, staging, source, state, preset, config, model, tokenizer_dir, clean_stats)
        if verify:
            _verify(model, staging, out)
    return out


def _write(run_dir, run, out, source, state, preset, config, model, tokenizer_dir, clean_stats) -> None:
    from jalm.model import count_parameters
    from jalm.model.build import portable_config_dict
    from jalm.tokenizer import write_hf_tokenizer_files
    from jalm.train.loop import RUN_CONFIG

    model.save_pretrained(out, safe_serialization=True)
    write_atomic(out / "config.json", json.dumps(portable_config_dict(config), indent=2) + "\n")
    if preset.source is not None and (tokenizer_dir / "tokenizer_config.json").is_file():
        # Continued pretraining of a model directory: its tokenizer files, exactly as they were.
        copy_tokenizer_files(tokenizer_dir, out)
    else:
        shutil.copy2(tokenizer_dir / "spiece.model", out / "spiece.model")
        write_hf_tokenizer_files(out / "spiece.model", out, model_max_length=preset.max_positions)
    training = out / "training"
    training.mkdir(exist_ok=True)
    for name in ("metrics.jsonl", "loss.png", RUN_CONFIG):
        if (run_dir / name).exists():
            shutil.copy2(run_dir / name, training / name)
    if clean_stats is not None:
        shutil.copy2(clean_stats, training / "clean_stats.json")
    provenance = {
        "preset": preset.name,
        "layout": preset.layout,
        "init_from": run.get("config", {}).get("init_from"),
        "params": count_parameters(model),
        "steps": state["step"],
        "tokens": state["tokens_seen"],
        "run_dir": str(run_dir),
        "checkpoint": str(source),
        "data": run["data"],
        "train_config": run.get("config", {}),
    }
    write_atomic(out / "jalm.json", json.dumps(provenance, indent=2, ensure_ascii=False) + "\n")


def copy_tokenizer_files(tokenizer_dir: Path, out: Path) -> list[str]:
    """Copy a base model's tokenizer files byte for byte (what `jalm pack` took from the model directory)."""
    from jalm.data.packing import MODEL_DIR_TOKENIZER_FILES

    copied = []
    for name in MODEL_DIR_TOKENIZER_FILES:
        if (tokenizer_dir / name).is_file() and name != "jalm_extend.json":
            shutil.copy2(tokenizer_dir / name, out / name)
            copied.append(name)
    return copied


def _verify(model, written: Path, out: Path) -> None:
    """Reload what we wrote with transformers' Auto classes and demand the checkpoint's logits within
    float32 rounding at their scale."""
    import torch
    from transformers import AutoModelForCausalLM

    from jalm.model.agreement import logits_difference

    reloaded = AutoModelForCausalLM.from_pretrained(written, dtype=torch.float32).eval()
    ids = torch.arange(3, 3 + min(32, model.config.vocab_size - 3)).unsqueeze(0)
    with torch.no_grad():
        diff, tolerance = logits_difference(model(input_ids=ids).logits, reloaded(input_ids=ids).logits)
    if diff > tolerance:
        raise JalmError(
            f"{out}: exported model does not reproduce the checkpoint's logits (max diff {diff:.2e}, "
            f"tolerance {tolerance:.2e}); nothing was written (jalm export --no-verify skips the check)"
        )
