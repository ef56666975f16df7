"""Export an instruction-tuning run: a plain Hugging Face directory that chats in the format it learnt.

- weights: the base with the run's weights (LoRA merged into them), as model.safetensors; the merge is
  verified: the exported model's logits equal the adapter model's within float32 rounding at the logits'
  scale (jalm.model.agreement: 64 ulps of max |logit|, at least 1e-5) unless `verify` is False;
- everything is written to a hidden directory beside `out` and renamed to `out` only once verified, so a
  refused export leaves nothing behind that looks usable (jalm.io.staged_directory);
- `tokenizer_config.json` carries the run's `chat_template`, so `apply_chat_template(messages,
  tokenize=False, add_generation_prompt=True)` gives the string jalm trained on, and `</s>` written by the
  template is read as the end-of-sequence id (`split_special_tokens: false`, as for any chat model);
- `generation_config.json` stops at `</s>` and pads with it (LINE's sft models set pad id 2);
- `jalm.json` (provenance: base, LoRA settings, steps, data and what was set aside) and training/.
With `adapter_only`, the directory holds peft's adapter format (adapter_config.json +
adapter_model.safetensors) and the tokenizer files instead of merged weights.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from jalm.errors import JalmError
from jalm.io import staged_directory, write_atomic

TOKENIZER_FILES = ("spiece.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def export_sft(
    run_dir: Path,
    run: dict,
    out: Path,
    checkpoint: Path | None,
    adapter_only: bool = False,
    verify: bool = True,
) -> Path:
    from jalm.sft import base as sft_base
    from jalm.train import checkpoint as ckpt

    source = checkpoint or ckpt.latest_checkpoint(run_dir)
    if source is None:
        raise JalmError(f"{run_dir}: no complete checkpoint to export")
    lora = run.get("lora")
    if adapter_only and lora is None:
        raise JalmError(f"{run_dir}: a full fine-tuning run has no adapter; export it without --adapter-only")
    seed = run["config"]["seed"]
    model = sft_base.build_model(run["base"], lora, torch.device("cpu"), seed)
    ckpt.load_checkpoint(source, model, None, frozen=lora is not None)
    model.eval()
    with staged_directory(out) as staging:
        _write(run_dir, run, staging, source, model, lora, adapter_only, verify, shown=out)
    return out


def _write(run_dir, run, out, source, model, lora, adapter_only, verify, shown: Path) -> None:
    from jalm.sft.train import STATS_FILE
    from jalm.train import checkpoint as ckpt
    from jalm.train.trainer import RUN_CONFIG

    probe = _probe_ids(model)
    with torch.no_grad():
        reference = model(input_ids=probe).logits  # the run's model, adapters unmerged
    if adapter_only:
        model.save_pretrained(out, safe_serialization=True)
        merged = None
    else:
        merged = model.merge_and_unload() if lora is not None else model
        merged.config.pad_token_id = merged.config.eos_token_id
        merged.generation_config.eos_token_id = merged.config.eos_token_id
        merged.generation_config.pad_token_id = merged.config.eos_token_id
        merged.save_pretrained(out, safe_serialization=True)
        _write_portable_config(merged, out)
    write_chat_tokenizer(Path(run["base"]["tokenizer"]), out, run["chat_template"], merged)
    training = out / "training"
    training.mkdir(exist_ok=True)
    for name in ("metrics.jsonl", "loss.png", RUN_CONFIG, STATS_FILE):
        if (run_dir / name).exists():
            shutil.copy2(run_dir / name, training / name)
    state = ckpt.read_state(source)
    provenance = {
        "kind": "sft",
        "base": run["base"],
        "lora": lora,
        "adapter_only": adapter_only,
        "steps": state["step"],
        "tokens": state["tokens_seen"],
        "run_dir": str(run_dir),
        "checkpoint": str(source),
        "data": run["options"]["data"],
        "train_config": run.get("config", {}),
    }
    text = json.dumps(provenance, indent=2, ensure_ascii=False) + "\n"
    write_atomic(out / "jalm.json", text)
    if merged is not None and verify:
        verify_export(out, probe, reference, shown)


def _write_portable_config(model, out: Path) -> None:
    """config.json that transformers 4 and 5 read alike (rotary settings under both spellings)."""
    from jalm.model.build import portable_config_dict

    data = portable_config_dict(model.config)
    data["pad_token_id"] = model.config.eos_token_id
    write_atomic(out / "config.json", json.dumps(data, indent=2) + "\n")


def write_chat_tokenizer(tokenizer_dir: Path, out: Path, template: str, model=None) -> None:
    """The base's tokenizer files (exact ones rewritten for jalm tokenizers) plus the chat template."""
    from jalm.tokenizer import write_hf_tokenizer_files

    max_length = getattr(model.config, "max_position_embeddings", 2048) if model is not None else 2048
    try:
        write_hf_tokenizer_files(tokenizer_dir / "spiece.model", out, model_max_length=max_length)
    except JalmError:  # not a jalm tokenizer (e.g. LINE's published one): keep the base's files as they are
        copied = [name for name in TOKENIZER_FILES if (tokenizer_dir / name).exists()]
        if "tokenizer_config.json" not in copied:
            raise JalmError(f"{tokenizer_dir}: no tokenizer_config.json to carry the chat template") from None
        for name in copied:
            if not (out / name).exists() or not (out / name).samefile(tokenizer_dir / name):
                shutil.copy2(tokenizer_dir / name, out / name)
    path = out / "tokenizer_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config["chat_template"] = template
    config["split_special_tokens"] = False
    write_atomic(path, json.dumps(config, ensure_ascii=False, indent=2) + "\n")


def _probe_ids(model) -> torch.Tensor:
    vocab = model.config.vocab_size
    return torch.arange(3, 3 + min(48, vocab - 3)).unsqueeze(0)


def verify_export(
    out: Path, probe: torch.Tensor, reference: torch.Tensor, shown: Path | None = None
) -> float:
    """Reload the export with transformers' Auto class and demand the run's logits (adapters unmerged,
    taken before the merge) within float32 rounding at their scale; returns the largest difference."""
    from transformers import AutoModelForCausalLM

    from jalm.model.agreement import logits_difference

    exported = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    with torch.no_grad():
        diff, tolerance = logits_difference(reference, exported(input_ids=probe).logits)
    if diff > tolerance:
        raise JalmError(
            f"{shown or out}: exported model does not reproduce the run's logits (max diff {diff:.2e}, "
            f"tolerance {tolerance:.2e}); nothing was written (jalm export --no-verify skips the check)"
        )
    return diff
