"""The homepage in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright): type a prompt,
press Generate, watch Japanese text stream into the page, chat (with the notice a base model gets), and keep
a screenshot."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from jalm.serve.api import Limits
from jalm.serve.command import load_app, running

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
JAPANESE = re.compile(r"[\u3040-\u30ff\u3400-\u9fff]")


@pytest.fixture(scope="module")
def url(tiny_model_dir):
    with running(load_app(tiny_model_dir, limits=Limits(max_tokens=64))) as base:
        yield base


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's browser with `apt-get install -y chromium` "
            "(`make test` does this); the browser test never downloads one"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield chromium
        chromium.close()


def test_playground_streams_japanese_text(browser, url, tmp_path):
    page = browser.new_page(viewport={"width": 1100, "height": 1400})
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.goto(url)
    assert "Playground" in page.inner_text("#playground h2")
    page.wait_for_function("document.getElementById('sample-outputs').textContent.startsWith('1. ')")
    assert page.text_content("#sample-outputs").count("おはようございます、今日の天気は") == 5

    page.fill("#prompt", "吾輩は猫である。名前は")
    page.fill("#max_tokens", "40")
    page.fill("#seed", "11")
    # Count every change the stream makes to the output box: streaming means many small updates.
    page.evaluate("""() => {
        window.jalmUpdates = 0;
        new MutationObserver((records) => { window.jalmUpdates += records.length; })
            .observe(document.getElementById('outputs'), {subtree: true, childList: true, characterData: true});
    }""")
    page.click("#generate")
    page.wait_for_selector('#status[data-state="done"]', timeout=60_000)
    text = page.text_content("#outputs .generated")
    assert JAPANESE.search(text), text
    assert page.evaluate("window.jalmUpdates") > 5
    assert page.text_content("#outputs .prompt") == "吾輩は猫である。名前は"
    page.screenshot(path=str(tmp_path / "playground.png"), full_page=True)

    # What the page showed is exactly what the API returns for the form's settings.
    body = {
        "prompt": "吾輩は猫である。名前は",
        "max_tokens": 40,
        "seed": 11,
        "temperature": 0.7,
        "top_p": 1,
        "top_k": 50,
        "repetition_penalty": 1,
        "n": 1,
    }
    assert httpx.post(url + "v1/completions", json=body, timeout=60).json()["choices"][0]["text"] == text

    # The tiny model has no chat template: chat mode says so, visibly, before and after a reply.
    assert not page.is_visible("#chat-notice")
    page.select_option("#mode", "chat")
    assert page.is_visible("#chat-notice") and "no chat template" in page.inner_text("#chat-notice")
    page.fill("#n", "2")
    page.click("#generate")
    page.wait_for_selector('#status[data-state="done"]', timeout=60_000)
    assert len(page.query_selector_all("#outputs .generated")) == 2
    assert page.is_visible("#chat-notice") and "replies may not stop" in page.inner_text("#chat-notice")
    page.screenshot(path=str(tmp_path / "chat.png"), full_page=True)
    assert (tmp_path / "playground.png").stat().st_size > 10_000
    assert not problems, problems
