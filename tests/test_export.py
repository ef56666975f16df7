"""The exported directory: LINE's model-card snippet runs on it, and transformers 4 and 5 read it the same way."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jalm.errors import JalmError
from jalm.hf import check_model_dir

PROMPT = "おはようございます、今日の天気は"
PROBE = Path(__file__).with_name("compat_probe_model.py")


def tf4_path() -> Path:
    path = Path(sys.prefix) / "tf4"
    assert (path / "transformers").is_dir(), (
        f"{path}: transformers 4.x side install missing; run `make install`"
    )
    return path


def probe(model_dir: Path, tf4: bool) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tf4_path())} if tf4 else {**os.environ, "PYTHONPATH": ""}
    result = subprocess.run(
        [sys.executable, str(PROBE), str(model_dir), PROMPT],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_line_model_card_snippet_runs_on_the_export(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline, set_seed

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir, use_fast=False)
    generator = pipeline("text-generation", model=model, tokenizer=tokenizer, device=-1)
    set_seed(101)
    text = generator(
        PROMPT, max_length=30, do_sample=True, pad_token_id=tokenizer.pad_token_id, num_return_sequences=5
    )
    assert len(text) == 5
    assert all(
        t["generated_text"].startswith(PROMPT) and len(t["generated_text"]) > len(PROMPT) for t in text
    )
    assert tokenizer.pad_token_id == 3 and tokenizer.eos_token_id == 2 and tokenizer.bos_token_id == 1


def test_export_files_and_provenance(tiny_model_dir):
    names = {p.name for p in tiny_model_dir.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "spiece.model",
        "tokenizer.json",
        "tokenizer_config.json",
        "jalm.json",
    } <= names
    assert not any(n.endswith((".bin", ".pt")) for n in names)
    provenance = json.loads((tiny_model_dir / "jalm.json").read_text())
    assert provenance["preset"] == "test" and provenance["steps"] == 30
    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert config["architectures"] == ["GPTNeoXForCausalLM"] and config["rotary_pct"] == 1.0
    assert (tiny_model_dir / "training" / "metrics.jsonl").exists()


def test_transformers_4_and_5_give_the_same_model(tiny_model_dir):
    five, four = probe(tiny_model_dir, tf4=False), probe(tiny_model_dir, tf4=True)
    assert five["transformers"].startswith("5.") and four["transformers"].startswith("4.")
    assert five["rotary"] == four["rotary"] == 1.0
    assert four["prompt_ids"] == five["prompt_ids"]
    assert four["greedy"] == five["greedy"]
    assert four["text"] == five["text"]
    assert four["logits"] == pytest.approx(five["logits"], abs=1e-4)


def test_without_legacy_rotary_keys_transformers_4_reads_another_model(tiny_model_dir, tmp_path):
    """Why export writes rotary_pct: transformers 5's own config.json silently means 0.25 to 4.x."""
    stripped = tmp_path / "model"
    shutil.copytree(tiny_model_dir, stripped)
    config = json.loads((stripped / "config.json").read_text())
    for key in ("rotary_pct", "rotary_emb_base"):
        config.pop(key)
    (stripped / "config.json").write_text(json.dumps(config))
    five, four = probe(stripped, tf4=False), probe(stripped, tf4=True)
    assert five["rotary"] == 1.0 and four["rotary"] == 0.25
    assert four["logits"] != pytest.approx(five["logits"], abs=1e-4)


def test_model_directory_without_weights_is_one_line_error(tiny_model_dir, tmp_path):
    broken = tmp_path / "model"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "model.safetensors").unlink()
    with pytest.raises(JalmError, match="model directory has no weights"):
        check_model_dir(broken)


def test_export_of_a_directory_that_is_not_a_run(tmp_path):
    from jalm.export import export

    with pytest.raises(JalmError, match="not a training run directory"):
        export(tmp_path, tmp_path / "out")


IDIOM = """
import sys, tempfile, torch, transformers
from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline
model = AutoModelForCausalLM.from_pretrained(sys.argv[1])
for fast in (False, True):
    tokenizer = AutoTokenizer.from_pretrained(sys.argv[1], use_fast=fast)
    inputs = tokenizer(sys.argv[2], return_tensors="pt")
    assert set(inputs) == {"input_ids", "attention_mask"}, sorted(inputs)
    out = model.generate(**inputs, max_new_tokens=4, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert out.shape[1] == inputs["input_ids"].shape[1] + 4
    # a padded batch, padded on the left as generation wants
    tokenizer.padding_side = "left"
    batch = tokenizer([sys.argv[2], "こんにちは"], return_tensors="pt", padding=True)
    assert set(batch) == {"input_ids", "attention_mask"} and batch["attention_mask"][1, 0] == 0
    out = model.generate(**batch, max_new_tokens=3, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert out.shape == (2, batch["input_ids"].shape[1] + 3)
# LINE's model-card snippet
generator = pipeline("text-generation", model=model, tokenizer=tokenizer, device=-1)
text = generator(sys.argv[2], max_length=20, do_sample=True, pad_token_id=tokenizer.pad_token_id,
                 num_return_sequences=2)
assert len(text) == 2 and text[0]["generated_text"].startswith(sys.argv[2])
# bf16 loading, as users do on GPUs
half = AutoModelForCausalLM.from_pretrained(sys.argv[1], torch_dtype=torch.bfloat16)
assert next(half.parameters()).dtype == torch.bfloat16
# save_pretrained round trip: same logits, tokenizer still without token_type_ids
ids = tokenizer(sys.argv[2], return_tensors="pt").input_ids
with tempfile.TemporaryDirectory() as saved:
    model.save_pretrained(saved)
    tokenizer.save_pretrained(saved)
    again = AutoModelForCausalLM.from_pretrained(saved)
    assert torch.equal(model(ids).logits, again(ids).logits)
    assert set(AutoTokenizer.from_pretrained(saved)(sys.argv[2])) == {"input_ids", "attention_mask"}
print(transformers.__version__)
"""


def run_idiom(model_dir: Path, tf4: bool) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(tf4_path()) if tf4 else ""}
    return subprocess.run(
        [sys.executable, "-c", IDIOM, str(model_dir), PROMPT],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.mark.parametrize("tf4", [False, True])
def test_generate_on_the_tokenizers_output_works_under_both_majors(tiny_model_dir, tf4):
    """The idioms users write first, starting with `model.generate(**tokenizer(text, return_tensors="pt"))`:
    under 4.x a PreTrainedTokenizerFast also returns token_type_ids, which generate() refuses for GPT-NeoX."""
    result = run_idiom(tiny_model_dir, tf4)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1].startswith("4." if tf4 else "5.")


def make_old_export(model_dir: Path, out: Path) -> Path:
    """An export as jalm wrote it before: no model_input_names, no 4.x rotary keys."""
    shutil.copytree(model_dir, out)
    for name, keys in (("tokenizer_config.json", ["model_input_names"]), ("config.json", ["rotary_pct"])):
        data = json.loads((out / name).read_text())
        for key in keys:
            data.pop(key)
        (out / name).write_text(json.dumps(data))
    return out


def test_upgrade_makes_an_old_export_work_under_transformers_4(tiny_model_dir, tmp_path, capsys):
    from jalm.cli import main

    old = make_old_export(tiny_model_dir, tmp_path / "old")
    failed = run_idiom(old, tf4=True)
    assert failed.returncode != 0 and "token_type_ids" in failed.stderr
    assert main(["export", str(old), "--upgrade"]) == 0
    assert "2 change(s)" in capsys.readouterr().out
    upgraded = run_idiom(old, tf4=True)
    assert upgraded.returncode == 0, upgraded.stderr[-2000:]
    assert main(["export", str(old), "--upgrade"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert json.loads((old / "config.json").read_text())["rotary_pct"] == 1.0


def test_vllm_check_passes_jalm_exports_of_both_layouts(tiny_model_dir, tokenizer_dir, tmp_path):
    from jalm.export.vllm_check import check_vllm
    from jalm.model import build_model, get_preset, hf_config
    from jalm.model.build import portable_config_dict
    from jalm.tokenizer import write_hf_tokenizer_files

    assert [f for f in check_vllm(tiny_model_dir) if f.level == "error"] == []
    gpt2 = tmp_path / "gpt2"
    config = hf_config(get_preset("test-gpt2"), 4000)
    build_model(config).save_pretrained(gpt2)
    (gpt2 / "config.json").write_text(json.dumps(portable_config_dict(config)))
    write_hf_tokenizer_files(tokenizer_dir / "spiece.model", gpt2, model_max_length=256)
    findings = check_vllm(gpt2)
    assert [f for f in findings if f.level == "error"] == []
    assert any("head size 16" in f.message for f in findings)  # the test preset's heads are too narrow


def test_vllm_check_finds_what_vllm_would_get_wrong(tiny_model_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    from jalm.export.vllm_check import check_vllm

    broken = make_old_export(tiny_model_dir, tmp_path / "broken")
    weights = load_file(broken / "model.safetensors")
    weights["gpt_neox.layers.0.attention.extra.weight"] = weights.pop(
        "gpt_neox.layers.0.attention.dense.weight"
    )
    save_file(weights, broken / "model.safetensors")
    generation = json.loads((broken / "generation_config.json").read_text())
    (broken / "generation_config.json").write_text(json.dumps({**generation, "temperature": 0.7}))
    messages = [f"{f.level}: {f.message}" for f in check_vllm(broken)]
    assert any(m.startswith("error: config.json: no rotary_pct") for m in messages), messages
    assert any(m.startswith("error: weights: 1 tensors unknown") and "attention.extra" in m for m in messages)
    assert any(m.startswith("error: weights: 1 tensors missing") and "attention.dense" in m for m in messages)
    assert any(m.startswith("warning: generation_config.json sets temperature") for m in messages)
    config = json.loads((broken / "config.json").read_text())
    config["architectures"] = ["LlamaForCausalLM"]  # a family jalm knows, but not this model_type
    (broken / "config.json").write_text(json.dumps(config))
    assert check_vllm(broken)[0].message == "config.json: model_type 'gpt_neox' ≠ 'llama'"
    config["architectures"] = ["MambaForCausalLM"]
    (broken / "config.json").write_text(json.dumps(config))
    assert check_vllm(broken)[0].message.startswith("config.json: architectures ['MambaForCausalLM']")
