"""Instruction data: reading every supported shape, counting every bad record, decontamination, the demo set."""

from __future__ import annotations

import gzip
import importlib.util
import itertools
import json
import sys
from pathlib import Path

import pytest
import zstandard

from jalm.errors import JalmError
from jalm.eval.aio import load_aio
from jalm.eval.jsquad import load_squad
from jalm.jsonl import read_texts
from jalm.sft.decontaminate import DEFAULT_N, build_index, decontaminate, eval_texts, overlap
from jalm.sft.records import REASONS, Conversation, read_conversations

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
DEMO = DATA / "sft" / "demo.jsonl.zst"


def write_lines(path: Path, lines: list[str]) -> Path:
    data = "".join(line + "\n" for line in lines).encode("utf-8")
    if path.suffix == ".gz":
        data = gzip.compress(data)
    elif path.suffix == ".zst":
        data = zstandard.ZstdCompressor().compress(data)
    path.write_bytes(data)
    return path


def dumps(record) -> str:
    return json.dumps(record, ensure_ascii=False)


CHAT = {
    "messages": [
        {"role": "system", "content": "あなたは日本語で丁寧に答えるアシスタントです。"},
        {"role": "user", "content": "  富士山の高さは？\n"},
        {"role": "assistant", "content": "3776メートルです。 "},
        {"role": "user", "content": "では、日本で二番目に高い山は？"},
        {"role": "assistant", "content": "北岳です。", "name": "bot"},
        {"role": "user", "content": "ありがとう。"},  # after the last reply: kept for the trainer to mask
    ],
    "id": "chat-1",
}
ALPACA_WITH_INPUT = {
    "instruction": "次の文を英語に訳してください。",
    "input": "猫が好きです。",
    "output": "I like cats.",
}
ALPACA_NO_INPUT = {
    "instruction": "日本の首都はどこですか。",
    "input": "",
    "output": "東京です。",
    "category": "open_qa",
}
ALPACA_MISSING_INPUT = {"instruction": "一から三まで数えてください。", "output": "一、二、三"}
PROMPT_RESPONSE = {"prompt": "こんにちは", "response": "こんにちは！ご用件をどうぞ。", "source": "x"}


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".jsonl.zst"])
def test_every_shape_is_read_from_plain_and_compressed_files(tmp_path, suffix):
    records = [CHAT, ALPACA_WITH_INPUT, ALPACA_NO_INPUT, ALPACA_MISSING_INPUT, PROMPT_RESPONSE]
    path = write_lines(tmp_path / f"data{suffix}", [dumps(r) for r in records])

    conversations, report = read_conversations([path])

    assert report.records == report.valid == 5
    assert report.invalid == {} and report.examples == []
    assert report.by_format == {"messages": 1, "alpaca": 3, "prompt_response": 1}
    assert [c.source for c in conversations] == [f"{path}:{i}" for i in range(1, 6)]
    # Contents exactly as given (no strip); keys besides role and content dropped; trailing user kept.
    assert conversations[0].messages == [
        {"role": m["role"], "content": m["content"]} for m in CHAT["messages"]
    ]
    assert conversations[1].messages == [
        {"role": "user", "content": "次の文を英語に訳してください。\n\n猫が好きです。"},
        {"role": "assistant", "content": "I like cats."},
    ]
    assert conversations[2].messages[0] == {"role": "user", "content": "日本の首都はどこですか。"}
    assert conversations[3].messages[0] == {"role": "user", "content": "一から三まで数えてください。"}
    assert conversations[4].messages == [
        {"role": "user", "content": "こんにちは"},
        {"role": "assistant", "content": "こんにちは！ご用件をどうぞ。"},
    ]
    assert report.to_dict()["by_format"] == report.by_format


def test_a_directory_means_its_jsonl_files_in_sorted_order(tmp_path):
    write_lines(tmp_path / "b.jsonl.zst", [dumps(PROMPT_RESPONSE)])
    write_lines(tmp_path / "a.jsonl", [dumps(ALPACA_NO_INPUT)])
    (tmp_path / "notes.txt").write_text("not instruction data\n", encoding="utf-8")

    conversations, report = read_conversations([tmp_path])

    assert [c.source for c in conversations] == [f"{tmp_path / 'a.jsonl'}:1", f"{tmp_path / 'b.jsonl.zst'}:1"]
    assert report.by_format == {"alpaca": 1, "prompt_response": 1}


def chat(*messages) -> str:
    return dumps({"messages": [{"role": r, "content": c} for r, c in messages]})


# One line per invalid kind, with the reason it must be counted under.
INVALID = [
    ('{"messages": [', "bad JSON"),
    (b'{"prompt": "\xff\xfe", "response": "not UTF-8"}', "bad JSON"),
    ('["a", "list"]', "not an object"),
    ('{"text": "pretraining text, not a conversation"}', "unknown shape"),
    ('{"instruction": "no output field"}', "unknown shape"),
    ('{"messages": "こんにちは"}', "bad messages"),
    ('{"messages": ["こんにちは"]}', "bad messages"),
    (chat(("user", "質問"), ("bot", "答え")), "unknown role"),
    ('{"messages": [{"content": "質問"}, {"role": "assistant", "content": "答え"}]}', "unknown role"),
    (
        '{"messages": [{"role": "user", "content": 3}, {"role": "assistant", "content": "答え"}]}',
        "non-string content",
    ),
    ('{"instruction": "質問", "output": null}', "non-string content"),
    ('{"prompt": ["質問"], "response": "答え"}', "non-string content"),
    (chat(("user", "質問"), ("system", "遅い指示"), ("assistant", "答え")), "system not first"),
    (chat(("assistant", "いきなり答え"), ("user", "質問")), "no user turn"),
    (chat(("user", " \n"), ("assistant", "答え")), "empty user turn"),
    ('{"instruction": "", "input": "猫", "output": "答え"}', "empty user turn"),
    ('{"prompt": "\u3000", "response": "答え"}', "empty user turn"),
    (chat(("user", "質問"), ("assistant", "  ")), "empty assistant turn"),
    ('{"instruction": "質問", "output": ""}', "empty assistant turn"),
    (chat(("system", "指示"), ("user", "質問")), "no assistant turn"),
    ('{"messages": []}', "no assistant turn"),
]


def test_each_invalid_kind_is_counted_with_its_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(
        b"".join((line if isinstance(line, bytes) else line.encode()) + b"\n" for line, _ in INVALID)
    )

    conversations, report = read_conversations([path])

    assert conversations == []
    assert report.records == len(INVALID) and report.valid == 0
    expected: dict[str, int] = {}
    for _, reason in INVALID:
        expected[reason] = expected.get(reason, 0) + 1
    assert report.invalid == expected
    assert set(report.invalid) <= set(REASONS)
    for number, ((_, reason), example) in enumerate(zip(INVALID, report.examples), start=1):
        assert example.startswith(f"{path}:{number}: {reason} ("), example


def test_bad_lines_do_not_stop_the_run(tmp_path):
    lines = [
        dumps(PROMPT_RESPONSE),
        "{oops",
        "",
        dumps(CHAT),
        '"just a string"',
        "   ",
        dumps(ALPACA_NO_INPUT),
    ]
    path = write_lines(tmp_path / "mixed.jsonl.gz", lines)

    conversations, report = read_conversations([str(path)])

    assert [c.source for c in conversations] == [f"{path}:1", f"{path}:4", f"{path}:7"]
    assert (report.records, report.valid) == (5, 3)  # blank lines are not records
    assert report.invalid == {"bad JSON": 1, "not an object": 1}
    assert report.examples == [
        f"{path}:2: bad JSON (" + report.examples[0].split("(", 1)[1],
        f"{path}:5: not an object (a JSON string)",
    ]


def test_only_the_first_50_invalid_records_are_kept_as_examples(tmp_path):
    path = write_lines(tmp_path / "junk.jsonl", ["{"] * 60 + [dumps(PROMPT_RESPONSE)])
    conversations, report = read_conversations([path])
    assert len(conversations) == 1 and report.invalid == {"bad JSON": 60} and len(report.examples) == 50


def test_missing_input_is_one_clear_error(tmp_path):
    with pytest.raises(JalmError, match="missing.jsonl: no such file"):
        read_conversations([tmp_path / "missing.jsonl"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(JalmError, match="empty: directory holds no"):
        read_conversations([tmp_path / "empty"])
    with pytest.raises(JalmError, match="no instruction data given"):
        read_conversations([])


def test_a_corrupt_compressed_file_is_one_clear_error(tmp_path):
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(gzip.compress((dumps(PROMPT_RESPONSE) + "\n").encode() * 100)[:-30])
    with pytest.raises(JalmError, match="cut.jsonl.gz: cannot be read"):
        read_conversations([path])


# --- decontamination -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def index():
    return build_index(eval_texts())


@pytest.fixture(scope="module")
def eval_questions():
    jsquad = load_squad(DATA / "eval" / "jsquad-valid-v1.1.json.zst")
    aio = load_aio(DATA / "eval" / "aio" / "aio_02_dev.tsv.zst")
    return jsquad, aio


def conversation(user: str, assistant: str = "はい。", source: str = "t.jsonl:1") -> Conversation:
    return Conversation(
        [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}], source
    )


def test_eval_texts_are_the_evaluated_sets_only(eval_questions):
    jsquad, aio = eval_questions
    texts = eval_texts(DATA / "eval")
    assert texts == eval_texts()
    assert set(texts["jsquad"]) == {q.passage for q in jsquad} | {q.question for q in jsquad}
    assert texts["aio"] == list(dict.fromkeys(q.question for q in aio))
    # The JSQuAD v1.3 test file is the few-shot pool, not evaluated: its questions are not indexed.
    pool = {q.question for q in load_squad(DATA / "eval" / "jsquad-test-v1.3.json.zst")}
    assert pool - set(texts["jsquad"])


def test_pasted_evaluation_questions_are_caught(index, eval_questions):
    jsquad, aio = eval_questions
    long_q = next(q.question for q in jsquad if len(q.question) > 2 * DEFAULT_N)
    short_q = next(q.question for q in jsquad if len(q.question) < DEFAULT_N)  # matched as a whole
    aio_q = aio[17].question
    conversations = [
        conversation(f"次の質問に答えてください。\n{long_q}\n答えだけを書いてください。", source="a:1"),
        conversation(f"質問です：{short_q}", source="a:2"),
        # full-width/half-width forms and inserted spaces do not hide a question
        conversation(f"クイズ！ {aio_q[:10]} \n{aio_q[10:]} 正解は？".replace("?", "？"), source="a:3"),
        conversation("この文章を読んでください。", jsquad[0].passage, source="a:4"),  # in the reply
        conversation("今日はいい天気ですね。散歩に行きましょう。", source="a:5"),
    ]
    kept, report = decontaminate(conversations, index)

    assert [c.source for c in kept] == ["a:5"]
    assert report["n"] == DEFAULT_N and report["checked"] == 5
    assert report["removed"] == {"jsquad": 3, "aio": 1}
    assert report["examples"][0].startswith("a:1: overlaps jsquad: ")
    assert report["examples"][2].startswith("a:3: overlaps aio: ")
    assert overlap(f"前置き{long_q}後書き", index) == "jsquad"
    assert overlap(aio_q, index) == "aio"


def test_ngrams_do_not_cross_messages(index, eval_questions):
    aio_q = next(q.question for q in eval_questions[1] if 20 <= len(q.question) < 2 * DEFAULT_N)
    half = len(aio_q) // 2  # each half shorter than n: neither message alone holds an n-gram of it
    assert overlap(aio_q, index) == "aio"
    kept, report = decontaminate([conversation(aio_q[:half], aio_q[half:])], index)
    assert len(kept) == 1 and report["removed"] == {"jsquad": 0, "aio": 0}


def test_unrelated_aozora_text_is_kept(index):
    paragraphs = [p for p in itertools.islice(read_texts([DATA / "corpus" / "aozora.jsonl.zst"]), 40)]
    paragraphs = [p for text in paragraphs for p in text.split("\n") if len(p.strip()) > 20][:800]
    conversations = [
        conversation("次の文章を要約してください。\n\n" + p, source=f"z:{i}")
        for i, p in enumerate(paragraphs)
    ]
    kept, report = decontaminate(conversations, index)
    assert len(paragraphs) == 800 and len(kept) == 800 and sum(report["removed"].values()) == 0


# --- the bundled demo set ---------------------------------------------------------------------------


def test_bundled_demo_set_reads_clean_and_is_not_contaminated(index):
    conversations, report = read_conversations([DEMO])
    assert report.invalid == {} and report.valid == report.records == len(conversations) >= 2500
    assert report.by_format == {"messages": len(conversations)}
    kept, decon = decontaminate(conversations, index)
    assert len(kept) == len(conversations) and sum(decon["removed"].values()) == 0
    systems = sum(c.messages[0]["role"] == "system" for c in conversations)
    two_turns = sum(sum(m["role"] == "assistant" for m in c.messages) == 2 for c in conversations)
    assert 0.1 < systems / len(conversations) < 0.2 and 0.1 < two_turns / len(conversations) < 0.2
    for c in conversations:
        for m in c.messages:
            assert len(m["content"]) <= (150 if m["role"] == "assistant" else 400)


def load_script(monkeypatch):
    spec = importlib.util.spec_from_file_location(
        "make_sft_demo_data", REPO / "scripts" / "make_sft_demo_data.py"
    )
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_demo_script_is_deterministic_and_matches_the_bundled_file(tmp_path, monkeypatch):
    script = load_script(monkeypatch)
    counts = script.main(tmp_path / "a.jsonl.zst")
    script.main(tmp_path / "b.jsonl.zst")
    assert (tmp_path / "a.jsonl.zst").read_bytes() == (tmp_path / "b.jsonl.zst").read_bytes()
    assert counts["conversations"] == 3000 and all(counts[task] > 300 for task in script.TASKS)
    # The committed file is this script's output (compared decompressed: zstd builds may differ in bytes).
    decompress = zstandard.ZstdDecompressor().decompress
    assert decompress((tmp_path / "a.jsonl.zst").read_bytes()) == decompress(DEMO.read_bytes())
    first = json.loads(decompress(DEMO.read_bytes()).split(b"\n", 1)[0])
    assert set(first) == {"messages", "task", "source", "title", "author"}
    assert first["source"].startswith("aozorahack/aozorabunko_text@")
