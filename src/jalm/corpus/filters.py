"""Document filters: each takes a document's features and its parameters, and returns None to keep
the document or a reason string "rule: evidence" to reject it.

A filter is a plain function registered under its name in `FILTERS`; the configuration lists the
filters to run, in order, with their parameters (see default_config.json, where each parameter is
documented). Cheap filters come first so that most rejections cost little.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cached_property
from typing import Any

import numpy as np

from jalm.corpus import chars

Filter = Callable[["Features", dict[str, Any]], "str | None"]
FILTERS: dict[str, Filter] = {}

_TRAILING_OFF = re.compile(r"(?:・|\.\.)[ \t]*$", re.MULTILINE)
# uint64 polynomial hashing of character n-grams; overflow wraps, which is what we want.
_BASE = np.uint64(1_000_003)


def register(name: str) -> Callable[[Filter], Filter]:
    def add(function: Filter) -> Filter:
        FILTERS[name] = function
        return function

    return add


class Features:
    """Statistics of one normalised document, each computed on first use and shared by filters."""

    def __init__(self, text: str) -> None:
        self.text = text

    @cached_property
    def codes(self) -> np.ndarray:
        return chars.codepoints(self.text)

    @cached_property
    def classes(self) -> np.ndarray:
        return chars.TABLE[self.codes]

    @cached_property
    def punct(self) -> np.ndarray:
        return chars.PUNCT[self.codes]

    @cached_property
    def counts(self) -> np.ndarray:
        return np.bincount(self.classes, minlength=chars.N_CLASSES)

    @cached_property
    def n_chars(self) -> int:
        """Characters that are not white space."""
        return int(len(self.codes) - self.counts[chars.SPACE])

    @cached_property
    def n_japanese(self) -> int:
        c = self.counts
        return int(c[chars.HIRAGANA] + c[chars.KATAKANA] + c[chars.KANJI])

    @cached_property
    def dense_codes(self) -> np.ndarray:
        """Code points without white space, for n-gram statistics that ignore layout."""
        return self.codes[self.classes != chars.SPACE].astype(np.uint64)

    @cached_property
    def lines(self) -> list[str]:
        return [line.strip() for line in self.text.split("\n") if line.strip()]

    @cached_property
    def paragraphs(self) -> list[str]:
        return [p.strip() for p in self.text.split("\n\n") if p.strip()]

    @cached_property
    def sentence_lengths(self) -> np.ndarray:
        """Non-space length of each sentence; a sentence ends at 。!? (included) or a line break."""
        codes = self.codes
        ends = np.flatnonzero(self.punct & chars.BREAK)
        nonspace = np.cumsum(self.classes != chars.SPACE)
        bounds = np.r_[ends, len(codes) - 1] if len(codes) else np.zeros(0, dtype=np.intp)
        totals = nonspace[bounds] if len(codes) else np.zeros(0, dtype=np.int64)
        lengths = np.diff(np.r_[0, totals])
        return lengths[lengths > 0]

    @cached_property
    def trailing_off(self) -> int:
        """Lines (sentences cut by a line break) that end in ・ or .. / ... (… after NFKC)."""
        return len(_TRAILING_OFF.findall(self.text))

    def ngram_hashes(self, n: int) -> np.ndarray:
        """Polynomial hash (uint64, wrapping) of every character n-gram of `dense_codes`, cached.

        An n-gram hash is built from two shorter cached ones (h_n[i] = h_a[i] * B^b + h_b[i+a]), so
        the 5-grams of MinHash and the 10-grams of the repetition filter share work.
        """
        cache = self.__dict__.setdefault("_ngram_cache", {})
        if n not in cache:
            codes = self.dense_codes
            length = len(codes) - n + 1
            if length <= 0:
                cache[n] = np.zeros(0, dtype=np.uint64)
            elif n == 1:
                cache[n] = codes
            else:
                a = n // 2
                b = n - a
                left, right = self.ngram_hashes(a), self.ngram_hashes(b)
                cache[n] = left[:length] * (_BASE ** np.uint64(b)) + right[a : a + length]
        return cache[n]


def ratio(part: float, whole: float) -> float:
    return part / whole if whole else 0.0


@register("length")
def length(doc: Features, p: dict[str, Any]) -> str | None:
    """Too short to be a document, or too long to be one (a dump, a log, a concatenation)."""
    if doc.n_chars < p["min_chars"]:
        return f"length: {doc.n_chars} chars < {p['min_chars']}"
    if doc.n_chars > p["max_chars"]:
        return f"length: {doc.n_chars} chars > {p['max_chars']}"
    return None


@register("japanese_share")
def japanese_share(doc: Features, p: dict[str, Any]) -> str | None:
    """Hiragana + katakana + kanji over all non-space characters of the WHOLE document."""
    share = ratio(doc.n_japanese, doc.n_chars)
    if share < p["min"]:
        return f"japanese_share: {share:.2f} < {p['min']}"
    return None


@register("markup")
def markup(doc: Features, p: dict[str, Any]) -> str | None:
    """Markup characters (<>{}[]\\|#=_/《》) left by HTML, roff, wiki or Aozora source text."""
    share = ratio(doc.counts[chars.MARKUP], doc.n_chars)
    if share > p["max_share"]:
        return f"markup: {share:.3f} of chars are markup symbols > {p['max_share']}"
    return None


@register("word_list")
def word_list(doc: Features, p: dict[str, Any]) -> str | None:
    """Japanese words separated by spaces: keyword lists, tag clouds, listing spam.

    Japanese prose does not put spaces between words, so spaces with Japanese on both sides,
    per Japanese character, measure how much of the document is a list of words.
    """
    gaps = japanese_word_gaps(doc)
    share = ratio(gaps, doc.n_japanese)
    if share > p["max_gaps_per_ja_char"]:
        return f"word_list: {gaps} spaces between Japanese words ({share:.3f} per Japanese char) > {p['max_gaps_per_ja_char']}"
    return None


def japanese_word_gaps(doc: Features) -> int:
    """Runs of one or two spaces (ASCII or ideographic) with a Japanese letter on each side."""
    codes = doc.codes
    if len(codes) < 3:
        return 0
    space = (codes == 0x20) | (codes == 0x3000)
    if not space.any():
        return 0
    cls = doc.classes
    ja = (cls == chars.HIRAGANA) | (cls == chars.KATAKANA) | (cls == chars.KANJI)
    single = int((space[1:-1] & ja[:-2] & ja[2:]).sum())
    double = int((space[1:-2] & space[2:-1] & ja[:-3] & ja[3:]).sum()) if len(codes) > 3 else 0
    return single + double


@register("sentence_end")
def sentence_end(doc: Features, p: dict[str, Any]) -> str | None:
    """「。」 rarity: listings, keyword spam and navigation have few sentence ends per character."""
    ends = int(np.count_nonzero(doc.punct & chars.END))
    per_end = doc.n_chars / max(ends, 1)
    if per_end > p["max_chars_per_end"]:
        return f"sentence_end: {ends} sentence ends in {doc.n_chars} chars (1 per {per_end:.0f} > {p['max_chars_per_end']})"
    return None


@register("line_repetition")
def line_repetition(doc: Features, p: dict[str, Any]) -> str | None:
    """Share of characters in lines that occur more than once (Gopher's duplicate-line rule)."""
    seen: set[str] = set()
    duplicated = 0
    total = 0
    for line in doc.lines:
        total += len(line)
        if line in seen:
            duplicated += len(line)
        else:
            seen.add(line)
    share = ratio(duplicated, total)
    if share > p["max_dup_line_char_share"]:
        return f"line_repetition: {share:.2f} of chars in repeated lines > {p['max_dup_line_char_share']}"
    return None


@register("char_repetition")
def char_repetition(doc: Features, p: dict[str, Any]) -> str | None:
    """Gopher's n-gram repetition limits applied to characters (white space ignored).

    `top`: {n: max share of characters covered by the most frequent n-gram};
    `dup`: {n: max share of characters covered by n-grams that occur more than once}.
    """
    total = len(doc.dense_codes)
    if total == 0:
        return None
    for n, limit in p.get("top", {}).items():
        share = top_ngram_share(doc.ngram_hashes(int(n)), int(n), total, limit)
        if share > limit:
            return f"char_repetition: most frequent {n}-gram covers {share:.2f} of chars > {limit}"
    for n, limit in p.get("dup", {}).items():
        share = duplicated_ngram_share(doc.ngram_hashes(int(n)), int(n), total)
        if share > limit:
            return f"char_repetition: repeated {n}-grams cover {share:.2f} of chars > {limit}"
    return None


def _buckets(hashes: np.ndarray, slots: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Each n-gram's bucket in a small hash table (≥ `slots` per n-gram) and the bucket counts.

    A bucket count bounds the count of every n-gram in it from above, so most documents are
    decided from the counts alone and only the few crowded buckets are resolved exactly (sorting
    all n-grams of every document was the clean stage's most expensive step)."""
    bits = max(10, int(len(hashes) * slots).bit_length())
    # Fibonacci hashing: the top bits of hash × golden ratio spread polynomial hashes evenly.
    bucket = ((hashes * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(64 - bits)).astype(np.intp)
    size = 1 << bits
    return bucket, np.bincount(bucket, minlength=size)


def top_ngram_share(hashes: np.ndarray, n: int, total: int, limit: float | None = None) -> float:
    """Occurrences of the most frequent n-gram × n over all characters (overlaps count, as in Gopher).
    With `limit`, a document whose upper bound is within the limit returns that bound early."""
    if len(hashes) == 0:
        return 0.0
    bucket, counts = _buckets(hashes, slots=2)  # a few collisions barely move the maximum
    bound = int(counts.max()) * n / total
    if limit is not None and bound <= limit:
        return bound
    crowded = hashes[counts[bucket] >= max(2, int(counts.max() * 0.5))]
    ordered = np.sort(crowded)
    boundaries = np.flatnonzero(ordered[1:] != ordered[:-1])
    runs = np.diff(np.r_[-1, boundaries, len(ordered) - 1])
    return int(runs.max()) * n / total


def duplicated_ngram_share(hashes: np.ndarray, n: int, total: int) -> float:
    """Share of positions covered by at least one n-gram that occurs more than once (exact)."""
    if len(hashes) < 2:
        return 0.0
    bucket, counts = _buckets(hashes)
    candidates = np.flatnonzero(counts[bucket] > 1)  # only these can repeat
    if len(candidates) == 0:
        return 0.0
    values = hashes[candidates]
    order = np.argsort(values)
    ordered = values[order]
    same = ordered[1:] == ordered[:-1]
    repeated = np.zeros(len(values), dtype=bool)
    repeated[1:] |= same
    repeated[:-1] |= same
    starts = candidates[order][repeated]
    # Each repeated n-gram covers [start, start + n): +1 at the start, -1 after the end, running sum.
    delta = np.bincount(starts, minlength=total + n + 1) - np.bincount(starts + n, minlength=total + n + 1)
    covered = np.cumsum(delta[:total]) > 0
    return float(np.count_nonzero(covered)) / total


def run_filters(doc: Features, filters: list[tuple[str, dict[str, Any]]]) -> str | None:
    """Apply filters in order; the first reason wins."""
    for name, params in filters:
        reason = FILTERS[name](doc, params)
        if reason is not None:
            return reason
    return None


@register("char_classes")
def char_classes(doc: Features, p: dict[str, Any]) -> str | None:
    """Mix of scripts among Japanese letters: kana-less text is Chinese (or kanbun); katakana-heavy
    text is product lists and transliterated spam; digit-heavy text is tables, prices and phone lists."""
    c = doc.counts
    kana = ratio(c[chars.HIRAGANA] + c[chars.KATAKANA], doc.n_japanese)
    if kana < p["min_kana_share"]:
        return f"char_classes: kana are {kana:.2f} of Japanese letters < {p['min_kana_share']}"
    katakana = ratio(c[chars.KATAKANA], doc.n_japanese)
    if katakana > p["max_katakana_share"]:
        return f"char_classes: katakana are {katakana:.2f} of Japanese letters > {p['max_katakana_share']}"
    digits = ratio(c[chars.DIGIT], doc.n_chars)
    if digits > p["max_digit_share"]:
        return f"char_classes: digits are {digits:.2f} of chars > {p['max_digit_share']}"
    return None


@register("sentences")
def sentences(doc: Features, p: dict[str, Any]) -> str | None:
    """Sentence statistics (after Swallow): mean length, share of text in overlong sentences, and
    sentences trailing off in ・ or ... (after NFKC, … is ...)."""
    lengths = doc.sentence_lengths
    if len(lengths) == 0:
        return "sentences: no sentences"
    mean = float(lengths.mean())
    if mean < p["min_mean_length"]:
        return f"sentences: mean sentence length {mean:.1f} chars < {p['min_mean_length']}"
    if mean > p["max_mean_length"]:
        return f"sentences: mean sentence length {mean:.1f} chars > {p['max_mean_length']}"
    long_share = ratio(int(lengths[lengths > p["long_sentence"]].sum()), int(lengths.sum()))
    if long_share > p["max_long_share"]:
        return f"sentences: {long_share:.2f} of text in sentences over {p['long_sentence']} chars > {p['max_long_share']}"
    trailing = doc.trailing_off
    share = ratio(trailing, len(lengths))
    if trailing >= 3 and share > p["max_ellipsis_share"]:
        return f"sentences: {trailing} of {len(lengths)} sentences end in ・ or ... ({share:.2f} > {p['max_ellipsis_share']})"
    return None


@register("paragraph_repetition")
def paragraph_repetition(doc: Features, p: dict[str, Any]) -> str | None:
    """Share of characters in paragraphs (blank-line separated) that occur more than once."""
    seen: set[str] = set()
    duplicated = total = 0
    for paragraph in doc.paragraphs:
        total += len(paragraph)
        if paragraph in seen:
            duplicated += len(paragraph)
        else:
            seen.add(paragraph)
    share = ratio(duplicated, total)
    if share > p["max_dup_char_share"]:
        return (
            f"paragraph_repetition: {share:.2f} of chars in repeated paragraphs > {p['max_dup_char_share']}"
        )
    return None


@register("keywords")
def keywords(doc: Features, p: dict[str, Any]) -> str | None:
    """NG-word, advertising and header/footer lists, matched with Aho-Corasick and COUNTED: a list
    fires when its hits reach `min_count` and `min_per_1000_chars` (per 1000 non-space chars)."""
    from jalm.corpus.keywords import matcher_for

    lists = p["lists"]
    spec = tuple(sorted((name, entry["file"]) for name, entry in lists.items()))
    hits = matcher_for(spec).count(doc.text)
    for name, entry in lists.items():
        counter = hits[name]
        total = sum(counter.values())
        per_1000 = 1000 * ratio(total, doc.n_chars)
        if total >= entry["min_count"] and per_1000 >= entry["min_per_1000_chars"]:
            top = ", ".join(f"{word}×{n}" for word, n in counter.most_common(3))
            return f"keywords: {name} list hit {total} times ({top}), {per_1000:.1f} per 1000 chars ≥ {entry['min_per_1000_chars']}"
    return None


_CODE_LINE = re.compile(
    r"""^\s*(?:
        (?:def|class|import|from|return|if|elif|else|for|while|try|except|with|function|var|let|const|
           public|private|static|void|int|char|\#include|\#define|package|func|fn|use|echo|print|printf)\b.*
      | .*[;{}]\s*$
      | [}\])]+[;,]?\s*$
      | .*(?:==|!=|=>|->|::|\+=|&&|\|\|).*
      | [\w.\[\]'"]+\s*=\s*\S.*
      | //.* | /\*.* | \*/.*
    )$""",
    re.VERBOSE,
)


@register("code")
def code(doc: Features, p: dict[str, Any]) -> str | None:
    """Source code: share of lines that look like code (keywords, ; { } at the end, operators)."""
    c = doc.counts
    if ratio(c[chars.LATIN] + c[chars.ASCII_SYMBOL] + c[chars.MARKUP], doc.n_chars) < p["min_ascii_share"]:
        return None  # too little ASCII to be code; saves the per-line scan on ordinary Japanese text
    lines = doc.lines
    n_code = sum(1 for line in lines if _CODE_LINE.match(line))
    share = ratio(n_code, len(lines))
    if n_code >= p["min_lines"] and share > p["max_line_share"]:
        return f"code: {n_code} of {len(lines)} lines look like source code ({share:.2f} > {p['max_line_share']})"
    return None


_BBS_MARK = re.compile(
    r">>\d+|ID:[\w+/.]{6,}|名無し(?:さん)?|\d{4}/\d{1,2}/\d{1,2}\s*\(.\)\s*\d{1,2}:\d{2}|^\d{1,4}\s*[:：]\s*\S|"
    r"投稿者[:：]|返信する|^\s*>\s*\S",
    re.MULTILINE,
)


_BBS_HINTS = (">>", "ID:", "名無し", "投稿", "返信", "\n>")


@register("bbs")
def bbs(doc: Features, p: dict[str, Any]) -> str | None:
    """Bulletin-board threads: reply anchors (>>12), poster IDs, 名無しさん, post headers with dates,
    counted per line (HojiChar counted every hyphen, which rejects clean technical pages)."""
    if not any(marker in doc.text for marker in _BBS_HINTS):
        return None  # every thread format we know has at least one of these
    marks = len(_BBS_MARK.findall(doc.text))
    per_line = ratio(marks, len(doc.lines))
    if marks >= p["min_marks"] and per_line > p["max_marks_per_line"]:
        return f"bbs: {marks} thread markers (>>N, ID:, 名無し, post headers) in {len(doc.lines)} lines ({per_line:.2f} > {p['max_marks_per_line']})"
    return None


# ASCII-only local parts: with \w, every run of Japanese characters would be tried as one (quadratic).
_URL = re.compile(
    r"https?://[^\s<>\"'「」]+|www\.[^\s<>\"'「」]+|[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+\.[A-Za-z0-9.-]+"
)


@register("url_email")
def url_email(doc: Features, p: dict[str, Any]) -> str | None:
    """Link farms and contact lists: characters inside URLs and e-mail addresses."""
    text = doc.text
    if "http" not in text and "www." not in text and "@" not in text:
        return None
    found = _URL.findall(text)
    if len(found) < p["min_count"]:
        return None
    share = ratio(sum(len(u) for u in found), doc.n_chars)
    if share > p["max_char_share"]:
        return f"url_email: {len(found)} URLs/e-mail addresses cover {share:.2f} of chars > {p['max_char_share']}"
    return None
