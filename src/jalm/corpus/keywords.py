"""Keyword lists matched in one pass over the text (every occurrence, as Aho-Corasick finds them), then counted.

HojiChar rejects on the first substring hit, so a clean page mentioning "エンコード" or "スケジュール"
is lost. Here every list has count thresholds, and a katakana or Latin keyword only matches at a
script boundary: "ロリ" does not match inside "カロリー", "PR" not inside "PROGRAM".
"""

from __future__ import annotations

from collections import Counter
from functools import lru_cache
from pathlib import Path

import numpy as np

from jalm.corpus.chars import FLAGS, codepoints
from jalm.errors import JalmError

KEYWORD_DIR = Path(__file__).with_name("keywords")


def _script(ch: str) -> str:
    if "\u30a1" <= ch <= "\u30fa" or ch == "ー":
        return "katakana"
    if ch.isascii() and ch.isalnum():
        return "latin"
    return "other"


def resolve(file: str) -> Path:
    """A packaged list by name (e.g. "adult_ja.txt") or a path to the user's own list."""
    path = Path(file)
    if not path.is_absolute() and (KEYWORD_DIR / path).exists():
        return KEYWORD_DIR / path
    if not path.exists():
        known = ", ".join(sorted(p.name for p in KEYWORD_DIR.glob("*.txt")))
        raise JalmError(f"{file}: no such keyword list (packaged lists: {known})")
    return path


def read_list(file: str) -> list[str]:
    words = []
    for line in resolve(file).read_text(encoding="utf-8").splitlines():
        word = line.strip()
        if word and not word.startswith("#"):
            words.append(word)
    return words


class KeywordMatcher:
    """All lists at once; `count(text)` gives {list name: Counter(keyword → hits)}.

    It finds every occurrence of every keyword, overlapping ones included (what an Aho-Corasick
    automaton reports), in two steps: a table lookup over the text's code points marks the
    positions whose first two characters could begin a keyword, a hash of their first two and
    three characters keeps those that begin one (plus rare collisions), and only those are
    compared with the keywords in Python. Hits are counted in the order an Aho-Corasick scan
    reports them (by end position, longer keyword first), so `most_common` breaks ties as before.

    `table` is chars.FLAGS with two more bits (FIRST: begins a keyword, SECOND: is a keyword's
    second character), so Features built with it (Features(text, matcher.table)) give the
    keyword lookup for free with their class lookup.
    """

    def __init__(self, lists: dict[str, list[str]]) -> None:
        self.entries: dict[str, list[tuple[str, str, str, str]]] = {}
        for name, words in lists.items():
            for word in words:
                self.entries.setdefault(word, []).append((name, word, _script(word[0]), _script(word[-1])))
        self.names = list(lists)
        self.empty = not self.entries
        # Keywords of one and two characters, and longer ones by their first three characters.
        self.short: set[str] = {word for word in self.entries if len(word) <= 2}
        self.has_singles = any(len(word) == 1 for word in self.entries)
        self.by_prefix: dict[str, list[str]] = {}
        self.table = FLAGS.copy()
        self.pairs = np.zeros(1 << 16, dtype=bool)  # by _pair_hash: some 2-character keyword
        self.triples = np.zeros(1 << 16, dtype=bool)  # by _triple_hash: some longer keyword's start
        for word in self.entries:
            self.table[ord(word[0])] |= FIRST
            if len(word) > 1:
                self.table[ord(word[1])] |= SECOND
            codes = np.array([ord(ch) for ch in word[:3]], dtype=np.uint32)
            if len(word) == 2:
                self.pairs[_pair_hash(codes[:1], codes[1:]) >> _SHIFT] = True
            elif len(word) > 2:
                self.by_prefix.setdefault(word[:3], []).append(word)
                self.triples[_triple_hash(codes[:1], codes[1:2], codes[2:])] = True

    def count(self, text: str, codes: np.ndarray | None = None) -> dict[str, Counter[str]]:
        """Hits per list and keyword in `text` (`codes`: its code points, if already at hand)."""
        hits: dict[str, Counter[str]] = {name: Counter() for name in self.names}
        for name, word in self.matches(text, codes):
            hits[name][word] += 1
        return hits

    def matches(
        self,
        text: str,
        codes: np.ndarray | None = None,
        flags: np.ndarray | None = None,
        short_lines: dict[str, int] | None = None,
    ) -> list[tuple[str, str]]:
        """(list name, keyword) for every hit, in the order an Aho-Corasick scan reports them
        (`codes`, `flags`: the text's code points and their lookup in `table`, if at hand).
        `short_lines` {list name: n}: that list's keywords count only on lines of at most n
        characters (menus, footers, breadcrumbs), not inside prose."""
        if self.empty or not text:
            return []
        found = []
        for start in self._candidates(text, codes, flags).tolist():
            if self.has_singles and text[start] in self.short:
                found.append((start, -1, start, text[start]))
            pair = text[start : start + 2]
            if pair in self.short and len(pair) == 2:
                found.append((start + 1, -2, start, pair))
            for word in self.by_prefix.get(text[start : start + 3], ()):
                if text.startswith(word, start):
                    found.append((start + len(word) - 1, -len(word), start, word))
        if not found:
            return []
        found.sort()  # Aho-Corasick order: by end position, then the longest keyword first
        last = len(text) - 1
        out = []
        for end, _, start, word in found:
            for name, _, first_script, last_script in self.entries[word]:
                # A katakana/Latin word must not continue a longer word of the same script.
                if first_script != "other" and start > 0 and _script(text[start - 1]) == first_script:
                    continue
                if last_script != "other" and end < last and _script(text[end + 1]) == last_script:
                    continue
                if short_lines and name in short_lines and _line_length(text, start) > short_lines[name]:
                    continue
                out.append((name, word))
        return out

    def _candidates(self, text: str, codes: np.ndarray | None, flags: np.ndarray | None = None) -> np.ndarray:
        """Positions where some keyword may begin (a superset; each is checked exactly).
        `flags`: the text's lookup in `self.table`, if already at hand."""
        codes = codepoints(text) if codes is None else codes
        flags = self.table.take(codes) if flags is None else flags
        if self.has_singles:  # any keyword start, checked in Python (no such list is packaged)
            return ((flags & FIRST) != 0).nonzero()[0]
        # (nonzero of a bool array is 5× that of a uint8 one)
        starts = ((flags[:-1] & (flags[1:] >> 1) & FIRST) != 0).nonzero()[0]
        if len(starts) <= _FEW_STARTS:  # few: checked in Python directly
            return starts
        # Keep the positions whose first two or three characters hash like a keyword's.
        last = len(codes) - 1
        first, second = codes[starts], codes[starts + 1]
        third = codes[np.minimum(starts + 2, last)]
        pair = _pair_hash(first, second)
        keep = self.pairs[pair >> _SHIFT] | self.triples[_triple_hash(first, second, third, pair)]
        return starts[keep]


def _line_length(text: str, position: int) -> int:
    """Length of the line holding `position`, without surrounding white space."""
    start = text.rfind("\n", 0, position) + 1
    end = text.find("\n", position)
    return len(text[start : end if end >= 0 else len(text)].strip())


FIRST, SECOND = 1 << 6, 1 << 7  # the bits chars.FLAGS leaves free
_FEW_STARTS = 32  # candidate starts checked in Python without the hash step
_SHIFT = np.uint32(16)
_MULTIPLIER = np.uint32(0x9E3779B1)


def _pair_hash(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """32-bit multiplicative hash of two code points (uint32 arithmetic wraps); its top 16 bits
    index a table. Multiplying last spreads a difference in the low bits over the top ones."""
    return (first * _MULTIPLIER + second) * _MULTIPLIER


def _triple_hash(first: np.ndarray, second: np.ndarray, third: np.ndarray, pair: np.ndarray | None = None):
    pair = _pair_hash(first, second) if pair is None else pair
    return ((pair + third) * _MULTIPLIER) >> _SHIFT


@lru_cache(maxsize=8)
def matcher_for(spec: tuple[tuple[str, str], ...]) -> KeywordMatcher:
    """Build (once per process) the matcher for ((list name, file), ...)."""
    return KeywordMatcher({name: read_list(file) for name, file in spec})


def matcher_for_lists(lists: dict[str, dict]) -> KeywordMatcher:
    """The matcher for a config's `lists` table, remembered per table object (one per shard)."""
    cached = _BY_TABLE.get(id(lists))
    if cached is None or cached[0] is not lists:
        spec = tuple(sorted((name, entry["file"]) for name, entry in lists.items()))
        cached = (lists, matcher_for(spec))
        if len(_BY_TABLE) > 64:
            _BY_TABLE.clear()
        _BY_TABLE[id(lists)] = cached
    return cached[1]


_BY_TABLE: dict[int, tuple[dict, KeywordMatcher]] = {}
