"""Chat through the model's chat template: the prompt ids `jalm.chat.chat_prompt_ids` builds (those training
builds, and the text transformers' apply_chat_template renders), a real server answering
/v1/chat/completions with them, the notice for a model without a template, and `jalm generate --chat`."""

from __future__ import annotations

import json
import shutil
import warnings

import httpx
import pytest

from jalm.chat import FALLBACK_STOPS, NO_TEMPLATE_NOTICE, chat_notice, chat_prompt_ids, chat_stops
from jalm.chat_template import LINE_CHAT_TEMPLATE, encode_conversation
from jalm.cli import main
from jalm.generate import chat, load
from jalm.serve.api import Limits
from jalm.serve.command import load_app, running

LIMITS = Limits(max_tokens=64, default_max_tokens=16, max_n=4)
QUESTION = [{"role": "user", "content": "四国の県名を全て列挙してください。"}]
CONVERSATION = [
    {"role": "system", "content": "あなたは丁寧なアシスタントです。"},
    {"role": "user", "content": "四国の県名を全て列挙してください。"},
    {"role": "assistant", "content": "香川、徳島、愛媛、高知です。"},
    {"role": "user", "content": "ありがとう"},
]


@pytest.fixture(scope="module")
def chat_model_dir(tiny_model_dir, tmp_path_factory):
    """The tiny model laid out as an instruction-tuned export: a chat template, eos and pad both </s> (2)."""
    model = tmp_path_factory.mktemp("chat") / "chat-model"
    shutil.copytree(tiny_model_dir, model)
    path = model / "tokenizer_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps({**config, "chat_template": LINE_CHAT_TEMPLATE}, ensure_ascii=False), "utf-8")
    path = model / "generation_config.json"
    generation = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps({**generation, "eos_token_id": 2, "pad_token_id": 2}), encoding="utf-8")
    return model


@pytest.fixture(scope="module")
def chat_loaded(chat_model_dir):
    return load(chat_model_dir)


@pytest.fixture(scope="module")
def base_loaded(tiny_model_dir):
    return load(tiny_model_dir)


def training_ids(tokenizer, messages, template):
    """The ids `jalm sft` trains on for this conversation, ending with the generation prompt."""
    ids, _ = encode_conversation(
        messages,
        encode=lambda text: tokenizer(text, add_special_tokens=False)["input_ids"],
        special_ids={tokenizer.eos_token: tokenizer.eos_token_id},
        template=template,
        eos_token=tokenizer.eos_token,
        add_generation_prompt=True,
    )
    return ids


def test_prompt_ids_are_the_training_ids_of_what_apply_chat_template_renders(chat_loaded):
    _, tokenizer = chat_loaded
    assert tokenizer.chat_template == LINE_CHAT_TEMPLATE  # read from tokenizer_config.json
    for messages in (QUESTION, CONVERSATION):
        ids, notice = chat_prompt_ids(tokenizer, messages)
        assert notice is None
        assert ids == training_ids(tokenizer, messages, LINE_CHAT_TEMPLATE)
        rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        assert tokenizer.decode(ids, skip_special_tokens=False) == rendered
        assert rendered.endswith("\nシステム: ") and not rendered.startswith("<s>")
    ids, _ = chat_prompt_ids(tokenizer, CONVERSATION)
    assert ids.count(tokenizer.eos_token_id) == 1  # the earlier reply ends with </s> as its id, not its text
    assert chat_stops(tokenizer) == [] and chat_notice(tokenizer) is None


def test_prompt_ids_follow_the_models_own_template_not_lines(chat_model_dir):
    from jalm.hf import load_tokenizer

    tokenizer = load_tokenizer(chat_model_dir)
    tokenizer.chat_template = (
        "{% for m in messages %}{{ '### ' + m['role'] + ':\\n' + m['content'] + '\\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '### assistant:\\n' }}{% endif %}"
    )
    ids, notice = chat_prompt_ids(tokenizer, QUESTION)
    rendered = tokenizer.apply_chat_template(QUESTION, tokenize=False, add_generation_prompt=True)
    assert notice is None and tokenizer.decode(ids) == rendered
    assert ids == training_ids(tokenizer, QUESTION, tokenizer.chat_template)


def test_a_base_model_gets_lines_format_and_a_notice(base_loaded):
    _, tokenizer = base_loaded
    assert not getattr(tokenizer, "chat_template", None)
    ids, notice = chat_prompt_ids(tokenizer, CONVERSATION)
    assert notice == NO_TEMPLATE_NOTICE and "no chat template" in notice
    assert ids == training_ids(tokenizer, CONVERSATION, LINE_CHAT_TEMPLATE)
    assert chat_stops(tokenizer) == FALLBACK_STOPS == ["\nユーザー:"]


def test_server_chats_with_the_template_ids(chat_model_dir, chat_loaded):
    model, tokenizer = chat_loaded
    app = load_app(chat_model_dir, limits=LIMITS)
    ids, _ = chat_prompt_ids(tokenizer, CONVERSATION)
    body = {"messages": CONVERSATION, "max_tokens": 12, "seed": 4, "n": 2}
    with running(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        reply = client.post("/v1/chat/completions", json=body)
        assert reply.status_code == 200, reply.text
        data = reply.json()
        with client.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as response:
            chunks = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: {")]
        page = client.get("/").text
        refused = client.post(
            "/v1/chat/completions", json={"messages": list(reversed(CONVERSATION[:2])), "max_tokens": 4}
        )
    assert "jalm_notice" not in data and data["usage"]["prompt_tokens"] == len(ids)
    # The same ids through the Python API give the same replies: the engine generated from exactly these ids.
    expected = chat(
        (model, tokenizer), CONVERSATION, max_new_tokens=12, do_sample=True, num_return_sequences=2, seed=4
    )
    assert [c["message"]["content"] for c in data["choices"]] == expected
    assert all(c["finish_reason"] in ("stop", "length") for c in data["choices"])
    assert not any("jalm_notice" in chunk for chunk in chunks)
    streamed = {0: "", 1: ""}
    for chunk in chunks:
        for c in chunk["choices"]:
            streamed[c["index"]] += c["delta"].get("content", "")
    assert [streamed[0], streamed[1]] == expected
    assert "chat (the model&#x27;s chat template)" in page and 'id="chat-notice"' in page
    assert "no chat template" not in page
    # LINE's template accepts a system message only first: a 400 naming the messages, not a server error.
    assert refused.status_code == 400, refused.text
    assert (
        refused.json()["error"]["param"] == "messages"
        and "system message" in refused.json()["error"]["message"]
    )


def test_generate_chat_on_a_chat_model_and_a_base_model(
    chat_model_dir, chat_loaded, tiny_model_dir, base_loaded, capsys
):
    args = [
        "generate",
        "--chat",
        "--prompt",
        "四国の県名を全て列挙してください。",
        "--max-new-tokens",
        "10",
        "--seed",
        "3",
    ]
    assert main([*args, "--model", str(chat_model_dir)]) == 0
    out, err = capsys.readouterr()
    assert out == chat(chat_loaded, QUESTION, max_new_tokens=10, do_sample=True, seed=3)[0] + "\n"
    assert "no chat template" not in err and "tokens/s" in err

    system = "あなたは丁寧なアシスタントです。"
    assert (
        main([*args, "--model", str(chat_model_dir), "--system", system, "--num-return-sequences", "2"]) == 0
    )
    out, _ = capsys.readouterr()
    messages = [{"role": "system", "content": system}, *QUESTION]
    expected = chat(chat_loaded, messages, max_new_tokens=10, do_sample=True, num_return_sequences=2, seed=3)
    assert out == "".join(f"[{i}] {text}\n" for i, text in enumerate(expected, 1))

    assert main([*args, "--model", str(tiny_model_dir)]) == 0
    out, err = capsys.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        [reply] = chat(base_loaded, QUESTION, max_new_tokens=10, do_sample=True, seed=3)
    assert out == reply + "\n" and "\nユーザー:" not in reply
    assert NO_TEMPLATE_NOTICE in err and [str(w.message) for w in caught] == [NO_TEMPLATE_NOTICE]

    assert main(["generate", "--model", str(tiny_model_dir), "--system", system]) == 2
    assert "add --chat" in capsys.readouterr().err
