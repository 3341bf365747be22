"""The OpenAI-compatible HTTP API: /v1/models, /v1/completions, /v1/chat/completions (SSE streaming
or not), /health and Prometheus /metrics, over the batching :class:`~aipc.serve.engine.Engine`.

Prompts and completions are never logged; the audit log records who, when, status and token
counts, and content only when the operator opts in (``--audit-content``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from aipc.serve.auth import Access
from aipc.serve.engine import Engine, Overloaded
from aipc.serve.engine import Request as GenRequest
from aipc.serve.generate import encode_messages
from aipc.serve.metrics import ServerMetrics
from aipc.serve.protocol import ApiError, Limits, Parsed, check_lengths, parse

log = logging.getLogger("aipc.serve")
ENDPOINTS = ("/v1/models", "/v1/completions", "/v1/chat/completions", "/health", "/metrics")


@dataclass
class ServerConfig:
    model_name: str
    limits: Limits
    max_body_bytes: int = 1 << 20
    created: int = 0
    threads_note: str = ""


class _Count:
    """ASGI middleware: counts every response by endpoint and status in ``aipc_requests_total``."""

    def __init__(self, app, metrics: ServerMetrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        endpoint = path if path in ENDPOINTS else "other"

        async def counting_send(msg):
            if msg["type"] == "http.response.start":
                self.metrics.requests.inc(endpoint=endpoint, status=str(msg["status"]))
            await send(msg)

        await self.app(scope, receive, counting_send)


def _error(e: ApiError) -> JSONResponse:
    return JSONResponse(e.body(), status_code=e.status, headers=e.headers)


def create_app(engine: Engine, tokenizer, cfg: ServerConfig, access: Access, metrics: ServerMetrics) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app):
        if engine._thread is None:
            engine.start()
        yield
        # uvicorn has let in-flight requests finish; now drain the engine and stop its thread
        await asyncio.to_thread(engine.stop, 30.0)

    app = FastAPI(title="aipc serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(_Count, metrics=metrics)
    cfg.created = cfg.created or int(time.time())

    @app.exception_handler(ApiError)
    async def _api_error(request, e: ApiError):
        return _error(e)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, e: StarletteHTTPException):
        msg = {404: f"no such endpoint {request.url.path}; see /v1/models, /v1/completions, /v1/chat/completions",
               405: f"method {request.method} is not allowed on {request.url.path}"}.get(e.status_code, str(e.detail))
        return _error(ApiError(e.status_code, msg, code="not_found" if e.status_code == 404 else None))

    @app.exception_handler(Exception)
    async def _crash(request, e: Exception):
        log.exception("internal error on %s", request.url.path)
        return _error(ApiError(500, "internal server error", code="internal_error"))

    def authenticate(request: Request) -> str:
        name = access.authenticate(request.headers.get("authorization"))
        if name is None:
            raise ApiError(401, "invalid or missing API key; send 'Authorization: Bearer <key>'",
                           code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})
        return name

    @app.get("/health")
    async def health():
        running, waiting = engine.load()
        ok = engine.error is None
        return JSONResponse({"status": "ok" if ok else "error", "model": cfg.model_name, "running": running,
                             "waiting": waiting}, status_code=200 if ok else 503)

    @app.get("/metrics")
    async def prom(request: Request):
        if access.required:
            authenticate(request)
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/v1/models")
    async def models(request: Request):
        authenticate(request)
        return {"object": "list", "data": [{"id": cfg.model_name, "object": "model", "created": cfg.created,
                                            "owned_by": "aipc", "max_model_len": cfg.limits.context}]}

    @app.post("/v1/completions")
    async def completions(request: Request):
        return await _handle(request, "completion")

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        return await _handle(request, "chat")

    async def read_json(request: Request):
        cl = request.headers.get("content-length")
        if cl is not None and cl.isdigit() and int(cl) > cfg.max_body_bytes:
            raise ApiError(413, f"request body of {cl} bytes exceeds the limit of {cfg.max_body_bytes}",
                           code="request_too_large")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > cfg.max_body_bytes:
                raise ApiError(413, f"request body exceeds the limit of {cfg.max_body_bytes} bytes",
                               code="request_too_large")
            chunks.append(chunk)
        try:
            return json.loads(b"".join(chunks))
        except (ValueError, RecursionError) as e:  # JSONDecodeError, bad UTF-8, absurd numbers or nesting
            raise ApiError(400, f"the request body is not valid JSON ({str(e)[:200]})", code="invalid_json") from None

    def encode(p: Parsed) -> list[int]:
        if p.kind == "chat":
            if not getattr(tokenizer, "chat_template", None):
                raise ApiError(400, "this model has no chat template; use /v1/completions", code="unsupported")
            try:
                return encode_messages(tokenizer, p.prompt)
            except Exception as e:  # the template may reject a conversation (e.g. roles not alternating)
                raise ApiError(400, f"the chat template rejected the messages: {str(e)[:200]}", param="messages",
                               code="invalid_value") from None
        if isinstance(p.prompt, str):
            try:
                return list(tokenizer(p.prompt, add_special_tokens=True)["input_ids"])
            except (UnicodeError, ValueError, TypeError) as e:  # e.g. lone surrogates
                raise ApiError(400, f"the prompt cannot be tokenized: {str(e)[:200]}", param="prompt",
                               code="invalid_value") from None
        vocab = engine.runner.vocab_size
        if not all(0 <= t < vocab for t in p.prompt):
            raise ApiError(400, f"prompt token ids must be in [0, {vocab})", param="prompt", code="invalid_value")
        return list(p.prompt)

    async def _handle(request: Request, kind: str):
        t0 = time.perf_counter()
        key, status, req, parsed = None, 200, None, None
        endpoint = request.url.path
        try:
            key = authenticate(request)
            parsed = parse(await read_json(request), kind, cfg.limits)
            if parsed.model != cfg.model_name:
                raise ApiError(404, f"the model '{parsed.model}' does not exist; this server serves "
                               f"'{cfg.model_name}'", param="model", code="model_not_found")
            ids = encode(parsed)
            params = check_lengths(parsed, len(ids), cfg.limits)
            reserved = len(ids) + params.max_tokens
            if access.limiter is not None:
                d = access.limiter.acquire(key, reserved)
                if not d.allowed:
                    retry = "3600" if d.retry_after_s == float("inf") else str(max(1, round(d.retry_after_s)))
                    raise ApiError(429, f"rate limit: {d.reason}", code="rate_limit_exceeded",
                                   type="rate_limit_error", headers={"Retry-After": retry})
            req = GenRequest(prompt_ids=ids, params=params, loop=asyncio.get_running_loop())
            try:
                engine.submit(req)
            except (Overloaded, RuntimeError) as e:
                if access.limiter is not None:
                    access.limiter.charge(key, -reserved)  # nothing was generated: give the tokens back
                if isinstance(e, Overloaded):
                    raise ApiError(503, f"server overloaded ({e}); retry later", code="overloaded",
                                   headers={"Retry-After": "1"}) from None
                raise ApiError(503, str(e), code="unavailable") from None
        except ApiError as e:
            _audit(key, request, endpoint, e.status, None, t0, parsed, error=e.code or e.message)
            raise
        done = lambda: _settle(key, request, endpoint, req, t0, parsed, reserved)  # noqa: E731
        rid = ("chatcmpl-" if kind == "chat" else "cmpl-") + uuid.uuid4().hex[:24]
        if parsed.stream:
            return StreamingResponse(_sse(req, parsed, rid, done), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        try:
            text = await _collect(req, request)
        finally:
            status = 500 if req.finish_reason == "error" else 200
            done()
        if status == 500:
            raise ApiError(500, "generation failed inside the server", code="internal_error")
        return _final(req, parsed, rid, text)

    async def _collect(req: GenRequest, request: Request) -> str:
        parts = []
        while True:
            try:
                kind, a, _ = await asyncio.wait_for(req.events.get(), timeout=1.0)
            except asyncio.TimeoutError:
                if await request.is_disconnected():
                    req.cancel()
                    return ""
                continue
            if kind == "done":
                return "".join(parts)
            parts.append(a)

    def _usage(req: GenRequest) -> dict:
        n, m = len(req.prompt_ids), req.output_tokens
        return {"prompt_tokens": n, "completion_tokens": m, "total_tokens": n + m}

    def _final(req: GenRequest, p: Parsed, rid: str, text: str) -> dict:
        base = {"id": rid, "created": int(time.time()), "model": cfg.model_name, "usage": _usage(req)}
        if p.kind == "chat":
            return {**base, "object": "chat.completion", "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                 "finish_reason": req.finish_reason}]}
        return {**base, "object": "text_completion", "choices": [
            {"index": 0, "text": text, "logprobs": None, "finish_reason": req.finish_reason}]}

    async def _sse(req: GenRequest, p: Parsed, rid: str, done):
        created = int(time.time())
        obj = "chat.completion.chunk" if p.kind == "chat" else "text_completion"

        def chunk(text: str | None, finish: str | None, first: bool = False) -> str:
            if p.kind == "chat":
                delta = {"role": "assistant", "content": ""} if first else ({} if text is None else {"content": text})
                choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            else:
                choice = {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish}
            body = {"id": rid, "object": obj, "created": created, "model": cfg.model_name, "choices": [choice]}
            if p.include_usage:
                body["usage"] = None
            return f"data: {json.dumps(body, separators=(',', ':'))}\n\n"

        finished = False
        try:
            if p.kind == "chat":
                yield chunk(None, None, first=True)
            while True:
                kind, a, _ = await req.events.get()
                if kind == "token":
                    out = [chunk(a, None)]
                    while not req.events.empty():  # tokens that are already here go out in one write
                        kind, a, _ = req.events.get_nowait()
                        if kind != "token":
                            req.events.put_nowait((kind, a, _))
                            break
                        out.append(chunk(a, None))
                    yield "".join(out)
                    continue
                finished = True
                if a == "error":
                    err = ApiError(500, "generation failed inside the server", code="internal_error").body()
                    yield f"data: {json.dumps(err)}\n\n"
                else:
                    yield chunk(None if p.kind == "chat" else "", a)
                if p.include_usage:
                    body = {"id": rid, "object": obj, "created": created, "model": cfg.model_name, "choices": [],
                            "usage": _usage(req)}
                    yield f"data: {json.dumps(body, separators=(',', ':'))}\n\n"
                yield "data: [DONE]\n\n"
                break
        finally:
            if not finished:  # the client went away mid-stream: free the slot for others
                req.cancel()
            done()

    def _settle(key, request, endpoint, req: GenRequest, t0: float, parsed, reserved: int) -> None:
        if access.limiter is not None and key is not None:
            access.limiter.charge(key, len(req.prompt_ids) + req.output_tokens - reserved)
        status = 499 if req.cancelled and req.finish_reason in (None, "cancelled") else (
            500 if req.finish_reason == "error" else 200)
        _audit(key, request, endpoint, status, req, t0, parsed, completion=req.text)

    def _audit(key, request, endpoint, status, req, t0, parsed, error=None, completion=None) -> None:
        client = request.client.host if request.client else None
        log.info("%s %s key=%s status=%d prompt_tokens=%s completion_tokens=%s", request.method, endpoint, key, status,
                 len(req.prompt_ids) if req else None, req.output_tokens if req else None)
        if access.audit is None:
            return
        access.audit.record(key_name=key, client=client, endpoint=endpoint, status=status,
                            prompt_tokens=len(req.prompt_ids) if req else None,
                            completion_tokens=req.output_tokens if req else None,
                            latency_s=time.perf_counter() - t0, model=cfg.model_name,
                            request_id=str(req.id) if req else None, error=error,
                            prompt=parsed.prompt if parsed is not None else None, completion=completion)

    return app
