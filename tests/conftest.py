"""Shared, session-scoped fixtures: one real pipeline run on bundled text, small enough for seconds.

corpus (real Wikipedia + Aozora text) → SentencePiece tokenizer → packed tokens → a 2-layer GPT-NeoX
trained for a few steps → an exported Hugging Face directory. Tests of later stages use these outputs.
"""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from jalm.jsonl import read_records

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory) -> Path:
    """A JSONL file of 80 real documents (60 Wikipedia articles, 20 Aozora works, the latter cut to 5k chars)."""
    wiki = itertools.islice(read_records([DATA / "corpus" / "wiki_jaquad.jsonl.zst"]), 60)
    aozora = itertools.islice(read_records([DATA / "corpus" / "aozora.jsonl.zst"]), 20)
    path = tmp_path_factory.mktemp("corpus") / "small.jsonl"
    with open(path, "w", encoding="utf-8") as out:
        for record in itertools.chain(wiki, aozora):
            record["text"] = record["text"][:5000]
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


@pytest.fixture(scope="session")
def tokenizer_dir(small_corpus, tmp_path_factory) -> Path:
    from jalm.tokenizer import train_tokenizer

    out = tmp_path_factory.mktemp("tokenizer")
    train_tokenizer([small_corpus], out, vocab_size=4000, progress=False)
    return out


@pytest.fixture(scope="session")
def packed_dir(small_corpus, tokenizer_dir, tmp_path_factory) -> Path:
    from jalm.data import pack

    out = tmp_path_factory.mktemp("packed")
    pack([small_corpus], tokenizer_dir, out, val_fraction=0.1, seq_len=64, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_run_dir(packed_dir, tmp_path_factory) -> Path:
    from jalm.train import train
    from jalm.train.config import default_config

    out = tmp_path_factory.mktemp("run")
    train(default_config("test", max_steps=30, save_every=15), packed_dir, out, device="cpu", progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_run_dir, tmp_path_factory) -> Path:
    """A Hugging Face GPT-NeoX directory exported by jalm (weights + spiece.model + tokenizer.json)."""
    from jalm.export import export

    return export(tiny_run_dir, tmp_path_factory.mktemp("model") / "model")


@pytest.fixture(scope="session")
def same_checkpoint():
    """A check that two runs' final checkpoints hold identical tensors (weights and optimizer moments)."""
    return assert_same_checkpoint


def assert_same_checkpoint(run_a: Path, run_b: Path) -> None:
    """The final checkpoints' tensors (weights and optimizer moments) are identical, bit for bit."""
    import torch
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    from jalm.train.checkpoint import latest_checkpoint

    a, b = latest_checkpoint(run_a), latest_checkpoint(run_b)
    assert a.name == b.name
    loaded = []
    for path in (a, b):
        dcp_to_torch_save(path, path.parent / f"{path.name}.pt")
        loaded.append(_flatten(torch.load(path.parent / f"{path.name}.pt", weights_only=True)))
    assert loaded[0].keys() == loaded[1].keys() and any(
        isinstance(v, torch.Tensor) for v in loaded[0].values()
    )
    for key, value in loaded[0].items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, loaded[1][key]), key


def _flatten(tree, prefix: str = "") -> dict:
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() for k, v in _flatten(sub, f"{prefix}{key}.").items()}
    if isinstance(tree, (list, tuple)):
        return {k: v for i, sub in enumerate(tree) for k, v in _flatten(sub, f"{prefix}{i}.").items()}
    return {prefix: tree}


def kill_9_when(process: subprocess.Popen, ready: Callable[[], bool], poll_s: float = 0.02) -> None:
    """SIGKILL `process` as soon as `ready()` holds (a checkpoint or marker exists), and check that it
    was killed, not finished."""
    while not ready() and process.poll() is None:
        time.sleep(poll_s)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=60) == -signal.SIGKILL, "the process finished before it could be killed"


@pytest.fixture(scope="session")
def kill_9():
    """kill_9_when, for tests that kill a run mid-way and resume it."""
    return kill_9_when
