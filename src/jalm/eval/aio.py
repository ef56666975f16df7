"""AI王 (aio_02_dev), closed-book and zero-shot, as the seed's table reports it.

Each question is asked as `{original_question}答えは「`; greedy decoding, no BOS, at most 64 new tokens,
cut at the first `」`. The prediction is right when, after the official AI王 normalisation, it equals
`original_answer` or one of the comma-separated alternatives in `original_additional_info`.
Questions are evaluated in file order, so `--limit N` is the first N.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jalm.errors import JalmError
from jalm.io import open_compressed

DEFAULT_DATA = "eval/aio/aio_02_dev.tsv.zst"
COLUMNS = ("qid", "original_question", "original_answer", "original_additional_info")
STOP = "」"
MAX_NEW_TOKENS = 64


@dataclass(frozen=True)
class AioQuestion:
    id: str
    question: str
    answers: tuple[str, ...]  # original_answer first, then the alternatives

    @property
    def prompt(self) -> str:
        return f"{self.question}答えは「"


def parse_alternatives(info: str) -> list[str]:
    """`original_additional_info` holds alternatives separated by commas (", " in aio_02_dev)."""
    return [part.strip() for part in info.split(",") if part.strip()]


def load_aio(path: str | Path) -> list[AioQuestion]:
    """Questions of an AI王 TSV file (plain, .gz or .zst) with a header row, in file order."""
    path = Path(path)
    questions = []
    try:
        with open_compressed(path) as handle:
            reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
            missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise JalmError(
                    f"{path}: not an AI王 TSV file (no column {', '.join(missing)} in the header)"
                )
            for line, row in enumerate(reader, start=2):
                question, answer = row["original_question"], row["original_answer"]
                if not question or not answer:
                    raise JalmError(f"{path}:{line}: empty original_question or original_answer")
                alternatives = parse_alternatives(row["original_additional_info"] or "")
                questions.append(AioQuestion(row["qid"], question, (answer, *alternatives)))
    except (OSError, EOFError, UnicodeDecodeError) as error:
        raise JalmError(f"{path}: cannot be read ({error})") from None
    if not questions:
        raise JalmError(f"{path}: no questions")
    return questions


def evaluate_aio(
    lm: Any,
    data: str | Path | None = None,
    limit: int | None = None,
    batch_size: int = 8,
    progress: bool = True,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Score `lm` on AI王; returns (metrics, per-question predictions in file order)."""
    from jalm.eval.generation import fit_prompt, greedy_until
    from jalm.eval.metrics import percent
    from jalm.resources import bundled

    data_path = Path(data) if data else bundled(DEFAULT_DATA)
    started = time.perf_counter()
    questions = load_aio(data_path)
    if limit is not None:
        questions = questions[:limit]
    prompts = [fit_prompt(lm, lm.encode(q.prompt), MAX_NEW_TOKENS) for q in questions]
    outputs = greedy_until(lm, prompts, STOP, batch_size=batch_size, progress=progress, desc="aio")
    records = score_questions("aio", questions, [q.prompt for q in questions], prompts, outputs)
    metrics = {
        "exact_match": percent(records, "exact_match"),
        "n": len(records),
        "data": str(data_path),
        "max_new_tokens": MAX_NEW_TOKENS,
        "truncated_prompts": sum(r["truncated"] for r in records),
        "seconds": round(time.perf_counter() - started, 2),
    }
    return metrics, records


def score_questions(
    task: str,
    questions: Sequence[AioQuestion],
    texts: Sequence[str],
    prompts: Sequence[Any],
    predictions: Sequence[str],
    outputs: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Per-question records with the AI王 exact match (0 or 1); `outputs`: raw continuations, when they differ."""
    from jalm.eval.metrics import aio_exact

    records = []
    for i, (question, text, prompt, prediction) in enumerate(zip(questions, texts, prompts, predictions)):
        record = {"task": task, "id": question.id, "prompt": text}
        if outputs is not None:
            record["output"] = outputs[i]
        record.update(
            prediction=prediction,
            golds=list(question.answers),
            exact_match=aio_exact(prediction, question.answers),
            truncated=prompt.truncated,
        )
        records.append(record)
    return records
