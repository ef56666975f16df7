"""The card as a Hugging Face README: YAML metadata (language, license, datasets, metrics, model-index),
then the card in Markdown."""

from __future__ import annotations

import json
import os
from pathlib import Path

from jalm.io import write_atomic
from jalm.serve.card.render import to_markdown
from jalm.serve.card.sections import build_card, sources
from jalm.serve.facts import ModelFacts

# Hub ids of the corpora jalm bundles for its demo (data/LICENSES.md), recognised by file name.
KNOWN_SOURCES = {"wiki_jaquad": "SkelterLabsInc/JaQuAD"}


def front_matter(facts: ModelFacts, license: str, datasets: list[str]) -> str:
    """Hub metadata (YAML). JSON is valid YAML, so each value is written with json.dumps: no quoting traps."""
    tasks = (facts.results or {}).get("tasks", {})
    metrics = []
    if "ppl" in tasks:
        metrics.append("perplexity")
    if "jsquad" in tasks or "aio" in tasks:
        metrics.append("exact_match")
    if "jsquad" in tasks:
        metrics.append("f1")
    if "jcommonsenseqa" in tasks or "jnli" in tasks:
        metrics.append("accuracy")
    if "jsts" in tasks:
        metrics.append("pearsonr")
    tags = ["jalm", "japanese", str(facts.config.get("model_type", "causal-lm"))]
    lines = [
        "---",
        "language:",
        "- ja",
        f"license: {json.dumps(license)}",
        "library_name: transformers",
        "pipeline_tag: text-generation",
        "tags:",
        *[f"- {json.dumps(t)}" for t in tags],
        "datasets:" + ("" if datasets else " []"),
        *[f"- {json.dumps(d)}" for d in datasets],
        "metrics:" + ("" if metrics else " []"),
        *[f"- {json.dumps(m)}" for m in metrics],
    ]
    lines += _model_index(facts, tasks)
    lines.append("---")
    return "\n".join(lines) + "\n"


def _model_index(facts: ModelFacts, tasks: dict) -> list[str]:
    entries = []
    specs = [
        ("ppl", "ppl", "perplexity", "Perplexity", "held-out Japanese text"),
        ("ppl", "bits_per_char", "bits_per_char", "Bits per character", "held-out Japanese text"),
        ("jsquad", "exact_match", "exact_match", "Exact match", "JSQuAD"),
        ("jsquad", "f1", "f1", "F1", "JSQuAD"),
        ("aio", "exact_match", "exact_match", "Exact match", "AI王 (aio_02_dev)"),
        ("jcommonsenseqa", "acc", "accuracy", "Accuracy", "JCommonsenseQA (JGLUE v1.3 valid)"),
        ("jnli", "acc", "accuracy", "Accuracy", "JNLI (JGLUE v1.3 valid)"),
        ("jsts", "pearson", "pearsonr", "Pearson r x100", "JSTS (JGLUE v1.3 valid)"),
    ]
    for task, key, mtype, mname, dataset in specs:
        value = tasks.get(task, {}).get(key) if isinstance(tasks.get(task), dict) else None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            entries.append((task, dataset, mtype, mname, value))
    if not entries:
        return []
    lines = ["model-index:", f"- name: {json.dumps(facts.name)}", "  results:"]
    for task, dataset, mtype, mname, value in entries:
        lines += [
            "  - task:",
            "      type: text-generation",
            "    dataset:",
            f"      name: {json.dumps(dataset, ensure_ascii=False)}",
            f"      type: {json.dumps(task)}",
            "    metrics:",
            f"    - type: {json.dumps(mtype)}",
            f"      name: {json.dumps(mname)}",
            f"      value: {round(float(value), 4)}",
        ]
    return lines


def guess_datasets(facts: ModelFacts) -> list[str]:
    """Hub dataset ids for training sources jalm knows by file name (the bundled demo corpora)."""
    found: list[str] = []
    for name, _ in sources(facts.clean_stats or {}):
        for key, hub_id in KNOWN_SOURCES.items():
            if key in name and hub_id not in found:
                found.append(hub_id)
    return found


def write_readme(
    facts: ModelFacts,
    out: str | Path,
    model_ref: str | None = None,
    samples: list[str] | None = None,
    license: str = "apache-2.0",
    datasets: list[str] | None = None,
) -> Path:
    """The Hub README.md: YAML metadata, then the card. The loss plot is linked relative to the README."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    loss_src = None
    if facts.loss_png is not None:
        loss_src = Path(os.path.relpath(facts.loss_png.resolve(), out.parent.resolve())).as_posix()
    sections = build_card(facts, model_ref, loss_src, samples)
    text = (
        front_matter(facts, license, datasets if datasets else guess_datasets(facts))
        + "\n"
        + to_markdown(sections)
    )
    write_atomic(out, text)
    return out
