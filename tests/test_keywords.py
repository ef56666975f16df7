"""The keyword matcher's fast path (candidate starts kept by a pair/triple hash once a text has more than
_FEW_STARTS of them) finds exactly what every-occurrence str.find finds, on the packaged lists.

benchmarks/clean_equivalence.py checks this with 20,000 random texts; this keeps the check in the tests,
and shows the texts do take the hash path: with the hash tables emptied, the matcher misses keywords."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np
import pytest

from jalm.corpus import keywords
from jalm.corpus.keywords import KeywordMatcher, read_list

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from clean_equivalence import random_texts, reference_keyword_hits  # noqa: E402

LISTS = {name: read_list(f"{name}_ja.txt") for name in ("adult", "hate", "ads", "boilerplate")}


def _keyword_dense_texts(n: int) -> list[str]:
    """Texts of many keywords and their pieces in prose: hundreds of candidate starts each."""
    rng = random.Random(7)
    words = [w for ws in LISTS.values() for w in ws]
    pieces = words + [w[: len(w) // 2] for w in words] + list("あいうのにをは。、「」カタ漢字 \n")
    return ["".join(rng.choice(pieces) for _ in range(rng.randint(80, 400))) for _ in range(n)]


def _hits(matcher: KeywordMatcher, text: str) -> dict[str, list[tuple[str, int]]]:
    return {name: list(counter.items()) for name, counter in matcher.count(text).items()}


@pytest.mark.parametrize("few_starts", [keywords._FEW_STARTS, -1])  # default, and the hash path always
def test_fast_path_finds_every_occurrence(few_starts, monkeypatch):
    monkeypatch.setattr(keywords, "_FEW_STARTS", few_starts)
    matcher = KeywordMatcher(LISTS)
    texts = _keyword_dense_texts(150) + list(random_texts(random.Random(0), LISTS, 400))
    hashed = 0
    for text in texts:
        assert _hits(matcher, text) == reference_keyword_hits(LISTS, text), text[:80]
        codes = keywords.codepoints(text)
        flags = matcher.table.take(codes)
        starts = ((flags[:-1] & (flags[1:] >> 1) & keywords.FIRST) != 0).sum() if len(text) > 1 else 0
        hashed += starts > keywords._FEW_STARTS
    assert hashed >= 150  # the dense texts all went through the hash step
    assert sum(bool(sum(map(len, reference_keyword_hits(LISTS, t).values()))) for t in texts) >= 150


def test_the_check_can_fail_when_the_hash_tables_are_wrong(monkeypatch):
    monkeypatch.setattr(keywords, "_FEW_STARTS", -1)
    matcher = KeywordMatcher(LISTS)
    matcher.pairs = np.zeros_like(matcher.pairs)
    matcher.triples = np.zeros_like(matcher.triples)
    texts = _keyword_dense_texts(20)
    assert any(_hits(matcher, t) != reference_keyword_hits(LISTS, t) for t in texts)
