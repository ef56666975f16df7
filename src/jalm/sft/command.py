"""`jalm sft`: instruction-tune a base model (full or LoRA) on conversations; rerunning resumes."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

EXAMPLE = """data: JSONL (plain, .gz, .zst) files or folders, one record per line, in any of these shapes:
  {"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}
  {"instruction": "...", "input": "...", "output": "..."}       (Alpaca, databricks-dolly-15k-ja)
  {"prompt": "...", "response": "..."}
template (LINE's instruction-sft format; --chat-template FILE for another Jinja template):
  [{system}\\n]ユーザー: {user}\\nシステム: {assistant}</s>ユーザー: {user}\\nシステム: {assistant}</s>...
  loss on the replies and their </s> only (--train-on-everything for the ablation)

examples:
  # the CPU demo model, briefly
  jalm sft --model runs/demo/model --data data/sft/demo.jsonl.zst --out runs/sft --max-steps 60 \\
      --seq-len 256 --micro-batch-size 8 --grad-accum 1 --lr 1e-3
  # LINE's 3.6B from a local download, LoRA on one GPU
  jalm sft --model ~/models/japanese-large-lm-3.6b --data dolly-ja.jsonl --out runs/sft-3.6b-lora \\
      --lora-rank 16 --dtype bfloat16 --activation-checkpointing
  # full fine-tuning on 8 GPUs (FSDP2)
  torchrun --nproc_per_node=8 --no-python jalm sft --model ~/models/japanese-large-lm-3.6b \\
      --data dolly-ja.jsonl --out runs/sft-3.6b --dtype bfloat16 --activation-checkpointing --parallel fsdp
  jalm export runs/sft-3.6b --out runs/sft-3.6b/model      # merged weights + chat_template

defaults for instruction tuning (flags override): lr 2e-5 full / 2e-4 LoRA, 3 epochs, warmup 3 % of the
steps then cosine to 0, weight decay 0, AdamW β (0.9, 0.95), clip 1.0, seq_len 2048 (capped at the model's
context), 4 sequences × 8 micro-batches per step per process, LoRA rank 0 (full) / alpha 16 / dropout 0
(peft's dropout keeps a copy of every adapted layer's input: benchmarks/README.md, LoRA vs full memory)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    from jalm.train.command import add_config_flags

    parser = subparsers.add_parser(
        "sft",
        help="instruction-tune a model (full or LoRA) in LINE's chat format",
        description=__doc__,
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model", required=True, help="Hugging Face GPT-2/GPT-NeoX directory or `jalm train` run"
    )
    parser.add_argument("--data", required=True, nargs="+", help="conversation JSONL files or folders")
    parser.add_argument(
        "--out", required=True, help="run directory (checkpoints, metrics.jsonl, sft_stats.json)"
    )
    parser.add_argument(
        "--val-data", nargs="+", help="held-out conversations (default: --val-fraction of --data)"
    )
    parser.add_argument("--val-fraction", type=float, default=0.05, help="default: 0.05, split by content")
    parser.add_argument("--chat-template", help="a Jinja chat template file (default: LINE's format)")
    parser.add_argument("--train-on-everything", action="store_true", help="loss on prompts too (ablation)")
    parser.add_argument(
        "--batching",
        choices=["padded", "packed"],
        default="padded",
        help="padded: group by length, pad each micro-batch (default; faster here, see README); packed: "
        "conversations side by side in rows, no attention across them",
    )
    parser.add_argument("--epochs", type=int, default=3, help="default: 3 (ignored with --max-steps)")
    parser.add_argument(
        "--lora-rank", type=int, default=0, help="LoRA rank; 0 (default) fine-tunes every weight"
    )
    parser.add_argument("--lora-alpha", type=float, default=16.0, help="default: 16")
    parser.add_argument(
        "--lora-dropout", type=float, default=0.0, help="default: 0 (it costs activation memory)"
    )
    parser.add_argument(
        "--lora-targets", nargs="+", help="module names (default: every attention and MLP projection)"
    )
    parser.add_argument(
        "--no-decontaminate", action="store_true", help="keep examples that overlap the eval sets"
    )
    parser.add_argument("--decontamination-n", type=int, help="character n-gram length of the overlap check")
    parser.add_argument(
        "--eval-dir", help="folder of the evaluation sets to decontaminate against (default: bundled)"
    )
    parser.add_argument("--config", help="JSON file of training settings (flags override it)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument(
        "--parallel", default="auto", choices=["auto", "none", "ddp", "fsdp"], help="multi-process mode"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    from jalm.sft.config import SFT_DEFAULTS

    add_config_flags(
        parser, {**SFT_DEFAULTS, "max_steps": "from --epochs", "warmup_steps": "3 %% of the steps"}
    )
    parser.set_defaults(func=run)


def options_from_args(args: argparse.Namespace):
    from jalm.sft.config import SftOptions

    return SftOptions(
        model=args.model,
        data=list(args.data),
        val_data=args.val_data,
        val_fraction=args.val_fraction,
        chat_template=args.chat_template,
        train_on_everything=args.train_on_everything,
        batching=args.batching,
        epochs=args.epochs,
        lora_rank=args.lora_rank,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        lora_targets=args.lora_targets,
        decontaminate=not args.no_decontaminate,
        decontamination_n=args.decontamination_n,
        eval_dir=args.eval_dir,
    )


def run(args: argparse.Namespace) -> int:
    from jalm.errors import JalmError
    from jalm.sft.config import sft_config
    from jalm.sft.train import STATS_FILE, sft
    from jalm.train.command import config_overrides

    if not Path(args.model).exists():
        raise JalmError(f"{args.model}: no such model directory or run")
    options = options_from_args(args)
    cfg = sft_config(lora=options.lora_rank > 0, **config_overrides(args))
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    summary = sft(
        options, cfg, args.out, device=args.device, parallel=args.parallel, progress=not args.no_progress
    )
    if summary:
        stats = json.loads((Path(args.out) / STATS_FILE).read_text(encoding="utf-8"))
        print(_report(stats))
        print(json.dumps(summary))
    return 0


def _report(stats: dict) -> str:
    """What was read, set aside and learnt, in a few lines."""
    read = stats["read"]
    lines = [
        f"read {read['records']} records: {read['valid']} valid, {sum(read['invalid'].values())} invalid"
    ]
    lines += [f"  {example}" for example in read["examples"][:5]]
    decon = stats.get("decontamination")
    if decon is not None:
        removed = decon["removed"]
        lines.append(
            f"decontamination ({decon['n']}-character n-grams against the evaluation sets): removed "
            f"{sum(removed.values())} of {decon['checked']} training conversations "
            + ", ".join(f"{name} {count}" for name, count in removed.items())
        )
    tok = stats["tokenize"]
    lines.append(
        f"tokenized {tok['conversations']} training conversations: {tok['examples']} kept ({tok['tokens']} tokens, "
        f"{tok['trainable_tokens']} learnt), {tok['truncated']} of them truncated to whole turns; "
        f"{tok['too_long']} set aside as too long"
    )
    if stats.get("base_val_loss") is not None:
        lines.append(f"held-out masked loss of the base model: {stats['base_val_loss']:.4f}")
    return "\n".join(lines)
