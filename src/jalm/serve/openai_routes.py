"""The OpenAI-compatible routes: GET /v1/models, POST /v1/completions and POST /v1/chat/completions.

Requests are validated (api.py), checked against the server's limits and the model's context, then queued
on the engine's model thread; answers are whole JSON responses or server-sent events ending with `[DONE]`.
Chat prompts are built by `jalm.chat.chat_prompt_ids` (the model's chat template, or LINE's sft format for a
model without one, in which case the response carries the extension field `jalm_notice`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

from jalm.errors import JalmError
from jalm.generate import Completion, Sampling, check_sampling
from jalm.serve.api import (
    SEED_MAX,
    ApiError,
    ChatRequest,
    CompletionRequest,
    Limits,
    busy_error,
    choice,
    parse,
    refuse_unsupported,
    stop_list,
)
from jalm.serve.engine import Busy, Delta, Done, Engine

log = logging.getLogger("jalm.serve")
NOTICE_FIELD = "jalm_notice"  # extension field: what a chat user should know (no chat template)


def sse(payload: Any) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


def usage(prompt_tokens: int, results: Sequence[Completion]) -> dict[str, int]:
    completion = sum(r.tokens for r in results)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": prompt_tokens + completion,
    }


def _add_usage(total: dict[str, int], more: dict[str, int]) -> dict[str, int]:
    return {key: total.get(key, 0) + value for key, value in more.items()}


def _include_usage(req) -> bool:
    return bool((req.stream_options or {}).get("include_usage"))


def event_stream(events: AsyncIterator[str]) -> StreamingResponse:
    """SSE response; a failure mid-stream becomes an error event, and every stream ends with [DONE]."""

    async def body() -> AsyncIterator[str]:
        try:
            async for event in events:
                yield event
        except Busy as error:
            yield sse(busy_error(str(error)).body())
        except Exception as error:  # headers are sent: report in the stream, keep the server up
            log.exception("error while streaming")
            yield sse(ApiError(500, f"internal error: {type(error).__name__}", type="server_error").body())
        yield "data: [DONE]\n\n"

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(body(), media_type="text/event-stream; charset=utf-8", headers=headers)


class OpenAIRoutes:
    """The /v1 routes for one engine; `register(app)` adds them to a FastAPI app."""

    def __init__(self, engine: Engine, name: str, limits: Limits):
        self.engine, self.name, self.limits = engine, name, limits
        self.created = int(time.time())

    def register(self, app: FastAPI) -> None:
        app.add_api_route("/v1/models", self.models, methods=["GET"])
        app.add_api_route("/v1/completions", self.completions, methods=["POST"])
        app.add_api_route("/v1/chat/completions", self.chat_completions, methods=["POST"])

    # ---- checks shared by both kinds of request -------------------------------------------------------

    def check_model(self, requested: str | None) -> None:
        if requested is not None and requested != self.name:
            raise ApiError(
                404,
                f"The model '{requested}' does not exist; this server serves '{self.name}'",
                param="model",
                code="model_not_found",
            )

    def check_chars(self, chars: int, param: str) -> None:
        if chars > self.limits.max_prompt_chars:
            raise ApiError(
                400,
                f"{param}: {chars:,} characters, more than this server accepts "
                f"({self.limits.max_prompt_chars:,})",
                param=param,
                code="prompt_too_long",
            )

    def check_busy(self) -> None:
        if self.engine.pending >= self.limits.max_pending:
            raise busy_error(f"{self.engine.pending} requests are already waiting; try again shortly")

    def max_new_tokens(self, prompt_tokens: int, req, max_tokens: int | None) -> int | None:
        """The request's new-token budget (None: the server's default), checked against limits and context."""
        if max_tokens is not None and req.max_length is not None:
            raise ApiError(400, "give max_tokens or max_length, not both", param="max_length")
        if req.max_length is not None:
            max_tokens = req.max_length - prompt_tokens
            if max_tokens < 1:
                raise ApiError(
                    400,
                    f"max_length: {req.max_length} leaves no room after the prompt's {prompt_tokens} tokens",
                    param="max_length",
                )
        if max_tokens is not None and max_tokens > self.limits.max_tokens:
            raise ApiError(
                400,
                f"max_tokens: {max_tokens:,} is more than this server allows ({self.limits.max_tokens:,})",
                param="max_tokens",
            )
        context = self.engine.context
        room = context - max(prompt_tokens, 1)
        if room < 1 or (max_tokens is not None and max_tokens > room):
            raise ApiError(
                400,
                f"This model's maximum context length is {context} tokens; the prompt has "
                f"{prompt_tokens} tokens and {max_tokens or 1} more were requested",
                param="prompt" if room < 1 else "max_tokens",
                code="context_length_exceeded",
            )
        return max_tokens

    def sampling(self, ids: list[int], req, max_tokens: int | None, stops: list[str]) -> Sampling:
        """The generation arguments of a request whose prompt is `ids`; a 400 for anything out of bounds."""
        max_tokens = self.max_new_tokens(len(ids), req, max_tokens)
        if req.n > self.limits.max_n:
            raise ApiError(400, f"n: at most {self.limits.max_n} sequences per prompt", param="n")
        room = self.engine.context - max(len(ids), 1)
        greedy = req.temperature == 0 or req.do_sample is False
        sampling = Sampling(
            max_new_tokens=max_tokens
            if max_tokens is not None
            else min(self.limits.default_max_tokens, room),
            do_sample=not greedy,
            temperature=None if greedy else req.temperature,
            top_p=req.top_p,
            top_k=req.top_k,
            repetition_penalty=req.repetition_penalty,
            num_return_sequences=req.n,
            seed=req.seed if req.seed is not None else secrets.randbelow(SEED_MAX),
            stop=stops,
        )
        try:
            check_sampling(sampling, max(len(ids), 1), self.engine.context)
        except JalmError as error:
            raise ApiError(400, str(error)) from None
        return sampling

    async def run(self, ids: list[int], sampling: Sampling) -> list[Completion]:
        try:
            return await self.engine.run(ids, sampling)
        except Busy as error:
            raise busy_error(str(error)) from None

    # ---- GET /v1/models ------------------------------------------------------------------------------

    async def models(self) -> dict:
        model = {
            "id": self.name,
            "object": "model",
            "created": self.created,
            "owned_by": "jalm",
            "context_length": self.engine.context,
        }
        return {"object": "list", "data": [model]}

    # ---- POST /v1/completions ------------------------------------------------------------------------

    async def prepare(self, prompt: str, req, stops: list[str]) -> tuple[list[int], Sampling]:
        self.check_chars(len(prompt), "prompt")
        ids = await asyncio.to_thread(self.engine.encode, prompt)
        return ids, self.sampling(ids, req, req.max_tokens, stops)

    async def completions(self, request: Request):
        req = parse(CompletionRequest, await read_json(request))
        self.check_model(req.model)
        refuse_unsupported(req)
        prompts = [req.prompt] if isinstance(req.prompt, str) else req.prompt
        if not prompts or len(prompts) > self.limits.max_n:
            raise ApiError(400, f"prompt: give 1 to {self.limits.max_n} prompts", param="prompt")
        stops = stop_list(req.stop, self.limits)
        prepared = [await self.prepare(p, req, stops) for p in prompts]
        self.check_busy()
        rid, now = f"cmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        base = {"id": rid, "object": "text_completion", "created": now, "model": self.name}
        if req.stream:
            return event_stream(self.stream_completions(base, prompts, prepared, req, _include_usage(req)))
        choices: list[dict] = []
        used: dict[str, int] = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        for k, (prompt, (ids, sampling)) in enumerate(zip(prompts, prepared)):
            results = await self.run(ids, sampling)
            for j, r in enumerate(results):
                text = (prompt + r.text) if req.echo else r.text
                choices.append(choice(k * req.n + j, r.finish_reason, text=text))
            used = _add_usage(used, usage(len(ids), results))
        return {**base, "choices": choices, "usage": used}

    async def stream_completions(self, base, prompts, prepared, req, include_usage) -> AsyncIterator[str]:
        n = req.n
        used: dict[str, int] = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        for k, (prompt, (ids, sampling)) in enumerate(zip(prompts, prepared)):
            if req.echo:
                for j in range(n):
                    yield sse({**base, "choices": [choice(k * n + j, text=prompt)]})
            async for event in self.engine.stream(ids, sampling):
                if isinstance(event, Delta):
                    yield sse({**base, "choices": [choice(k * n + event.index, text=event.text)]})
                elif isinstance(event, Done):
                    for j, r in enumerate(event.results):
                        yield sse({**base, "choices": [choice(k * n + j, r.finish_reason, text="")]})
                    used = _add_usage(used, usage(len(ids), event.results))
        if include_usage:
            yield sse({**base, "choices": [], "usage": used})

    # ---- POST /v1/chat/completions -------------------------------------------------------------------

    async def prepare_chat(self, req: ChatRequest) -> tuple[list[int], Sampling, str | None]:
        if req.max_tokens is not None and req.max_completion_tokens is not None:
            raise ApiError(
                400, "give max_tokens or max_completion_tokens, not both", param="max_completion_tokens"
            )
        self.check_chars(sum(len(m.content) for m in req.messages), "messages")
        try:
            ids, notice = await asyncio.to_thread(self.engine.chat_ids, req.messages)
        except JalmError as error:  # the chat template refuses the conversation
            raise ApiError(400, f"messages: {error}", param="messages") from None
        stops = stop_list(req.stop, self.limits)
        stops += [s for s in self.engine.chat_stops if s not in stops]
        sampling = self.sampling(ids, req, req.max_completion_tokens or req.max_tokens, stops)
        return ids, sampling, notice

    async def chat_completions(self, request: Request):
        req = parse(ChatRequest, await read_json(request))
        self.check_model(req.model)
        refuse_unsupported(req)
        ids, sampling, notice = await self.prepare_chat(req)
        self.check_busy()
        rid, now = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        extra = {NOTICE_FIELD: notice} if notice is not None else {}
        if req.stream:
            base = {"id": rid, "object": "chat.completion.chunk", "created": now, "model": self.name}
            return event_stream(self.stream_chat(base, ids, sampling, extra, _include_usage(req)))
        results = await self.run(ids, sampling)
        choices = [
            choice(j, r.finish_reason, message={"role": "assistant", "content": r.text})
            for j, r in enumerate(results)
        ]
        base = {"id": rid, "object": "chat.completion", "created": now, "model": self.name}
        return {**base, "choices": choices, "usage": usage(len(ids), results), **extra}

    async def stream_chat(self, base, ids, sampling, extra, include_usage) -> AsyncIterator[str]:
        """One role chunk per sequence (the first also carries `extra`, the notice), deltas, then the ends."""
        for j in range(sampling.num_return_sequences):
            first = {**base, "choices": [choice(j, delta={"role": "assistant", "content": ""})]}
            yield sse({**first, **extra} if j == 0 else first)
        async for event in self.engine.stream(ids, sampling):
            if isinstance(event, Delta):
                yield sse({**base, "choices": [choice(event.index, delta={"content": event.text})]})
            elif isinstance(event, Done):
                for j, r in enumerate(event.results):
                    yield sse({**base, "choices": [choice(j, r.finish_reason, delta={})]})
                if include_usage:
                    yield sse({**base, "choices": [], "usage": usage(len(ids), event.results)})


async def read_json(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ApiError(400, f"the request body is not valid JSON ({error})") from None
