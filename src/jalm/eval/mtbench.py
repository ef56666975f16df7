"""Japanese MT-Bench graded by a judge model, as FastChat's `llm_judge` grades single answers.

- Questions: FastChat's `question.jsonl` (80 two-turn questions, 8 categories; bundled from
  lm-sys/FastChat fastchat/llm_judge/data/japanese_mt_bench/). Answers: FastChat's answer format
  (`{"question_id", "model_id", "choices": [{"index": 0, "turns": [a1, a2]}]}`), read from a file or
  generated here with the model's chat template (turn 2 is asked after turn 1 and the model's own answer),
  greedy, at most `max_new_tokens` per turn.
- Judge prompts: FastChat's `single-v1` (turn 1) and `single-v1-multi-turn` (turn 2); for the categories
  that need a reference (math, reasoning, coding) `single-math-v1` and `single-math-v1-multi-turn` with
  GPT-4's reference answers. Each is one request to an OpenAI-compatible `/chat/completions`:
  `[system, user]`, temperature 0, max_tokens 2048 (FastChat's values).
- Rating: FastChat's `[[rating]]` parse: the first `\\[\\[(\\d+\\.?\\d*)\\]\\]`, else the first
  `\\[(\\d+\\.?\\d*)\\]`; anything else is unparsable, stored as score -1 (FastChat's marker), counted and
  shown, and left out of the means (as FastChat's show_result does).
- Judgments are appended to a JSONL file (FastChat's judgment fields) as each arrives, flushed; a rerun
  skips every (question, turn) already judged for this model and judge, so a run killed halfway continues.
- Transient failures (connection errors, timeouts, HTTP 429 and 5xx) are retried with exponential backoff;
  other HTTP errors stop the run with one line naming the endpoint.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from jalm.errors import JalmError
from jalm.io import open_compressed

DEFAULT_QUESTIONS = "eval/japanese_mt_bench/question.jsonl.zst"
DEFAULT_REFERENCES = "eval/japanese_mt_bench/reference_answer-gpt-4.jsonl.zst"
NEED_REF_CATS = ("math", "reasoning", "coding")
# ASCII digits only: FastChat's ast.literal_eval fails on full-width ones, so they are not a rating either.
ONE_SCORE = re.compile(r"\[\[(\d+\.?\d*)\]\]", re.ASCII)
ONE_SCORE_BACKUP = re.compile(r"\[(\d+\.?\d*)\]", re.ASCII)

_FORMAT = 'you must rate the response on a scale of 1 to 10 by strictly following this format: "[[rating]]", for example: "Rating: [[5]]".'
# FastChat fastchat/llm_judge/data/judge_prompts.jsonl: name → (system prompt, user prompt template).
JUDGE_PROMPTS = {
    "single-v1": (
        "You are a helpful assistant.",
        "[Instruction]\nPlease act as an impartial judge and evaluate the quality of the response provided by "
        "an AI assistant to the user question displayed below. Your evaluation should consider factors such as "
        "the helpfulness, relevance, accuracy, depth, creativity, and level of detail of the response. Begin your "
        "evaluation by providing a short explanation. Be as objective as possible. After providing your "
        f"explanation, {_FORMAT}\n\n[Question]\n{{question}}\n\n[The Start of Assistant's Answer]\n{{answer}}\n"
        "[The End of Assistant's Answer]",
    ),
    "single-math-v1": (
        "You are a helpful assistant.",
        "[Instruction]\nPlease act as an impartial judge and evaluate the quality of the response provided by "
        "an AI assistant to the user question displayed below. Your evaluation should consider correctness and "
        "helpfulness. You will be given a reference answer and the assistant's answer. Begin your evaluation by "
        "comparing the assistant's answer with the reference answer. Identify and correct any mistakes. Be as "
        f"objective as possible. After providing your explanation, {_FORMAT}\n\n[Question]\n{{question}}\n\n"
        "[The Start of Reference Answer]\n{ref_answer_1}\n[The End of Reference Answer]\n\n"
        "[The Start of Assistant's Answer]\n{answer}\n[The End of Assistant's Answer]",
    ),
    "single-v1-multi-turn": (
        "Please act as an impartial judge and evaluate the quality of the response provided by an AI assistant "
        "to the user question displayed below. Your evaluation should consider factors such as the helpfulness, "
        "relevance, accuracy, depth, creativity, and level of detail of the response. You evaluation should "
        "focus on the assistant's answer to the second user question. Begin your evaluation by providing a "
        f"short explanation. Be as objective as possible. After providing your explanation, {_FORMAT}\n\n",
        "<|The Start of Assistant A's Conversation with User|>\n\n### User:\n{question_1}\n\n### Assistant A:\n"
        "{answer_1}\n\n### User:\n{question_2}\n\n### Assistant A:\n{answer_2}\n\n"
        "<|The End of Assistant A's Conversation with User|>",
    ),
    "single-math-v1-multi-turn": (
        "Please act as an impartial judge and evaluate the quality of the response provided by an AI assistant "
        "to the user question. Your evaluation should consider correctness and helpfulness. You will be given a "
        "reference answer and the assistant's answer. You evaluation should focus on the assistant's answer to "
        "the second question. Begin your evaluation by comparing the assistant's answer with the reference "
        "answer. Identify and correct any mistakes. Be as objective as possible. After providing your "
        f"explanation, {_FORMAT}\n\n",
        "<|The Start of Reference Answer|>\n\n### User:\n{question_1}\n\n### Reference answer:\n{ref_answer_1}\n\n"
        "### User:\n{question_2}\n\n### Reference answer:\n{ref_answer_2}\n\n<|The End of Reference Answer|>\n\n\n"
        "<|The Start of Assistant A's Conversation with User|>\n\n### User:\n{question_1}\n\n### Assistant A:\n"
        "{answer_1}\n\n### User:\n{question_2}\n\n### Assistant A:\n{answer_2}\n\n"
        "<|The End of Assistant A's Conversation with User|>",
    ),
}


def parse_rating(judgment: str) -> float | None:
    """FastChat's rating: the number in the first `[[n]]` (else the first `[n]`), n digits with at most one
    decimal point; None when there is none (FastChat's -1)."""
    match = ONE_SCORE.search(judgment) or ONE_SCORE_BACKUP.search(judgment)
    return float(match.group(1)) if match else None


def _jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    try:
        with open_compressed(path) as handle:
            for line_no, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise JalmError(f"{path}:{line_no}: not valid JSON ({error.msg})") from None
    except FileNotFoundError:
        raise JalmError(f"{path}: no such file") from None
    except (OSError, EOFError, UnicodeDecodeError) as error:
        raise JalmError(f"{path}: cannot be read ({error})") from None
    return rows


def load_questions(path: str | Path) -> list[dict[str, Any]]:
    """FastChat question.jsonl: question_id, category, turns (two)."""
    path = Path(path)
    rows = _jsonl(path)
    for i, q in enumerate(rows, start=1):
        if not {"question_id", "category", "turns"} <= set(q) or len(q["turns"]) != 2:
            raise JalmError(f"{path}:{i}: not a two-turn FastChat question (question_id, category, turns)")
    if not rows:
        raise JalmError(f"{path}: no questions")
    return rows


def load_answers(path: str | Path) -> dict[int, dict[str, Any]]:
    """FastChat answer file → {question_id: record}; each record's choices[0].turns holds the turns."""
    path = Path(path)
    answers = {}
    for i, row in enumerate(_jsonl(path), start=1):
        try:
            turns = row["choices"][0]["turns"]
            answers[row["question_id"]] = {**row, "turns": [str(t) for t in turns]}
        except (KeyError, IndexError, TypeError):
            raise JalmError(
                f"{path}:{i}: not FastChat's answer format (question_id, choices[0].turns)"
            ) from None
    return answers


def judge_messages(
    question: dict[str, Any], answer: Sequence[str], turn: int, reference: Sequence[str] | None
) -> tuple[str, list[dict[str, str]]]:
    """(FastChat prompt name, [system, user] messages) for grading `turn` (1 or 2) of one answer."""
    ref = reference is not None and question["category"] in NEED_REF_CATS
    name = ("single-math-v1" if ref else "single-v1") + ("-multi-turn" if turn == 2 else "")
    system, template = JUDGE_PROMPTS[name]
    fields: dict[str, str] = {}
    if ref:
        fields["ref_answer_1"] = reference[0]
        if turn == 2:
            fields["ref_answer_2"] = reference[1]
    if turn == 2:
        fields.update(
            question_1=question["turns"][0],
            question_2=question["turns"][1],
            answer_1=answer[0],
            answer_2=answer[1],
        )
    else:
        fields.update(question=question["turns"][0], answer=answer[0])
    return name, [
        {"role": "system", "content": system},
        {"role": "user", "content": template.format(**fields)},
    ]


def completions_url(base: str) -> str:
    base = base.rstrip("/")
    return base if base.endswith("/chat/completions") else base + "/chat/completions"


def call_judge(
    url: str,
    model: str,
    messages: list[dict[str, str]],
    key: str | None = None,
    retries: int = 5,
    backoff: float = 1.0,
    timeout: float = 600.0,
    max_tokens: int = 2048,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """One chat completion from an OpenAI-compatible endpoint (temperature 0), retried on transient errors."""
    body = json.dumps(
        {"model": model, "messages": messages, "temperature": 0, "max_tokens": max_tokens}, ensure_ascii=False
    ).encode("utf-8")
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    endpoint = completions_url(url)
    last = ""
    for attempt in range(retries + 1):
        try:
            request = urllib.request.Request(endpoint, data=body, headers=headers, method="POST")
            with urllib.request.urlopen(request, timeout=timeout) as response:
                data = json.loads(response.read().decode("utf-8"))
            return str(data["choices"][0]["message"]["content"])
        except urllib.error.HTTPError as error:
            detail = error.read().decode("utf-8", "replace")[:200]
            if error.code != 429 and error.code < 500:
                raise JalmError(
                    f"{endpoint}: judge refused the request (HTTP {error.code}: {detail})"
                ) from None
            last = f"HTTP {error.code}: {detail}"
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            last = str(getattr(error, "reason", error))
        except (json.JSONDecodeError, KeyError, IndexError, TypeError):
            raise JalmError(f"{endpoint}: not an OpenAI chat-completions reply") from None
        if attempt < retries:
            sleep(backoff * 2**attempt)
    raise JalmError(f"{endpoint}: judge unreachable after {retries + 1} tries ({last}); rerun to continue")


def generate_answers(
    model_dir: str | Path,
    questions: Sequence[dict[str, Any]],
    out: str | Path,
    model_id: str,
    max_new_tokens: int = 1024,
    device: str = "cpu",
    dtype: str = "float32",
    progress: bool = True,
) -> dict[int, dict[str, Any]]:
    """Answer both turns with the model's chat template (greedy) into a FastChat answer file; questions
    already answered in `out` are kept, so this resumes too."""
    import warnings

    from jalm.generate import chat, load
    from jalm.progress import progress_bar

    out = Path(out)
    done = load_answers(out) if out.exists() else {}
    todo = [q for q in questions if q["question_id"] not in done]
    if todo:
        loaded = load(model_dir, device=device, dtype=dtype)
        out.parent.mkdir(parents=True, exist_ok=True)
        with (
            open(out, "a", encoding="utf-8") as handle,
            progress_bar(total=len(todo), desc="mt-bench answers", unit="q", disable=not progress) as bar,
            warnings.catch_warnings(),
        ):
            warnings.simplefilter(
                "ignore", UserWarning
            )  # "no chat template": recorded in the results instead
            for q in todo:
                messages, turns = [], []
                for user in q["turns"]:
                    messages.append({"role": "user", "content": user})
                    reply = chat(loaded, messages, max_new_tokens=max_new_tokens, do_sample=False)[0]
                    messages.append({"role": "assistant", "content": reply})
                    turns.append(reply)
                row = {
                    "question_id": q["question_id"],
                    "answer_id": f"{model_id}-{q['question_id']}",
                    "model_id": model_id,
                    "choices": [{"index": 0, "turns": turns}],
                    "tstamp": time.time(),
                }
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
                handle.flush()
                done[q["question_id"]] = {**row, "turns": turns}
                bar.update(1)
    return done


def _drop_torn_tail(path: Path) -> None:
    """A run killed while writing can leave half a line at the end: cut it (that turn is judged again)."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        print(f"{path}: dropped an incomplete last line ({len(data) - cut} bytes) left by an interrupted run")
        with open(path, "r+b") as handle:
            handle.truncate(cut)


def _done_keys(path: Path, model: str, judge_model: str) -> set[tuple[Any, int]]:
    if not path.exists():
        return set()
    keys = set()
    for row in _jsonl(path):
        if row.get("model") == model and list(row.get("judge", []))[:1] == [judge_model]:
            keys.add((row["question_id"], int(row["turn"])))
    return keys


def judge_answers(
    questions: Sequence[dict[str, Any]],
    answers: dict[Any, dict[str, Any]],
    judgments: str | Path,
    *,
    model: str,
    judge_url: str,
    judge_model: str,
    key: str | None = None,
    references: dict[Any, dict[str, Any]] | None = None,
    retries: int = 5,
    backoff: float = 1.0,
    timeout: float = 600.0,
    max_tokens: int = 2048,
    progress: bool = True,
) -> int:
    """Grade both turns of every answered question not yet in `judgments`; returns how many were judged now."""
    from jalm.progress import progress_bar

    path = Path(judgments)
    _drop_torn_tail(path)
    done = _done_keys(path, model, judge_model)
    missing = [q["question_id"] for q in questions if q["question_id"] not in answers]
    if missing:
        raise JalmError(f"no answer for question {', '.join(map(str, missing[:5]))} ({len(missing)} in all)")
    todo = [(q, t) for q in questions for t in (1, 2) if (q["question_id"], t) not in done]
    path.parent.mkdir(parents=True, exist_ok=True)
    with (
        open(path, "a", encoding="utf-8") as handle,
        progress_bar(total=len(todo), desc="mt-bench judge", unit="turn", disable=not progress) as bar,
    ):
        for q, turn in todo:
            ref = (references or {}).get(q["question_id"])
            name, messages = judge_messages(q, answers[q["question_id"]]["turns"], turn, ref and ref["turns"])
            text = call_judge(
                judge_url,
                judge_model,
                messages,
                key,
                retries=retries,
                backoff=backoff,
                timeout=timeout,
                max_tokens=max_tokens,
            )
            rating = parse_rating(text)
            row = {
                "question_id": q["question_id"],
                "model": model,
                "judge": [judge_model, name],
                "user_prompt": messages[1]["content"],
                "judgment": text,
                "score": -1 if rating is None else rating,
                "turn": turn,
                "category": q["category"],
                "tstamp": time.time(),
            }
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            handle.flush()  # stored as it arrives: a killed run loses at most the judgment in flight
            bar.update(1)
    return len(todo)


def summarize(
    judgments: str | Path, model: str, judge_model: str, question_ids: Sequence[Any]
) -> dict[str, Any]:
    """Mean score overall, per turn and per category × turn over the parsed judgments; unparsable counted."""
    wanted = set(question_ids)
    rows = [
        r
        for r in _jsonl(Path(judgments))
        if r.get("model") == model
        and list(r.get("judge", []))[:1] == [judge_model]
        and r["question_id"] in wanted
    ]
    latest = {(r["question_id"], int(r["turn"])): r for r in rows}  # a duplicate line never counts twice
    rated = [r for r in latest.values() if r["score"] != -1]

    def mean(items: list[dict[str, Any]]) -> float | None:
        return sum(float(r["score"]) for r in items) / len(items) if items else None

    categories: dict[str, dict[str, Any]] = {}
    for cat in sorted({r["category"] for r in latest.values()}):
        in_cat = [r for r in rated if r["category"] == cat]
        categories[cat] = {
            "turn1": mean([r for r in in_cat if int(r["turn"]) == 1]),
            "turn2": mean([r for r in in_cat if int(r["turn"]) == 2]),
            "score": mean(in_cat),
        }
    return {
        "score": mean(rated),
        "turn1": mean([r for r in rated if int(r["turn"]) == 1]),
        "turn2": mean([r for r in rated if int(r["turn"]) == 2]),
        "by_category": categories,
        "judged": len(latest),
        "unparsable": len(latest) - len(rated),
        "questions": len(wanted),
        "judge_model": judge_model,
        "judgments": str(judgments),
    }


def format_mtbench(summary: dict[str, Any]) -> str:
    """Markdown table: one row per category and the average, columns turn 1, turn 2, both."""

    def cell(v: float | None) -> str:
        return "—" if v is None else f"{v:.2f}"

    lines = ["| category | turn 1 | turn 2 | mean |", "|---|---|---|---|"]
    for cat, s in summary["by_category"].items():
        lines.append(f"| {cat} | {cell(s['turn1'])} | {cell(s['turn2'])} | {cell(s['score'])} |")
    lines.append(
        f"| **all** | {cell(summary['turn1'])} | {cell(summary['turn2'])} | {cell(summary['score'])} |"
    )
    lines.append(
        f"\n{summary['judged']} judgments by {summary['judge_model']} on {summary['questions']} questions; "
        f"{summary['unparsable']} unparsable (no [[rating]]; left out of the means, kept in {summary['judgments']})"
    )
    return "\n".join(lines)


def key_from_env(name: str | None) -> str | None:
    """The judge's API key from the environment variable `name` (never from a flag, so it stays out of
    shell history and results files)."""
    return os.environ.get(name) if name else None


def evaluate_mtbench(
    *,
    judge_url: str,
    judge_model: str,
    judgments: str | Path,
    model_dir: str | Path | None = None,
    answers: str | Path | None = None,
    answers_out: str | Path | None = None,
    name: str | None = None,
    key_env: str | None = "OPENAI_API_KEY",
    questions: str | Path | None = None,
    references: str | Path | None = None,
    limit: int | None = None,
    categories: Sequence[str] | None = None,
    max_new_tokens: int = 1024,
    device: str = "cpu",
    dtype: str = "float32",
    retries: int = 5,
    backoff: float = 1.0,
    timeout: float = 600.0,
    judge_max_tokens: int = 2048,
    note: str | None = None,
    out: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Answer (or read answers), judge what is not judged yet, and return a jalm results dict with the
    `mt-bench-ja` task (also written to `out`)."""
    from jalm import __version__
    from jalm.io import write_atomic
    from jalm.resources import bundled

    if (model_dir is None) == (answers is None):
        raise JalmError(
            "give --model DIR (answers are generated) or --answers FILE (FastChat's answer format)"
        )
    if limit is not None and limit < 1:
        raise JalmError(f"--limit must be at least 1, got {limit}")
    qs = load_questions(Path(questions) if questions else bundled(DEFAULT_QUESTIONS))
    if categories:
        unknown = sorted(set(categories) - {q["category"] for q in qs})
        if unknown:
            raise JalmError(
                f"no MT-Bench category {', '.join(unknown)}; the questions have {', '.join(sorted({q['category'] for q in qs}))}"
            )
        qs = [q for q in qs if q["category"] in categories]
    qs = qs[:limit]
    refs = load_answers(Path(references) if references else bundled(DEFAULT_REFERENCES))
    judgments = Path(judgments)
    if answers is not None:
        got = load_answers(answers)
        model = name or next(
            (a.get("model_id") for a in got.values() if a.get("model_id")), Path(answers).stem
        )
        source = str(answers)
    else:
        model = name or Path(model_dir).resolve().name
        answers_out = Path(answers_out) if answers_out else judgments.with_name(f"answers-{model}.jsonl")
        got = generate_answers(
            model_dir,
            qs,
            answers_out,
            model,
            max_new_tokens=max_new_tokens,
            device=device,
            dtype=dtype,
            progress=progress,
        )
        source = str(answers_out)
    started = time.perf_counter()
    judged_now = judge_answers(
        qs,
        got,
        judgments,
        model=model,
        judge_url=judge_url,
        judge_model=judge_model,
        key=key_from_env(key_env),
        references=refs,
        retries=retries,
        backoff=backoff,
        timeout=timeout,
        max_tokens=judge_max_tokens,
        progress=progress,
    )
    summary = summarize(judgments, model, judge_model, [q["question_id"] for q in qs])
    summary.update(
        answers=source,
        judged_now=judged_now,
        seconds=round(time.perf_counter() - started, 2),
        protocol="FastChat single-answer grading (single-v1, single-math-v1 with GPT-4 references, multi-turn)",
    )
    if note:
        summary["note"] = note
    results = {
        "model": str(model_dir or answers),
        "model_name": model,
        "params": None,
        "tasks": {"mt-bench-ja": summary},
        "settings": {
            "limit": limit,
            "categories": list(categories) if categories else None,
            "judge_url": judge_url,
            "max_new_tokens": max_new_tokens,
        },
        "jalm_version": __version__,
    }
    if out is not None:
        write_atomic(out, json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    return results
