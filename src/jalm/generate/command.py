"""`jalm generate`: continuations of a prompt (or a chat reply) streamed to the terminal (jalm.generate)."""

from __future__ import annotations

import argparse
import sys
import time

from jalm.errors import JalmError
from jalm.generate.generation import (
    DEFAULT_MAX_NEW_TOKENS,
    PIPELINE_TEMPERATURE,
    PROMPT,
    Sampling,
    check_sampling,
    complete,
    context_length,
    encode_prompt,
    load,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="sample continuations of a prompt, streamed to the terminal",
        description="Sample continuations of a prompt from a Hugging Face causal-LM directory. One sequence "
        "streams token by token; several are printed one after another. Arguments not given take the "
        "model's generation defaults (as LINE's pipeline call does). With --chat the prompt is a user "
        "message to an instruction-tuned model.",
        epilog=f'example: jalm generate --model runs/demo/model --prompt "{PROMPT}" '
        "--max-length 30 --num-return-sequences 5 --seed 101",
    )
    parser.add_argument("--model", required=True, help="model directory (config.json, weights, tokenizer)")
    parser.add_argument(
        "--prompt", default=PROMPT, help=f"text to continue (default 「{PROMPT}」; '-' reads stdin)"
    )
    parser.add_argument(
        "--chat",
        action="store_true",
        help="treat the prompt as one user message, in the model's chat template (LINE's sft format "
        "`ユーザー: …\\nシステム: ` for a model without one), and print the reply",
    )
    parser.add_argument("--system", metavar="TEXT", help="with --chat: a system message before the user's")
    length = parser.add_mutually_exclusive_group()
    length.add_argument(
        "--max-length", type=int, help="total tokens including the prompt (as in LINE's snippet)"
    )
    length.add_argument(
        "--max-new-tokens", type=int, help=f"tokens to generate (default {DEFAULT_MAX_NEW_TOKENS})"
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--do-sample", dest="do_sample", action="store_true", default=True, help="sample (default)"
    )
    mode.add_argument("--greedy", dest="do_sample", action="store_false", help="greedy decoding")
    parser.add_argument(
        "--temperature",
        type=float,
        help=f"softmax temperature (default {PIPELINE_TEMPERATURE}, as the pipeline)",
    )
    parser.add_argument("--top-p", type=float, help="nucleus sampling mass (model default 1.0)")
    parser.add_argument(
        "--top-k", type=int, help="sample among the k most likely tokens (model default 50; 0 = off)"
    )
    parser.add_argument("--repetition-penalty", type=float, help="penalise repeated tokens (1.0 = off)")
    parser.add_argument(
        "--num-return-sequences", type=int, default=1, help="how many continuations (default 1)"
    )
    parser.add_argument("--stop", action="append", default=[], help="stop at this string (repeatable)")
    parser.add_argument("--seed", type=int, help="random seed, for reproducible samples")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--dtype", default="float32", help="float32, bfloat16, float16 or auto")
    parser.set_defaults(func=run)


def _cli_prompt(
    args: argparse.Namespace, tokenizer, prompt: str, sampling: Sampling
) -> tuple[list[int], str]:
    """Prompt ids and the text printed before each output (the prompt; nothing for a chat reply)."""
    if not args.chat:
        return encode_prompt(tokenizer, prompt), prompt
    from jalm.chat import chat_prompt_ids, chat_stops

    messages = [{"role": "system", "content": args.system}] if args.system is not None else []
    prompt_ids, notice = chat_prompt_ids(tokenizer, messages + [{"role": "user", "content": prompt}])
    if notice is not None:
        print(f"jalm generate: {notice}", file=sys.stderr, flush=True)
    sampling.stop += [s for s in chat_stops(tokenizer) if s not in sampling.stop]
    return prompt_ids, ""


def run(args: argparse.Namespace) -> int:
    if args.system is not None and not args.chat:
        raise JalmError("--system is a chat message: add --chat")
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    started = time.perf_counter()
    model, tokenizer = load(args.model, args.device, args.dtype)
    loaded = time.perf_counter()
    sampling = Sampling(
        args.max_new_tokens,
        args.max_length,
        args.do_sample,
        args.temperature,
        args.top_p,
        args.top_k,
        args.repetition_penalty,
        args.num_return_sequences,
        args.seed,
        list(args.stop),
    )
    prompt_ids, shown = _cli_prompt(args, tokenizer, prompt, sampling)
    check_sampling(sampling, len(prompt_ids), context_length(model))  # fail before printing anything
    if sampling.num_return_sequences == 1:
        print(shown, end="", flush=True)
        results = complete(
            model, tokenizer, prompt_ids, sampling, on_text=lambda _, delta: print(delta, end="", flush=True)
        )
        print()
    else:
        results = complete(model, tokenizer, prompt_ids, sampling)
        for i, result in enumerate(results, 1):
            print(f"[{i}] {shown}{result.text}")
    seconds = time.perf_counter() - loaded
    tokens = sum(r.tokens for r in results)
    reasons = ", ".join(sorted({r.finish_reason for r in results}))
    print(
        f"({tokens} tokens in {seconds:.1f} s, {tokens / max(seconds, 1e-9):.1f} tokens/s; finished by {reasons}; "
        f"model loaded in {loaded - started:.1f} s)",
        file=sys.stderr,
    )
    return 0
