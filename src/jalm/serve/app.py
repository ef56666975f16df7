"""The web application: model card page, playground, and an OpenAI-compatible API, on FastAPI.

Routes: GET / (card + playground), GET /card.md (the card as Markdown), GET /files/loss.png,
GET /api/samples, GET /health, and the OpenAI-compatible GET /v1/models, POST /v1/completions,
POST /v1/chat/completions (openai_routes.py).
Every error is JSON in OpenAI's shape ({"error": {"message", "type", "param", "code"}}); bodies larger
than the limit are refused before they are parsed; model work runs on the engine's model thread.
"""

from __future__ import annotations

import asyncio
import io
import logging
from contextlib import asynccontextmanager
from dataclasses import asdict
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from jalm.generate import PROMPT
from jalm.serve.api import ApiError, Limits, busy_error
from jalm.serve.card import build_card, draw_loss, to_markdown
from jalm.serve.engine import Busy, Engine
from jalm.serve.facts import ModelFacts
from jalm.serve.openai_routes import OpenAIRoutes
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


def create_app(
    facts: ModelFacts,
    model,
    tokenizer,
    limits: Limits | None = None,
    model_ref: str | None = None,
) -> FastAPI:
    """The app for one loaded model. `facts` feed the card; `model_ref` is the path shown in the snippet."""
    limits = limits or Limits()
    engine = Engine(model, tokenizer, max_pending=limits.max_pending, max_batch=limits.max_batch)
    app = FastAPI(
        title=f"jalm · {facts.name}",
        description="Model card, playground and OpenAI-compatible API.",
        version="1",
        docs_url=None,  # Swagger UI would make the browser fetch scripts from a CDN; /openapi.json stays
        redoc_url=None,
        lifespan=_lifespan,
    )
    app.state.engine, app.state.facts, app.state.limits = engine, facts, limits
    has_plot = facts.loss_png is not None or bool(facts.train_curve or facts.val_curve)
    sections = build_card(facts, model_ref, "/files/loss.png" if has_plot else None)
    app.state.page = render_page(
        sections, facts.name, engine.context, asdict(limits), chat_notice=engine.chat_notice
    )
    app.state.markdown = to_markdown(build_card(facts, model_ref, "files/loss.png" if has_plot else None))
    app.state.plot_cache = {}
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _server_error)
    app.add_api_route("/", home, methods=["GET"], response_class=HTMLResponse, include_in_schema=False)
    app.add_api_route(
        "/card.md", card_markdown, methods=["GET"], response_class=PlainTextResponse, include_in_schema=False
    )
    app.add_api_route("/files/loss.png", loss_png, methods=["GET"], include_in_schema=False)
    app.add_api_route("/api/samples", samples, methods=["GET"])
    app.add_api_route("/health", health, methods=["GET"])
    OpenAIRoutes(engine, facts.name, limits).register(app)
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI):
    yield
    app.state.engine.close()


# ---- errors, all in OpenAI's JSON shape ----------------------------------------------------------------


async def _api_error(request: Request, error: ApiError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status)


async def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
    code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code)
    message = f"{request.method} {request.url.path}: {error.detail}"
    return JSONResponse(ApiError(error.status_code, message, code=code).body(), status_code=error.status_code)


async def _validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    return JSONResponse(ApiError(400, str(error.errors()[0].get("msg"))).body(), status_code=400)


async def _server_error(request: Request, error: Exception) -> JSONResponse:
    log.exception("internal error on %s", request.url.path)
    body = ApiError(500, f"internal error: {type(error).__name__}", type="server_error").body()
    return JSONResponse(body, status_code=500)


# ---- the page and its files ----------------------------------------------------------------------------


async def home(request: Request) -> HTMLResponse:
    return HTMLResponse(request.app.state.page)


async def card_markdown(request: Request) -> PlainTextResponse:
    return PlainTextResponse(request.app.state.markdown, media_type="text/markdown; charset=utf-8")


async def loss_png(request: Request) -> Response:
    facts: ModelFacts = request.app.state.facts
    cache: dict[str, bytes] = request.app.state.plot_cache
    if facts.loss_png is not None:
        return Response(facts.loss_png.read_bytes(), media_type="image/png")
    if not facts.train_curve and not facts.val_curve:
        raise ApiError(404, "no loss curve for this model", code="not_found")
    if "png" not in cache:  # draw it from metrics.jsonl once, off the event loop
        cache["png"] = await asyncio.to_thread(_plot, facts)
    return Response(cache["png"], media_type="image/png")


async def samples(request: Request) -> dict:
    try:
        return {"prompt": PROMPT, "samples": await request.app.state.engine.samples()}
    except Busy as error:
        raise busy_error(str(error)) from None


async def health(request: Request) -> dict:
    engine: Engine = request.app.state.engine
    return {
        "status": "ok",
        "model": request.app.state.facts.name,
        "pending": engine.pending,
        "batch": engine.running,  # sequences being decoded together now
        "max_batch": engine.max_batch if engine.batching else 1,
        "completed": engine.completed,
    }


def _plot(facts: ModelFacts) -> bytes:
    buffer = io.BytesIO()
    draw_loss(facts, buffer)
    return buffer.getvalue()
