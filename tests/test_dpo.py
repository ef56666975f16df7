"""Preference tuning on a real tiny model and the bundled preference set: reading every shape with bad
records counted, masks on the replies only, each loss equal to its formula on the model's own
log-probabilities, stored reference log-probabilities equal to a fresh pass (the base under LoRA),
held-out reward accuracy that rises, exact resume after kill -9, 2 processes = 1, and the export."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from jalm.chat_template import encode_conversation
from jalm.dpo.config import DpoOptions, dpo_config
from jalm.dpo.dataset import CHOSEN, REJECTED, collate_pairs, encode_pair, tokenize_pairs
from jalm.dpo.losses import pair_losses, sequence_logps
from jalm.dpo.records import Pair, read_pairs
from jalm.sft.dataset import IGNORE, load_encoder
from jalm.train.metrics import read_metrics

REPO = Path(__file__).resolve().parents[1]
DEMO_DPO = REPO / "data" / "dpo" / "demo.jsonl.zst"
PROMPT = [
    {"role": "system", "content": "あなたは丁寧なアシスタントです。"},
    {"role": "user", "content": "日本の首都はどこですか。"},
    {"role": "assistant", "content": "東京です。"},
    {"role": "user", "content": "では、大阪は何地方ですか。"},
]


@pytest.fixture(scope="module")
def dpo_data(tmp_path_factory) -> Path:
    """300 pairs of the bundled preference set, as a plain JSONL file."""
    pairs, report = read_pairs([DEMO_DPO])
    assert report.valid == len(pairs) == 600 and not report.invalid
    path = tmp_path_factory.mktemp("dpo") / "pairs.jsonl"
    with open(path, "w", encoding="utf-8") as out:
        for pair in pairs[:300]:
            record = {"prompt": pair.prompt, "chosen": pair.chosen, "rejected": pair.rejected}
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


def _options(model_dir: Path, data: Path, **overrides) -> DpoOptions:
    return DpoOptions(model=str(model_dir), data=[str(data)], val_fraction=0.1, **overrides)


def _config(lora: bool = False, **overrides):
    values = {"seq_len": 128, "micro_batch_size": 8, "grad_accum": 1, "max_steps": 8, "lr": 1e-3}
    values.update({"save_every": 0, "log_every": 1, "dtype": "float32", **overrides})
    return dpo_config(lora=lora, **values)


def _losses(run_dir: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_metrics(run_dir / "metrics.jsonl") if "loss" in r}


def _val(run_dir: Path) -> dict[int, dict]:
    return {r["step"]: r for r in read_metrics(run_dir / "metrics.jsonl") if "val_reward_accuracy" in r}


def test_every_shape_reads_to_the_same_pair_and_bad_records_are_counted(tmp_path):
    user, good, bad = "大阪は何地方ですか。", "近畿地方です。", "東北地方です。"
    conv = [{"role": "user", "content": user}]
    records = [
        {"prompt": user, "chosen": good, "rejected": bad},
        {
            "prompt": conv,
            "chosen": [{"role": "assistant", "content": good}],
            "rejected": {"role": "assistant", "content": bad},
        },
        {
            "prompt": user,
            "chosen": [*conv, {"role": "assistant", "content": good}],
            "rejected": [*conv, {"role": "assistant", "content": bad}],
        },
        {
            "chosen": f"\n\nHuman: {user}\n\nAssistant: {good}",
            "rejected": f"\n\nHuman: {user}\n\nAssistant: {bad}",
        },
        {"prompt": user, "chosen": good},  # unknown shape
        {"prompt": user, "chosen": good, "rejected": good},  # identical replies
        {
            "chosen": [*conv, {"role": "assistant", "content": good}],
            "rejected": [{"role": "user", "content": "別"}, {"role": "assistant", "content": bad}],
        },
        {"prompt": "", "chosen": good, "rejected": bad},  # empty user turn
        {"prompt": user, "chosen": good, "rejected": 3},  # non-string
    ]
    path = tmp_path / "pairs.jsonl"
    path.write_text(
        "\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n{broken\n", encoding="utf-8"
    )
    pairs, report = read_pairs([path])
    assert [(p.prompt, p.chosen, p.rejected) for p in pairs] == [(conv, good, bad)] * 4
    assert report.by_format == {"prompt_strings": 1, "prompt_messages": 1, "conversations": 1, "hh_text": 1}
    assert report.invalid == {
        "unknown shape": 1,
        "identical replies": 1,
        "prompts differ": 1,
        "empty user turn": 1,
        "non-string content": 1,
        "bad JSON": 1,
    }
    assert (
        report.examples[0]
        == f"{path}:5: unknown shape (keys chosen, prompt; expected chosen and rejected (and prompt))"
    )


def test_masks_cover_exactly_the_replies_and_a_row_has_each_sides_logits_alone(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    encoder = load_encoder(tiny_model_dir)
    pair = Pair(PROMPT, "近畿地方です。", "東北地方だと思います。", "x:1")
    prompt, chosen, rejected = encode_pair(pair, encoder)
    for reply, ids in ((pair.chosen, chosen), (pair.rejected, rejected)):
        full, mask = encode_conversation(
            [*PROMPT, {"role": "assistant", "content": reply}], encoder.encode, encoder.special_ids
        )
        assert full == prompt + ids and ids == encoder.encode(reply) + [encoder.eos_id]
        # The earlier assistant turn is in the prompt, not learnt: only the final reply is.
        assert any(mask[: len(prompt)]) and all(mask[len(prompt) :])
    [example], _ = tokenize_pairs([pair], encoder, seq_len=256)
    batch = collate_pairs([example], [0], encoder.eos_id)
    segments, labels = batch["segments"][0], batch["labels"][0]
    assert labels[segments == CHOSEN].tolist() == chosen and labels[segments == REJECTED].tolist() == rejected
    assert (labels[segments == 0] == IGNORE).all()

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    tensors = {k: torch.from_numpy(v) for k, v in batch.items()}
    with torch.no_grad():
        logps, lengths = sequence_logps(model, **tensors)
    assert lengths[0].tolist() == [len(chosen), len(rejected)]
    for side, ids in enumerate((chosen, rejected)):
        assert logps[0, side].item() == pytest.approx(_direct_logp(model, prompt, ids), abs=1e-4)


def _direct_logp(model, prompt: list[int], reply: list[int]) -> float:
    """Σ log p(reply token | everything before it), the sequence alone, no batching."""
    ids = torch.tensor([prompt + reply])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].double().log_softmax(-1)
    return sum(logits[len(prompt) - 1 + i, t].item() for i, t in enumerate(reply))


def test_truncation_keeps_the_prompts_end_and_whole_replies(tiny_model_dir):
    encoder = load_encoder(tiny_model_dir)
    pair = Pair(PROMPT, "近畿地方です。", "東北地方だと思います。", "a:1")
    prompt, chosen, rejected = encode_pair(pair, encoder)
    seq_len = len(prompt) + len(rejected) - 6  # 5 prompt tokens too many
    [example], stats = tokenize_pairs([pair], encoder, seq_len)
    assert example.prompt.tolist() == prompt[5:] and example.rejected.tolist() == rejected
    assert stats.truncated == 1 and stats.prompt_tokens_cut == 5
    examples, stats = tokenize_pairs([pair], encoder, len(rejected) + 2)
    assert examples == [] and stats.too_long == 1 and stats.too_long_examples[0].startswith("a:1: ")


@pytest.mark.parametrize("kind", ["dpo", "ipo", "simpo", "orpo"])
def test_each_loss_equals_its_formula_on_the_models_log_probabilities(tiny_model_dir, kind):
    from transformers import AutoModelForCausalLM

    encoder = load_encoder(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    pairs = [
        Pair(PROMPT, "近畿地方です。", "東北地方だと思います。", "a:1"),
        Pair(PROMPT[1:2], "東京です。", "大阪", "a:2"),
    ]
    examples, _ = tokenize_pairs(pairs, encoder, 256)
    batch = {k: torch.from_numpy(v) for k, v in collate_pairs(examples, [0, 1], encoder.eos_id).items()}
    with torch.no_grad():
        logps, lengths = sequence_logps(model, **batch)
    ref = torch.tensor([[-30.0, -41.5], [-12.25, -9.0]])
    beta, gamma = 0.3, 0.7
    losses, rewards = pair_losses(kind, beta, logps, lengths, ref, gamma)
    for row, example in enumerate(examples):
        pc = _direct_logp(model, example.prompt.tolist(), example.chosen.tolist())
        pr = _direct_logp(model, example.prompt.tolist(), example.rejected.tolist())
        nc, nr = len(example.chosen), len(example.rejected)
        rc, rr = ref[row].tolist()
        sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
        if kind == "dpo":
            want, reward = (
                -math.log(sig(beta * ((pc - rc) - (pr - rr)))),
                (beta * (pc - rc), beta * (pr - rr)),
            )
        elif kind == "ipo":
            want, reward = ((pc - rc) - (pr - rr) - 1 / (2 * beta)) ** 2, (beta * (pc - rc), beta * (pr - rr))
        elif kind == "simpo":
            want, reward = (
                -math.log(sig(beta * pc / nc - beta * pr / nr - gamma)),
                (beta * pc / nc, beta * pr / nr),
            )
        else:
            odds = lambda m: m - math.log(1 - math.exp(m))  # noqa: E731
            want = -pc / nc - beta * math.log(sig(odds(pc / nc) - odds(pr / nr)))
            reward = (beta * pc / nc, beta * pr / nr)
        assert losses[row].item() == pytest.approx(want, rel=1e-4)
        assert rewards[row].tolist() == pytest.approx(list(reward), rel=1e-4)


def test_lora_run_stores_the_base_models_reference_and_reuses_it(tiny_model_dir, dpo_data, tmp_path):
    from transformers import AutoModelForCausalLM

    from jalm.dpo.reference import REFERENCE_FILE, compute_logps
    from jalm.dpo.train import dpo

    options = _options(tiny_model_dir, dpo_data, lora_rank=4)
    summary = dpo(options, _config(True, max_steps=3, lr=1e-2), tmp_path / "run", "cpu", progress=False)
    assert summary["steps"] == 3
    stored = np.load(tmp_path / "run" / REFERENCE_FILE)
    stats = json.loads((tmp_path / "run" / "dpo_stats.json").read_text())
    assert stats["reference"]["reused"] is False
    encoder = load_encoder(tiny_model_dir)
    pairs, _ = read_pairs([dpo_data])
    from jalm.sft.dataset import is_validation

    train = [p for p in pairs if not is_validation(p, 0.1)]
    examples, _ = tokenize_pairs(train, encoder, 128)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    fresh = compute_logps(base, examples, 3, encoder.eos_id, "cpu")
    assert stored["train"].shape == (len(examples), 2)
    assert np.abs(stored["train"] - fresh).max() < 1e-4
    # A rerun reads the stored values back instead of a second pass.
    dpo(options, _config(True, max_steps=4, lr=1e-2), tmp_path / "run", "cpu", progress=False)
    assert json.loads((tmp_path / "run" / "dpo_stats.json").read_text())["reference"]["reused"] is True
    rows = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if "loss" in r]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    # step 1: policy = reference (adapters start at zero), so the DPO loss is log 2 and rewards are 0
    assert rows[0]["loss"] == pytest.approx(math.log(2), abs=1e-4) and abs(rows[0]["margin"]) < 1e-4
    assert {"reward_chosen", "reward_rejected", "reward_accuracy", "logp_chosen", "logp_rejected"} <= set(
        rows[0]
    )


def test_with_trained_adapters_the_reference_is_the_base_with_adapters_off(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    from jalm.dpo.reference import compute_logps, reference_logps
    from jalm.sft.base import add_lora
    from jalm.train.distributed import DistEnv

    encoder = load_encoder(tiny_model_dir)
    pairs = [
        Pair(PROMPT, "近畿地方です。", "東北地方だと思います。", "a:1"),
        Pair(PROMPT[1:2], "東京です。", "大阪", "a:2"),
    ]
    examples, _ = tokenize_pairs(pairs, encoder, 256)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    want = compute_logps(base, examples, 2, encoder.eos_id, "cpu")
    model = add_lora(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32), 4, 16.0, 0.0, None
    )
    torch.manual_seed(0)
    for name, parameter in model.named_parameters():
        if "lora_B" in name:
            parameter.data.normal_(0, 0.5)  # adapters that change the model
    assert np.abs(compute_logps(model, examples, 2, encoder.eos_id, "cpu") - want).max() > 1e-2
    env = DistEnv(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    from contextlib import nullcontext

    got, reused = reference_logps(
        tmp_path, model, "k", {"train": examples}, 2, encoder.eos_id, env, nullcontext
    )
    assert not reused and np.abs(got["train"] - want).max() < 1e-5


@pytest.mark.parametrize("kind, lr", [("dpo", 2e-3), ("simpo", 1e-3)])
def test_held_out_reward_accuracy_rises_on_the_demo_set(tiny_model_dir, dpo_data, tmp_path, kind, lr):
    from jalm.dpo.train import dpo

    options = _options(tiny_model_dir, dpo_data, loss=kind)
    summary = dpo(options, _config(max_steps=12, lr=lr), tmp_path / "run", "cpu", progress=False)
    val = _val(tmp_path / "run")
    assert list(val) == [0, 12]
    # ~23 held-out pairs. DPO: every reward is 0 before the first step (policy = reference). SimPO on this
    # raw (not instruction-tuned) tiny base keeps its accuracy in 12 steps while margin and loss improve.
    if kind == "dpo":
        assert val[12]["val_reward_accuracy"] > val[0]["val_reward_accuracy"] + 0.3, val
    else:
        assert val[12]["val_reward_accuracy"] >= val[0]["val_reward_accuracy"], val
    assert val[12]["val_margin"] > val[0]["val_margin"] and val[12]["val_loss"] < val[0]["val_loss"]
    assert summary["val_reward_accuracy"] == pytest.approx(val[12]["val_reward_accuracy"], abs=1e-5)
    stats = json.loads((tmp_path / "run" / "dpo_stats.json").read_text())
    assert stats["base_val"]["val_reward_accuracy"] == pytest.approx(val[0]["val_reward_accuracy"], abs=1e-5)
    assert stats["decontamination"]["removed"] == {"jsquad": 0, "aio": 0}
    assert ("reference" in stats) == (kind == "dpo")


def _cli_args(model_dir: Path, data: Path, run_dir: Path, *extra: str) -> list[str]:
    args = ["dpo", "--model", str(model_dir), "--data", str(data), "--out", str(run_dir), "--seq-len", "128"]
    args += ["--micro-batch-size", "4", "--grad-accum", "2", "--max-steps", "12", "--save-every", "4"]
    return [*args, "--log-every", "1", "--lr", "1e-3", "--no-progress", "--dtype", "float32", *extra]


def _cli_dpo(model_dir: Path, data: Path, run_dir: Path, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "jalm.cli", *_cli_args(model_dir, data, run_dir, *extra)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _step_rows(run_dir: Path) -> list[dict]:
    drop = ("lr", "tokens_per_s", "elapsed_s", "grad_norm")
    return [
        {k: v for k, v in r.items() if k not in drop}
        for r in read_metrics(run_dir / "metrics.jsonl")
        if "loss" in r
    ]


def test_kill_9_then_rerun_gives_the_uninterrupted_losses(
    tiny_model_dir, dpo_data, tmp_path, same_checkpoint, kill_9
):
    """Full-parameter DPO: the stored reference, the data order and the weights all resume exactly."""
    reference = _cli_dpo(tiny_model_dir, dpo_data, tmp_path / "reference")
    out, err = reference.communicate(timeout=300)
    assert reference.returncode == 0, err[-2000:]
    assert "reference log-probabilities of" in out and "held-out reward accuracy 0.000 → " in out

    victim = _cli_dpo(tiny_model_dir, dpo_data, tmp_path / "victim")
    kill_9(victim, (tmp_path / "victim" / "checkpoints" / "step_00000004").exists)
    resumed = _cli_dpo(tiny_model_dir, dpo_data, tmp_path / "victim")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-2000:]
    assert "pairs: reused from the run" in out
    assert _step_rows(tmp_path / "victim") == _step_rows(tmp_path / "reference")
    assert len(_step_rows(tmp_path / "reference")) == 12
    same_checkpoint(tmp_path / "reference", tmp_path / "victim")


def test_two_processes_give_the_one_process_losses_under_ddp_and_fsdp(tiny_model_dir, dpo_data, tmp_path):
    """Each step's micro-batches are the same in 1 process × 2 micro-batches and 2 processes × 1 each, the
    reference pass is split between the processes, and the metrics are summed across them."""
    one = _cli_dpo(tiny_model_dir, dpo_data, tmp_path / "one", "--max-steps", "6", "--save-every", "0")
    assert one.wait(timeout=300) == 0, one.stderr.read()[-2000:]
    expected = _step_rows(tmp_path / "one")
    jalm = Path(sys.executable).with_name("jalm")
    launch = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "--no-python",
    ]
    for parallel in ("ddp", "fsdp"):
        run_dir = tmp_path / parallel
        args = _cli_args(
            tiny_model_dir, dpo_data, run_dir, "--max-steps", "6", "--save-every", "3", "--grad-accum", "1"
        )
        result = subprocess.run(
            [*launch, str(jalm), *args, "--parallel", parallel], capture_output=True, text=True, timeout=600
        )
        assert result.returncode == 0, result.stderr[-3000:]
        got = _step_rows(run_dir)
        assert [r["step"] for r in got] == list(range(1, 7))
        for want, row in zip(expected, got, strict=True):
            assert row["reward_accuracy"] == want["reward_accuracy"] and row["tokens"] == want["tokens"]
            for key in ("loss", "margin", "reward_chosen", "logp_chosen", "logp_rejected"):
                assert row[key] == pytest.approx(want[key], abs=2e-4, rel=1e-4), (parallel, key)
        assert json.loads((run_dir / "run.json").read_text())["world_size"] == 2


def test_a_lora_dpo_run_exports_merged_with_its_template_and_jalm_serve_chats_with_it(
    tiny_model_dir, dpo_data, tmp_path
):
    import httpx
    from transformers import AutoModelForCausalLM

    from jalm.dpo.train import dpo
    from jalm.export import export
    from jalm.serve.api import Limits
    from jalm.serve.command import load_app, running

    options = _options(tiny_model_dir, dpo_data, lora_rank=4)
    dpo(options, _config(True, max_steps=3, lr=1e-2), tmp_path / "run", "cpu", progress=False)
    model_dir = export(tmp_path / "run", tmp_path / "model")  # verifies merged logits = adapters' (1e-5)
    provenance = json.loads((model_dir / "jalm.json").read_text())
    assert provenance["kind"] == "dpo" and provenance["loss"] == "dpo" and provenance["beta"] == 0.1
    assert (model_dir / "training" / "dpo_stats.json").exists()
    template = json.loads((tiny_model_dir / "tokenizer_config.json").read_text()).get("chat_template")
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert (
        json.loads((model_dir / "tokenizer_config.json").read_text())["chat_template"] == run["chat_template"]
    )
    assert template is None or template == run["chat_template"]
    merged = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    probe = torch.arange(3, 40).unsqueeze(0)
    with torch.no_grad():
        assert (merged(input_ids=probe).logits - base(input_ids=probe).logits).abs().max() > 1e-3

    app = load_app(model_dir, limits=Limits(max_tokens=16, default_max_tokens=8, max_n=1))
    with running(app) as url:
        body = {"messages": [{"role": "user", "content": "日本の首都はどこですか。"}], "max_tokens": 8}
        response = httpx.post(url.rstrip("/") + "/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["role"] == "assistant"
