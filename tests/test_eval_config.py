"""Task configs and their registry: names → configs, CLI flags → configs."""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys

import pytest

from jalm.errors import JalmError
from jalm.eval import (
    REGISTRY,
    TASKS,
    AioChatConfig,
    AioConfig,
    JsquadChatConfig,
    JsquadConfig,
    PplConfig,
)
from jalm.eval.tasks import resolve_tasks


def test_registry_names_every_config_once():
    assert TASKS == ("ppl", "jsquad", "aio", "jsquad-chat", "aio-chat", "jcommonsenseqa", "jnli", "jsts")
    assert all(REGISTRY[name].name == name for name in TASKS)
    # The defaults are the protocols.
    assert (JsquadConfig().shots, JsquadConfig().prompt_version, JsquadConfig().max_new_tokens) == (
        3,
        "0.2",
        None,
    )
    assert AioChatConfig().max_new_tokens == 64


def test_resolve_tasks_takes_names_and_configs_in_order():
    assert resolve_tasks("ppl, jsquad,aio") == [PplConfig(), JsquadConfig(), AioConfig()]
    custom = JsquadConfig(shots=0)
    assert resolve_tasks(["aio-chat", custom, "ppl", "aio-chat"]) == [AioChatConfig(), custom, PplConfig()]
    assert resolve_tasks([JsquadConfig(), "jsquad"]) == [JsquadConfig()]  # the same task twice is one
    with pytest.raises(JalmError, match="given twice with different settings"):
        resolve_tasks(["jsquad", JsquadConfig(shots=1)])
    with pytest.raises(JalmError, match="unknown task squad; choose from ppl, jsquad, aio, jsquad-chat"):
        resolve_tasks("ppl,squad")
    with pytest.raises(JalmError, match="no task given"):
        resolve_tasks(" , ")
    with pytest.raises(JalmError, match="not a task name or task config"):
        resolve_tasks([3])


def _parser() -> argparse.ArgumentParser:
    from jalm.eval import command

    parser = argparse.ArgumentParser(prog="jalm")
    command.register(parser.add_subparsers(dest="command"))
    return parser


def test_cli_flags_fill_the_configs_of_the_tasks_asked():
    from jalm.eval.command import TASK_FLAGS, task_configs

    parser = _parser()
    # Every flag names a field of its task's config and a real option.
    defaults = vars(parser.parse_args(["eval"]))
    for name, flags in TASK_FLAGS.items():
        fields = {f.name for f in dataclasses.fields(REGISTRY[name])}
        assert set(flags) <= fields and set(flags.values()) <= set(defaults)
    assert set(TASK_FLAGS) == set(TASKS)
    # No flag: the registry's defaults (the protocols), in --tasks order.
    assert task_configs(parser.parse_args(["eval"])) == [PplConfig(), JsquadConfig(), AioConfig()]
    argv = [
        "eval",
        "--tasks",
        "aio-chat,jsquad,jsquad-chat,ppl",
        "--jsquad-data",
        "q.json",
        "--jsquad-shots",
        "0",
    ]
    argv += ["--aio-data", "a.tsv", "--data", "x.jsonl", "y.jsonl", "--ppl-stride", "7"]
    assert task_configs(parser.parse_args(argv)) == [
        AioChatConfig(data="a.tsv"),
        JsquadConfig(data="q.json", shots=0),
        JsquadChatConfig(data="q.json"),
        PplConfig(data=["x.jsonl", "y.jsonl"], stride=7),
    ]


def test_eval_help_imports_neither_torch_nor_transformers():
    code = (
        "import argparse, contextlib, io, sys\n"
        "from jalm.eval import command\n"
        "parser = argparse.ArgumentParser(prog='jalm')\n"
        "command.register(parser.add_subparsers())\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    parser.parse_args(['eval', '--help'])\n"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
