"""`jalm export`: a training run's checkpoint → a Hugging Face model directory (jalm.export)."""

from __future__ import annotations

import argparse

from jalm.errors import JalmError
from jalm.export.gguf import QUANTS as GGUF_QUANTS
from jalm.export.to_hf import export


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="write a Hugging Face model directory (or a GGUF file) from a training run",
        description="Export a run's latest (or a given) checkpoint as a Hugging Face model directory "
        "(config.json, model.safetensors, tokenizer files, provenance). An instruction-tuning run exports "
        "with LoRA merged, its chat_template and a generation config that stops at </s>. "
        "--format gguf writes one llama.cpp file instead, from a run or an exported model directory.",
        epilog="examples: jalm export runs/demo/train --out runs/demo/model; "
        "jalm export runs/demo/model --format gguf --quant q8_0 --out runs/demo/model-q8_0.gguf; "
        "jalm export runs/demo/model --check vllm; jalm export old/model --upgrade",
    )
    parser.add_argument(
        "run_dir", help="training run directory (a model directory with --format gguf, --check or --upgrade)"
    )
    parser.add_argument("--out", help="model directory to write (a .gguf file for gguf)")
    parser.add_argument("--format", choices=("hf", "gguf"), default="hf", help="default: hf")
    parser.add_argument(
        "--quant",
        choices=GGUF_QUANTS,
        default="f16",
        help="gguf: type of the weight matrices (norms, biases, positions stay f32); default: f16",
    )
    parser.add_argument(
        "--check",
        choices=["vllm"],
        help="check an exported model directory against what vLLM reads for GPT-2 and GPT-NeoX (no GPU, "
        "no vLLM needed); exit status 1 on errors",
    )
    parser.add_argument(
        "--upgrade",
        action="store_true",
        help="upgrade a model directory written by an older jalm in place (tokenizer and config files; "
        "never the weights)",
    )
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
    if args.upgrade:
        from jalm.export.upgrade import upgrade_export

        changes = upgrade_export(args.run_dir)
        for line in changes:
            print(f"upgraded {line}")
        print(f"{args.run_dir}: {'up to date' if not changes else f'{len(changes)} change(s)'}")
        if not args.check:
            return 0
    if args.check:
        from jalm.export.vllm_check import check_vllm

        findings = check_vllm(args.run_dir)
        for finding in findings:
            print(f"{finding.level}: {finding.message}")
        errors = sum(finding.level == "error" for finding in findings)
        print(f"{args.run_dir}: vLLM check: {errors} error(s), {len(findings) - errors} warning(s)")
        return 1 if errors else 0
    if not args.out:
        raise JalmError("jalm export: --out is required to export")
    if args.format == "gguf":
        from jalm.export.gguf import export_gguf, format_report

        if args.adapter_only or args.clean_stats:
            raise JalmError("--adapter-only and --clean-stats are for --format hf")

        report = export_gguf(args.run_dir, args.out, args.quant, args.checkpoint, verify=not args.no_verify)
        print(format_report(report))
        return 0
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
