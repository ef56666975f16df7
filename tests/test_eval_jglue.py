"""JCommonsenseQA, JNLI and JSTS: hand-written expected prompts, the shared-context scorer against scoring
each choice alone on a real tiny model, and the tasks through `evaluate` and the table."""

from __future__ import annotations

import random
import shutil

import pytest

from jalm.errors import JalmError
from jalm.eval import evaluate, load_lm
from jalm.eval.choice import make_request, score_alone, score_shared
from jalm.eval.jglue import (
    Doc,
    build_context,
    fewshot_plan,
    load_jglue,
    parse_score,
    pearson,
    protocol,
    spearman,
)
from jalm.eval.table import format_table
from jalm.resources import bundled

Q1 = Doc("1", (("question", "田んぼが広がる風景を何という？"),), ("畑", "海", "田園", "地方", "牧場"), 2)
Q2 = Doc("2", (("question", "絵本があるのは？"),), ("本屋", "海", "空", "川", "山"), 0)
Q3 = Doc("3", (("question", "雨の日に使うものは？"),), ("鍋", "傘", "靴", "机", "紙"), 1)
N1 = Doc(
    "a",
    (("premise", "犬が走っています。"), ("hypothesis", "動物が動いています。")),
    ("entailment", "contradiction", "neutral"),
    0,
)
N2 = Doc(
    "b",
    (("premise", "空は青い。"), ("hypothesis", "空は赤い。")),
    ("entailment", "contradiction", "neutral"),
    1,
)
S1 = Doc("x", (("sentence1", "猫が寝ています。"), ("sentence2", "猫が眠っています。")), (), 4.6)
S2 = Doc("y", (("sentence1", "男性が立っています。"), ("sentence2", "海に船があります。")), (), 0.0)


def test_jcommonsenseqa_02_prompt_is_the_published_layout():
    spec = protocol("jcommonsenseqa", "0.2")
    expected = (
        "質問と回答の選択肢を入力として受け取り、選択肢から回答を選択してください。"
        "なお、回答は選択肢の番号(例:0)でするものとします。 \n\n"
        "質問:絵本があるのは？\n選択肢:0.本屋,1.海,2.空,3.川,4.山\n回答:0\n\n"
        "質問:雨の日に使うものは？\n選択肢:0.鍋,1.傘,2.靴,3.机,4.紙\n回答:1\n\n"
        "質問:田んぼが広がる風景を何という？\n選択肢:0.畑,1.海,2.田園,3.地方,4.牧場\n回答:"
    )
    assert build_context(Q1, [Q2, Q3], spec) == expected
    # the shots end in the gold number, but the choices are scored as their texts, in file order
    assert spec.choices(Q1) == ("畑", "海", "田園", "地方", "牧場")


def test_jcommonsenseqa_01_prompt():
    spec = protocol("jcommonsenseqa", "0.1")
    expected = (
        "[問題]に対する[答え]を[選択肢]の中から選んでください。\n\n"
        "[問題]:雨の日に使うものは？\n[選択肢]:[鍋, 傘, 靴, 机, 紙]\n[答え]:傘\n\n"
        "[問題]:田んぼが広がる風景を何という？\n[選択肢]:[畑, 海, 田園, 地方, 牧場]\n[答え]:"
    )
    assert build_context(Q1, [Q3], spec) == expected


def test_jnli_11_prompt_is_the_published_layout_and_13_is_japanese():
    expected = (
        "前提と仮説の関係をentailment、contradiction、neutralの中から回答してください。\n\n制約:\n"
        "- 前提から仮説が、論理的知識や常識的知識を用いて導出可能である場合はentailmentと出力\n"
        "- 前提と仮説が両立しえない場合はcontradictionと出力\n"
        "- そのいずれでもない場合はneutralと出力\n\n"
        "前提:空は青い。\n仮説:空は赤い。\n関係:contradiction\n\n"
        "前提:犬が走っています。\n仮説:動物が動いています。\n関係:"
    )
    spec = protocol("jnli", "1.1")
    assert build_context(N1, [N2], spec) == expected
    assert spec.choices(N1) == ("entailment", "contradiction", "neutral")
    ja = protocol("jnli", "1.3")
    assert build_context(N1, [N2], ja).endswith(
        "前提:空は青い。\n仮説:空は赤い。\n関係:矛盾\n\n前提:犬が走っています。\n仮説:動物が動いています。\n関係:"
    )
    assert ja.choices(N1) == ("含意", "矛盾", "中立")


def test_jsts_prompt():
    expected = (
        "日本語の文ペアの意味がどのくらい近いかを判定し、類似度を0.0〜5.0までの間の値で付与してください。"
        "0.0に近いほど文ペアの意味が異なり、5.0に近いほど文ペアの意味が似ていることを表しています。"
        "整数値のみを返し、それ以外には何も含めないことを厳守してください。\n\n"
        "[文1]: 男性が立っています。\n[文2]: 海に船があります。\n[類似度]: 0.0\n\n"
        "[文1]: 猫が寝ています。\n[文2]: 猫が眠っています。\n[類似度]: "
    )
    assert build_context(S1, [S2], protocol("jsts", "llm-jp-eval")) == expected


def test_fewshot_plan_is_jp_stable_order_and_stratified_counts():
    docs = load_jglue("jnli", bundled("eval/jglue/jnli-valid-v1.3.json.zst"))
    pool = load_jglue("jnli", bundled("eval/jglue/jnli-test-v1.3.json.zst"))
    plan = fewshot_plan(docs, pool, 3, protocol("jnli", "1.1"), limit=5)
    rnd = random.Random(42)
    order = list(docs)
    rnd.shuffle(order)
    assert [d.id for d, _ in plan] == [d.id for d in order[:5]]
    assert plan[0][1] == rnd.sample(pool, 3)  # shots drawn right after the shuffle, per question in order
    # 1.3: stratified by label — each of the three labels once when k = 3 (JNLI has no label at ratio ≥ 1/3·... )
    strat = fewshot_plan(docs, pool, 6, protocol("jnli", "1.3"), limit=4)
    for _, shots in strat:
        assert len(shots) == 6
        assert {s.choices[s.gold] for s in shots} == set(("entailment", "contradiction", "neutral"))
    assert fewshot_plan(docs, pool, 3, protocol("jnli", "1.1"), limit=3) == plan[:3]  # --limit is a prefix


def test_loaders_and_parsers(tmp_path):
    qa = load_jglue("jcommonsenseqa", bundled("eval/jglue/jcommonsenseqa-valid-v1.3.json.zst"))
    assert len(qa) == 1119 and qa[1].get("question") == "田んぼが広がる風景を何という？" and qa[1].gold == 2
    assert len(load_jglue("jsts", bundled("eval/jglue/jsts-valid-v1.3.json.zst"))) == 1457
    bad = tmp_path / "bad.json"
    bad.write_text(
        '{"sentence_pair_id": "0", "sentence1": "a", "sentence2": "b", "label": "maybe"}\n', encoding="utf-8"
    )
    with pytest.raises(JalmError, match="bad.json:1: unknown JNLI label"):
        load_jglue("jnli", bad)
    with pytest.raises(JalmError, match="unknown jnli prompt version"):
        protocol("jnli", "9")
    assert parse_score("3.8") == 3.8 and parse_score(" 4です") == 4.0 and parse_score("４．２") == 4.2
    assert parse_score("わかりません") is None
    assert pearson([1, 2, 3], [2, 4, 6.5]) == pytest.approx(0.99795, abs=1e-5)
    assert pearson([1, 1, 1], [1, 2, 3]) is None
    assert spearman([1, 2, 2, 3], [1, 2, 2, 3]) == pytest.approx(1.0)


@pytest.fixture(scope="module")
def varied_lm(tiny_model_dir, tmp_path_factory):
    """The tiny model with large random weights, so log-likelihoods depend on every position."""
    import torch
    from transformers import AutoModelForCausalLM

    out = tmp_path_factory.mktemp("varied_jglue")
    shutil.copytree(tiny_model_dir, out, dirs_exist_ok=True)
    model = AutoModelForCausalLM.from_pretrained(out)
    torch.manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() > 1:
                parameter.normal_(0.0, 0.2)
    model.save_pretrained(out)
    return load_lm(out)


def test_shared_context_equals_each_choice_alone(varied_lm):
    spec = protocol("jcommonsenseqa", "0.2")
    docs = load_jglue("jcommonsenseqa", bundled("eval/jglue/jcommonsenseqa-valid-v1.3.json.zst"))
    pool = load_jglue("jcommonsenseqa", bundled("eval/jglue/jcommonsenseqa-train-v1.3.json.zst"))
    plan = fewshot_plan(docs, pool, 1, spec, limit=6)
    requests = [make_request(varied_lm, build_context(d, s, spec), spec.choices(d)) for d, s in plan]
    requests.append(make_request(varied_lm, "前提:犬。\n関係:", ["entailment", "contradiction", "neutral"]))
    assert any(len(c) > 1 for r in requests for c in r.choices)  # multi-token choices are exercised
    alone = score_alone(varied_lm, requests, batch_size=4)
    one_by_one = [score_alone(varied_lm, [r], batch_size=1)[0] for r in requests[:2]]
    shared, too_long = score_shared(varied_lm, requests)
    assert too_long == 0
    for a, s in zip(alone, shared):
        assert s == pytest.approx(a, abs=1e-5)
    for a, s in zip(one_by_one, shared):
        assert s == pytest.approx(a, abs=1e-5)
    assert len({round(x, 3) for row in shared for x in row}) > 10  # the numbers really vary


def test_too_long_context_falls_back_to_jp_stable_truncation(varied_lm):
    long_ctx = "田んぼが広がる風景を何という？" * 200
    req = make_request(varied_lm, long_ctx, ["田園", "海"])
    assert not req.fits(varied_lm.max_length)
    shared, too_long = score_shared(varied_lm, [req])
    assert too_long == 1 and shared == score_alone(varied_lm, [req])


def test_tasks_through_evaluate_and_table(tiny_model_dir, tmp_path):
    results = evaluate(
        tiny_model_dir,
        ["jcommonsenseqa", "jnli", "jsts"],
        out=tmp_path / "results.json",
        limit=3,
        save_predictions=tmp_path / "preds.jsonl",
        progress=False,
    )
    tasks = results["tasks"]
    assert tasks["jcommonsenseqa"]["task"] == "jcommonsenseqa-1.1-0.2" and tasks["jcommonsenseqa"]["n"] == 3
    assert tasks["jnli"]["task"] == "jnli-1.1-0.2" and tasks["jnli"]["shot_pool"].endswith(
        "jnli-test-v1.3.json.zst"
    )
    assert tasks["jsts"]["n"] == 3 and 0 <= tasks["jsts"]["unparsable"] <= 3
    table = format_table([results])
    assert "| JCommonsenseQA | JNLI | JSTS (Pearson) |" in table
    assert "jnli-1.1-0.2 3-shot acc" in table


def test_model_card_shows_the_jglue_rows(tiny_model_dir, tmp_path):
    import json

    from jalm.serve.command import write_card

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    tasks = {
        "jcommonsenseqa": {
            "acc": 31.25,
            "acc_norm": 20.0,
            "n": 16,
            "shots": 3,
            "task": "jcommonsenseqa-1.1-0.2",
        },
        "jnli": {"acc": 40.0, "acc_norm": 30.0, "n": 10, "shots": 3, "task": "jnli-1.1-0.2"},
        "jsts": {
            "pearson": 12.5,
            "spearman": 10.0,
            "n": 8,
            "shots": 4,
            "task": "jsts-llm-jp-eval",
            "unparsable": 0,
        },
    }
    (model / "results.json").write_text(
        json.dumps({"model_name": "t", "params": 1, "tasks": tasks}), encoding="utf-8"
    )
    text = write_card(model).read_text(encoding="utf-8")
    assert "| JCommonsenseQA | jcommonsenseqa-1.1-0.2 | 3 | 31.2 | 16 |" in text
    assert "| JNLI | jnli-1.1-0.2 | 3 | 40.0 | 10 |" in text
    assert "| JSTS (Pearson) | jsts-llm-jp-eval | 4 | 12.5 | 8 |" in text
    assert "Amazon withdrew its source" in text
    assert '"accuracy"' in text.split("---")[1]


def test_table_with_published_rows_marked_as_copied(tmp_path, capsys):
    import json

    from jalm.cli import main

    ours = {
        "model_name": "mine",
        "params": 5_000_000,
        "tasks": {"jnli": {"acc": 33.3, "n": 3, "shots": 3, "task": "jnli-1.1-0.2"}},
    }
    path = tmp_path / "results.json"
    path.write_text(json.dumps(ours), encoding="utf-8")
    assert main(["eval", "table", str(path), "--published"]) == 0
    table = capsys.readouterr().out
    assert "| mine | 5.0M | — | — | — | — | 33.3 |" in table  # PPL, AI王, JSQuAD, JCommonsenseQA not run
    row = next(
        line
        for line in table.splitlines()
        if line.startswith("| line-corporation/japanese-large-lm-1.7b (copied)")
    )
    assert row.split(" | ")[2:] == ["8.57", "32.2", "57.50", "30.8", "35.9 |"]
    assert "copied, not measured" in table and "Stability-AI/lm-evaluation-harness@jp-stable" in table
    assert table.count("(copied)") == 2 * 5  # five rows, each named again in its note
    assert "(copied)" not in format_table([ours])
