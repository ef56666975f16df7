"""jsquad-chat and aio-chat on a real tiny model whose directory carries LINE's chat template."""

from __future__ import annotations

import argparse
import json
import shutil

import pytest

from jalm.chat_template import LINE_CHAT_TEMPLATE, encode_conversation
from jalm.eval import AioChatConfig, JsquadChatConfig, evaluate, format_table, load_lm, read_results
from jalm.eval.aio import load_aio
from jalm.eval.chat import LINE_TEMPLATE_NOTE, chat_format, evaluate_aio_chat, strip_reply, user_prompt
from jalm.eval.jsquad import fewshot_plan, load_squad
from jalm.eval.metrics import aio_exact, jsquad_scores
from jalm.eval.table import format_params
from jalm.resources import bundled


def _with_template(source, out):
    shutil.copytree(source, out, dirs_exist_ok=True)
    config_path = out / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["chat_template"] = LINE_CHAT_TEMPLATE
    config_path.write_text(json.dumps(config, ensure_ascii=False, indent=2), encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def chat_model_dir(tiny_model_dir, tmp_path_factory):
    """The tiny model as an instruction-tuned export looks: LINE's template in tokenizer_config.json."""
    return _with_template(tiny_model_dir, tmp_path_factory.mktemp("chat_model"))


@pytest.fixture(scope="module")
def varied_chat_dir(chat_model_dir, tmp_path_factory):
    """The same with larger random weights, so that continuations depend on the prompt."""
    import torch
    from transformers import AutoModelForCausalLM

    out = tmp_path_factory.mktemp("varied_chat_model")
    shutil.copytree(chat_model_dir, out, dirs_exist_ok=True)
    model = AutoModelForCausalLM.from_pretrained(out)
    torch.manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() > 1:
                parameter.normal_(0.0, 0.2)
    model.save_pretrained(out)
    return out


def first_jsquad_question():
    return fewshot_plan(load_squad(bundled("eval/jsquad-valid-v1.1.json.zst")), [], 0, limit=1)[0][0]


def test_prompt_ids_are_the_template_s_encoding_of_one_user_message(chat_model_dir):
    lm = load_lm(chat_model_dir)
    question = first_jsquad_question()
    content = f"文章:{question.passage}\n質問:{question.question}\n質問の答えを文章中から一言で抜き出して答えてください。"
    messages = [{"role": "user", "content": content}]
    expected_ids, _ = encode_conversation(
        messages, lm.encode, {"</s>": 2}, LINE_CHAT_TEMPLATE, "</s>", add_generation_prompt=True
    )
    fmt = chat_format(lm)
    assert fmt.source == "model" and fmt.template == LINE_CHAT_TEMPLATE
    text, ids = user_prompt(
        lm, fmt, JsquadChatConfig().message.format(passage=question.passage, question=question.question)
    )
    assert ids == expected_ids
    # What transformers renders from the model directory, byte for byte; the ids decode back to it.
    rendered = lm.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == rendered == f"ユーザー: {content}\nシステム: "
    assert lm.decode(ids) == rendered
    assert lm.tokenizer.bos_token_id not in ids


def test_both_tasks_run_with_limit_and_are_scored_like_their_few_shot_forms(varied_chat_dir, tmp_path):
    out, preds = tmp_path / "results.json", tmp_path / "preds.jsonl"
    results = evaluate(
        varied_chat_dir, "jsquad-chat,aio-chat", out=out, limit=3, save_predictions=preds, progress=False
    )
    assert json.loads(out.read_text(encoding="utf-8")) == results
    jsquad, aio = results["tasks"]["jsquad-chat"], results["tasks"]["aio-chat"]
    assert jsquad["n"] == aio["n"] == 3 and jsquad["shots"] == aio["shots"] == 0
    assert jsquad["chat_template"] == aio["chat_template"] == "model"
    assert isinstance(jsquad["exact_match"], float) and isinstance(jsquad["f1"], float)
    assert isinstance(aio["exact_match"], float) and aio["max_new_tokens"] == 64

    records = [json.loads(line) for line in preds.read_text(encoding="utf-8").splitlines()]
    assert [r["task"] for r in records] == ["jsquad-chat"] * 3 + ["aio-chat"] * 3
    plan = fewshot_plan(load_squad(bundled("eval/jsquad-valid-v1.1.json.zst")), [], 0, limit=3)
    assert [r["id"] for r in records[:3]] == [q.id for q, _ in plan]  # jsquad's evaluation order
    assert [r["id"] for r in records[3:]] == [
        q.id for q in load_aio(bundled("eval/aio/aio_02_dev.tsv.zst"))[:3]
    ]
    assert len({r["prediction"] for r in records}) > 3  # continuations depend on the prompt
    for r in records[:3]:
        assert r["prompt"].startswith("ユーザー: 文章:") and r["prompt"].endswith("\nシステム: ")
        assert "\n" not in r["prediction"]
        assert (r["exact_match"], r["f1"]) == jsquad_scores(r["prediction"], r["golds"])
    for r in records[3:]:
        assert r["prompt"].endswith("\n答えだけを一言で答えてください。\nシステム: ")
        assert r["prediction"] == strip_reply(r["output"])
        assert r["exact_match"] == aio_exact(r["prediction"], r["golds"])
    assert jsquad["exact_match"] == pytest.approx(100 * sum(r["exact_match"] for r in records[:3]) / 3)


def test_a_reply_ends_at_the_models_end_of_sequence(varied_chat_dir, tmp_path):
    import torch

    lm = load_lm(varied_chat_dir)
    _, ids = user_prompt(
        lm,
        chat_format(lm),
        AioChatConfig().message.format(question=load_aio(bundled("eval/aio/aio_02_dev.tsv.zst"))[0].question),
    )
    with torch.no_grad():
        reference = lm.model.generate(torch.tensor([ids]), max_new_tokens=64, do_sample=False, pad_token_id=3)
    generated = reference[0, len(ids) :].tolist()
    _, records = evaluate_aio_chat(lm, AioChatConfig(), limit=1, progress=False)
    assert records[0]["output"] == lm.decode(generated)  # greedy, no stop string, 64 tokens at most
    # A token the reply really produces, not its first: declared an end of sequence, the reply stops before it.
    k = next(i for i in range(1, len(generated)) if generated[i] not in generated[:i])
    stops_early = tmp_path / "model"
    shutil.copytree(varied_chat_dir, stops_early)
    config_path = stops_early / "generation_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["eos_token_id"] = [2, generated[k]]
    config_path.write_text(json.dumps(config), encoding="utf-8")
    _, records = evaluate_aio_chat(load_lm(stops_early), AioChatConfig(), limit=1, progress=False)
    assert records[0]["output"] == lm.decode(generated[:k])


def test_a_model_without_a_template_is_asked_in_lines_format_and_says_so(tiny_model_dir, chat_model_dir):
    base = evaluate(
        tiny_model_dir, [JsquadChatConfig(), AioChatConfig(max_new_tokens=4)], limit=1, progress=False
    )
    assert base["tasks"]["jsquad-chat"]["chat_template"] == LINE_TEMPLATE_NOTE
    assert base["tasks"]["aio-chat"]["chat_template"] == LINE_TEMPLATE_NOTE
    assert chat_format(load_lm(chat_model_dir)).source == "model"
    assert "LINE (model has none) template" in format_table([base])


def test_reply_stripping():
    assert strip_reply(" 「富士山」\n") == "富士山"
    assert strip_reply("『坊っちゃん』") == "『坊っちゃん』"  # left to the AI王 normalisation


def test_table_shows_base_and_chat_columns_side_by_side(tiny_model_dir, chat_model_dir, tmp_path, capsys):
    from jalm.eval import command

    base_path, sft_path = tmp_path / "base.json", tmp_path / "sft.json"
    evaluate(tiny_model_dir, "jsquad,aio", out=base_path, limit=1, name="base", progress=False)
    evaluate(
        chat_model_dir,
        [JsquadChatConfig(), AioChatConfig(max_new_tokens=4)],
        out=sft_path,
        limit=1,
        name="sft",
        progress=False,
    )
    parser = argparse.ArgumentParser(prog="jalm")
    command.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["eval", "table", str(base_path), str(sft_path)])
    assert args.func(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "| model | params | C4 PPL | AI王 | AI王 (chat) | JSQuAD | JSQuAD (chat) |"
    base, sft = (read_results(p) for p in (base_path, sft_path))
    size = format_params(base["params"])
    assert lines[2] == (
        f"| base | {size} | — | {base['tasks']['aio']['exact_match']:.1f} | — | "
        f"{base['tasks']['jsquad']['exact_match']:.2f} | — |"
    )
    assert lines[3] == (
        f"| sft | {size} | — | — | {sft['tasks']['aio-chat']['exact_match']:.1f} | — | "
        f"{sft['tasks']['jsquad-chat']['exact_match']:.2f} |"
    )
