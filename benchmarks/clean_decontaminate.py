"""Decontamination of the clean stage: the choice of n, and the lookup's speed against pyahocorasick.

    .venv/bin/python benchmarks/clean_decontaminate.py [--ns 15 20 25 30 40 50]

Evaluation sets: JSQuAD dev (jsquad-valid-v1.1.json) and the three AI王 dev files, as
`jalm clean --decontaminate` reads them (every string). For each n:
- false hits: whole documents of clean text that share an n-gram with them: the 690 Wikipedia
  articles of corpus/wiki_jaquad.jsonl (JaQuAD train contexts, sharing no article with JSQuAD dev),
  the 557 Aozora works of corpus/aozora.jsonl and the 45 of dev/aozora_heldout_authors.jsonl;
- catches: every JSQuAD dev passage and every AI王 question pasted into a real Aozora paragraph
  (as a page quoting it would), as it is, and with one character deleted in its middle (a light edit).
Speed: the lookup over the Wikipedia articles (their Features built beforehand, as the pipeline has
them), ours (hash table + binary search on Features' n-gram hashes) against pyahocorasick's
automaton of the same n-grams as strings, in characters per CPU-second.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from clean_common import require_shared
from jalm.corpus.decontaminate import build_index
from jalm.corpus.features import Features
from jalm.corpus.normalize import normalize_text


def cpu() -> float:
    return time.process_time()


def texts(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line)["text"] for line in handle if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ns", type=int, nargs="+", default=[15, 20, 25, 30, 40, 50])
    args = parser.parse_args()
    shared = require_shared()
    evals = [shared / "eval" / "jsquad-valid-v1.1.json"] + sorted((shared / "eval" / "aio").glob("*.tsv"))
    squad = json.loads((shared / "eval" / "jsquad-valid-v1.1.json").read_text(encoding="utf-8"))
    passages = list(
        dict.fromkeys(
            p["context"].split("[SEP]", 1)[-1].strip() for a in squad["data"] for p in a["paragraphs"]
        )
    )
    questions = []
    for path in evals[1:]:
        rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()[1:]]
        questions += [row[5] for row in rows if len(row) > 5]
    clean = {
        "wikipedia (690 articles)": texts(shared / "corpus" / "wiki_jaquad.jsonl"),
        "aozora (557 works)": texts(shared / "corpus" / "aozora.jsonl"),
        "aozora held-out (45 works)": texts(shared / "dev" / "aozora_heldout_authors.jsonl"),
    }
    features = {name: [Features(normalize_text(t)) for t in items] for name, items in clean.items()}
    host = next(p for p in clean["aozora held-out (45 works)"][0].split("\n") if len(p) > 80)

    def pasted(item: str, edit: bool) -> Features:
        if edit:
            item = item[: len(item) // 2] + item[len(item) // 2 + 1 :]
        return Features(normalize_text(f"{host}\n{item}\n{host}"))

    print(
        f"evaluation files: {', '.join(p.name for p in evals)}; {len(passages)} passages, {len(questions)} AI王 questions"
    )
    print(
        "\n| n | "
        + " | ".join(f"false hits: {name}" for name in clean)
        + " | JSQuAD passages pasted | edited | AI王 questions pasted | edited |"
    )
    print("|---:|" + "---:|" * (len(clean) + 4))
    for n in args.ns:
        index = build_index(evals, n)
        row = [str(n)]
        for items in features.values():
            hits = [f for f in items if index.match(f)]
            row.append(f"{len(hits)}/{len(items)}")
        for items in (passages, questions):
            for edit in (False, True):
                caught = sum(index.match(pasted(item, edit)) is not None for item in items)
                row.append(f"{100 * caught / len(items):.1f}%")
        print("| " + " | ".join(row) + " |", flush=True)

    # Speed of the lookup alone, on documents whose Features exist (as in the pipeline).
    n = 30
    index = build_index(evals, n)
    docs = features["wikipedia (690 articles)"]
    fresh = [Features(f.text) for f in docs]
    chars = sum(f.n_dense for f in fresh)
    start = cpu()
    for f in fresh:
        index.match(f)
    ours = cpu() - start
    row = f"\nlookup, n = {n}, {chars / 1e6:.1f} M characters of Wikipedia: ours {chars / ours / 1e6:.1f} M chars per CPU-second"
    try:
        import ahocorasick
    except ImportError:
        print(row + " (pyahocorasick not installed: no comparison)")
        return
    start = cpu()
    automaton = ahocorasick.Automaton()
    for text in index.texts:
        for i in range(len(text) - n + 1):
            automaton.add_word(text[i : i + n], i)
    automaton.make_automaton()
    built = cpu() - start
    dense = ["".join(f.text.split()) for f in docs]
    start = cpu()
    for text in dense:
        next(automaton.iter(text), None)
    theirs = cpu() - start
    print(
        row
        + f"; pyahocorasick {chars / theirs / 1e6:.1f} M chars per CPU-second (automaton built in {built:.1f} CPU-s)"
    )


if __name__ == "__main__":
    main()
