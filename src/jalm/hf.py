"""Loading any Hugging Face causal-LM directory safely, with one-line errors for what users get wrong."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from jalm.errors import JalmError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
TOKENIZER_FILES = ("tokenizer.json", "spiece.model", "tokenizer.model", "vocab.json")


def check_model_dir(model_dir: str | Path, need_weights: bool = True, need_tokenizer: bool = True) -> Path:
    path = Path(model_dir)
    if not path.is_dir():
        raise JalmError(f"{path}: no such model directory")
    if not (path / "config.json").exists():
        raise JalmError(f"{path}: not a Hugging Face model directory (no config.json)")
    if need_weights and not any((path / name).exists() for name in WEIGHT_FILES):
        raise JalmError(
            f"{path}: model directory has no weights (model.safetensors); run `jalm export` first"
        )
    if need_tokenizer and not any((path / name).exists() for name in TOKENIZER_FILES):
        raise JalmError(f"{path}: model directory has no tokenizer (tokenizer.json or spiece.model)")
    return path


def load_tokenizer(
    model_dir: str | Path, use_fast: bool = False, trust_remote_code: bool = False
) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    path = check_model_dir(model_dir, need_weights=False)
    try:
        return AutoTokenizer.from_pretrained(path, use_fast=use_fast, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as error:
        raise JalmError(f"{path}: tokenizer cannot be loaded ({str(error).splitlines()[0][:200]})") from None


def load_model(
    model_dir: str | Path, device: str = "cpu", dtype: str = "float32", trust_remote_code: bool = False
) -> PreTrainedModel:
    import torch
    from transformers import AutoModelForCausalLM

    path = check_model_dir(model_dir, need_tokenizer=False)
    torch_dtype = {
        "float32": torch.float32,
        "bfloat16": torch.bfloat16,
        "float16": torch.float16,
        "auto": "auto",
    }.get(dtype)
    if torch_dtype is None:
        raise JalmError(f"unknown dtype {dtype!r}; choose float32, bfloat16, float16 or auto")
    try:
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=torch_dtype, trust_remote_code=trust_remote_code
        )
    except (OSError, ValueError) as error:
        raise JalmError(f"{path}: model cannot be loaded ({str(error).splitlines()[0][:200]})") from None
    return model.to(device).eval()
