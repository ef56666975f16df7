"""The tokenizer stage: a real SentencePiece model trained on the bundled data, checked against SentencePiece
itself and against transformers 5 (in process) and 4.57 (in a subprocess), slow and fast."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sentencepiece import sentencepiece_model_pb2 as pb

from jalm.errors import JalmError
from jalm.jsonl import read_texts, write_records
from jalm.tokenizer import (
    SPECIAL_TOKENS,
    chars_per_token,
    load_sentencepiece,
    sample_sentences,
    split_sentences,
    train_tokenizer,
    write_hf_tokenizer_files,
)
from jalm.tokenizer.command import register, run

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
PROBE = Path(__file__).with_name("tf_compat_probe.py")
VOCAB = 4000

HAND_MADE = [
    "👨‍👩‍👧‍👦 家族 👩🏽‍💻 と国旗 🇯🇵🇺🇸 🏳️‍🌈 😀",
    "𠮷野家の𠮷、鿰、𪚲、𩸽（ほっけ）、CJK拡張B 𠀋𡈽",
    "ｱｲｳｴｵ ｶﾞｷﾞｸﾞ ﾊﾟﾋﾟﾌﾟ｡｢ﾃｽﾄ｣",
    "一行目\n二行目\n\n四行目\n",
    "Windows の改行\r\nです\r\n",
    "spaces:  two   three    four     five",
    "\ttabs\tand\t\tdouble tabs\t",
    "   leading spaces",
    "trailing spaces   ",
    " ",
    "\n",
    "",
    "The quick brown fox は素早い茶色の狐 jumps over 3.14159 the lazy 犬 (2023年)",
    "全角スペース　を　含む　文　　です。",
    "control \x00 nul \x01 soh \x07 bell \x1b[31m esc \x7f del \x85 nel \u200b zwsp \ufeff bom",
    "literal specials in text: <s> </s> <unk> <pad> <sep> <mask> <cls> and bytes <0x41> <0xE3>",
    "math ∑∫√∞ ≠ ≤ ≥ and arrows → ⇒ and 〜～ wave dash",
    'https://example.com/path?q=日本語&x=1#frag <a href="/x">リンク</a>',
    "ＡＢＣ１２３ full-width ascii ！？",
    "\u3000" * 9 + "二",  # a tie between segmentations that float32 and float64 sums once broke differently
]
# Runs of one character have many segmentations with equal scores: the hardest case for exact parity.
RUNS = [
    char * n + tail
    for char in ("\u3000", "ー", " ", "…", "=", "ｗ", "0")
    for n in range(1, 41, 3)
    for tail in ("", "二")
]


def _lines(path: Path, count: int) -> list[str]:
    lines = [line for text in read_texts([path]) for line in text.split("\n") if line.strip()]
    step = max(1, len(lines) // count)
    return lines[::step][:count]


def parity_texts() -> list[str]:
    """A few hundred real lines (held-out wiki, Aozora, noisy HTML/man pages), the whole noisy documents
    (up to tens of thousands of characters, with their newlines and indentation) and the hand-made cases
    (also benchmarks/gguf_parity.py's corpus)."""
    noisy = list(read_texts([DATA / "noisy/web_raw.jsonl.zst"]))
    return (
        _lines(DATA / "dev/wiki_jaquad.jsonl.zst", 150)
        + _lines(DATA / "corpus/aozora.jsonl.zst", 80)
        + _lines(DATA / "noisy/web_raw.jsonl.zst", 80)
        + noisy
        + HAND_MADE
        + RUNS
    )


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return parity_texts()


@pytest.fixture(scope="module")
def tokdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tok")
    result = train_tokenizer(
        [DATA / "corpus"], out, vocab_size=VOCAB, max_sentences=4000, seed=0, progress=False
    )
    assert result == out
    return out


@pytest.fixture(scope="module")
def sp(tokdir: Path):
    return load_sentencepiece(tokdir)


def _expected(sp, texts: list[str]) -> tuple[list[list[int]], list[str]]:
    ids = [sp.encode(text) for text in texts]
    return ids, [sp.decode(row) for row in ids]


def _assert_parity(
    label: str, result: dict, texts: list[str], ids: list[list[int]], decoded: list[str]
) -> None:
    assert "error" not in result, f"{label}: {result.get('error')}"
    wrong = [i for i, row in enumerate(result["ids"]) if row != ids[i]]
    assert not wrong, (
        f"{label}: ids differ from SentencePiece on {len(wrong)} texts, first {texts[wrong[0]]!r}"
    )
    wrong = [i for i, text in enumerate(result["decoded"]) if text != decoded[i]]
    assert not wrong, f"{label}: decode differs from SentencePiece on {texts[wrong[0]]!r}"
    # Identity normalisation: decoding gives the input back (a literal "▁" would come back as a space).
    assert result["decoded"] == texts, f"{label}: decode(encode(text)) != text"


# --- the model itself ----------------------------------------------------------------------------


def test_special_ids_newline_and_bytes(sp):
    assert [sp.id_to_piece(i) for i in range(7)] == list(SPECIAL_TOKENS)
    assert (sp.unk_id(), sp.bos_id(), sp.eos_id(), sp.pad_id()) == (0, 1, 2, 3)
    assert sp.is_unknown(0) and all(sp.is_control(i) for i in range(1, 7))
    assert sp.piece_to_id("\n") == 7 and sp.encode("a\nb", out_type=str) == ["a", "\n", "b"]
    byte_ids = [sp.piece_to_id(f"<0x{b:02X}>") for b in range(256)]
    assert len(set(byte_ids)) == 256 and all(sp.is_byte(i) for i in byte_ids)
    assert sp.get_piece_size() == VOCAB


def test_byte_fallback_and_no_dummy_prefix(sp):
    for text in ("😀", "𠮷", "\x00"):
        pieces = sp.encode(text, out_type=str)
        assert all(p.startswith("<0x") for p in pieces), pieces
        assert bytes(int(p[3:5], 16) for p in pieces) == text.encode("utf-8")
    assert 0 not in sp.encode("".join(HAND_MADE))  # byte fallback: never <unk>
    assert not sp.encode("日本の首都", out_type=str)[0].startswith("▁")
    assert sp.encode(" 日本", out_type=str)[0].startswith("▁")
    assert sp.encode("") == []  # nothing added: no <s>, no </s>


def test_model_options(tokdir: Path):
    model = pb.ModelProto()
    model.ParseFromString((tokdir / "spiece.model").read_bytes())
    assert model.trainer_spec.model_type == pb.TrainerSpec.UNIGRAM
    assert model.trainer_spec.byte_fallback and model.trainer_spec.split_digits
    assert model.normalizer_spec.name == "identity" and not model.normalizer_spec.precompiled_charsmap
    assert not model.normalizer_spec.add_dummy_prefix and not model.normalizer_spec.remove_extra_whitespaces


def test_scores_on_grid_and_newline_is_ordinary(tokdir: Path):
    model = pb.ModelProto()
    model.ParseFromString((tokdir / "spiece.model").read_bytes())
    normal = [p for p in model.pieces if p.type == pb.ModelProto.SentencePiece.NORMAL]
    assert all((p.score * 16).is_integer() for p in normal)
    assert model.pieces[7].piece == "\n" and model.pieces[7].type == pb.ModelProto.SentencePiece.NORMAL
    assert len({p.score for p in normal}) > 100  # rounding kept the scores apart


def test_stats_file(tokdir: Path, sp):
    stats = json.loads((tokdir / "train_stats.json").read_text())
    assert stats["documents"] == 880  # every document of data/corpus was read
    assert stats["sentences_used"] == 4000 < stats["sentences_seen"]
    assert stats["vocab_size"] == VOCAB
    assert stats["chars_per_token"] > 1.0  # Japanese: most pieces are longer than a character


def test_chars_per_token(sp):
    texts = ["吾輩は猫である。", "名前はまだ無い。"]
    tokens = sum(len(sp.encode(t)) for t in texts)
    assert chars_per_token(sp, texts) == pytest.approx(16 / tokens)
    assert chars_per_token(sp, []) == 0.0


# --- Hugging Face files ---------------------------------------------------------------------------


def test_config_files(tokdir: Path):
    config = json.loads((tokdir / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert config["add_bos_token"] is False and config["add_eos_token"] is False
    assert config["model_max_length"] == 2048
    special = json.loads((tokdir / "special_tokens_map.json").read_text())
    assert special == {
        f"{r}_token": t for r, t in zip(("unk", "bos", "eos", "pad", "sep", "mask", "cls"), SPECIAL_TOKENS)
    }


@pytest.mark.parametrize("use_fast", [False, True])
def test_transformers5_parity(tokdir: Path, sp, texts: list[str], use_fast: bool):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokdir, use_fast=use_fast)
    assert [
        tokenizer.unk_token_id,
        tokenizer.bos_token_id,
        tokenizer.eos_token_id,
        tokenizer.pad_token_id,
    ] == [0, 1, 2, 3]
    assert [tokenizer.sep_token_id, tokenizer.mask_token_id, tokenizer.cls_token_id] == [4, 5, 6]
    assert tokenizer.model_max_length == 2048 and len(tokenizer) == VOCAB
    assert tokenizer.convert_tokens_to_ids("\n") == 7
    ids, decoded = _expected(sp, texts)
    result = {
        "ids": [tokenizer.encode(t, add_special_tokens=False) for t in texts],
        "decoded": [tokenizer.decode(row) for row in ids],
    }
    _assert_parity(f"transformers 5 use_fast={use_fast}", result, texts, ids, decoded)
    # The default call adds nothing either (an LM's input gets no <s> or </s>).
    assert tokenizer("今日は晴れ")["input_ids"] == sp.encode("今日は晴れ")


def test_byte_fallback_decodes_to_utf8(tokdir: Path, sp):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokdir)
    text = "🇯🇵𠮷👨‍👩‍👧"
    ids = tokenizer.encode(text, add_special_tokens=False)
    tokens = tokenizer.convert_ids_to_tokens(ids)
    assert tokens == [sp.id_to_piece(i) for i in ids] and all(t.startswith("<0x") for t in tokens)
    assert tokenizer.decode(ids) == text
    # A cut in the middle of a character decodes to U+FFFD, as in SentencePiece, never to an exception.
    assert tokenizer.decode(ids[:3]) == sp.decode(ids[:3]) == "\ufffd" * 3


def _tf4_python_path() -> Path:
    tf4 = Path(sys.prefix) / "tf4"
    if not (tf4 / "transformers").is_dir():
        pytest.fail(f"transformers 4.x is not installed in {tf4}: run `make install`")
    return tf4


def test_transformers4_parity(tokdir: Path, sp, texts: list[str]):
    tf4 = _tf4_python_path()
    # Tokenizing never touches torch; USE_TORCH=0 only spares transformers 4 its ~5 s torch import.
    env = {**os.environ, "PYTHONPATH": str(tf4), "USE_TORCH": "0"}
    done = subprocess.run(
        [sys.executable, str(PROBE), str(tokdir)],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["transformers"].startswith("4."), result["transformers"]
    ids, decoded = _expected(sp, texts)
    for mode in ("slow", "fast"):
        _assert_parity(f"transformers {result['transformers']} {mode}", result[mode], texts, ids, decoded)


def test_write_hf_files_elsewhere(tokdir: Path, tmp_path: Path, sp):
    from transformers import AutoTokenizer

    write_hf_tokenizer_files(tokdir / "spiece.model", tmp_path, model_max_length=512)
    assert (tmp_path / "spiece.model").read_bytes() == (tokdir / "spiece.model").read_bytes()
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    assert tokenizer.model_max_length == 512
    assert tokenizer.encode("日本語 text\n", add_special_tokens=False) == sp.encode("日本語 text\n")


def _altered_model(tokdir: Path, tmp_path: Path, change) -> Path:
    model = pb.ModelProto()
    model.ParseFromString((tokdir / "spiece.model").read_bytes())
    change(model)
    path = tmp_path / "altered.model"
    path.write_bytes(model.SerializeToString())
    return path


def _dummy_prefix(model) -> None:
    model.normalizer_spec.add_dummy_prefix = True


def _off_grid(model) -> None:
    model.pieces[300].score -= 0.01


def _user_defined(model) -> None:
    model.pieces[7].type = pb.ModelProto.SentencePiece.USER_DEFINED


@pytest.mark.parametrize(
    "change, problem",
    [(_dummy_prefix, "dummy prefix"), (_off_grid, "multiples of 1/16"), (_user_defined, "user-defined")],
)
def test_write_hf_files_refuses_inexact_model(tokdir: Path, tmp_path: Path, change, problem: str):
    path = _altered_model(tokdir, tmp_path, change)
    with pytest.raises(JalmError, match=problem) as error:
        write_hf_tokenizer_files(path, tmp_path / "out")
    assert str(path) in _one_line(error) and not (tmp_path / "out").exists()


# --- sentences and sampling -----------------------------------------------------------------------


def test_split_sentences():
    text = "「はい。」と言った。次！\n\n  indented line\n\u3000全角で始まる。\n   \n"
    assert list(split_sentences(text)) == [
        "「はい。」と言った。",
        "次！",
        "  indented line",
        "\u3000全角で始まる。",
    ]
    long = "あ" * 2500
    assert list(split_sentences(long, max_chars=1000)) == ["あ" * 1000, "あ" * 1000, "あ" * 500]


def test_sampling_is_deterministic():
    docs = [f"文{i}。" * 3 + "\n" for i in range(100)]  # 300 sentences
    first, counts = sample_sentences(docs, 50, seed=0)
    again, _ = sample_sentences(docs, 50, seed=0)
    other, _ = sample_sentences(docs, 50, seed=1)
    assert first == again and first != other and len(first) == 50
    assert counts == {"documents": 100, "sentences_seen": 300, "sentences_used": 50, "long_sentences_cut": 0}
    everything, _ = sample_sentences(docs, 1000, seed=0)
    assert everything == [s for d in docs for s in split_sentences(d)]


# --- errors and CLI -------------------------------------------------------------------------------


def _one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_missing_input(tmp_path: Path):
    with pytest.raises(JalmError) as error:
        train_tokenizer([tmp_path / "nope.jsonl"], tmp_path / "out", progress=False)
    assert "nope.jsonl" in _one_line(error)


def test_empty_corpus(tmp_path: Path):
    path = tmp_path / "empty.jsonl"
    write_records(path, [{"text": ""}, {"text": "  \n\n\u3000"}])
    with pytest.raises(JalmError) as error:
        train_tokenizer([path], tmp_path / "out", vocab_size=1000, progress=False)
    assert "empty.jsonl" in _one_line(error) and "no text" in str(error.value)


def test_too_little_text_for_vocab(tmp_path: Path):
    path = tmp_path / "small.jsonl"
    write_records(path, [{"text": "吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。"}])
    with pytest.raises(JalmError) as error:
        train_tokenizer([path], tmp_path / "out", vocab_size=5000, progress=False)
    assert "small.jsonl" in _one_line(error) and "--vocab-size" in str(error.value)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jalm")
    register(parser.add_subparsers(dest="command"))
    return parser


def test_cli_train(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    parser = _parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["tokenizer", "train", "--help"])
    assert "example: jalm tokenizer train" in capsys.readouterr().out
    source = str(DATA / "corpus/aozora.jsonl.zst")
    argv = [
        "tokenizer",
        "train",
        source,
        "--vocab-size",
        "3000",
        "--out",
        str(tmp_path),
        "--max-sentences",
        "1500",
    ]
    assert run(parser.parse_args([*argv, "--quiet"])) == 0
    summary = capsys.readouterr().out.strip().splitlines()
    assert len(summary) == 1 and "vocab 3000" in summary[0] and "1,500 of" in summary[0], summary
    assert load_sentencepiece(tmp_path).get_piece_size() == 3000


def test_load_sentencepiece_errors(tmp_path: Path):
    with pytest.raises(JalmError, match="no such SentencePiece model"):
        load_sentencepiece(tmp_path)
    (tmp_path / "spiece.model").write_bytes(b"not a model")
    with pytest.raises(JalmError, match="not a SentencePiece model"):
        load_sentencepiece(tmp_path)


def test_sampling_is_uniform_across_shards_and_bounded():
    """Reservoir sampling over many shards: each shard's share of the sample follows its share of the
    sentences (not of the files), and the sample never holds more than --max-sentences."""
    from jalm.tokenizer import sample_sentences

    big = [f"大きい{i}。" for i in range(3000)]
    small = [f"小さい{i}。" for i in range(1000)]
    sample, counts = sample_sentences(iter(big + small), 400, seed=1)
    assert len(sample) == 400 and counts["sentences_seen"] == 4000
    share = sum(s.startswith("小さい") for s in sample) / len(sample)
    assert 0.19 < share < 0.31  # expected 0.25; binomial sd 0.022, so ±2.7 sd
    assert sample_sentences(iter(big + small), 400, seed=1)[0] == sample


def test_a_sample_too_big_for_memory_is_refused_before_training(monkeypatch, tmp_path):
    import jalm.tokenizer.train
    from jalm.tokenizer import train_tokenizer

    corpus = tmp_path / "c.jsonl"
    corpus.write_text(
        "\n".join(json.dumps({"text": f"吾輩は猫である{i}。名前はまだ無い。"}) for i in range(50))
    )
    monkeypatch.setattr(jalm.tokenizer.train, "machine_memory", lambda: 20_000)
    with pytest.raises(
        JalmError, match=r"need about .* GiB to train SentencePiece .* use --max-sentences \d+"
    ):
        train_tokenizer([corpus], tmp_path / "tok", vocab_size=300, progress=False)
