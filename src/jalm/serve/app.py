"""The web application: model card page, playground, and an OpenAI-compatible API, on FastAPI.

Routes: GET / (card + playground), GET /card.md (the card as Markdown), GET /files/loss.png,
GET /api/samples, GET /health, GET /v1/models, POST /v1/completions, POST /v1/chat/completions.
Every error is JSON in OpenAI's shape ({"error": {"message", "type", "param", "code"}}); bodies larger
than the limit are refused before they are parsed; model work runs on the engine's worker thread.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from jalm.errors import JalmError
from jalm.generate import PROMPT, Completion, Sampling, check_sampling
from jalm.serve.api import (
    CHAT_STOPS,
    SEED_MAX,
    ApiError,
    ChatRequest,
    CompletionRequest,
    Limits,
    chat_prompt,
    parse,
    refuse_unsupported,
    stop_list,
)
from jalm.serve.card import build_card, draw_loss, to_markdown
from jalm.serve.engine import Busy, Engine
from jalm.serve.facts import ModelFacts
from jalm.serve.page import render_page

STATIC = Path(__file__).parent / "static"
log = logging.getLogger("jalm.serve")


class BodyLimit:
    """ASGI middleware: read a request body up to `max_bytes` (413 past it) before the app sees it."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            return await self._reject(scope, receive, send)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                return await self._reject(scope, receive, send)
            if not message.get("more_body"):
                break
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # later calls wait for the client to disconnect, as usual

        await self.app(scope, replay, send)

    async def _reject(self, scope, receive, send):
        error = ApiError(413, f"request body larger than {self.max_bytes:,} bytes", code="request_too_large")
        await JSONResponse(error.body(), status_code=413)(scope, receive, send)


def _sse(payload: Any) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


def create_app(
    facts: ModelFacts,
    model,
    tokenizer,
    limits: Limits | None = None,
    model_ref: str | None = None,
) -> FastAPI:
    """The app for one loaded model. `facts` feed the card; `model_ref` is the path shown in the snippet."""
    limits = limits or Limits()
    engine = Engine(model, tokenizer, max_pending=limits.max_pending)
    name = facts.name
    created = int(time.time())
    context = engine.context

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        engine.close()

    app = FastAPI(
        title=f"jalm · {name}",
        description="Model card, playground and OpenAI-compatible API.",
        version="1",
        docs_url=None,  # Swagger UI would make the browser fetch scripts from a CDN; /openapi.json stays
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.engine, app.state.facts, app.state.limits = engine, facts, limits
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    has_plot = facts.loss_png is not None or bool(facts.train_curve or facts.val_curve)
    sections = build_card(facts, model_ref, "/files/loss.png" if has_plot else None)
    page = render_page(sections, name, context, asdict(limits))
    markdown = to_markdown(build_card(facts, model_ref, "files/loss.png" if has_plot else None))
    plot_cache: dict[str, bytes] = {}

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, error: ApiError):
        return JSONResponse(error.body(), status_code=error.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code)
        return JSONResponse(
            ApiError(
                error.status_code, f"{request.method} {request.url.path}: {error.detail}", code=code
            ).body(),
            status_code=error.status_code,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, error: RequestValidationError):
        return JSONResponse(ApiError(400, str(error.errors()[0].get("msg"))).body(), status_code=400)

    @app.exception_handler(Exception)
    async def _server_error(request: Request, error: Exception):
        log.exception("internal error on %s", request.url.path)
        body = ApiError(500, f"internal error: {type(error).__name__}", type="server_error").body()
        return JSONResponse(body, status_code=500)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def home() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/card.md", response_class=PlainTextResponse, include_in_schema=False)
    async def card_markdown() -> PlainTextResponse:
        return PlainTextResponse(markdown, media_type="text/markdown; charset=utf-8")

    @app.get("/files/loss.png", include_in_schema=False)
    async def loss_png() -> Response:
        if facts.loss_png is not None:
            return Response(facts.loss_png.read_bytes(), media_type="image/png")
        if not facts.train_curve and not facts.val_curve:
            raise ApiError(404, "no loss curve for this model", code="not_found")
        if "png" not in plot_cache:  # draw it from metrics.jsonl once, off the event loop
            plot_cache["png"] = await asyncio.to_thread(_plot, facts)
        return Response(plot_cache["png"], media_type="image/png")

    @app.get("/api/samples")
    async def samples() -> dict:
        try:
            return {"prompt": PROMPT, "samples": await engine.samples()}
        except Busy as error:
            raise ApiError(429, str(error), code="server_busy", type="rate_limit_error") from None

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "model": name, "pending": engine.pending, "completed": engine.completed}

    @app.get("/v1/models")
    async def models() -> dict:
        return {
            "object": "list",
            "data": [
                {
                    "id": name,
                    "object": "model",
                    "created": created,
                    "owned_by": "jalm",
                    "context_length": context,
                }
            ],
        }

    def check_model(requested: str | None) -> None:
        if requested is not None and requested != name:
            raise ApiError(
                404,
                f"The model '{requested}' does not exist; this server serves '{name}'",
                param="model",
                code="model_not_found",
            )

    async def read_json(request: Request) -> Any:
        raw = await request.body()
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ApiError(400, f"the request body is not valid JSON ({error})") from None

    async def prepare(
        prompt: str, req, max_tokens: int | None, stops: list[str]
    ) -> tuple[list[int], Sampling]:
        if len(prompt) > limits.max_prompt_chars:
            raise ApiError(
                400,
                f"prompt: {len(prompt):,} characters, more than this server accepts "
                f"({limits.max_prompt_chars:,})",
                param="prompt",
                code="prompt_too_long",
            )
        ids = await asyncio.to_thread(engine.encode, prompt)
        if max_tokens is not None and req.max_length is not None:
            raise ApiError(400, "give max_tokens or max_length, not both", param="max_length")
        if req.max_length is not None:
            max_tokens = req.max_length - len(ids)
            if max_tokens < 1:
                raise ApiError(
                    400,
                    f"max_length: {req.max_length} leaves no room after the prompt's {len(ids)} tokens",
                    param="max_length",
                )
        if max_tokens is not None and max_tokens > limits.max_tokens:
            raise ApiError(
                400,
                f"max_tokens: {max_tokens:,} is more than this server allows ({limits.max_tokens:,})",
                param="max_tokens",
            )
        room = context - max(len(ids), 1)
        if room < 1 or (max_tokens is not None and max_tokens > room):
            raise ApiError(
                400,
                f"This model's maximum context length is {context} tokens; the prompt has "
                f"{len(ids)} tokens and {max_tokens or 1} more were requested",
                param="prompt" if room < 1 else "max_tokens",
                code="context_length_exceeded",
            )
        if req.n > limits.max_n:
            raise ApiError(400, f"n: at most {limits.max_n} sequences per prompt", param="n")
        greedy = req.temperature == 0 or req.do_sample is False
        sampling = Sampling(
            max_new_tokens=max_tokens if max_tokens is not None else min(limits.default_max_tokens, room),
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
            check_sampling(sampling, max(len(ids), 1), context)
        except JalmError as error:
            raise ApiError(400, str(error)) from None
        return ids, sampling

    def check_busy() -> None:
        if engine.pending >= limits.max_pending:
            raise ApiError(
                429,
                f"{engine.pending} requests are already waiting; try again shortly",
                code="server_busy",
                type="rate_limit_error",
            )

    def usage(prompt_tokens: int, results: list[Completion]) -> dict:
        completion = sum(r.tokens for r in results)
        return {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": prompt_tokens + completion,
        }

    @app.post("/v1/completions")
    async def completions(request: Request):
        req = parse(CompletionRequest, await read_json(request))
        check_model(req.model)
        refuse_unsupported(req)
        prompts = [req.prompt] if isinstance(req.prompt, str) else req.prompt
        if not prompts or len(prompts) > limits.max_n:
            raise ApiError(400, f"prompt: give 1 to {limits.max_n} prompts", param="prompt")
        stops = stop_list(req.stop, limits)
        prepared = [await prepare(p, req, req.max_tokens, stops) for p in prompts]
        check_busy()
        rid, now = f"cmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        base = {"id": rid, "object": "text_completion", "created": now, "model": name}
        if req.stream:
            include_usage = bool((req.stream_options or {}).get("include_usage"))
            return _event_stream(stream_completions(base, prompts, prepared, req.n, req.echo, include_usage))
        choices, used = [], {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        for k, (prompt, (ids, sampling)) in enumerate(zip(prompts, prepared)):
            results = await run_or_busy(ids, sampling)
            for j, r in enumerate(results):
                text = (prompt + r.text) if req.echo else r.text
                choices.append(
                    {"text": text, "index": k * req.n + j, "logprobs": None, "finish_reason": r.finish_reason}
                )
            used = {key: used[key] + value for key, value in usage(len(ids), results).items()}
        return {**base, "choices": choices, "usage": used}

    async def run_or_busy(ids: list[int], sampling: Sampling) -> list[Completion]:
        try:
            return await engine.run(ids, sampling)
        except Busy as error:
            raise ApiError(429, str(error), code="server_busy", type="rate_limit_error") from None

    async def stream_completions(base, prompts, prepared, n, echo, include_usage) -> AsyncIterator[str]:
        used = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        for k, (prompt, (ids, sampling)) in enumerate(zip(prompts, prepared)):
            if echo:
                for j in range(n):
                    yield _sse(
                        {
                            **base,
                            "choices": [
                                {"text": prompt, "index": k * n + j, "logprobs": None, "finish_reason": None}
                            ],
                        }
                    )
            async for item in engine.stream(ids, sampling):
                if item[0] == "text":
                    yield _sse(
                        {
                            **base,
                            "choices": [
                                {
                                    "text": item[2],
                                    "index": k * n + item[1],
                                    "logprobs": None,
                                    "finish_reason": None,
                                }
                            ],
                        }
                    )
                else:
                    for j, r in enumerate(item[1]):
                        yield _sse(
                            {
                                **base,
                                "choices": [
                                    {
                                        "text": "",
                                        "index": k * n + j,
                                        "logprobs": None,
                                        "finish_reason": r.finish_reason,
                                    }
                                ],
                            }
                        )
                    used = {key: used[key] + value for key, value in usage(len(ids), item[1]).items()}
        if include_usage:
            yield _sse({**base, "choices": [], "usage": used})

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        req = parse(ChatRequest, await read_json(request))
        check_model(req.model)
        refuse_unsupported(req)
        if req.max_tokens is not None and req.max_completion_tokens is not None:
            raise ApiError(
                400, "give max_tokens or max_completion_tokens, not both", param="max_completion_tokens"
            )
        prompt = chat_prompt(req.messages)
        stops = stop_list(req.stop, limits)
        ids, sampling = await prepare(prompt, req, req.max_completion_tokens or req.max_tokens, stops)
        sampling.stop = stops + [s for s in CHAT_STOPS if s not in stops]
        check_busy()
        rid, now = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        if req.stream:
            base = {"id": rid, "object": "chat.completion.chunk", "created": now, "model": name}
            include_usage = bool((req.stream_options or {}).get("include_usage"))
            return _event_stream(stream_chat(base, ids, sampling, include_usage))
        results = await run_or_busy(ids, sampling)
        choices = [
            {
                "index": j,
                "message": {"role": "assistant", "content": r.text},
                "logprobs": None,
                "finish_reason": r.finish_reason,
            }
            for j, r in enumerate(results)
        ]
        return {
            "id": rid,
            "object": "chat.completion",
            "created": now,
            "model": name,
            "choices": choices,
            "usage": usage(len(ids), results),
        }

    async def stream_chat(base, ids, sampling, include_usage) -> AsyncIterator[str]:
        for j in range(sampling.num_return_sequences):
            yield _sse(
                {
                    **base,
                    "choices": [
                        {
                            "index": j,
                            "delta": {"role": "assistant", "content": ""},
                            "logprobs": None,
                            "finish_reason": None,
                        }
                    ],
                }
            )
        async for item in engine.stream(ids, sampling):
            if item[0] == "text":
                yield _sse(
                    {
                        **base,
                        "choices": [
                            {
                                "index": item[1],
                                "delta": {"content": item[2]},
                                "logprobs": None,
                                "finish_reason": None,
                            }
                        ],
                    }
                )
            else:
                for j, r in enumerate(item[1]):
                    yield _sse(
                        {
                            **base,
                            "choices": [
                                {"index": j, "delta": {}, "logprobs": None, "finish_reason": r.finish_reason}
                            ],
                        }
                    )
                if include_usage:
                    yield _sse({**base, "choices": [], "usage": usage(len(ids), item[1])})

    return app


def _event_stream(events: AsyncIterator[str]) -> StreamingResponse:
    """SSE response; a failure mid-stream becomes an error event, and every stream ends with [DONE]."""

    async def body() -> AsyncIterator[str]:
        try:
            async for event in events:
                yield event
        except Busy as error:
            yield _sse(ApiError(429, str(error), code="server_busy", type="rate_limit_error").body())
        except Exception as error:  # headers are sent: report in the stream, keep the server up
            log.exception("error while streaming")
            yield _sse(ApiError(500, f"internal error: {type(error).__name__}", type="server_error").body())
        yield "data: [DONE]\n\n"

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(body(), media_type="text/event-stream; charset=utf-8", headers=headers)


def _plot(facts: ModelFacts) -> bytes:
    buffer = io.BytesIO()
    draw_loss(facts, buffer)
    return buffer.getvalue()
