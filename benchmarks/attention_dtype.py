"""PyTorch's CPU flash attention in bf16 vs float32, forward + backward, measured alternately.

The figure behind `jalm.model.attention`: on a CPU without AMX, bf16 attention is slower than float32,
so bf16 training keeps the attention kernel in float32. Shapes are the `tiny` preset's at batch 16.

    .venv/bin/python benchmarks/attention_dtype.py
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=511)
    parser.add_argument("--head-dim", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    shape = (args.batch, args.heads, args.seq_len, args.head_dim)
    dtypes = (torch.float32, torch.bfloat16)
    inputs = {dt: [torch.randn(shape, dtype=dt, requires_grad=True) for _ in range(3)] for dt in dtypes}
    seconds = {dt: [] for dt in dtypes}
    for i in range(args.repeats + 4):
        for dt in dtypes:  # alternate, so a slow spell of a shared machine hits both
            q, k, v = inputs[dt]
            start = time.perf_counter()
            F.scaled_dot_product_attention(q, k, v, is_causal=True).sum().backward()
            if i >= 4:  # warm-up
                seconds[dt].append(time.perf_counter() - start)
    amx = torch.cpu._is_amx_tile_supported()
    print(f"shape {shape}, AMX {amx}, {torch.get_num_threads()} threads")
    for dt in dtypes:
        print(f"{str(dt):15s} median {statistics.median(seconds[dt]) * 1000:7.1f} ms forward + backward")


if __name__ == "__main__":
    main()
