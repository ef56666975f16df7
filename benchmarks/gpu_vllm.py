"""A jalm export served by vLLM: does it load, and are its greedy outputs transformers'? One command on a GPU.

    pip install vllm   # on the GPU machine; not a jalm dependency
    python benchmarks/gpu_vllm.py --model runs/demo/model [--dtype float32|bfloat16] [--max-tokens 32]

Steps: `jalm export --check vllm`'s findings (errors stop the run); transformers' greedy continuation of
each prompt, one prompt at a time, on the GPU; vLLM's greedy continuations of all prompts in one batch
(`temperature=0`, `--generation-config vllm` semantics so generation_config.json cannot turn sampling on);
then, per prompt, whether the token ids are identical and where they first differ, and each side's
tokens/s. In float32 both sides should agree token for token; in bf16, different kernels may flip a
near-tie, so the first differing position is reported rather than hidden. It cannot run on a CPU-only
machine (vLLM's CPU backend is built from source).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

PROMPTS = [
    "日本の首都は",
    "吾輩は猫である。名前は",
    "機械学習とは、",
    "今日はとても良い天気なので、",
    "富士山の高さは",
    "東京から大阪までは新幹線で",
    "おはようございます、今日の天気は",
    "プログラミング言語Pythonは",
]


def transformers_greedy(
    model_dir: str, prompts: list[str], max_tokens: int, dtype: str
) -> tuple[list, float]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype)).cuda().eval()
    outputs, tokens, start = [], 0, time.perf_counter()
    for prompt in prompts:
        ids = tokenizer(prompt, return_tensors="pt").input_ids.cuda()
        with torch.no_grad():
            out = model.generate(
                ids,
                max_new_tokens=max_tokens,
                do_sample=False,
                eos_token_id=2,
                pad_token_id=tokenizer.pad_token_id,
            )
        new = out[0, ids.shape[1] :].tolist()
        outputs.append({"prompt_ids": ids[0].tolist(), "ids": new})
        tokens += len(new)
    torch.cuda.synchronize()
    return outputs, tokens / (time.perf_counter() - start)


def vllm_greedy(model_dir: str, prompts: list[str], max_tokens: int, dtype: str) -> tuple[list, float]:
    from vllm import LLM, SamplingParams

    llm = LLM(model=model_dir, dtype=dtype, generation_config="vllm", enforce_eager=False)
    params = SamplingParams(temperature=0.0, max_tokens=max_tokens, stop_token_ids=[2])
    start = time.perf_counter()
    results = llm.generate(prompts, params)
    seconds = time.perf_counter() - start
    outputs = [{"prompt_ids": list(r.prompt_token_ids), "ids": list(r.outputs[0].token_ids)} for r in results]
    return outputs, sum(len(o["ids"]) for o in outputs) / seconds


def first_difference(a: list[int], b: list[int]) -> int | None:
    for index, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return index
    return None if len(a) == len(b) else min(len(a), len(b))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="a jalm export (Hugging Face model directory)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--max-tokens", type=int, default=32)
    args = parser.parse_args()

    from jalm.export.vllm_check import check_vllm

    findings = check_vllm(args.model)
    for finding in findings:
        print(f"check: {finding.level}: {finding.message}")
    if any(f.level == "error" for f in findings):
        return 1
    hf, hf_speed = transformers_greedy(args.model, PROMPTS, args.max_tokens, args.dtype)
    vl, vl_speed = vllm_greedy(args.model, PROMPTS, args.max_tokens, args.dtype)
    rows = []
    for prompt, a, b in zip(PROMPTS, hf, vl):
        rows.append(
            {
                "prompt": prompt,
                "same_prompt_ids": a["prompt_ids"] == b["prompt_ids"],
                "identical": a["ids"] == b["ids"],
                "first_difference": first_difference(a["ids"], b["ids"]),
                "tokens": [len(a["ids"]), len(b["ids"])],
            }
        )
        print(json.dumps(rows[-1], ensure_ascii=False))
    import torch
    import vllm

    summary = {
        "device": torch.cuda.get_device_name(),
        "date": time.strftime("%Y-%m-%d"),
        "vllm": vllm.__version__,
        "torch": torch.__version__,
        "dtype": args.dtype,
        "prompts": len(rows),
        "identical": sum(r["identical"] for r in rows),
        "prompt_ids_equal": sum(r["same_prompt_ids"] for r in rows),
        "transformers_tokens_per_s_sequential": round(hf_speed),
        "vllm_tokens_per_s_batched": round(vl_speed),
    }
    print(json.dumps(summary))
    return 0 if summary["identical"] == len(rows) else 2


if __name__ == "__main__":
    sys.exit(main())
