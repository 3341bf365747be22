"""OpenAI-compatible requests as pydantic models, and OpenAI-style errors.

Every problem with a request becomes an :class:`ApiError` carrying the HTTP status and the JSON body
``{"error": {"message", "type", "param", "code"}}`` that OpenAI's clients understand. Validation is
strict (no "3" for 3, no true for 1); unknown fields are ignored, as OpenAI's own server does.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from aipc.engines.sampling import SamplingParams

MAX_STOP = 4
ROLES = ("system", "user", "assistant", "developer", "tool")


class ApiError(Exception):
    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 type: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.type = type or ("invalid_request_error" if status < 500 else "server_error")
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


@dataclass(frozen=True)
class Limits:
    max_prompt_tokens: int          # longest prompt accepted
    max_tokens: int                 # largest max_tokens accepted
    context: int                    # prompt + completion must fit this (the KV cache length)
    default_completion_tokens: int = 16


def _refuse(code: str, message: str) -> PydanticCustomError:
    """A validation error whose ``code`` reaches the client as the OpenAI error code."""
    return PydanticCustomError(code, message)


class StreamOptions(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")
    include_usage: bool | None = None


class _Request(BaseModel):
    """The fields completions and chat share."""

    model_config = ConfigDict(strict=True, extra="ignore", allow_inf_nan=False)

    model: str = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, ge=1e-9, le=1.0)
    top_k: int | None = Field(None, ge=-1, le=1 << 20)  # -1 (vLLM) and 0 mean no top-k
    seed: int | None = Field(None, ge=-(1 << 63), le=(1 << 63) - 1)
    stop: Any = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    ignore_eos: bool | None = None
    n: Any = None
    presence_penalty: Any = None
    frequency_penalty: Any = None
    logprobs: Any = None
    echo: Any = None
    tools: Any = None
    functions: Any = None

    @field_validator("max_tokens", "max_completion_tokens", check_fields=False)
    @classmethod
    def _within_server_limit(cls, v: int | None, info: ValidationInfo) -> int | None:
        limits = (info.context or {}).get("limits")
        if v is not None and limits is not None and v > limits.max_tokens:
            raise _refuse("invalid_value", f"must be at most {limits.max_tokens} on this server")
        return v

    @field_validator("stop")
    @classmethod
    def _stop(cls, v: Any) -> tuple[str, ...]:
        if v is None:
            return ()
        v = [v] if isinstance(v, str) else v
        if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
            raise _refuse("invalid_type", "must be a string or a list of strings")
        if len(v) > MAX_STOP:
            raise _refuse("invalid_value", f"takes at most {MAX_STOP} strings")
        return tuple(s for s in v if s)

    @field_validator("n")
    @classmethod
    def _one_choice(cls, v: Any) -> Any:
        if v is not None and (isinstance(v, bool) or v != 1):
            raise _refuse("unsupported", "must be 1: only one choice per request is supported")
        return v

    @field_validator("presence_penalty", "frequency_penalty")
    @classmethod
    def _no_penalty(cls, v: Any) -> Any:
        if v not in (None, 0, 0.0) or isinstance(v, bool):
            raise _refuse("unsupported", "is not supported; leave it unset or 0")
        return v

    @field_validator("logprobs", "echo", "tools", "functions")
    @classmethod
    def _unsupported(cls, v: Any, info: ValidationInfo) -> Any:
        if v not in (None, False, 0, [], {}):
            what = " (no tools or function calling)" if info.field_name in ("tools", "functions") else ""
            raise _refuse("unsupported", f"is not supported{what}")
        return v

    def sampling(self, max_tokens: int | None) -> SamplingParams:
        return SamplingParams(
            max_tokens=max_tokens or 1,  # the real default is set once the prompt length is known
            temperature=1.0 if self.temperature is None else self.temperature,
            top_p=1.0 if self.top_p is None else self.top_p,
            top_k=max(0, self.top_k or 0), seed=self.seed, stop=self.stop or (), ignore_eos=bool(self.ignore_eos))


class CompletionRequest(_Request):
    """POST /v1/completions: one prompt, a string or token ids (a batch of one is unwrapped)."""

    prompt: Any

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, v: Any) -> str | list[int]:
        if isinstance(v, list) and len(v) == 1 and isinstance(v[0], (str, list)):
            v = v[0]  # a batch of one
        if isinstance(v, str):
            if not v:
                raise _refuse("invalid_value", "is empty")
            return v
        if isinstance(v, list) and v and all(isinstance(t, int) and not isinstance(t, bool) for t in v):
            return v
        raise _refuse("invalid_type", "must be a non-empty string or list of token ids (one prompt per request)")


class ChatMessage(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    role: Literal[ROLES]  # type: ignore[valid-type]
    content: Any = None

    @field_validator("content")
    @classmethod
    def _text(cls, v: Any) -> str:
        if isinstance(v, list):  # [{"type": "text", "text": ...}, ...]
            if not all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in v):
                raise _refuse("unsupported", "must hold text parts only")
            return "".join(p["text"] for p in v)
        if not isinstance(v, str):
            raise _refuse("invalid_type", "must be a string or a list of text parts")
        return v

    def as_template_input(self) -> dict:
        return {"role": "system" if self.role == "developer" else self.role, "content": self.content}


class ChatRequest(_Request):
    """POST /v1/chat/completions."""

    messages: list[ChatMessage]
    max_completion_tokens: int | None = Field(None, ge=1)

    @field_validator("messages", mode="before")
    @classmethod
    def _non_empty(cls, v: Any) -> Any:
        if not isinstance(v, list) or not v:
            raise _refuse("invalid_type", "must be a non-empty list of {role, content}")
        return v


@dataclass
class Parsed:
    kind: str                       # completion | chat
    model: str
    prompt: Any                     # str, or list[int] (completions), or messages (chat)
    params: SamplingParams
    stream: bool
    include_usage: bool
    max_tokens_given: bool


_CODES = {"missing": "missing_required_parameter", "model_type": "invalid_json", "dict_type": "invalid_type",
                 "model_attributes_type": "invalid_json"}


def _param(loc: tuple) -> str | None:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or None


def _api_error(e: ValidationError) -> ApiError:
    """The first problem pydantic found, as a 400 with the field as ``param``."""
    err = e.errors(include_url=False)[0]
    kind, param = err["type"], _param(err["loc"])
    code = _CODES.get(kind) or (
        "invalid_type" if kind.endswith("_type") or kind in ("int_from_float", "is_instance_of") else
        kind if kind in ("unsupported", "invalid_value") else "invalid_value")
    if param is None:
        return ApiError(400, "the request body must be a JSON object", code="invalid_json")
    if kind == "missing":
        return ApiError(400, f"'{param}' is required", param=param, code=code)
    got = err.get("input")
    shown = f", got {got!r}"[:80] if isinstance(got, (int, float, str)) else ""
    return ApiError(400, f"'{param}' {err['msg'].removeprefix('Input ')}{shown}", param=param, code=code)


def parse(body: Any, kind: str, limits: Limits) -> Parsed:
    """Validate an OpenAI completions (``kind='completion'``) or chat (``'chat'``) request body."""
    cls = ChatRequest if kind == "chat" else CompletionRequest
    try:
        r = cls.model_validate(body, context={"limits": limits})
    except ValidationError as e:
        raise _api_error(e) from None
    if kind == "chat":
        prompt = [m.as_template_input() for m in r.messages]
        max_tokens = r.max_completion_tokens if r.max_completion_tokens is not None else r.max_tokens
    else:
        prompt, max_tokens = r.prompt, r.max_tokens
    so = r.stream_options or StreamOptions()
    return Parsed(kind=kind, model=r.model, prompt=prompt, params=r.sampling(max_tokens), stream=bool(r.stream),
                  include_usage=bool(so.include_usage), max_tokens_given=max_tokens is not None)


def check_lengths(p: Parsed, n_prompt: int, limits: Limits) -> SamplingParams:
    """The request's sampling params with max_tokens settled; 400 when the prompt does not fit."""
    where = "messages" if p.kind == "chat" else "prompt"
    if n_prompt > limits.max_prompt_tokens:
        raise ApiError(400, f"the prompt has {n_prompt} tokens; this server accepts at most "
                       f"{limits.max_prompt_tokens}", param=where, code="context_length_exceeded")
    room = limits.context - n_prompt
    if room < 1:
        raise ApiError(400, f"the prompt has {n_prompt} tokens and leaves no room in the context of {limits.context}",
                       param=where, code="context_length_exceeded")
    if p.max_tokens_given:
        if p.params.max_tokens > room:
            raise ApiError(400, f"max_tokens {p.params.max_tokens} + prompt {n_prompt} tokens exceeds the context of "
                           f"{limits.context}; ask for at most {room}", param="max_tokens",
                           code="context_length_exceeded")
        return p.params
    default = limits.default_completion_tokens if p.kind == "completion" else limits.max_tokens
    return dataclasses.replace(p.params, max_tokens=max(1, min(default, room)))
