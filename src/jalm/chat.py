"""Chat prompts for any model: its own chat template when it has one, else LINE's sft format, with a notice.

An instruction-tuned jalm export carries its template as `chat_template` in tokenizer_config.json (loaded
as `tokenizer.chat_template` under transformers 4.x and 5.x); the prompt ids are built per segment exactly
as training built them (`jalm.chat_template.encode_conversation`), and the reply ends at `</s>`.

A base model has no template: the prompt is still LINE's `ユーザー: …\\nシステム: `, but such a model was
never taught to end its reply, so a notice says so and the next `\\nユーザー:` is a stop string too.
`jalm generate --chat`, `/v1/chat/completions` and the web page's chat all go through `chat_prompt_ids`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

NO_TEMPLATE_NOTICE = (
    "this model has no chat template (it was not instruction-tuned): the prompt uses LINE's sft format "
    "`ユーザー: …\\nシステム: `, and replies may not stop"
)
# Without a template the model was never taught to end its reply with </s>: its starting the next user
# turn is the only sign that the reply is over.
FALLBACK_STOPS = ["\nユーザー:"]


def model_chat_template(tokenizer) -> str | None:
    """The model's own Jinja chat template, or None (a base model).

    transformers keeps several named templates as a dict; the one named "default" is the chat one.
    """
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, Mapping):
        template = template.get("default")
    return template if isinstance(template, str) and template.strip() else None


def chat_notice(tokenizer) -> str | None:
    """What a user should know before chatting with this model (None when it has a chat template)."""
    return None if model_chat_template(tokenizer) is not None else NO_TEMPLATE_NOTICE


def chat_stops(tokenizer) -> list[str]:
    """Stop strings a chat needs besides the end-of-text ids: only the fallback, for a model without a template."""
    return [] if model_chat_template(tokenizer) is not None else list(FALLBACK_STOPS)


def _as_dict(message: Any) -> dict:
    if isinstance(message, Mapping):
        return {"role": message["role"], "content": message["content"]}
    return {"role": message.role, "content": message.content}  # a pydantic ChatMessage or alike


def chat_prompt_ids(tokenizer, messages: Sequence[Any]) -> tuple[list[int], str | None]:
    """Prompt ids for `messages` ({"role", "content"} dicts), ending with the generation prompt, and a notice.

    With the model's chat template the ids are `encode_conversation` of the messages (no `<s>`, each prompt
    segment encoded on its own, `</s>` as its id), as `jalm sft` trained on them; the notice is None.
    Without one, the same with LINE's template, and the notice `NO_TEMPLATE_NOTICE`.
    Raises JalmError when the template refuses the conversation (e.g. a system message that is not first).
    """
    from jalm.chat_template import LINE_CHAT_TEMPLATE, encode_conversation

    template = model_chat_template(tokenizer)
    notice = None if template is not None else NO_TEMPLATE_NOTICE
    eos_token, eos_id = tokenizer.eos_token, tokenizer.eos_token_id
    special_ids = {eos_token: eos_id} if eos_token and eos_id is not None else {}
    ids, _ = encode_conversation(
        [_as_dict(m) for m in messages],
        encode=lambda text: list(tokenizer(text, add_special_tokens=False)["input_ids"]),
        special_ids=special_ids,
        template=template if template is not None else LINE_CHAT_TEMPLATE,
        eos_token=eos_token or "",
        add_generation_prompt=True,
    )
    return ids, notice
