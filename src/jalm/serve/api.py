"""The OpenAI-compatible request shapes, their limits, and errors in OpenAI's JSON shape.

Types are strict (a string is not a number, 1 is not true); fields OpenAI clients commonly send and we
do not use are ignored, those that would change the result and we cannot honour are refused.
Extensions beyond OpenAI's fields, named as in transformers: top_k, repetition_penalty, do_sample,
max_length (total tokens including the prompt, as in LINE's pipeline call). In chat responses,
`jalm_notice` (top level; the first chunk of a stream) says when the model has no chat template.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

SEED_MAX = 2**32 - 1  # numpy's seed range, which transformers.set_seed also seeds


@dataclass
class Limits:
    max_body_bytes: int = 256 * 1024
    max_prompt_chars: int = 16_000
    max_tokens: int = 1024  # upper bound for max_tokens (and the model's context bounds it too)
    default_max_tokens: int = 128  # when a request does not say
    max_n: int = 8  # sequences per prompt, and prompts per request
    max_stop: int = 4
    max_pending: int = 32
    max_batch: int = 16  # sequences decoded together (1 = one request at a time, as before batching)


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        code: str | None = None,
        type: str = "invalid_request_error",
    ):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.type = status, message, param, code, type

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def busy_error(message: str) -> ApiError:
    """429 in OpenAI's rate-limit shape: the generation queue is full."""
    return ApiError(429, message, code="server_busy", type="rate_limit_error")


class _Sampling(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    model: str | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_length: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0)
    repetition_penalty: float | None = Field(None, gt=0, le=10)
    do_sample: bool | None = None
    n: int = Field(1, ge=1)
    seed: int | None = Field(None, ge=0, le=SEED_MAX)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logprobs: Any = None
    user: str | None = None


class CompletionRequest(_Sampling):
    prompt: str | list[str]
    echo: bool = False


class ChatMessage(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    role: Literal["system", "user", "assistant"]
    content: str


class ChatRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)


_TYPE_TAGS = {"str", "int", "float", "bool", "none", "dict"}


def parse(model: type[BaseModel], data: Any) -> Any:
    """Validate a decoded JSON body; the first problem becomes a 400 naming the field."""
    if not isinstance(data, dict):
        raise ApiError(400, "the request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        # Drop the union-member tags pydantic puts in the location ("prompt.str", "stop.list[str]").
        loc = [str(part) for part in first["loc"] if str(part) not in _TYPE_TAGS and "[" not in str(part)]
        param = ".".join(loc) or None
        problem = first["msg"]
        if first["type"] == "missing":
            problem = "is required"
        elif first["type"].endswith("_type") or first["type"] in ("union_tag_invalid", "literal_error"):
            problem = f"has the wrong type or value ({first['msg']}; got {type(first.get('input')).__name__})"
        raise ApiError(400, f"{param or 'body'}: {problem}", param=param) from None


def stop_list(stop: str | list[str] | None, limits: Limits) -> list[str]:
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    if len(stops) > limits.max_stop:
        raise ApiError(400, f"stop: at most {limits.max_stop} stop strings", param="stop")
    if any(not s or len(s) > 64 for s in stops):
        raise ApiError(400, "stop: each stop string must have 1 to 64 characters", param="stop")
    return stops


def refuse_unsupported(req: _Sampling) -> None:
    if req.logprobs not in (None, False, 0):
        raise ApiError(400, "logprobs: not supported by this server", param="logprobs")
    for name in ("presence_penalty", "frequency_penalty"):
        if getattr(req, name) not in (None, 0, 0.0):
            raise ApiError(400, f"{name}: not supported; use repetition_penalty (1.0 = off)", param=name)
    if req.stream_options is not None and not req.stream:
        raise ApiError(400, "stream_options: only allowed with stream: true", param="stream_options")


def choice(
    index: int,
    finish_reason: str | None = None,
    *,
    text: str | None = None,
    message: dict[str, str] | None = None,
    delta: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One entry of a response's `choices`: `text` (completions), `message` (chat) or `delta` (chat chunks)."""
    out: dict[str, Any] = {"index": index}
    for key, value in (("text", text), ("message", message), ("delta", delta)):
        if value is not None:
            out[key] = value
    out["logprobs"] = None
    out["finish_reason"] = finish_reason
    return out
