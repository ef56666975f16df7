"""Remove instruction data that overlaps the evaluation sets, so scores after SFT still mean something.

As GPT-3 (13-gram overlap) and datatrove's n-gram decontamination do, but on characters, because
Japanese has no spaces to cut words at. Both sides are normalised the same way (NFKC, all whitespace
removed); a conversation is removed when one of its messages shares a character n-gram with an
evaluation text, each message checked on its own so an n-gram never spans two messages. Evaluation
texts shorter than n (short JSQuAD questions such as 「ラオスの首都は」) are matched as whole substrings.

The evaluation texts are those jalm evaluates on: JSQuAD dev (every passage, the text after
``[SEP]``, and every question) and AI王 dev (every question). The JSQuAD v1.3 test file is only the
few-shot pool and is not included.

Choice of n (DEFAULT_N = 15), measured on the bundled data:

- lengths after normalisation: JSQuAD questions 7-98 characters (median 25; 8 % under 13, 14 % under
  15), JSQuAD passages 18-896 (median 157), AI王 questions 18-106 (median 46);
- clean literary text, Aozora Bunko (data/corpus/aozora.jsonl.zst, 16,275 paragraphs, 1.19M
  characters): 952 paragraphs hit at n = 8, 137 at n = 10, 8 at n = 12 (on common phrases such as
  「ないことは明らかである。」, 「しなければならない。これ」), 0 at n = 13, 15, 18 and 20;
- Wikipedia (data/corpus/wiki_jaquad.jsonl.zst, JaQuAD train contexts, 34,250 paragraphs; it shares
  no article title with JSQuAD dev): 303 paragraphs hit at n = 13 (0.88 %), 59 at n = 15 (0.17 %),
  21 at n = 18, 4 at n = 20, all on Wikipedia's stock phrases (「連合国軍最高司令官総司令部(G」,
  「19世紀末から20世紀初頭に」, 「ノーベル生理学・医学賞を受賞し」), none on a shared article;
- every JSQuAD dev question (4,442) and AI王 dev question (1,000) pasted into a longer instruction
  is caught at every n; with one character deleted from the middle of the question, n = 13 / 15 /
  18 / 20 still catch 97 / 93 / 84 / 73 % of the AI王 questions (49 / 38 / 26 / 20 % of the shorter
  JSQuAD ones, whose passages are caught anyway when they come along).

n = 13 is already clean on literary text but flags 0.9 % of encyclopedic paragraphs; n = 15 cuts that
to 0.17 % and still catches 93 % of lightly edited AI王 questions; n = 18-20 lose too many of those.
Reproduce the figures with ``python -m jalm.sft.decontaminate`` (about 40 s). Checking 20,000
conversations of 500 characters takes about 3 s on a busy 2-core machine (index built in 0.3 s): one
pass of xxh64 hashes per message against the union of all sets' n-grams, the per-set lookup only on a
hit, and one regular expression (a trie of the strings) for the short texts.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import xxhash

from jalm.sft.records import Conversation

DEFAULT_N = 15
MAX_EXAMPLES = 20
_hash = xxhash.xxh64_intdigest


def normalize(text: str) -> str:
    """NFKC and no whitespace, so full-width/half-width forms and line breaks cannot hide an overlap."""
    return "".join(unicodedata.normalize("NFKC", text).split())  # split(): every Unicode space


def eval_texts(eval_dir: Path | None = None) -> dict[str, list[str]]:
    """The texts of the sets jalm evaluates on, by set; `eval_dir` is a directory laid out like data/eval."""
    from jalm.eval.aio import DEFAULT_DATA, load_aio
    from jalm.eval.jsquad import DEFAULT_EVAL, load_squad
    from jalm.resources import bundled

    def locate(relative: str) -> Path:  # DEFAULT_* are relative to data/, e.g. "eval/aio/aio_02_dev.tsv.zst"
        return bundled(relative) if eval_dir is None else Path(eval_dir) / Path(relative).relative_to("eval")

    questions = load_squad(locate(DEFAULT_EVAL))
    jsquad = [q.passage for q in questions] + [q.question for q in questions]
    aio = [q.question for q in load_aio(locate(DEFAULT_DATA))]
    # Many questions share a passage: keep each text once, in file order.
    return {"jsquad": list(dict.fromkeys(jsquad)), "aio": list(dict.fromkeys(aio))}


def _grams(text: str, n: int) -> Iterator[int]:
    """xxh64 of every character n-gram; hashing UTF-32 slices of one buffer is faster than encoding each."""
    data = memoryview(text.encode("utf-32-le"))
    return map(_hash, (data[i : i + 4 * n] for i in range(0, len(data) - 4 * n + 4, 4)))


def _trie_pattern(words: Iterable[str]) -> re.Pattern[str]:
    """One regular expression for many literal strings, shared prefixes factored out (3× a plain
    alternation here); a match is always one of the words."""
    trie: dict = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}  # marks the end of a word

    def pattern(node: dict) -> str:
        branches = [re.escape(char) + pattern(child) for char, child in sorted(node.items()) if char]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if "" not in node:
            return body
        return ("(?:" + body + ")?") if len(branches) == 1 else body + "?"

    return re.compile(pattern(trie))


@dataclass
class NgramIndex:
    """Hashed character n-grams of each evaluation set, and its texts too short to have one."""

    n: int
    hashes: dict[str, set[int]]  # eval set -> xxh64 of its normalised n-grams
    short: dict[str, set[str]]  # eval set -> normalised texts shorter than n, matched as substrings
    _union: set[int] = field(init=False, repr=False)
    _short_pattern: re.Pattern[str] | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Clean text is the common case: one pass against every set at once, per-set lookups only on a hit.
        self._union = set().union(*self.hashes.values())
        shorts = set().union(*self.short.values())
        self._short_pattern = _trie_pattern(shorts) if shorts else None


def build_index(texts: dict[str, list[str]], n: int = DEFAULT_N) -> NgramIndex:
    """Index the evaluation texts (as `eval_texts` returns them) by character n-grams."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    hashes: dict[str, set[int]] = {}
    short: dict[str, set[str]] = {}
    for name, items in texts.items():
        hashes[name], short[name] = set(), set()
        for text in map(normalize, items):
            if len(text) >= n:
                hashes[name].update(_grams(text, n))
            elif text:
                short[name].add(text)
    return NgramIndex(n, hashes, short)


def _match(normalized: str, index: NgramIndex) -> tuple[str, str] | None:
    """(eval set, shared text) for the first overlap of an already normalised text, or None."""
    n = index.n
    if not index._union.isdisjoint(_grams(normalized, n)):
        grams = list(_grams(normalized, n))
        for i, gram in enumerate(grams):
            for name, hashes in index.hashes.items():
                if gram in hashes:
                    end = i + 1  # widen to the whole shared span, so the example shows what matched
                    while end < len(grams) and grams[end] in hashes:
                        end += 1
                    return name, normalized[i : end + n - 1]
    if index._short_pattern is not None:
        found = index._short_pattern.search(normalized)
        if found:
            name = next(name for name, texts in index.short.items() if found.group() in texts)
            return name, found.group()
    return None


def overlap(text: str, index: NgramIndex) -> str | None:
    """The evaluation set `text` shares an n-gram (or a whole short text) with, or None."""
    found = _match(normalize(text), index)
    return found[0] if found else None


def decontaminate(conversations: list[Conversation], index: NgramIndex) -> tuple[list[Conversation], dict]:
    """Keep the conversations no message of which overlaps an evaluation set; report what was removed."""
    kept: list[Conversation] = []
    removed = dict.fromkeys(index.hashes, 0)
    examples: list[str] = []
    for conversation in conversations:
        found = None
        for message in conversation.messages:
            found = _match(normalize(message["content"]), index)
            if found:
                break
        if found is None:
            kept.append(conversation)
            continue
        name, shared = found
        removed[name] = removed.get(name, 0) + 1
        if len(examples) < MAX_EXAMPLES:
            snippet = shared if len(shared) <= 60 else shared[:60] + "…"
            examples.append(f"{conversation.source}: overlaps {name}: {snippet!r}")
    report = {"n": index.n, "checked": len(conversations), "removed": removed, "examples": examples}
    return kept, report


def measure(ns: Iterable[int] = (8, 10, 12, 13, 15, 18, 20)) -> list[dict[str, Any]]:
    """The figures in the module docstring: hits on clean bundled text, catches of pasted eval questions."""
    from jalm.eval.aio import DEFAULT_DATA, load_aio
    from jalm.eval.jsquad import DEFAULT_EVAL, load_squad
    from jalm.jsonl import read_texts
    from jalm.resources import bundled

    texts = eval_texts()
    questions = {
        "jsquad": [q.question for q in load_squad(bundled(DEFAULT_EVAL))],
        "aio": [q.question for q in load_aio(bundled(DEFAULT_DATA))],
    }

    def paragraphs(relative: str) -> list[str]:
        return [p for text in read_texts([bundled(relative)]) for p in text.split("\n") if p.strip()]

    clean = {
        "aozora": paragraphs("corpus/aozora.jsonl.zst"),
        "wiki": paragraphs("corpus/wiki_jaquad.jsonl.zst"),
    }
    rows = []
    for n in ns:
        index = build_index(texts, n)
        row: dict[str, Any] = {"n": n}
        for name, items in clean.items():
            row[f"{name}_hits"] = f"{sum(overlap(p, index) is not None for p in items)}/{len(items)}"
        for name, items in questions.items():
            for edit in (False, True):
                # pasted into a longer instruction, as it is or with its middle character deleted
                edited = [q[: len(q) // 2] + q[len(q) // 2 + 1 :] if edit else q for q in items]
                hits = sum(
                    overlap(f"次の質問に答えてください。\n{q}\n答えだけを書いてください。", index) == name
                    for q in edited
                )
                row[f"{name}_{'edited' if edit else 'pasted'}"] = f"{hits}/{len(items)}"
        rows.append(row)
        print(row, flush=True)
    return rows


if __name__ == "__main__":
    measure()
