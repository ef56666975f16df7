"""JSQuAD greedy decoding: jalm's batched decoder vs one question at a time (jp-stable's way), same predictions.

Baseline: what jp-stable's `hf-causal` model does with its default batch size of 1: for each question,
`model.generate` on the encoded prompt (no special tokens, left-truncated to the context), greedy, a
stopping criterion that stops once the decoded continuation contains "\\n", end-of-sequence from the
generation config, then decode without special tokens and cut at the first "\\n". The new-token limit is the
protocol's (longest gold answer), for both sides.
Candidate: `jalm.eval.generation.greedy_until` (left padding, KV cache, per-sequence stopping, only the
last position's logits in the prompt pass) at --batch-size.

Both run on the same questions, in the same process, one after the other, and every prediction is compared.

    .venv/bin/python benchmarks/eval_jsquad_batching.py --model runs/demo/model --limit 64 --batch-size 16
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def one_at_a_time(lm, prompts, stop: str) -> list[str]:
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class StopString(StoppingCriteria):
        def __init__(self, start: int):
            self.start = start

        def __call__(self, input_ids, scores, **kwargs):
            text = lm.tokenizer.decode(input_ids[0, self.start :], skip_special_tokens=True)
            return torch.tensor([stop in text], device=input_ids.device)

    outputs = []
    with torch.inference_mode():
        for prompt in prompts:
            ids = torch.tensor([prompt.ids], device=lm.device)
            generated = lm.model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=prompt.max_new_tokens,
                do_sample=False,
                pad_token_id=lm.pad_id,
                stopping_criteria=StoppingCriteriaList([StopString(ids.shape[1])]),
            )
            text = lm.tokenizer.decode(generated[0, ids.shape[1] :], skip_special_tokens=True)
            outputs.append(text.split(stop)[0])
    return outputs


def prompt_pass(lm, prompts) -> None:
    """Only the forward pass over each prompt, one at a time, last position's logits only."""
    import torch

    with torch.inference_mode():
        for prompt in prompts:
            kwargs = {lm.logits_kwarg: 1} if lm.logits_kwarg else {}
            lm.model(input_ids=torch.tensor([prompt.ids], device=lm.device), **kwargs)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", default="runs/demo/model", help="model directory (default runs/demo/model)"
    )
    parser.add_argument("--limit", type=int, default=64, help="questions (first N in jp-stable order)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--task", default="jsquad", choices=["jsquad", "aio"], help="questions to decode")
    parser.add_argument("--shots", type=int, default=3, help="JSQuAD shots (default 3)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--json", help="also write the numbers to this JSON file")
    args = parser.parse_args()

    import torch
    import transformers

    from jalm.errors import JalmError
    from jalm.eval import aio
    from jalm.eval.aio import load_aio
    from jalm.eval.generation import fit_prompt, greedy_until
    from jalm.eval.jsquad import DEFAULT_EVAL, DEFAULT_POOL, STOP, build_prompt, fewshot_plan, load_squad
    from jalm.eval.lm import load_lm
    from jalm.resources import bundled

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        lm = load_lm(args.model, device=args.device, dtype=args.dtype)
    except JalmError as error:
        print(
            f"eval_jsquad_batching: error: {error} (run `jalm demo` first or pass --model)", file=sys.stderr
        )
        return 2
    if args.task == "jsquad":
        plan = fewshot_plan(
            load_squad(bundled(DEFAULT_EVAL)), load_squad(bundled(DEFAULT_POOL)), args.shots, args.limit
        )
        ids = [q.id for q, _ in plan]
        prompts = [
            fit_prompt(lm, lm.encode(build_prompt(q, shots)), max(len(lm.encode(a)) for a in q.answers))
            for q, shots in plan
        ]
        stop = STOP
    else:
        questions = load_aio(bundled(aio.DEFAULT_DATA))[: args.limit]
        ids = [q.id for q in questions]
        prompts = [fit_prompt(lm, lm.encode(q.prompt), aio.MAX_NEW_TOKENS) for q in questions]
        stop = aio.STOP

    # Warm up both paths on two questions so neither pays first-call costs in the timing.
    one_at_a_time(lm, prompts[:2], stop)
    greedy_until(lm, prompts[:2], stop, batch_size=2, progress=False)

    # Interleave the two sides batch by batch, so that load from other processes on a shared machine
    # falls on both alike; also time the prompt pass alone (one question at a time), the part of the work
    # that batching cannot remove.
    baseline, batched = [], []
    baseline_s = batched_s = prompt_pass_s = 0.0
    for start in range(0, len(prompts), args.batch_size):
        chunk = prompts[start : start + args.batch_size]
        t = time.perf_counter()
        baseline += one_at_a_time(lm, chunk, stop)
        baseline_s += time.perf_counter() - t
        t = time.perf_counter()
        batched += greedy_until(lm, chunk, stop, batch_size=args.batch_size, progress=False)
        batched_s += time.perf_counter() - t
        t = time.perf_counter()
        prompt_pass(lm, chunk)
        prompt_pass_s += time.perf_counter() - t

    same = sum(a == b for a, b in zip(baseline, batched))
    result = {
        "model": str(args.model),
        "params": lm.params,
        "task": args.task,
        "questions": len(prompts),
        "mean_prompt_tokens": round(sum(len(p.ids) for p in prompts) / len(prompts), 1),
        "mean_max_new_tokens": round(sum(p.max_new_tokens for p in prompts) / len(prompts), 2),
        "truncated_prompts": sum(p.truncated for p in prompts),
        "batch_size": args.batch_size,
        "device": lm.device,
        "dtype": args.dtype,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "one_at_a_time_examples_per_s": round(len(prompts) / baseline_s, 3),
        "batched_examples_per_s": round(len(prompts) / batched_s, 3),
        "speedup": round(baseline_s / batched_s, 2),
        "prompt_pass_share_of_one_at_a_time": round(prompt_pass_s / baseline_s, 3),
        "identical_predictions": f"{same}/{len(prompts)}",
    }
    print(json.dumps(result, indent=2, ensure_ascii=False))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if same != len(prompts):
        for i, (a, b) in enumerate(zip(baseline, batched)):
            if a != b:
                print(f"differs at {ids[i]}: one-at-a-time {a!r} vs batched {b!r}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
