"""What streaming costs: jalm's `complete()` (incremental decoding of every sequence, stop-string checks, a
callback per delta) against a bare `model.generate` call making the same tokens, side by side.

    python benchmarks/generate_streaming.py --model runs/demo/model [--threads 1]

Both runs use the same seed and sampling arguments, so they make the same tokens (checked); the ratio is
bare time / streaming time (1.0 = streaming is free). Results go to benchmarks/README.md by hand.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", default="runs/demo/model", help="model directory (default runs/demo/model)"
    )
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1 is steadiest on a shared CPU)"
    )
    args = parser.parse_args()
    if not (Path(args.model) / "config.json").exists():
        print(f"{args.model}: no model directory; run `jalm demo` first or pass --model", file=sys.stderr)
        return 2

    import torch
    from transformers import set_seed

    from jalm.generate import PROMPT, Sampling, complete, encode_prompt, load

    torch.set_num_threads(args.threads)
    model, tokenizer = load(args.model)
    ids = encode_prompt(tokenizer, PROMPT)
    print(
        f"model {args.model}, {sum(p.numel() for p in model.parameters()):,} parameters, "
        f"{args.new_tokens} new tokens, {torch.get_num_threads()} threads"
    )
    print("| sequences | bare generate (tokens/s) | jalm streaming (tokens/s) | ratio bare/stream |")
    print("|---|---|---|---|")
    for n in (1, 5):
        bare, stream = [], []
        for r in range(args.repeats):
            # min_new_tokens keeps both runs at exactly the same length (no early end-of-text).
            kwargs = dict(
                do_sample=True,
                temperature=0.7,
                num_return_sequences=n,
                max_new_tokens=args.new_tokens,
                min_new_tokens=args.new_tokens,
                pad_token_id=tokenizer.pad_token_id,
            )
            set_seed(r)
            start = time.perf_counter()
            with torch.inference_mode():
                out = model.generate(
                    torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long), **kwargs
                )
            bare.append(time.perf_counter() - start)
            deltas = []
            start = time.perf_counter()
            sampling = Sampling(
                max_new_tokens=args.new_tokens,
                do_sample=True,
                temperature=0.7,
                num_return_sequences=n,
                seed=r,
            )
            model.generation_config.min_new_tokens = args.new_tokens
            results = complete(
                model, tokenizer, ids, sampling, on_text=lambda i, d, out=deltas: out.append(d)
            )
            model.generation_config.min_new_tokens = None
            stream.append(time.perf_counter() - start)
            expected = [tokenizer.decode(seq[len(ids) :], skip_special_tokens=True) for seq in out]
            assert [x.text for x in results] == expected, "bare and streaming runs made different tokens"
        tokens = n * args.new_tokens
        b, s = statistics.median(bare), statistics.median(stream)
        print(f"| {n} | {tokens / b:,.0f} | {tokens / s:,.0f} | {b / s:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
