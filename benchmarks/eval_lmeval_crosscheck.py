"""Cross-check: Stability AI's lm-evaluation-harness (jp-stable) vs jalm, question by question, offline.

Both tools score the same model on the same bundled files (data/eval): JCommonsenseQA
`jcommonsenseqa-1.1-0.2`, JNLI `jnli-1.3-0.2` (jp-stable HEAD no longer has the 1.1 class) and JSQuAD
`jsquad-1.1-0.2`, 3 shots each, the first --limit questions in jp-stable's Random(42) order. The harness
runs through its own `lm_eval.evaluator.evaluate` and its `hf-causal` model class (`lm_eval.models.gpt2.HFLM`,
what the published `harness.sh` scripts use); jalm through its task configs. Per question the script
compares the prompt (byte for byte), the prediction (chosen index / generated answer) and, for the
multiple-choice tasks, the log-likelihoods; it prints the agreement per task and writes every record
to --out.

The harness is not a jalm dependency and is not installed in the project venv: it runs from a throwaway
venv that sees the project's torch / transformers. Setup (once; jp-stable is not on PyPI):

    git clone -b jp-stable https://github.com/Stability-AI/lm-evaluation-harness /tmp/jpstable
    python3.11 -m venv /tmp/lmeval-venv
    echo $PWD/.venv/lib/python3.11/site-packages > /tmp/lmeval-venv/lib/python3.11/site-packages/zz_jalm.pth
    /tmp/lmeval-venv/bin/pip install --no-deps -e /tmp/jpstable
    /tmp/lmeval-venv/bin/pip install "datasets==2.21.0" sqlitedict "sacrebleu==1.5.0" pycountry \\
        pytablewriter rouge-score omegaconf numexpr jsonlines scikit-learn tqdm-multiprocess
    # datasets 2.x: jp-stable's JSQuAD calls datasets.load_metric, removed in datasets 3

    PYTHONPATH=$PWD/src /tmp/lmeval-venv/bin/python benchmarks/eval_lmeval_crosscheck.py \\
        --model runs/demo/model --limit 50 --out /tmp/crosscheck.json
    # the same with a random model of jalm's tiny preset (its predictions vary more than the demo model's)
    ... --random-like runs/demo/model
    # the published rows' harness (JNLI 1.1, English labels): a checkout of jp-stable commit 413593a first
    # on the path, and JSQuAD with harness.sh's 2 shots
    PYTHONPATH=/tmp/jp413:$PWD/src /tmp/lmeval-venv/bin/python benchmarks/eval_lmeval_crosscheck.py \
        --model runs/demo/model --jnli-version 1.1 --jsquad-shots 2

Shims (all in `install_shims`, none touches the tasks' prompts or scoring):
- `transformers.data.metrics.squad_metrics` (removed in transformers 5; imported by jp-stable's
  SuperGLUE ReCoRD task at import time, unused here) is an empty module;
- HFLM's `load_in_8bit=False` is dropped before `from_pretrained` (transformers 5 hands unknown kwargs
  to the model class, which rejects it);
- `datasets.load_dataset("shunk031/JGLUE", name=...)` (a hub loading script, i.e. network) returns the
  bundled files in shunk031/JGLUE's schema: integer labels (JNLI in its ClassLabel order entailment,
  contradiction, neutral) and JSQuAD flattened to one row per question. "train" is jalm's default shot
  pool for the task (JCommonsenseQA train v1.3; JNLI and JSQuAD: the v1.3 test sets, as their train sets
  are not bundled), so both tools draw shots from the same pool.
AI王 / JAQKET is not compared: jp-stable's `jaqket_v2` is reading comprehension over retrieved passages
(kumapo/JAQKET v2.0 `ctxs`), jalm's `aio` is closed-book zero-shot, and the bundled AI王 dev TSV has no
passages; there is no common protocol to compare.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import types
from pathlib import Path
from typing import Any

HARNESS_TASKS = {  # jalm task name → (jp-stable task name, shots)
    "jcommonsenseqa": ("jcommonsenseqa-1.1-0.2", 3),
    "jnli": ("jnli-1.3-0.2", 3),
    "jsquad": ("jsquad-1.1-0.2", 3),
}
TOKENIZERS: dict[str, str] = {}  # which tokenizer class each tool loaded
JNLI_LABELS = ("entailment", "contradiction", "neutral")  # shunk031/JGLUE's ClassLabel order


def _jsonl(path: Path) -> list[dict[str, Any]]:
    from jalm.io import open_compressed

    with open_compressed(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _squad_rows(path: Path) -> list[dict[str, Any]]:
    """SQuAD-format JSON → shunk031/JGLUE's JSQuAD rows (one per question, file order)."""
    from jalm.io import open_compressed

    with open_compressed(path) as handle:
        data = json.load(handle)
    rows = []
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                rows.append(
                    {
                        "id": qa["id"],
                        "title": article["title"],
                        "context": paragraph["context"],
                        "question": qa["question"],
                        "answers": {
                            "text": [a["text"] for a in qa["answers"]],
                            "answer_start": [a["answer_start"] for a in qa["answers"]],
                        },
                        "is_impossible": bool(qa.get("is_impossible", False)),
                    }
                )
    return rows


def local_jglue(name: str) -> Any:
    """The bundled JGLUE files as a datasets.DatasetDict in shunk031/JGLUE's schema."""
    import datasets

    from jalm.eval.jglue import DEFAULT_DATA, DEFAULT_POOL
    from jalm.eval.jsquad import DEFAULT_EVAL
    from jalm.eval.jsquad import DEFAULT_POOL as JSQUAD_POOL
    from jalm.resources import bundled

    if name == "JCommonsenseQA":
        splits = {
            s: [dict(r, label=int(r["label"])) for r in _jsonl(bundled(p))]
            for s, p in (
                ("train", DEFAULT_POOL["jcommonsenseqa"]),
                ("validation", DEFAULT_DATA["jcommonsenseqa"]),
            )
        }
    elif name == "JNLI":
        splits = {
            s: [dict(r, label=JNLI_LABELS.index(r["label"])) for r in _jsonl(bundled(p))]
            for s, p in (("train", DEFAULT_POOL["jnli"]), ("validation", DEFAULT_DATA["jnli"]))
        }
    elif name == "JSQuAD":
        splits = {
            "train": _squad_rows(bundled(JSQUAD_POOL)),
            "validation": _squad_rows(bundled(DEFAULT_EVAL)),
        }
    else:
        raise ValueError(f"no bundled JGLUE data for {name}")
    return datasets.DatasetDict({s: datasets.Dataset.from_list(rows) for s, rows in splits.items()})


def install_shims() -> None:
    for name in ("transformers.data", "transformers.data.metrics", "transformers.data.metrics.squad_metrics"):
        sys.modules.setdefault(name, types.ModuleType(name))
    import datasets

    original = datasets.load_dataset

    def load_dataset(path: str | None = None, name: str | None = None, *args: Any, **kwargs: Any) -> Any:
        if path == "shunk031/JGLUE":
            return local_jglue(name or "")
        return original(path, name, *args, **kwargs)

    datasets.load_dataset = load_dataset


def harness_lm(model_dir: Path, batch_size: int) -> Any:
    """jp-stable's `hf-causal` model class (HFLM) on `model_dir`, CPU."""
    import transformers
    from lm_eval.models.gpt2 import HFLM

    # transformers 5 passes unknown from_pretrained kwargs to the model's __init__; HFLM always sends
    # load_in_8bit (False here), which GPTNeoXForCausalLM rejects: drop it while HFLM loads the model.
    auto = transformers.AutoModelForCausalLM
    original = auto.from_pretrained

    def from_pretrained(*args: Any, load_in_8bit: bool = False, **kwargs: Any) -> Any:
        assert not load_in_8bit
        return original(*args, **kwargs)

    auto.from_pretrained = from_pretrained
    try:  # use_fast=False as in jp-stable's published harness.sh (and jalm's default)
        lm = HFLM(device="cpu", pretrained=str(model_dir), batch_size=batch_size, use_fast=False)
    finally:
        auto.from_pretrained = original
    return lm


def run_harness(model_dir: Path, tasks: list[str], limit: int, batch_size: int) -> dict[str, list[dict]]:
    """jp-stable's evaluator on each task; per question: the context and the raw results it scored."""
    import lm_eval.evaluator
    import lm_eval.tasks

    lm = harness_lm(model_dir, batch_size)
    TOKENIZERS["harness"] = type(lm.tokenizer).__name__
    captured: dict[str, list[dict]] = {}
    for task in tasks:
        harness_name, shots = HARNESS_TASKS[task]
        task_obj = lm_eval.tasks.get_task_dict([harness_name])[harness_name]
        rows: list[dict] = []
        contexts: list[str] = []
        fewshot_context, process_results = task_obj.fewshot_context, task_obj.process_results

        def ctx_hook(*args: Any, _f=fewshot_context, _c=contexts, **kwargs: Any) -> str:
            ctx = _f(*args, **kwargs)
            _c.append(ctx)
            return ctx

        def res_hook(doc: Any, results: Any, _f=process_results, _r=rows) -> Any:
            _r.append({"doc": doc, "results": list(results)})
            return _f(doc, results)

        task_obj.fewshot_context, task_obj.process_results = ctx_hook, res_hook
        started = time.perf_counter()
        out = lm_eval.evaluator.evaluate(
            lm=lm, task_dict={harness_name: task_obj}, num_fewshot=[shots], limit=limit, bootstrap_iters=2
        )
        # process_results runs in request order of (task, doc_id) = insertion order = context order
        for row, ctx in zip(rows, contexts):
            row["prompt"] = ctx
        captured[task] = rows
        print(
            f"harness {harness_name}: {out['results'][harness_name]} ({time.perf_counter() - started:.1f} s)",
            file=sys.stderr,
        )
    return captured


def run_jalm(model_dir: Path, tasks: list[str], limit: int, batch_size: int) -> dict[str, list[dict]]:
    from jalm.eval.lm import load_lm
    from jalm.eval.tasks import JcqaConfig, JnliConfig, JsquadConfig

    configs = {
        "jcommonsenseqa": JcqaConfig(version="0.2", shots=HARNESS_TASKS["jcommonsenseqa"][1]),
        "jnli": JnliConfig(version=HARNESS_TASKS["jnli"][0].split("-")[1], shots=HARNESS_TASKS["jnli"][1]),
        "jsquad": JsquadConfig(prompt_version="0.2", shots=HARNESS_TASKS["jsquad"][1]),
    }
    lm = load_lm(model_dir)
    TOKENIZERS["jalm"] = type(lm.tokenizer).__name__
    out = {}
    for task in tasks:
        started = time.perf_counter()
        metrics, records = configs[task].run(lm, limit=limit, batch_size=batch_size, progress=False)
        print(f"jalm {task}: {metrics} ({time.perf_counter() - started:.1f} s)", file=sys.stderr)
        out[task] = records
    return out


EOS_PROBE_PROMPTS = (
    "東京は日本の首都である。",
    "[答え]:",
    "質問:日本の首都はどこ?\n回答:",
    "これはペンです。",
    "彼は",
)


def eos_probe(model_dir: Path, new_tokens: int = 8) -> list[dict[str, Any]]:
    """Both tools' greedy_until on a few prompts, once as the model is and once with `</s>` made the
    top token wherever "、" was (its output row = 1.01 × the row of "、", in both copies, in memory):
    shows how each tool treats a generated end-of-text token."""
    import torch

    from jalm.eval.generation import fit_prompt, greedy_until
    from jalm.eval.lm import load_lm

    harness, lm = harness_lm(model_dir, 1), load_lm(model_dir)
    eos = lm.tokenizer.eos_token_id
    rows = []
    for boosted in (False, True):
        if boosted:
            comma = lm.encode("、")[-1]
            with torch.no_grad():
                for model in (harness.gpt2, lm.model):
                    weight = model.get_output_embeddings().weight
                    weight[eos] = 1.01 * weight[comma]
        hs = harness.greedy_until([(p, ["\n"], new_tokens) for p in EOS_PROBE_PROMPTS])
        prompts = [fit_prompt(lm, lm.encode(p), new_tokens) for p in EOS_PROBE_PROMPTS]
        js = greedy_until(lm, prompts, "\n", batch_size=8, progress=False)
        rows += [
            {"eos_boosted": boosted, "prompt": p, "harness": h, "jalm": j, "same": h == j}
            for p, h, j in zip(EOS_PROBE_PROMPTS, hs, js)
        ]
    return rows


def compare(task: str, harness: list[dict], jalm: list[dict]) -> dict[str, Any]:
    rows = []
    for i, (h, j) in enumerate(zip(harness, jalm)):
        row: dict[str, Any] = {"i": i, "id": j["id"], "same_prompt": h["prompt"] == j["prompt"]}
        if task == "jsquad":
            row["harness"], row["jalm"] = h["results"][0], j["prediction"]
            row["jalm_truncated"] = j["truncated"]
        else:
            lls = h["results"]
            row["harness"] = max(range(len(lls)), key=lls.__getitem__)
            row["jalm"] = j["prediction"]
            row["max_abs_ll_diff"] = max(abs(a - b) for a, b in zip(lls, j["loglikelihoods"]))
            row["harness_lls"], row["jalm_lls"] = lls, j["loglikelihoods"]
        row["agree"] = row["harness"] == row["jalm"]
        if not row["same_prompt"]:
            row["harness_prompt"], row["jalm_prompt"] = h["prompt"], j["prompt"]
        rows.append(row)
    n = len(rows)
    summary: dict[str, Any] = {
        "task": task,
        "harness_task": HARNESS_TASKS[task][0],
        "n": n,
        "same_prompt": sum(r["same_prompt"] for r in rows),
        "agree": sum(r["agree"] for r in rows),
        "distinct_predictions": len({str(r["harness"]) for r in rows}),
        "agreement": round(100.0 * sum(r["agree"] for r in rows) / n, 1) if n else None,
    }
    if task != "jsquad" and rows:
        summary["max_abs_ll_diff"] = max(r["max_abs_ll_diff"] for r in rows)
    return {"summary": summary, "rows": rows}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", default="runs/demo/model", help="model directory (default runs/demo/model)"
    )
    parser.add_argument(
        "--random-like",
        metavar="DIR",
        help="score a random GPT-NeoX of jalm's tiny preset (seed 0) with DIR's tokenizer instead of --model",
    )
    parser.add_argument("--tasks", default="jcommonsenseqa,jnli,jsquad")
    parser.add_argument("--limit", type=int, default=40, help="questions per task (jp-stable order prefix)")
    parser.add_argument(
        "--jnli-version",
        default="1.3",
        choices=["1.1", "1.3"],
        help="jnli-1.3-0.2 (jp-stable HEAD) or jnli-1.1-0.2 (the published rows; needs a checkout of 413593a)",
    )
    parser.add_argument("--jsquad-shots", type=int, default=3, help="3 (jalm's default) or 2 (harness.sh)")
    parser.add_argument(
        "--eos-probe",
        action="store_true",
        help="only show how each tool's generation treats a generated </s> (see eos_probe)",
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--out", type=Path, help="write summaries and per-question rows as JSON")
    args = parser.parse_args()
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # jp-stable's JSQuAD loads its metric from a script in its own checkout (lm_eval/jasquad)
    os.environ.setdefault("HF_DATASETS_TRUST_REMOTE_CODE", "1")
    import torch

    torch.set_num_threads(args.threads)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    HARNESS_TASKS["jnli"] = (f"jnli-{args.jnli_version}-0.2", 3)
    HARNESS_TASKS["jsquad"] = ("jsquad-1.1-0.2", args.jsquad_shots)
    unknown = [t for t in tasks if t not in HARNESS_TASKS]
    if unknown:
        print(f"eval_lmeval_crosscheck: error: unknown task {', '.join(unknown)}", file=sys.stderr)
        return 2
    install_shims()
    model_dir = Path(args.model)
    if args.random_like:
        import tempfile

        sys.path.insert(0, str(Path(__file__).parent))
        from eval_multiple_choice import random_model

        model_dir = random_model(Path(args.random_like), Path(tempfile.mkdtemp()) / "model")
    if args.eos_probe:
        for row in eos_probe(model_dir):
            print(json.dumps(row, ensure_ascii=False))
        return 0
    harness = run_harness(model_dir, tasks, args.limit, args.batch_size)
    jalm = run_jalm(model_dir, tasks, args.limit, args.batch_size)
    results = [compare(t, harness[t], jalm[t]) for t in tasks]
    import datasets
    import lm_eval
    import transformers

    report = {
        "model": f"random tiny preset, tokenizer of {args.random_like}"
        if args.random_like
        else str(model_dir),
        "limit": args.limit,
        "harness_tasks": {t: HARNESS_TASKS[t] for t in tasks},
        "threads": args.threads,
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "datasets": datasets.__version__,
            "lm_eval": str(Path(lm_eval.__file__).parent.parent),
        },
        "tokenizers": TOKENIZERS,
        "tasks": results,
    }
    print(
        "| task | harness task | questions | same prompt | same prediction | agreement | distinct predictions"
        " | max abs Δll |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        s = r["summary"]
        ll = f"{s['max_abs_ll_diff']:.2e}" if "max_abs_ll_diff" in s else "—"
        print(
            f"| {s['task']} | {s['harness_task']} | {s['n']} | {s['same_prompt']} | {s['agree']} "
            f"| {s['agreement']}% | {s['distinct_predictions']} | {ll} |"
        )
        for row in r["rows"]:
            if not row["agree"] or not row["same_prompt"]:
                print(
                    f"  differs: {s['task']} #{row['i']} {row['id']}: harness {row['harness']!r} jalm {row['jalm']!r}"
                    f" same_prompt={row['same_prompt']}"
                )
    if args.out:
        args.out.write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
