"""`jalm serve` against a real uvicorn server on a loopback port, over real HTTP: the card page, the
OpenAI-compatible completions (plain, streamed, chat), concurrency, and bad requests (each a JSON 4xx in
OpenAI's shape, after which the server still answers)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading

import httpx
import pytest

from jalm.chat import NO_TEMPLATE_NOTICE, chat_prompt_ids
from jalm.cli import main
from jalm.generate import generate
from jalm.serve.api import Limits
from jalm.serve.command import load_app, running

LIMITS = Limits(max_body_bytes=16_384, max_prompt_chars=2_000, max_tokens=64, default_max_tokens=16, max_n=4)
RESULTS = {
    "model": "tiny",
    "model_name": "tiny-test",
    "params": 356_096,
    "tasks": {
        "ppl": {
            "ppl": 812.34,
            "bits_per_char": 7.123,
            "tokens": 5000,
            "chars": 9000,
            "documents": 10,
            "data": "dev.jsonl",
        },
        "jsquad": {"exact_match": 1.25, "f1": 5.5, "n": 100, "shots": 3},
        "aio": {"exact_match": 0.5, "n": 100},
    },
}


@pytest.fixture(scope="module")
def model_copy(tiny_model_dir, tmp_path_factory):
    """The tiny model with a results.json beside it (in the run directory, as `jalm demo` lays it out)."""
    run = tmp_path_factory.mktemp("served")
    model = run / "model"
    shutil.copytree(tiny_model_dir, model)
    (run / "results.json").write_text(json.dumps(RESULTS), encoding="utf-8")
    return model


@pytest.fixture(scope="module")
def app(model_copy):
    return load_app(model_copy, limits=LIMITS)


@pytest.fixture(scope="module")
def url(app):
    with running(app) as base:
        yield base


@pytest.fixture(scope="module")
def client(url):
    with httpx.Client(base_url=url, timeout=60) as c:
        yield c


def events(response: httpx.Response) -> list:
    """The data payloads of a server-sent event stream, in order ([DONE] kept as the string)."""
    out = []
    for line in response.iter_lines():
        if line.startswith("data: "):
            data = line[len("data: ") :]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def test_page_health_models_and_card(client, model_copy):
    assert client.get("/health").json()["status"] == "ok"
    models = client.get("/v1/models").json()
    assert models["data"][0]["id"] == "model" and models["data"][0]["context_length"] == 256
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    for fact in (
        "Playground",
        "GPTNeoXForCausalLM",
        "356,096",
        "Unigram",
        "byte fallback",
        "812.34",
        "7.123",
        "1.25",
        f"from_pretrained(&quot;{model_copy}&quot;",
        "use_fast=False",
        "cosine",
    ):
        assert fact in html, fact
    png = client.get("/files/loss.png")
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert client.get("/static/playground.js").status_code == 200
    assert "| tiny-test | 356.1K | 812.34 |" in client.get("/card.md").text
    samples = client.get("/api/samples").json()["samples"]
    assert samples == generate(model_copy, max_length=30, do_sample=True, num_return_sequences=5, seed=101)


def test_completion_is_the_python_api_result(client, app):
    engine = app.state.engine
    body = {"model": "model", "prompt": "吾輩は猫である。", "max_tokens": 20, "seed": 5, "n": 2}
    reply = client.post("/v1/completions", json=body)
    assert reply.status_code == 200, reply.text
    data = reply.json()
    assert data["object"] == "text_completion" and [c["index"] for c in data["choices"]] == [0, 1]
    expected = generate(
        (engine.model, engine.tokenizer),
        "吾輩は猫である。",
        max_new_tokens=20,
        do_sample=True,
        num_return_sequences=2,
        seed=5,
        return_full_text=False,
    )
    assert [c["text"] for c in data["choices"]] == expected
    assert all(c["finish_reason"] in ("length", "stop") for c in data["choices"])
    prompt_tokens = len(engine.encode("吾輩は猫である。"))
    assert data["usage"]["prompt_tokens"] == prompt_tokens
    assert 2 <= data["usage"]["completion_tokens"] <= 40
    echoed = client.post("/v1/completions", json={**body, "echo": True}).json()
    assert [c["text"] for c in echoed["choices"]] == ["吾輩は猫である。" + text for text in expected]
    greedy = [
        client.post("/v1/completions", json={"prompt": "日本の", "max_tokens": 10, "temperature": 0}).json()
        for _ in range(2)
    ]
    # Greedy decoding does not depend on the random seed the server draws for unseeded requests.
    assert greedy[0]["choices"][0]["text"] == greedy[1]["choices"][0]["text"]


def test_streaming_completion_sends_tokens_then_done(client):
    body = {"prompt": "吾輩は猫である。", "max_tokens": 24, "seed": 9, "n": 2}
    plain = client.post("/v1/completions", json=body).json()
    with client.stream(
        "POST", "/v1/completions", json={**body, "stream": True, "stream_options": {"include_usage": True}}
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        got = events(response)
    assert got[-1] == "[DONE]"
    chunks = got[:-1]
    texts = {0: "", 1: ""}
    finish = {}
    for chunk in chunks:
        for choice in chunk["choices"]:
            texts[choice["index"]] += choice["text"]
            if choice["finish_reason"]:
                finish[choice["index"]] = choice["finish_reason"]
    assert [texts[0], texts[1]] == [c["text"] for c in plain["choices"]]
    assert finish == {c["index"]: c["finish_reason"] for c in plain["choices"]}
    assert sum(1 for c in chunks if c["choices"] and c["choices"][0]["text"]) > 4  # token by token
    assert chunks[-1]["usage"] == plain["usage"]


def test_chat_of_a_base_model_uses_lines_sft_format_and_says_so(client, app):
    engine = app.state.engine
    messages = [{"role": "user", "content": "四国の県名を全て列挙してください。"}]
    reply = client.post("/v1/chat/completions", json={"messages": messages, "max_tokens": 16, "seed": 2})
    assert reply.status_code == 200, reply.text
    data = reply.json()
    assert data["object"] == "chat.completion"
    assert data["jalm_notice"] == NO_TEMPLATE_NOTICE  # the tiny model was not instruction-tuned
    answer = data["choices"][0]["message"]
    assert answer["role"] == "assistant" and "\nユーザー:" not in answer["content"]
    expected_prompt = "ユーザー: 四国の県名を全て列挙してください。\nシステム: "
    assert data["usage"]["prompt_tokens"] == len(engine.encode(expected_prompt))
    turns = messages + [
        {"role": "assistant", "content": "香川、徳島、愛媛、高知です。"},
        {"role": "user", "content": "ありがとう"},
    ]
    two = client.post("/v1/chat/completions", json={"messages": turns, "max_tokens": 8, "seed": 2}).json()
    # Earlier replies end with </s>, as `jalm sft` trains; each segment is encoded on its own.
    ids, notice = chat_prompt_ids(engine.tokenizer, turns)
    assert two["usage"]["prompt_tokens"] == len(ids) and notice == two["jalm_notice"]
    assert (
        engine.tokenizer.decode(ids)
        == expected_prompt + "香川、徳島、愛媛、高知です。</s>ユーザー: ありがとう\nシステム: "
    )
    with client.stream(
        "POST",
        "/v1/chat/completions",
        json={"messages": messages, "max_tokens": 16, "seed": 2, "stream": True},
    ) as response:
        got = events(response)
    assert got[-1] == "[DONE]" and got[0]["choices"][0]["delta"]["role"] == "assistant"
    assert got[0]["jalm_notice"] == NO_TEMPLATE_NOTICE and not any("jalm_notice" in c for c in got[1:-1])
    streamed = "".join(c["choices"][0]["delta"].get("content", "") for c in got[:-1] if c["choices"])
    assert streamed == answer["content"]
    assert got[-2]["choices"][0]["finish_reason"] == data["choices"][0]["finish_reason"]
    page = client.get("/").text
    assert 'id="chat-notice"' in page and "this model has no chat template" in page


def test_concurrent_requests_are_all_answered_and_the_loop_stays_free(client, url):
    results: dict[int, object] = {}

    def ask(i: int) -> None:
        with httpx.Client(base_url=url, timeout=120) as c:
            if i % 2:
                with c.stream(
                    "POST",
                    "/v1/completions",
                    json={"prompt": f"第{i}章", "max_tokens": 12, "seed": i, "stream": True},
                ) as r:
                    results[i] = events(r)[-1]
            else:
                results[i] = c.post(
                    "/v1/completions", json={"prompt": f"第{i}章", "max_tokens": 12, "seed": i}
                ).json()

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == list(range(6))
    for i, result in results.items():
        assert result == "[DONE]" if i % 2 else len(result["choices"]) == 1, result

    # While a long generation streams, the event loop answers other requests.
    with client.stream(
        "POST", "/v1/completions", json={"prompt": "昔々", "max_tokens": 64, "seed": 1, "stream": True}
    ) as long:
        lines = long.iter_lines()
        first = next(line for line in lines if line.startswith("data: "))
        assert json.loads(first[6:])["choices"][0]["finish_reason"] is None
        health = client.get("/health").json()
        assert health["pending"] >= 1  # answered while the stream was still being generated
        rest = [line for line in lines if line.startswith("data: ")]
    assert rest[-1] == "data: [DONE]"


BAD = [
    ("malformed JSON", b'{"prompt": "x",', 400, None, "not valid JSON"),
    ("not an object", b'["x"]', 400, None, "JSON object"),
    ("no prompt", {"max_tokens": 5}, 400, "prompt", "required"),
    ("prompt wrong type", {"prompt": 5}, 400, "prompt", "wrong type"),
    ("max_tokens string", {"prompt": "x", "max_tokens": "5"}, 400, "max_tokens", "wrong type"),
    ("max_tokens float", {"prompt": "x", "max_tokens": 5.5}, 400, "max_tokens", "wrong type"),
    ("temperature string", {"prompt": "x", "temperature": "hot"}, 400, "temperature", "wrong type"),
    ("stream not bool", {"prompt": "x", "stream": "yes"}, 400, "stream", "wrong type"),
    (
        "negative max_tokens",
        {"prompt": "x", "max_tokens": -5},
        400,
        "max_tokens",
        "greater than or equal to 1",
    ),
    ("zero max_tokens", {"prompt": "x", "max_tokens": 0}, 400, "max_tokens", "greater than or equal to 1"),
    (
        "huge max_tokens",
        {"prompt": "x", "max_tokens": 10**12},
        400,
        "max_tokens",
        "more than this server allows",
    ),
    (
        "temperature out of range",
        {"prompt": "x", "temperature": 5},
        400,
        "temperature",
        "less than or equal to 2",
    ),
    ("top_p zero", {"prompt": "x", "top_p": 0}, 400, "top_p", "greater than 0"),
    ("too many sequences", {"prompt": "x", "n": 50}, 400, "n", "at most 4"),
    ("greedy with n > 1", {"prompt": "x", "n": 2, "temperature": 0}, 400, None, "greedy decoding gives one"),
    ("seed out of range", {"prompt": "x", "seed": -1}, 400, "seed", "greater than or equal to 0"),
    ("unknown model", {"prompt": "x", "model": "gpt-4"}, 404, "model", "does not exist"),
    ("prompt over char limit", {"prompt": "あ" * 2001}, 400, "prompt", "more than this server accepts"),
    (
        "prompt over context",
        {"prompt": "吾輩は猫である。名前はまだ無い。" * 60, "max_tokens": 4},
        400,
        "prompt",
        "maximum context length is 256",
    ),
    (
        "prompt + max_tokens over context",
        {"prompt": "吾輩は猫である。名前はまだ無い。" * 17, "max_tokens": 64},
        400,
        "max_tokens",
        "maximum context length is 256",
    ),
    ("too many stop strings", {"prompt": "x", "stop": ["a", "b", "c", "d", "e"]}, 400, "stop", "at most 4"),
    ("logprobs", {"prompt": "x", "logprobs": 5}, 400, "logprobs", "not supported"),
    ("body too large", {"prompt": "x", "padding": "あ" * 20_000}, 413, None, "larger than 16,384 bytes"),
]


@pytest.mark.parametrize("name, body, status, param, message", BAD, ids=[b[0] for b in BAD])
def test_bad_completion_requests_get_a_json_4xx(client, name, body, status, param, message):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    reply = client.post("/v1/completions", content=content, headers={"content-type": "application/json"})
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert message in error["message"] and error["type"] and error["param"] == param
    assert client.get("/health").status_code == 200


BAD_CHAT = [
    ("no messages", {"messages": []}, "messages"),
    ("messages not a list", {"messages": "hi"}, "messages"),
    ("unknown role", {"messages": [{"role": "robot", "content": "hi"}]}, "messages.0.role"),
    ("content not text", {"messages": [{"role": "user", "content": 3}]}, "messages.0.content"),
    (
        "both token limits",
        {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "max_completion_tokens": 3},
        "max_completion_tokens",
    ),
]


@pytest.mark.parametrize("name, body, param", BAD_CHAT, ids=[b[0] for b in BAD_CHAT])
def test_bad_chat_requests_get_a_json_400(client, name, body, param):
    reply = client.post("/v1/chat/completions", json=body)
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["param"] == param


def test_other_bad_requests_and_the_server_still_serves(client):
    def chunks():  # no content-length: the limit must hold for a chunked body too
        for _ in range(40):
            yield b"x" * 1000

    reply = client.post("/v1/completions", content=chunks(), headers={"content-type": "application/json"})
    assert reply.status_code == 413 and "larger than" in reply.json()["error"]["message"]
    with client.stream(
        "POST", "/v1/completions", json={"prompt": "昔々", "max_tokens": 64, "stream": True}
    ) as r:
        next(line for line in r.iter_lines() if line.startswith("data: "))  # then hang up mid-stream
    assert client.get("/nowhere").json()["error"]["code"] == "not_found"
    assert client.get("/v1/completions").status_code == 405
    ok = client.post("/v1/completions", json={"prompt": "吾輩は", "max_tokens": 4})
    assert ok.status_code == 200 and ok.json()["choices"][0]["text"]


def test_cli_serves_on_loopback_and_refuses_to_expose_silently(model_copy, capsys):
    assert main(["serve", "--model", str(model_copy), "--host", "0.0.0.0"]) == 2
    assert "add --expose" in capsys.readouterr().err
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jalm.cli",
            "serve",
            "--model",
            str(model_copy),
            "--port",
            "0",
            "--log-level",
            "warning",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("jalm serve:"):
                break
        assert lines and lines[-1].startswith("jalm serve: model at http://127.0.0.1:"), "".join(lines)
        base = lines[-1].split(" at ")[1].split()[0]
        assert httpx.get(base + "health", timeout=30).json()["status"] == "ok"
        assert "Playground" in httpx.get(base, timeout=30).text
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_full_queue_answers_429_and_recovers(model_copy):
    app = load_app(model_copy, limits=Limits(max_pending=1, max_tokens=16))
    engine = app.state.engine
    gate = threading.Event()
    engine.submit(gate.wait)  # occupy the model thread so the next request has to wait in the queue
    with running(app) as base, httpx.Client(base_url=base, timeout=60) as c:
        with c.stream(
            "POST", "/v1/completions", json={"prompt": "昔々", "max_tokens": 8, "stream": True}
        ) as queued:
            assert queued.status_code == 200
            while c.get("/health").json()["pending"] < 1:  # the queued request has reached the engine
                pass
            busy = c.post("/v1/completions", json={"prompt": "昔々", "max_tokens": 8})
            assert busy.status_code == 429 and busy.json()["error"]["code"] == "server_busy"
            assert c.get("/").status_code == 200  # pages are still served while generation is saturated
            gate.set()
            assert events(queued)[-1] == "[DONE]"
        assert c.post("/v1/completions", json={"prompt": "昔々", "max_tokens": 8}).status_code == 200
