"""Keyword lists matched with Aho-Corasick (pyahocorasick) in one pass over the text, then counted.

HojiChar rejects on the first substring hit, so a clean page mentioning "エンコード" or "スケジュール"
is lost. Here every list has count thresholds, and a katakana or Latin keyword only matches at a
script boundary: "ロリ" does not match inside "カロリー", "PR" not inside "PROGRAM".
"""

from __future__ import annotations

from collections import Counter
from functools import lru_cache
from pathlib import Path

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
    """One automaton over all lists; `count(text)` gives {list name: Counter(keyword → hits)}."""

    def __init__(self, lists: dict[str, list[str]]) -> None:
        import ahocorasick

        self.automaton = ahocorasick.Automaton()
        entries: dict[str, list[tuple[str, str, str, str]]] = {}
        for name, words in lists.items():
            for word in words:
                entries.setdefault(word, []).append((name, word, _script(word[0]), _script(word[-1])))
        for word, value in entries.items():
            self.automaton.add_word(word, tuple(value))
        self.names = list(lists)
        self.empty = not entries
        if not self.empty:
            self.automaton.make_automaton()

    def count(self, text: str) -> dict[str, Counter[str]]:
        hits: dict[str, Counter[str]] = {name: Counter() for name in self.names}
        if self.empty:
            return hits
        last = len(text) - 1
        for end, values in self.automaton.iter(text):
            for name, word, first_script, last_script in values:
                start = end - len(word) + 1
                # A katakana/Latin word must not continue a longer word of the same script.
                if first_script != "other" and start > 0 and _script(text[start - 1]) == first_script:
                    continue
                if last_script != "other" and end < last and _script(text[end + 1]) == last_script:
                    continue
                hits[name][word] += 1
        return hits


@lru_cache(maxsize=8)
def matcher_for(spec: tuple[tuple[str, str], ...]) -> KeywordMatcher:
    """Build (once per process) the matcher for ((list name, file), ...)."""
    return KeywordMatcher({name: read_list(file) for name, file in spec})
