"""The `jalm` command: a thin layer that hands each subcommand to its stage's command module.

Every stage has a command module, `jalm.<stage>.command`, that defines `register(subparsers)`, which adds
its subcommand and sets `func=<callable taking the parsed args and returning an exit code>` (its `run`).
Building the parser imports every command module and the stage package above it, so they keep torch,
transformers and numpy imports inside functions: importing torch alone costs about 1.5 CPU-seconds,
building the parser without it about 0.1. tests/test_cli.py checks each command module's register() for
these imports.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from jalm import __version__
from jalm.errors import JalmError

# Order is the pipeline's order, which is also the order `jalm --help` lists them in.
STAGE_MODULES = (
    "jalm.corpus.command",
    "jalm.tokenizer.command",
    "jalm.data.command",
    "jalm.train.command",
    "jalm.sft.command",
    "jalm.dpo.command",
    "jalm.export.command",
    "jalm.eval.command",
    "jalm.generate.command",
    "jalm.serve.command",
    "jalm.demo.command",
    "jalm.experiment.command",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jalm",
        description="Build Japanese LLMs: clean → tokenizer → pack → train → export → eval → generate/serve.",
        epilog="Run `jalm demo` to see every stage on bundled data in a few minutes on a CPU.",
    )
    parser.add_argument("--version", action="version", version=f"jalm {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in STAGE_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    if not sys.stderr.isatty():
        # transformers' own bars ("Loading weights") redraw with carriage returns; in a log they are noise.
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except JalmError as error:
        print(f"jalm {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"jalm {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
