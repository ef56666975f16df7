"""Exports that fail safely: a correct LoRA merge of a model with large logits verifies (the check's
tolerance is float32 rounding at the logits' scale, jalm.model.agreement), a wrong one is refused, a
refused export leaves nothing behind that looks usable, and --no-verify is honoured for sft runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from jalm.errors import JalmError
from jalm.model import agreement
from test_sft import _config, _options, sft_data  # noqa: F401  (the module's fixture)


@pytest.fixture(scope="module")
def loud_lora_run(tiny_model_dir, sft_data, tmp_path_factory) -> tuple[Path, Path]:  # noqa: F811
    """A 4-step LoRA run on a base whose output layer is scaled up 40×: logits in the hundreds, where
    float32's spacing is ~1e-5, so the old absolute 1e-5 check refused correct merges."""
    from transformers import AutoModelForCausalLM

    from jalm.sft.train import sft

    root = tmp_path_factory.mktemp("loud")
    base = root / "base"
    shutil.copytree(tiny_model_dir, base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    with torch.no_grad():
        model.get_output_embeddings().weight.mul_(40.0)
    model.save_pretrained(base, safe_serialization=True)
    sft(
        _options(base, sft_data, lora_rank=4), _config(True, max_steps=4), root / "run", "cpu", progress=False
    )
    return base, root / "run"


def _run_logits(run_dir: Path) -> tuple[torch.Tensor, torch.Tensor, torch.nn.Module]:
    from jalm.sft import base as sft_base
    from jalm.sft.export import _probe_ids
    from jalm.train import checkpoint as ckpt

    run = json.loads((run_dir / "run.json").read_text())
    model = sft_base.build_model(run["base"], run["lora"], torch.device("cpu"), run["config"]["seed"])
    ckpt.load_checkpoint(ckpt.latest_checkpoint(run_dir), model, None, frozen=True)
    model.eval()
    probe = _probe_ids(model)
    with torch.no_grad():
        return probe, model(input_ids=probe).logits, model


def test_a_correct_merge_of_large_logits_verifies_within_float32_rounding(loud_lora_run, tmp_path):
    from transformers import AutoModelForCausalLM

    from jalm.export import export

    base, run_dir = loud_lora_run
    out = export(run_dir, tmp_path / "model")  # raised before: max diff above the absolute 1e-5
    probe, want, _ = _run_logits(run_dir)
    merged = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    with torch.no_grad():
        got = merged(input_ids=probe).logits
        base_logits = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)(input_ids=probe).logits
    scale = want.abs().max().item()
    diff = (want - got).abs().max().item()
    assert scale > 100  # the case the issue reports: logits large enough that 1e-5 is under a few ulps
    assert diff > 1e-5  # ...and this merge does differ by more than the old absolute check allowed
    assert diff <= 8 * agreement.FLOAT32_ULP * scale  # a few ulps, well inside the 64-ulp tolerance
    # a merge that lost the adapter would be off by the adapter's effect, far beyond the tolerance
    assert (want - base_logits).abs().max().item() > 10 * agreement.logits_tolerance(want)


def test_a_refused_export_leaves_nothing_and_no_verify_exports_it(loud_lora_run, tmp_path, monkeypatch):
    from jalm.cli import main
    from jalm.export import export

    _, run_dir = loud_lora_run
    out = tmp_path / "model"
    monkeypatch.setattr(agreement, "ULPS", 0)  # a check that every float32 merge fails
    monkeypatch.setattr(agreement, "FLOOR", 0.0)
    with pytest.raises(JalmError, match=r"model: exported model does not reproduce .* nothing was written"):
        export(run_dir, out)
    assert not out.exists() and list(tmp_path.iterdir()) == []  # no weights, no hidden leftovers
    assert main(["export", str(run_dir), "--out", str(out), "--no-verify"]) == 0  # sft runs too
    assert (out / "model.safetensors").exists() and (out / "jalm.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_refused_export_leaves_an_earlier_export_untouched(loud_lora_run, tmp_path, monkeypatch):
    from jalm.export import export

    _, run_dir = loud_lora_run
    out = export(run_dir, tmp_path / "model")
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    monkeypatch.setattr(agreement, "ULPS", 0)
    monkeypatch.setattr(agreement, "FLOOR", 0.0)
    with pytest.raises(JalmError):
        export(run_dir, out)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    monkeypatch.undo()
    assert export(run_dir, out) == out  # a verified export replaces the earlier one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_pretraining_export_is_staged_and_will_not_replace_a_foreign_directory(tiny_run_dir, tmp_path):
    from jalm.export import export

    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "todo.txt").write_text("mine\n")
    with pytest.raises(JalmError, match="not empty and not a model directory"):
        export(tiny_run_dir, foreign)
    assert [p.name for p in foreign.iterdir()] == ["todo.txt"]
    out = export(tiny_run_dir, tmp_path / "model")
    assert (out / "model.safetensors").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "notes"]
