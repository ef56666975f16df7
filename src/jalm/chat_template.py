"""The chat template: one Jinja template renders training text, exported `chat_template` and serving prompts.

LINE's instruction-sft format, as its model cards prompt it, extended to system messages and many turns:

    [{system}\\n]ユーザー: {user}\\nシステム: {assistant}</s>ユーザー: {user}\\nシステム: {assistant}</s>...

- a system message (only as the first message) is its own line before the first turn;
- each user message is `ユーザー: {content}` and a newline; each assistant message `システム: {content}`
  closed by `</s>` (the model's end of reply), with nothing between `</s>` and the next turn;
- the generation prompt is `システム: ` (a space after the colon, as LINE's cards show), no `<s>` anywhere.

The template is rendered with the same Jinja settings transformers uses, so
`tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)` on an exported
model returns byte for byte the string jalm trains on (tested under transformers 4.x and 5.x).

Token ids are built per segment (`encode_conversation`): every prompt up to and including `システム: `
is encoded on its own, then the reply, then `</s>` as its id. That is exactly what a model sees when it
generates: its prompt is encoded alone and the reply's tokens follow it. (Encoding the whole string at once
can join the prompt's final space with the reply's first characters into one piece, a sequence the model
never meets at inference.) Loss is on the reply segments and their `</s>` only, unless asked otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

from jalm.errors import JalmError

ROLES = ("system", "user", "assistant")

# Written with string literals only, so Jinja's whitespace control cannot eat the space after a colon.
LINE_CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' -%}"
    "{%- if not loop.first -%}{{ raise_exception('a system message must come first') }}{%- endif -%}"
    "{{ message['content'] + '\\n' }}"
    "{%- elif message['role'] == 'user' -%}"
    "{{ 'ユーザー: ' + message['content'] + '\\n' }}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{{ 'システム: ' + message['content'] + eos_token }}"
    "{%- else -%}"
    "{{ raise_exception('unknown role ' + message['role']) }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ 'システム: ' }}{%- endif -%}"
)


def load_template(path: str | Path | None) -> str:
    """LINE's template, or the Jinja template in `path` (a file such as transformers' chat_template.jinja)."""
    if path is None:
        return LINE_CHAT_TEMPLATE
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise JalmError(f"{path}: no such chat template file") from None
    except UnicodeDecodeError:
        raise JalmError(f"{path}: chat template is not UTF-8 text") from None
    try:
        _compile(text)
    except Exception as error:  # jinja2.TemplateSyntaxError and friends
        raise JalmError(f"{path}: not a valid Jinja chat template ({error})") from None
    return text


@lru_cache(maxsize=8)
def _compile(template: str):
    """Compile as transformers does: sandboxed, trim_blocks + lstrip_blocks, loop controls, raise_exception."""
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str):
        raise JalmError(f"chat template: {message}")

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.globals["raise_exception"] = raise_exception
    return env.from_string(template)


def render(
    messages: Sequence[dict],
    template: str = LINE_CHAT_TEMPLATE,
    eos_token: str = "</s>",
    bos_token: str = "<s>",
    add_generation_prompt: bool = False,
) -> str:
    """The conversation as text, exactly as `apply_chat_template(..., tokenize=False)` renders it."""
    return _compile(template).render(
        messages=list(messages),
        eos_token=eos_token,
        bos_token=bos_token,
        add_generation_prompt=add_generation_prompt,
    )


def segments(
    messages: Sequence[dict], template: str = LINE_CHAT_TEMPLATE, eos_token: str = "</s>"
) -> list[tuple[str, bool]]:
    """Split the rendered conversation into (text, is_reply) pieces whose concatenation is `render(messages)`.

    A reply is what the template adds for an assistant message after its generation prompt (for LINE's
    template: the content and `</s>`). Works for any template whose renderings of a conversation's
    prefixes are prefixes of one another, which a template fit for multi-turn chat must satisfy.
    """
    full = render(messages, template, eos_token)
    pieces: list[tuple[str, bool]] = []
    done = 0
    for index, message in enumerate(messages):
        if message.get("role") != "assistant":
            continue
        prompt = render(messages[:index], template, eos_token, add_generation_prompt=True)
        through = render(messages[: index + 1], template, eos_token)
        if not (through.startswith(prompt) and full.startswith(through) and len(prompt) >= done):
            raise JalmError(
                "chat template: the rendering of a conversation's first turns is not a prefix of the "
                "whole conversation, so replies cannot be located (jalm needs a prefix-stable template)"
            )
        if len(prompt) > done:
            pieces.append((full[done : len(prompt)], False))
        pieces.append((full[len(prompt) : len(through)], True))
        done = len(through)
    if done < len(full):
        pieces.append((full[done:], False))
    return pieces


def encode_conversation(
    messages: Sequence[dict],
    encode: Callable[[str], list[int]],
    special_ids: dict[str, int],
    template: str = LINE_CHAT_TEMPLATE,
    eos_token: str = "</s>",
    add_generation_prompt: bool = False,
) -> tuple[list[int], list[bool]]:
    """Token ids of a conversation and, per token, whether it is a reply token (the loss mask).

    `encode` turns plain text into ids without adding any special token; `special_ids` maps the special
    token strings the template writes (`</s>`, ...) to their ids. With `add_generation_prompt` the ids end
    with the generation prompt, ready for the model to continue (all False in the mask).
    """
    pieces = segments(messages, template, eos_token)
    if add_generation_prompt:
        full = render(messages, template, eos_token)
        tail = render(messages, template, eos_token, add_generation_prompt=True)
        if not tail.startswith(full):
            raise JalmError("chat template: the generation prompt does not extend the conversation")
        if len(tail) > len(full):
            # The generation prompt joins the prompt before it into one segment, as training encodes
            # `ユーザー: …\nシステム: ` as one piece of text.
            if pieces and not pieces[-1][1]:
                pieces[-1] = (pieces[-1][0] + tail[len(full) :], False)
            else:
                pieces.append((tail[len(full) :], False))
    ids: list[int] = []
    mask: list[bool] = []
    for text, is_reply in pieces:
        piece_ids = encode_with_specials(text, encode, special_ids)
        ids.extend(piece_ids)
        mask.extend([is_reply] * len(piece_ids))
    return ids, mask


def encode_with_specials(
    text: str, encode: Callable[[str], list[int]], special_ids: dict[str, int]
) -> list[int]:
    """Encode text in which special token strings written by the template stand for their ids."""
    ids: list[int] = []
    start = 0
    while start < len(text):
        hits = [(text.find(token, start), token) for token in special_ids]
        hits = [(at, token) for at, token in hits if at >= 0]
        if not hits:
            ids.extend(encode(text[start:]))
            break
        at, token = min(hits, key=lambda hit: (hit[0], -len(hit[1])))
        if at > start:
            ids.extend(encode(text[start:at]))
        ids.append(special_ids[token])
        start = at + len(token)
    return ids
