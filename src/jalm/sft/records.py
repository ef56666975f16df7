"""Reading instruction data: JSONL conversations in the shapes people have, every bad record counted.

Files are JSONL, plain, .gz or .zst; a directory stands for every *.jsonl, *.jsonl.gz and *.jsonl.zst
under it, sorted. The shape is detected per record, so one file may mix them:

- chat (OpenAI / Hugging Face): ``{"messages": [{"role": "system"|"user"|"assistant", "content": "..."}]}``.
  A system message may only come first; a user message must come before the first assistant
  message; every content is a string, user and assistant contents are not blank, and there is at
  least one assistant message. Messages after the last assistant message are kept as they are (the
  trainer masks them); keys other than role and content are dropped.
- Alpaca / databricks-dolly-15k-ja: ``{"instruction", "input" (optional), "output"}``. The user
  message is ``instruction`` when ``input`` is missing, null or blank, else
  ``instruction + "\\n\\n" + input`` (Alpaca's own prompt puts the input in its own block after the
  instruction; a blank line is the plain-text version of that); the assistant message is ``output``.
- ``{"prompt", "response"}``: one user and one assistant message.

Contents are kept exactly as given (no strip, no normalisation): the checks only decide validity.
Other fields of a record (``task``, ``source``, ``id``...) are ignored. A bad record never stops the
run: it is counted under one of `REASONS` and the first `MAX_EXAMPLES` are kept as
``path:line: reason (detail)`` so a user can find them. Only a missing or unreadable file, or no
input file at all, is a `JalmError`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
import zstandard

from jalm.errors import JalmError
from jalm.jsonl import expand_inputs, iter_lines

ROLES = ("system", "user", "assistant")
MAX_EXAMPLES = 50
# A fixed set of reasons so counts can be compared across runs and datasets; details go in the examples.
REASONS = (
    "bad JSON",
    "not an object",
    "unknown shape",
    "bad messages",
    "unknown role",
    "non-string content",
    "system not first",
    "no user turn",
    "empty user turn",
    "empty assistant turn",
    "no assistant turn",
)
FORMATS = ("messages", "alpaca", "prompt_response")
_JSON_TYPES = {
    list: "array",
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


@dataclass
class Conversation:
    """One training example: messages in chat order and where it came from, for error messages and reports."""

    messages: list[dict[str, str]]
    source: str  # "path:line"


@dataclass
class ReadReport:
    """What reading found, so nothing is dropped silently: counts by reason and by input format."""

    records: int = 0  # non-blank lines read
    valid: int = 0
    invalid: dict[str, int] = field(default_factory=dict)  # reason (one of REASONS) -> count
    examples: list[str] = field(default_factory=list)  # "path:line: reason (detail)", the first 50
    by_format: dict[str, int] = field(default_factory=dict)  # format -> valid records

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def add_invalid(self, source: str, reason: str, detail: str) -> None:
        self.invalid[reason] = self.invalid.get(reason, 0) + 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(f"{source}: {reason} ({detail})")


class _Invalid(Exception):
    """A record that cannot be used: `reason` is one of REASONS, `detail` says what exactly."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


def read_conversations(paths: Iterable[str | Path]) -> tuple[list[Conversation], ReadReport]:
    """Read every conversation of the files (and directories) in `paths`, in order, with a report."""
    paths = list(paths)
    if not paths:
        raise JalmError("no instruction data given: pass JSONL files or directories")
    conversations: list[Conversation] = []
    report = ReadReport()
    for path in expand_inputs(paths):
        _read_file(path, conversations, report)
    return conversations, report


def _read_file(path: Path, conversations: list[Conversation], report: ReadReport) -> None:
    try:
        for number, line in iter_lines(path):
            report.records += 1
            source = f"{path}:{number}"
            if number == 1:
                line = line.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte order mark, as some editors write
            try:
                fmt, messages = _parse_record(line)
            except _Invalid as invalid:
                report.add_invalid(source, invalid.reason, invalid.detail)
                continue
            report.valid += 1
            report.by_format[fmt] = report.by_format.get(fmt, 0) + 1
            conversations.append(Conversation(messages, source))
    except (OSError, EOFError, zstandard.ZstdError) as error:  # a truncated or corrupt file
        raise JalmError(f"{path}: cannot be read ({error})") from None


def _parse_record(line: bytes) -> tuple[str, list[dict[str, str]]]:
    """(format, messages) of one JSONL line, or _Invalid with a reason from REASONS."""
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        raise _Invalid("bad JSON", str(error).split(":")[0]) from None
    if not isinstance(record, dict):
        raise _Invalid("not an object", f"a JSON {_JSON_TYPES.get(type(record), type(record).__name__)}")
    if "messages" in record:
        return "messages", _chat(record["messages"])
    if "instruction" in record and "output" in record:
        return "alpaca", _alpaca(record)
    if "prompt" in record and "response" in record:
        user = _string(record["prompt"], "prompt")
        return "prompt_response", _pair(user, _string(record["response"], "response"))
    keys = ", ".join(sorted(record)[:6]) or "no keys"
    raise _Invalid("unknown shape", f"keys {keys}; expected messages, instruction+output or prompt+response")


def _string(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise _Invalid("non-string content", f"{name} is {type(value).__name__}")
    return value


def _pair(user: str, assistant: str) -> list[dict[str, str]]:
    if not user.strip():
        raise _Invalid("empty user turn", "blank prompt")
    if not assistant.strip():
        raise _Invalid("empty assistant turn", "blank reply")
    return [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]


def _alpaca(record: dict[str, Any]) -> list[dict[str, str]]:
    instruction = _string(record["instruction"], "instruction")
    extra = record.get("input")
    extra = "" if extra is None else _string(extra, "input")
    output = _string(record["output"], "output")
    if not instruction.strip():
        raise _Invalid("empty user turn", "blank instruction")
    user = instruction if not extra.strip() else instruction + "\n\n" + extra
    return _pair(user, output)


def _chat(messages: Any) -> list[dict[str, str]]:
    if not isinstance(messages, list):
        raise _Invalid("bad messages", f"messages is {type(messages).__name__}, not a list")
    out: list[dict[str, str]] = []
    seen_user = seen_assistant = False
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _Invalid("bad messages", f"message {i} is {type(message).__name__}, not an object")
        role = message.get("role")
        if role not in ROLES:
            raise _Invalid("unknown role", f"message {i} has role {role!r}")
        content = _string(message.get("content"), f"message {i} content")
        if role == "system" and i > 0:
            raise _Invalid("system not first", f"system message at position {i}")
        if role == "user":
            if not content.strip():
                raise _Invalid("empty user turn", f"message {i} is blank")
            seen_user = True
        if role == "assistant":
            if not seen_user:
                raise _Invalid("no user turn", f"assistant message {i} comes before any user message")
            if not content.strip():
                raise _Invalid("empty assistant turn", f"message {i} is blank")
            seen_assistant = True
        out.append({"role": role, "content": content})
    if not seen_assistant:
        raise _Invalid("no assistant turn", f"{len(out)} messages, none from the assistant")
    return out
