"""SFT throughput: `jalm sft` against TRL's `SFTTrainer`, and padded against packed batching in jalm.

**jalm vs TRL** (`--mode trl`, the default). Same base model (a GPT-NeoX of the `tiny` preset with the
seed's small_init weights and an 8,000-piece tokenizer trained on the bundled text, saved as a Hugging
Face directory), same conversations (the bundled instruction set, data/sft/demo.jsonl.zst), tokenized
once by jalm (LINE's template, loss on the replies and their `</s>` only), in the SAME ORDER: TRL gets
jalm's token ids and its loss mask as a pre-tokenized dataset (`input_ids` + `completion_mask`, which TRL
turns into `labels` itself) laid out in the order of jalm's micro-batches and read with
`train_sampling_strategy="sequential"`, so step i of each side trains on the same conversations. Same
micro-batch (16 conversations, padded to the longest; no gradient accumulation), the same context (512),
the same optimizer (AdamW β = (0.9, 0.95), ε 1e-8, no weight decay, clipping at 1.0, constant LR 2e-5,
no warm-up), dtype and thread count. The first step's masked loss is printed for both sides: in float32
it must agree to 1e-4 (same weights, same batch, same mask), which shows both do the same work.

Configurations (each a fresh subprocess, every round, in alternating order):
- `jalm-fp32`: `sft_config(dtype="float32")`, eager. `trl-fp32`: `SFTConfig(bf16=False)`, eager.
- `jalm-default`: jalm's own defaults on this CPU (dtype "auto" = bf16 autocast on an AVX512-BF16 CPU,
  attention kept in float32 where there is no AMX, no compile, fused AdamW).
- `jalm-fast`: the same plus `compile=True` (model and masked loss compiled as one graph).
- `trl-bf16`: TRL's own defaults (bf16 autocast; its chunked "fused LM head" loss; `adamw_torch_fused`)
  except `gradient_checkpointing=False` (TRL turns it on by default: ~20 % slower for memory jalm does not
  spend either), β2 0.95 and the constant LR above.
- `trl-bf16-compile`: the same plus `torch_compile=True` (transformers' Trainer option).

Tokens are the real tokens of a step (each conversation's positions, no padding; TRL reads one more
position per conversation, the last token, whose prediction has no target, and pads to the longest row
instead of jalm's multiple of 8 - both counted as padding, not as tokens). Speed = 1 / median over the
timed steps of (step seconds / step tokens), since padded steps differ in length; step i is the same batch
on both sides. Ratios per round and the median over rounds.

**Padded vs packed** (`--mode packing`): jalm alone, `batching="padded"` (16 conversations per
micro-batch) against `batching="packed"` (rows of `--seq-len` positions, `--packed-rows` rows per
micro-batch), over the same conversations: one epoch of the same file each, so both train on the same
tokens. Reports tokens/s and the padding fraction of each.

    .venv/bin/pip install trl==1.16.0
    .venv/bin/python benchmarks/sft_throughput.py --rounds 3 --threads 1
    .venv/bin/python benchmarks/sft_throughput.py --mode packing --rounds 3 --threads 1 --warmup 10
    .venv/bin/python benchmarks/sft_throughput.py --profile trl-bf16 --steps 20 --warmup 8   # where time goes
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
DEMO_SFT = ROOT / "data" / "sft" / "demo.jsonl.zst"
IGNORE = -100

JALM_CONFIGS = {
    "jalm-fp32": {"dtype": "float32", "compile": False},
    "jalm-default": {"dtype": "auto", "compile": False},
    "jalm-fast": {"dtype": "auto", "compile": True},
}
TRL_CONFIGS = {
    "trl-fp32": {"bf16": False, "torch_compile": False},
    "trl-bf16": {"bf16": True, "torch_compile": False},
    "trl-bf16-compile": {"bf16": True, "torch_compile": True},
}
# The pairs reported as ratios (jalm, TRL).
PAIRS = [
    ("jalm-fp32", "trl-fp32", "float32, eager (the equal-loss check)"),
    ("jalm-default", "trl-bf16", "each side's defaults on this CPU"),
    ("jalm-fast", "best TRL", "jalm bf16 + compile vs TRL's faster configuration"),
]


# --- set-up: tokenizer, base model, data ----------------------------------------------------------------


def prepare_tokenizer(work: Path, vocab: int) -> Path:
    from jalm.resources import bundled
    from jalm.tokenizer import train_tokenizer

    tokenizer = work / f"tokenizer-{vocab}"
    if not (tokenizer / "spiece.model").exists():
        corpus = [bundled("corpus/wiki_jaquad.jsonl.zst"), bundled("corpus/aozora.jsonl.zst")]
        train_tokenizer(corpus, tokenizer, vocab_size=vocab, max_sentences=40_000, progress=False)
    return tokenizer


def prepare_base(work: Path, preset_name: str, vocab: int) -> Path:
    """A Hugging Face directory: the preset with the seed's small_init weights and the tokenizer."""
    base = work / f"base-{preset_name}-{vocab}"
    if (base / "model.safetensors").exists():
        return base
    import torch

    from jalm.model import build_model, get_preset, hf_config
    from jalm.model.build import portable_config_dict
    from jalm.model.init import init_weights
    from jalm.tokenizer import write_hf_tokenizer_files

    tokenizer = prepare_tokenizer(work, vocab)
    preset = get_preset(preset_name)
    config = hf_config(preset, vocab)
    model = build_model(config)
    init_weights(
        model, preset.hidden, preset.layers, "small_init", generator=torch.Generator().manual_seed(0)
    )
    tmp = base.with_name(base.name + ".tmp")
    model.save_pretrained(tmp, safe_serialization=True)
    (tmp / "config.json").write_text(
        json.dumps(portable_config_dict(config), indent=2) + "\n", encoding="utf-8"
    )
    write_hf_tokenizer_files(tokenizer / "spiece.model", tmp, model_max_length=preset.max_positions)
    tmp.rename(base)
    return base


def prepare_data(work: Path, base: Path, seq_len: int, multiple: int = 64, limit: int | None = None) -> Path:
    """The demo conversations that jalm keeps at `seq_len` (none is too long for it at 512), as plain JSONL,
    cut to a multiple of `multiple` so every padded micro-batch of the epoch is full (TRL's sequential
    batches then line up with jalm's micro-batches)."""
    from jalm.sft.dataset import load_encoder, tokenize
    from jalm.sft.records import read_conversations

    path = work / f"sft-{seq_len}-{limit or 'all'}.jsonl"
    if path.exists():
        return path
    if not DEMO_SFT.exists():
        raise SystemExit(f"{DEMO_SFT}: missing (build it with scripts/make_sft_demo_data.py)")
    conversations, _ = read_conversations([DEMO_SFT])
    examples, _ = tokenize(conversations, load_encoder(base), seq_len)
    kept = {e.source for e in examples}
    conversations = [c for c in conversations if c.source in kept]
    if limit:
        conversations = conversations[:limit]
    conversations = conversations[: len(conversations) // multiple * multiple]
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as out:
        for conversation in conversations:
            out.write(json.dumps({"messages": conversation.messages}, ensure_ascii=False) + "\n")
    tmp.rename(path)
    return path


def jalm_examples_and_plan(base: Path, data: Path, seq_len: int, micro: int, batching: str, seed: int = 0):
    """Exactly what `jalm sft` builds for this file (val_fraction 0, no decontamination): examples, epoch 0."""
    from jalm.sft.dataset import EpochStream, load_encoder, tokenize
    from jalm.sft.records import read_conversations

    conversations, _ = read_conversations([data])
    examples, _ = tokenize(conversations, load_encoder(base), seq_len)
    stream = EpochStream(examples, seq_len, micro, batching, seed)
    return examples, stream.plan(0)


def batch_shapes(base: Path, data: Path, args, batching: str) -> dict:
    """What a dense attention kernel computes per real token: rows × width² query-key scores (a padding or
    block-diagonal mask does not shrink the tensor), against the causal scores within conversations."""
    micro = args.packed_rows if batching == "packed" else args.micro
    examples, plan = jalm_examples_and_plan(base, data, args.seq_len, micro, batching)
    rows = widths = scores = 0
    for batch in plan:
        lengths = (
            [sum(examples[i].positions for i in row) for row in batch]
            if batching == "packed"
            else [examples[i].positions for i in batch]
        )
        width = -(-max(lengths) // 8) * 8
        rows, widths, scores = rows + len(batch), widths + len(batch) * width, scores + len(batch) * width**2
    tokens = sum(e.positions for e in examples)
    needed = sum(e.positions * (e.positions + 1) / 2 for e in examples)
    return {
        "mean_width": widths / rows,
        "scores_per_token": scores / tokens,
        "needed_scores_per_token": needed / tokens,
    }


# --- the children ---------------------------------------------------------------------------------------


def child_jalm(
    args,
    base: Path,
    data: Path,
    name: str,
    batching: str = "padded",
    micro: int | None = None,
    steps: int | None = None,
) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    from jalm.sft.train import SftOptions, sft, sft_config
    from jalm.train.metrics import read_metrics

    settings = JALM_CONFIGS[name]
    options = SftOptions(
        model=str(base), data=[str(data)], val_fraction=0.0, decontaminate=False, batching=batching
    )
    cfg = sft_config(
        lora=False,
        seq_len=args.seq_len,
        micro_batch_size=micro or args.micro,
        grad_accum=1,
        max_steps=steps or args.steps,
        lr=args.lr,
        warmup_steps=0,
        schedule="constant",
        log_every=1,
        save_every=0,
        seed=0,
        **settings,
    )
    run = Path(tempfile.mkdtemp(prefix="bench-sft-")) / "run"
    summary = sft(options, cfg, run, device="cpu", progress=False)
    records = [r for r in read_metrics(run / "metrics.jsonl") if "tokens_per_s" in r]
    tokens = [b["tokens"] - a for a, b in zip([0] + [r["tokens"] for r in records], records)]
    seconds = [t / r["tokens_per_s"] for t, r in zip(tokens, records)]
    stats = json.loads((run / "sft_stats.json").read_text(encoding="utf-8"))
    run_info = json.loads((run / "run.json").read_text(encoding="utf-8"))
    shutil.rmtree(run.parent, ignore_errors=True)  # the final checkpoint is not needed
    return {
        "losses": [r["loss"] for r in records],
        "step_tokens": tokens,
        "step_seconds": seconds,
        "skipped_steps": summary.get("skipped_steps"),
        "padding_fraction": stats["batching"]["padding_fraction"],
        "bf16": run_info["bf16"],
        "attention": run_info["attention"],
        "threads": torch.get_num_threads(),
    }


def child_trl(args, base: Path, data: Path, name: str, on_step=None) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    settings = TRL_CONFIGS[name]
    examples, plan = jalm_examples_and_plan(base, data, args.seq_len, args.micro, "padded")
    batches = plan[: args.steps]
    if len(batches) < args.steps or any(len(b) != args.micro for b in batches):
        raise SystemExit("the epoch is too short, or has a short micro-batch, for --steps / --micro")
    order = [i for batch in batches for i in batch]
    # TRL's layout: the whole conversation as input_ids; completion_mask[j] = 1 where token j is a target.
    # jalm's labels[i] is the target of position i, i.e. of token i + 1.
    dataset = Dataset.from_dict(
        {
            "input_ids": [examples[i].ids.tolist() for i in order],
            "completion_mask": [[0] + (examples[i].labels != IGNORE).astype(int).tolist() for i in order],
        }
    )
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32, attn_implementation="sdpa")
    tokenizer = AutoTokenizer.from_pretrained(base)
    out = tempfile.mkdtemp(prefix="bench-trl-")
    config = SFTConfig(
        output_dir=out,
        max_steps=args.steps,
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
        gradient_checkpointing=False,
        completion_only_loss=True,
        max_length=args.seq_len + 1,
        train_sampling_strategy="sequential",
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        seed=0,
        **settings,
    )

    times: list[float] = []

    class StepClock(TrainerCallback):
        def on_train_begin(self, *a, **k):
            times.append(time.perf_counter())

        def on_step_end(self, *a, **k):
            times.append(time.perf_counter())
            if on_step is not None:
                on_step()

    expected = [examples[i].ids for i in batches[0]]

    class Recording(SFTTrainer):
        recorded: list = []

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            if not self.recorded:  # the first batch is jalm's first micro-batch, row for row
                rows = inputs["input_ids"].cpu()
                for row, ids in zip(rows, expected):
                    assert row[: len(ids)].tolist() == ids.tolist(), "TRL's first batch is not jalm's"
            self.recorded.append(loss.detach())
            return loss

    trainer = Recording(
        model=model, args=config, train_dataset=dataset, processing_class=tokenizer, callbacks=[StepClock()]
    )
    trainer.train()
    shutil.rmtree(out, ignore_errors=True)
    step_tokens = [sum(examples[i].positions for i in batch) for batch in batches]
    return {
        "losses": [round(float(x), 5) for x in Recording.recorded],
        "step_tokens": step_tokens,
        "step_seconds": [b - a for a, b in zip(times, times[1:])],
        "bf16": bool(config.bf16),
        "optim": str(config.optim),
        "threads": torch.get_num_threads(),
    }


def child_profile(args, base: Path, data: Path, name: str) -> None:
    """One configuration under torch.profiler: the timed steps' operators by self CPU time."""
    from torch.profiler import ProfilerActivity, profile, schedule

    active = args.steps - args.warmup
    prof = profile(
        activities=[ProfilerActivity.CPU], schedule=schedule(wait=args.warmup - 1, warmup=1, active=active)
    )
    prof.start()
    if name in JALM_CONFIGS:
        from jalm.train.trainer import Trainer

        original = Trainer.train_step

        def train_step(self):
            result = original(self)
            prof.step()
            return result

        Trainer.train_step = train_step  # a hook for the profiler's step count; the step itself is jalm's
        result = child_jalm(args, base, data, name)
    else:
        result = child_trl(args, base, data, name, on_step=prof.step)
    prof.stop()
    seconds = sum(result["step_seconds"][args.warmup :])
    print(f"{name}: {active} profiled steps, {seconds:.1f} s")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.profile_rows))


# --- the parent -----------------------------------------------------------------------------------------


def speed(runs: list[dict], warmup: int) -> float:
    """Tokens/s: 1 / the median over timed steps of seconds per token."""
    per_token = [
        s / t for run in runs for s, t in zip(run["step_seconds"][warmup:], run["step_tokens"][warmup:])
    ]
    return 1.0 / statistics.median(per_token)


def launch(argv: list[str], child: str) -> dict:
    command = [sys.executable, __file__, *argv, "--child", child]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-6000:])
        raise SystemExit(f"child {child} failed ({done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def conditions_text(args) -> str:
    import platform

    import torch

    cpu = platform.processor() or "?"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                cpu = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return (
        f"CPU {cpu}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; torch {torch.__version__}, "
        f"{args.threads} torch thread(s); AVX512-BF16 {torch.cpu._is_avx512_bf16_supported()}, "
        f"AMX {torch.cpu._is_amx_tile_supported()}"
    )


def main_trl(args, argv) -> dict:
    import trl

    names = list(JALM_CONFIGS) + list(TRL_CONFIGS)
    if args.only:
        names = [n for n in names if n in args.only]
    results: dict[str, list[dict]] = {n: [] for n in names}
    for round_index in range(args.rounds):
        # Alternate jalm/TRL, and reverse the whole order every other round, so load falls on both.
        order = [n for pair in zip(list(JALM_CONFIGS), list(TRL_CONFIGS)) for n in pair if n in names]
        if round_index % 2:
            order.reverse()
        for name in order:
            started = time.perf_counter()
            results[name].append(launch(argv, name))
            print(
                f"round {round_index + 1}: {name} done in {time.perf_counter() - started:.0f} s",
                file=sys.stderr,
            )
    warm = args.warmup
    speeds = {n: speed(r, warm) for n, r in results.items() if r}
    print(f"\nconditions: {conditions_text(args)}; trl {trl.__version__}")
    print(
        f"model {args.preset}, {args.micro} conversations per step, seq_len {args.seq_len}, {args.steps} steps "
        f"({warm} warm-up), {args.rounds} rounds\n"
    )
    for name, value in speeds.items():
        first = results[name][0]["losses"][0]
        print(f"{name:18s} {value:8.0f} tokens/s   first-step masked loss {first:.5f}")
    summary: dict = {"tokens_per_s": speeds, "pairs": {}}
    trl_best = max((n for n in TRL_CONFIGS if n in speeds), key=lambda n: speeds[n], default=None)
    print()
    for jalm_name, trl_name, what in PAIRS:
        trl_name = trl_best if trl_name == "best TRL" else trl_name
        if jalm_name not in speeds or trl_name not in speeds:
            continue
        per_round = [
            speed([j], warm) / speed([t], warm) for j, t in zip(results[jalm_name], results[trl_name])
        ]
        loss_gap = abs(results[jalm_name][0]["losses"][0] - results[trl_name][0]["losses"][0])
        ratio = statistics.median(per_round)
        summary["pairs"][f"{jalm_name} / {trl_name}"] = {
            "what": what,
            "ratio_median_of_rounds": ratio,
            "ratio_pooled": speeds[jalm_name] / speeds[trl_name],
            "ratio_per_round": per_round,
            "first_step_loss_gap": loss_gap,
        }
        print(
            f"{jalm_name} / {trl_name} ({what}): median ratio {ratio:.2f}x; per round "
            + ", ".join(f"{r:.2f}" for r in per_round)
            + f"; first-step loss gap {loss_gap:.1e}"
        )
    if "jalm-fp32" in results and "trl-fp32" in results:
        gap = abs(results["jalm-fp32"][0]["losses"][0] - results["trl-fp32"][0]["losses"][0])
        print(
            f"equal-work check (float32): first-step loss gap {gap:.1e} -> {'OK' if gap <= 1e-4 else 'FAILED'}"
        )
    summary["runs"] = results
    return summary


def main_packing(args, argv) -> dict:
    results: dict[str, list[dict]] = {"padded": [], "packed": []}
    for round_index in range(args.rounds):
        order = ["padded", "packed"] if round_index % 2 == 0 else ["packed", "padded"]
        for name in order:
            results[name].append(launch(argv, f"{args.packing_config}:{name}"))
    warm = args.warmup
    print(f"\nconditions: {conditions_text(args)}")
    print(
        f"jalm {args.packing_config}, model {args.preset}, one epoch of the same {args.limit or 'all'} "
        f"conversations each; padded {args.micro} conversations per step, packed {args.packed_rows} rows of "
        f"{args.seq_len}; {args.rounds} rounds\n"
    )
    summary: dict = {"modes": {}}
    base = prepare_base(Path(args.work), args.preset, args.vocab)
    data = prepare_data(Path(args.work), base, args.seq_len, limit=args.limit)
    for name, runs in results.items():
        tokens = sum(runs[0]["step_tokens"])
        value = speed(runs, warm)
        shape = batch_shapes(base, data, args, name)
        summary["modes"][name] = {
            "tokens_per_s": value,
            "padding_fraction": runs[0]["padding_fraction"],
            "steps": len(runs[0]["step_tokens"]),
            "tokens_per_step": tokens / len(runs[0]["step_tokens"]),
            **shape,
        }
        print(
            f"{name:7s} {value:8.0f} tokens/s  padding {runs[0]['padding_fraction']:.1%}  "
            f"{len(runs[0]['step_tokens'])} steps, {tokens / len(runs[0]['step_tokens']):.0f} tokens/step, "
            f"mean width {shape['mean_width']:.0f}; attention scores per token {shape['scores_per_token']:.0f} "
            f"(within conversations, causal: {shape['needed_scores_per_token']:.0f})"
        )
    per_round = [speed([p], warm) / speed([d], warm) for p, d in zip(results["packed"], results["padded"])]
    summary["packed_over_padded_per_round"] = per_round
    summary["packed_over_padded"] = statistics.median(per_round)
    print(
        f"packed / padded: median {statistics.median(per_round):.2f}x; per round "
        + ", ".join(f"{r:.2f}" for r in per_round)
    )
    summary["runs"] = results
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mode", choices=["trl", "packing"], default="trl")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--micro", type=int, default=16, help="conversations per step (padded)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=8, help="first steps of each run left out of timing")
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", nargs="*", help="run only these configurations (--mode trl)")
    parser.add_argument("--limit", type=int, default=960, help="conversations (--mode packing)")
    parser.add_argument("--packed-rows", type=int, default=4, help="rows per packed micro-batch")
    parser.add_argument("--packing-config", choices=list(JALM_CONFIGS), default="jalm-fast")
    parser.add_argument("--work", default=str(ROOT / "runs" / "bench-sft"))
    parser.add_argument("--profile", metavar="CONFIG", help="run one configuration under torch.profiler")
    parser.add_argument("--profile-rows", type=int, default=25)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    base = prepare_base(work, args.preset, args.vocab)
    if args.mode == "packing":
        data = prepare_data(work, base, args.seq_len, limit=args.limit)
    else:
        data = prepare_data(work, base, args.seq_len)
    if args.profile:
        child_profile(args, base, data, args.profile)
        return 0
    if args.child:
        if ":" in args.child:  # packing: one epoch
            config, batching = args.child.split(":")
            _, plan = jalm_examples_and_plan(
                base, data, args.seq_len, args.packed_rows if batching == "packed" else args.micro, batching
            )
            micro = args.packed_rows if batching == "packed" else args.micro
            result = child_jalm(args, base, data, config, batching, micro, steps=len(plan))
        elif args.child in JALM_CONFIGS:
            result = child_jalm(args, base, data, args.child)
        else:
            result = child_trl(args, base, data, args.child)
        print(json.dumps(result))
        return 0
    argv = [a for a in sys.argv[1:]]
    summary = main_trl(args, argv) if args.mode == "trl" else main_packing(args, argv)
    summary["args"] = vars(args)
    (work / f"result-{args.mode}.json").write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
