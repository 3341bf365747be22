"""The OpenAI-compatible HTTP API: /v1/models, /v1/completions, /v1/chat/completions (SSE streaming
or not), /health and Prometheus /metrics, over the batching :class:`~aipc.serve.engine.Engine`.

This file wires the app: routes to :class:`~aipc.serve.handlers.Handlers`, errors to OpenAI-style
JSON bodies, every response counted in ``aipc_requests_total``; the engine starts with the app and
drains when it stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from aipc.serve.auth import Access
from aipc.serve.engine import Engine
from aipc.serve.handlers import ClientGone, Handlers, ServerConfig, client_gone
from aipc.serve.metrics import ServerMetrics
from aipc.serve.protocol import ApiError

__all__ = ["ENDPOINTS", "ServerConfig", "create_app"]
log = logging.getLogger("aipc.serve")
ENDPOINTS = ("/v1/models", "/v1/completions", "/v1/chat/completions", "/health", "/metrics")
INTERNAL = ApiError(500, "internal server error", code="internal_error")


def error_response(e: ApiError) -> JSONResponse:
    return JSONResponse(e.body(), status_code=e.status, headers=e.headers)


class Outermost:
    """ASGI middleware: counts every response by endpoint and status; turns an unexpected exception
    into one logged traceback and a 500 with an OpenAI-style body (when nothing was sent yet)."""

    def __init__(self, app, metrics: ServerMetrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        endpoint = path if path in ENDPOINTS else "other"
        started = False

        async def counting_send(msg):
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
                self.metrics.count_response(endpoint, msg["status"])
            await send(msg)

        try:
            await self.app(scope, receive, counting_send)
        except Exception:
            log.exception("internal error on %s", path)
            if not started:
                await error_response(INTERNAL)(scope, receive, counting_send)


async def _api_error(request: Request, e: ApiError) -> JSONResponse:
    return error_response(e)


async def _not_found_or_method(request: Request, e: StarletteHTTPException) -> JSONResponse:
    msg = {404: f"no such endpoint {request.url.path}; see /v1/models, /v1/completions, /v1/chat/completions",
           405: f"method {request.method} is not allowed on {request.url.path}"}.get(e.status_code, str(e.detail))
    return error_response(ApiError(e.status_code, msg, code="not_found" if e.status_code == 404 else None))


async def _client_gone(request: Request, e: ClientGone) -> Response:
    client_gone(request, e)
    return Response(status_code=408 if e.timed_out else 499)  # nobody reads it: the connection is gone


def _lifespan(engine: Engine):
    @contextlib.asynccontextmanager
    async def lifespan(app):
        engine.start()  # a no-op when the caller started it
        yield
        # uvicorn has let in-flight requests finish; now drain the engine and stop its thread
        await asyncio.to_thread(engine.stop, 30.0)

    return lifespan


def create_app(engine: Engine, tokenizer, cfg: ServerConfig, access: Access, metrics: ServerMetrics) -> FastAPI:
    """The FastAPI app serving ``engine`` (any runner) with ``tokenizer`` under ``cfg`` and ``access``."""
    cfg.created = cfg.created or int(time.time())
    h = Handlers(engine, tokenizer, cfg, access, metrics)
    app = FastAPI(title="aipc serve", lifespan=_lifespan(engine), docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(Outermost, metrics=metrics)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _not_found_or_method)
    app.add_exception_handler(ClientGone, _client_gone)
    app.add_api_route("/health", h.health, methods=["GET"])
    app.add_api_route("/metrics", h.prometheus, methods=["GET"])
    app.add_api_route("/v1/models", h.models, methods=["GET"])
    app.add_api_route("/v1/completions", h.completions, methods=["POST"])
    app.add_api_route("/v1/chat/completions", h.chat, methods=["POST"])
    return app
