"""Answer normalisation and scores, following the two reference scripts to the letter.

JSQuAD (Stability AI lm-evaluation-harness jp-stable, `lm_eval/jasquad/evaluate.py`): both sides are
normalised with emoji removal, then `neologdn.normalize`, then whitespace runs collapsed to one space.
Exact match compares the normalised strings; F1 compares bags of fugashi (MeCab + unidic-lite) tokens of
the normalised strings, punctuation tokens removed; each is the maximum over the gold answers.

AI王 (cl-tohoku's official `compute_score.py`, with the parenthesis step of the later version):
`～`→`〜`, NFKC, lowercase, unwrap 「…」 and 『…』, delete `・`, `=`, `-`, delete all whitespace, then
delete `(…)`. Exact match: the normalised prediction equals one normalised gold answer.
"""

from __future__ import annotations

import functools
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from jalm.errors import JalmError

# jp-stable's punctuation list for F1 tokens: Japanese and full-width marks plus ASCII punctuation.
JSQUAD_PUNCTUATION = frozenset(
    "！？｡。＂＃＄％＆＇（）＊＋，－／：；＜＝＞＠［＼］＾＿｀｛｜｝～｟｠｢｣､、〃》「」『』【】〔〕〖〗〘〙〚〛〜〝〞〟〰〾〿–—‘’‛“”„‟…‧﹏."
    + string.punctuation
)
# The code-point ranges jp-stable strips after the per-character emoji test.
_EMOJI_RANGES = re.compile(
    "["
    "\U0001f600-\U0001f64f"  # emoticons
    "\U0001f300-\U0001f5ff"  # symbols & pictographs
    "\U0001f680-\U0001f6ff"  # transport & map symbols
    "\U0001f1e0-\U0001f1ff"  # flags
    "\U00002702-\U000027b0"  # dingbats
    "]+"
)


def _require(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise JalmError(
            f"the JSQuAD metric needs the Python package {module!r}: pip install neologdn emoji fugashi unidic-lite"
        ) from None


def remove_emoji(text: str) -> str:
    emoji = _require("emoji")
    text = "".join("" if emoji.is_emoji(c) else c for c in text)
    return _EMOJI_RANGES.sub("", text)


def normalize_jsquad(text: str) -> str:
    """jp-stable's `normalize_answer`: emoji removal → neologdn → single spaces."""
    neologdn = _require("neologdn")
    return " ".join(neologdn.normalize(remove_emoji(text)).split())


@functools.lru_cache(maxsize=1)
def _tagger():
    fugashi = _require("fugashi")
    unidic_lite = _require("unidic_lite")
    # Pin the dictionary to unidic-lite (what jp-stable installs) even where full unidic is also present.
    return fugashi.Tagger(f'-Owakati -d "{unidic_lite.DICDIR}"')


def jsquad_tokens(text: str) -> list[str]:
    """fugashi word tokens of the normalised text, punctuation tokens removed."""
    return [t for t in _tagger().parse(normalize_jsquad(text)).split() if t not in JSQUAD_PUNCTUATION]


def jsquad_exact(prediction: str, gold: str) -> bool:
    return normalize_jsquad(prediction) == normalize_jsquad(gold)


def jsquad_f1(prediction: str, gold: str) -> float:
    pred_tokens, gold_tokens = jsquad_tokens(prediction), jsquad_tokens(gold)
    same = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def jsquad_scores(prediction: str, golds: Iterable[str]) -> tuple[float, float]:
    """(exact match, F1) of one prediction, each the maximum over the gold answers, in 0..1."""
    golds = list(golds)
    if not golds:
        raise JalmError("a JSQuAD question has no gold answer")
    exact = max(float(jsquad_exact(prediction, g)) for g in golds)
    f1 = max(jsquad_f1(prediction, g) for g in golds)
    return exact, f1


def normalize_aio(text: str) -> str:
    """The official AI王 answer normalisation."""
    text = text.replace("～", "〜")
    text = unicodedata.normalize("NFKC", text)
    text = text.lower()
    text = re.sub(r"「(.*?)」", r"\1", text)
    text = re.sub(r"『(.*?)』", r"\1", text)
    text = text.replace("・", "").replace("=", "").replace("-", "")
    text = re.sub(r"\s+", "", text).strip()
    return re.sub(r"\((.*?)\)", "", text)


def aio_exact(prediction: str, golds: Iterable[str]) -> float:
    """1.0 when the normalised prediction equals any normalised gold answer, else 0.0."""
    return float(normalize_aio(prediction) in {normalize_aio(g) for g in golds})


def percent(records: Sequence[dict[str, Any]], key: str) -> float:
    """The mean of a 0..1 score over records, ×100 (0.0 for no records)."""
    return 100.0 * sum(r[key] for r in records) / len(records) if records else 0.0
