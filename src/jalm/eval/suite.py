"""`evaluate()`: load a model once, run the requested tasks, write results.json and the predictions.

    from jalm.eval import evaluate, ModelOptions, PplConfig, JsquadConfig
    evaluate("runs/demo/model", ["ppl", "jsquad", "aio"], out="results.json")
    evaluate(model_dir, [PplConfig(data=dev_file, stride=384)], limit=100)
    evaluate(model_dir, [JsquadConfig(shots=0), "aio-chat"], model=ModelOptions(device="cuda", dtype="bfloat16"))

Each task's options live in its config object (jalm.eval.tasks); what is shared by all tasks — the model
loading (`ModelOptions`), `limit`, `batch_size`, `progress`, the output files and the name — are
arguments of `evaluate`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from jalm.errors import JalmError
from jalm.eval.lm import ModelOptions
from jalm.eval.tasks import DEFAULT_PPL_DATA, TASKS, TaskConfig, parse_tasks, resolve_tasks
from jalm.io import write_atomic

__all__ = ["DEFAULT_PPL_DATA", "TASKS", "evaluate", "parse_tasks"]


def _check_inputs(configs: Sequence[TaskConfig]) -> None:
    """Fail on a missing file before spending time loading the model."""
    for config in configs:
        for path in config.inputs():
            if not Path(path).exists():
                raise JalmError(f"{path}: no such file")


def evaluate(
    model_dir: str | Path,
    tasks: str | Sequence[str | TaskConfig],
    out: str | Path | None = None,
    *,
    model: ModelOptions | None = None,
    limit: int | None = None,
    batch_size: int = 8,
    save_predictions: str | Path | None = None,
    name: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate the causal LM in `model_dir` on `tasks` and return the results dict (also written to `out`).

    `tasks`: "ppl,jsquad", or a list of task names (default options) and task configs (`PplConfig`,
    `JsquadConfig`, `AioConfig`, `JsquadChatConfig`, `AioChatConfig`); `limit` evaluates the first N
    documents / questions of each task in evaluation order; `save_predictions` writes one JSONL line per
    question of the generation tasks.
    """
    from jalm import __version__
    from jalm.eval.lm import load_lm
    from jalm.jsonl import write_records

    configs, model = resolve_tasks(tasks), model or ModelOptions()
    if limit is not None and limit < 1:
        raise JalmError(f"--limit must be at least 1, got {limit}")
    if batch_size < 1:
        raise JalmError(f"--batch-size must be at least 1, got {batch_size}")
    _check_inputs(configs)

    lm = load_lm(model_dir, **asdict(model))
    results_tasks: dict[str, Any] = {}
    predictions: list[dict[str, Any]] = []
    for config in configs:
        metrics, records = config.run(lm, limit=limit, batch_size=batch_size, progress=progress)
        results_tasks[config.name] = metrics
        predictions.extend(records)

    model_path = Path(model_dir)
    results = {
        "model": str(model_path),
        "model_name": name or model_path.resolve().name,
        "params": lm.params,
        "tasks": results_tasks,
        "settings": {
            **lm.settings,
            "batch_size": batch_size,
            "limit": limit,
            "tasks": [c.name for c in configs],
        },
        "jalm_version": __version__,
    }
    if out is not None:
        write_atomic(out, json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    if save_predictions is not None:
        write_records(save_predictions, predictions)
    return results
