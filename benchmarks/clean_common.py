"""Shared pieces of the clean-stage benchmarks: the labelled set and HojiChar's pipeline.

The labelled set (written to runs/bench_clean/labelled/ by `build_labelled_set`):
- clean: real documents from ../shared/data that are NOT in the bundled data/ (which the defaults
  were set on): the 101 held-out Wikipedia articles (dev/wiki_jaquad), the 45 works of two held-out
  Aozora authors (dev/aozora_heldout_authors), the Aozora works of corpus/aozora.jsonl that are not
  bundled, and Japanese technical help pages (GIMP, LibreOffice, LilyPond, aptitude) from
  noisy/web_raw.jsonl reduced to their main text by trafilatura; a help page counts as clean
  technical Japanese when that text has ≥ 200 non-space characters of which ≥ 60% are Japanese
  (a labelling rule stricter than, and separate from, jalm's own 50% filter; pages between are left
  out as ambiguous, English-only pages too);
- noise: SYNTHETIC documents from clean_quality_noise.py (hand-written templates, labelled
  synthetic), and near-duplicates of clean documents with small edits.
Near-duplicate copies come after their originals, so the copy to remove is the later one.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

# ../shared/data beside the checkout; JALM_SHARED_DATA names it elsewhere (e.g. from a git worktree)
SHARED = Path(os.environ.get("JALM_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "runs" / "bench_clean"


_ANNOUNCED = []


def require_shared() -> Path:
    """The shared development data, announced as the first line of output (a fresh clone lacks it)."""
    if not SHARED.exists():
        sys.exit(
            f"benchmark: {SHARED} not found: these benchmarks need the shared development data (../shared/data)"
        )
    if not _ANNOUNCED:
        print(
            f"data: {SHARED} (the shared development data beside the checkout, not bundled in data/)",
            flush=True,
        )
        _ANNOUNCED.append(True)
    return SHARED


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def technical_pages(raw_html: bool = False) -> list[dict]:
    """The help pages labelled clean technical Japanese (on their extracted text); with `raw_html`, each
    record's text is the page's HTML as found, for `jalm clean` to extract itself."""
    from jalm.corpus.features import Features
    from jalm.corpus.html import extract_main_text
    from jalm.corpus.normalize import normalize_text

    pages = []
    for record in read_jsonl(SHARED / "noisy" / "web_raw.jsonl"):
        if record["kind"] != "html":
            continue
        text = extract_main_text(record["text"]) or ""
        features = Features(normalize_text(text))
        if features.n_chars >= 200 and features.n_japanese / features.n_chars >= 0.6:
            kept_text = record["text"] if raw_html else text
            pages.append({"text": kept_text, "source": record["source"], "license": record["license"]})
    return pages


def build_labelled_set(out: Path = WORK / "labelled") -> tuple[list[Path], dict[str, dict]]:
    """Write the labelled set as JSONL shards; return (files in order, {id: {"label", "category"}})."""
    require_shared()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from clean_quality_noise import make_noise
    from jalm.jsonl import read_records

    bundled = {
        (r.get("title"), r.get("author"))
        for r in read_records([ROOT / "data" / "corpus" / "aozora.jsonl.zst"])
    }
    clean: dict[str, list[dict]] = {
        "wikipedia": read_jsonl(SHARED / "dev" / "wiki_jaquad.jsonl"),
        "aozora_heldout_authors": read_jsonl(SHARED / "dev" / "aozora_heldout_authors.jsonl"),
        "aozora_unbundled": [
            r
            for r in read_jsonl(SHARED / "corpus" / "aozora.jsonl")
            if (r.get("title"), r.get("author")) not in bundled
        ],
        "technical": technical_pages(),
    }
    out.mkdir(parents=True, exist_ok=True)
    labels: dict[str, dict] = {}
    files = []
    texts = []
    for n, (category, records) in enumerate(clean.items()):
        path = out / f"a{n}_clean_{category}.jsonl"
        with open(path, "w", encoding="utf-8") as handle:
            for i, record in enumerate(records):
                doc = {"id": f"clean-{category}-{i}", **record}
                labels[doc["id"]] = {"label": "clean", "category": category}
                texts.append(record["text"])
                handle.write(json.dumps(doc, ensure_ascii=False) + "\n")
        files.append(path)
    noise = make_noise(texts)
    for name, records in (
        ("b_noise", [r for r in noise if r["category"] != "near_duplicate"]),
        ("c_near_duplicates", [r for r in noise if r["category"] == "near_duplicate"]),
    ):
        path = out / f"{name}.jsonl"
        with open(path, "w", encoding="utf-8") as handle:
            for record in records:
                labels[record["id"]] = {"label": "noise", "category": record["category"]}
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        files.append(path)
    return files, labels


def hojichar_pipeline(
    dedup: bool = True, ignore_confused: bool = False, min_len: int = 150, max_len: int = 1_000_000
):
    """HojiChar 0.18's own Japanese filters with their default parameters, in the order of its docs,
    plus its MinHash near-duplicate removal. Length bounds as jalm's (HojiChar has no default).
    DiscardTooManyNouns is left out: it needs fugashi/MeCab, which jalm does not use either.
    `ignore_confused=True` is HojiChar's own option against katakana false positives in its NG-word
    filters (off by default); we report both."""
    from hojichar import Compose
    from hojichar import document_filters as F

    filters = [
        F.DocumentNormalizer(),
        F.DocumentLengthFilter(min_doc_len=min_len, max_doc_len=max_len),
        F.AcceptJapanese(),
        F.DiscardRareKuten(),
        F.DiscardAdultContentJa(ignore_confused=ignore_confused),
        F.DiscardDiscriminationContentJa(ignore_confused=ignore_confused),
        F.DiscardViolenceContentJa(ignore_confused=ignore_confused),
        F.DiscardBBSComments(),
        F.DiscardAds(),
        F.HeaderFooterTagsRemover(),
        F.CharRepetitionRatioFilter(),
        F.WordRepetitionRatioFilter(),
        F.DiscardTooManySpecialToken(),
        F.SingleCharacterRepetitionFilter(),
        F.DiscardTooManyEndingEllipsis(),
        F.DiscardTooShortLines(),
    ]
    if dedup:
        from hojichar.filters.deduplication import GenerateDedupLSH, InlineDeduplicator

        filters += [GenerateDedupLSH(), InlineDeduplicator()]
    return Compose(filters)


def hojichar_reason(document) -> str:
    detail = getattr(document, "reject_reason", None) or {}
    return str(detail.get("name", "?")).split("-", 1)[-1] if isinstance(detail, dict) else "?"
