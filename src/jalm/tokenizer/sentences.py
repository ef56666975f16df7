"""A document's training sentences: its lines, split after 。！？, cut to a length SentencePiece takes."""

from __future__ import annotations

import re
from collections.abc import Iterator

# A "sentence" longer than this (minified HTML, tables flattened to one line) is cut into pieces of this
# many characters for training; nothing is dropped. SentencePiece itself would skip lines over 4192 bytes.
MAX_SENTENCE_CHARS = 1000
# Split after a sentence-final mark unless a closing bracket or another mark follows (「…。」 stays whole).
_SENTENCE_END = re.compile(r"(?<=[。！？])(?![。！？」』）】〕〉》\)\"'])")


def _raw_sentences(text: str) -> Iterator[str]:
    for line in text.split("\n"):
        if line.strip():
            yield from (s for s in _SENTENCE_END.split(line) if s.strip())


def _chunks(sentence: str, max_chars: int) -> Iterator[str]:
    return (sentence[start : start + max_chars] for start in range(0, len(sentence), max_chars))


def split_sentences(text: str, max_chars: int = MAX_SENTENCE_CHARS) -> Iterator[str]:
    """Yield the training sentences of a document: its lines, split after 。！？, cut to `max_chars`.

    Whitespace is kept as it is (leading indentation, full-width spaces); lines that are only whitespace
    carry nothing to learn and are skipped.
    """
    for sentence in _raw_sentences(text):
        yield from _chunks(sentence, max_chars)


__all__ = ["MAX_SENTENCE_CHARS", "split_sentences"]
