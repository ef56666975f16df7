"""`jalm train` lets the plan's memory arithmetic decide activation checkpointing unless told."""

from __future__ import annotations

import json

import pytest

from jalm.cli import main


@pytest.mark.parametrize(
    ("gpus", "gpu", "flags", "expected"),
    [
        ("8", "H100", [], "activation checkpointing: off (fits without it)"),
        ("1", "A100-40GB", [], "activation checkpointing: on (does not fit without it)"),
        ("8", "H100", ["--activation-checkpointing"], "activation checkpointing: on (set by --activation"),
    ],
)
def test_the_plan_turns_checkpointing_on_only_when_needed(tmp_path, capsys, gpus, gpu, flags, expected):
    (tmp_path / "meta.json").write_text(json.dumps({"vocab_size": 51200}))
    args = ["train", "--preset", "1.7b", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--plan"]
    code = main([*args, "--gpus", gpus, "--gpu", gpu, "--global-batch-tokens", "1048576", *flags])
    out = capsys.readouterr().out
    assert code == 0 and expected in out, out
    state = expected.split(": ")[1].split(" ")[0]
    assert f"activation checkpointing {state}" in out  # the plan's arithmetic used the same setting
