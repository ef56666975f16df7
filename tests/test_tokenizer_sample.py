"""The tokenizer's sample drawn by shard jobs on two workers: the same counts as the single-process
reservoir, every file in proportion to its sentences, and the whole corpus when it fits."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from jalm.executors import Executor
from jalm.jsonl import read_records, read_texts
from jalm.tokenizer import sample_sentences, split_sentences, train_tokenizer
from jalm.tokenizer.sample import sample_parallel

ROOT = Path(__file__).resolve().parents[1]
CORPUS = [ROOT / "data" / "corpus" / "aozora.jsonl.zst", ROOT / "data" / "corpus" / "wiki_jaquad.jsonl.zst"]


def _files(tmp_path: Path) -> list[Path]:
    """Three sources of unequal size and style: two slices of Wikipedia QA, one of Aozora Bunko."""
    wiki = list(read_records([CORPUS[1]]))
    aozora = list(read_records([CORPUS[0]]))
    parts = {"wiki-a": wiki[:100], "wiki-b": wiki[100:400], "aozora": aozora[:60]}
    paths = []
    for name, records in parts.items():
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
        paths.append(path)
    return paths


def test_parallel_sample_is_uniform_over_sentences(tmp_path: Path) -> None:
    files = _files(tmp_path)
    per_file = [Counter(s for t in read_texts([f]) for s in split_sentences(t)) for f in files]
    everything = sum(per_file, Counter())
    total = sum(everything.values())
    _, single = sample_sentences(read_texts(files), 1000, seed=3)
    with Executor(2) as runner:
        whole, counts = sample_parallel(files, total + 10, 3, runner)
        assert Counter(whole) == everything  # room for all: every sentence exactly once
        assert (
            counts["sample_files_read_twice"] >= 1
        )  # Aozora's short lines: more sentences than its bytes' share
        sample, counts = sample_parallel(files, 1000, 3, runner)
    assert counts["sentences_seen"] == single["sentences_seen"] == total
    assert counts["documents"] == single["documents"] and counts["sentences_used"] == 1000
    assert counts["sample_jobs"] == 3
    assert not Counter(sample) - everything  # drawn from the corpus, without replacement
    # Each file gives in proportion to its sentences (a hypergeometric draw: within 5 standard deviations).
    drawn = Counter(sample)
    for counter in per_file:
        n = sum(counter.values())
        got = sum(
            (drawn & counter).values()
        )  # (a sentence in two files counts for both: rare, and tolerated)
        p = n / total
        sd = (1000 * p * (1 - p) * (total - 1000) / (total - 1)) ** 0.5
        assert abs(got - 1000 * p) <= 5 * sd + 1, (got, 1000 * p, sd)


def test_tokenizer_train_with_two_workers(tmp_path: Path) -> None:
    files = _files(tmp_path)
    out = train_tokenizer(
        files, tmp_path / "tok", vocab_size=4000, max_sentences=3000, progress=False, workers=2
    )
    stats = json.loads((out / "train_stats.json").read_text(encoding="utf-8"))
    assert stats["sample_jobs"] == 3 and stats["sentences_used"] == 3000
    assert (out / "spiece.model").exists()
