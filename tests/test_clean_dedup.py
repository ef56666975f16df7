"""Exact and near-duplicate removal across shards and worker processes: one copy kept, always the same."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from jalm.corpus import clean, dedup
from jalm.corpus.features import Features
from jalm.corpus.normalize import normalize_text
from jalm.jsonl import read_records

ROOT = Path(__file__).resolve().parents[1]
WIKI = ROOT / "data" / "corpus" / "wiki_jaquad.jsonl.zst"


@pytest.fixture(scope="module")
def texts() -> list[str]:
    # Articles of 2,000+ characters, so that the small edits below keep them near-duplicates.
    articles = (normalize_text(r["text"]) for r in read_records([WIKI]))
    return [t for _, t in zip(range(30), (t for t in articles if len(t) >= 2000 and "\n" in t))]


def edit(text: str, rng: random.Random, n_changes: int = 6) -> str:
    """Small edits as in copied web pages: a few characters changed, a sentence dropped, one added."""
    chars = list(text)
    for _ in range(n_changes):
        chars[rng.randrange(len(chars))] = rng.choice("あいうえおカキクケコ")
    edited = "".join(chars)
    sentences = edited.split("。")
    del sentences[rng.randrange(1, len(sentences) - 1)]
    sentences.insert(1, "この記事は転載されたものです")
    return "。".join(sentences)


def shingles(text: str) -> set[str]:
    dense = "".join(text.split())
    return {dense[i : i + 5] for i in range(len(dense) - 4)}


def test_minhash_estimates_jaccard(texts: list[str]) -> None:
    rng = random.Random(0)
    errors = []
    for text in texts[:12]:
        other = edit(text, rng, n_changes=rng.randrange(2, 40))
        a, b = shingles(text), shingles(other)
        true = len(a & b) / len(a | b)
        sig_a = dedup.signature(Features(text).ngram_hashes(5), 128)
        sig_b = dedup.signature(Features(other).ngram_hashes(5), 128)
        errors.append(abs(float((sig_a == sig_b).mean()) - true))
    assert np.mean(errors) < 0.05 and max(errors) < 0.15
    # Unrelated articles are far apart.
    sig = [dedup.signature(Features(t).ngram_hashes(5), 128) for t in texts[:10]]
    cross = [float((sig[i] == sig[j]).mean()) for i in range(10) for j in range(i + 1, 10)]
    assert max(cross) < 0.2


def write_shards(folder: Path, texts: list[str]) -> dict[str, str]:
    """4 shards; groups of duplicates spread over different shards. Returns {doc id: group}."""
    rng = random.Random(1)
    folder.mkdir()
    shards: list[list[dict]] = [[] for _ in range(4)]
    group_of: dict[str, str] = {}
    for i, text in enumerate(texts[:24]):
        shards[i % 4].append({"id": f"orig-{i}", "text": text})
        group_of[f"orig-{i}"] = f"g{i}"
    for i in range(8):  # near-duplicates of 8 originals, placed in other shards
        for copy in range(1 + i % 2):
            doc_id = f"near-{i}-{copy}"
            copy_text = edit(texts[i], rng)
            a, b = shingles(texts[i]), shingles(copy_text)
            assert len(a & b) / len(a | b) > 0.8  # a near-duplicate by construction
            shards[(i + 1 + copy) % 4].append({"id": doc_id, "text": copy_text})
            group_of[doc_id] = f"g{i}"
    for i in (10, 11):  # exact copies (after normalisation) in two other shards
        for copy in range(2):
            doc_id = f"exact-{i}-{copy}"
            # CRLF line ends and trailing spaces: the same text once normalised
            shards[(i + 2 + copy) % 4].append({"id": doc_id, "text": texts[i].replace("\n", "  \r\n")})
            group_of[doc_id] = f"g{i}"
    for n, records in enumerate(shards):
        rng.shuffle(records)
        with open(folder / f"part-{n}.jsonl", "w", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return group_of


def kept_ids(out: Path) -> list[str]:
    return sorted(r["id"] for r in read_records(sorted((out / "kept").glob("*.jsonl*"))))


def test_near_duplicates_across_shards_and_workers(tmp_path: Path, texts: list[str]) -> None:
    group_of = write_shards(tmp_path / "in", texts)
    stats = clean([tmp_path / "in"], tmp_path / "out", workers=2, progress=False)
    kept = kept_ids(tmp_path / "out")
    # Exactly one copy per group, and every group survives.
    groups = [group_of[i] for i in kept]
    assert sorted(groups) == sorted(set(group_of.values()))
    assert stats["rejected"] == {"near_duplicate": 12, "exact_duplicate": 4}
    assert stats["dedup"]["near_duplicates"] == 12 and stats["dedup"]["exact_duplicates"] == 4
    # The copy kept is the first one in shard order, then line order; every rejection names it.
    order = [r["id"] for r in read_records(sorted((tmp_path / "in").glob("*.jsonl")))]
    first = {}
    for doc_id in order:
        first.setdefault(group_of[doc_id], doc_id)
    assert set(kept) == set(first.values())
    for record in read_records(sorted((tmp_path / "out" / "rejected").glob("*.jsonl*"))):
        rule, evidence = record["reason"].split(": ", 1)
        assert rule in ("near_duplicate", "exact_duplicate")
        assert first[group_of[record["id"]]] in evidence
        if rule == "near_duplicate":
            assert "MinHash Jaccard ≈ 0." in evidence
    # The same run with one worker keeps the very same documents.
    clean([tmp_path / "in"], tmp_path / "out1", workers=1, progress=False)
    assert kept_ids(tmp_path / "out1") == kept


def test_dedup_can_be_switched_off(tmp_path: Path, texts: list[str]) -> None:
    write_shards(tmp_path / "in", texts)
    from jalm.corpus import CleanConfig

    config = CleanConfig.load(overrides={"dedup": {"exact": False, "near": False}})
    stats = clean([tmp_path / "in"], tmp_path / "out", config=config, progress=False)
    assert stats["kept"] == stats["input"] and stats["rejected"] == {}
