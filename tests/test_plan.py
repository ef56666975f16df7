"""`jalm train --plan`: the arithmetic on the meta device, checked against what autograd really saves, and
the refusal of a run that cannot fit before anything is allocated."""

from __future__ import annotations

import contextlib
import subprocess
import sys

import pytest
import torch

from jalm.errors import JalmError
from jalm.memory import machine_memory
from jalm.model import build_model, count_parameters, get_preset, hf_config
from jalm.train.config import default_config
from jalm.train.loop import mfu
from jalm.train.plan import (
    GIB,
    REFUSE_MARGIN,
    Hardware,
    block_bytes_per_token,
    check_fits,
    gpu,
    make_plan,
    model_shape,
    outside_bytes_per_token,
    peak_flops,
    plan_for_run,
)

H100 = gpu("H100")


def jalm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "jalm.cli", *args], capture_output=True, text=True, timeout=300
    )


def saved_bytes(model, vocab: int, batch: int, seq_len: int, bf16: bool) -> int:
    """Bytes of the tensors autograd saves for backward in one forward + loss (parameters excluded)."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in params:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    ids = torch.randint(0, vocab, (batch, seq_len + 1), generator=torch.Generator().manual_seed(0))
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        with autocast:
            logits = model(input_ids=ids[:, :-1]).logits
        torch.nn.functional.cross_entropy(logits.float().view(-1, vocab), ids[:, 1:].reshape(-1))
    return sum(storages.values())


@pytest.mark.parametrize("preset", ["test", "test-gpt2"])
@pytest.mark.parametrize("bf16", [False, True], ids=["fp32", "bf16"])
def test_activation_formula_is_what_autograd_saves_per_token(preset, bf16):
    """The per-token activation arithmetic equals the bytes the real model saves for backward: the
    difference between 3 and 1 sequences (constant terms such as bf16 weight copies cancel out)."""
    vocab, seq_len = 1000, 32
    shape = model_shape(preset, vocab)
    model = build_model(hf_config(get_preset(preset), vocab), "cpu")
    per_token = (
        saved_bytes(model, vocab, 3, seq_len, bf16) - saved_bytes(model, vocab, 1, seq_len, bf16)
    ) / (2 * seq_len)
    planned = shape.layers * block_bytes_per_token(shape, bf16) + outside_bytes_per_token(shape, bf16)
    assert per_token == pytest.approx(planned + 4 * vocab, rel=0.01)


def test_parameters_are_counted_exactly_on_the_meta_device():
    assert model_shape("1.7b", None).params == 1_652_230_656
    assert model_shape("3.6b", None).params == 3_555_876_864
    shape = model_shape("test", 4000)
    real = build_model(hf_config(get_preset("test"), 4000), "cpu")
    assert shape.params == count_parameters(real)
    assert shape.root_params + shape.layers * shape.block_params == shape.params
    assert next(build_model(hf_config(get_preset("3.6b")), "meta").parameters()).is_meta


def test_published_presets_on_eight_80gb_gpus_with_fsdp2():
    """The README's example: every line is the arithmetic it states."""
    for preset, micro, accum in (("1.7b", 4, 16), ("3.6b", 2, 32)):
        cfg = default_config(preset, global_batch_tokens=2**20)
        plan = make_plan(cfg, None, H100, processes=8, parallel="fsdp", mfu=0.4)
        n = plan.shape.params
        assert (plan.parallel, plan.bf16, plan.checkpointing) == ("fsdp", True, True)
        assert (plan.micro_batch_size, plan.grad_accum, plan.tokens_per_step) == (micro, accum, 2**20)
        lines = {name: value for name, (value, _) in plan.memory.items()}
        assert lines["weights"] == lines["gradients"] == 4 * n // 8
        assert lines["optimizer"] == 8 * n // 8
        assert lines["logits"] == 12 * 51200 * micro * 2048
        assert "bf16 weight copies" not in lines and "DDP gradient buckets" not in lines
        assert plan.peak_bytes == sum(lines.values()) - lines["optimizer step scratch"]
        # Accumulating micro-batches keep whole bf16 parameters and fp32 gradients (6 B per parameter).
        assert lines["FSDP2 accumulation"] == 6 * n - lines["FSDP2 gathers"]
        assert plan.fits and plan.peak_bytes - lines["FSDP2 accumulation"] < 16 * GIB
        assert plan.total_tokens == 100_000 * 2**20
        # the same FLOPs per token as the MFU logged during training
        rate = plan.tokens_per_s / 8
        assert mfu(n, get_preset(preset), 2048, rate, peak_flops=989e12) == pytest.approx(0.4)
        assert plan.seconds == pytest.approx(plan.total_tokens * plan.flops_per_token / (8 * 989e12 * 0.4))
        text = plan.describe()
        assert f"{n:,} parameters" in text and "FSDP2 over 8 processes" in text and "verdict: fits" in text


@pytest.mark.parametrize("preset", ["1.7b", "3.6b"])
def test_flops_per_token_is_what_torch_counts_for_a_training_step(preset):
    """The MFU formula (6N + 12·L·H·T) against an independent count: torch's FlopCounterMode over one
    forward and backward of the real model shape (on the meta device: no memory, no time)."""
    from torch.utils.flop_counter import FlopCounterMode

    seq_len = 2048
    shape = get_preset(preset)
    model = build_model(hf_config(shape), "meta")
    ids = torch.zeros((1, seq_len), dtype=torch.long, device="meta")
    with FlopCounterMode(display=False) as counter:
        model(input_ids=ids, labels=ids).loss.backward()
    counted = counter.get_total_flops() / seq_len
    n = count_parameters(model)
    formula = mfu(n, shape, seq_len, 1.0, peak_flops=1.0)  # = FLOPs per token
    # 6N also counts the norms' and biases' parameters, which are no matrix multiplications: < 0.5 %
    assert counted <= formula <= 1.005 * counted
    assert 6 * n < 0.95 * counted  # the attention term matters: 6N alone is more than 5 % short
    plan = make_plan(default_config(preset, global_batch_tokens=2**20), None, H100, processes=8)
    assert plan.flops_per_token == formula


def test_ddp_keeps_replicas_and_fsdp2_shards():
    cfg = default_config("1.7b")
    ddp = make_plan(cfg, None, H100, processes=4, parallel="ddp")
    fsdp = make_plan(cfg, None, H100, processes=4, parallel="fsdp")
    single = make_plan(cfg, None, H100, processes=1, parallel="fsdp")
    n = ddp.shape.params
    assert ddp.memory["weights"][0] == 4 * n and ddp.memory["DDP gradient buckets"][0] == 4 * n
    assert ddp.memory["bf16 weight copies"][0] == 2 * ddp.shape.matrix_params
    assert fsdp.memory["optimizer"][0] == 8 * n // 4
    assert single.parallel == "none" and single.memory["weights"][0] == 4 * n  # one process is not wrapped
    assert make_plan(cfg, None, H100, processes=4).parallel == "fsdp"  # auto: FSDP2 above 500M
    assert make_plan(default_config("tiny"), 8000, H100, processes=4).parallel == "ddp"
    # checkpointing keeps one block input per layer instead of every block's activations
    full = make_plan(default_config("1.7b", activation_checkpointing=False), None, H100, processes=8)
    assert full.memory["activations"][0] > 5 * fsdp.memory["activations"][0] // 2


def test_tokens_steps_and_epochs_over_the_packed_data(packed_dir):
    from jalm.data import read_meta

    cfg = default_config("test", max_steps=50, micro_batch_size=4, grad_accum=3)
    plan = plan_for_run(cfg, packed_dir, device="cpu", processes=2)
    train_tokens = read_meta(packed_dir)["train_tokens"]
    windows = (train_tokens - 1) // 64
    assert plan.tokens_per_step == 4 * 64 * 3 * 2 and plan.total_tokens == 50 * 4 * 64 * 3 * 2
    assert plan.epochs == pytest.approx(50 * 4 * 3 * 2 / windows)
    assert f"{train_tokens:,} training tokens" in plan.describe()
    budget = make_plan(default_config("1.7b", time_budget_s=3600), None, H100, processes=8)
    assert budget.planned_steps == int(3600 * budget.tokens_per_s / budget.tokens_per_step)


def test_refuses_only_what_clearly_cannot_fit():
    cfg = default_config("3.6b")  # the example: 3.6b on a 24 GB CPU machine
    plan = make_plan(cfg, None, Hardware("cpu", "cpu", 24 * GIB, 0.0), processes=1)
    assert plan.refused
    with pytest.raises(JalmError, match=r"^preset 3.6b cannot fit: weights 13.25 GiB \+ gradients") as error:
        check_fits(plan)
    assert "\n" not in str(error.value)
    # just over the memory is "may not fit", not refused: the estimate errs by up to the margin
    need = plan.needed_bytes
    tight = make_plan(cfg, None, Hardware("big", "cpu", int(need / (1 + REFUSE_MARGIN / 2)), 0.0))
    assert not tight.fits and not tight.refused
    check_fits(tight)
    assert "verdict: may not fit" in tight.describe()
    over = make_plan(cfg, None, Hardware("big", "cpu", int(need / (1 + REFUSE_MARGIN * 1.1)), 0.0))
    assert over.refused
    # CPU processes share the machine's RAM
    shared = make_plan(default_config("tiny"), 8000, Hardware("cpu", "cpu", 8 * GIB, 0.0), processes=4)
    assert shared.needed_bytes == 4 * shared.peak_bytes


def test_small_presets_fit_this_machine(packed_dir):
    for preset in ("test", "mini", "tiny"):
        plan = plan_for_run(default_config(preset), packed_dir, device="cpu")
        assert plan.fits and not plan.refused, plan.describe()


def test_gpu_names_and_the_shared_peak_table():
    assert gpu("A100-40GB").memory == 40 * GIB and gpu("A100").memory == 80 * GIB
    assert gpu("a100").peak_flops == 312e12 and gpu("A10").peak_flops == 125e12
    assert gpu("H100 PCIe").peak_flops == 756e12 and gpu("NVIDIA H200").memory == 143771 * 2**20
    assert gpu("MI300X:192").memory == 192 * GIB and gpu("MI300X:192").peak_flops == 0.0
    assert peak_flops("NVIDIA H100 80GB HBM3") == 989e12 and peak_flops("") == 0.0
    with pytest.raises(JalmError, match="unknown GPU"):
        gpu("V100")
    assert machine_memory() > GIB


def test_plan_flag_prints_and_trains_nothing(packed_dir, tmp_path):
    result = jalm(
        "train", "--preset", "test", "--data", str(packed_dir), "--out", str(tmp_path / "run"), "--plan"
    )
    assert result.returncode == 0, result.stderr
    assert (
        "parameters" in result.stdout
        and "epochs over it" in result.stdout
        and "verdict: fits" in result.stdout
    )
    assert not (tmp_path / "run").exists()
    big = jalm(
        *("train", "--preset", "3.6b", "--data", str(tmp_path / "not-here"), "--out", str(tmp_path / "big")),
        *("--plan", "--gpus", "8", "--gpu", "H100", "--parallel", "fsdp", "--global-batch-tokens", "1048576"),
    )
    assert big.returncode == 0, big.stderr
    assert "FSDP2 over 8 processes on H100" in big.stdout and "days" in big.stdout


def test_a_run_that_cannot_fit_is_refused_before_allocating(packed_dir, tmp_path):
    """`jalm train` refuses in one line, without a traceback and without creating the run directory.
    The micro-batch is chosen so the estimate is twice this machine's memory (on 24 GB: the default 3.6b)."""
    per_sequence = 12 * 51200 * 2048
    micro = max(2, int(2 * machine_memory() / per_sequence) + 1) if machine_memory() > 40 * GIB else 2
    run = tmp_path / "run"
    args = ("train", "--preset", "3.6b", "--data", str(packed_dir), "--out", str(run), "--device", "cpu")
    result = jalm(*args, "--micro-batch-size", str(micro))
    assert result.returncode == 2
    assert result.stderr.startswith("jalm train: error: preset 3.6b cannot fit: weights 13.25 GiB")
    assert len(result.stderr.strip().splitlines()) == 1 and not run.exists()
