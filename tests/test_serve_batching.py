"""`jalm serve` under several visitors, over real HTTP on a loopback port: concurrent requests are decoded
together (continuous batching), yet each gets exactly what it gets alone, streamed or not, chat or
completion, greedy or seeded; a request that ends early leaves the batch while the others go on; a client
that hangs up mid-stream frees its rows.

To make the batch certain rather than likely, the model thread is held (`engine.submit(gate.wait)`) until
every request has reached the engine, then released: they all join the same step."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from jalm.serve.api import Limits
from jalm.serve.command import load_app, running

LIMITS = Limits(max_tokens=160, default_max_tokens=16, max_n=4, max_batch=16)
QUESTION = [{"role": "user", "content": "四国の県名を全て列挙してください。"}]
CASES = [
    ("/v1/completions", {"prompt": "吾輩は猫である。", "max_tokens": 40, "temperature": 0}),
    ("/v1/completions", {"prompt": "日本の首都は", "max_tokens": 5, "temperature": 0}),
    ("/v1/completions", {"prompt": "昔々、あるところに", "max_tokens": 40, "temperature": 0, "stop": ["の"]}),
    (
        "/v1/completions",
        {"prompt": "京都の", "max_tokens": 30, "temperature": 0.9, "top_k": 20, "seed": 3, "n": 2},
    ),
    (
        "/v1/completions",
        {
            "prompt": "東京",
            "max_tokens": 30,
            "top_p": 0.8,
            "repetition_penalty": 1.2,
            "seed": 7,
            "stream": True,
        },
    ),
    ("/v1/completions", {"prompt": "第3章", "max_tokens": 40, "temperature": 0, "stream": True}),
    ("/v1/chat/completions", {"messages": QUESTION, "max_tokens": 24, "temperature": 0}),
    (
        "/v1/chat/completions",
        {"messages": QUESTION, "max_tokens": 24, "seed": 5, "stop": "。", "stream": True},
    ),
]
# The third request stops at its first token (the tiny model's first word is "の"), made by its prefill:
# it never joins the batch.
ROWS = sum(body.get("n", 1) for _, body in CASES) - 1


@pytest.fixture(scope="module")
def app(tiny_model_dir):
    return load_app(tiny_model_dir, limits=LIMITS)


@pytest.fixture(scope="module")
def url(app):
    with running(app) as base:
        yield base


def answer(base: str, route: str, body: dict) -> list[tuple[str, str]]:
    """(text, finish_reason) per choice, from a whole response or from its server-sent events."""
    with httpx.Client(base_url=base, timeout=300) as client:
        if not body.get("stream"):
            reply = client.post(route, json=body)
            assert reply.status_code == 200, reply.text
            return [
                (c["text"] if "text" in c else c["message"]["content"], c["finish_reason"])
                for c in reply.json()["choices"]
            ]
        texts: dict[int, str] = {}
        finish: dict[int, str] = {}
        with client.stream("POST", route, json=body) as reply:
            assert reply.status_code == 200
            for line in reply.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                for c in json.loads(line[6:])["choices"]:
                    piece = c["text"] if "text" in c else c["delta"].get("content", "")
                    texts[c["index"]] = texts.get(c["index"], "") + piece
                    if c["finish_reason"]:
                        finish[c["index"]] = c["finish_reason"]
        return [(texts[i], finish[i]) for i in sorted(texts)]


def held(engine, base: str, work: dict[str, threading.Thread], expected: int) -> threading.Event:
    """Hold the model thread, start `work`, and return once `expected` requests wait at the engine."""
    gate = threading.Event()
    engine.submit(gate.wait)
    for thread in work.values():
        thread.start()
    with httpx.Client(base_url=base, timeout=60) as client:
        for _ in range(6000):  # a request that fails before reaching the engine ends the wait here
            if client.get("/health").json()["pending"] >= expected:
                break
            time.sleep(0.01)
    assert engine.pending == expected
    return gate


def on_model_thread(engine, fn):
    """`fn()` run between two decoding steps (a consistent view of the batch)."""
    return engine.submit(fn).result(timeout=120)


def test_concurrent_requests_each_get_exactly_their_solo_output(app, url):
    engine = app.state.engine
    alone = [answer(url, route, body) for route, body in CASES]
    assert engine.decoder.peak_rows <= 2  # one request at a time so far
    got: dict[int, list] = {}
    work = {
        str(i): threading.Thread(target=lambda i=i: got.__setitem__(i, answer(url, *CASES[i])))
        for i in range(len(CASES))
    }
    gate = held(engine, url, work, len(CASES))
    gate.set()
    for thread in work.values():
        thread.join()
    assert [got[i] for i in range(len(CASES))] == alone
    assert engine.decoder.peak_rows == ROWS  # all of them were decoded in the same steps
    assert alone[2][0][1] == "stop" and "の" not in alone[2][0][0]  # stopped at its stop string
    assert alone[7][0][1] == "stop" and alone[7][0][0] and "。" not in alone[7][0][0]  # left the batch early
    assert alone[1][0][1] == "length" and alone[1][0][0]  # its 5 tokens, then it left the batch
    assert all(text for choices in alone[3:] for text, _ in choices)
    assert httpx.get(url + "health").json()["pending"] == 0


def test_a_request_that_ends_early_leaves_the_batch_while_the_others_go_on(app, url):
    engine = app.state.engine
    long = (
        "/v1/completions",
        {"prompt": "吾輩は猫である。", "max_tokens": 150, "temperature": 0, "stream": True},
    )
    short = ("/v1/completions", {"prompt": "日本の", "max_tokens": 3, "temperature": 0})
    alone = answer(url, *long)
    assert alone[0][1] == "length"  # the long one really runs 150 steps
    got: dict[str, list] = {}
    work = {
        name: threading.Thread(target=lambda name=name, case=case: got.__setitem__(name, answer(url, *case)))
        for name, case in (("long", long), ("short", short))
    }
    gate = held(engine, url, work, 2)
    gate.set()
    work["short"].join()
    # The short request has its answer; the long one is still being decoded, alone in the batch now.
    batch = on_model_thread(
        engine, lambda: [(job.rows, job.made, job.limit) for job in engine.decoder.active]
    )
    assert len(batch) == 1 and batch[0][2] == 150 and batch[0][1] < 150
    work["long"].join()
    assert got["long"] == alone and got["short"][0][1] == "length"


def test_a_client_that_hangs_up_mid_stream_frees_its_rows(app, url):
    engine = app.state.engine
    stays = ("/v1/completions", {"prompt": "第3章", "max_tokens": 120, "temperature": 0})
    alone = answer(url, *stays)
    got: dict[str, list] = {}
    work = {"stays": threading.Thread(target=lambda: got.__setitem__("stays", answer(url, *stays)))}
    leaving = {"prompt": "吾輩は猫である。", "max_tokens": 150, "temperature": 0, "stream": True}
    with httpx.Client(base_url=url, timeout=60) as client:
        with client.stream("POST", "/v1/completions", json=leaving) as reply:
            gate = held(engine, url, work, 2)
            gate.set()
            lines = reply.iter_lines()  # kept: dropping the iterator would close the connection here
            first = next(line for line in lines if line.startswith("data: "))
            assert json.loads(first[6:])["choices"][0]["finish_reason"] is None
            jobs = on_model_thread(engine, lambda: list(engine.decoder.active))
            job = next(j for j in jobs if j.limit == 150)
        # Hung up: the server notices when it next writes to the connection, and the job leaves the batch.
        for _ in range(6000):
            if on_model_thread(engine, lambda: job.results is not None):
                break
            time.sleep(0.01)
    assert job.results[0].finish_reason == "cancelled" and job.results[0].tokens < 150
    assert job.keys == [] and job.ids is None
    work["stays"].join()
    assert got["stays"] == alone
    with httpx.Client(base_url=url, timeout=60) as client:
        for _ in range(6000):
            if client.get("/health").json()["pending"] == 0:
                break
            time.sleep(0.01)
        health = client.get("/health").json()
    assert health["pending"] == 0 and health["batch"] == 0 and health["max_batch"] == 16


def test_max_batch_1_runs_one_request_at_a_time_as_before(tiny_model_dir):
    app = load_app(tiny_model_dir, limits=Limits(max_tokens=64, max_batch=1))
    engine = app.state.engine
    assert not engine.batching and engine.decoder is None
    with running(app) as base:
        results = {}
        work = {
            str(i): threading.Thread(target=lambda i=i: results.__setitem__(i, answer(base, *CASES[i])))
            for i in (0, 1, 3)
        }
        gate = held(engine, base, work, 3)
        gate.set()
        for thread in work.values():
            thread.join()
        assert [results[i] for i in (0, 1, 3)] == [answer(base, *CASES[i]) for i in (0, 1, 3)]
        assert httpx.get(base + "health").json()["max_batch"] == 1
