"""Decontamination of the pretraining corpus: a document that shares a long character n-gram with an
evaluation set (JSQuAD, AI王, any JSONL you name) is rejected, reason `decontaminated`, with the shared
n-gram as evidence.

Evaluation files: .jsonl (every string field of every record, nested ones too), .json (every string
in the file: a SQuAD-style JSQuAD file gives its titles, passages, questions and answers), .tsv and
.txt (every tab-separated cell of every line); each may be .gz or .zst compressed. Strings shorter than
n characters (answers, ids, dates) cannot hold an n-gram and are counted as skipped.

Both sides are normalised as the clean stage normalises documents (NFKC, control characters,
line ends) and then compared with all white space removed, so line breaks and spaces cannot hide
an overlap. Characters, not words, because Japanese has no spaces to cut words at (the SFT stage's
decontamination, jalm.sft.decontaminate, does the same over single messages with n = 15).

Choice of n (DEFAULT_N = 30; benchmarks/clean_decontaminate.py measures it): a pretraining document
is long, hundreds to tens of thousands of characters, so it meets many more stock phrases than an
instruction does; n = 15, right for short messages, flags whole Wikipedia articles that merely share a
phrase such as 「ノーベル生理学・医学賞を受賞し」 with a JSQuAD passage. The figures and the reasons are
in the README; in short, 30 characters keep clean text clean and still catch every copied JSQuAD
passage and most AI王 questions (median 46 characters) copied with at most light edits.

Speed: the document's n-gram hashes are those Features computes for the repetition and dedup rules
(polynomial hashes over the code points without white space, one array operation per doubling of
n); one lookup in a 16 M-entry table of the evaluation hashes' top bits rules out almost every
n-gram, a binary search confirms the few left, and the n-gram itself is compared character by
character with the evaluation text it came from, so a hash collision can never reject a document.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from jalm.corpus.features import Features
from jalm.corpus.normalize import normalize_text
from jalm.errors import JalmError

DEFAULT_N = 30
_TABLE_BITS = 24  # a 16 MB table of bools: ~3 % of lookups pass it with a million evaluation n-grams


def strings_of(value: Any) -> list[str]:
    """Every string inside a JSON value (dict values, list items), in order."""
    out: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict):
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))
    return out


def read_eval_texts(path: str | Path) -> list[str]:
    """The strings of one evaluation file (see the module docstring for the formats)."""
    from jalm.io import open_compressed

    path = Path(path)
    suffixes = [s for s in path.suffixes if s not in (".gz", ".zst")]
    kind = suffixes[-1] if suffixes else ""
    with open_compressed(path, "rt") as handle:
        if kind == ".jsonl":
            texts = []
            for number, line in enumerate(handle, 1):
                if line.strip():
                    try:
                        texts += strings_of(json.loads(line))
                    except ValueError as error:
                        raise JalmError(f"{path}:{number}: not a JSON line ({error})") from None
            return texts
        if kind == ".json":
            try:
                return strings_of(json.load(handle))
            except ValueError as error:
                raise JalmError(f"{path}: not a JSON file ({error})") from None
        if kind in (".tsv", ".txt", ".csv"):
            return [cell for line in handle for cell in line.rstrip("\n").split("\t")]
    raise JalmError(f"{path}: evaluation files must be .jsonl, .json, .tsv or .txt (optionally .gz/.zst)")


@dataclass
class EvalIndex:
    """The hashed character n-grams of evaluation files, and where each first occurs."""

    n: int
    names: list[str]  # file names, by file id
    texts: list[str]  # the evaluation strings, normalised, white space removed
    text_file: np.ndarray  # file id of each text
    hashes: np.ndarray  # sorted unique uint64 n-gram hashes
    origin: np.ndarray  # (text id, offset) of each hash's first occurrence
    counts: dict[str, Any] = field(default_factory=dict)
    table: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.table = np.zeros(1 << _TABLE_BITS, dtype=bool)
        self.table[(self.hashes >> np.uint64(64 - _TABLE_BITS)).astype(np.intp)] = True

    def match(self, doc: Features) -> tuple[str, str] | None:
        """(evaluation file name, the shared n-gram) for the first n-gram `doc` shares with the
        evaluation texts, or None."""
        grams = doc.ngram_hashes(self.n)
        if len(grams) == 0 or len(self.hashes) == 0:
            return None
        maybe = self.table.take((grams >> np.uint64(64 - _TABLE_BITS)).astype(np.intp)).nonzero()[0]
        if len(maybe) == 0:
            return None
        found = np.searchsorted(self.hashes, grams[maybe])
        found[found == len(self.hashes)] = 0
        hit = self.hashes[found] == grams[maybe]
        if not hit.any():
            return None
        dense = doc._dense32  # the code points the hashes were computed over
        for position, slot in zip(maybe[hit].tolist(), found[hit].tolist()):
            text_id, offset = self.origin[slot].tolist()
            gram = dense[position : position + self.n].tobytes().decode("utf-32-le")
            if self.texts[text_id][offset : offset + self.n] == gram:  # never trust a hash alone
                return self.names[self.text_file[text_id]], gram
        return None


def build_index(paths: list[str | Path], n: int = DEFAULT_N) -> EvalIndex:
    """Index the strings of evaluation files by their character n-grams (after normalisation)."""
    if n < 8:
        raise JalmError(f"decontamination n-gram must be at least 8 characters, got {n}")
    names, texts, files, parts, origins = [], [], [], [], []
    counts: dict[str, Any] = {"n": n, "files": {}}
    seen: set[str] = set()
    for file_id, path in enumerate(paths):
        names.append(Path(path).name)
        strings = read_eval_texts(path)
        indexed = short = 0
        for raw in strings:
            if len(raw) < n and unicodedata.is_normalized("NFKC", raw):
                short += 1  # the common case (answers, ids, dates), decided without normalising
                continue
            features = Features(normalize_text(raw))
            if features.n_dense < n:
                short += 1
                continue
            indexed += 1
            text = features._dense32.tobytes().decode("utf-32-le")  # what the hashes were computed over
            if text in seen:  # many JSQuAD questions share one passage
                continue
            seen.add(text)
            grams = features.ngram_hashes(n)
            parts.append(grams)
            origins.append(np.stack([np.full(len(grams), len(texts)), np.arange(len(grams))], axis=1))
            texts.append(text)
            files.append(file_id)
        counts["files"][Path(path).name] = {
            "strings": len(strings),
            "indexed": indexed,
            "shorter_than_n": short,
        }
    if parts:
        all_hashes = np.concatenate(parts)
        hashes, first = np.unique(all_hashes, return_index=True)
        origin = np.concatenate(origins)[first]
    else:
        hashes, origin = np.zeros(0, dtype=np.uint64), np.zeros((0, 2), dtype=np.int64)
    counts["ngrams"] = int(len(hashes))
    return EvalIndex(n, names, texts, np.array(files, dtype=np.intp), hashes, origin, counts)


@lru_cache(maxsize=2)
def cached_index(paths: tuple[str, ...], n: int) -> EvalIndex:
    """One index per process (each worker builds its own, once: ~0.5 s for JSQuAD + AI王)."""
    return build_index(list(paths), n)


def reason(found: tuple[str, str], n: int) -> str:
    name, gram = found
    return f"decontaminated: shares a {n}-character n-gram with {name}: 「{gram}」"
