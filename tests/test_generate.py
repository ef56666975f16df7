"""`jalm generate` and its Python API on the real tiny model: parity with LINE's pipeline call, seeds,
streaming deltas, stop strings, byte-fallback decoding, and the CLI's output and errors."""

from __future__ import annotations

import shutil

import pytest

from jalm.cli import main
from jalm.generate import PROMPT, IncrementalDecoder, Sampling, complete, encode_prompt, generate, load

HARD_TEXTS = [
    "おはようございます、今日の天気は晴れです。🌸🍣👍🏽",
    "𠮷野家で𩸽を食べた。ｶﾀｶﾅとﾊﾝｶｸ、全角　空白。",
    "改行\n\nと  連続した   空白、そしてタブ\tも。",
    "Ｕｎｉｃｏｄｅ①②③ ㈱ ㌔ 〜～ ̈ 😀😀😀",
]


@pytest.fixture(scope="module")
def loaded(tiny_model_dir):
    return load(tiny_model_dir)


def test_generate_returns_what_lines_pipeline_returns(tiny_model_dir, loaded):
    from transformers import pipeline, set_seed

    model, tokenizer = loaded
    generator = pipeline("text-generation", model=model, tokenizer=tokenizer, device=-1)
    set_seed(101)
    expected = generator(
        PROMPT, max_length=30, do_sample=True, pad_token_id=tokenizer.pad_token_id, num_return_sequences=5
    )
    texts = generate(tiny_model_dir, PROMPT, max_length=30, do_sample=True, num_return_sequences=5, seed=101)
    assert texts == [t["generated_text"] for t in expected]
    assert len(set(texts)) > 1 and all(t.startswith(PROMPT) and len(t) > len(PROMPT) for t in texts)


def test_seed_is_reproducible_and_deltas_add_up(loaded):
    deltas: dict[int, list[str]] = {0: [], 1: []}
    first = generate(
        loaded,
        "吾輩は猫である。",
        max_new_tokens=20,
        do_sample=True,
        num_return_sequences=2,
        seed=7,
        return_full_text=False,
        on_text=lambda i, d: deltas[i].append(d),
    )
    again = generate(
        loaded,
        "吾輩は猫である。",
        max_new_tokens=20,
        do_sample=True,
        num_return_sequences=2,
        seed=7,
        return_full_text=False,
    )
    other = generate(
        loaded,
        "吾輩は猫である。",
        max_new_tokens=20,
        do_sample=True,
        num_return_sequences=2,
        seed=8,
        return_full_text=False,
    )
    assert first == again
    assert first != other
    assert ["".join(deltas[i]) for i in (0, 1)] == first
    assert all(len(deltas[i]) > 1 for i in (0, 1))  # streamed in pieces, not at the end


def test_greedy_matches_transformers_generate(loaded):
    import torch

    model, tokenizer = loaded
    prompt = "日本の首都は"
    ids = encode_prompt(tokenizer, prompt)
    assert tokenizer.eos_token_id not in ids and tokenizer.bos_token_id not in ids
    with torch.no_grad():
        out = model.generate(
            torch.tensor([ids]),
            attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            do_sample=False,
            max_new_tokens=15,
            pad_token_id=tokenizer.pad_token_id,
        )
    expected = tokenizer.decode(out[0, len(ids) :], skip_special_tokens=True)
    [result] = complete(model, tokenizer, ids, Sampling(max_new_tokens=15, do_sample=False))
    assert result.text == expected
    assert result.tokens <= 15
    assert result.finish_reason in ("length", "stop")


def test_stop_string_cuts_the_text_and_ends_the_sequence(loaded):
    model, tokenizer = loaded
    ids = encode_prompt(tokenizer, "吾輩は猫である。名前は")
    [free] = complete(model, tokenizer, ids, Sampling(max_new_tokens=30, do_sample=False))
    stop = free.text.strip()[1:3] or free.text[:1]
    assert stop and stop in free.text
    seen: list[str] = []
    [cut] = complete(
        model,
        tokenizer,
        ids,
        Sampling(max_new_tokens=30, do_sample=False, stop=[stop]),
        on_text=lambda _, d: seen.append(d),
    )
    assert cut.text == free.text[: free.text.index(stop)]
    assert cut.finish_reason == "stop"
    assert "".join(seen) == cut.text  # the held-back start of the stop string was never streamed


@pytest.mark.parametrize("text", HARD_TEXTS)
def test_incremental_decoding_matches_whole_decoding(loaded, text):
    _, tokenizer = loaded
    ids = encode_prompt(tokenizer, text)
    decoder = IncrementalDecoder(tokenizer, encode_prompt(tokenizer, "前置き"))
    deltas = [decoder.push(i) for i in ids] + [decoder.flush()]
    assert "".join(deltas) == tokenizer.decode(ids, skip_special_tokens=True) == text
    assert not any("\ufffd" in d for d in deltas)  # partial UTF-8 from byte pieces is held back


def test_incremental_decoding_of_invalid_byte_runs_matches_whole_decoding(loaded):
    """A sampling model can emit byte pieces that are not valid UTF-8; the decoder reads a run of byte
    pieces as one string (an ASCII byte before an invalid one turns into U+FFFD too), so do we."""
    _, tokenizer = loaded
    byte = {b: tokenizer.convert_tokens_to_ids(f"<0x{b:02X}>") for b in (0x40, 0xDE, 0xE3, 0x82, 0x92)}
    ids = (
        encode_prompt(tokenizer, "正")
        + [byte[0x40], byte[0xDE]]
        + encode_prompt(tokenizer, "カフカ")
        + [byte[0xE3], byte[0x82], byte[0x92], byte[0x82]]
        + encode_prompt(tokenizer, "己")
    )
    decoder = IncrementalDecoder(tokenizer)
    deltas = [decoder.push(i) for i in ids] + [decoder.flush()]
    assert "".join(deltas) == tokenizer.decode(ids, skip_special_tokens=True)
    assert "\ufffd\ufffd" in "".join(deltas)


def test_cli_streams_one_sequence_and_prints_several(tiny_model_dir, loaded, capsys):
    assert (
        main(
            [
                "generate",
                "--model",
                str(tiny_model_dir),
                "--prompt",
                "吾輩は",
                "--max-new-tokens",
                "12",
                "--seed",
                "3",
            ]
        )
        == 0
    )
    out, err = capsys.readouterr()
    expected = generate(loaded, "吾輩は", max_new_tokens=12, do_sample=True, seed=3)[0]
    assert out == expected + "\n"
    assert "tokens/s" in err
    assert (
        main(
            [
                "generate",
                "--model",
                str(tiny_model_dir),
                "--prompt",
                "吾輩は",
                "--max-length",
                "15",
                "--num-return-sequences",
                "3",
                "--seed",
                "3",
            ]
        )
        == 0
    )
    out, _ = capsys.readouterr()
    expected = generate(loaded, "吾輩は", max_length=15, do_sample=True, num_return_sequences=3, seed=3)
    assert out.startswith("".join(f"[{i}] {text}\n" for i, text in enumerate(expected, 1)))


def test_cli_errors_are_one_line(tiny_model_dir, tmp_path, capsys):
    bare = tmp_path / "no_weights"
    bare.mkdir()
    shutil.copy2(tiny_model_dir / "config.json", bare / "config.json")
    assert main(["generate", "--model", str(bare)]) == 2
    err = capsys.readouterr().err.strip()
    assert "no weights" in err and str(bare) in err and "\n" not in err
    assert main(["generate", "--model", str(tiny_model_dir), "--max-length", "3"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and "max_length 3 leaves no room" in errors[0]
    assert main(["generate", "--model", str(tiny_model_dir), "--max-new-tokens", "5000"]) == 2
    assert "context of 256 tokens" in capsys.readouterr().err
    assert main(["generate", "--model", str(tiny_model_dir), "--greedy", "--num-return-sequences", "2"]) == 2
    assert "greedy decoding gives one sequence" in capsys.readouterr().err


def test_cancel_stops_every_sequence_early(loaded):
    model, tokenizer = loaded
    seen: list[str] = []
    results = complete(
        model,
        tokenizer,
        encode_prompt(tokenizer, "昔々"),
        Sampling(max_new_tokens=60, do_sample=True, num_return_sequences=2, seed=1),
        on_text=lambda _, d: seen.append(d),
        cancelled=lambda: len(seen) >= 3,
    )
    assert [r.finish_reason for r in results] == ["cancelled", "cancelled"]
    assert all(r.tokens < 60 for r in results)
