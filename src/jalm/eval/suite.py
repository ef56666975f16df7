"""`evaluate()`: load a model once, run the requested tasks, write results.json and the predictions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jalm.errors import JalmError

TASKS = ("ppl", "jsquad", "aio")
DEFAULT_PPL_DATA = "dev/wiki_jaquad.jsonl.zst"


def parse_tasks(tasks: str | list[str] | tuple[str, ...]) -> list[str]:
    """'ppl,jsquad' or ['ppl', 'jsquad'] → a checked, de-duplicated list in the order given."""
    names = tasks.split(",") if isinstance(tasks, str) else list(tasks)
    names = [n.strip() for n in names if n.strip()]
    unknown = [n for n in names if n not in TASKS]
    if unknown:
        raise JalmError(f"unknown task {', '.join(unknown)}; choose from {', '.join(TASKS)}")
    if not names:
        raise JalmError(f"no task given; choose from {', '.join(TASKS)}")
    return list(dict.fromkeys(names))


def _check_inputs(paths: list[Path | None]) -> None:
    for path in paths:
        if path is not None and not Path(path).exists():
            raise JalmError(f"{path}: no such file")


def evaluate(
    model_dir: str | Path,
    tasks: str | list[str],
    out: str | Path | None = None,
    *,
    data: str | Path | list[str | Path] | None = None,
    limit: int | None = None,
    save_predictions: str | Path | None = None,
    batch_size: int = 8,
    device: str = "cpu",
    dtype: str = "float32",
    use_fast: bool = False,
    trust_remote_code: bool = False,
    name: str | None = None,
    max_length: int | None = None,
    ppl_window: int | None = None,
    ppl_stride: int | None = None,
    jsquad_data: str | Path | None = None,
    jsquad_train: str | Path | None = None,
    jsquad_shots: int = 3,
    jsquad_prompt_version: str = "0.2",
    jsquad_max_new_tokens: int | None = None,
    aio_data: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate the causal LM in `model_dir` on `tasks` and return the results dict (also written to `out`).

    `data` is the perplexity text (JSONL files or directories; default: the bundled dev set);
    `limit` evaluates the first N documents / questions of each task in evaluation order.
    """
    from jalm import __version__
    from jalm.eval.aio import evaluate_aio
    from jalm.eval.jsquad import evaluate_jsquad
    from jalm.eval.lm import load_lm
    from jalm.eval.perplexity import evaluate_ppl
    from jalm.jsonl import write_records
    from jalm.resources import bundled

    names = parse_tasks(tasks)
    if limit is not None and limit < 1:
        raise JalmError(f"--limit must be at least 1, got {limit}")
    if batch_size < 1:
        raise JalmError(f"--batch-size must be at least 1, got {batch_size}")
    # Fail on a missing file before spending time loading the model.
    ppl_data = ([data] if isinstance(data, (str, Path)) else list(data)) if data else None
    if "ppl" in names:
        if ppl_data is None:
            ppl_data = [bundled(DEFAULT_PPL_DATA)]
        _check_inputs([Path(p) for p in ppl_data])
    _check_inputs([Path(p) if p else None for p in (jsquad_data, jsquad_train, aio_data)])

    lm = load_lm(
        model_dir,
        device=device,
        dtype=dtype,
        use_fast=use_fast,
        trust_remote_code=trust_remote_code,
        max_length=max_length,
    )
    results_tasks: dict[str, Any] = {}
    predictions: list[dict[str, Any]] = []
    for task in names:
        if task == "ppl":
            metrics, _ = evaluate_ppl(
                lm,
                ppl_data,
                window=ppl_window,
                stride=ppl_stride,
                limit=limit,
                batch_size=batch_size,
                progress=progress,
            )
        elif task == "jsquad":
            metrics, records = evaluate_jsquad(
                lm,
                data=jsquad_data,
                pool=jsquad_train,
                shots=jsquad_shots,
                prompt_version=jsquad_prompt_version,
                limit=limit,
                batch_size=batch_size,
                max_new_tokens=jsquad_max_new_tokens,
                progress=progress,
            )
            predictions.extend(records)
        else:
            metrics, records = evaluate_aio(
                lm, data=aio_data, limit=limit, batch_size=batch_size, progress=progress
            )
            predictions.extend(records)
        results_tasks[task] = metrics

    model_path = Path(model_dir)
    results = {
        "model": str(model_path),
        "model_name": name or model_path.resolve().name,
        "params": lm.params,
        "tasks": results_tasks,
        "settings": {**lm.settings, "batch_size": batch_size, "limit": limit, "tasks": names},
        "jalm_version": __version__,
    }
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        tmp.replace(out)
    if save_predictions is not None:
        write_records(save_predictions, predictions)
    return results
