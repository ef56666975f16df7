"""`jalm eval`: perplexity, JSQuAD and AI王 on any Hugging Face causal LM, and the seed's table.

Tasks (protocols as the seed's table was made; see src/jalm/eval/*.py):
  ppl          perplexity per predicted token and bits per character on JSONL text with a `text` field
               (no BOS; documents never share a window; long ones in strided windows)
  jsquad       JSQuAD dev, jp-stable `jsquad-1.1-0.2`, 3 shots drawn with Random(42), greedy, exact match / F1
  aio          AI王 aio_02_dev, closed-book zero-shot `{question}答えは「`, greedy, exact match
  jsquad-chat  for instruction-tuned models: JSQuAD zero-shot as one user message in the model's chat
               template (LINE's when it has none), greedy until </s>, scored as jsquad
  aio-chat     for instruction-tuned models: AI王 zero-shot as one user message, greedy until </s>
               (at most 64 tokens), 「」 stripped, scored as aio
  jcommonsenseqa  JGLUE v1.3 valid, jp-stable `jcommonsenseqa-1.1-0.2` (the published rows' protocol),
               3 shots from train, each choice scored by log-likelihood (context encoded once), acc
  jnli         JGLUE v1.3 valid, jp-stable `jnli-1.1-0.2`, 3 shots (pool: bundled test set, since the
               train file is not bundled; --jnli-train takes the real one), acc
  jsts         JGLUE v1.3 valid, llm-jp-eval's instruction, 4 shots from test, greedy score, Pearson/Spearman
  MARC-ja is not offered: Amazon withdrew its source (the Multilingual Amazon Reviews Corpus).

Prompts longer than the model's context are truncated on the left (as jp-stable does), counted in the
results as `truncated_prompts` and flagged per example in --save-predictions.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXAMPLES = """examples:
  jalm eval --model runs/demo/model --tasks ppl,jsquad,aio --out results.json
  jalm eval --model runs/demo/model --tasks jsquad --limit 100 --save-predictions preds.jsonl
  jalm eval --model ~/models/japanese-large-lm-3.6b --tasks ppl --data mc4-ja-valid.jsonl.zst \\
            --device cuda --dtype bfloat16 --batch-size 16
  jalm eval --model runs/sft/model --tasks jsquad-chat,aio-chat --out sft-results.json
  jalm eval table runs/a/results.json runs/b/results.json runs/sft/sft-results.json"""

# Which flag sets which field of which task's config (jalm.eval.tasks); a task and its chat form share
# the data flag. A flag left out keeps the config's default, which is the protocol.
TASK_FLAGS = {
    "ppl": {"data": "data", "window": "ppl_window", "stride": "ppl_stride"},
    "jsquad": {
        "data": "jsquad_data",
        "pool": "jsquad_train",
        "shots": "jsquad_shots",
        "prompt_version": "jsquad_prompt_version",
    },
    "aio": {"data": "aio_data"},
    "jsquad-chat": {"data": "jsquad_data"},
    "aio-chat": {"data": "aio_data"},
    "jcommonsenseqa": {
        "data": "jcqa_data",
        "pool": "jcqa_train",
        "shots": "jcqa_shots",
        "version": "jcqa_prompt_version",
    },
    "jnli": {"data": "jnli_data", "pool": "jnli_train", "shots": "jnli_shots", "version": "jnli_version"},
    "jsts": {"data": "jsts_data", "pool": "jsts_train", "shots": "jsts_shots"},
}


def register(subparsers: argparse._SubParsersAction) -> None:
    from jalm.eval.tasks import DEFAULT_TASKS, TASKS

    parser = subparsers.add_parser(
        "eval",
        help="perplexity, JSQuAD and AI王 on a model; the seed's results table",
        description=__doc__,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", metavar="DIR", help="Hugging Face causal LM directory with its tokenizer")
    default = ",".join(DEFAULT_TASKS)
    parser.add_argument(
        "--tasks", default=default, help=f"comma-separated, from {', '.join(TASKS)} (default {default})"
    )
    parser.add_argument("--out", metavar="FILE", help="write results JSON here (e.g. results.json)")
    parser.add_argument(
        "--limit",
        type=int,
        metavar="N",
        help="evaluate the first N documents / questions of each task in evaluation order",
    )
    parser.add_argument(
        "--save-predictions",
        metavar="FILE",
        help="JSONL, one line per JSQuAD / AI王 question: id, prompt, prediction, golds, scores",
    )
    parser.add_argument(
        "--batch-size", type=int, default=8, help="prompts or windows per forward pass (default 8)"
    )
    parser.add_argument("--name", help="model name in results and table (default: the directory name)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_model_flags(parser)
    _add_task_flags(parser)
    parser.set_defaults(func=run)

    sub = parser.add_subparsers(dest="eval_command", metavar="{table,mt-bench-ja}")
    table = sub.add_parser(
        "table",
        help="print the seed's Markdown table for one or several results files",
        epilog="example: jalm eval table runs/a/results.json runs/b/results.json --out table.md",
    )
    table.add_argument(
        "results", nargs="+", metavar="RESULTS", help="results JSON files written by jalm eval"
    )
    table.add_argument("--out", metavar="FILE", help="also write the table to this file")
    table.add_argument(
        "--published",
        action="store_true",
        help="add published rows (LINE, rinna, OpenCALM) copied from their cited sources, marked as copied",
    )
    table.set_defaults(func=run_table)
    _add_mtbench(sub)


def _add_mtbench(sub: argparse._SubParsersAction) -> None:
    mt = sub.add_parser(
        "mt-bench-ja",
        help="Japanese MT-Bench: answers graded 1-10 by a judge model behind any OpenAI-compatible endpoint",
        description=(
            "Answer the 80 two-turn Japanese MT-Bench questions with the model's chat template (or read answers in "
            "FastChat's format) and have a judge grade each turn with FastChat's single-answer prompts. Judgments "
            "are stored as they arrive; rerunning the same command continues where it stopped."
        ),
        epilog=(
            "examples:\n"
            "  OPENAI_API_KEY=sk-... jalm eval mt-bench-ja --model runs/sft/model \\\n"
            "      --judge-url https://api.openai.com/v1 --judge-model gpt-4o --out mtbench.json\n"
            "  jalm eval mt-bench-ja --answers model_answer.jsonl --judge-url http://127.0.0.1:8000/v1 "
            "--judge-model judge --judge-key-env ''"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mt.add_argument(
        "--model", metavar="DIR", help="chat model whose answers are generated (both turns, greedy)"
    )
    mt.add_argument(
        "--answers", metavar="FILE", help="answers in FastChat's answer format instead of --model"
    )
    mt.add_argument(
        "--judge-url", required=True, help="OpenAI-compatible base URL, e.g. https://api.openai.com/v1"
    )
    mt.add_argument("--judge-model", required=True, help="model name sent to the judge endpoint, e.g. gpt-4o")
    mt.add_argument(
        "--judge-key-env",
        default="OPENAI_API_KEY",
        metavar="VAR",
        help="environment variable holding the judge's API key (default OPENAI_API_KEY; '' for none)",
    )
    mt.add_argument(
        "--judgments",
        metavar="FILE",
        default="mt-bench-ja-judgments.jsonl",
        help="JSONL the judgments are appended to; a rerun skips what it holds (default mt-bench-ja-judgments.jsonl)",
    )
    mt.add_argument(
        "--answers-out", metavar="FILE", help="where generated answers go (default beside --judgments)"
    )
    mt.add_argument(
        "--questions", metavar="FILE", help="FastChat question.jsonl (default: bundled Japanese MT-Bench)"
    )
    mt.add_argument(
        "--references", metavar="FILE", help="reference answers (default: bundled GPT-4 references)"
    )
    mt.add_argument("--limit", type=int, metavar="N", help="the first N questions only (after --categories)")
    mt.add_argument(
        "--categories", metavar="LIST", help="comma-separated categories only, e.g. writing,roleplay"
    )
    mt.add_argument(
        "--max-new-tokens", type=int, default=1024, help="per turn when generating (default 1024)"
    )
    mt.add_argument("--retries", type=int, default=5, help="retries of a failed judge request (default 5)")
    mt.add_argument(
        "--backoff", type=float, default=2.0, help="first retry wait in seconds, doubling (default 2)"
    )
    mt.add_argument("--timeout", type=float, default=600.0, help="seconds per judge request (default 600)")
    mt.add_argument(
        "--judge-max-tokens",
        type=int,
        default=2048,
        help="max_tokens of each judgment (default 2048, FastChat's)",
    )
    mt.add_argument("--name", help="model name in the judgments and results (default: model_id or directory)")
    mt.add_argument("--out", metavar="FILE", help="write a results JSON (for jalm eval table)")
    mt.add_argument("--device", default="cpu", help="cpu, cuda, ... for generating answers")
    mt.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16", "auto"])
    mt.add_argument("--quiet", action="store_true", help="no progress bars")
    mt.set_defaults(func=run_mtbench)


def run_mtbench(args: argparse.Namespace) -> int:
    from jalm.eval.mtbench import evaluate_mtbench, format_mtbench

    results = evaluate_mtbench(
        judge_url=args.judge_url,
        judge_model=args.judge_model,
        judgments=args.judgments,
        model_dir=args.model,
        answers=args.answers,
        answers_out=args.answers_out,
        name=args.name,
        key_env=args.judge_key_env or None,
        questions=args.questions,
        references=args.references,
        limit=args.limit,
        categories=[c.strip() for c in args.categories.split(",") if c.strip()] if args.categories else None,
        max_new_tokens=args.max_new_tokens,
        device=args.device,
        dtype=args.dtype,
        retries=args.retries,
        backoff=args.backoff,
        timeout=args.timeout,
        judge_max_tokens=args.judge_max_tokens,
        out=args.out,
        progress=not args.quiet,
    )
    summary = results["tasks"]["mt-bench-ja"]
    print(format_mtbench(summary))
    if summary["unparsable"]:
        print(
            f"note: {summary['unparsable']} judgments had no [[rating]] and are not in the means",
            file=sys.stderr,
        )
    if args.out:
        print(f"\nresults written to {args.out}")
    return 0


def _add_model_flags(parser: argparse.ArgumentParser) -> None:
    """The fields of jalm.eval.lm.ModelOptions."""
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... or auto (default cpu)")
    parser.add_argument(
        "--dtype",
        default="float32",
        choices=["float32", "bfloat16", "float16", "auto"],
        help="weights dtype (default float32)",
    )
    parser.add_argument("--use-fast", action="store_true", help="load the tokenizer with use_fast=True")
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow code from the model directory to run (off unless given)",
    )
    parser.add_argument(
        "--max-length", type=int, metavar="N", help="context length (default: from config.json)"
    )


def _add_task_flags(parser: argparse.ArgumentParser) -> None:
    """Task options (see TASK_FLAGS); their defaults are the task configs' own."""
    from jalm.eval.tasks import JsquadConfig

    parser.add_argument(
        "--data",
        nargs="+",
        metavar="FILE",
        help="ppl text: JSONL(.gz/.zst) files or directories (default: bundled data/dev/wiki_jaquad)",
    )
    parser.add_argument(
        "--ppl-window", type=int, metavar="N", help="perplexity window in tokens (default: context)"
    )
    parser.add_argument(
        "--ppl-stride", type=int, metavar="N", help="perplexity stride in tokens (default: window/2)"
    )
    parser.add_argument(
        "--jsquad-data",
        metavar="FILE",
        help="JSQuAD questions for jsquad and jsquad-chat (default: bundled valid v1.1)",
    )
    parser.add_argument(
        "--jsquad-train",
        metavar="FILE",
        help="JSQuAD shot pool, e.g. train-v1.1.json (default: bundled test v1.3)",
    )
    parser.add_argument(
        "--jsquad-shots", type=int, metavar="N", help=f"shots per question (default {JsquadConfig.shots})"
    )
    parser.add_argument(
        "--jsquad-prompt-version",
        choices=["0.1", "0.2", "0.3"],
        help=f"jp-stable prompt version (default {JsquadConfig.prompt_version})",
    )
    parser.add_argument(
        "--aio-data", metavar="FILE", help="AI王 TSV for aio and aio-chat (default: bundled aio_02_dev)"
    )
    for task, label, pool in (
        ("jcqa", "JCommonsenseQA", "bundled train v1.3"),
        ("jnli", "JNLI", "bundled test v1.3; jp-stable used train-v1.3.json"),
        ("jsts", "JSTS", "bundled test v1.3"),
    ):
        parser.add_argument(
            f"--{task}-data", metavar="FILE", help=f"{label} questions (default: bundled valid v1.3)"
        )
        parser.add_argument(f"--{task}-train", metavar="FILE", help=f"{label} shot pool (default: {pool})")
        parser.add_argument(f"--{task}-shots", type=int, metavar="N", help=f"{label} shots per question")
    parser.add_argument(
        "--jcqa-prompt-version", choices=["0.1", "0.2"], help="JCommonsenseQA prompt (default 0.2)"
    )
    parser.add_argument(
        "--jnli-version",
        choices=["1.1", "1.3"],
        help="JNLI: 1.1 English labels, random shots (the published rows; default); 1.3 Japanese labels, stratified",
    )


def task_configs(args: argparse.Namespace) -> list:
    """The configs of the tasks in --tasks, each with the flags given for it."""
    from jalm.eval.tasks import REGISTRY, parse_tasks

    configs = []
    for name in parse_tasks(args.tasks):
        given = {field: getattr(args, dest) for field, dest in TASK_FLAGS[name].items()}
        configs.append(REGISTRY[name](**{k: v for k, v in given.items() if v is not None}))
    return configs


def run(args: argparse.Namespace) -> int:
    from jalm.errors import JalmError
    from jalm.eval.lm import ModelOptions
    from jalm.eval.suite import evaluate
    from jalm.eval.table import format_table

    if not args.model:
        raise JalmError("--model DIR is required (or use `jalm eval table RESULTS...`)")
    model = ModelOptions(
        device=args.device,
        dtype=args.dtype,
        use_fast=args.use_fast,
        trust_remote_code=args.trust_remote_code,
        max_length=args.max_length,
    )
    results = evaluate(
        args.model,
        task_configs(args),
        out=args.out,
        model=model,
        limit=args.limit,
        save_predictions=args.save_predictions,
        batch_size=args.batch_size,
        name=args.name,
        progress=not args.quiet,
    )
    for task, metrics in results["tasks"].items():
        shown = {k: v for k, v in metrics.items() if not isinstance(v, str)}
        print(f"{task}: {json.dumps(shown, ensure_ascii=False)}")
        if metrics.get("truncated_prompts"):
            print(
                f"{task}: note: {metrics['truncated_prompts']} prompts were longer than the context and "
                "were truncated on the left",
                file=sys.stderr,
            )
        if metrics.get("chat_template", "model") != "model":
            print(
                f"{task}: note: the model has no chat template; asked in LINE's sft format", file=sys.stderr
            )
    print()
    print(format_table([results]))
    if args.out:
        print(f"\nresults written to {args.out}")
    return 0


def run_table(args: argparse.Namespace) -> int:
    from jalm.eval.table import format_table, read_results

    table = format_table([read_results(p) for p in args.results], published=args.published)
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n", encoding="utf-8")
    return 0
