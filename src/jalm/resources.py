"""Where the bundled demo and evaluation data live (data/ at the repository root, see data/LICENSES.md)."""

from __future__ import annotations

import os
from pathlib import Path

from jalm.errors import JalmError


def bundled_data_dir() -> Path:
    """The repository's data/ directory; JALM_DATA overrides it (e.g. for a wheel install)."""
    override = os.environ.get("JALM_DATA")
    path = Path(override) if override else Path(__file__).resolve().parents[2] / "data"
    if not (path / "LICENSES.md").exists():
        raise JalmError(
            f"{path}: bundled data not found; set JALM_DATA to the data/ directory of a jalm checkout"
        )
    return path


def bundled(relative: str) -> Path:
    path = bundled_data_dir() / relative
    if not path.exists():
        raise JalmError(f"{path}: bundled data file missing")
    return path
