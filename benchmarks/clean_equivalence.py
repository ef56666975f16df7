"""The clean stage's fast paths against straightforward reference implementations, on random text.

    .venv/bin/python benchmarks/clean_equivalence.py [--cases 20000] [--seed 0]

The filters compute their statistics with table lookups, bounds and shortcuts (see
jalm/corpus/features.py, repetition.py, normalize.py, keywords.py, dedup.py). Each shortcut must give exactly what
the plain definition gives. This script checks that on random texts built from the characters that
matter (Japanese, white space of every kind, line breaks, control and full-width characters,
combining marks, keywords and their pieces, repeated stretches) and on every document of the
bundled data. It needs no ../shared/data. Exit status 1 on any difference.

References (the definitions as the clean stage first implemented them):
- normalize: unicodedata NFKC, then CR/LF, control characters, spaces before line breaks, runs
  of blank lines, strip;
- keywords: every occurrence of every keyword (str.find), the script-boundary rule, counted in
  the order an Aho-Corasick scan reports them;
- character counts, sentence lengths, trailing-off lines, word gaps: per-character loops/regexes;
- repeated lines/paragraphs and n-grams: the bounds must not be below the exact shares;
- MinHash: numpy without blocks or shortcuts.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import unicodedata
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from jalm.corpus import chars, dedup
from jalm.corpus.features import Features, japanese_word_gaps, lookup_table
from jalm.corpus.keywords import KeywordMatcher, _script, read_list
from jalm.corpus.normalize import normalize_text
from jalm.corpus.repetition import duplicated_ngram_share, repeated_bound, repeated_share, top_ngram_share
from jalm.jsonl import read_records

ROOT = Path(__file__).resolve().parents[1]

_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200d\u2060\ufeff\ufffe]")
_TRAILING_OFF = re.compile(r"(?:・|\.\.)[ \t]*$", re.MULTILINE)


def reference_normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    text = re.sub(r"[ \t]+\n", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def reference_keyword_hits(lists: dict[str, list[str]], text: str) -> dict[str, list[tuple[str, int]]]:
    found = []
    for word in {w for words in lists.values() for w in words}:
        start = text.find(word)
        while start != -1:
            found.append((start + len(word) - 1, -len(word), start, word))
            start = text.find(word, start + 1)
    found.sort()
    hits: dict[str, Counter[str]] = {name: Counter() for name in lists}
    last = len(text) - 1
    for end, _, start, word in found:
        first, final = _script(word[0]), _script(word[-1])
        if first != "other" and start > 0 and _script(text[start - 1]) == first:
            continue
        if final != "other" and end < last and _script(text[end + 1]) == final:
            continue
        for name, words in lists.items():
            hits[name][word] += words.count(word)
    return {name: [(w, n) for w, n in counter.items() if n] for name, counter in hits.items()}


def reference_features(text: str) -> dict:
    codes = np.array([ord(c) for c in text], dtype=np.int64)
    classes = chars.TABLE[codes] if len(codes) else np.zeros(0, dtype=np.uint8)
    punct = chars.PUNCT[codes] if len(codes) else np.zeros(0, dtype=np.uint8)
    nonspace = np.cumsum(classes != chars.SPACE)
    ends = np.flatnonzero(punct & chars.BREAK)
    if len(codes):
        totals = nonspace[np.r_[ends, len(codes) - 1]]
        lengths = np.diff(np.r_[0, totals])
        lengths = lengths[lengths > 0]
    else:
        lengths = np.zeros(0, dtype=np.int64)
    space = (codes == 0x20) | (codes == 0x3000)
    ja = (classes == chars.HIRAGANA) | (classes == chars.KATAKANA) | (classes == chars.KANJI)
    gaps = 0
    if len(codes) >= 3 and space.any():
        gaps = int((space[1:-1] & ja[:-2] & ja[2:]).sum())
        if len(codes) > 3:
            gaps += int((space[1:-2] & space[2:-1] & ja[:-3] & ja[3:]).sum())
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    paragraphs = [p.strip() for p in text.split("\n\n") if p.strip()]
    return {
        "counts": np.bincount(classes, minlength=chars.N_CLASSES).tolist(),
        "ends": int(np.count_nonzero(punct & chars.END)),
        "sentence_lengths": lengths.tolist(),
        "trailing_off": len(_TRAILING_OFF.findall(text)),
        "word_gaps": gaps,
        "line_share": repeated_share(lines),
        "paragraph_share": repeated_share(paragraphs),
    }


def reference_signature(shingles: np.ndarray, num_hashes: int, seed: int = 0) -> np.ndarray | None:
    if len(shingles) == 0:
        return None
    salt = np.uint64((seed * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) & 0xFFFFFFFFFFFFFFFF)
    h = dedup.mix64(shingles ^ salt)
    bins = (h % np.uint64(num_hashes)).astype(np.intp)
    sig = np.full(num_hashes, 0xFFFFFFFF, dtype=np.uint32)
    np.minimum.at(sig, bins, (h >> np.uint64(32)).astype(np.uint32))
    filled = np.zeros(num_hashes, dtype=bool)
    filled[bins] = True
    if not filled.all():
        full, empty = np.flatnonzero(filled), np.flatnonzero(~filled)
        source = full[np.searchsorted(full, empty) % len(full)]
        distance = (source - empty) % num_hashes
        salted = dedup.mix64(
            sig[source].astype(np.uint64) + distance.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        )
        sig[empty] = (salted >> np.uint64(32)).astype(np.uint32)
    return sig


def check(text: str, lists: dict[str, list[str]], matcher: KeywordMatcher, problems: list[str]) -> None:
    def differ(what: str, got: object, want: object) -> None:
        problems.append(f"{what}: {got!r} != {want!r} for {text[:60]!r}")

    got = normalize_text(text)
    if got != reference_normalize(text):
        differ("normalize_text", got, reference_normalize(text))
    for candidate in (text, got):
        for table in (None, matcher.table):
            f = Features(candidate, table)
            ref = reference_features(candidate)
            checks = {
                "counts": (f.class_counts, ref["counts"]),
                "sentence ends": (f.n_sentence_ends, ref["ends"]),
                "sentence lengths": (f.sentence_lengths.tolist(), ref["sentence_lengths"]),
                "trailing_off": (f.trailing_off, ref["trailing_off"]),
                "word gaps": (japanese_word_gaps(f), ref["word_gaps"]),
            }
            for what, (a, b) in checks.items():
                if a != b:
                    differ(what, a, b)
            bounds = f.repetition_bounds
            if bounds is not None and (bounds[0] < ref["line_share"] or bounds[1] < ref["paragraph_share"]):
                differ(
                    "repetition bounds below the shares", bounds, (ref["line_share"], ref["paragraph_share"])
                )
        total = f.n_dense
        for n in (2, 4):
            exact = top_ngram_share(f.ngram_hashes(n), n, total) if total else 0.0
            if total and f.max_bigram_count * n / total < exact:
                differ(f"top {n}-gram bound below the share", f.max_bigram_count * n / total, exact)
        h10 = f.ngram_hashes(10)
        exact = duplicated_ngram_share(h10, 10, total) if total else 0.0
        for limit in (0.0, 0.3, 0.5):
            bound = repeated_bound(h10, 10, total, limit) if total else 0.0
            if bound < exact - 1e-12:
                differ(f"repeated 10-gram bound (limit {limit}) below the share", bound, exact)
        want, have = reference_signature(f.ngram_hashes(5), 128), dedup.signature(f.ngram_hashes(5), 128)
        if (want is None) != (have is None) or (want is not None and not np.array_equal(want, have)):
            differ("MinHash signature", have, want)
        want_hits = reference_keyword_hits(lists, candidate)
        have_hits = {name: list(counter.items()) for name, counter in matcher.count(candidate).items()}
        if want_hits != have_hits:
            differ("keyword hits", have_hits, want_hits)
        # the filter's way: the keyword bits come with the Features lookup
        f = Features(candidate, matcher.table)
        via_flags: dict[str, Counter[str]] = {name: Counter() for name in lists}
        for name, word in matcher.matches(candidate, f.codes, f.flags):
            via_flags[name][word] += 1
        if {name: list(c.items()) for name, c in via_flags.items()} != want_hits:
            differ("keyword hits (table lookup)", via_flags, want_hits)


@contextmanager
def thresholds(zero: bool):
    """Set the size thresholds that choose between two exact ways of computing something to 0."""
    from jalm.corpus import features, keywords, normalize

    names = [
        (features, "_SPLIT_FREE_MIN"),
        (features, "_COUNT_BY_CLASS_MIN"),
        (features, "_TRAILING_ARRAY_MIN"),
        (features, "_FEW_SPACES"),
        (keywords, "_FEW_STARTS"),
        (normalize, "_LAYOUT_MIN"),
    ]
    saved = [getattr(module, name) for module, name in names]
    try:
        if zero:
            for module, name in names:
                setattr(module, name, -1)
        yield
    finally:
        for (module, name), value in zip(names, saved):
            setattr(module, name, value)


def random_texts(rng: random.Random, lists: dict[str, list[str]], cases: int):
    words = [w for ws in lists.values() for w in ws]
    pools = [
        list("あいうえおかきくけこのにをはが。、「」・ーカタナ漢字日本語") + words,
        [" ", "\n", "\t", "\r", "\r\n", "\u3000", "\u00a0", "\x0c", "\x00", "\u200b", "\n\n\n", " \n"],
        list("ＡＢＣ１２３！？（）ｶﾀｶﾅﾞﾟ…‥㈱①¨") + ["\u0301", "\u3099", "e", "\u1100", "\u1161", "\uac00"],
        list("abcXYZ019.:/@<>#=_-") + ["http://a.jp/x", "www.b.jp", "x@y.jp", ">>12", "ID:abcdefg"],
        ["・\n", "..\n", "...", "。\n", "!", "?", "」", "』"],
        ["\n", " ", " \n", "\n\n", "\t", "\u3000", "あ", "カ", "。"],  # layout without control characters
    ]
    for _ in range(cases):
        # one, two or all pools: texts without control characters take other paths than those with
        chosen = rng.sample(pools, rng.choice((1, 2, len(pools))))
        length = rng.choice((8, 60, 400))  # long texts go through the array paths of the filters
        pieces = [rng.choice(rng.choice(chosen)) for _ in range(rng.randint(0, length))]
        if pieces and rng.random() < 0.3:  # a repeated stretch, for the repetition statistics
            stretch = pieces[: rng.randint(1, len(pieces))]
            pieces += stretch * rng.randint(1, 4)
        yield "".join(pieces)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    lists = {name: read_list(f"{name}_ja.txt") for name in ("adult", "hate", "ads", "boilerplate")}
    lists["extra"] = [
        "エロ",
        "エロ動画",
        "PR",
        "PRO",
        "a",
        "あ",
        "今すぐ",
        "すぐ",
    ]  # overlaps, one-character words
    matcher = KeywordMatcher(lists)
    default = KeywordMatcher({name: words for name, words in lists.items() if name != "extra"})
    assert lookup_table([]) is chars.FLAGS
    problems: list[str] = []
    rng = random.Random(args.seed)
    for i, text in enumerate(random_texts(rng, lists, args.cases)):
        # Every other text with the size thresholds at 0, so short texts also take the array
        # paths that only long documents take by default.
        with thresholds(zero=i % 2 == 1):
            check(text, lists, matcher, problems)
    bundled = [
        *sorted((ROOT / "data" / "corpus").glob("*.jsonl.zst")),
        ROOT / "data" / "dev" / "wiki_jaquad.jsonl.zst",
        ROOT / "data" / "noisy" / "web_raw.jsonl.zst",
    ]
    n_docs = 0
    for record in read_records(bundled):
        check(record["text"], {k: v for k, v in lists.items() if k != "extra"}, default, problems)
        n_docs += 1
    for problem in problems[:20]:
        print(problem)
    print(f"{args.cases} random texts and {n_docs} bundled documents: {len(problems)} differences")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
