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


def test_communication_per_step_inside_and_across_nodes():
    from jalm.train.config import default_config
    from jalm.train.plan import communication, gpu, make_plan

    cfg = default_config("1.7b", global_batch_tokens=2**22)
    plan = make_plan(cfg, 51200, gpu("H100"), processes=64, parallel="fsdp")
    n = plan.shape.params
    fsdp, hsdp = communication(plan, "fsdp", 8), communication(plan, "hsdp", 8)
    # bf16 all-gathers forward and backward + one fp32 reduce-scatter, all over the network on a 1-D mesh
    assert fsdp["across"] == pytest.approx((2 * 2 + 4) * n * 63 / 64) and fsdp["inside"] == 0
    # HSDP: the same inside a node of 8, and only the fp32 shard's all-reduce across the 8 replicas
    assert hsdp["inside"] == pytest.approx(8 * n * 7 / 8)
    assert hsdp["across"] == pytest.approx(2 * 7 / 8 * 4 * n / 8)
    assert hsdp["across"] < fsdp["across"] / 8
    assert fsdp["step_s"] == pytest.approx(2**22 * plan.flops_per_token / (64 * 989e12 * 0.4))
    one_node = communication(make_plan(cfg, 51200, gpu("H100"), processes=8, parallel="fsdp"), "fsdp", 8)
    assert one_node["across"] == 0 and one_node["inside"] == pytest.approx(8 * n * 7 / 8)
