"""JCommonsenseQA and JNLI as Stability AI's lm-evaluation-harness (jp-stable) ran them for the published
rows, and JSTS as llm-jp-eval asks it.

JCommonsenseQA `jcommonsenseqa-1.1-0.2` and JNLI `jnli-1.1-0.2`, 3 shots: the task names, prompt versions
and shot counts of jp-stable's `models/line-corporation/*/harness.sh` (commit 413593a, 2023-09-29), whose
result.json holds LINE's published 30.8 / 35.9 (1.7B) and 24.0 / 30.0 (3.6B) accuracies.
- documents in file order; `Random(42)` shuffles them, then draws each question's shots with
  `rnd.sample(pool, k)` in that order (as jsquad.py); `--limit N` is a prefix;
- context = DESCRIPTION + the shots, each `doc_to_text(shot) + doc_to_target(shot)`, joined by
  FEWSHOT_SEP = "\\n\\n" and followed by it, + `doc_to_text(question)`;
- each choice is scored by the summed log-likelihood of its tokens after the context (context and choice
  encoded separately, no special tokens); acc = argmax, acc_norm = argmax of log-likelihood / characters.
- JCommonsenseQA 0.2 (the Fintan prompt) numbers the choices and its shots end in the gold *number*
  ("回答:2"), but the choices are scored as their *texts* (jp-stable's `construct_requests` is the
  parent's); that mismatch is the published protocol and is kept (jp-stable warns that 0.2 scores low).
  0.1 is the older `[問題]/[選択肢]/[答え]` prompt.
- JNLI 1.1 (the published rows): English labels entailment / contradiction / neutral, shots drawn at
  random. 1.3 (jp-stable since 2023-10-19): Japanese labels 含意 / 矛盾 / 中立, shots stratified by label.
  jp-stable draws JNLI shots from the train set, which is not bundled: the default pool is the v1.3 test
  set; `pool` takes the real train file.

JSTS (not in jp-stable): llm-jp-eval's instruction (the form used by the Nejumi / llm-jp leaderboards),
4 shots drawn as above from the v1.3 test set (its train split is not bundled), each
`[文1]: s1\\n[文2]: s2\\n[類似度]: ` + the gold score, greedy decoding cut at "\\n", the first number in the
output is the prediction (unparsable outputs are counted and scored as 0.0); metric Pearson's r, with
Spearman's ρ beside it.
"""

from __future__ import annotations

import json
import math
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jalm.errors import JalmError
from jalm.io import open_compressed

SEED = 42
FEWSHOT_SEP = "\n\n"
DEFAULT_DATA = {
    "jcommonsenseqa": "eval/jglue/jcommonsenseqa-valid-v1.3.json.zst",
    "jnli": "eval/jglue/jnli-valid-v1.3.json.zst",
    "jsts": "eval/jglue/jsts-valid-v1.3.json.zst",
}
DEFAULT_POOL = {
    "jcommonsenseqa": "eval/jglue/jcommonsenseqa-train-v1.3.json.zst",
    "jnli": "eval/jglue/jnli-test-v1.3.json.zst",
    "jsts": "eval/jglue/jsts-test-v1.3.json.zst",
}
JNLI_LABELS = ("entailment", "contradiction", "neutral")  # shunk031/JGLUE's ClassLabel order


@dataclass(frozen=True)
class Doc:
    id: str
    fields: tuple[tuple[str, str], ...]  # question / premise / sentence1 ... as (name, text)
    choices: tuple[str, ...]
    gold: int | float  # index into choices; JSTS: the similarity score

    def get(self, name: str) -> str:
        return dict(self.fields)[name]


def _records(path: Path) -> list[dict[str, Any]]:
    rows = []
    try:
        with open_compressed(path) as handle:
            for line_no, line in enumerate(handle, start=1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as error:
                        raise JalmError(f"{path}:{line_no}: not valid JSON ({error.msg})") from None
    except (OSError, EOFError, UnicodeDecodeError) as error:
        raise JalmError(f"{path}: cannot be read ({error})") from None
    if not rows:
        raise JalmError(f"{path}: no questions")
    return rows


def load_jglue(task: str, path: str | Path) -> list[Doc]:
    """JGLUE v1.x JSON-lines file of `task` (jcommonsenseqa, jnli, jsts), plain, .gz or .zst, in file order."""
    path = Path(path)
    docs = []
    for line_no, row in enumerate(_records(path), start=1):
        try:
            if task == "jcommonsenseqa":
                choices = tuple(row[f"choice{i}"] for i in range(5))
                docs.append(
                    Doc(str(row["q_id"]), (("question", row["question"]),), choices, int(row["label"]))
                )
            elif task == "jnli":
                if row["label"] not in JNLI_LABELS:
                    raise JalmError(f"{path}:{line_no}: unknown JNLI label {row['label']!r}")
                fields = (("premise", row["sentence1"]), ("hypothesis", row["sentence2"]))
                docs.append(
                    Doc(str(row["sentence_pair_id"]), fields, JNLI_LABELS, JNLI_LABELS.index(row["label"]))
                )
            else:
                fields = (("sentence1", row["sentence1"]), ("sentence2", row["sentence2"]))
                docs.append(Doc(str(row["sentence_pair_id"]), fields, (), float(row["label"])))
        except (KeyError, TypeError, ValueError) as error:
            raise JalmError(f"{path}:{line_no}: not a JGLUE {task} record ({error!r})") from None
    return docs


@dataclass(frozen=True)
class Protocol:
    """One prompt version: description, doc → text, doc → target, the scored choices, shot sampling."""

    task: str
    description: str
    text: Callable[[Doc], str]
    target: Callable[[Doc], str]
    choices: Callable[[Doc], tuple[str, ...]]
    stratified: bool = False


def _jcqa_text_01(d: Doc) -> str:
    return f"[問題]:{d.get('question')}\n[選択肢]:[{', '.join(d.choices)}]\n[答え]:"


def _jcqa_text_02(d: Doc) -> str:
    numbered = ",".join(f"{i}.{c}" for i, c in enumerate(d.choices))
    return f"質問:{d.get('question')}\n選択肢:{numbered}\n回答:"


def _jnli_text(d: Doc) -> str:
    return f"前提:{d.get('premise')}\n仮説:{d.get('hypothesis')}\n関係:"


JNLI_JA = dict(zip(JNLI_LABELS, ("含意", "矛盾", "中立")))


def _jnli_description(labels: Sequence[str]) -> str:
    e, c, n = labels
    return (
        f"前提と仮説の関係を{e}、{c}、{n}の中から回答してください。\n\n制約:\n"
        f"- 前提から仮説が、論理的知識や常識的知識を用いて導出可能である場合は{e}と出力\n"
        f"- 前提と仮説が両立しえない場合は{c}と出力\n"
        f"- そのいずれでもない場合は{n}と出力\n\n"
    )


JSTS_INSTRUCTION = (
    "日本語の文ペアの意味がどのくらい近いかを判定し、類似度を0.0〜5.0までの間の値で付与してください。"
    "0.0に近いほど文ペアの意味が異なり、5.0に近いほど文ペアの意味が似ていることを表しています。"
    "整数値のみを返し、それ以外には何も含めないことを厳守してください。"
)


def _jsts_text(d: Doc) -> str:
    return f"[文1]: {d.get('sentence1')}\n[文2]: {d.get('sentence2')}\n[類似度]: "


PROTOCOLS: dict[tuple[str, str], Protocol] = {
    ("jcommonsenseqa", "0.1"): Protocol(
        "jcommonsenseqa-1.1-0.1",
        "[問題]に対する[答え]を[選択肢]の中から選んでください。\n\n",
        _jcqa_text_01,
        lambda d: d.choices[int(d.gold)],
        lambda d: d.choices,
    ),
    ("jcommonsenseqa", "0.2"): Protocol(
        "jcommonsenseqa-1.1-0.2",
        "質問と回答の選択肢を入力として受け取り、選択肢から回答を選択してください。"
        "なお、回答は選択肢の番号(例:0)でするものとします。 \n\n",
        _jcqa_text_02,
        lambda d: str(d.gold),
        lambda d: d.choices,
    ),
    ("jnli", "1.1"): Protocol(
        "jnli-1.1-0.2",
        _jnli_description(JNLI_LABELS),
        _jnli_text,
        lambda d: d.choices[int(d.gold)],
        lambda d: d.choices,
    ),
    ("jnli", "1.3"): Protocol(
        "jnli-1.3-0.2",
        _jnli_description([JNLI_JA[x] for x in JNLI_LABELS]),
        _jnli_text,
        lambda d: JNLI_JA[d.choices[int(d.gold)]],
        lambda d: tuple(JNLI_JA[x] for x in d.choices),
        stratified=True,
    ),
    ("jsts", "llm-jp-eval"): Protocol(
        "jsts-llm-jp-eval",
        JSTS_INSTRUCTION + FEWSHOT_SEP,
        _jsts_text,
        lambda d: str(float(d.gold)),
        lambda d: (),
    ),
}


def protocol(task: str, version: str) -> Protocol:
    if (task, version) not in PROTOCOLS:
        known = ", ".join(v for t, v in PROTOCOLS if t == task)
        raise JalmError(f"unknown {task} prompt version {version!r}; choose one of {known}")
    return PROTOCOLS[(task, version)]


def _stratified(pool: Sequence[Doc], k: int, rnd: random.Random, spec: Protocol, groups: dict) -> list[Doc]:
    """jp-stable's `_stratified_fewshot_examples`: per target int(ratio * k), the remainder to the smallest."""
    if not groups:
        for doc in pool:
            groups.setdefault(spec.target(doc), []).append(doc)
    counts = {t: int(len(docs) / len(pool) * k) for t, docs in groups.items()}
    for _ in range(k - sum(counts.values())):
        counts[min(counts, key=counts.get)] += 1
    shots = [doc for t, n in counts.items() for doc in rnd.sample(groups[t], n)]
    rnd.shuffle(shots)
    return shots


def fewshot_plan(
    docs: Sequence[Doc], pool: Sequence[Doc], shots: int, spec: Protocol, limit: int | None = None
) -> list[tuple[Doc, list[Doc]]]:
    """jp-stable's order and shots: shuffle with Random(42), then draw each question's shots in that order."""
    if shots < 0:
        raise JalmError(f"number of shots must be 0 or more, got {shots}")
    if shots > len(pool):
        raise JalmError(f"{shots} shots asked but the shot pool holds only {len(pool)} questions")
    rnd = random.Random(SEED)
    order = list(docs)
    rnd.shuffle(order)
    if limit is not None:
        order = order[:limit]
    groups: dict[str, list[Doc]] = {}  # the pool by target, filled once (stratified sampling)
    plan = []
    for doc in order:
        if not shots:
            plan.append((doc, []))
        elif spec.stratified:
            plan.append((doc, _stratified(pool, shots, rnd, spec, groups)))
        else:
            plan.append((doc, rnd.sample(list(pool), shots)))
    return plan


def build_context(doc: Doc, shots: Sequence[Doc], spec: Protocol) -> str:
    """DESCRIPTION + shots (text + target, each followed by FEWSHOT_SEP) + the question's text."""
    labeled = "".join(spec.text(s) + spec.target(s) + FEWSHOT_SEP for s in shots)
    return spec.description + labeled + spec.text(doc)


def _paths(task: str, data: str | Path | None, pool: str | Path | None) -> tuple[Path, Path]:
    from jalm.resources import bundled

    return (
        Path(data) if data else bundled(DEFAULT_DATA[task]),
        Path(pool) if pool else bundled(DEFAULT_POOL[task]),
    )


def evaluate_choice_task(
    lm: Any,
    task: str,
    data: str | Path | None = None,
    pool: str | Path | None = None,
    shots: int = 3,
    version: str = "0.2",
    limit: int | None = None,
    batch_size: int = 8,
    shared_context: bool = True,
    progress: bool = True,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """JCommonsenseQA or JNLI: (metrics, per-question records in evaluation order)."""
    from jalm.eval.choice import make_request, score_alone, score_shared
    from jalm.progress import progress_bar

    spec = protocol(task, version)
    data_path, pool_path = _paths(task, data, pool)
    started = time.perf_counter()
    plan = fewshot_plan(
        load_jglue(task, data_path), load_jglue(task, pool_path) if shots else [], shots, spec, limit
    )
    contexts = [build_context(doc, doc_shots, spec) for doc, doc_shots in plan]
    requests = [make_request(lm, ctx, spec.choices(doc)) for (doc, _), ctx in zip(plan, contexts)]
    with progress_bar(
        total=len(requests), desc=task, unit="q", disable=not progress, dynamic_ncols=True
    ) as bar:
        if shared_context:
            scores, too_long = score_shared(lm, requests, batch_size, progress=bar.update)
        else:
            scores, too_long = (
                score_alone(lm, requests, batch_size),
                sum(not r.fits(lm.max_length) for r in requests),
            )
            bar.update(len(requests))
    records = []
    for (doc, _), ctx, req, lls in zip(plan, contexts, requests, scores):
        pred = max(range(len(lls)), key=lls.__getitem__)
        choices = spec.choices(doc)
        norm = [ll / len(c) for ll, c in zip(lls, choices)]
        pred_norm = max(range(len(norm)), key=norm.__getitem__)
        records.append(
            {
                "task": task,
                "id": doc.id,
                "prompt": ctx,
                "choices": list(choices),
                "loglikelihoods": lls,
                "prediction": pred,
                "gold": doc.gold,
                "acc": float(pred == doc.gold),
                "acc_norm": float(pred_norm == doc.gold),
                "truncated": not req.fits(lm.max_length),
            }
        )
    n = len(records)
    metrics = {
        "acc": 100.0 * sum(r["acc"] for r in records) / n,
        "acc_norm": 100.0 * sum(r["acc_norm"] for r in records) / n,
        "n": n,
        "shots": shots,
        "prompt_version": version,
        "task": spec.task,
        "data": str(data_path),
        "shot_pool": str(pool_path) if shots else None,
        "truncated_prompts": too_long,
        "seconds": round(time.perf_counter() - started, 2),
    }
    return metrics, records


NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def parse_score(text: str) -> float | None:
    """The first number in a JSTS output ('3.8', '4', ' 2.5 です'), or None."""
    match = NUMBER.search(text.translate(str.maketrans("０１２３４５６７８９．", "0123456789.")))
    return float(match.group()) if match else None


def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Pearson's r, or None when either side is constant (r is undefined)."""
    n = len(x)
    if n < 2:
        return None
    mx, my = sum(x) / n, sum(y) / n
    sx = math.sqrt(sum((a - mx) ** 2 for a in x))
    sy = math.sqrt(sum((b - my) ** 2 for b in y))
    if sx == 0 or sy == 0:
        return None
    return sum((a - mx) * (b - my) for a, b in zip(x, y)) / (sx * sy)


def _ranks(values: Sequence[float]) -> list[float]:
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1  # ties share their average rank
        i = j + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    return pearson(_ranks(x), _ranks(y))


def evaluate_jsts(
    lm: Any,
    data: str | Path | None = None,
    pool: str | Path | None = None,
    shots: int = 4,
    limit: int | None = None,
    batch_size: int = 8,
    max_new_tokens: int = 8,
    progress: bool = True,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """JSTS: (metrics with Pearson and Spearman, per-pair records in evaluation order)."""
    from jalm.eval.generation import fit_prompt, greedy_until

    spec = protocol("jsts", "llm-jp-eval")
    data_path, pool_path = _paths("jsts", data, pool)
    started = time.perf_counter()
    plan = fewshot_plan(
        load_jglue("jsts", data_path), load_jglue("jsts", pool_path) if shots else [], shots, spec, limit
    )
    texts = [build_context(doc, doc_shots, spec) for doc, doc_shots in plan]
    prompts = [fit_prompt(lm, lm.encode(t), max_new_tokens) for t in texts]
    outputs = greedy_until(lm, prompts, "\n", batch_size=batch_size, progress=progress, desc="jsts")
    records = []
    for (doc, _), text, prompt, output in zip(plan, texts, prompts, outputs):
        value = parse_score(output)
        records.append(
            {
                "task": "jsts",
                "id": doc.id,
                "prompt": text,
                "output": output,
                "prediction": value if value is not None else 0.0,
                "parsed": value is not None,
                "gold": doc.gold,
                "truncated": prompt.truncated,
            }
        )
    preds = [r["prediction"] for r in records]
    golds = [float(r["gold"]) for r in records]
    r, rho = pearson(preds, golds), spearman(preds, golds)
    metrics = {
        "pearson": None if r is None else 100.0 * r,
        "spearman": None if rho is None else 100.0 * rho,
        "n": len(records),
        "unparsable": sum(not rec["parsed"] for rec in records),
        "shots": shots,
        "task": spec.task,
        "data": str(data_path),
        "shot_pool": str(pool_path) if shots else None,
        "max_new_tokens": max_new_tokens,
        "truncated_prompts": sum(rec["truncated"] for rec in records),
        "seconds": round(time.perf_counter() - started, 2),
    }
    return metrics, records
