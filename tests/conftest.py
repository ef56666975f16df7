"""Shared, session-scoped fixtures: one real pipeline run on bundled text, small enough for seconds.

corpus (real Wikipedia + Aozora text) → SentencePiece tokenizer → packed tokens → a 2-layer GPT-NeoX
trained for a few steps → an exported Hugging Face directory. Tests of later stages use these outputs.
"""

from __future__ import annotations

import itertools
import json
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
