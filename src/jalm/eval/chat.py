"""The seed's tasks asked as instructions, for instruction-tuned models: `jsquad-chat` and `aio-chat`.

Both are zero-shot: each question is one user message, and the prompt ids are
`encode_conversation([user message], ..., add_generation_prompt=True)` (jalm.chat_template) with the
model's chat template (`chat_template` in tokenizer_config.json, as `jalm export` writes it for an SFT
run), so the model sees its prompt exactly as `jalm sft` trained it and `jalm serve` asks it: no `<s>`,
the generation prompt (`システム: ` in LINE's format) at the end. A model without a template is asked in
LINE's format (`LINE_CHAT_TEMPLATE`) and its results say so (`"chat_template": "LINE (model has none)"`).
Greedy, no sampling; a reply ends at the model's end-of-sequence ids (`</s>`; generation_config's too).

- **jsquad-chat**: JSQuAD dev in jp-stable's evaluation order (the Random(42) shuffle, so `--limit N`
  asks the same questions as `jsquad --limit N`); the user message is
  `文章:{passage}\\n質問:{question}\\n質問の答えを文章中から一言で抜き出して答えてください。`
  (the passage as jsquad's: the text after `[SEP]`, stripped). At most as many new tokens as the longest
  gold answer (jsquad's rule, so the two columns differ in the prompt only), cut at the first `"\\n"`;
  exact match and F1 exactly as jsquad (`jalm.eval.metrics.jsquad_scores`).
- **aio-chat**: AI王 aio_02_dev in file order; the user message is
  `{original_question}\\n答えだけを一言で答えてください。`; at most 64 new tokens, no stop string but
  `</s>`; the reply is stripped of surrounding whitespace and 「」 (the raw reply is kept as `output`),
  then scored with the AI王 normalisation exactly as aio (`jalm.eval.metrics.aio_exact`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

LINE_TEMPLATE_NOTE = "LINE (model has none)"


@dataclass(frozen=True)
class ChatFormat:
    """The template a model is asked in, and where it came from ("model" or LINE_TEMPLATE_NOTE)."""

    template: str
    source: str
    eos_token: str
    special_ids: dict[str, int]


def chat_format(lm: Any) -> ChatFormat:
    """The model's chat template, else LINE's; `</s>` written by a template stands for its id."""
    from jalm.chat import model_chat_template
    from jalm.chat_template import LINE_CHAT_TEMPLATE

    template = model_chat_template(lm.tokenizer)
    eos_token, eos_id = lm.tokenizer.eos_token, lm.tokenizer.eos_token_id
    special_ids = {eos_token: int(eos_id)} if eos_token and eos_id is not None else {}
    if template is None:
        return ChatFormat(LINE_CHAT_TEMPLATE, LINE_TEMPLATE_NOTE, eos_token or "", special_ids)
    return ChatFormat(template, "model", eos_token or "", special_ids)


def user_prompt(lm: Any, fmt: ChatFormat, content: str) -> tuple[str, list[int]]:
    """(the rendered prompt, its ids) for one user message, ending with the generation prompt."""
    from jalm.chat_template import encode_conversation, render

    messages = [{"role": "user", "content": content}]
    ids, _ = encode_conversation(
        messages, lm.encode, fmt.special_ids, fmt.template, fmt.eos_token, add_generation_prompt=True
    )
    return render(messages, fmt.template, fmt.eos_token, add_generation_prompt=True), ids


def strip_reply(text: str) -> str:
    """A short answer as a chat model writes it: surrounding whitespace and 「」 removed."""
    return text.strip().strip("「」").strip()


def evaluate_jsquad_chat(
    lm: Any,
    config: Any,
    limit: int | None = None,
    batch_size: int = 8,
    progress: bool = True,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Score `lm` on JSQuAD asked as an instruction; `config` is the task's JsquadChatConfig (jalm.eval.tasks,
    which calls this: the configs sit above the code that runs them). (metrics, per-question records)."""
    from pathlib import Path

    from jalm.eval.generation import fit_prompt, greedy_until
    from jalm.eval.jsquad import DEFAULT_EVAL, STOP, answer_budget, fewshot_plan, load_squad, score_questions
    from jalm.eval.metrics import percent
    from jalm.resources import bundled

    data_path = Path(config.data) if config.data else bundled(DEFAULT_EVAL)
    started = time.perf_counter()
    fmt = chat_format(lm)
    questions = [q for q, _ in fewshot_plan(load_squad(data_path), [], 0, limit)]
    texts, prompts = [], []
    for q in questions:
        text, ids = user_prompt(lm, fmt, config.message.format(passage=q.passage, question=q.question))
        texts.append(text)
        prompts.append(fit_prompt(lm, ids, answer_budget(lm, q, config.max_new_tokens)))
    outputs = greedy_until(lm, prompts, STOP, batch_size=batch_size, progress=progress, desc="jsquad-chat")
    records = score_questions("jsquad-chat", questions, texts, prompts, outputs)
    metrics = {
        "exact_match": percent(records, "exact_match"),
        "f1": percent(records, "f1"),
        "n": len(records),
        "shots": 0,
        "task": "jsquad-1.1-chat",
        "message": config.message,
        "chat_template": fmt.source,
        "data": str(data_path),
        "max_new_tokens": config.max_new_tokens or "longest gold answer",
        "truncated_prompts": sum(r["truncated"] for r in records),
        "seconds": round(time.perf_counter() - started, 2),
    }
    return metrics, records


def evaluate_aio_chat(
    lm: Any,
    config: Any,
    limit: int | None = None,
    batch_size: int = 8,
    progress: bool = True,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Score `lm` on AI王 asked as an instruction; `config` is the task's AioChatConfig. (metrics, records)."""
    from pathlib import Path

    from jalm.eval.aio import DEFAULT_DATA, load_aio, score_questions
    from jalm.eval.generation import fit_prompt, greedy_until
    from jalm.eval.metrics import percent
    from jalm.resources import bundled

    data_path = Path(config.data) if config.data else bundled(DEFAULT_DATA)
    started = time.perf_counter()
    fmt = chat_format(lm)
    questions = load_aio(data_path)
    if limit is not None:
        questions = questions[:limit]
    texts, prompts = [], []
    for q in questions:
        text, ids = user_prompt(lm, fmt, config.message.format(question=q.question))
        texts.append(text)
        prompts.append(fit_prompt(lm, ids, config.max_new_tokens))
    outputs = greedy_until(lm, prompts, None, batch_size=batch_size, progress=progress, desc="aio-chat")
    predictions = [strip_reply(text) for text in outputs]
    records = score_questions("aio-chat", questions, texts, prompts, predictions, outputs)
    metrics = {
        "exact_match": percent(records, "exact_match"),
        "n": len(records),
        "shots": 0,
        "message": config.message,
        "chat_template": fmt.source,
        "data": str(data_path),
        "max_new_tokens": config.max_new_tokens,
        "truncated_prompts": sum(r["truncated"] for r in records),
        "seconds": round(time.perf_counter() - started, 2),
    }
    return metrics, records
