"""The clean stage's configuration: the packaged defaults, merged with a user's TOML or JSON file."""

from __future__ import annotations

import copy
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jalm.errors import JalmError

DEFAULT_CONFIG_PATH = Path(__file__).with_name("default_config.toml")


def _load_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    with open(path, "rb") as handle:
        return tomllib.load(handle)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML or JSON config file into a dict, or raise a one-line JalmError."""
    path = Path(path)
    if not path.exists():
        raise JalmError(f"{path}: no such config file")
    try:
        if path.suffix == ".json":
            return json.loads(path.read_text(encoding="utf-8"))
        return _load_toml(path)
    except (ValueError, UnicodeDecodeError) as error:
        raise JalmError(f"{path}: not a valid config file ({error})") from None


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge `override` into a copy of `base` (tables merge, values replace)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@dataclass
class CleanConfig:
    """All settings of a clean run; `CleanConfig()` gives the defaults of default_config.toml."""

    settings: dict[str, Any] = field(default_factory=lambda: _load_toml(DEFAULT_CONFIG_PATH))

    @classmethod
    def load(cls, path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> CleanConfig:
        settings = _load_toml(DEFAULT_CONFIG_PATH)
        if path is not None:
            settings = merge(settings, read_config_file(path))
        if overrides:
            settings = merge(settings, overrides)
        config = cls(settings)
        config.validate(str(path or DEFAULT_CONFIG_PATH))
        return config

    def validate(self, where: str = "config") -> None:
        from jalm.corpus.filters import FILTERS
        from jalm.corpus.refine import validate as validate_refine

        validate_refine(self.settings, where)
        for name in self.settings.get("filters", {}):
            if name not in FILTERS:
                known = ", ".join(FILTERS)
                raise JalmError(f"{where}: unknown filter {name!r} (known: {known})")
        from jalm.corpus.html import EXTRACTORS

        extractor = self.settings.get("html", {}).get("extractor", "resiliparse")
        if extractor not in EXTRACTORS:
            raise JalmError(f"{where}: unknown HTML extractor {extractor!r} (known: {', '.join(EXTRACTORS)})")

    @property
    def text_field(self) -> str:
        return self.settings.get("text_field", "text")

    @property
    def normalize(self) -> str:
        return self.settings.get("normalize", "NFKC")

    def filters(self) -> list[tuple[str, dict[str, Any]]]:
        """Enabled filters in configured order, as (name, parameters)."""
        out = []
        for name, params in self.settings.get("filters", {}).items():
            params = dict(params)
            if params.pop("enabled", True):
                out.append((name, params))
        return out

    def section(self, name: str) -> dict[str, Any]:
        return dict(self.settings.get(name, {}))
