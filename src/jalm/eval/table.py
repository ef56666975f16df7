"""results.json files → the seed's Markdown table (| model | params | C4 PPL | AI王 | JSQuAD |).

Columns as in the seed: PPL with two decimals, AI王 exact match with one, JSQuAD exact match with two;
"—" where a task was not run. Below the table, one note per model says what each number was measured
on (the PPL data file and bits per character, the JSQuAD prompt, shots and F1, how many questions),
because a perplexity on anything but mC4-ja validation is not the seed's "C4 PPL".
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from jalm.errors import JalmError

HEADER = "| model | params | C4 PPL | AI王 | JSQuAD |\n|---|---|---|---|---|"
DASH = "—"


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


def format_params(params: int | None) -> str:
    """1,652,230,656 → '1.7B' as the seed writes it; small models in millions."""
    if not params:
        return DASH
    if params >= 1e9:
        return f"{params / 1e9:.1f}B"
    if params >= 1e6:
        return f"{params / 1e6:.1f}M"
    return f"{params / 1e3:.0f}K"


def _cell(task: dict[str, Any] | None, key: str, digits: int) -> str:
    if not task or task.get(key) is None:
        return DASH
    return f"{task[key]:.{digits}f}"


def _note(results: dict[str, Any]) -> str:
    tasks = results["tasks"]
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
    if "jsquad" in tasks:
        j = tasks["jsquad"]
        parts.append(
            f"JSQuAD {j.get('task', 'jsquad')} {j.get('shots')}-shot exact match "
            f"(F1 {j.get('f1', float('nan')):.2f}), n={j.get('n')}"
        )
    return f"{results.get('model_name', '?')}: " + "; ".join(parts) if parts else ""


def format_table(results: Iterable[dict[str, Any]], notes: bool = True) -> str:
    """The seed's table for one or several results dicts (one row each, in the order given)."""
    results = list(results)
    rows = [HEADER]
    for r in results:
        tasks = r.get("tasks", {})
        rows.append(
            f"| {r.get('model_name', r.get('model', '?'))} | {format_params(r.get('params'))} | "
            f"{_cell(tasks.get('ppl'), 'ppl', 2)} | {_cell(tasks.get('aio'), 'exact_match', 1)} | "
            f"{_cell(tasks.get('jsquad'), 'exact_match', 2)} |"
        )
    text = "\n".join(rows)
    if notes:
        lines = [n for n in (_note(r) for r in results) if n]
        if lines:
            text += "\n\n" + "\n".join(f"- {line}" for line in lines)
    return text
