"""`jalm demo`: every stage on the bundled data (jalm.demo); the help text is jalm.demo's docstring."""

from __future__ import annotations

import argparse

from jalm import demo


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run every stage on bundled data (a few minutes on a CPU)",
        description=demo.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: jalm demo --workdir runs/demo",
    )
    parser.add_argument("--workdir", default="runs/demo", help="work directory (default runs/demo)")
    parser.add_argument(
        "--train-seconds", type=float, default=300.0, help="training time budget (default 300)"
    )
    parser.add_argument(
        "--sft-seconds", type=float, default=60.0, help="instruction-tuning time budget (default 60)"
    )
    parser.add_argument(
        "--dpo-seconds", type=float, default=6.0, help="preference-tuning time budget (default 6)"
    )
    parser.add_argument("--vocab-size", type=int, default=8000, help="tokenizer vocabulary (default 8000)")
    parser.add_argument(
        "--eval-limit", type=int, default=100, help="JSQuAD / AI王 questions evaluated (default 100)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    demo.run_demo(
        args.workdir,
        args.train_seconds,
        args.vocab_size,
        args.eval_limit,
        sft_seconds=args.sft_seconds,
        dpo_seconds=args.dpo_seconds,
    )
    return 0
