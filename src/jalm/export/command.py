"""`jalm export`: a training run's checkpoint → a Hugging Face model directory (jalm.export)."""

from __future__ import annotations

import argparse

from jalm.export import export


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="write a Hugging Face model directory from a training run",
        description="Export a run's latest (or a given) checkpoint as a Hugging Face model directory "
        "(config.json, model.safetensors, tokenizer files, provenance). An instruction-tuning run exports "
        "with LoRA merged, its chat_template and a generation config that stops at </s>.",
        epilog="example: jalm export runs/demo/train --out runs/demo/model",
    )
    parser.add_argument("run_dir", help="training run directory")
    parser.add_argument("--out", required=True, help="model directory to write")
    parser.add_argument("--checkpoint", help="a specific checkpoint directory (default: the latest)")
    parser.add_argument("--clean-stats", help="the clean stage's stats.json, kept for the model card")
    parser.add_argument("--no-verify", action="store_true", help="skip the reload-and-compare check")
    parser.add_argument(
        "--adapter-only",
        action="store_true",
        help="LoRA runs: write peft's adapter format (adapter_config.json, adapter_model.safetensors) "
        "instead of merged weights",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = export(
        args.run_dir,
        args.out,
        args.checkpoint,
        verify=not args.no_verify,
        clean_stats=args.clean_stats,
        adapter_only=args.adapter_only,
    )
    print(f"exported {args.run_dir} → {out}")
    return 0
