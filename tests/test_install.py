"""`pip install jalm[clean]` in a fresh virtual environment: no torch, no transformers, and `jalm clean` on
the bundled corpus decides exactly what the full install decides.

This installs the clean extra's packages from the package registry (PyPI), the one thing a user of a CPU
cluster does; it takes about two minutes with a cold pip cache."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_clean_extra_installs_without_torch_and_cleans_the_bundled_corpus(tmp_path):
    from jalm.corpus.pipeline import clean

    source = tmp_path / "jalm"  # a copy, so that the build leaves nothing in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", f"{source}[clean]"],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    probe = "import importlib.util as u; print([m for m in ('torch', 'transformers') if u.find_spec(m)])"
    assert subprocess.run([str(python), "-c", probe], capture_output=True, text=True).stdout.strip() == "[]"
    jalm = venv / "bin" / "jalm"
    assert "clean" in subprocess.run([str(jalm), "--help"], capture_output=True, text=True, check=True).stdout
    out = tmp_path / "cleaned"
    result = subprocess.run(
        [str(jalm), "clean", str(REPO / "data" / "corpus"), "--out", str(out), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    stats = json.loads((out / "stats.json").read_text())
    assert stats["input"] > 800 and stats["kept"] > 0.9 * stats["input"]
    assert list((out / "kept").glob("*.jsonl.zst"))
    # the same decisions as this (full) install makes
    full = clean(sorted((REPO / "data" / "corpus").glob("*.jsonl.zst")), tmp_path / "full", progress=False)
    assert (stats["kept"], stats["rejected"]) == (full["kept"], full["rejected"])
