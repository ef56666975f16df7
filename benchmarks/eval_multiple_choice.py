"""Multiple-choice scoring: the context encoded once (KV cache, choices in one batch) vs each choice alone.

Baseline (`jalm.eval.choice.score_alone`): jp-stable's way — every (context + choice) is its own sequence,
right-padded into batches of --batch-size, so a 5-choice question encodes its 3-shot context 5 times.
Candidate (`score_shared`): the context once per question, its KV cache repeated for the choices, all
choices in one batch. Both score the same questions (JCommonsenseQA 3-shot `jcommonsenseqa-1.1-0.2`, or
JNLI `jnli-1.1-0.2`) in the same process, interleaved chunk by chunk; the log-likelihoods are compared
(largest absolute difference) and so are the predictions.

    .venv/bin/python benchmarks/eval_multiple_choice.py --model runs/demo/model --limit 64
    # no trained model at hand: a random GPT-NeoX of jalm's `tiny` preset shape (6 × 256, context 512)
    # with the tokenizer of MODEL_DIR
    .venv/bin/python benchmarks/eval_multiple_choice.py --random-like MODEL_DIR --limit 64
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path


def random_model(tokenizer_dir: Path, out: Path) -> Path:
    """jalm's `tiny` preset shape with random weights (seed 0) and the tokenizer files of `tokenizer_dir`."""
    import torch

    from jalm.model.build import build_model, hf_config
    from jalm.model.presets import get_preset

    out.mkdir(parents=True, exist_ok=True)
    for name in ("spiece.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (tokenizer_dir / name).exists():
            shutil.copy2(tokenizer_dir / name, out / name)
    vocab = json.loads((tokenizer_dir / "config.json").read_text(encoding="utf-8"))["vocab_size"]
    torch.manual_seed(0)
    build_model(hf_config(get_preset("tiny"), vocab)).save_pretrained(out)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", default="runs/demo/model", help="model directory (default runs/demo/model)"
    )
    parser.add_argument(
        "--random-like", metavar="DIR", help="use a random tiny-preset model with DIR's tokenizer"
    )
    parser.add_argument("--task", default="jcommonsenseqa", choices=["jcommonsenseqa", "jnli"])
    parser.add_argument("--limit", type=int, default=64, help="questions (first N in jp-stable order)")
    parser.add_argument("--shots", type=int, default=3)
    parser.add_argument(
        "--batch-size", type=int, default=8, help="baseline sequences per forward (default 8)"
    )
    parser.add_argument("--chunk", type=int, default=8, help="questions per interleaved timing chunk")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--json", help="also write the numbers to this JSON file")
    args = parser.parse_args()

    import torch
    import transformers

    from jalm.errors import JalmError
    from jalm.eval.choice import make_request, score_alone, score_shared
    from jalm.eval.jglue import DEFAULT_DATA, DEFAULT_POOL, build_context, fewshot_plan, load_jglue, protocol
    from jalm.eval.lm import load_lm
    from jalm.resources import bundled

    if args.threads:
        torch.set_num_threads(args.threads)
    tmp = None
    try:
        model_dir = args.model
        if args.random_like:
            tmp = tempfile.mkdtemp(prefix="mc_bench_")
            model_dir = random_model(Path(args.random_like), Path(tmp) / "model")
        lm = load_lm(model_dir)
    except JalmError as error:
        print(
            f"eval_multiple_choice: error: {error} (run `jalm demo` first, or pass --model / --random-like)",
            file=sys.stderr,
        )
        return 2
    spec = protocol(args.task, "0.2" if args.task == "jcommonsenseqa" else "1.1")
    plan = fewshot_plan(
        load_jglue(args.task, bundled(DEFAULT_DATA[args.task])),
        load_jglue(args.task, bundled(DEFAULT_POOL[args.task])),
        args.shots,
        spec,
        args.limit,
    )
    requests = [make_request(lm, build_context(d, s, spec), spec.choices(d)) for d, s in plan]
    score_alone(lm, requests[:2], args.batch_size)  # warm both paths up
    score_shared(lm, requests[:2])
    alone, shared = [], []
    alone_s = shared_s = 0.0
    for start in range(0, len(requests), args.chunk):
        chunk = requests[start : start + args.chunk]
        t = time.perf_counter()
        alone += score_alone(lm, chunk, args.batch_size)
        alone_s += time.perf_counter() - t
        t = time.perf_counter()
        shared += score_shared(lm, chunk)[0]
        shared_s += time.perf_counter() - t
    argmax = lambda row: max(range(len(row)), key=row.__getitem__)  # noqa: E731
    same = sum(argmax(a) == argmax(s) for a, s in zip(alone, shared))
    diff = max(abs(x - y) for a, s in zip(alone, shared) for x, y in zip(a, s))
    result = {
        "model": "random tiny preset" if args.random_like else str(args.model),
        "params": lm.params,
        "task": spec.task,
        "shots": args.shots,
        "questions": len(requests),
        "choices_per_question": len(requests[0].choices),
        "mean_context_tokens": round(sum(len(r.context) for r in requests) / len(requests), 1),
        "mean_choice_tokens": round(
            sum(len(c) for r in requests for c in r.choices) / sum(len(r.choices) for r in requests), 2
        ),
        "too_long_scored_alone": sum(not r.fits(lm.max_length) for r in requests),
        "baseline_batch_size": args.batch_size,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "alone_questions_per_s": round(len(requests) / alone_s, 2),
        "shared_questions_per_s": round(len(requests) / shared_s, 2),
        "speedup": round(alone_s / shared_s, 2),
        "same_predictions": f"{same}/{len(requests)}",
        "max_abs_loglikelihood_diff": diff,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if tmp:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if same == len(requests) else 1


if __name__ == "__main__":
    sys.exit(main())
