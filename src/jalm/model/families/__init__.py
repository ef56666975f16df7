"""The model families jalm trains, each in one module, registered here.

A family (families/base.py) holds everything jalm knows about one layout: its presets, the config
written for transformers 4.x and 5.x, the init recipe, the block class FSDP2 wraps, LoRA targets, the
GGUF tensor map, what the vLLM check reads, how its config.json maps onto a preset. Code elsewhere asks
`family(model_type)` instead of branching on the layout. To add one: write families/NAME.py with a
`FAMILY`, and list it in `_MODULES`.

Only dataclasses and callables: importing this costs no torch (`jalm --help` reads the presets).
"""

from __future__ import annotations

from importlib import import_module

from jalm.errors import JalmError
from jalm.model.families.base import Family, Finding, ModelPreset, Tensor

_MODULES = ("gpt2", "gpt_neox", "llama")
FAMILIES: dict[str, Family] = {}
for _name in _MODULES:
    _family = import_module(f"jalm.model.families.{_name}").FAMILY
    FAMILIES[_family.model_type] = _family
_ALIASES = {alias: f for f in FAMILIES.values() for alias in f.also}


def family(model_type: str | None, where: str = "") -> Family:
    """The family of a model_type (a preset's layout or config.json's), or a one-line error."""
    found = FAMILIES.get(model_type) or _ALIASES.get(model_type)
    if found is None:
        known = ", ".join([*FAMILIES, *_ALIASES])
        raise JalmError(f"{where + ': ' if where else ''}model_type {model_type!r}; jalm knows {known}")
    return found


def family_of_architecture(architecture: str) -> Family | None:
    return next((f for f in FAMILIES.values() if f.architecture == architecture), None)


__all__ = ["FAMILIES", "Family", "Finding", "ModelPreset", "Tensor", "family", "family_of_architecture"]
