"""Features: the statistics of one normalised document that the filters judge it by, each computed on
first use and shared by every filter that needs it.

Speed (the clean stage's budget is a few tens of ns per character): every per-character statistic
comes from one table lookup over the code points and its histogram; where two exact ways to compute
a statistic exist, the document's size picks the cheaper one (the thresholds below).
benchmarks/clean_equivalence.py checks each way against a plain implementation.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np

from jalm.corpus import chars

# Prose-aware Japanese share (Features.prose): a Japanese letter; a run of printable ASCII; the
# shapes of ASCII that is not an English word (paths, options, identifiers, URLs, numbers,
# placeholders in capitals, camelCase, calls); the punctuation a plain word may carry.
_JAPANESE_CHAR = re.compile(  # the hiragana, katakana and kanji of chars.TABLE
    "[\u3041-\u30ff\u31f0-\u31ff\uff66-\uff9d\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff々〆〇]"
)
_ASCII_TOKEN = re.compile(r"[!-~]+")
_TECHNICAL_TOKEN = re.compile(r"[/\\_=<>{}\[\]|#@$%^~`+*0-9]|^-|\.\w|::|\w\(|^.+[A-Z]")
_WORD_PUNCT = ".,;:!?'\"()&"
# Features.named_entries: a line or sentence; an ASCII identifier (a run holding a letter).
_ENTRY = re.compile(r"[^\n。]+。?")
_IDENTIFIER = re.compile(r"[!-~]*[A-Za-z][!-~]*")
_TRAILING_OFF = re.compile(r"(?:・|\.\.)[ \t]*$", re.MULTILINE)
# uint64 polynomial hashing of character n-grams; overflow wraps, which is what we want.
_BASE = np.uint64(1_000_003)

_BREAK = np.uint8(chars.BREAK << chars.PUNCT_SHIFT)
_END_INDICES = [v for v in range(64) if (v >> chars.PUNCT_SHIFT) & chars.END]  # flags values
_SPLIT_FREE_MIN = 8192  # characters: shorter documents are split into lines (cheaper for them)
_COUNT_BY_CLASS_MIN = 32768  # characters: shorter documents get their class counts from bincount
_TRAILING_ARRAY_MIN = 4096  # characters: longer documents look at line ends with array operations
_FEW_SPACES = 64  # word gaps: with more white space than this, array operations
_NEWLINE = chars.SPACE | (chars.BREAK << chars.PUNCT_SHIFT)  # the flags of "\n", the only breaking space


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


class Features:
    """Statistics of one normalised document, each computed on first use and shared by filters.

    Every per-character statistic comes from one table lookup over the code points (`flags`: class
    id and punctuation bits) and its histogram. Most documents are short, so the fixed cost of each
    statistic (the number of numpy calls) matters as much as the cost per character."""

    def __init__(self, text: str, table: np.ndarray | None = None, codes: np.ndarray | None = None) -> None:
        self.text = text
        # chars.FLAGS, or a copy with more bits above bit 5 (see lookup_table)
        self.table = chars.FLAGS if table is None else table
        if codes is not None:  # the text's code points, when normalisation already has them
            self.__dict__["codes"] = codes

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
    def prose(self) -> tuple[int, int, int]:
        """(non-space characters on lines holding Japanese, Japanese letters, letters of plain
        ASCII words on those lines): technical Japanese mixes prose lines with command, option and
        table lines, and its prose names files, options and identifiers in ASCII. Those lines and
        tokens say nothing about the language of the text; plain words (English prose) do."""
        lines = self.text.split("\n")
        n_ja = n_dense = n_words = 0
        for line in lines:
            if not _JAPANESE_CHAR.search(line):
                continue
            japanese = len(_JAPANESE_CHAR.findall(line))
            n_ja += japanese
            n_dense += len(line) - line.count(" ") - line.count("\t") - line.count("\u3000")
            for token in _ASCII_TOKEN.findall(line):
                if not _TECHNICAL_TOKEN.search(token):
                    n_words += len(token.strip(_WORD_PUNCT))
        return n_dense, n_ja, n_words

    @cached_property
    def without_ascii(self) -> Features:
        """The features of this text without its printable ASCII (identifiers, options, paths,
        numbers and English words), for the repetition rule's second look at technical prose."""
        return Features(_ASCII_TOKEN.sub("", self.text))

    @cached_property
    def named_entries(self) -> np.ndarray:
        """Which non-space characters (positions of `dense_codes`) are in an entry that names its
        own identifiers: a line or sentence (cut at line breaks and 。) holding ASCII identifiers
        (a run of printable ASCII holding a letter: -v, FILE, i386, strcpy(), "alpha")
        in an order no other line or sentence has. A reference page describes many items in the
        same words (「FILE が x86_64 EFI ... かどうかをチェックします。」 for each architecture); the
        identifiers tell its entries apart, as Japanese place or product names do not in a listing,
        and a slogan repeated with the same product name is the same entry again."""
        text = self.text
        spans = [(m.start(), m.end(), tuple(_IDENTIFIER.findall(m.group()))) for m in _ENTRY.finditer(text)]
        seen = Counter(names for _, _, names in spans)
        mask = np.zeros(len(text), dtype=bool)
        for start, end, names in spans:
            if names and seen[names] == 1:
                mask[start:end] = True
        return mask if self.class_counts[chars.SPACE] == 0 else mask[~self._space_mask]

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
    def line_start_codes(self) -> np.ndarray:
        """The code point that starts each line after the first (what follows each line break):
        roff source is told by lines that start with "." or "'", found without searching the text."""
        after = self.newline_positions + 1
        return self.codes[after[after < len(self.codes)]]

    def has_line_starting_with(self, first: str, first_line: bool = True) -> bool:
        """Whether some line starts with the character `first` (the first line too, if `first_line`)."""
        if first_line and self.text.startswith(first):
            return True
        return bool(np.any(self.line_start_codes == ord(first)))

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


def ratio(part: float, whole: float) -> float:
    return part / whole if whole else 0.0


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
