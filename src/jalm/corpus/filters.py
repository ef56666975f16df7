"""Document filters: each takes a document's features and its parameters, and returns None to keep
the document or a reason string "rule: evidence" to reject it.

A filter is a plain function registered under its name in `FILTERS`; the configuration lists the
filters to run, in order, with their parameters (see default_config.toml, where each parameter is
documented). Cheap filters come first so that most rejections cost little.

Speed (the clean stage's budget is a few tens of ns per character): a statistic that only has to
clear a limit is first bounded cheaply (most frequent 2-gram from a small hash table, repeated
10-grams from a few rounds of bucket counting, repeated lines from per-line character sums); only
a document whose bound does not clear the limit is measured exactly, with the original code, so
every decision and every reason string is the one the exact computation gives.
benchmarks/clean_equivalence.py checks each shortcut against a plain implementation.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np

from jalm.corpus import chars

Filter = Callable[["Features", dict[str, Any]], "str | None"]
FILTERS: dict[str, Filter] = {}

_TRAILING_OFF = re.compile(r"(?:・|\.\.)[ \t]*$", re.MULTILINE)
# uint64 polynomial hashing of character n-grams; overflow wraps, which is what we want.
_BASE = np.uint64(1_000_003)


class cached_property:  # noqa: N801 - a drop-in for functools.cached_property
    """functools.cached_property without its lock (Python 3.11 takes an RLock on every first
    access, ~2 µs; a Features object has a dozen of them and most documents are short)."""

    def __init__(self, function: Callable[[Any], Any]) -> None:
        self.function = function
        self.name = function.__name__
        self.__doc__ = function.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        value = instance.__dict__[self.name] = self.function(instance)
        return value


def register(name: str) -> Callable[[Filter], Filter]:
    def add(function: Filter) -> Filter:
        FILTERS[name] = function
        return function

    return add


class Features:
    """Statistics of one normalised document, each computed on first use and shared by filters.

    Every per-character statistic comes from one table lookup over the code points (`flags`: class
    id and punctuation bits) and its histogram. Most documents are short, so the fixed cost of each
    statistic (the number of numpy calls) matters as much as the cost per character."""

    def __init__(self, text: str, table: np.ndarray | None = None) -> None:
        self.text = text
        # chars.FLAGS, or a copy with more bits above bit 5 (see lookup_table)
        self.table = chars.FLAGS if table is None else table

    @cached_property
    def codes(self) -> np.ndarray:
        return chars.codepoints(self.text)

    @cached_property
    def flags(self) -> np.ndarray:
        """Class id (bits 0-3) and punctuation flags (bits 4-5) of every character; with a table
        from lookup_table, also the keyword filter's bits (6-7)."""
        return self.table.take(self.codes)  # take(): ~1.7× faster than table[codes] here

    @cached_property
    def classes(self) -> np.ndarray:
        return self.flags & np.uint8(chars.CLASS_MASK)

    @cached_property
    def punct(self) -> np.ndarray:
        return (self.flags >> np.uint8(chars.PUNCT_SHIFT)) & np.uint8(3)

    @cached_property
    def _histogram(self) -> list[int]:
        """Characters per flags value (class + 16 × punctuation flags; all values are below 64)."""
        flags = self.flags if self.table is chars.FLAGS else self.flags & np.uint8(63)
        return np.bincount(flags, minlength=64).tolist()

    @cached_property
    def class_counts(self) -> list[int]:
        """Characters per class (indexed by the class ids of jalm.corpus.chars)."""
        if len(self.text) >= _COUNT_BY_CLASS_MIN:
            # One comparison per class: ~2× faster than bincount (which widens every uint8 to 64
            # bits) once the text is long enough for the calls not to matter.
            classes = self.flags & np.uint8(chars.CLASS_MASK)
            return [int(np.count_nonzero(classes == c)) for c in range(chars.N_CLASSES)]
        h = self._histogram
        return [h[c] + h[16 + c] + h[32 + c] + h[48 + c] for c in range(chars.N_CLASSES)]

    @cached_property
    def counts(self) -> np.ndarray:
        return np.array(self.class_counts, dtype=np.int64)

    @cached_property
    def n_sentence_ends(self) -> int:
        """Characters that end a sentence for 「。」 rarity (。!? and closing quotes)."""
        if len(self.text) >= _COUNT_BY_CLASS_MIN:
            return int(np.count_nonzero(self.flags & np.uint8(chars.END << chars.PUNCT_SHIFT)))
        h = self._histogram
        return sum(h[i] for i in _END_INDICES)

    @cached_property
    def n_chars(self) -> int:
        """Characters that are not white space."""
        return len(self.text) - self.class_counts[chars.SPACE]

    @cached_property
    def n_japanese(self) -> int:
        c = self.class_counts
        return c[chars.HIRAGANA] + c[chars.KATAKANA] + c[chars.KANJI]

    @cached_property
    def _space_mask(self) -> np.ndarray:
        # Arithmetic on the flags: indexing a small table with them costs ~10× more (the uint8
        # indices are widened to 64 bits first).
        return (self.flags & np.uint8(chars.CLASS_MASK)) == chars.SPACE

    @cached_property
    def space_positions(self) -> np.ndarray:
        """Indices of white-space characters (few in Japanese text: line breaks, some spaces)."""
        if self.class_counts[chars.SPACE] == 0:
            return np.zeros(0, dtype=np.intp)
        return self._space_mask.nonzero()[0]

    @cached_property
    def newline_positions(self) -> np.ndarray:
        spaces = self.space_positions
        return spaces[(self.flags[spaces] & np.uint8(63)) == _NEWLINE]

    @cached_property
    def dense_codes(self) -> np.ndarray:
        """Code points without white space, for n-gram statistics that ignore layout."""
        return self._dense32.astype(np.uint64)

    @cached_property
    def _dense32(self) -> np.ndarray:
        if self.class_counts[chars.SPACE] == 0:
            return self.codes
        return self.codes[~self._space_mask]

    @cached_property
    def n_dense(self) -> int:
        return len(self.text) - self.class_counts[chars.SPACE]

    @cached_property
    def lines(self) -> list[str]:
        return list(filter(None, map(str.strip, self.text.split("\n"))))

    @cached_property
    def paragraphs(self) -> list[str]:
        return list(filter(None, map(str.strip, self.text.split("\n\n"))))

    @cached_property
    def repetition_bounds(self) -> tuple[float, float] | None:
        """Upper bounds on the shares line_repetition and paragraph_repetition measure, without
        splitting the text: for long documents, where splitting and hashing every line costs more.

        Two lines equal after strip() have the same "definite" characters (those of a class other
        than OTHER and SPACE: never white space, so never stripped), hence the same count and sum
        of them. Lines whose (count, sum) no other line shares repeat no line; the raw length of
        the others bounds the characters in repeated lines, and the definite characters, which are
        all inside stripped lines, bound the total from below. A repeated paragraph is made of
        lines that all repeat (or hold no definite character), so the same lines, counted with
        their line breaks, bound the characters in repeated paragraphs. None: not computed."""
        n = len(self.text)
        if n < _SPLIT_FREE_MIN or self.class_counts[chars.SPACE] == 0:
            return None
        codes = self.codes
        starts = np.empty(len(self.newline_positions) + 1, dtype=np.int64)
        starts[0] = 0
        starts[1:] = self.newline_positions + 1
        if starts[-1] == n:  # a final empty line
            starts = starts[:-1]
        ends = np.empty_like(starts)
        ends[:-1] = starts[1:]
        ends[-1] = n
        # Each segment is a line with its line break; take the indefinite characters out.
        sums = np.add.reduceat(codes, starts, dtype=np.uint64).astype(np.int64)
        classes = self.flags & np.uint8(chars.CLASS_MASK)
        others = ((classes == chars.OTHER) | (classes == chars.SPACE)).nonzero()[0]
        line_of = np.searchsorted(starts, others, side="right") - 1
        raw = ends - starts  # with the line break: at least the stripped line's length
        definite = raw - np.bincount(line_of, minlength=len(starts))
        sums -= np.bincount(line_of, weights=codes[others], minlength=len(starts)).astype(np.int64)
        total = int(definite.sum())
        if total == 0:
            return None
        # One key per (count, sum); were two pairs to share one, the bound would only be looser.
        keys = (definite << 42) | sums
        _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
        shared = counts[inverse] > 1
        lines = int(raw[shared].sum())
        paragraphs = int(raw[shared | (definite == 0)].sum())
        return lines / total, paragraphs / total

    @cached_property
    def sentence_lengths(self) -> np.ndarray:
        """Non-space length of each sentence; a sentence ends at 。!? (included) or a line break."""
        n = len(self.text)
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        ends = ((self.flags & _BREAK) != 0).nonzero()[0]  # nonzero of bool: 5× that of uint8
        bounds = np.empty(len(ends) + 1, dtype=np.int64)
        bounds[:-1] = ends
        bounds[-1] = n - 1
        # Non-space characters up to each bound: its position minus the spaces before it.
        totals = bounds + 1
        if self.class_counts[chars.SPACE]:
            totals -= np.searchsorted(self.space_positions, bounds, side="right")
        lengths = totals.copy()
        lengths[1:] -= totals[:-1]
        return lengths[lengths > 0]

    @cached_property
    def trailing_off(self) -> int:
        """Lines (sentences cut by a line break) that end in ・ or .. / ... (… after NFKC)."""
        text = self.text
        if len(text) > _TRAILING_ARRAY_MIN and self.class_counts[chars.SPACE]:
            return self._trailing_off_long()
        if "・" not in text and ".." not in text:
            return 0
        if " \n" in text or "\t\n" in text or text.endswith((" ", "\t")):
            return len(_TRAILING_OFF.findall(text))  # spaces before line ends: the general rule
        # Without spaces at line ends, each match of _TRAILING_OFF is one of these (one per line).
        return text.count("・\n") + text.count("..\n") + text.endswith(("・", ".."))

    def _trailing_off_long(self) -> int:
        """trailing_off from the last characters of the lines (a long text has few lines per char)."""
        codes, n = self.codes, len(self.text)
        ends = np.empty(len(self.newline_positions) + 1, dtype=np.int64)
        ends[:-1] = self.newline_positions
        ends[-1] = n
        last = ends - 1  # each line's last character (the previous newline, for an empty line)
        last_code = codes[np.maximum(last, 0)]
        if np.any((last_code == 0x20) | (last_code == 0x09)):
            return len(_TRAILING_OFF.findall(self.text))  # spaces before line ends: the general rule
        before = codes[np.maximum(last - 1, 0)]
        # A newline or the text's start is no "・"/"." so empty lines need no special case, except
        # a text starting with "\n" (last = -1) or "." (last - 1 = -1): clamped to 0 and masked.
        hit = (last_code == 0x30FB) | ((last_code == 0x2E) & (before == 0x2E) & (last >= 1))
        return int(np.count_nonzero(hit & (last >= 0)))

    def ngram_hashes(self, n: int) -> np.ndarray:
        """Polynomial hash (uint64, wrapping) of every character n-gram of `dense_codes`, cached.

        An n-gram hash is built from two shorter cached ones (h_n[i] = h_a[i] * B^b + h_b[i+a]), so
        the 5-grams of MinHash and the 10-grams of the repetition filter share work.
        """
        cache = self.__dict__.setdefault("_ngram_cache", {})
        if n not in cache:
            length = self.n_dense - n + 1
            if length <= 0:
                cache[n] = np.zeros(0, dtype=np.uint64)
            elif n == 1:
                cache[n] = self.dense_codes
            else:
                a = n // 2
                b = n - a
                # 1-grams as uint32 code points: numpy widens them to uint64 within the operation.
                left = self._dense32 if a == 1 else self.ngram_hashes(a)
                right = self._dense32 if b == 1 else self.ngram_hashes(b)
                hashes = np.multiply(left[:length], _power(b), dtype=np.uint64)
                hashes += right[a : a + length]
                cache[n] = hashes
        return cache[n]

    @cached_property
    def max_bigram_count(self) -> int:
        """An upper bound on how often the most frequent 2-gram (of `dense_codes`) occurs, and so
        on every n-gram with n ≥ 2: the largest bucket of a 4096-slot table of 2-grams (by the low
        bits of their hash; a table that small stays in the CPU cache)."""
        hashes = self.ngram_hashes(2)
        if len(hashes) == 0:
            return 0
        return int(np.bincount((hashes & np.uint64(4095)).view(np.int64), minlength=4096).max())


_BREAK = np.uint8(chars.BREAK << chars.PUNCT_SHIFT)
_END_INDICES = [v for v in range(64) if (v >> chars.PUNCT_SHIFT) & chars.END]  # flags values
_SPLIT_FREE_MIN = 8192  # characters: shorter documents are split into lines (cheaper for them)
_COUNT_BY_CLASS_MIN = 32768  # characters: shorter documents get their class counts from bincount
_TRAILING_ARRAY_MIN = 4096  # characters: longer documents look at line ends with array operations
_FEW_SPACES = 64  # word gaps: with more white space than this, array operations
_NEWLINE = chars.SPACE | (chars.BREAK << chars.PUNCT_SHIFT)  # the flags of "\n", the only breaking space


def lookup_table(filters: list[tuple[str, dict[str, Any]]]) -> np.ndarray:
    """The table for Features(text, table) in a run of `filters` (name, params): chars.FLAGS, with
    the keyword filter's bits when it runs, so one lookup serves both."""
    for name, params in filters:
        if name == "keywords":
            from jalm.corpus.keywords import matcher_for_lists

            return matcher_for_lists(params["lists"]).table
    return chars.FLAGS


@lru_cache(maxsize=64)
def _power(exponent: int) -> np.uint64:
    return _BASE ** np.uint64(exponent)


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
# Odd multipliers for the independent bucket functions of `repeated_bound` (splitmix64, wyhash).
_MULTIPLIERS = tuple(
    np.uint64(m) for m in (0xD6E8FEB86659FD93, 0xA0761D6478BD642F, 0xE7037ED1A0B428DB, 0xBF58476D1CE4E5B9)
)


def _top_bits(hashes: np.ndarray, multiplier: np.uint64, bits: int) -> np.ndarray:
    """Bucket of each hash in a table of 2**bits (Fibonacci hashing), as int64 indices."""
    return ((hashes * multiplier) >> np.uint64(64 - bits)).view(np.int64)


def repeated_bound(hashes: np.ndarray, n: int, total: int, limit: float = 0.0) -> float:
    """An upper bound on `duplicated_ngram_share`, cheap to compute.

    An n-gram that occurs twice shares its bucket with another n-gram in every hash table; one
    that occurs once does so only by chance. So the n-grams left after a few rounds of "keep those
    in a crowded bucket" (each round a new bucket function, ≥ 4 slots per n-gram) include every
    repeated one, and the share of positions they cover bounds the share repeated n-grams cover.
    On Japanese text the bound is within a few hundredths of the exact share, for a few array
    passes instead of sorting all n-grams. The coverage is measured after two rounds, and after
    four if it is still above `limit` (with few survivors, measuring costs less than a round)."""
    positions = None
    current = hashes
    for round_, multiplier in enumerate(_MULTIPLIERS):
        if len(current) < 2:
            return 0.0
        bits = max(4, (4 * len(current)).bit_length())
        if positions is None:  # first round: the hash's low bits (they depend on every character)
            bucket = (current & np.uint64((1 << bits) - 1)).view(np.int64)
        else:
            bucket = _top_bits(current, multiplier, bits)
        crowded = np.bincount(bucket, minlength=1 << bits)[bucket] > 1
        positions = crowded.nonzero()[0] if positions is None else positions[crowded]
        if len(positions) * n <= limit * total:
            return len(positions) * n / total  # each survivor covers at most n positions
        if round_ == 1 or round_ == len(_MULTIPLIERS) - 1:
            share = _covered(positions, n) / total
            if share <= limit or round_ == len(_MULTIPLIERS) - 1:
                return share
        current = hashes[positions]
    raise AssertionError("unreachable")


def _covered(starts: np.ndarray, n: int) -> int:
    """Positions covered by the n-grams starting at `starts` (sorted): the union of the intervals
    [start, start + n) is n for the last plus, for each other, the gap to the next, up to n."""
    if len(starts) == 0:
        return 0
    return int(np.minimum(np.diff(starts), n).sum()) + n


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
    share = ratio(doc.class_counts[chars.MARKUP], doc.n_chars)
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
    text = doc.text
    n = len(text)
    if n < 3 or doc.class_counts[chars.SPACE] == 0:
        return 0
    spaces = doc.space_positions
    if len(spaces) <= _FEW_SPACES:  # few spaces: look at their neighbours in Python
        gaps = 0
        for i in spaces.tolist():
            if text[i] not in " \u3000" or not 1 <= i <= n - 2 or not _is_japanese(text[i - 1]):
                continue
            if _is_japanese(text[i + 1]):
                gaps += 1
            elif i <= n - 3 and text[i + 1] in " \u3000" and _is_japanese(text[i + 2]):
                gaps += 1
        return gaps
    codes = doc.codes
    spaces = spaces[(codes[spaces] == 0x20) | (codes[spaces] == 0x3000)]
    if len(spaces) == 0:
        return 0
    flags = doc.flags

    def japanese(positions: np.ndarray) -> np.ndarray:
        return _IS_JAPANESE[flags[positions]]

    single = spaces[(spaces >= 1) & (spaces <= n - 2)]
    gaps = int(np.count_nonzero(japanese(single - 1) & japanese(single + 1)))
    double = spaces[:-1][spaces[1:] == spaces[:-1] + 1]  # a space followed by a space
    double = double[(double >= 1) & (double <= n - 3)]
    return gaps + int(np.count_nonzero(japanese(double - 1) & japanese(double + 2)))


_IS_JAPANESE = np.zeros(256, dtype=bool)  # by flags value: hiragana, katakana, kanji
for _flags in range(256):
    _IS_JAPANESE[_flags] = (_flags & chars.CLASS_MASK) in (chars.HIRAGANA, chars.KATAKANA, chars.KANJI)
_CLASS_BYTES = chars.TABLE.tobytes()  # class id by code point, for lookups from Python


def _is_japanese(ch: str) -> bool:
    return _CLASS_BYTES[ord(ch)] in (chars.HIRAGANA, chars.KATAKANA, chars.KANJI)


@register("sentence_end")
def sentence_end(doc: Features, p: dict[str, Any]) -> str | None:
    """「。」 rarity: listings, keyword spam and navigation have few sentence ends per character."""
    ends = doc.n_sentence_ends
    per_end = doc.n_chars / max(ends, 1)
    if per_end > p["max_chars_per_end"]:
        return f"sentence_end: {ends} sentence ends in {doc.n_chars} chars (1 per {per_end:.0f} > {p['max_chars_per_end']})"
    return None


@register("line_repetition")
def line_repetition(doc: Features, p: dict[str, Any]) -> str | None:
    """Share of characters in lines that occur more than once (Gopher's duplicate-line rule)."""
    bounds = doc.repetition_bounds
    if bounds is not None and bounds[0] <= p["max_dup_line_char_share"]:
        return None
    share = repeated_share(doc.lines)
    if share > p["max_dup_line_char_share"]:
        return f"line_repetition: {share:.2f} of chars in repeated lines > {p['max_dup_line_char_share']}"
    return None


def repeated_share(pieces: list[str]) -> float:
    """Share of characters in pieces (lines, paragraphs) that repeat an earlier piece."""
    total = sum(map(len, pieces))
    return ratio(total - sum(map(len, set(pieces))), total)


@register("char_repetition")
def char_repetition(doc: Features, p: dict[str, Any]) -> str | None:
    """Gopher's n-gram repetition limits applied to characters (white space ignored).

    `top`: {n: max share of characters covered by the most frequent n-gram};
    `dup`: {n: max share of characters covered by n-grams that occur more than once}.
    """
    total = doc.n_dense
    if total == 0:
        return None
    # Upper bounds first; only a document a bound cannot clear is measured exactly (as before).
    for n, limit in p.get("top", {}).items():
        if int(n) >= 2 and doc.max_bigram_count * int(n) / total <= limit:
            continue
        share = top_ngram_share(doc.ngram_hashes(int(n)), int(n), total, limit)
        if share > limit:
            return f"char_repetition: most frequent {n}-gram covers {share:.2f} of chars > {limit}"
    for n, limit in p.get("dup", {}).items():
        hashes = doc.ngram_hashes(int(n))
        if repeated_bound(hashes, int(n), total, limit) <= limit:
            continue
        share = duplicated_ngram_share(hashes, int(n), total)
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
    c = doc.class_counts
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
    mean = doc.n_chars / len(lengths)  # the lengths add up to the non-space characters
    if mean < p["min_mean_length"]:
        return f"sentences: mean sentence length {mean:.1f} chars < {p['min_mean_length']}"
    if mean > p["max_mean_length"]:
        return f"sentences: mean sentence length {mean:.1f} chars > {p['max_mean_length']}"
    long_share = ratio(int(lengths[lengths > p["long_sentence"]].sum()), doc.n_chars)
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
    bounds = doc.repetition_bounds
    if bounds is not None and bounds[1] <= p["max_dup_char_share"]:
        return None
    share = repeated_share(doc.paragraphs)
    if share > p["max_dup_char_share"]:
        return (
            f"paragraph_repetition: {share:.2f} of chars in repeated paragraphs > {p['max_dup_char_share']}"
        )
    return None


@register("keywords")
def keywords(doc: Features, p: dict[str, Any]) -> str | None:
    """NG-word, advertising and header/footer lists, every occurrence found (as Aho-Corasick does)
    and COUNTED: a list fires when its hits reach `min_count` and `min_per_1000_chars` (per 1000
    non-space chars)."""
    from jalm.corpus.keywords import matcher_for_lists

    lists = p["lists"]
    matcher = matcher_for_lists(lists)
    flags = doc.flags if doc.table is matcher.table else None
    hits: dict[str, Counter[str]] = {}
    for name, word in matcher.matches(doc.text, doc.codes, flags):
        hits.setdefault(name, Counter())[word] += 1
    for name, entry in lists.items():
        counter = hits.get(name) or Counter()
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
    c = doc.class_counts
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


def _has_bbs_hint(doc: Features) -> bool:
    """any(hint in doc.text for hint in _BBS_HINTS). A search for one character is ~10× faster
    than for a string, so a rare character of each hint is looked for first, after what the class
    counts rule out (no markup character means no ">", no Latin letter no "ID:")."""
    text, counts = doc.text, doc.class_counts
    return bool(
        (counts[chars.MARKUP] and ">" in text and (">>" in text or "\n>" in text))
        or (counts[chars.LATIN] and ":" in text and "ID:" in text)
        or ("無" in text and "名無し" in text)
        or ("稿" in text and "投稿" in text)
        or ("返" in text and "返信" in text)
    )


@register("bbs")
def bbs(doc: Features, p: dict[str, Any]) -> str | None:
    """Bulletin-board threads: reply anchors (>>12), poster IDs, 名無しさん, post headers with dates,
    counted per line (HojiChar counted every hyphen, which rejects clean technical pages)."""
    if not _has_bbs_hint(doc):
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
    text, counts = doc.text, doc.class_counts
    # The scans the class counts rule out are skipped: no Latin letter, no "http"; no symbol, no "@".
    if not (counts[chars.LATIN] and ("http" in text or "www." in text)) and not (
        counts[chars.ASCII_SYMBOL] and "@" in text
    ):
        return None
    found = _URL.findall(text)
    if len(found) < p["min_count"]:
        return None
    share = ratio(sum(len(u) for u in found), doc.n_chars)
    if share > p["max_char_share"]:
        return f"url_email: {len(found)} URLs/e-mail addresses cover {share:.2f} of chars > {p['max_char_share']}"
    return None
