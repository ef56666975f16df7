"""JSQuAD as Stability AI's lm-evaluation-harness (jp-stable branch) runs it: `jsquad-1.1-{0.1,0.2,0.3}`.

Protocol (jp-stable `lm_eval/tasks/ja/jsquad.py`, `lm_eval/base.py`, `lm_eval/evaluator.py`):
- documents are the SQuAD-format questions in file order (article → paragraph → question);
- `rnd = random.Random(42)` shuffles the evaluation list; then, for each question in that order,
  `rnd.sample(shot_pool, k)` draws its shots (nothing is drawn at 0 shots), so `--limit N` is a prefix;
- prompt = description + the shots, each `doc_to_text(shot) + shot's first answer`, joined and followed by
  `"\\n\\n"` + `doc_to_text(question)`; the context is the text after `[SEP]`, stripped;
- greedy, no BOS, at most as many new tokens as the longest gold answer has tokens, cut at the first `"\\n"`;
- exact match and F1 (`jalm.eval.metrics`), maximum over the gold answers, averaged ×100.

jp-stable's shot pool is the JSQuAD train set (not bundled); the default here is the bundled v1.3 test set.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jalm.errors import JalmError
from jalm.io import open_compressed

DEFAULT_EVAL = "eval/jsquad-valid-v1.1.json.zst"
DEFAULT_POOL = "eval/jsquad-test-v1.3.json.zst"
SEED = 42
STOP = "\n"
FEWSHOT_SEP = "\n\n"  # jp-stable: SEP + SEP with SEP = "\n" for all three prompt versions


@dataclass(frozen=True)
class SquadQuestion:
    id: str
    title: str
    context: str  # as in the file: "title [SEP] passage"
    question: str
    answers: tuple[str, ...]

    @property
    def passage(self) -> str:
        return self.context.split("[SEP]")[-1].strip()


def load_squad(path: str | Path) -> list[SquadQuestion]:
    """Questions of a SQuAD-format JSON file (plain, .gz or .zst) in file order."""
    path = Path(path)
    try:
        with open_compressed(path) as handle:
            data = json.load(handle)
    except json.JSONDecodeError as error:
        raise JalmError(f"{path}: not valid JSON ({error.msg})") from None
    except (OSError, EOFError) as error:
        raise JalmError(f"{path}: cannot be read ({error})") from None
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise JalmError(f"{path}: not a SQuAD-format file (no top-level 'data' list)")
    questions = []
    try:
        for article in data["data"]:
            for paragraph in article["paragraphs"]:
                for qa in paragraph["qas"]:
                    answers = tuple(a["text"] for a in qa["answers"])
                    if not answers:
                        raise JalmError(f"{path}: question {qa['id']} has no answers")
                    questions.append(
                        SquadQuestion(
                            qa["id"], article["title"], paragraph["context"], qa["question"], answers
                        )
                    )
    except (KeyError, TypeError) as error:
        raise JalmError(f"{path}: not a SQuAD-format file (missing field {error})") from None
    if not questions:
        raise JalmError(f"{path}: no questions")
    return questions


def _text_v01(q: SquadQuestion) -> str:
    return f"[題名]:{q.title}\n[問題]:{q.passage}\n[質問]:{q.question}\n[答え]:"


def _text_v02(q: SquadQuestion) -> str:
    return f"文章:{q.passage}\n質問:{q.question}\n回答:"


def _text_v03(q: SquadQuestion) -> str:
    instruction = "与えられた文脈から、質問に対する答えを抜き出してください。"
    return f"### 指示:\n{instruction}\n\n### 入力:\n文脈：{q.passage}\n質問：{q.question}\n\n### 応答:\n"


# prompt version → (description, doc_to_text); the descriptions end in "\n\n" and are used as they are.
PROMPTS = {
    "0.1": ("[題名]と[問題]から[質問]に対する[答え]を抜き出しなさい\n\n", _text_v01),
    "0.2": ("質問に対する回答を文章から一言で抽出してください。回答は名詞で答えてください。\n\n", _text_v02),
    "0.3": (
        "以下は、タスクを説明する指示と、文脈のある入力の組み合わせです。要求を適切に満たす応答を書きなさい。\n\n",
        _text_v03,
    ),
}


def _prompt_spec(version: str):
    if version not in PROMPTS:
        raise JalmError(f"unknown JSQuAD prompt version {version!r}; choose one of {', '.join(PROMPTS)}")
    return PROMPTS[version]


def build_prompt(question: SquadQuestion, shots: Sequence[SquadQuestion], version: str = "0.2") -> str:
    """The jp-stable few-shot context for `question`, each shot followed by its first answer."""
    description, doc_to_text = _prompt_spec(version)
    labeled = "".join(doc_to_text(shot) + shot.answers[0] + FEWSHOT_SEP for shot in shots)
    return description + labeled + doc_to_text(question)


def fewshot_plan(
    questions: Sequence[SquadQuestion], pool: Sequence[SquadQuestion], shots: int, limit: int | None = None
) -> list[tuple[SquadQuestion, list[SquadQuestion]]]:
    """jp-stable's evaluation order and shots: shuffle with Random(42), then sample per question."""
    if shots < 0:
        raise JalmError(f"number of shots must be 0 or more, got {shots}")
    if shots > len(pool):
        raise JalmError(f"{shots} shots asked but the shot pool holds only {len(pool)} questions")
    rnd = random.Random(SEED)
    pool = list(pool)
    order = list(questions)
    rnd.shuffle(order)
    if limit is not None:
        order = order[:limit]
    return [(q, rnd.sample(pool, shots) if shots else []) for q in order]


def answer_budget(lm: Any, question: SquadQuestion, max_new_tokens: int | None = None) -> int:
    """New tokens for `question`: jp-stable's longest gold answer in tokens, unless `max_new_tokens` fixes it."""
    return max(1, max_new_tokens or max(len(lm.encode(a)) for a in question.answers))


def score_questions(
    task: str,
    questions: Sequence[SquadQuestion],
    texts: Sequence[str],
    prompts: Sequence[Any],
    outputs: Sequence[str],
) -> list[dict[str, Any]]:
    """Per-question records with exact match and F1 (max over the gold answers, in 0..1)."""
    from jalm.eval.metrics import jsquad_scores

    records = []
    for question, text, prompt, prediction in zip(questions, texts, prompts, outputs):
        exact, f1 = jsquad_scores(prediction, question.answers)
        records.append(
            {
                "task": task,
                "id": question.id,
                "prompt": text,
                "prediction": prediction,
                "golds": list(question.answers),
                "exact_match": exact,
                "f1": f1,
                "truncated": prompt.truncated,
            }
        )
    return records


def evaluate_jsquad(
    lm: Any,
    data: str | Path | None = None,
    pool: str | Path | None = None,
    shots: int = 3,
    prompt_version: str = "0.2",
    limit: int | None = None,
    batch_size: int = 8,
    max_new_tokens: int | None = None,
    progress: bool = True,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Score `lm` on JSQuAD; returns (metrics, per-question predictions in evaluation order).

    `max_new_tokens=None` is the protocol (the longest gold answer's token count per question);
    an integer fixes it (jp-stable's `hf-causal` model class, for one, uses its default of 256).
    """
    from jalm.eval.generation import fit_prompt, greedy_until
    from jalm.eval.metrics import percent
    from jalm.resources import bundled

    _prompt_spec(prompt_version)
    data_path = Path(data) if data else bundled(DEFAULT_EVAL)
    pool_path = Path(pool) if pool else bundled(DEFAULT_POOL)
    started = time.perf_counter()
    plan = fewshot_plan(load_squad(data_path), load_squad(pool_path) if shots else [], shots, limit)

    texts = [build_prompt(question, question_shots, prompt_version) for question, question_shots in plan]
    prompts = [
        fit_prompt(lm, lm.encode(text), answer_budget(lm, question, max_new_tokens))
        for (question, _), text in zip(plan, texts)
    ]
    outputs = greedy_until(lm, prompts, STOP, batch_size=batch_size, progress=progress, desc="jsquad")
    records = score_questions("jsquad", [q for q, _ in plan], texts, prompts, outputs)
    metrics = {
        "exact_match": percent(records, "exact_match"),
        "f1": percent(records, "f1"),
        "n": len(records),
        "shots": shots,
        "prompt_version": prompt_version,
        "task": f"jsquad-1.1-{prompt_version}",
        "data": str(data_path),
        "shot_pool": str(pool_path) if shots else None,
        "max_new_tokens": max_new_tokens if max_new_tokens else "longest gold answer",
        "truncated_prompts": sum(r["truncated"] for r in records),
        "seconds": round(time.perf_counter() - started, 2),
    }
    return metrics, records
