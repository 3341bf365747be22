"""OpenAI-compatible request parsing and validation, with OpenAI-style errors.

Every problem with a request becomes an :class:`ApiError` carrying the HTTP status and the JSON body
``{"error": {"message", "type", "param", "code"}}`` that OpenAI's clients understand.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from aipc.serve.sampling import SamplingParams

MAX_STOP = 4


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


@dataclass
class Parsed:
    kind: str                       # completion | chat
    model: str
    prompt: Any                     # str, or list[int] (completions), or messages (chat)
    params: SamplingParams
    stream: bool
    include_usage: bool
    max_tokens_given: bool


def _bad(msg: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, msg, param=param, code=code)


def _number(body: dict, name: str, default: float, lo: float, hi: float) -> float:
    v = body.get(name, default)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise _bad(f"'{name}' must be a number, got {type(v).__name__}", name, "invalid_type")
    if not lo <= v <= hi:
        raise _bad(f"'{name}' must be between {lo} and {hi}, got {v}", name, "invalid_value")
    return float(v)


def _int(body: dict, name: str, default: int | None, lo: int, hi: int) -> int | None:
    v = body.get(name, default)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, int):
        raise _bad(f"'{name}' must be an integer, got {type(v).__name__}", name, "invalid_type")
    if not lo <= v <= hi:
        raise _bad(f"'{name}' must be between {lo} and {hi}, got {v}", name, "invalid_value")
    return v


def _stop(body: dict) -> tuple[str, ...]:
    v = body.get("stop")
    if v is None:
        return ()
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
        raise _bad("'stop' must be a string or a list of strings", "stop", "invalid_type")
    if len(v) > MAX_STOP:
        raise _bad(f"'stop' takes at most {MAX_STOP} strings", "stop", "invalid_value")
    return tuple(s for s in v if s)


def _unsupported(body: dict) -> None:
    n = body.get("n", 1)
    if n is not None and n != 1:
        raise _bad("only n=1 is supported", "n", "unsupported")
    for name in ("presence_penalty", "frequency_penalty"):
        v = body.get(name)
        if v not in (None, 0, 0.0):
            raise _bad(f"'{name}' is not supported; leave it unset or 0", name, "unsupported")
    if body.get("logprobs") not in (None, False, 0):
        raise _bad("'logprobs' is not supported", "logprobs", "unsupported")
    if body.get("echo"):
        raise _bad("'echo' is not supported", "echo", "unsupported")
    if body.get("tools") or body.get("functions"):
        raise _bad("tools and function calling are not supported", "tools", "unsupported")


def _messages(v: Any) -> list[dict]:
    if not isinstance(v, list) or not v:
        raise _bad("'messages' must be a non-empty list of {role, content}", "messages", "invalid_type")
    out = []
    for i, m in enumerate(v):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise _bad(f"messages[{i}] must be an object with a string 'role'", f"messages[{i}]", "invalid_type")
        if m["role"] not in ("system", "user", "assistant", "developer", "tool"):
            raise _bad(f"messages[{i}].role '{m['role']}' is not one of system, user, assistant", f"messages[{i}].role",
                       "invalid_value")
        c = m.get("content")
        if isinstance(c, list):  # [{"type": "text", "text": ...}, ...]
            if not all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in c):
                raise _bad(f"messages[{i}].content parts must be text parts", f"messages[{i}].content", "unsupported")
            c = "".join(p["text"] for p in c)
        if not isinstance(c, str):
            raise _bad(f"messages[{i}].content must be a string", f"messages[{i}].content", "invalid_type")
        out.append({"role": "system" if m["role"] == "developer" else m["role"], "content": c})
    return out


def _prompt(v: Any) -> Any:
    if isinstance(v, list) and len(v) == 1 and isinstance(v[0], (str, list)):
        v = v[0]  # a batch of one
    if isinstance(v, str):
        if not v:
            raise _bad("'prompt' is empty", "prompt", "invalid_value")
        return v
    if isinstance(v, list) and v and all(isinstance(t, int) and not isinstance(t, bool) for t in v):
        return v
    raise _bad("'prompt' must be a non-empty string or list of token ids (one prompt per request)", "prompt",
               "invalid_type")


def parse(body: Any, kind: str, limits: Limits) -> Parsed:
    """Validate an OpenAI completions (``kind='completion'``) or chat (``'chat'``) request body."""
    if not isinstance(body, dict):
        raise _bad("the request body must be a JSON object", None, "invalid_json")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("'model' is required (a string; GET /v1/models lists them)", "model", "missing_required_parameter")
    if kind == "chat":
        prompt = _messages(body.get("messages"))
        mt_name = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    else:
        if "prompt" not in body:
            raise _bad("'prompt' is required", "prompt", "missing_required_parameter")
        prompt = _prompt(body["prompt"])
        mt_name = "max_tokens"
    _unsupported(body)
    max_tokens = _int(body, mt_name, None, 1, limits.max_tokens)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _bad("'stream' must be true or false", "stream", "invalid_type")
    so = body.get("stream_options") or {}
    if not isinstance(so, dict):
        raise _bad("'stream_options' must be an object", "stream_options", "invalid_type")
    ignore_eos = body.get("ignore_eos", False)
    if not isinstance(ignore_eos, bool):
        raise _bad("'ignore_eos' must be true or false", "ignore_eos", "invalid_type")
    params = SamplingParams(
        max_tokens=max_tokens or 1,  # the real default is set once the prompt length is known
        temperature=_number(body, "temperature", 1.0, 0.0, 2.0),
        top_p=_number(body, "top_p", 1.0, 1e-9, 1.0),
        top_k=max(0, _int(body, "top_k", 0, -1, 1 << 20)),  # -1 (vLLM) and 0 mean no top-k
        seed=_int(body, "seed", None, -(1 << 63), (1 << 63) - 1),
        stop=_stop(body), ignore_eos=ignore_eos)
    return Parsed(kind=kind, model=model, prompt=prompt, params=params, stream=stream,
                  include_usage=bool(so.get("include_usage")), max_tokens_given=max_tokens is not None)


def check_lengths(p: Parsed, n_prompt: int, limits: Limits) -> SamplingParams:
    """The request's sampling params with max_tokens settled; 400 when the prompt does not fit."""
    import dataclasses

    if n_prompt > limits.max_prompt_tokens:
        raise _bad(f"the prompt has {n_prompt} tokens; this server accepts at most {limits.max_prompt_tokens}",
                   "messages" if p.kind == "chat" else "prompt", "context_length_exceeded")
    room = limits.context - n_prompt
    if room < 1:
        raise _bad(f"the prompt has {n_prompt} tokens and leaves no room in the context of {limits.context}",
                   "messages" if p.kind == "chat" else "prompt", "context_length_exceeded")
    if p.max_tokens_given:
        if p.params.max_tokens > room:
            raise _bad(f"max_tokens {p.params.max_tokens} + prompt {n_prompt} tokens exceeds the context of "
                       f"{limits.context}; ask for at most {room}", "max_tokens", "context_length_exceeded")
        return p.params
    default = limits.default_completion_tokens if p.kind == "completion" else limits.max_tokens
    return dataclasses.replace(p.params, max_tokens=max(1, min(default, room)))
