"""The demo's Japanese MT-Bench smoke test: the tuned model answers one question (both turns) and the
demo's own `jalm serve` grades them through the OpenAI-compatible API, with FastChat's prompts.

A smoke test of the path, not a score: the judge is the demo's own tiny tuned model, and FastChat's
English judge prompts are ~1,000 of its tokens while its context is 512, so the judge is served from a copy
whose config allows 4,096 positions (GPT-NeoX's rotary positions run past the trained length; what it
writes there means nothing). Its replies rarely hold a `[[rating]]`: they are counted as unparsable.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

SMOKE_NOTE = "smoke test: judged by the demo's own tiny model, not a score"
CATEGORIES = ("writing",)  # no reference answers: the shortest judge prompts
QUESTIONS = 1
JUDGE_CONTEXT = 4096


def judge_copy(model_dir: Path, out: Path) -> Path:
    """`model_dir` with max_position_embeddings raised to JUDGE_CONTEXT (weights untouched)."""
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(model_dir, out, ignore=shutil.ignore_patterns("training", "results*.json"))
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    config["max_position_embeddings"] = max(int(config.get("max_position_embeddings", 0)), JUDGE_CONTEXT)
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return out


def mt_bench_smoke(
    work: Path, model_dir: Path, name: str = "sft-model", progress: bool = False
) -> dict[str, Any]:
    """Answer, serve the judge on a loopback port, judge; returns the `mt-bench-ja` summary (judgments and
    answers under work/mt-bench/)."""
    from jalm.eval.mtbench import evaluate_mtbench
    from jalm.serve.api import Limits
    from jalm.serve.command import load_app, running

    out = work / "mt-bench"
    shutil.rmtree(out, ignore_errors=True)  # a demo starts afresh; a user's rerun of the CLI resumes instead
    judge_dir = judge_copy(model_dir, work / "mt-bench-judge")
    app = load_app(judge_dir, name="demo-judge", limits=Limits(max_tokens=16))
    with running(app) as url:
        results = evaluate_mtbench(
            model_dir=model_dir,
            name=name,
            judge_url=url.rstrip("/") + "/v1",
            judge_model="demo-judge",
            judgments=out / "judgments.jsonl",
            key_env=None,
            categories=CATEGORIES,
            limit=QUESTIONS,
            max_new_tokens=16,
            judge_max_tokens=16,
            retries=1,
            note=SMOKE_NOTE,
            progress=progress,
        )
    return results["tasks"]["mt-bench-ja"]
