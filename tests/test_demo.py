"""`jalm demo` end to end on a small slice of the bundled data: every stage hands its files to the next."""

from __future__ import annotations

import itertools
import json

from jalm.demo import PROMPT, run_demo
from jalm.jsonl import read_records
from jalm.resources import bundled


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
    assert set(results["tasks"]) == {"ppl", "jsquad", "aio"}
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
    # Preference tuning: held-out reward accuracy before (all rewards 0: policy = reference) and after.
    assert "held-out (" in printed and summary["dpo"]["reward_accuracy"][0] == 0.0
    assert (tmp_path / "demo" / "dpo-model" / "model.safetensors").exists()
