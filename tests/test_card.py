"""`jalm card` and the card's facts: a Hub README whose metadata parses, whose usage snippet runs and prints
the card's own samples; a published-style directory (config + weights + tokenizer only) still gets a card
and a page that say what is unknown; damaged side files are reported, not fatal."""

from __future__ import annotations

import itertools
import json
import re
import shutil

import httpx
import pytest
import yaml

from jalm.cli import main
from jalm.generate import PROMPT, generate
from jalm.jsonl import read_records, write_records
from jalm.serve.card import build_card, to_markdown
from jalm.serve.command import load_app, running, write_card
from jalm.serve.facts import collect
from jalm.serve.page import render_page

RESULTS = {
    "model": "m",
    "model_name": "jalm-tiny",
    "params": 356_096,
    "tasks": {
        "ppl": {
            "ppl": 901.5,
            "bits_per_char": 7.25,
            "tokens": 4000,
            "chars": 7000,
            "documents": 9,
            "data": "dev.jsonl.zst",
        },
        "jsquad": {"exact_match": 2.5, "f1": 6.75, "n": 40, "shots": 3},
        "aio": {"exact_match": 0.0, "n": 40},
    },
}
PUBLISHED_FILES = (
    "config.json",
    "model.safetensors",
    "spiece.model",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
)


@pytest.fixture(scope="module")
def full_model(tiny_model_dir, repo_root, tmp_path_factory):
    """The tiny model with everything the pipeline writes: real clean stats, metrics, plot, results."""
    from jalm.corpus import clean

    root = tmp_path_factory.mktemp("card")
    model = root / "model"
    shutil.copytree(tiny_model_dir, model)
    raw = []
    for name, n in (("wiki_jaquad", 20), ("aozora", 5)):  # small files named as the bundled corpora are
        records = itertools.islice(read_records([repo_root / "data" / "corpus" / f"{name}.jsonl.zst"]), n)
        write_records(root / f"{name}.jsonl", records)
        raw.append(root / f"{name}.jsonl")
    clean(raw, root / "clean", progress=False)
    shutil.copy2(root / "clean" / "stats.json", model / "training" / "clean_stats.json")
    (model / "results.json").write_text(json.dumps(RESULTS), encoding="utf-8")
    return model


@pytest.fixture(scope="module")
def published_model(tiny_model_dir, tmp_path_factory):
    """Only what a published LINE model directory holds: config, weights, tokenizer."""
    model = tmp_path_factory.mktemp("published") / "japanese-tiny"
    model.mkdir()
    for name in PUBLISHED_FILES:
        shutil.copy2(tiny_model_dir / name, model / name)
    return model


def split_readme(text: str) -> tuple[dict, str]:
    match = re.match(r"^---\n(.*?)\n---\n(.*)$", text, re.S)
    assert match, text[:300]
    return yaml.safe_load(match.group(1)), match.group(2)


def test_card_readme_metadata_facts_snippet_and_samples(full_model):
    out = write_card(full_model)
    assert out == full_model / "README.md"
    meta, body = split_readme(out.read_text(encoding="utf-8"))
    assert meta["language"] == ["ja"] and meta["license"] == "apache-2.0"
    assert meta["library_name"] == "transformers" and meta["pipeline_tag"] == "text-generation"
    assert meta["datasets"] == ["SkelterLabsInc/JaQuAD"]  # the bundled Wikipedia text, known by file name
    assert meta["metrics"] == ["perplexity", "exact_match", "f1"]
    values = {
        (r["dataset"]["type"], r["metrics"][0]["type"]): r["metrics"][0]["value"]
        for r in meta["model-index"][0]["results"]
    }
    assert values[("ppl", "perplexity")] == 901.5 and values[("jsquad", "f1")] == 6.75
    stats = json.loads((full_model / "training" / "clean_stats.json").read_text(encoding="utf-8"))
    for fact in (
        "356,096",
        "GPTNeoXForCausalLM",
        "| jalm-tiny | 356.1K | 901.50 | 7.250 | 0.0 | 2.50 | 6.75 |",
        f"{stats['input']:,} input documents, {stats['kept']:,} kept",
        "![training and validation loss by step](training/loss.png)",
        "Unigram, byte fallback",
        "β2 0.95",
    ):
        assert fact in body, fact

    samples = generate(full_model, PROMPT, max_length=30, do_sample=True, num_return_sequences=5, seed=101)
    shown = body.split("## Sample outputs")[1].split("```text\n")[1].split("\n```")[0].splitlines()
    assert shown == [s.replace("\n", "\\n") for s in samples]
    snippet = body.split("```python\n")[1].split("\n```")[0]
    assert f'from_pretrained("{full_model}", use_fast=False)' in snippet
    namespace: dict = {}
    exec(compile(snippet.replace("print(t)", "pass"), "README.md snippet", "exec"), namespace)
    assert [t["generated_text"] for t in namespace["text"]] == samples  # the card's samples are the snippet's


def test_card_cli_with_repo_id_and_results_file(full_model, tmp_path, capsys):
    results = tmp_path / "other_results.json"
    results.write_text(json.dumps({**RESULTS, "tasks": {"ppl": RESULTS["tasks"]["ppl"]}}), encoding="utf-8")
    out = tmp_path / "hub" / "README.md"
    assert (
        main(
            [
                "card",
                "--model",
                str(full_model),
                "--out",
                str(out),
                "--results",
                str(results),
                "--no-samples",
                "--repo-id",
                "me/jalm-tiny",
                "--license",
                "cc-by-sa-4.0",
                "--dataset",
                "me/corpus",
            ]
        )
        == 0
    )
    assert str(out) in capsys.readouterr().out
    meta, body = split_readme(out.read_text(encoding="utf-8"))
    assert meta["license"] == "cc-by-sa-4.0" and meta["datasets"] == ["me/corpus"]
    assert meta["metrics"] == ["perplexity"] and meta["model-index"][0]["name"] == "me/jalm-tiny"
    assert 'from_pretrained("me/jalm-tiny")' in body
    assert "(../../" in body and "training/loss.png)" in body  # the plot, relative to where the README is
    assert main(["card", "--model", str(full_model), "--results", str(tmp_path / "missing.json")]) == 2
    assert "missing.json: no such results file" in capsys.readouterr().err


def test_published_layout_gets_a_card_and_a_page_saying_what_is_unknown(published_model, tiny_model_dir):
    facts = collect(published_model)
    provenance = json.loads((tiny_model_dir / "jalm.json").read_text(encoding="utf-8"))
    assert facts.params == provenance["params"] and facts.params_source == "counted from config.json"
    text = to_markdown(build_card(facts))
    for unknown in (
        "of unknown training provenance",
        "How this model was trained is unknown",
        "Loss curve: unknown",
        "Cleaning statistics: unknown",
        "Unknown: no results.json",
    ):
        assert unknown in text, unknown
    assert main(["card", "--model", str(published_model), "--no-samples"]) == 0
    meta, _ = split_readme((published_model / "README.md").read_text(encoding="utf-8"))
    assert meta["metrics"] == [] and meta["datasets"] == [] and "model-index" not in meta

    with running(load_app(published_model)) as url:
        page = httpx.get(url, timeout=30)
        assert page.status_code == 200 and "How this model was trained is unknown" in page.text
        assert "japanese-tiny" in page.text and "Playground" in page.text
        missing = httpx.get(url + "files/loss.png", timeout=30)
        assert (
            missing.status_code == 404
            and missing.json()["error"]["message"] == "no loss curve for this model"
        )


def test_damaged_side_files_are_reported_not_fatal(full_model, tmp_path):
    model = tmp_path / "damaged"
    shutil.copytree(full_model, model)
    (model / "jalm.json").write_text("{not json", encoding="utf-8")
    (model / "training" / "clean_stats.json").write_text(
        json.dumps({"kept": 5, "extra": {"x": 1}}), encoding="utf-8"
    )
    with open(model / "training" / "metrics.jsonl", "a", encoding="utf-8") as handle:
        handle.write("garbage\n")
    (model / "training" / "loss.png").unlink()
    (model / "results.json").write_text(json.dumps({"model": "x"}), encoding="utf-8")
    facts = collect(model)
    joined = "\n".join(facts.problems)
    assert "jalm.json: cannot be read" in joined and "1 line(s) not metrics records" in joined
    assert "not a jalm results file" in joined
    assert facts.params == 356_096  # counted from config.json instead
    text = to_markdown(build_card(facts))
    assert (
        "unknown input documents, 5 kept" in text
        and f"Unknown: {model / 'results.json'} is not a readable" in text
    )
    page = render_page(
        build_card(facts, loss_src="/files/loss.png"),
        facts.name,
        256,
        {"max_tokens": 64, "max_n": 4, "max_prompt_chars": 100},
    )
    assert "jalm.json: cannot be read" in page
    out = write_card(model, samples=False)
    assert (model / "loss.png").read_bytes()[:4] == b"\x89PNG"  # drawn from metrics.jsonl beside the README
    assert "(loss.png)" in out.read_text(encoding="utf-8")
