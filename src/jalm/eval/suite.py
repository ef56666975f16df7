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
import warnings
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from jalm.errors import JalmError
from jalm.eval.lm import ModelOptions
from jalm.eval.tasks import DEFAULT_PPL_DATA, TASKS, TaskConfig, parse_tasks, resolve_tasks

__all__ = ["DEFAULT_PPL_DATA", "TASKS", "evaluate", "parse_tasks"]

# Transitional: the keyword arguments `evaluate` took before the task configs, and where each one went.
# Callers still passing them (demo.py, experiment/filtering.py) keep working; new code uses the configs.
LEGACY_KEYWORDS = {
    "data": ("ppl", "data"),
    "ppl_window": ("ppl", "window"),
    "ppl_stride": ("ppl", "stride"),
    "jsquad_data": ("jsquad", "data"),
    "jsquad_train": ("jsquad", "pool"),
    "jsquad_shots": ("jsquad", "shots"),
    "jsquad_prompt_version": ("jsquad", "prompt_version"),
    "jsquad_max_new_tokens": ("jsquad", "max_new_tokens"),
    "aio_data": ("aio", "data"),
    **{key: ("model", key) for key in ("device", "dtype", "use_fast", "trust_remote_code", "max_length")},
}


def _apply_legacy(
    configs: list[TaskConfig], model: ModelOptions, legacy: dict[str, Any]
) -> tuple[list[TaskConfig], ModelOptions]:
    unknown = sorted(set(legacy) - set(LEGACY_KEYWORDS))
    if unknown:
        raise TypeError(f"evaluate() got an unexpected keyword argument {unknown[0]!r}")
    if legacy:
        warnings.warn(
            f"evaluate({', '.join(legacy)}=...) is deprecated: pass task configs (jalm.eval.tasks) "
            "and model=ModelOptions(...)",
            DeprecationWarning,
            stacklevel=3,
        )
    for key, value in legacy.items():
        target, field = LEGACY_KEYWORDS[key]
        if target == "model":
            model = replace(model, **{field: value})
        else:
            configs = [replace(c, **{field: value}) if c.name == target else c for c in configs]
    return configs, model


def _check_inputs(configs: Sequence[TaskConfig]) -> None:
    """Fail on a missing file before spending time loading the model."""
    for config in configs:
        for path in config.inputs():
            if not Path(path).exists():
                raise JalmError(f"{path}: no such file")


def _write_json(path: str | Path, results: dict[str, Any]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)


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
    **legacy: Any,
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

    configs, model = _apply_legacy(resolve_tasks(tasks), model or ModelOptions(), legacy)
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
        _write_json(out, results)
    if save_predictions is not None:
        write_records(save_predictions, predictions)
    return results
