"""The import layering (pyproject.toml's contract, scripts/check_imports.py) holds, and a new circle fails it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECK = ROOT / "scripts" / "check_imports.py"


def _check(src: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(CHECK), str(src)], capture_output=True, text=True, timeout=300)


def _copy_tree(tmp_path: Path) -> Path:
    shutil.copytree(
        ROOT / "src" / "jalm", tmp_path / "src" / "jalm", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path / "src"


def test_the_layering_holds():
    result = _check(ROOT / "src")
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_import_that_climbs_a_layer_fails(tmp_path):
    src = _copy_tree(tmp_path)
    split = src / "jalm" / "data" / "split.py"
    # Inside a function, where no linter of the module's top sees it.
    split.write_text(split.read_text() + "\n\ndef _climb():\n    from jalm.train import loop  # noqa\n")
    result = _check(src)
    assert result.returncode != 0
    assert "jalm.data.split -> jalm.train" in result.stdout + result.stderr


def test_a_circle_inside_a_stage_fails(tmp_path):
    src = _copy_tree(tmp_path)
    registry = src / "jalm" / "corpus" / "registry.py"
    registry.write_text(
        registry.read_text() + "\n\ndef _all():\n    from jalm.corpus import filters  # noqa\n"
    )
    result = _check(src)
    assert result.returncode != 0
    assert "import circle:" in result.stderr and "jalm.corpus.registry" in result.stderr
