"""results.json files → the seed's Markdown table (| model | params | C4 PPL | AI王 | JSQuAD |).

Columns as in the seed: PPL with two decimals, AI王 exact match with one, JSQuAD exact match with two;
"—" where a task was not run. When any of the results has the instruction-form tasks (jsquad-chat,
aio-chat), each gets its own column beside its few-shot / completion counterpart — `AI王 (chat)` after
`AI王`, `JSQuAD (chat)` after `JSQuAD` — so one table of a base model and its SFT model shows both.
Below the table, one note per model says what each number was measured on (the PPL data file and bits
per character, the JSQuAD prompt, shots and F1, the chat template, how many questions), because a
perplexity on anything but mC4-ja validation is not the seed's "C4 PPL".
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from jalm.errors import JalmError
from jalm.formatting import DASH, format_params

# (header, task, metric, digits, shown even when no results have the task)
COLUMNS = (
    ("C4 PPL", "ppl", "ppl", 2, True),
    ("AI王", "aio", "exact_match", 1, True),
    ("AI王 (chat)", "aio-chat", "exact_match", 1, False),
    ("JSQuAD", "jsquad", "exact_match", 2, True),
    ("JSQuAD (chat)", "jsquad-chat", "exact_match", 2, False),
    ("JCommonsenseQA", "jcommonsenseqa", "acc", 1, False),
    ("JNLI", "jnli", "acc", 1, False),
    ("JSTS (Pearson)", "jsts", "pearson", 1, False),
    ("MT-Bench-ja", "mt-bench-ja", "score", 2, False),
)


def read_results(path: str | Path) -> dict[str, Any]:
    """One results.json written by `jalm eval`, checked enough to tabulate."""
    path = Path(path)
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise JalmError(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise JalmError(f"{path}: not a results JSON file ({error})") from None
    if not isinstance(results, dict) or not isinstance(results.get("tasks"), dict):
        raise JalmError(f"{path}: not a jalm results file (no 'tasks' object)")
    return results


def _cell(task: dict[str, Any] | None, key: str, digits: int) -> str:
    if not task or task.get(key) is None:
        return DASH
    return f"{task[key]:.{digits}f}"


def _note(results: dict[str, Any]) -> str:
    tasks = results["tasks"]
    if results.get("copied_from"):
        return f"{results.get('model_name')}: copied, not measured — {results['copied_from']}"
    parts = []
    if "ppl" in tasks:
        p = tasks["ppl"]
        files = ", ".join(Path(f).name for f in str(p.get("data", "?")).split(", "))
        parts.append(
            f"PPL on {files} ({p.get('bits_per_char', float('nan')):.3f} bits/char, "
            f"{p.get('tokens', 0):,} tokens, {p.get('documents', 0):,} documents)"
        )
    if "aio" in tasks:
        parts.append(f"AI王 exact match, n={tasks['aio'].get('n')}")
    if "aio-chat" in tasks:
        a = tasks["aio-chat"]
        parts.append(
            f"AI王 (chat) 0-shot instruction exact match, {a.get('chat_template')} template, n={a.get('n')}"
        )
    if "jsquad" in tasks:
        j = tasks["jsquad"]
        parts.append(
            f"JSQuAD {j.get('task', 'jsquad')} {j.get('shots')}-shot exact match "
            f"(F1 {j.get('f1', float('nan')):.2f}), n={j.get('n')}"
        )
    if "jsquad-chat" in tasks:
        j = tasks["jsquad-chat"]
        parts.append(
            f"JSQuAD (chat) 0-shot instruction exact match (F1 {j.get('f1', float('nan')):.2f}), "
            f"{j.get('chat_template')} template, n={j.get('n')}"
        )
    for key, label in (("jcommonsenseqa", "JCommonsenseQA"), ("jnli", "JNLI")):
        if key in tasks:
            t = tasks[key]
            pool = Path(str(t.get("shot_pool"))).name if t.get("shot_pool") else "none"
            parts.append(
                f"{label} {t.get('task')} {t.get('shots')}-shot acc (acc_norm {t.get('acc_norm', float('nan')):.1f}), "
                f"shots from {pool}, n={t.get('n')}"
            )
    if "jsts" in tasks:
        t = tasks["jsts"]
        rho = t.get("spearman")
        parts.append(
            f"JSTS {t.get('task')} {t.get('shots')}-shot Pearson ×100 (Spearman "
            f"{DASH if rho is None else f'{rho:.1f}'}), {t.get('unparsable')} unparsable, n={t.get('n')}"
            + (" (r undefined: constant predictions)" if t.get("pearson") is None else "")
        )
    if "mt-bench-ja" in tasks:
        t = tasks["mt-bench-ja"]
        parts.append(
            f"MT-Bench-ja mean 1–10 rating by {t.get('judge_model')} (FastChat single-answer grading; turn 1 "
            f"{_num(t.get('turn1'))}, turn 2 {_num(t.get('turn2'))}), {t.get('judged')} judgments on "
            f"{t.get('questions')} questions, {t.get('unparsable')} unparsable"
            + (f"; {t['note']}" if t.get("note") else "")
        )
    return f"{results.get('model_name', '?')}: " + "; ".join(parts) if parts else ""


def _num(value: Any) -> str:
    return DASH if value is None else f"{value:.2f}"


def format_table(results: Iterable[dict[str, Any]], notes: bool = True, published: bool = False) -> str:
    """The seed's table for one or several results dicts (one row each, in the order given); `published`
    appends the copied rows of `jalm.eval.published`, marked as copied, with their sources in the notes."""
    results = list(results)
    if published:
        from jalm.eval.published import published_results

        results += published_results()
    present = {task for r in results for task in r.get("tasks", {})}
    columns = [c for c in COLUMNS if c[4] or c[1] in present]
    rows = [
        "| model | params | " + " | ".join(c[0] for c in columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    for r in results:
        tasks = r.get("tasks", {})
        cells = [_cell(tasks.get(task), key, digits) for _, task, key, digits, _ in columns]
        rows.append(
            f"| {r.get('model_name', r.get('model', '?'))} | {format_params(r.get('params'))} | "
            + " | ".join(cells)
            + " |"
        )
    text = "\n".join(rows)
    if notes:
        lines = [n for n in (_note(r) for r in results) if n]
        if lines:
            text += "\n\n" + "\n".join(f"- {line}" for line in lines)
    return text
