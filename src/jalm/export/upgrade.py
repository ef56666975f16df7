"""`jalm export MODEL_DIR --upgrade`: bring a model directory written by an older jalm up to today's files.

Each fix is a small, idempotent edit of a JSON file, never of the weights; the caller gets the list of what
changed (empty when the directory is already current). The fixes:

- tokenizer_config.json without `model_input_names`: transformers 4.x's PreTrainedTokenizerFast then also
  returns `token_type_ids`, and `model.generate(**tokenizer(text, return_tensors="pt"))` fails on GPT-2 and
  GPT-NeoX with "model_kwargs are not used by the model: ['token_type_ids']".
- a GPT-NeoX config.json with only transformers 5's `rope_parameters`: transformers 4.x reads it as
  `rotary_pct` 0.25, a silently different model; both spellings are written.
"""

from __future__ import annotations

import json
from pathlib import Path

from jalm.errors import JalmError
from jalm.io import write_atomic

MODEL_INPUT_NAMES = ["input_ids", "attention_mask"]


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise JalmError(f"{path}: cannot read it as JSON ({error})") from None


def _write_json(path: Path, data: dict) -> None:
    write_atomic(path, json.dumps(data, ensure_ascii=False, indent=2) + "\n")


def upgrade_tokenizer_config(model_dir: Path) -> list[str]:
    path = model_dir / "tokenizer_config.json"
    config = _read_json(path)
    if config.get("model_input_names") == MODEL_INPUT_NAMES:
        return []
    before = config.get("model_input_names")
    config["model_input_names"] = MODEL_INPUT_NAMES
    _write_json(path, config)
    return [f"{path.name}: model_input_names {before} → {MODEL_INPUT_NAMES} (no token_type_ids under 4.x)"]


def upgrade_model_config(model_dir: Path) -> list[str]:
    from jalm.model.families.common import ROTARY_BASE

    path = model_dir / "config.json"
    config = _read_json(path)
    if config.get("model_type") != "gpt_neox":
        return []
    rope = config.get("rope_parameters") or {}
    wanted = {
        "rotary_pct": rope.get("partial_rotary_factor", config.get("rotary_pct", 1.0)),
        "rotary_emb_base": rope.get("rope_theta", config.get("rotary_emb_base", ROTARY_BASE)),
    }
    missing = {key: value for key, value in wanted.items() if key not in config}
    if not missing:
        return []
    config.update(missing)
    _write_json(path, config)
    return [
        f"{path.name}: added {key} = {value} (transformers 4.x reads it)" for key, value in missing.items()
    ]


def upgrade_export(model_dir: str | Path) -> list[str]:
    """Upgrade a jalm model directory in place; returns one line per change made."""
    model_dir = Path(model_dir)
    for name in ("config.json", "tokenizer_config.json"):
        if not (model_dir / name).is_file():
            raise JalmError(f"{model_dir}: not a model directory (no {name})")
    return upgrade_tokenizer_config(model_dir) + upgrade_model_config(model_dir)
