"""Perplexity per token and bits per character on held-out JSONL text (any file with a `text` field).

- Each document is tokenised on its own with no special tokens (no BOS, no `</s>`); windows never mix
  documents, so no token is predicted from another document's text.
- The first token of a document has nothing before it and is not predicted: a document of n tokens
  contributes n - 1 predicted tokens, and `tokens` counts predicted tokens only. Its characters are all
  counted in `chars` (the first token is context that every model gets for free).
- A document longer than the window is read in strided windows of `window` tokens: the first scores
  its tokens 1..window-1, each later one the next `stride` tokens, reaching back as far as the window
  allows; every token is scored exactly once, with at least `window - stride` tokens of left context
  after the first window.
- ppl = exp(total NLL / predicted tokens); bits_per_char = total NLL / ln 2 / characters. Per-token
  perplexity depends on the tokenizer; bits per character can be compared across tokenizers.
Windows from all documents are batched (longest first, right padding).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jalm.errors import JalmError


@dataclass(frozen=True)
class Window:
    ids: tuple[int, ...]
    scored: int  # the last `scored` tokens of `ids` are predicted in this window


def plan_windows(ids: Sequence[int], window: int, stride: int) -> list[Window]:
    """Strided windows over one document; every token but the first is scored exactly once.

    The first window scores its tokens 1..window-1; each later window scores the next `stride` tokens
    and reaches back as far as the window allows, so each of them sees at least `window - stride`
    tokens of context (the last window too, which HF's recipe gives less).
    """
    if window < 2:
        raise JalmError(f"perplexity window must be at least 2 tokens, got {window}")
    if not 1 <= stride < window:
        raise JalmError(
            f"perplexity stride must be between 1 and the window - 1 ({window - 1}), got {stride}"
        )
    n = len(ids)
    if n < 2:
        return []
    end = min(window, n)
    windows = [Window(tuple(ids[:end]), end - 1)]
    while end < n:
        new_end = min(end + stride, n)
        windows.append(Window(tuple(ids[max(0, new_end - window) : new_end]), new_end - end))
        end = new_end
    return windows


def evaluate_ppl(
    lm: Any,
    data: str | Path | Iterable[str | Path],
    window: int | None = None,
    stride: int | None = None,
    limit: int | None = None,
    batch_size: int = 8,
    progress: bool = True,
    text_field: str = "text",
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Perplexity and bits per character of `lm` on JSONL documents; returns (metrics, per-document rows).

    `window` defaults to the model's context length and `stride` to half the window; `limit` takes the
    first N documents.
    """
    from jalm.jsonl import expand_inputs, read_texts
    from jalm.progress import progress_bar

    paths = expand_inputs([data] if isinstance(data, (str, Path)) else list(data))
    window = window or lm.max_length
    if window > lm.max_length:
        raise JalmError(f"perplexity window {window} is longer than the model's context ({lm.max_length})")
    stride = stride or max(1, window // 2)
    started = time.perf_counter()

    documents, chars, no_prediction = 0, 0, 0
    windows: list[tuple[int, Window]] = []
    per_doc: list[dict[str, Any]] = []
    texts = read_texts(paths, text_field)
    for index, text in enumerate(progress_bar(texts, desc="ppl: tokenize", unit="doc", disable=not progress)):
        if limit is not None and index >= limit:
            break
        ids = lm.encode(text)
        documents += 1
        chars += len(text)
        doc_windows = plan_windows(ids, window, stride)
        if not doc_windows:
            no_prediction += 1
        windows.extend((index, w) for w in doc_windows)
        per_doc.append(
            {"task": "ppl", "id": index, "chars": len(text), "tokens": max(len(ids) - 1, 0), "nll": 0.0}
        )
    if documents == 0:
        raise JalmError(f"{', '.join(map(str, paths))}: no documents to score")

    tokens = sum(w.scored for _, w in windows)
    if tokens == 0:
        raise JalmError(f"{', '.join(map(str, paths))}: no document has two tokens or more; nothing to score")
    order = sorted(range(len(windows)), key=lambda i: -len(windows[i][1].ids))
    total_nll = 0.0
    with progress_bar(total=tokens, desc="ppl", unit="tok", unit_scale=True, disable=not progress) as bar:
        for start in range(0, len(order), batch_size):
            chunk = [windows[i] for i in order[start : start + batch_size]]
            # One forward per batch; the per-document sums need the NLL per window, so score rows one by one.
            for doc_index, nll in _score_rows(lm, chunk):
                per_doc[doc_index]["nll"] += nll
                total_nll += nll
            bar.update(sum(w.scored for _, w in chunk))

    metrics = {
        "ppl": math.exp(total_nll / tokens),
        "bits_per_char": total_nll / math.log(2) / chars if chars else float("nan"),
        "nll_per_token": total_nll / tokens,
        "tokens": tokens,
        "chars": chars,
        "documents": documents,
        "documents_without_predictions": no_prediction,
        "window": window,
        "stride": stride,
        "data": ", ".join(str(p) for p in paths),
        "seconds": round(time.perf_counter() - started, 2),
    }
    return metrics, per_doc


def _score_rows(lm: Any, chunk: Sequence[tuple[int, Window]]) -> list[tuple[int, float]]:
    import torch
    import torch.nn.functional as F

    batch = [w for _, w in chunk]
    width = max(len(w.ids) for w in batch)
    input_ids = torch.full((len(batch), width), lm.pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, w in enumerate(batch):
        input_ids[row, : len(w.ids)] = torch.tensor(w.ids, dtype=torch.long)
        mask[row, : len(w.ids)] = 1
    out: list[tuple[int, float]] = []
    with torch.inference_mode():
        logits = lm.model(input_ids=input_ids.to(lm.device), attention_mask=mask.to(lm.device)).logits
        for row, (doc_index, w) in enumerate(chunk):
            n, k = len(w.ids), w.scored
            # the logits at position p predict the token at p + 1
            row_logits = logits[row, n - k - 1 : n - 1].float()
            targets = input_ids[row, n - k : n].to(row_logits.device)
            out.append((doc_index, float(F.cross_entropy(row_logits, targets, reduction="sum"))))
    return out
