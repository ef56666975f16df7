"""The evaluation protocols without a model: prompts, shot order, normalisation, metrics, windows, table."""

from __future__ import annotations

import json
import random
from types import SimpleNamespace

import pytest

from jalm.errors import JalmError
from jalm.eval.aio import load_aio, parse_alternatives
from jalm.eval.jsquad import SquadQuestion, build_prompt, fewshot_plan, load_squad
from jalm.eval.lm import eval_context_length
from jalm.eval.metrics import (
    aio_exact,
    jsquad_f1,
    jsquad_scores,
    jsquad_tokens,
    normalize_aio,
    normalize_jsquad,
)
from jalm.eval.perplexity import plan_windows
from jalm.eval.table import format_params, format_table
from jalm.generate import context_length
from jalm.io import open_compressed
from jalm.resources import bundled

FUJI = SquadQuestion(
    "s1",
    "富士山",
    "富士山 [SEP] 富士山は日本で最も高い山である。",
    "日本で最も高い山は？",
    ("富士山", "富士"),
)
BIWA = SquadQuestion(
    "s2", "琵琶湖", "琵琶湖 [SEP] 琵琶湖は滋賀県にある日本最大の湖。", "日本最大の湖は何か。", ("琵琶湖",)
)
TONE = SquadQuestion(
    "s3",
    "利根川",
    "利根川 [SEP] 利根川は関東地方を流れる川。",
    "利根川が流れる地方は？",
    ("関東地方", "関東"),
)
# Whitespace around the passage and a title before [SEP]: both must disappear from the prompt.
TSUYU = SquadQuestion(
    "q1", "梅雨", "梅雨 [SEP]  梅雨は東アジアの雨季である。 ", "梅雨は何の一種か？", ("雨季",)
)


# --- JSQuAD prompts, byte for byte against jp-stable's lm_eval/tasks/ja/jsquad.py and base.py ----------


def test_prompt_v02_three_shots_is_jp_stable_format():
    expected = (
        "質問に対する回答を文章から一言で抽出してください。回答は名詞で答えてください。\n\n"
        "文章:富士山は日本で最も高い山である。\n質問:日本で最も高い山は？\n回答:富士山\n\n"
        "文章:琵琶湖は滋賀県にある日本最大の湖。\n質問:日本最大の湖は何か。\n回答:琵琶湖\n\n"
        "文章:利根川は関東地方を流れる川。\n質問:利根川が流れる地方は？\n回答:関東地方\n\n"
        "文章:梅雨は東アジアの雨季である。\n質問:梅雨は何の一種か？\n回答:"
    )
    assert build_prompt(TSUYU, [FUJI, BIWA, TONE], "0.2") == expected


def test_prompt_v02_zero_shot_is_description_plus_question():
    expected = (
        "質問に対する回答を文章から一言で抽出してください。回答は名詞で答えてください。\n\n"
        "文章:梅雨は東アジアの雨季である。\n質問:梅雨は何の一種か？\n回答:"
    )
    assert build_prompt(TSUYU, [], "0.2") == expected


def test_prompt_v01_and_v03_formats():
    v01 = (
        "[題名]と[問題]から[質問]に対する[答え]を抜き出しなさい\n\n"
        "[題名]:富士山\n[問題]:富士山は日本で最も高い山である。\n[質問]:日本で最も高い山は？\n[答え]:富士山\n\n"
        "[題名]:梅雨\n[問題]:梅雨は東アジアの雨季である。\n[質問]:梅雨は何の一種か？\n[答え]:"
    )
    assert build_prompt(TSUYU, [FUJI], "0.1") == v01
    v03 = (
        "以下は、タスクを説明する指示と、文脈のある入力の組み合わせです。要求を適切に満たす応答を書きなさい。\n\n"
        "### 指示:\n与えられた文脈から、質問に対する答えを抜き出してください。\n\n"
        "### 入力:\n文脈：富士山は日本で最も高い山である。\n質問：日本で最も高い山は？\n\n### 応答:\n富士山\n\n"
        "### 指示:\n与えられた文脈から、質問に対する答えを抜き出してください。\n\n"
        "### 入力:\n文脈：梅雨は東アジアの雨季である。\n質問：梅雨は何の一種か？\n\n### 応答:\n"
    )
    assert build_prompt(TSUYU, [FUJI], "0.3") == v03
    with pytest.raises(JalmError, match="prompt version"):
        build_prompt(TSUYU, [], "0.9")


# --- evaluation order and shots ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def jsquad_valid():
    return load_squad(bundled("eval/jsquad-valid-v1.1.json.zst"))


@pytest.fixture(scope="module")
def jsquad_pool():
    return load_squad(bundled("eval/jsquad-test-v1.3.json.zst"))


def test_bundled_jsquad_files_load_in_file_order(jsquad_valid, jsquad_pool):
    assert len(jsquad_valid) == 4442 and len(jsquad_pool) == 4420
    with open_compressed(bundled("eval/jsquad-valid-v1.1.json.zst")) as handle:
        raw = json.load(handle)["data"]
    first = raw[0]["paragraphs"][0]
    assert jsquad_valid[0].id == first["qas"][0]["id"]
    assert jsquad_valid[0].title == raw[0]["title"]
    assert jsquad_valid[0].passage == first["context"].split("[SEP]")[-1].strip()
    assert jsquad_valid[0].answers == tuple(a["text"] for a in first["qas"][0]["answers"])


def test_fewshot_plan_shuffles_with_seed_42_then_samples_per_question(jsquad_valid, jsquad_pool):
    plan = fewshot_plan(jsquad_valid, jsquad_pool, shots=3, limit=20)
    # jp-stable's evaluator: one Random(42) shuffles the documents, then the same generator samples shots.
    rnd = random.Random(42)
    docs = list(jsquad_valid)
    rnd.shuffle(docs)
    expected = [(doc.id, [s.id for s in rnd.sample(jsquad_pool, 3)]) for doc in docs[:20]]
    assert [(q.id, [s.id for s in shots]) for q, shots in plan] == expected
    # The evaluation order is not the file order, and questions get different shots.
    assert [q.id for q, _ in plan] != [q.id for q in jsquad_valid[:20]]
    assert len({tuple(s.id for s in shots) for _, shots in plan}) == 20


def test_fewshot_plan_limit_is_a_prefix(jsquad_valid, jsquad_pool):
    full = fewshot_plan(jsquad_valid, jsquad_pool, shots=3, limit=50)
    short = fewshot_plan(jsquad_valid, jsquad_pool, shots=3, limit=7)
    assert short == full[:7]
    assert fewshot_plan(jsquad_valid, [], shots=0, limit=3) == [(q, []) for q, _ in full[:3]]
    with pytest.raises(JalmError, match="shot pool"):
        fewshot_plan(jsquad_valid, jsquad_pool[:2], shots=3)


def test_load_squad_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(JalmError, match="bad.json: not valid JSON"):
        load_squad(bad)
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"data": [{"title": "x"}]}', encoding="utf-8")
    with pytest.raises(JalmError, match="missing field 'paragraphs'"):
        load_squad(wrong)
    with pytest.raises(JalmError, match="no such file"):
        load_squad(tmp_path / "absent.json")


# --- JSQuAD normalisation and metrics (jp-stable lm_eval/jasquad/evaluate.py) --------------------------


def test_jsquad_normalisation_width_emoji_and_spaces():
    assert normalize_jsquad("ＮＨＫ　１２３") == "NHK 123"  # full-width Latin and digits → half-width
    assert normalize_jsquad("ｶﾀｶﾅ") == "カタカナ"  # half-width kana → full-width
    assert normalize_jsquad("東京😀タワー🗼") == "東京タワー"  # emoji removed
    assert normalize_jsquad("  東京   タワー ") == "東京タワー"  # neologdn drops spaces between Japanese
    assert normalize_jsquad("New   York") == "New York"  # ...and keeps one between Latin words
    assert normalize_jsquad("ラーーーメン") == "ラーメン"  # neologdn shortens prolonged-sound runs


def test_jsquad_exact_match_max_over_golds():
    assert jsquad_scores("富士山", ["富士", "富士山"])[0] == 1.0  # second gold matches
    assert jsquad_scores("ＮＨＫ", ["NHK"])[0] == 1.0
    assert jsquad_scores("😀NHK", ["NHK"])[0] == 1.0
    assert jsquad_scores("NHK。", ["NHK"])[0] == 0.0  # exact match keeps punctuation
    assert jsquad_scores("", ["NHK"]) == (0.0, 0.0)  # empty prediction scores nothing


def test_jsquad_f1_on_hand_worked_cases():
    # unidic-lite splits 東京都 into 東京 / 都, and 東京都庁 into 東京 / 都庁.
    assert jsquad_tokens("東京都") == ["東京", "都"]
    assert jsquad_tokens("東京都庁") == ["東京", "都庁"]
    # vs 東京: precision 1/2, recall 1 → F1 2/3; vs 東京都庁: 1/2 and 1/2 → 1/2; max is 2/3.
    assert jsquad_f1("東京都", "東京") == pytest.approx(2 / 3)
    assert jsquad_f1("東京都", "東京都庁") == pytest.approx(1 / 2)
    assert jsquad_scores("東京都", ["東京都庁", "東京"]) == pytest.approx((0.0, 2 / 3))
    # Punctuation tokens do not count for F1, so a trailing 。 costs nothing there.
    assert jsquad_tokens("東京。") == ["東京"]
    assert jsquad_f1("東京。", "東京") == 1.0
    assert jsquad_f1("😀ＮＨＫ", "NHK") == 1.0
    assert jsquad_f1("", "東京") == 0.0
    assert jsquad_f1("大阪", "東京") == 0.0


# --- AI王 normalisation (cl-tohoku compute_score.py) and data --------------------------------------------


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("さまぁ～ず", "さまぁ〜ず"),  # ～ → 〜 before NFKC
        ("３回", "3回"),  # NFKC
        ("Apple", "apple"),  # lowercase
        ("「富士山」", "富士山"),  # unwrap 「」
        ("『源氏物語』", "源氏物語"),  # unwrap 『』
        ("レオナルド・ダ・ヴィンチ", "レオナルドダヴィンチ"),
        ("ジャン=ポール", "ジャンポール"),
        ("Wi-Fi", "wifi"),
        ("hyper text　markup", "hypertextmarkup"),  # all whitespace, full-width too
        ("蛹化（ようか）", "蛹化"),  # full-width parentheses become ( ) under NFKC, then go
        ("搦手(からめて)門", "搦手門"),
        ("ＡＢＣ・ｄｅｆ", "abcdef"),
    ],
)
def test_aio_normalisation(before, after):
    assert normalize_aio(before) == after


def test_aio_data_columns_and_alternatives():
    questions = load_aio(bundled("eval/aio/aio_02_dev.tsv.zst"))
    assert len(questions) == 1000
    by_id = {q.id: q for q in questions}
    assert by_id["AIO02-0001"].answers == ("ジェット団",)
    assert by_id["AIO02-0004"].answers == ("ニュートン", "アイザック・ニュートン")
    assert by_id["AIO02-0004"].prompt.endswith("17世紀のイギリスの科学者は誰？答えは「")
    assert parse_alternatives("ポアロ, エルキュール・ポワロ, ポワロ") == [
        "ポアロ",
        "エルキュール・ポワロ",
        "ポワロ",
    ]
    assert parse_alternatives("") == []
    assert aio_exact("アイザック・ニュートン", by_id["AIO02-0004"].answers) == 1.0
    assert aio_exact("ﾆｭｰﾄﾝ", by_id["AIO02-0004"].answers) == 1.0
    assert aio_exact("ニュートン力学", by_id["AIO02-0004"].answers) == 0.0
    assert aio_exact("", by_id["AIO02-0004"].answers) == 0.0


def test_aio_bad_file(tmp_path):
    path = tmp_path / "x.tsv"
    path.write_text("qid\tquestion\nA\tB\n", encoding="utf-8")
    with pytest.raises(JalmError, match="x.tsv: not an AI王 TSV file"):
        load_aio(path)


# --- perplexity windows -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "window", "stride"),
    [(1, 8, 4), (2, 8, 4), (8, 8, 4), (9, 8, 4), (30, 8, 3), (30, 8, 7), (31, 8, 1), (100, 16, 8)],
)
def test_windows_score_every_token_but_the_first_once(n, window, stride):
    ids = list(range(100, 100 + n))
    scored: list[int] = []
    for w in plan_windows(ids, window, stride):
        assert 2 <= len(w.ids) <= window and 1 <= w.scored < len(w.ids) + 1
        start = ids.index(w.ids[0])
        assert list(w.ids) == ids[start : start + len(w.ids)]  # a contiguous slice of the document
        targets = list(range(start + len(w.ids) - w.scored, start + len(w.ids)))
        context = targets[0] - start
        assert context >= 1 and (start == 0 or context >= window - stride)
        scored.extend(targets)
    assert scored == list(range(1, n))


def test_windows_reject_bad_settings():
    with pytest.raises(JalmError, match="stride"):
        plan_windows(list(range(10)), 8, 8)
    with pytest.raises(JalmError, match="window"):
        plan_windows(list(range(10)), 1, 1)


def test_context_length_from_the_config_then_the_tokenizer_then_2048():
    config = SimpleNamespace(
        n_positions=96, max_position_embeddings=128
    )  # the harness reads n_positions first
    tokenizer = SimpleNamespace(model_max_length=512)
    assert eval_context_length(config, tokenizer) == 96 == context_length(config)
    assert eval_context_length(SimpleNamespace(seq_length=64), tokenizer) == 64
    assert eval_context_length(SimpleNamespace(), tokenizer) == 512
    assert eval_context_length(SimpleNamespace(), SimpleNamespace(model_max_length=int(1e30))) == 2048


# --- the table --------------------------------------------------------------------------------------------


def test_table_reproduces_the_seed_rows():
    assert format_params(1_652_230_656) == "1.7B" and format_params(3_555_876_864) == "3.6B"
    assert format_params(6_800_000) == "6.8M"
    # One formatter for the table and the model card: one decimal below a million too.
    assert (format_params(356_096), format_params(512), format_params(None)) == ("356.1K", "512", "—")
    line = {
        "model_name": "line 3.6b",
        "params": 3_555_876_864,
        "tasks": {
            "ppl": {"ppl": 7.5, "bits_per_char": 1.0, "tokens": 10, "documents": 1, "data": "c4.jsonl"},
            "aio": {"exact_match": 48.5, "n": 1000},
            "jsquad": {"exact_match": 63.85, "f1": 70.0, "n": 4442, "shots": 3, "task": "jsquad-1.1-0.2"},
        },
    }
    partial = {"model_name": "mine", "params": 6_800_000, "tasks": {"aio": {"exact_match": 12.34, "n": 100}}}
    table = format_table([line, partial])
    lines = table.splitlines()
    assert lines[0] == "| model | params | C4 PPL | AI王 | JSQuAD |"
    assert lines[2] == "| line 3.6b | 3.6B | 7.50 | 48.5 | 63.85 |"
    assert lines[3] == "| mine | 6.8M | — | 12.3 | — |"
    assert "jsquad-1.1-0.2 3-shot" in table and "PPL on c4.jsonl" in table


def test_table_puts_the_chat_tasks_beside_their_few_shot_forms():
    base = {
        "model_name": "base",
        "params": 3_555_876_864,
        "tasks": {
            "aio": {"exact_match": 48.5, "n": 1000},
            "jsquad": {"exact_match": 63.85, "f1": 70.0, "n": 4442, "shots": 3, "task": "jsquad-1.1-0.2"},
        },
    }
    sft = {
        "model_name": "sft",
        "params": 3_555_876_864,
        "tasks": {
            "aio-chat": {"exact_match": 30.0, "n": 1000, "chat_template": "model"},
            "jsquad-chat": {"exact_match": 70.25, "f1": 80.0, "n": 4442, "chat_template": "model"},
        },
    }
    lines = format_table([base, sft]).splitlines()
    assert lines[:4] == [
        "| model | params | C4 PPL | AI王 | AI王 (chat) | JSQuAD | JSQuAD (chat) |",
        "|---|---|---|---|---|---|---|",
        "| base | 3.6B | — | 48.5 | — | 63.85 | — |",
        "| sft | 3.6B | — | — | 30.0 | — | 70.25 |",
    ]
    assert "JSQuAD (chat) 0-shot instruction exact match (F1 80.00), model template, n=4442" in lines[-1]
    # Without chat results the table is the seed's.
    assert format_table([base]).splitlines()[0] == "| model | params | C4 PPL | AI王 | JSQuAD |"
