"""`jalm dpo`: preference-tune an instruction-tuned model (DPO, IPO, SimPO, ORPO; full or LoRA); rerunning
resumes."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

EXAMPLE = """data: JSONL (plain, .gz, .zst) files or folders, one pair per line, in any of these shapes:
  {"prompt": "...", "chosen": "...", "rejected": "..."}
  {"prompt": [messages...], "chosen": [{"role": "assistant", ...}], "rejected": [{...}]}
  {"chosen": [messages..., reply], "rejected": [same messages..., other reply]}   (UltraFeedback, HH)
  {"chosen": "\\n\\nHuman: ...\\n\\nAssistant: ...", "rejected": "..."}                (Anthropic HH text)
losses (--beta defaults): dpo 0.1, ipo (τ) 0.1, simpo 2.0 (margin --simpo-gamma 0.5), orpo (λ) 0.1;
dpo and ipo compute the reference log-probabilities once before training (stored in the run), simpo and
orpo need none. The chat template is the model's own (tokenizer_config.json), else LINE's.

examples:
  jalm sft --model runs/demo/model --data data/sft/demo.jsonl.zst --out runs/sft --max-steps 60
  jalm export runs/sft --out runs/sft-model
  jalm dpo --model runs/sft-model --data data/dpo/demo.jsonl.zst --out runs/dpo --max-steps 30 \\
      --seq-len 256 --micro-batch-size 8 --grad-accum 1 --lr 5e-4
  jalm export runs/dpo --out runs/dpo-model && jalm serve --model runs/dpo-model

defaults (flags override): lr 5e-6 full / 5e-5 LoRA, 1 epoch, warmup 10 % then cosine to 0, weight decay 0,
seq_len 1024 per side, 2 pairs × 8 micro-batches per step per process."""


def register(subparsers: argparse._SubParsersAction) -> None:
    from jalm.train.command import add_config_flags

    parser = subparsers.add_parser(
        "dpo",
        help="preference-tune a model on chosen/rejected pairs (DPO, IPO, SimPO, ORPO)",
        description=__doc__,
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, help="Hugging Face directory (a `jalm sft` export) or run")
    parser.add_argument("--data", required=True, nargs="+", help="preference JSONL files or folders")
    parser.add_argument(
        "--out", required=True, help="run directory (checkpoints, metrics.jsonl, dpo_stats.json)"
    )
    parser.add_argument("--val-data", nargs="+", help="held-out pairs (default: --val-fraction of --data)")
    parser.add_argument("--val-fraction", type=float, default=0.05, help="default: 0.05, split by content")
    parser.add_argument("--loss", choices=["dpo", "ipo", "simpo", "orpo"], default="dpo", help="default: dpo")
    parser.add_argument("--beta", type=float, help="the loss's strength (default: its published value)")
    parser.add_argument("--simpo-gamma", type=float, default=0.5, help="SimPO's margin (default: 0.5)")
    parser.add_argument("--chat-template", help="a Jinja chat template file (default: the model's)")
    parser.add_argument("--epochs", type=int, default=1, help="default: 1 (ignored with --max-steps)")
    parser.add_argument("--lora-rank", type=int, default=0, help="LoRA rank; 0 (default) tunes every weight")
    parser.add_argument("--lora-alpha", type=float, default=16.0, help="default: 16")
    parser.add_argument("--lora-dropout", type=float, default=0.0, help="default: 0")
    parser.add_argument("--lora-targets", nargs="+", help="module names (default: attention and MLP)")
    parser.add_argument(
        "--no-decontaminate", action="store_true", help="keep pairs that overlap the eval sets"
    )
    parser.add_argument("--decontamination-n", type=int, help="character n-gram length of the overlap check")
    parser.add_argument("--eval-dir", help="folder of the evaluation sets to decontaminate against")
    parser.add_argument("--config", help="JSON file of training settings (flags override it)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument(
        "--parallel", default="auto", choices=["auto", "none", "ddp", "fsdp"], help="multi-process mode"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    from jalm.dpo.config import DPO_DEFAULTS

    add_config_flags(
        parser, {**DPO_DEFAULTS, "max_steps": "from --epochs", "warmup_steps": "10 %% of the steps"}
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from jalm.dpo.config import DpoOptions, dpo_config
    from jalm.dpo.train import STATS_FILE, dpo
    from jalm.errors import JalmError
    from jalm.train.command import config_overrides

    if not Path(args.model).exists():
        raise JalmError(f"{args.model}: no such model directory or run")
    options = DpoOptions(
        model=args.model,
        data=list(args.data),
        val_data=args.val_data,
        val_fraction=args.val_fraction,
        loss=args.loss,
        beta=args.beta,
        simpo_gamma=args.simpo_gamma,
        chat_template=args.chat_template,
        epochs=args.epochs,
        lora_rank=args.lora_rank,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        lora_targets=args.lora_targets,
        decontaminate=not args.no_decontaminate,
        decontamination_n=args.decontamination_n,
        eval_dir=args.eval_dir,
    )
    cfg = dpo_config(lora=options.lora_rank > 0, **config_overrides(args))
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    summary = dpo(
        options, cfg, args.out, device=args.device, parallel=args.parallel, progress=not args.no_progress
    )
    if summary:
        stats = json.loads((Path(args.out) / STATS_FILE).read_text(encoding="utf-8"))
        print(report(stats, summary))
        print(json.dumps(summary))
    return 0


def report(stats: dict, summary: dict) -> str:
    """What was read, set aside and learnt, and the held-out accuracy before and after, in a few lines."""
    read, tok = stats["read"], stats["tokenize"]
    lines = [
        f"read {read['records']} records: {read['valid']} valid pairs, {sum(read['invalid'].values())} invalid"
    ]
    lines += [f"  {example}" for example in read["examples"][:5]]
    decon = stats.get("decontamination")
    if decon is not None:
        lines.append(
            f"decontamination: removed {sum(decon['removed'].values())} of {decon['checked']} training pairs"
        )
    lines.append(
        f"tokenized {tok['pairs']} training pairs: {tok['examples']} kept, {tok['truncated']} with the prompt's "
        f"start cut ({tok['prompt_tokens_cut']} tokens), {tok['too_long']} set aside as too long"
    )
    if "reference" in stats:
        how = "reused from the run" if stats["reference"]["reused"] else "computed in one pass"
        lines.append(f"reference log-probabilities of {stats['reference']['pairs']} pairs: {how}")
    before = stats.get("base_val") or {}
    if before.get("val_reward_accuracy") is not None and "val_reward_accuracy" in summary:
        lines.append(
            f"held-out reward accuracy {before['val_reward_accuracy']:.3f} → {summary['val_reward_accuracy']:.3f}, "
            f"margin {before['val_margin']:.3f} → {summary['val_margin']:.3f}"
        )
    return "\n".join(lines)
