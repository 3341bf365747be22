"""The handlers behind aipc serve's routes, over the batching engine's public interface (``submit``,
``load``, ``error``, ``vocab_size``) and an HF-like tokenizer (``__call__``, ``apply_chat_template``,
``chat_template``) — nothing here knows which runner generates.

A completion passes through :meth:`Handlers.generate`: authenticate, read and validate the body,
check the model, tokenize, check lengths, take the rate limit, submit to the engine; then either
collect the answer or stream it as Server-Sent Events; at the end settle the rate limit with the real
token count and write the audit record. Prompts and completions are never logged; the audit log
records who, when, status and token counts, and content only when the operator opts in.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.requests import ClientDisconnect

from aipc.serve.auth import Access
from aipc.serve.connections import READ_TIMEOUT_KEY, limited
from aipc.serve.engine import Engine, Overloaded
from aipc.serve.engine import Request as GenRequest
from aipc.engines.generate import encode_messages
from aipc.serve.metrics import CONTENT_TYPE, ServerMetrics
from aipc.serve.protocol import ApiError, Limits, Parsed, check_lengths, parse
from aipc.serve.responses import Chunks, ModelCard, ModelList, Usage, final

log = logging.getLogger("aipc.serve")
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@dataclass
class ServerConfig:
    model_name: str
    limits: Limits
    max_body_bytes: int = 1 << 20
    created: int = 0
    threads_note: str = ""


class ClientGone(Exception):
    """The client closed the connection, or the body timeout cut it off, before its body arrived."""

    def __init__(self, received: int, timed_out: bool):
        super().__init__("request body timed out" if timed_out else "client disconnected")
        self.received, self.timed_out = received, timed_out


@dataclass(eq=False)
class Call:
    """One completion request on its way through the server."""

    request: Request
    kind: str                       # completion | chat
    t0: float = field(default_factory=time.perf_counter)
    key: str | None = None          # the API key's name, once authenticated
    parsed: Parsed | None = None
    req: GenRequest | None = None   # the engine's request, once submitted
    reserved: int = 0               # tokens taken from the rate limit up front

    @property
    def endpoint(self) -> str:
        return self.request.url.path

    def head(self, model: str) -> dict:
        rid = ("chatcmpl-" if self.kind == "chat" else "cmpl-") + uuid.uuid4().hex[:24]
        return {"id": rid, "created": int(time.time()), "model": model}

    def usage(self) -> Usage:
        return Usage.of(len(self.req.prompt_ids), self.req.output_tokens)


async def read_json(request: Request, max_bytes: int) -> Any:
    """The request body as JSON: 413 past ``max_bytes``, 400 when it is not JSON, ClientGone when the
    client leaves (or is cut off) half-way."""
    cl = request.headers.get("content-length")
    if cl is not None and cl.isdigit() and int(cl) > max_bytes:
        raise ApiError(413, f"request body of {cl} bytes exceeds the limit of {max_bytes}", code="request_too_large")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise ApiError(413, f"request body exceeds the limit of {max_bytes} bytes", code="request_too_large")
            chunks.append(chunk)
    except ClientDisconnect:
        raise ClientGone(size, bool(request.scope.get(READ_TIMEOUT_KEY))) from None
    try:
        return json.loads(b"".join(chunks))
    except (ValueError, RecursionError) as e:  # JSONDecodeError, bad UTF-8, absurd numbers or nesting
        raise ApiError(400, f"the request body is not valid JSON ({str(e)[:200]})", code="invalid_json") from None


def encode(tokenizer, p: Parsed, vocab_size: int) -> list[int]:
    """Prompt token ids: the chat template's rendering, the tokenized string, or the ids as given."""
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
    if not all(0 <= t < vocab_size for t in p.prompt):
        raise ApiError(400, f"prompt token ids must be in [0, {vocab_size})", param="prompt", code="invalid_value")
    return list(p.prompt)


def retry_after(seconds: float) -> str:
    return "3600" if seconds == float("inf") else str(max(1, round(seconds)))


class Handlers:
    """The server's routes as methods; one instance per app."""

    def __init__(self, engine: Engine, tokenizer, cfg: ServerConfig, access: Access, metrics: ServerMetrics):
        self.engine, self.tokenizer, self.cfg, self.access, self.metrics = engine, tokenizer, cfg, access, metrics

    # ------------------------------------------------------------------ small routes
    def authenticate(self, request: Request) -> str:
        name = self.access.authenticate(request.headers.get("authorization"))
        if name is None:
            raise ApiError(401, "invalid or missing API key; send 'Authorization: Bearer <key>'",
                           code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})
        return name

    async def health(self, request: Request) -> JSONResponse:
        running, waiting = self.engine.load()
        ok = self.engine.error is None
        return JSONResponse({"status": "ok" if ok else "error", "model": self.cfg.model_name, "running": running,
                             "waiting": waiting}, status_code=200 if ok else 503)

    async def prometheus(self, request: Request) -> PlainTextResponse:
        if self.access.required:
            self.authenticate(request)
        return PlainTextResponse(self.metrics.render(), media_type=CONTENT_TYPE)

    async def models(self, request: Request) -> dict:
        self.authenticate(request)
        card = ModelCard(id=self.cfg.model_name, created=self.cfg.created, max_model_len=self.cfg.limits.context)
        return ModelList(data=[card]).model_dump(mode="json")

    async def completions(self, request: Request):
        return await self.generate(request, "completion")

    async def chat(self, request: Request):
        return await self.generate(request, "chat")

    # ------------------------------------------------------------------ one completion
    async def generate(self, request: Request, kind: str):
        call = Call(request, kind)
        try:
            await self._admit(call)
        except ApiError as e:
            self.audit(call, e.status, error=e.code or e.message)
            raise
        except ClientGone as e:  # logged once, by client_gone (or the connection's timeout)
            self.audit(call, 408 if e.timed_out else 499, error=str(e), log_line=False)
            raise
        if call.parsed.stream:
            chunks = Chunks(kind, call.head(self.cfg.model_name), call.parsed.include_usage)
            return StreamingResponse(self._stream(call, chunks), media_type="text/event-stream", headers=SSE_HEADERS)
        return await self._answer(call)

    async def _admit(self, call: Call) -> None:
        """Everything before the engine: auth, body, validation, tokens, limits; then submit."""
        call.key = self.authenticate(call.request)
        call.parsed = p = parse(await read_json(call.request, self.cfg.max_body_bytes), call.kind, self.cfg.limits)
        if p.model != self.cfg.model_name:
            raise ApiError(404, f"the model '{p.model}' does not exist; this server serves '{self.cfg.model_name}'",
                           param="model", code="model_not_found")
        ids = encode(self.tokenizer, p, self.engine.vocab_size)
        params = check_lengths(p, len(ids), self.cfg.limits)
        call.reserved = len(ids) + params.max_tokens
        self._take_rate_limit(call)
        call.req = GenRequest(prompt_ids=ids, params=params, loop=asyncio.get_running_loop())
        self._submit(call)

    def _take_rate_limit(self, call: Call) -> None:
        if self.access.limiter is None:
            return
        d = self.access.limiter.acquire(call.key, call.reserved)
        if not d.allowed:
            raise ApiError(429, f"rate limit: {d.reason}", code="rate_limit_exceeded", type="rate_limit_error",
                           headers={"Retry-After": retry_after(d.retry_after_s)})

    def _submit(self, call: Call) -> None:
        try:
            self.engine.submit(call.req)
        except (Overloaded, RuntimeError) as e:
            if self.access.limiter is not None:
                self.access.limiter.charge(call.key, -call.reserved)  # nothing was generated: give the tokens back
            if isinstance(e, Overloaded):
                raise ApiError(503, f"server overloaded ({e}); retry later", code="overloaded",
                               headers={"Retry-After": "1"}) from None
            raise ApiError(503, str(e), code="unavailable") from None

    async def _answer(self, call: Call) -> dict:
        """A non-streamed answer: wait for the whole text (cancel if the client leaves)."""
        try:
            text = await _collect(call.req, call.request)
        finally:
            self._settle(call)
        if call.req.finish_reason == "error":
            raise ApiError(500, "generation failed inside the server", code="internal_error")
        return final(call.kind, call.head(self.cfg.model_name), text, call.req.finish_reason, call.usage())

    async def _stream(self, call: Call, chunks: Chunks):
        """The SSE body: a role chunk (chat), text chunks as tokens arrive, the finish, usage, [DONE]."""
        req, finished = call.req, False
        try:
            if call.kind == "chat":
                yield chunks.role()
            while True:
                kind, value, _ = await req.events.get()
                if kind == "token":
                    yield _texts_ready(req, value, chunks)
                    continue
                finished = True
                yield self._ending(call, value, chunks)
                return
        finally:
            if not finished:  # the client went away mid-stream: free the slot for others
                req.cancel()
            self._settle(call)

    def _ending(self, call: Call, reason: str, chunks: Chunks) -> str:
        if reason == "error":
            out = [chunks.error(ApiError(500, "generation failed inside the server", code="internal_error").body())]
        else:
            out = [chunks.finish(reason)]
        if call.parsed.include_usage:
            out.append(chunks.usage(call.usage()))
        return "".join(out + [chunks.done()])

    # ------------------------------------------------------------------ after the engine
    def _settle(self, call: Call) -> None:
        """Charge the real token count to the rate limit and write the audit record."""
        req = call.req
        if self.access.limiter is not None and call.key is not None:
            self.access.limiter.charge(call.key, len(req.prompt_ids) + req.output_tokens - call.reserved)
        status = 499 if req.cancelled and req.finish_reason in (None, "cancelled") else (
            500 if req.finish_reason == "error" else 200)
        self.audit(call, status, completion=req.text)

    def audit(self, call: Call, status: int, error: str | None = None, completion: str | None = None,
              log_line: bool = True) -> None:
        """One line in the server log (no content) and, with --audit-log, one record in the audit file."""
        req, request = call.req, call.request
        n_prompt, n_out = (len(req.prompt_ids), req.output_tokens) if req else (None, None)
        if log_line:
            log.info("%s %s key=%s status=%d prompt_tokens=%s completion_tokens=%s", request.method,
                     call.endpoint, call.key, status, n_prompt, n_out)
        if self.access.audit is None:
            return
        self.access.audit.record(
            key_name=call.key, client=request.client.host if request.client else None, endpoint=call.endpoint,
            status=status, prompt_tokens=n_prompt, completion_tokens=n_out, latency_s=time.perf_counter() - call.t0,
            model=self.cfg.model_name, request_id=str(req.id) if req else None, error=error,
            prompt=call.parsed.prompt if call.parsed is not None else None, completion=completion)


def client_gone(request: Request, e: ClientGone) -> None:
    """One log line for a client that left while sending its body (a timeout was logged where it fired)."""
    if not e.timed_out:
        log.info("client disconnected while sending its request body: %s %s, %d bytes received", request.method,
                 request.url.path, e.received, extra=limited)


async def _collect(req: GenRequest, request: Request) -> str:
    """All text of ``req``; cancels it (and returns "") when the client disconnects."""
    parts = []
    while True:
        try:
            kind, value, _ = await asyncio.wait_for(req.events.get(), timeout=1.0)
        except asyncio.TimeoutError:
            if await request.is_disconnected():
                req.cancel()
                return ""
            continue
        if kind == "done":
            return "".join(parts)
        parts.append(value)


def _texts_ready(req: GenRequest, first: str, chunks: Chunks) -> str:
    """``first`` and the tokens already queued behind it, as one write."""
    out = [chunks.text(first)]
    while not req.events.empty():
        event = req.events.get_nowait()
        if event[0] != "token":
            req.events.put_nowait(event)  # "done" is always last: putting it back keeps the order
            break
        out.append(chunks.text(event[1]))
    return "".join(out)
