"""The evaluation tasks on a real tiny model: perplexity by hand, batched = one at a time, prefixes, files."""

from __future__ import annotations

import json
import math
import shutil

import pytest

from jalm.errors import JalmError
from jalm.eval import AioChatConfig, PplConfig, evaluate, evaluate_aio, evaluate_jsquad, evaluate_ppl, load_lm
from jalm.eval.generation import fit_prompt
from jalm.eval.jsquad import fewshot_plan, load_squad
from jalm.eval.perplexity import plan_windows
from jalm.jsonl import read_texts
from jalm.resources import bundled


@pytest.fixture(scope="module")
def lm(tiny_model_dir):
    return load_lm(tiny_model_dir)


@pytest.fixture(scope="module")
def varied_lm(tiny_model_dir, tmp_path_factory):
    """The tiny model with larger random weights: a few training steps teach it one favourite token, which
    would make batched = one-at-a-time true whatever the padding did; these continuations depend on the
    prompt and its positions."""
    import torch
    from transformers import AutoModelForCausalLM

    out = tmp_path_factory.mktemp("varied_model")
    shutil.copytree(tiny_model_dir, out, dirs_exist_ok=True)
    model = AutoModelForCausalLM.from_pretrained(out)
    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() > 1:
                parameter.normal_(0.0, 0.2)
    model.save_pretrained(out)
    return load_lm(out)


@pytest.fixture(scope="module")
def gpt2_lm(tiny_model_dir, tmp_path_factory):
    """A random GPT-2 layout (learned absolute positions, a short context) with the same tokenizer."""
    import torch
    from transformers import AutoConfig, GPT2Config, GPT2LMHeadModel

    out = tmp_path_factory.mktemp("gpt2_model")
    shutil.copytree(tiny_model_dir, out, dirs_exist_ok=True)
    for name in ("config.json", "model.safetensors", "generation_config.json"):
        (out / name).unlink(missing_ok=True)
    vocab = AutoConfig.from_pretrained(tiny_model_dir).vocab_size
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=vocab,
        n_embd=64,
        n_layer=2,
        n_head=4,
        n_positions=96,
        initializer_range=0.2,
        bos_token_id=1,
        eos_token_id=2,
    )
    GPT2LMHeadModel(config).save_pretrained(out)
    return load_lm(out)


@pytest.fixture(scope="module")
def ppl_file(tmp_path_factory):
    """Four real documents (one long, cut so several windows are needed), a one-character and an empty one."""
    texts = list(read_texts([bundled("dev/wiki_jaquad.jsonl.zst")]))[:3]
    docs = [texts[0][:300], texts[1][:120], texts[2][:40], "あ", ""]
    path = tmp_path_factory.mktemp("ppl") / "docs.jsonl"
    path.write_text(
        "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in docs), encoding="utf-8"
    )
    return path, docs


def test_ppl_equals_a_direct_computation_over_the_same_windows(lm, ppl_file):
    import torch

    path, docs = ppl_file
    window, stride = 24, 10
    metrics, _ = evaluate_ppl(lm, path, window=window, stride=stride, batch_size=3, progress=False)

    total, tokens = 0.0, 0
    with torch.no_grad():
        for text in docs:
            ids = lm.tokenizer(text, add_special_tokens=False)["input_ids"]
            for w in plan_windows(ids, window, stride):
                logits = lm.model(torch.tensor([w.ids])).logits[0].double()
                logp = torch.log_softmax(logits, dim=-1)
                n = len(w.ids)
                total -= sum(float(logp[p - 1, w.ids[p]]) for p in range(n - w.scored, n))
                tokens += w.scored
    long_doc = len(lm.encode(docs[0]))
    assert long_doc > 2 * window  # the first document really needs several windows
    assert metrics["tokens"] == tokens == sum(max(len(lm.encode(t)) - 1, 0) for t in docs)
    assert metrics["chars"] == sum(len(t) for t in docs)
    assert metrics["documents"] == 5
    assert metrics["documents_without_predictions"] == (len(lm.encode("あ")) < 2) + 1
    assert metrics["ppl"] == pytest.approx(math.exp(total / tokens), rel=1e-5)
    # bits per character and perplexity describe the same total NLL.
    assert metrics["bits_per_char"] == pytest.approx(total / math.log(2) / metrics["chars"], rel=1e-5)
    assert metrics["bits_per_char"] == pytest.approx(
        math.log2(metrics["ppl"]) * metrics["tokens"] / metrics["chars"], rel=1e-9
    )


def test_ppl_batching_and_limit(lm, ppl_file):
    path, docs = ppl_file
    one, _ = evaluate_ppl(lm, path, window=32, stride=16, batch_size=1, progress=False)
    many, _ = evaluate_ppl(lm, path, window=32, stride=16, batch_size=8, progress=False)
    assert many["ppl"] == pytest.approx(one["ppl"], rel=1e-5) and many["tokens"] == one["tokens"]
    limited, _ = evaluate_ppl(lm, path, window=32, stride=16, limit=2, progress=False)
    assert limited["documents"] == 2 and limited["chars"] == len(docs[0]) + len(docs[1])
    with pytest.raises(JalmError, match="longer than the model's context"):
        evaluate_ppl(lm, path, window=lm.max_length + 1, progress=False)


def test_jsquad_batched_equals_one_at_a_time_and_limit_is_a_prefix(varied_lm):
    lm = varied_lm
    single, single_records = evaluate_jsquad(lm, limit=6, batch_size=1, progress=False)
    batched, batched_records = evaluate_jsquad(lm, limit=6, batch_size=4, progress=False)
    assert len({r["prediction"] for r in single_records}) > 2  # continuations depend on the prompt
    assert [r["prediction"] for r in batched_records] == [r["prediction"] for r in single_records]
    assert batched_records == single_records
    assert (batched["exact_match"], batched["f1"]) == (single["exact_match"], single["f1"])
    short, short_records = evaluate_jsquad(lm, limit=3, batch_size=2, progress=False)
    assert short_records == single_records[:3]
    # Evaluation order is jp-stable's shuffled order, and each record carries its scores in 0..1.
    plan = fewshot_plan(
        load_squad(bundled("eval/jsquad-valid-v1.1.json.zst")),
        load_squad(bundled("eval/jsquad-test-v1.3.json.zst")),
        3,
        limit=6,
    )
    assert [r["id"] for r in single_records] == [q.id for q, _ in plan]
    assert all(0.0 <= r["exact_match"] <= 1.0 and 0.0 <= r["f1"] <= 1.0 for r in single_records)
    assert all("\n" not in r["prediction"] for r in single_records)
    assert single["n"] == 6 and single["shots"] == 3 and single["prompt_version"] == "0.2"


def test_gpt2_layout_batched_equals_one_at_a_time(gpt2_lm):
    # Questions with different answer lengths share a batch; every prompt is cut to fit the 96 positions.
    metrics, single = evaluate_jsquad(gpt2_lm, limit=6, batch_size=1, progress=False)
    _, batched = evaluate_jsquad(gpt2_lm, limit=6, batch_size=6, progress=False)
    assert metrics["truncated_prompts"] == 6 and len({r["prediction"] for r in single}) > 2
    assert batched == single


def test_aio_batched_equals_one_at_a_time(varied_lm, monkeypatch):
    from jalm.eval import aio

    # A random model never closes the 」, so every question would run to 64 tokens; 16 prove the point.
    monkeypatch.setattr(aio, "MAX_NEW_TOKENS", 16)
    _, single = evaluate_aio(varied_lm, limit=2, batch_size=1, progress=False)
    metrics, batched = evaluate_aio(varied_lm, limit=2, batch_size=2, progress=False)
    assert len({r["prediction"] for r in single}) == 2
    assert batched == single
    assert [r["id"] for r in batched] == ["AIO02-0001", "AIO02-0002"]
    assert batched[0]["prompt"].endswith("答えは「") and "」" not in batched[0]["prediction"]
    assert metrics["n"] == 2 and 0.0 <= metrics["exact_match"] <= 100.0


def test_generation_stops_at_the_stop_string_per_sequence(varied_lm):
    from jalm.eval.generation import greedy_until

    prompts = [fit_prompt(varied_lm, varied_lm.encode(t), 12) for t in ("日本の首都は", "富士山は", "京都")]
    full = greedy_until(varied_lm, prompts, stop="\x00", batch_size=3, progress=False)  # never produced
    # A character the first continuation really produces, not at its start and not earlier in it.
    k = next(i for i in range(1, len(full[0])) if full[0][i] not in full[0][:i])
    stop = full[0][k]
    cut = greedy_until(varied_lm, prompts, stop=stop, batch_size=3, progress=False)
    assert cut == [text.split(stop)[0] for text in full]
    assert cut[0] == full[0][:k]


def test_prompts_longer_than_the_context_are_truncated_on_the_left_and_counted(tiny_model_dir):
    short = load_lm(tiny_model_dir, max_length=40)
    metrics, records = evaluate_jsquad(short, limit=2, progress=False)
    assert metrics["truncated_prompts"] == 2 and all(r["truncated"] for r in records)
    ids = short.encode("東京都は日本の首都である。" * 10)
    prompt = fit_prompt(short, ids, max_new_tokens=8)
    assert prompt.truncated and prompt.ids == tuple(ids[-32:])
    with pytest.raises(JalmError, match="leaves no room"):
        fit_prompt(short, ids, max_new_tokens=40)


def test_prompts_get_no_special_tokens(lm):
    text = "梅雨は東アジアの雨季である。"
    ids = lm.encode(text)
    assert ids and not set(ids) & (lm.eos_ids | {lm.tokenizer.bos_token_id})
    assert lm.decode(ids) == text


def test_evaluate_writes_results_and_predictions(tiny_model_dir, ppl_file, tmp_path):
    path, _ = ppl_file
    out, preds = tmp_path / "results.json", tmp_path / "preds.jsonl"
    results = evaluate(
        tiny_model_dir,
        [PplConfig(data=path), "jsquad", "aio"],
        out=out,
        limit=1,
        save_predictions=preds,
        batch_size=2,
        progress=False,
        name="tiny",
    )
    written = json.loads(out.read_text(encoding="utf-8"))
    assert written == results
    assert written["model_name"] == "tiny" and isinstance(written["params"], int) and written["params"] > 0
    assert isinstance(written["jalm_version"], str) and written["settings"]["limit"] == 1
    ppl = written["tasks"]["ppl"]
    assert {k: type(ppl[k]) for k in ("ppl", "bits_per_char", "tokens", "chars", "documents", "data")} == {
        "ppl": float,
        "bits_per_char": float,
        "tokens": int,
        "chars": int,
        "documents": int,
        "data": str,
    }
    jsquad = written["tasks"]["jsquad"]
    assert jsquad["n"] == 1 and jsquad["shots"] == 3 and jsquad["prompt_version"] == "0.2"
    assert isinstance(jsquad["exact_match"], float) and isinstance(jsquad["f1"], float)
    assert written["tasks"]["aio"]["n"] == 1
    lines = [json.loads(line) for line in preds.read_text(encoding="utf-8").splitlines()]
    assert [r["task"] for r in lines] == ["jsquad", "aio"]
    assert all({"id", "prompt", "prediction", "golds", "exact_match"} <= r.keys() for r in lines)
    assert "f1" in lines[0] and "f1" not in lines[1]


def test_cli_eval_and_table(tiny_model_dir, ppl_file, tmp_path, capsys):
    from jalm.cli import main

    path, _ = ppl_file
    out = tmp_path / "r.json"
    argv = ["eval", "--model", str(tiny_model_dir), "--tasks", "ppl", "--data", str(path), "--limit", "2"]
    assert main([*argv, "--out", str(out), "--quiet", "--name", "mini"]) == 0
    printed = capsys.readouterr().out
    assert "| model | params | C4 PPL | AI王 | JSQuAD |" in printed and "| mini |" in printed
    assert main(["eval", "table", str(out), str(out), "--out", str(tmp_path / "t.md")]) == 0
    table = (tmp_path / "t.md").read_text(encoding="utf-8")
    assert table.count("| mini |") == 2 and table.splitlines()[2].endswith("| — | — |")
    # A user's mistake is one line on stderr and exit status 2, no traceback.
    capsys.readouterr()
    assert main(["eval", "--model", str(tmp_path / "nowhere"), "--tasks", "aio"]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
    assert main(["eval", "table", str(tmp_path / "missing.json")]) == 2


def test_one_line_errors(tiny_model_dir, tmp_path):
    with pytest.raises(JalmError, match="absent.jsonl: no such file"):
        evaluate(tiny_model_dir, [PplConfig(data=tmp_path / "absent.jsonl")], progress=False)
    with pytest.raises(JalmError, match="absent.tsv: no such file"):
        evaluate(tiny_model_dir, [AioChatConfig(data=tmp_path / "absent.tsv")], progress=False)
    with pytest.raises(JalmError, match="unknown task"):
        evaluate(tiny_model_dir, "ppl,squad", progress=False)
    no_tokenizer = tmp_path / "model"
    shutil.copytree(tiny_model_dir, no_tokenizer)
    for name in ("tokenizer.json", "spiece.model", "tokenizer_config.json", "special_tokens_map.json"):
        (no_tokenizer / name).unlink(missing_ok=True)
    with pytest.raises(JalmError, match="no tokenizer") as error:
        evaluate(no_tokenizer, ["aio"], limit=1, progress=False)
    assert "\n" not in str(error.value)
    with pytest.raises(JalmError, match="no such model directory"):
        evaluate(tmp_path / "nowhere", ["aio"], progress=False)
