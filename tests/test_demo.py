"""`jalm demo` end to end on a small slice of the bundled data: every stage hands its files to the next."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from jalm.demo import PROMPT, run_demo
from jalm.jsonl import read_records
from jalm.resources import bundled
from jalm.train.metrics import read_metrics


def test_demo_runs_every_stage_and_reports(small_corpus, tmp_path, capsys):
    dev = tmp_path / "dev.jsonl"
    with open(dev, "w", encoding="utf-8") as out:
        for record in itertools.islice(read_records([bundled("dev/wiki_jaquad.jsonl.zst")]), 3):
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    raw = [small_corpus, bundled("noisy/web_raw.jsonl.zst")]
    summary = run_demo(
        tmp_path / "demo",
        train_seconds=3,
        vocab_size=4000,
        eval_limit=2,
        progress=False,
        raw_inputs=raw,
        dev_file=dev,
        sft_seconds=3,
        dpo_seconds=2,
    )
    printed = capsys.readouterr().out
    for heading in (
        "1/9 clean",
        "2/9 tokenizer",
        "3/9 pack",
        "4/9 train",
        "5/9 export",
        "6/9 eval",
        "7/9 generate",
        "8/9 sft",
        "9/9 dpo",
    ):
        assert heading in printed
    assert "characters per token" in printed and "bits per character" in printed and "| model |" in printed
    results = json.loads((tmp_path / "demo" / "results.json").read_text())
    assert set(results["tasks"]) == {"ppl", "jsquad", "aio", "jcommonsenseqa", "jnli", "jsts"}
    assert results["tasks"]["jnli"]["n"] == results["tasks"]["jsts"]["n"] == 10  # the demo's JGLUE prefix
    assert "| JCommonsenseQA | JNLI | JSTS (Pearson) |" in printed
    assert results["tasks"]["ppl"]["documents"] == 3 and results["tasks"]["jsquad"]["n"] == 2
    assert (tmp_path / "demo" / "model" / "model.safetensors").exists()
    assert len(summary["samples"]) == 5 and all(s.startswith(PROMPT) for s in summary["samples"])
    stats = json.loads((tmp_path / "demo" / "clean" / "stats.json").read_text())
    assert stats["input"] == stats["kept"] + stats["rejected_total"] + stats["malformed"]
    # Instruction tuning: the bundled set is clean of the evaluation sets, the chat is shown before and after.
    assert "0 removed as overlapping the evaluation sets" in printed and "held-out masked loss" in printed
    assert set(summary["chat"]) == {"question", "before", "after"}
    tokenizer_config = json.loads((tmp_path / "demo" / "sft-model" / "tokenizer_config.json").read_text())
    assert "システム: " in tokenizer_config["chat_template"]
    # MT-Bench-ja judged by the demo's own server: 1 question × 2 turns, marked as a smoke test.
    mt = json.loads((tmp_path / "demo" / "results-sft.json").read_text())["tasks"]["mt-bench-ja"]
    assert mt["judged"] == 2 and "smoke test" in mt["note"] and "MT-Bench-ja" in printed
    judged = (tmp_path / "demo" / "mt-bench" / "judgments.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(judged) == 2 and mt["unparsable"] == sum(json.loads(j)["score"] == -1 for j in judged)
    # Preference tuning: held-out reward accuracy before (all rewards 0: policy = reference) and after.
    assert "held-out (" in printed and summary["dpo"]["reward_accuracy"][0] == 0.0
    assert (tmp_path / "demo" / "dpo-model" / "model.safetensors").exists()
    # The loss fell: on the held-out dev text, the exported model beats the run's own initial weights
    # (rebuilt from run.json's preset, seed and init), and instruction tuning beat its base.
    initial, trained = held_out_losses(tmp_path / "demo", dev)
    assert trained < initial
    sft_curve = [
        r["val_loss"] for r in read_metrics(tmp_path / "demo" / "sft" / "metrics.jsonl") if "val_loss" in r
    ]
    assert sft_curve[-1] < sft_curve[0]


def held_out_losses(demo: Path, dev: Path) -> tuple[float, float]:
    """Mean next-token loss on `dev`'s texts: (the run's initial weights, the exported model)."""
    import sentencepiece as spm
    import torch
    from transformers import AutoModelForCausalLM

    from jalm.model import build_model, get_preset, init_weights

    run = json.loads((demo / "train" / "run.json").read_text())
    trained = AutoModelForCausalLM.from_pretrained(demo / "model", dtype=torch.float32).eval()
    preset, config = get_preset(run["preset"]), run["config"]
    torch.manual_seed(config["seed"])
    initial = build_model(trained.config, "cpu")
    generator = torch.Generator("cpu").manual_seed(config["seed"])
    init_weights(initial, preset.hidden, preset.layers, config["init"], generator=generator)
    initial.eval()
    tokenizer = spm.SentencePieceProcessor(model_file=str(demo / "model" / "spiece.model"))
    losses: dict[str, list[float]] = {"initial": [], "trained": []}
    for record in read_records([dev]):
        ids = torch.tensor([tokenizer.encode(record["text"])[: preset.max_positions]])
        with torch.no_grad():
            for name, model in (("initial", initial), ("trained", trained)):
                losses[name].append(model(input_ids=ids, labels=ids).loss.item())
    return sum(losses["initial"]) / len(losses["initial"]), sum(losses["trained"]) / len(losses["trained"])
