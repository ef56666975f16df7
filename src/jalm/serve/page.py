"""The homepage: the model card (see card/) beside a playground that streams from /v1/completions and,
in chat mode, from /v1/chat/completions (with a visible notice when the model has no chat template)."""

from __future__ import annotations

import html
import json

from jalm.serve.card import PROMPT, Section, to_html


def render_page(
    sections: list[Section], name: str, context: int, limits: dict, chat_notice: str | None = None
) -> str:
    """The whole page. `chat_notice` (jalm.chat.chat_notice: None for a model with a chat template) is
    shown in the playground while it is in chat mode."""
    e = html.escape
    card = to_html(sections, sample_placeholder=True)
    nav = "".join(
        f'<a href="#{e(s.anchor)}">{e(s.title if i else "Card")}</a>' for i, s in enumerate(sections)
    )
    config = e(json.dumps({"model": name, "context": context, **limits}, ensure_ascii=False))
    max_tokens = min(limits["max_tokens"], context - 1)
    chat_label = (
        "chat (the model's chat template)"
        if chat_notice is None
        else "chat (LINE sft format: ユーザー: … / システム: )"
    )
    notice = f'<p id="chat-notice" class="notice" hidden>{e(chat_notice or "")}</p>'
    return f"""<!doctype html>
<html lang="ja">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(name)} · jalm</title>
<link rel="stylesheet" href="/static/style.css">
<link rel="icon" href="data:,">
</head>
<body>
<header><span class="brand">jalm</span> <span class="model">{e(name)}</span>
<nav><a href="#playground">Playground</a>{nav}<a href="/openapi.json">OpenAPI</a></nav></header>
<main>
<section id="playground" class="playground" data-config="{config}">
<h2>Playground</h2>
<form id="form" autocomplete="off">
<label for="prompt">Prompt</label>
<textarea id="prompt" name="prompt" rows="4" maxlength="{limits["max_prompt_chars"]}">{e(PROMPT)}</textarea>
<div class="controls">
<label>Mode <select id="mode"><option value="completion">continue text</option>
<option value="chat">{e(chat_label)}</option></select></label>
<label>Max new tokens <input id="max_tokens" type="number" min="1" max="{max_tokens}" value="{min(64, max_tokens)}"></label>
<label>Temperature <input id="temperature" type="number" min="0" max="2" step="0.05" value="0.7"></label>
<label>Top-p <input id="top_p" type="number" min="0.01" max="1" step="0.01" value="1"></label>
<label>Top-k <input id="top_k" type="number" min="0" step="1" value="50"></label>
<label>Repetition penalty <input id="repetition_penalty" type="number" min="0.5" max="3" step="0.05" value="1"></label>
<label>Sequences <input id="n" type="number" min="1" max="{limits["max_n"]}" value="1"></label>
<label>Seed <input id="seed" type="number" min="0" step="1" placeholder="random"></label>
</div>
<div class="buttons"><button id="generate" type="submit">Generate</button>
<button id="stop" type="button" disabled>Stop</button>
<span id="status" data-state="idle">temperature 0 = greedy · context {context} tokens</span></div>
</form>
{notice}
<div id="outputs"></div>
</section>
<div class="card">
{card}
</div>
</main>
<footer>Served by <code>jalm serve</code> on this machine. API: <code>POST /v1/completions</code>,
<code>POST /v1/chat/completions</code>, <code>GET /v1/models</code>, <code>GET /health</code>.</footer>
<script src="/static/playground.js"></script>
</body>
</html>
"""
