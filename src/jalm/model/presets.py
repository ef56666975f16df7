"""Named model shapes: each family's (model/families/), gathered here. `1.7b` and `3.6b` are LINE's
published configs, `llm-jp-3-*` LLM-jp-3's; the small ones fit a laptop CPU.

We train transformers' own `GPT2LMHeadModel` / `GPTNeoXForCausalLM` / `LlamaForCausalLM` rather than a model
of our own, so export is exact by construction — the released directory holds the very classes we trained
(docs/design.md).
"""

from __future__ import annotations

import json
from pathlib import Path

from jalm.errors import JalmError
from jalm.model.families import FAMILIES, ModelPreset

PRESETS: dict[str, ModelPreset] = {p.name: p for f in FAMILIES.values() for p in f.presets}


def get_preset(name: str) -> ModelPreset:
    """A named preset, or the shape of a Hugging Face model directory (continued pretraining)."""
    if name in PRESETS:
        return PRESETS[name]
    if Path(name, "config.json").is_file():
        from jalm.model.build import preset_from_config

        path = Path(name, "config.json")
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise JalmError(f"{path}: cannot read it as JSON ({error})") from None
        return preset_from_config(config, str(name))
    raise JalmError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}, or a model directory")


__all__ = ["PRESETS", "ModelPreset", "get_preset"]
