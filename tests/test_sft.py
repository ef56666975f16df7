"""Instruction tuning on a real tiny model and the bundled instruction set: masks, template parity under
transformers 4 and 5, packing without leakage, full and LoRA runs that learn, exact resume after kill -9,
merged exports that equal their adapters, and every bad record accounted for."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from jalm.chat_template import LINE_CHAT_TEMPLATE, encode_conversation, render
from jalm.sft.dataset import IGNORE, collate_packed, load_encoder, tokenize
from jalm.sft.records import Conversation, read_conversations
from jalm.sft.train import SftOptions, sft, sft_config
from jalm.train import checkpoint as ckpt
from jalm.train.metrics import read_metrics

REPO = Path(__file__).resolve().parents[1]
DEMO_SFT = REPO / "data" / "sft" / "demo.jsonl.zst"

TWO_TURNS = [
    {"role": "system", "content": "あなたは丁寧なアシスタントです。"},
    {"role": "user", "content": "日本の首都はどこですか。"},
    {"role": "assistant", "content": "東京です。"},
    {"role": "user", "content": "Pythonで1+1は？"},
    {"role": "assistant", "content": "2 です。"},
]


@pytest.fixture(scope="module")
def sft_data(tmp_path_factory) -> Path:
    """400 conversations of the bundled instruction set, as a plain JSONL file."""
    conversations, report = read_conversations([DEMO_SFT])
    assert report.valid == len(conversations) > 400
    path = tmp_path_factory.mktemp("sft") / "train.jsonl"
    with open(path, "w", encoding="utf-8") as out:
        for conversation in conversations[:400]:
            out.write(json.dumps({"messages": conversation.messages}, ensure_ascii=False) + "\n")
    return path


def _options(model_dir: Path, data: Path, **overrides) -> SftOptions:
    return SftOptions(model=str(model_dir), data=[str(data)], val_fraction=0.1, **overrides)


def _config(lora: bool = False, **overrides):
    values = {"seq_len": 128, "micro_batch_size": 8, "grad_accum": 1, "max_steps": 12, "lr": 3e-3}
    values.update({"save_every": 0, "log_every": 1, "dtype": "float32", **overrides})
    return sft_config(lora=lora, **values)


def _losses(run_dir: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_metrics(run_dir / "metrics.jsonl") if "loss" in r}


def _val(run_dir: Path) -> dict[int, float]:
    return {r["step"]: r["val_loss"] for r in read_metrics(run_dir / "metrics.jsonl") if "val_loss" in r}


def test_mask_equals_a_hand_built_mask_on_two_turns_with_a_system_message(tokenizer_dir):
    encoder = load_encoder(tokenizer_dir)
    enc = encoder.encode
    prompt_1 = enc("あなたは丁寧なアシスタントです。\nユーザー: 日本の首都はどこですか。\nシステム: ")
    reply_1 = enc("東京です。") + [2]
    prompt_2 = enc("ユーザー: Pythonで1+1は？\nシステム: ")
    reply_2 = enc("2 です。") + [2]
    ids = prompt_1 + reply_1 + prompt_2 + reply_2
    mask = [False] * len(prompt_1) + [True] * len(reply_1) + [False] * len(prompt_2) + [True] * len(reply_2)
    assert encoder.eos_id == 2
    assert encode_conversation(TWO_TURNS, enc, encoder.special_ids) == (ids, mask)

    # What a chat sends the model before a reply is exactly what training put before that reply.
    for turn in (2, 4):
        prompt, _ = encode_conversation(
            TWO_TURNS[:turn], enc, encoder.special_ids, add_generation_prompt=True
        )
        assert prompt == ids[: len(prompt)] and mask[len(prompt)] and not mask[len(prompt) - 1]

    [example], stats = tokenize([Conversation(TWO_TURNS, "x:1")], encoder, seq_len=512)
    assert example.ids.tolist() == ids
    learnt = [i + 1 for i, label in enumerate(example.labels) if label != IGNORE]
    assert learnt == [i for i, m in enumerate(mask) if m]
    assert example.labels[learnt[0] - 1] == ids[learnt[0]]
    assert stats.trainable_tokens == len(reply_1) + len(reply_2)
    everything, _ = tokenize([Conversation(TWO_TURNS, "x:1")], encoder, seq_len=512, train_on_everything=True)
    assert (everything[0].labels == np.asarray(ids[1:])).all()


def test_truncation_keeps_whole_turns_and_counts_what_does_not_fit(tokenizer_dir):
    encoder = load_encoder(tokenizer_dir)
    full, _ = encode_conversation(TWO_TURNS, encoder.encode, encoder.special_ids)
    first_end = len(encode_conversation(TWO_TURNS[:3], encoder.encode, encoder.special_ids)[0])
    conversations = [Conversation(TWO_TURNS, "a:1"), Conversation(TWO_TURNS, "a:2")]
    examples, stats = tokenize(conversations, encoder, seq_len=len(full) - 2)
    assert [len(e.ids) for e in examples] == [first_end, first_end] and stats.truncated == 2
    examples, stats = tokenize(conversations, encoder, seq_len=first_end - 2)
    assert examples == [] and stats.too_long == 2 and stats.too_long_examples[0].startswith("a:1: ")


def _chat_model(tiny_model_dir: Path, tmp_path: Path) -> Path:
    from jalm.sft.export import write_chat_tokenizer

    out = tmp_path / "chat_model"
    shutil.copytree(tiny_model_dir, out)
    write_chat_tokenizer(tiny_model_dir, out, LINE_CHAT_TEMPLATE)
    return out


@pytest.mark.parametrize("major", ["5", "4"])
def test_apply_chat_template_is_the_training_string_and_ids_under_both_majors(
    tiny_model_dir, tmp_path, major
):
    model_dir = _chat_model(tiny_model_dir, tmp_path)
    conversations = [
        TWO_TURNS[:2],
        TWO_TURNS[:4],
        TWO_TURNS[1:2],
        [{"role": "user", "content": "絵文字👨‍👩‍👧と𠮷"}],
    ]
    env = {**os.environ, "PYTHONPATH": str(Path(sys.prefix) / "tf4") if major == "4" else ""}
    if major == "4" and not (Path(sys.prefix) / "tf4" / "transformers").is_dir():
        pytest.fail(f"transformers 4.x is not installed in {Path(sys.prefix) / 'tf4'}: run `make install`")
    result = subprocess.run(
        [sys.executable, str(REPO / "tests" / "chat_template_probe.py"), str(model_dir)],
        input=json.dumps(conversations),
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["transformers"].startswith(major)
    encoder = load_encoder(model_dir)
    for flavour in ("slow", "fast"):
        got = report[flavour]
        assert "error" not in got, got
        for messages, text, ids in zip(conversations, got["text"], got["ids"]):
            assert text == render(messages, add_generation_prompt=True)  # byte for byte
            assert (
                ids
                == encode_conversation(
                    messages, encoder.encode, encoder.special_ids, add_generation_prompt=True
                )[0]
            )


def test_a_packed_conversation_has_the_logits_it_has_alone(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    encoder = load_encoder(tiny_model_dir)
    conversations = [Conversation(TWO_TURNS[i:], f"x:{i}") for i in (0, 1, 3)]
    examples, _ = tokenize(conversations, encoder, seq_len=256)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    batch = {k: torch.from_numpy(v) for k, v in collate_packed(examples, [[0, 1, 2]], pad_id=2).items()}
    with torch.no_grad():
        packed = model(
            input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False
        ).logits[0]
        at = 0
        for example in examples:
            alone = model(input_ids=torch.from_numpy(example.ids[:-1]).long()[None]).logits[0]
            n = example.positions
            torch.testing.assert_close(packed[at : at + n], alone, atol=1e-5, rtol=0)
            at += n
        # Without restarting positions the same row attends across conversations: the check can fail.
        leaky = model(input_ids=batch["input_ids"], use_cache=False).logits[0]
        assert not torch.allclose(leaky[examples[0].positions :][:10], packed[examples[0].positions :][:10])


@pytest.mark.parametrize(("lora", "batching"), [(False, "padded"), (True, "packed")])
def test_full_and_lora_runs_lower_the_held_out_masked_loss(
    tiny_model_dir, sft_data, tmp_path, lora, batching
):
    options = _options(tiny_model_dir, sft_data, lora_rank=8 if lora else 0, batching=batching)
    cfg = _config(lora, lr=1e-2 if lora else 3e-3)
    summary = sft(options, cfg, tmp_path / "run", device="cpu", progress=False)
    val = _val(tmp_path / "run")
    assert 0 in val and summary["steps"] == 12
    assert val[12] < val[0] - 0.1, val
    stats = json.loads((tmp_path / "run" / "sft_stats.json").read_text())
    assert stats["base_val_loss"] == pytest.approx(val[0], abs=1e-5)
    assert stats["decontamination"]["removed"] == {"jsquad": 0, "aio": 0}
    if lora:
        assert summary["trainable_params"] < summary["params"] / 5
        state = ckpt.latest_checkpoint(tmp_path / "run")
        # Adapters and their Adam moments only: a quarter of the float32 base model's bytes
        assert sum(f.stat().st_size for f in state.glob("*.distcp")) < summary["params"]


def _cli_sft(model_dir: Path, data: Path, run_dir: Path, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "jalm.cli", "sft", "--model", str(model_dir), "--data", str(data)]
    command += ["--out", str(run_dir), "--seq-len", "128", "--micro-batch-size", "4", "--grad-accum", "2"]
    command += ["--max-steps", "24", "--save-every", "8", "--log-every", "1", "--lr", "3e-3", "--no-progress"]
    command += ["--dtype", "float32", *extra]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_kill_9_then_rerun_gives_the_uninterrupted_losses(
    tiny_model_dir, sft_data, tmp_path, same_checkpoint, kill_9
):
    """LoRA with dropout: the data order and the dropout masks must both resume exactly."""
    extra = ("--lora-rank", "4", "--lora-dropout", "0.1")
    reference = _cli_sft(tiny_model_dir, sft_data, tmp_path / "reference", *extra)
    assert reference.wait(timeout=300) == 0, reference.stderr.read()[-2000:]

    victim = _cli_sft(tiny_model_dir, sft_data, tmp_path / "victim", *extra)
    kill_9(victim, (tmp_path / "victim" / "checkpoints" / "step_00000008").exists)
    resumed = _cli_sft(tiny_model_dir, sft_data, tmp_path / "victim", *extra)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-2000:]
    assert _losses(tmp_path / "victim") == _losses(tmp_path / "reference")
    same_checkpoint(tmp_path / "reference", tmp_path / "victim")  # adapters and moments, bit for bit
    assert len(_losses(tmp_path / "reference")) == 24
    # The base model's held-out loss was measured once, before the first step, and not again on resume.
    zero = [r for r in read_metrics(tmp_path / "victim" / "metrics.jsonl") if r["step"] == 0]
    assert len(zero) == 1 and "held-out masked loss of the base model" in out


def test_merged_lora_export_reproduces_the_adapter_model(tiny_model_dir, sft_data, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from jalm.export import export

    sft(
        _options(tiny_model_dir, sft_data, lora_rank=4),
        _config(True, max_steps=4),
        tmp_path / "run",
        "cpu",
        progress=False,
    )
    merged_dir = export(tmp_path / "run", tmp_path / "merged")
    adapter_dir = export(tmp_path / "run", tmp_path / "adapter", adapter_only=True)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    with_adapter = PeftModel.from_pretrained(base, adapter_dir).eval()
    merged = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32).eval()
    ids = torch.tensor(
        [
            encode_conversation(
                TWO_TURNS[1:2], load_encoder(merged_dir).encode, {"</s>": 2}, add_generation_prompt=True
            )[0]
        ]
    )
    with torch.no_grad():
        want, got = with_adapter(input_ids=ids).logits, merged(input_ids=ids).logits
        base_logits = AutoModelForCausalLM.from_pretrained(tiny_model_dir)(input_ids=ids).logits
    assert (want - got).abs().max().item() <= 1e-5
    assert (want - base_logits).abs().max().item() > 1e-3  # the adapter did change the model
    config = json.loads((merged_dir / "generation_config.json").read_text())
    assert config["eos_token_id"] == 2 and config["pad_token_id"] == 2
    assert (
        json.loads((merged_dir / "tokenizer_config.json").read_text())["chat_template"] == LINE_CHAT_TEMPLATE
    )
    assert json.loads((merged_dir / "jalm.json").read_text())["lora"]["rank"] == 4


def test_gpt2_layout_lora_targets_conv1d_layers(tokenizer_dir, sft_data, tmp_path):
    from jalm.export import export
    from jalm.model import build_model, get_preset, hf_config
    from jalm.tokenizer import write_hf_tokenizer_files

    base = tmp_path / "gpt2"
    build_model(hf_config(get_preset("test-gpt2"), 4000)).save_pretrained(base)
    write_hf_tokenizer_files(tokenizer_dir / "spiece.model", base, model_max_length=256)
    summary = sft(
        _options(base, sft_data, lora_rank=4),
        _config(True, max_steps=3),
        tmp_path / "run",
        "cpu",
        progress=False,
    )
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    # rank × (in + out) for c_attn (64→192), attn c_proj (64→64), c_fc (64→256), mlp c_proj (256→64), 2 layers
    per_layer = 4 * ((64 + 192) + (64 + 64) + (64 + 256) + (256 + 64))
    assert run["lora"]["rank"] == 4 and summary["trainable_params"] == 2 * per_layer
    export(tmp_path / "run", tmp_path / "model")  # verifies the merged logits itself


def test_bad_records_and_contaminated_examples_are_counted_and_the_run_goes_on(
    tiny_model_dir, sft_data, tmp_path
):
    from jalm.eval.jsquad import DEFAULT_EVAL, load_squad
    from jalm.resources import bundled

    question = load_squad(bundled(DEFAULT_EVAL))[0]
    data = tmp_path / "mixed.jsonl"
    lines = sft_data.read_text(encoding="utf-8").splitlines()[:60]
    lines[3] = "{not json"
    lines[7] = json.dumps({"messages": [{"role": "bot", "content": "x"}]})
    lines[9] = json.dumps(
        {"instruction": "次の質問に答えてください。", "input": question.question, "output": "はい"},
        ensure_ascii=False,
    )
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "jalm.cli",
            "sft",
            "--model",
            str(tiny_model_dir),
            "--data",
            str(data),
            "--out",
            str(tmp_path / "run"),
        ]
        + [
            "--max-steps",
            "2",
            "--seq-len",
            "128",
            "--micro-batch-size",
            "4",
            "--grad-accum",
            "1",
            "--no-progress",
            "--val-fraction",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    stats = json.loads((tmp_path / "run" / "sft_stats.json").read_text())
    assert stats["read"]["records"] == 60 and stats["read"]["valid"] == 58
    assert f"{data}:4: " in "\n".join(stats["read"]["examples"]) and f"{data}:8: " in "\n".join(
        stats["read"]["examples"]
    )
    assert stats["decontamination"]["removed"]["jsquad"] == 1
    assert "removed 1 of 58 training conversations" in result.stdout


@pytest.mark.parametrize("parallel", ["ddp", "fsdp"])
def test_two_processes_give_the_one_process_losses(tiny_model_dir, sft_data, tmp_path, parallel):
    """Each step's micro-batches are the same in 1 process × 2 micro-batches and 2 processes × 1, and the
    loss is weighted by learnt tokens across processes: the curves agree to float32 rounding."""
    one = _cli_sft(tiny_model_dir, sft_data, tmp_path / "one", "--max-steps", "6", "--save-every", "0")
    assert one.wait(timeout=300) == 0, one.stderr.read()[-2000:]
    jalm = Path(sys.executable).with_name("jalm")
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "--no-python",
    ]
    command += [
        str(jalm),
        "sft",
        "--model",
        str(tiny_model_dir),
        "--data",
        str(sft_data),
        "--out",
        str(tmp_path / "two"),
    ]
    command += ["--seq-len", "128", "--micro-batch-size", "4", "--grad-accum", "1", "--max-steps", "6"]
    command += [
        "--save-every",
        "3",
        "--log-every",
        "1",
        "--lr",
        "3e-3",
        "--no-progress",
        "--dtype",
        "float32",
    ]
    command += ["--parallel", parallel]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    expected, got = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert list(got) == list(range(1, 7))
    assert list(got.values()) == pytest.approx(list(expected.values()), abs=2e-4)
    assert json.loads((tmp_path / "two" / "run.json").read_text())["world_size"] == 2


def test_a_jalm_train_run_is_a_base_too(tiny_run_dir, sft_data, tmp_path):
    """`--model RUN`: the latest checkpoint of a pretraining run, with the tokenizer of its data."""
    from jalm.export import export

    summary = sft(
        _options(tiny_run_dir, sft_data), _config(max_steps=2), tmp_path / "run", "cpu", progress=False
    )
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert summary["steps"] == 2 and run["base"]["kind"] == "jalm_run"
    assert run["base"]["checkpoint"].endswith("step_00000030")
    model_dir = export(tmp_path / "run", tmp_path / "model")
    assert (model_dir / "spiece.model").exists() and (model_dir / "model.safetensors").exists()
