"""Japanese MT-Bench judging: the rating parser, FastChat's prompts, and real judge servers on loopback
ports — a small HTTP server with canned judge replies (store, kill mid-run, resume, unparsable, retries)
and `jalm serve` of the tiny model (the scores mean nothing; the path is real)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from jalm.errors import JalmError
from jalm.eval.mtbench import (
    DEFAULT_QUESTIONS,
    DEFAULT_REFERENCES,
    call_judge,
    evaluate_mtbench,
    judge_messages,
    load_answers,
    load_questions,
    parse_rating,
)
from jalm.eval.table import format_table
from jalm.resources import bundled

REPO = Path(__file__).resolve().parents[1]


def test_rating_parser_takes_fastchats_forms_and_nothing_else():
    assert parse_rating("Rating: [[8]]") == 8
    assert parse_rating("... so [[8.5]]") == 8.5
    assert parse_rating("[[10]]") == 10
    assert parse_rating("[[8.]]") == 8.0
    assert parse_rating("評価: [7]") == 7  # FastChat's backup pattern
    assert parse_rating("[[3]] then [[9]]") == 3  # the first match
    assert parse_rating("[5] and later [[9]]") == 9  # the double-bracket pattern is tried first
    for text in ("Rating: 8", "[[ 8 ]]", "[[8/10]]", "[[-1]]", "[[８]]", "8点", "[[.5]]", ""):
        assert parse_rating(text) is None, text


def test_judge_prompts_are_fastchats():
    questions = {q["question_id"]: q for q in load_questions(bundled(DEFAULT_QUESTIONS))}
    refs = load_answers(bundled(DEFAULT_REFERENCES))
    assert len(questions) == 80 and len(refs) == 80
    coding = next(q for q in questions.values() if q["category"] == "coding")
    writing = next(q for q in questions.values() if q["category"] == "writing")
    name, messages = judge_messages(writing, ["A1", "A2"], 1, refs[writing["question_id"]]["turns"])
    assert name == "single-v1" and messages[0] == {
        "role": "system",
        "content": "You are a helpful assistant.",
    }
    assert messages[1]["content"].endswith(
        f"[Question]\n{writing['turns'][0]}\n\n[The Start of Assistant's Answer]\nA1\n[The End of Assistant's Answer]"
    )
    name, messages = judge_messages(coding, ["A1", "A2"], 2, refs[coding["question_id"]]["turns"])
    ref = refs[coding["question_id"]]["turns"]
    assert name == "single-math-v1-multi-turn"
    assert messages[0]["content"].startswith("Please act as an impartial judge") and messages[0][
        "content"
    ].endswith('for example: "Rating: [[5]]".\n\n')
    assert messages[1]["content"] == (
        f"<|The Start of Reference Answer|>\n\n### User:\n{coding['turns'][0]}\n\n### Reference answer:\n{ref[0]}\n\n"
        f"### User:\n{coding['turns'][1]}\n\n### Reference answer:\n{ref[1]}\n\n<|The End of Reference Answer|>\n\n\n"
        f"<|The Start of Assistant A's Conversation with User|>\n\n### User:\n{coding['turns'][0]}\n\n"
        f"### Assistant A:\nA1\n\n### User:\n{coding['turns'][1]}\n\n### Assistant A:\nA2\n\n"
        "<|The End of Assistant A's Conversation with User|>"
    )


class Judge:
    """A real OpenAI-style chat-completions server on 127.0.0.1: canned replies by call number, a delay,
    and failures on demand; it records every request body."""

    def __init__(self, replies, delay: float = 0.0, fail: int = 0, status: int = 500):
        self.replies, self.delay, self.fail, self.status = replies, delay, fail, status
        self.requests: list[dict] = []
        judge = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if judge.fail > 0:
                    judge.fail -= 1
                    self.send_response(judge.status)
                    self.end_headers()
                    self.wfile.write(b'{"error": "busy"}')
                    return
                judge.requests.append({**body, "auth": self.headers.get("Authorization")})
                time.sleep(judge.delay)
                text = judge.replies(len(judge.requests))
                data = json.dumps(
                    {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}
                )
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(data.encode())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def canned(n: int) -> str:
    return "I cannot decide." if n % 5 == 0 else f"説明です。Rating: [[{n % 9 + 1}]]"


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_judging_stores_resumes_after_a_kill_and_counts_unparsable(tmp_path):
    judge = Judge(canned, delay=0.4)
    judgments = tmp_path / "judgments.jsonl"
    answers = bundled(DEFAULT_REFERENCES)  # GPT-4's answers: a real file in FastChat's answer format
    command = [
        sys.executable, "-m", "jalm.cli", "eval", "mt-bench-ja", "--answers", str(answers),
        "--judge-url", judge.url, "--judge-model", "canned-judge", "--judgments", str(judgments),
        "--limit", "4", "--quiet", "--judge-key-env", "JALM_TEST_JUDGE_KEY",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "JALM_TEST_JUDGE_KEY": "sk-test"}
    try:
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while (not judgments.exists() or len(_lines(judgments)) < 3) and time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait()
        time.sleep(0.3)  # a request sent just before the kill reaches the server's log before we count it
        first = _lines(judgments)
        assert 3 <= len(first) < 8  # killed mid-run: some judged, not all
        served_before = len(judge.requests)

        out = tmp_path / "results.json"
        result = subprocess.run(
            command + ["--out", str(out)], env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
    finally:
        judge.close()
    rows = _lines(judgments)
    keys = [(r["question_id"], r["turn"]) for r in rows]
    assert len(rows) == 8 and len(set(keys)) == 8  # 4 questions × 2 turns, none judged twice
    assert rows[: len(first)] == first  # what was stored stayed as it was
    # the rerun asked only for what was missing (at most the one in flight at the kill was asked twice)
    assert len(judge.requests) - served_before == 8 - len(first)
    assert all(r["auth"] == "Bearer sk-test" and r["temperature"] == 0 for r in judge.requests)
    assert all(r["model"] == "canned-judge" and r["max_tokens"] == 2048 for r in judge.requests)
    summary = json.loads(out.read_text(encoding="utf-8"))["tasks"]["mt-bench-ja"]
    unparsable = [r for r in rows if r["score"] == -1]
    assert summary["unparsable"] == len(unparsable) >= 1 and summary["judged"] == 8
    rated = [r["score"] for r in rows if r["score"] != -1]
    assert summary["score"] == pytest.approx(sum(rated) / len(rated))
    assert "unparsable" in result.stdout and "| **all** |" in result.stdout
    assert {r["judge"][1] for r in rows} <= {
        "single-v1",
        "single-v1-multi-turn",
        "single-math-v1",
        "single-math-v1-multi-turn",
    }
    table = format_table([json.loads(out.read_text(encoding="utf-8"))])
    assert "MT-Bench-ja" in table and f"{summary['unparsable']} unparsable" in table


def test_retries_with_backoff_then_a_one_line_error(tmp_path):
    judge = Judge(lambda n: "[[6]]", fail=2)
    waits: list[float] = []
    try:
        text = call_judge(judge.url, "j", [{"role": "user", "content": "x"}], backoff=0.5, sleep=waits.append)
        assert text == "[[6]]" and waits == [0.5, 1.0]
        judge.fail = 10
        with pytest.raises(JalmError, match=r"judge unreachable after 3 tries \(HTTP 500"):
            call_judge(judge.url, "j", [{"role": "user", "content": "x"}], retries=2, sleep=waits.append)
        judge.fail, judge.status = 1, 401
        with pytest.raises(JalmError, match="judge refused the request \\(HTTP 401"):
            call_judge(judge.url, "j", [{"role": "user", "content": "x"}], sleep=waits.append)
    finally:
        judge.close()


def test_answer_file_errors_are_one_line(tmp_path):
    bad = tmp_path / "answers.jsonl"
    bad.write_text('{"question_id": 1, "turns": ["a"]}\n', encoding="utf-8")
    with pytest.raises(JalmError, match="answers.jsonl:1: not FastChat's answer format"):
        load_answers(bad)
    with pytest.raises(JalmError, match="give --model DIR"):
        evaluate_mtbench(judge_url="http://127.0.0.1:9/v1", judge_model="j", judgments=tmp_path / "j.jsonl")


@pytest.fixture(scope="module")
def long_context_model(tiny_model_dir, tmp_path_factory):
    """The tiny model with a 4096-token context (rotary positions), so whole judge prompts fit."""
    out = tmp_path_factory.mktemp("judge_model") / "tiny-judge"
    shutil.copytree(tiny_model_dir, out)
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    config["max_position_embeddings"] = 4096
    (out / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return out


def test_generated_answers_judged_by_jalm_serve(long_context_model, tmp_path):
    """Answers generated by the model with its template (both turns), judged by `jalm serve` of the same
    tiny model on a loopback port: the whole path with nothing canned."""
    from jalm.serve.api import Limits
    from jalm.serve.command import load_app, running

    app = load_app(long_context_model, limits=Limits(max_tokens=16))
    with running(app) as url:
        results = evaluate_mtbench(
            model_dir=long_context_model,
            judge_url=url.rstrip("/") + "/v1",
            judge_model="tiny-judge",
            judgments=tmp_path / "j.jsonl",
            limit=2,
            max_new_tokens=6,
            judge_max_tokens=16,
            key_env=None,
            progress=False,
            note="smoke test",
        )
    answers = load_answers(tmp_path / "answers-tiny-judge.jsonl")
    assert sorted(answers) == [1, 2] and all(len(a["turns"]) == 2 for a in answers.values())
    summary = results["tasks"]["mt-bench-ja"]
    assert summary["judged"] == 4 and summary["judged_now"] == 4
    rows = _lines(tmp_path / "j.jsonl")
    assert all(r["score"] == -1 or 1 <= r["score"] for r in rows)
    assert summary["unparsable"] == sum(r["score"] == -1 for r in rows)
