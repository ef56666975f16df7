"""Data shared by all runs of all experiments, built once and cached.

cache/base-<key>/    the bundled corpus subset (source.jsonl.zst) → `jalm clean` → tokenizer → packed/
cache/noisy-<key>/   that subset mixed with noise (noisy.jsonl.zst); packed as is (packed_noisy/) and after
                     `jalm clean` (clean/, packed_filtered/); composition.json says what was removed
Each directory is keyed by a hash of the settings it was built from and holds done.json once complete, so
an interrupted build is redone and a finished one is reused by every later experiment. The key covers the
experiment's settings, not the code of the stages: after changing `jalm clean` or the tokenizer, delete the
cache (or pass a new --cache) to rebuild with the new code.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import shutil
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from jalm.experiment.noise import make_noise
from jalm.experiment.scale import Scale
from jalm.io import write_atomic

CACHE_VERSION = 1
CORPUS_FILES = ("corpus/wiki_jaquad.jsonl.zst", "corpus/aozora.jsonl.zst")
WEB_RAW_FILE = "noisy/web_raw.jsonl.zst"
DEV_FILE = "dev/wiki_jaquad.jsonl.zst"
LABEL = "experiment_label"  # which part of the noisy corpus a record came from (kept through `jalm clean`)
NOISE_SEED = 1234
WEB_RAW_SHARE = 0.25  # at most this share of the noise budget is the bundled raw web pages


def _key(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]


def _done(path: Path) -> dict | None:
    marker = path / "done.json"
    return json.loads(marker.read_text(encoding="utf-8")) if marker.exists() else None


def _fresh(path: Path) -> None:
    """An unfinished build is started over: its steps are cheap next to the trainings that use it."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)


def _write_done(path: Path, info: dict) -> dict:
    write_atomic(path / "done.json", json.dumps(info, indent=2, ensure_ascii=False) + "\n")
    return info


def base_settings(scale: Scale) -> dict:
    return {
        "version": CACHE_VERSION,
        "corpus_docs": scale.corpus_docs,
        "doc_chars": scale.doc_chars,
        "vocab_size": scale.vocab_size,
        "val_fraction": scale.val_fraction,
        "seq_len": scale.seq_len,
    }


def source_records(scale: Scale) -> list[dict]:
    """The bundled corpus subset: the first `corpus_docs` documents of each file, cut to `doc_chars`."""
    from jalm.jsonl import read_records
    from jalm.resources import bundled

    records = []
    for name in CORPUS_FILES:
        for record in itertools.islice(read_records([bundled(name)]), scale.corpus_docs):
            if scale.doc_chars is not None:
                record["text"] = record["text"][: scale.doc_chars]
            records.append(record)
    return records


def base_data(cache: Path, scale: Scale, progress: bool = True) -> dict[str, Any]:
    """Clean corpus, tokenizer and packed tokens for the schedule, β2 and init experiments."""
    from jalm.corpus import clean
    from jalm.data import pack
    from jalm.jsonl import write_records
    from jalm.tokenizer import train_tokenizer

    settings = base_settings(scale)
    root = Path(cache) / f"base-{_key(settings)}"
    done = _done(root)
    if done is not None:
        return done
    _fresh(root)
    write_records(root / "source.jsonl.zst", source_records(scale))
    stats = clean([root / "source.jsonl.zst"], root / "clean", progress=progress)
    train_tokenizer(
        [root / "clean" / "kept"],
        root / "tokenizer",
        vocab_size=scale.vocab_size,
        max_sentences=200_000,
        progress=progress,
    )
    meta = pack(
        [root / "clean" / "kept"],
        root / "tokenizer",
        root / "packed",
        val_fraction=scale.val_fraction,
        seq_len=scale.seq_len,
        progress=progress,
    )
    return _write_done(
        root,
        {
            "settings": settings,
            "root": str(root),
            "tokenizer": str(root / "tokenizer"),
            "packed": str(root / "packed"),
            "clean": {"input": stats["input"], "kept": stats["kept"], "rejected": stats.get("rejected", {})},
            "train_tokens": meta["train_tokens"],
            "val_tokens": meta["val_tokens"],
        },
    )


def noisy_records(scale: Scale) -> list[dict]:
    """The corpus subset mixed with the bundled raw web pages and synthetic noise, shuffled; each labelled."""
    from jalm.jsonl import read_records
    from jalm.resources import bundled

    clean_docs = [{**r, LABEL: "corpus"} for r in source_records(scale)]
    budget = int(scale.noise_ratio * sum(len(r["text"]) for r in clean_docs))
    web, used = [], 0
    for record in read_records([bundled(WEB_RAW_FILE)]):
        if used + len(record["text"]) <= WEB_RAW_SHARE * budget:
            web.append({**record, LABEL: "web_raw (bundled)"})
            used += len(record["text"])
    noise = make_noise([r["text"] for r in clean_docs], budget - used, seed=NOISE_SEED)
    records = clean_docs + web + [{**r, LABEL: r["source"]} for r in noise]
    random.Random(NOISE_SEED).shuffle(records)
    return records


def _composition(noisy: list[dict], clean_dir: Path) -> dict[str, dict]:
    """Per label: documents and characters before cleaning, kept after, and the rules that removed the rest."""
    from jalm.jsonl import expand_inputs, read_records

    table: dict[str, dict] = defaultdict(
        lambda: {"docs": 0, "chars": 0, "kept_docs": 0, "kept_chars": 0, "removed_by": Counter()}
    )
    for record in noisy:
        row = table[record[LABEL]]
        row["docs"] += 1
        row["chars"] += len(record["text"])
    for record in read_records(expand_inputs([clean_dir / "kept"])):
        row = table[record[LABEL]]
        row["kept_docs"] += 1
        row["kept_chars"] += len(record["text"])  # after HTML extraction and normalisation
    rejected = clean_dir / "rejected"
    if rejected.is_dir() and any(rejected.iterdir()):
        for record in read_records(expand_inputs([rejected])):
            table[record[LABEL]]["removed_by"][str(record.get("reason", "?")).split(":")[0]] += 1
    return {
        label: {**row, "removed_by": dict(row["removed_by"].most_common())}
        for label, row in sorted(table.items())
    }


def noisy_data(cache: Path, scale: Scale, base: dict[str, Any], progress: bool = True) -> dict[str, Any]:
    """The filtering experiment's two training sets, packed with the base tokenizer so token counts compare."""
    from jalm.corpus import clean
    from jalm.data import pack
    from jalm.jsonl import write_records

    settings = {**base_settings(scale), "noise_ratio": scale.noise_ratio, "noise_seed": NOISE_SEED}
    root = Path(cache) / f"noisy-{_key(settings)}"
    done = _done(root)
    if done is not None:
        return done
    _fresh(root)
    records = noisy_records(scale)
    write_records(root / "noisy.jsonl.zst", records)
    stats = clean([root / "noisy.jsonl.zst"], root / "clean", progress=progress)
    composition = _composition(records, root / "clean")
    packed = {}
    for name, inputs in (("noisy", [root / "noisy.jsonl.zst"]), ("filtered", [root / "clean" / "kept"])):
        meta = pack(
            inputs,
            base["tokenizer"],
            root / f"packed_{name}",
            val_fraction=scale.val_fraction,
            seq_len=scale.seq_len,
            progress=progress,
        )
        packed[name] = {
            "dir": str(root / f"packed_{name}"),
            "train_tokens": meta["train_tokens"],
            "train_documents": meta["train_documents"],
            "train_chars": meta["train_chars"],
        }
    return _write_done(
        root,
        {
            "settings": settings,
            "root": str(root),
            "tokenizer": base["tokenizer"],
            "packed": packed,
            "composition": composition,
            "clean": {"input": stats["input"], "kept": stats["kept"], "rejected": stats.get("rejected", {})},
        },
    )
