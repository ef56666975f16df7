"""The command layer: every subcommand documents an example; user errors are one line, exit code 2;
building a subcommand's parser loads neither torch nor numpy, so `jalm --help` starts fast."""

from __future__ import annotations

import subprocess
import sys

import pytest

from jalm.cli import STAGE_MODULES, build_parser

SUBCOMMANDS = [
    "clean",
    "tokenizer",
    "pack",
    "train",
    "sft",
    "dpo",
    "export",
    "eval",
    "generate",
    "serve",
    "card",
    "demo",
    "experiment",
]


def jalm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "jalm.cli", *args], capture_output=True, text=True, timeout=300
    )


def test_every_stage_is_a_subcommand_with_an_example_in_its_help(capsys):
    parser = build_parser()
    actions = next(a for a in parser._actions if a.dest == "command")
    assert sorted(actions.choices) == sorted(SUBCOMMANDS)
    for name in SUBCOMMANDS:
        args = [name, "train", "--help"] if name == "tokenizer" else [name, "--help"]
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args(args)
        assert exit_info.value.code == 0
        assert "example" in capsys.readouterr().out.lower(), name


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["clean", "no-such.jsonl", "--out", "{tmp}/clean"], "no-such.jsonl"),
        (["tokenizer", "train", "no-such.jsonl", "--out", "{tmp}/tok"], "no-such.jsonl"),
        (["pack", "no-such.jsonl", "--tokenizer", "{tmp}", "--out", "{tmp}/packed"], "no-such.jsonl"),
        (["export", "{tmp}", "--out", "{tmp}/model"], "not a training run directory"),
        (["eval", "--model", "{tmp}", "--tasks", "ppl", "--out", "{tmp}/r.json"], "config.json"),
        (["generate", "--model", "{tmp}", "--prompt", "こんにちは"], "config.json"),
    ],
)
def test_user_errors_are_one_line(args, message, tmp_path):
    result = jalm(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr, result.stderr


@pytest.mark.parametrize("module", STAGE_MODULES)
def test_registering_a_subcommand_loads_no_heavy_module(module):
    code = (
        "import argparse, importlib, sys\n"
        f"importlib.import_module({module!r}).register(argparse.ArgumentParser().add_subparsers())\n"
        "print(' '.join(sorted({'torch', 'transformers', 'numpy'} & set(sys.modules))))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"{module} loads {result.stdout.strip()}"
