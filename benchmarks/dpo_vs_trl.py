"""DPO: `jalm dpo` against TRL's `DPOTrainer` - first-step agreement, pairs per second, peak memory.

Same base model (a GPT-NeoX of the `tiny` preset with the seed's small_init weights and an 8,000-piece
tokenizer trained on the bundled text, saved as a Hugging Face directory with LINE's chat template in its
tokenizer_config.json), same pairs (the first `--pairs` of data/dpo/demo.jsonl.zst, already in TRL's
conversational prompt/chosen/rejected format, written out as plain JSONL), tokenized once by jalm (the
chat template per segment: prompt, then each reply with its `</s>`), in the SAME ORDER: TRL gets jalm's
token ids as its own pre-tokenized columns (`prompt_ids`, `chosen_ids`, `rejected_ids`, the columns its
`DataCollatorForPreference` reads) laid out in the order of jalm's micro-batches and read with
`train_sampling_strategy="sequential"`, so step i of each side trains on the same pairs. TRL 1.16 always
re-tokenizes a text dataset, so the subclass skips `_prepare_dataset` for the already-tokenized one; how
TRL's own tokenization of the same pairs compares with jalm's ids is measured separately and printed
(`--check-ids`, on by default). Same micro-batch (`--micro` pairs, no gradient accumulation), sigmoid DPO
with the same β, the same optimizer (AdamW β = (0.9, 0.95), ε 1e-8, no weight decay, clipping at 1.0,
constant LR, no warm-up), dtype and thread count.

Agreement: at step 1 the policy equals the reference, so both losses are log 2 by construction; what is
compared is (a) the step-1 mean summed log-probabilities of the chosen and rejected replies (the forward
pass over the same ids) and (b) the losses of steps 2..k, after identical updates (the backward pass and
the optimizer). In float32 they must agree to 1e-4.

Configurations (each a fresh subprocess, every round, in alternating order):
- `jalm-fp32`: float32, eager - also jalm's default on a CPU without AVX512-BF16 (dtype "auto" picks
  float32 there; on a CPU with it, "auto" is bf16 autocast).
- `jalm-fast`: dtype "auto" plus `compile=True` (the model and the DPO loss compiled together).
- `trl-fp32`: `DPOConfig(bf16=False, gradient_checkpointing=False)`: a loaded reference model, whose
  forward runs every step.
- `trl-default`: TRL's own defaults (bf16 autocast, gradient checkpointing on, a loaded reference model);
  on a CPU without AVX512-BF16 it is ~20x slower than float32, so it runs only `--default-steps` steps and
  its ratio is taken over the steps both sides ran.
- `trl-fast`: float32, no gradient checkpointing, `precompute_ref_log_probs=True` (reference log-probs
  computed in a pass before training, no reference model kept). `padding_free` is disabled in TRL 1.16
  ("temporarily unavailable after a refactor"), so it is not an option here.

Speed: pairs/s = micro / the median step time over the timed steps (the first `--warmup` left out); step i
is the same batch on both sides. The reference pass before training (jalm always, TRL with precompute) is
not in the step time; its seconds are printed apart. Memory: peak RSS (VmHWM) of each child, and the peak
above the RSS the process had after its imports, before the model was loaded.

    .venv/bin/pip install trl==1.16.0
    nice -n 19 .venv/bin/python benchmarks/dpo_vs_trl.py --rounds 2 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
DEMO_DPO = ROOT / "data" / "dpo" / "demo.jsonl.zst"

JALM_CONFIGS = {
    "jalm-fp32": {"dtype": "float32", "compile": False},
    "jalm-fast": {"dtype": "auto", "compile": True},
}
TRL_CONFIGS = {
    "trl-fp32": {"bf16": False, "gradient_checkpointing": False, "precompute_ref_log_probs": False},
    "trl-default": {},
    "trl-fast": {"bf16": False, "gradient_checkpointing": False, "precompute_ref_log_probs": True},
}
PAIRS = [
    ("jalm-fp32", "trl-fp32", "float32, eager, each side's reference as it keeps it"),
    ("jalm-fp32", "trl-default", "each side's defaults on this CPU"),
    ("best jalm", "best TRL", "each side's fastest setting"),
]


def rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


# --- set-up ---------------------------------------------------------------------------------------------


def prepare_base(work: Path, preset: str, vocab: int) -> Path:
    """sft_throughput's base, plus LINE's chat template in tokenizer_config.json (read by both sides)."""
    from jalm.chat_template import LINE_CHAT_TEMPLATE
    from sft_throughput import prepare_base as sft_base

    base = sft_base(work, preset, vocab)
    path = base / "tokenizer_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    if config.get("chat_template") != LINE_CHAT_TEMPLATE:
        config["chat_template"] = LINE_CHAT_TEMPLATE
        config["split_special_tokens"] = False
        path.write_text(json.dumps(config, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return base


def prepare_data(work: Path, n: int) -> Path:
    """The first n demo pairs in TRL's conversational format (prompt messages, one assistant reply each)."""
    import zstandard

    path = work / f"dpo-{n}.jsonl"
    if path.exists():
        return path
    if not DEMO_DPO.exists():
        raise SystemExit(f"{DEMO_DPO}: missing (build it with scripts/make_dpo_demo_data.py)")
    with open(DEMO_DPO, "rb") as raw:
        lines = zstandard.ZstdDecompressor().stream_reader(raw).read().decode("utf-8").splitlines()
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as out:
        for line in lines[:n]:
            record = json.loads(line)
            keep = {k: record[k] for k in ("prompt", "chosen", "rejected")}
            out.write(json.dumps(keep, ensure_ascii=False) + "\n")
    tmp.rename(path)
    return path


def jalm_examples_and_plan(base: Path, data: Path, seq_len: int, micro: int, seed: int = 0):
    """What `jalm dpo` builds for this file (val_fraction 0, no decontamination): examples, epoch 0's plan."""
    from jalm.dpo.dataset import tokenize_pairs
    from jalm.dpo.records import read_pairs
    from jalm.dpo.train import DpoOptions, model_template
    from jalm.sft.dataset import EpochStream, load_encoder

    pairs, _ = read_pairs([data])
    template = model_template(DpoOptions(model=str(base), data=[str(data)]), str(base))
    examples, stats = tokenize_pairs(pairs, load_encoder(base), seq_len, template)
    stream = EpochStream(examples, seq_len, micro, "padded", seed)
    return examples, stream.plan(0), stats


def check_ids(base: Path, data: Path, seq_len: int) -> dict:
    """TRL's own tokenization of the same pairs (its `_prepare_dataset` path: apply_chat_template on the
    whole conversation, the prompt cut where the ids diverge) against jalm's per-segment ids."""
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    examples, _, _ = jalm_examples_and_plan(base, data, seq_len, 1)
    records = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines()]
    tokenizer = AutoTokenizer.from_pretrained(base)
    config = DPOConfig(output_dir=tempfile.mkdtemp(prefix="bench-trl-"), report_to="none", use_cpu=True)
    prepared = DPOTrainer._prepare_dataset(
        _Shim(tokenizer), Dataset.from_list(records), tokenizer, config, "check"
    )
    same = {"prompt": 0, "chosen": 0, "rejected": 0, "all": 0}
    first_diff = None
    for ours, theirs in zip(examples, prepared):
        parts = {
            "prompt": (ours.prompt.tolist(), theirs["prompt_ids"]),
            "chosen": (ours.chosen.tolist(), theirs["chosen_ids"]),
            "rejected": (ours.rejected.tolist(), theirs["rejected_ids"]),
        }
        equal = {k: a == b for k, (a, b) in parts.items()}
        for k, v in equal.items():
            same[k] += v
        same["all"] += all(equal.values())
        if not all(equal.values()) and first_diff is None:
            k = next(k for k, v in equal.items() if not v)
            a, b = parts[k]
            first_diff = {
                "part": k,
                "jalm": tokenizer.decode(a[-12:]) if k == "prompt" else tokenizer.decode(a[:12]),
                "trl": tokenizer.decode(b[-12:]) if k == "prompt" else tokenizer.decode(b[:12]),
                "jalm_ids": a[-12:] if k == "prompt" else a[:12],
                "trl_ids": b[-12:] if k == "prompt" else b[:12],
            }
    shutil.rmtree(config.output_dir, ignore_errors=True)
    return {"pairs": len(examples), "identical": same, "first_difference": first_diff}


class _Shim:
    """The attribute `_prepare_dataset` reads from its trainer, without building one."""

    def __init__(self, tokenizer):
        self._tokenizer = tokenizer


# --- the children ---------------------------------------------------------------------------------------


def child_jalm(args, base: Path, data: Path, name: str) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    from jalm.dpo.config import dpo_config
    from jalm.dpo.train import DpoOptions, dpo
    from jalm.train.metrics import read_metrics

    baseline = rss_kib("VmRSS")
    options = DpoOptions(
        model=str(base), data=[str(data)], val_fraction=0.0, decontaminate=False, beta=args.beta
    )
    cfg = dpo_config(
        lora=False,
        seq_len=args.seq_len,
        micro_batch_size=args.micro,
        grad_accum=1,
        max_steps=args.steps,
        lr=args.lr,
        warmup_steps=0,
        schedule="constant",
        weight_decay=0.0,
        log_every=1,
        save_every=0,
        seed=0,
        **JALM_CONFIGS[name],
    )
    run = Path(tempfile.mkdtemp(prefix="bench-dpo-")) / "run"
    started = time.perf_counter()
    summary = dpo(options, cfg, run, device="cpu", progress=False)
    wall = time.perf_counter() - started
    records = [r for r in read_metrics(run / "metrics.jsonl") if "tokens_per_s" in r]
    tokens = [b["tokens"] - a for a, b in zip([0] + [r["tokens"] for r in records], records)]
    seconds = [t / r["tokens_per_s"] for t, r in zip(tokens, records)]
    run_info = json.loads((run / "run.json").read_text(encoding="utf-8"))
    shutil.rmtree(run.parent, ignore_errors=True)
    return {
        "losses": [r["loss"] for r in records],
        "logp_chosen_1": records[0]["logp_chosen"],
        "logp_rejected_1": records[0]["logp_rejected"],
        "step_seconds": seconds,
        # before the first step: the reference pass, the held-out pass (empty here) and set-up
        "before_training_s": wall - summary["seconds"],
        "wall_s": wall,
        "skipped_steps": summary.get("skipped_steps"),
        "bf16": run_info["bf16"],
        "threads": torch.get_num_threads(),
        "rss_after_imports_mib": baseline / 1024,
        "peak_rss_mib": rss_kib("VmHWM") / 1024,
    }


def child_trl(args, base: Path, data: Path, name: str) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    steps = min(args.steps, args.default_steps) if name == "trl-default" else args.steps
    examples, plan, _ = jalm_examples_and_plan(base, data, args.seq_len, args.micro)
    batches = plan[:steps]
    if len(batches) < steps or any(len(b) != args.micro for b in batches):
        raise SystemExit("the epoch is too short, or has a short micro-batch, for --steps / --micro")
    order = [i for batch in batches for i in batch]
    dataset = Dataset.from_dict(
        {
            "prompt_ids": [examples[i].prompt.tolist() for i in order],
            "chosen_ids": [examples[i].chosen.tolist() for i in order],
            "rejected_ids": [examples[i].rejected.tolist() for i in order],
        }
    )
    baseline = rss_kib("VmRSS")
    started = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32, attn_implementation="sdpa")
    tokenizer = AutoTokenizer.from_pretrained(base)
    out = tempfile.mkdtemp(prefix="bench-trl-")
    config = DPOConfig(
        output_dir=out,
        max_steps=steps,
        per_device_train_batch_size=args.micro,
        gradient_accumulation_steps=1,
        learning_rate=args.lr,
        lr_scheduler_type="constant",
        warmup_steps=0,
        adam_beta1=0.9,
        adam_beta2=0.95,
        adam_epsilon=1e-8,
        weight_decay=0.0,
        max_grad_norm=1.0,
        beta=args.beta,
        loss_type=["sigmoid"],
        max_length=args.seq_len + 1,
        train_sampling_strategy="sequential",
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        seed=0,
        **TRL_CONFIGS[name],
    )
    times: list[float] = []
    records: list[dict] = []

    class StepClock(TrainerCallback):
        def on_train_begin(self, *a, **k):
            times.append(time.perf_counter())

        def on_step_end(self, *a, **k):
            times.append(time.perf_counter())

        def on_log(self, args, state, control, logs=None, **k):
            if logs and "loss" in logs:
                records.append(dict(logs))

    expected = [examples[i] for i in batches[0]]

    class Pretokenized(DPOTrainer):
        checked = False

        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            return dataset  # already jalm's ids, in jalm's order

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if not Pretokenized.checked and model.training:  # the first batch is jalm's, row for row
                rows = inputs["input_ids"].cpu()
                for r, example in enumerate(expected):
                    chosen = example.prompt.tolist() + example.chosen.tolist()
                    assert rows[r, : len(chosen)].tolist() == chosen, "TRL's first batch is not jalm's"
                Pretokenized.checked = True
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    trainer = Pretokenized(
        model=model, args=config, train_dataset=dataset, processing_class=tokenizer, callbacks=[StepClock()]
    )
    trainer.train()
    wall = time.perf_counter() - started
    shutil.rmtree(out, ignore_errors=True)
    return {
        "losses": [round(float(r["loss"]), 5) for r in records],
        "logp_chosen_1": records[0].get("logps/chosen"),
        "logp_rejected_1": records[0].get("logps/rejected"),
        "step_seconds": [b - a for a, b in zip(times, times[1:])],
        "before_training_s": wall - (times[-1] - times[0]),
        "wall_s": wall,
        "ref_model_loaded": trainer.ref_model is not None,
        "bf16": bool(config.bf16),
        "gradient_checkpointing": bool(config.gradient_checkpointing),
        "optim": str(config.optim),
        "threads": torch.get_num_threads(),
        "rss_after_imports_mib": baseline / 1024,
        "peak_rss_mib": rss_kib("VmHWM") / 1024,
    }


# --- the parent -----------------------------------------------------------------------------------------


def pairs_per_s(runs: list[dict], micro: int, warmup: int, until: int | None = None) -> float:
    """micro / the median step time over steps warmup+1..until (every step holds `micro` pairs)."""
    return micro / statistics.median(s for run in runs for s in run["step_seconds"][warmup:until])


def launch(argv: list[str], child: str) -> dict:
    command = [sys.executable, __file__, *argv, "--child", child]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        return {"failed": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "?"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def conditions_text(args) -> str:
    import platform

    import torch
    import transformers
    import trl

    cpu = platform.processor() or "?"
    for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
        if line.startswith("Model name:"):
            cpu = line.split(":", 1)[1].strip()
    return (
        f"CPU {cpu}, {os.cpu_count()} cores shared, load average {os.getloadavg()[0]:.1f}; torch "
        f"{torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}; "
        f"{args.threads} torch thread(s); AVX512-BF16 {torch.cpu._is_avx512_bf16_supported()}, "
        f"AMX {torch.cpu._is_amx_tile_supported()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )


def main_parent(args, argv, base: Path, data: Path) -> dict:
    summary: dict = {}
    examples, plan, stats = jalm_examples_and_plan(base, data, args.seq_len, args.micro)
    print(
        f"{len(examples)} pairs ({stats.truncated} truncated, {stats.too_long} too long), "
        f"{len(plan)} micro-batches of {args.micro}; {args.steps} steps",
        file=sys.stderr,
    )
    if args.check_ids:
        summary["ids"] = check_ids(base, data, args.seq_len)
        print(f"token ids, TRL's tokenization vs jalm's: {json.dumps(summary['ids'], ensure_ascii=False)}")
    names = [n for n in list(JALM_CONFIGS) + list(TRL_CONFIGS) if not args.only or n in args.only]
    results: dict[str, list[dict]] = {n: [] for n in names}
    for round_index in range(args.rounds):
        order = [n for n in ("jalm-fp32", "trl-fp32", "jalm-fast", "trl-fast", "trl-default") if n in names]
        if round_index % 2:
            order.reverse()
        for name in order:
            started = time.perf_counter()
            results[name].append(launch(argv, name))
            print(
                f"round {round_index + 1}: {name} done in {time.perf_counter() - started:.0f} s",
                file=sys.stderr,
            )
    ok = {n: [r for r in runs if "failed" not in r] for n, runs in results.items()}
    speeds = {n: pairs_per_s(r, args.micro, args.warmup) for n, r in ok.items() if len(r) == args.rounds}
    print(f"\nconditions: {conditions_text(args)}")
    print(
        f"model {args.preset} (vocab {args.vocab}), the first {args.pairs} demo pairs, {args.micro} pairs per "
        f"step, seq_len {args.seq_len}, β {args.beta}, lr {args.lr}, {args.steps} steps ({args.warmup} "
        f"warm-up), {args.rounds} rounds\n"
    )
    print(
        f"{'config':12s} {'pairs/s':>8s} {'before-train s':>14s} {'peak RSS MiB':>12s} {'above imports':>13s}"
        "  step-1 logp c/r, losses 1..4"
    )
    for name, runs in results.items():
        failed = [r["failed"] for r in runs if "failed" in r]
        if failed:
            print(f"{name:12s} FAILED: {failed[0]}")
        if not ok[name]:
            continue
        first = ok[name][0]
        before = statistics.median(r["before_training_s"] for r in ok[name])
        peak = statistics.median(r["peak_rss_mib"] for r in ok[name])
        above = statistics.median(r["peak_rss_mib"] - r["rss_after_imports_mib"] for r in ok[name])
        print(
            f"{name:12s} {speeds.get(name, float('nan')):8.2f} {before:14.1f} {peak:12.0f} {above:13.0f}  "
            f"{first['logp_chosen_1']:.4f}/{first['logp_rejected_1']:.4f}, "
            + ", ".join(f"{x:.5f}" for x in first["losses"][:4])
        )
    summary["pairs_per_s"] = speeds
    summary["ratios"] = {}
    best_jalm = max((n for n in JALM_CONFIGS if n in speeds), key=lambda n: speeds[n], default=None)
    best_trl = max((n for n in TRL_CONFIGS if n in speeds), key=lambda n: speeds[n], default=None)
    print()
    for jalm_name, trl_name, what in PAIRS:
        jalm_name = best_jalm if jalm_name == "best jalm" else jalm_name
        trl_name = best_trl if trl_name == "best TRL" else trl_name
        if jalm_name not in speeds or trl_name not in speeds:
            continue
        # over the steps both ran (trl-default runs fewer): the same batches on both sides
        until = min(len(ok[jalm_name][0]["step_seconds"]), len(ok[trl_name][0]["step_seconds"]))
        per_round = [
            pairs_per_s([j], args.micro, args.warmup, until)
            / pairs_per_s([t], args.micro, args.warmup, until)
            for j, t in zip(ok[jalm_name], ok[trl_name])
        ]
        ratio = statistics.median(per_round)
        summary["ratios"][f"{jalm_name} / {trl_name}"] = {
            "what": what,
            "median": ratio,
            "per_round": per_round,
            "steps": f"{args.warmup + 1}..{until}",
        }
        print(
            f"{jalm_name} / {trl_name} ({what}), steps {args.warmup + 1}..{until}: median ratio {ratio:.2f}x; "
            "per round " + ", ".join(f"{r:.2f}" for r in per_round)
        )
    if ok.get("jalm-fp32") and ok.get("trl-fp32"):
        j, t = ok["jalm-fp32"][0], ok["trl-fp32"][0]
        gaps = {
            "step-1 loss": abs(j["losses"][0] - t["losses"][0]),
            "step-1 logp chosen": abs(j["logp_chosen_1"] - t["logp_chosen_1"]),
            "step-1 logp rejected": abs(j["logp_rejected_1"] - t["logp_rejected_1"]),
            "losses 2..k": max(abs(a - b) for a, b in zip(j["losses"][1:], t["losses"][1:])),
        }
        summary["float32_gaps"] = gaps
        verdict = "OK" if max(gaps.values()) <= 1e-4 else "FAILED"
        print(
            "equal-work check (float32): "
            + ", ".join(f"{k} gap {v:.1e}" for k, v in gaps.items())
            + f" -> {verdict} (tolerance 1e-4)"
        )
    summary["runs"] = results
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--pairs", type=int, default=160, help="the first N demo pairs")
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--micro", type=int, default=8, help="pairs per step")
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=4, help="first steps of each run left out of timing")
    parser.add_argument(
        "--default-steps", type=int, default=5, help="steps of trl-default (bf16 on a CPU without it: slow)"
    )
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", nargs="*", help="run only these configurations")
    parser.add_argument("--no-check-ids", dest="check_ids", action="store_false")
    parser.add_argument("--work", default=str(ROOT / "runs" / "bench-dpo"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    base = prepare_base(work, args.preset, args.vocab)
    data = prepare_data(work, args.pairs)
    if args.child:
        child = child_jalm if args.child in JALM_CONFIGS else child_trl
        print(json.dumps(child(args, base, data, args.child)))
        return 0
    summary = main_parent(args, sys.argv[1:], base, data)
    summary["args"] = vars(args)
    (work / "result.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
