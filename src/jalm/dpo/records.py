"""Reading preference data: JSONL pairs in the shapes people have, every bad record counted.

Files are JSONL, plain, .gz or .zst (a directory stands for its *.jsonl[.gz|.zst], as for sft). A pair
is a conversation (the prompt: one or more messages ending with a user turn) and two final assistant
replies. Shapes, detected per record:

- ``{"prompt", "chosen", "rejected"}`` with strings (TRL's standard preference format): the prompt is
  one user message, each reply one assistant message;
- the same keys with message lists (TRL's conversational format): ``prompt`` is the shared
  conversation, ``chosen``/``rejected`` the final assistant message (a one-element list or an object);
- ``{"chosen": [...], "rejected": [...]}`` (optionally with ``prompt`` as a string; UltraFeedback
  binarized, Anthropic HH as message lists): two whole conversations that share every message but the
  last, which is the assistant's;
- Anthropic HH text: ``{"chosen": "\\n\\nHuman: …\\n\\nAssistant: …", "rejected": "…"}``, split at
  those markers into messages, then as above.

Contents are kept as given. A bad record never stops the run: it is counted under one of `REASONS`,
the first `MAX_EXAMPLES` kept as ``path:line: reason (detail)``. The prompt and replies are checked with
sft's rules (roles, system first, no blank turns).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import zstandard

from jalm.errors import JalmError
from jalm.jsonl import expand_inputs, iter_lines
from jalm.sft.records import REASONS as SFT_REASONS
from jalm.sft.records import ReadReport, _chat, _Invalid

REASONS = (
    *SFT_REASONS,
    "prompts differ",  # chosen and rejected conversations do not share their prompt
    "last turn not a reply",  # a conversation (or the prompt) does not end as a pair needs
    "identical replies",
)
_HH_TURN = re.compile(r"\n\n(Human|Assistant): ")


@dataclass
class Pair:
    """One preference pair: the shared conversation, the preferred and the dispreferred final reply."""

    prompt: list[dict[str, str]]
    chosen: str
    rejected: str
    source: str  # "path:line"

    @property
    def messages(self) -> list[dict[str, str]]:
        """Every message, for decontamination (which checks each content)."""
        return [
            *self.prompt,
            {"role": "assistant", "content": self.chosen},
            {"role": "assistant", "content": self.rejected},
        ]


def read_pairs(paths: Iterable[str | Path]) -> tuple[list[Pair], ReadReport]:
    """Every valid pair of the files (and directories) in `paths`, in order, with a report."""
    paths = list(paths)
    if not paths:
        raise JalmError("no preference data given: pass JSONL files or directories")
    pairs: list[Pair] = []
    report = ReadReport()
    for path in expand_inputs(paths):
        try:
            for number, line in iter_lines(path):
                report.records += 1
                source = f"{path}:{number}"
                if number == 1:
                    line = line.removeprefix(b"\xef\xbb\xbf")
                try:
                    fmt, prompt, chosen, rejected = parse_pair(line)
                except _Invalid as invalid:
                    report.add_invalid(source, invalid.reason, invalid.detail)
                    continue
                report.valid += 1
                report.by_format[fmt] = report.by_format.get(fmt, 0) + 1
                pairs.append(Pair(prompt, chosen, rejected, source))
        except (OSError, EOFError, zstandard.ZstdError) as error:
            raise JalmError(f"{path}: cannot be read ({error})") from None
    return pairs, report


def parse_pair(line: bytes) -> tuple[str, list[dict[str, str]], str, str]:
    """(format, prompt messages, chosen reply, rejected reply) of one JSONL line, or _Invalid."""
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        raise _Invalid("bad JSON", str(error).split(":")[0]) from None
    if not isinstance(record, dict):
        raise _Invalid("not an object", f"a JSON {type(record).__name__}")
    if "chosen" not in record or "rejected" not in record:
        keys = ", ".join(sorted(record)[:6]) or "no keys"
        raise _Invalid("unknown shape", f"keys {keys}; expected chosen and rejected (and prompt)")
    chosen, rejected, prompt = record["chosen"], record["rejected"], record.get("prompt")
    if isinstance(chosen, str) and isinstance(rejected, str) and prompt is None:
        fmt, chosen, rejected = "hh_text", _hh(chosen), _hh(rejected)
    elif isinstance(prompt, list):
        fmt = "prompt_messages"
        chosen, rejected = _reply(chosen, "chosen"), _reply(rejected, "rejected")
        return fmt, *_checked(prompt, chosen, rejected)
    elif isinstance(prompt, str) and not isinstance(chosen, list) and not isinstance(rejected, list):
        prompt = [{"role": "user", "content": prompt}]
        return "prompt_strings", *_checked(prompt, chosen, rejected)
    else:
        fmt = "conversations"
    if not isinstance(chosen, list) or not isinstance(rejected, list):
        raise _Invalid("bad messages", "chosen and rejected must be strings with a prompt, or message lists")
    if not chosen or not rejected:
        raise _Invalid("bad messages", "an empty conversation")
    if chosen[:-1] != rejected[:-1]:
        raise _Invalid("prompts differ", "chosen and rejected do not share every message but the last")
    last = [
        m.get("content") if isinstance(m, dict) and m.get("role") == "assistant" else None
        for m in (chosen[-1], rejected[-1])
    ]
    if last[0] is None or last[1] is None:
        raise _Invalid("last turn not a reply", "a conversation does not end with an assistant message")
    return fmt, *_checked(chosen[:-1], last[0], last[1])


def _hh(text: str) -> list[dict[str, str]]:
    """Anthropic HH's `\\n\\nHuman: … \\n\\nAssistant: …` text as messages."""
    parts = _HH_TURN.split(text)
    if parts[0].strip() or len(parts) < 3:
        raise _Invalid("unknown shape", "text without \\n\\nHuman: / \\n\\nAssistant: turns")
    roles = {"Human": "user", "Assistant": "assistant"}
    return [{"role": roles[parts[i]], "content": parts[i + 1]} for i in range(1, len(parts), 2)]


def _reply(value: Any, name: str) -> Any:
    """The final reply of TRL's conversational format: a message, a one-message list or a string."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, dict):
        if value.get("role") != "assistant":
            raise _Invalid("last turn not a reply", f"{name} is not an assistant message")
        return value.get("content")
    return value


def _checked(prompt: Any, chosen: Any, rejected: Any) -> tuple[list[dict[str, str]], str, str]:
    if not isinstance(prompt, list) or not prompt:
        raise _Invalid("bad messages", "the prompt is not a non-empty message list")
    for name, reply in (("chosen", chosen), ("rejected", rejected)):
        if not isinstance(reply, str):
            raise _Invalid("non-string content", f"{name} is {type(reply).__name__}")
    # sft's checks on the conversation as it will be trained; the prompt must end with a user turn.
    messages = _chat([*prompt, {"role": "assistant", "content": chosen}])
    if not rejected.strip():
        raise _Invalid("empty assistant turn", "blank rejected reply")
    if messages[-2]["role"] != "user":
        raise _Invalid("last turn not a reply", "the prompt does not end with a user message")
    if chosen == rejected:
        raise _Invalid("identical replies", "chosen equals rejected")
    return messages[:-1], chosen, rejected
