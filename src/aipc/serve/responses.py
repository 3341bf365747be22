"""OpenAI-compatible response bodies as pydantic models: completions, chat completions, their
streaming chunks (Server-Sent Events), the model list and the usage block."""

from __future__ import annotations

import json
from typing import Any, Generic, Literal, Optional, TypeVar

from pydantic import BaseModel, create_model


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @classmethod
    def of(cls, prompt_tokens: int, completion_tokens: int) -> Usage:
        return cls(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                   total_tokens=prompt_tokens + completion_tokens)


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


def _choice(name: str, content: str, kind: Any, finish_reason: Any = ...) -> type[BaseModel]:
    """One choice of an answer, in this key order: its index, its ``content`` field (``text``, ``message``
    or ``delta``), no logprobs, and why it ended (required unless ``finish_reason`` gives a default)."""
    return create_model(name, index=(int, 0), **{content: (kind, ...)}, logprobs=(None, None),
                        finish_reason=(Optional[str], finish_reason))


CompletionChoice = _choice("CompletionChoice", "text", str)
ChatChoice = _choice("ChatChoice", "message", AssistantMessage)
# delta: {"role": "assistant", "content": ""} first, then {"content": text}, {} at the end
ChunkChoice = _choice("ChunkChoice", "delta", dict[str, str], None)
Choice = TypeVar("Choice", bound=BaseModel)


class _Body(BaseModel, Generic[Choice]):
    """What every answer and chunk carries, in this key order (a subclass that narrows ``object`` or
    ``usage`` keeps the field's place)."""

    id: str
    created: int
    model: str
    object: str
    choices: list[Choice]
    usage: Usage | None = None


class Completion(_Body[CompletionChoice]):
    object: Literal["text_completion"] = "text_completion"


class ChatCompletion(_Body[ChatChoice]):
    object: Literal["chat.completion"] = "chat.completion"
    usage: Usage


class ChatCompletionChunk(_Body[ChunkChoice]):
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "aipc"
    max_model_len: int


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


def final(kind: str, head: dict, text: str, finish_reason: str | None, usage: Usage) -> dict:
    """The body of a non-streamed answer; ``head`` is {id, created, model}."""
    if kind == "chat":
        choice = ChatChoice(message=AssistantMessage(content=text), finish_reason=finish_reason)
        return ChatCompletion(**head, choices=[choice], usage=usage).model_dump(mode="json")
    choice = CompletionChoice(text=text, finish_reason=finish_reason)
    return Completion(**head, choices=[choice], usage=usage).model_dump(mode="json")


class Chunks:
    """The SSE events of one streamed answer: ``data: {json}\\n\\n`` each, ``data: [DONE]`` last.

    With ``stream_options.include_usage`` every chunk carries ``"usage": null`` and one more chunk
    with no choices carries the usage, as OpenAI's API does.
    """

    def __init__(self, kind: str, head: dict, include_usage: bool):
        self.kind, self.head, self.include_usage = kind, head, include_usage
        self._exclude = None if include_usage else {"usage"}

    def _event(self, body: BaseModel) -> str:
        return f"data: {body.model_dump_json(exclude=self._exclude)}\n\n"

    def _chunk(self, delta: dict | None, text: str, finish: str | None) -> str:
        if self.kind == "chat":
            return self._event(ChatCompletionChunk(**self.head, choices=[
                ChunkChoice(delta=delta or {}, finish_reason=finish)]))
        return self._event(Completion(**self.head, choices=[CompletionChoice(text=text, finish_reason=finish)]))

    def role(self) -> str:
        """The opening chunk of a chat stream (the assistant role, empty content)."""
        return self._chunk({"role": "assistant", "content": ""}, "", None)

    def text(self, text: str) -> str:
        return self._chunk({"content": text}, text, None)

    def finish(self, reason: str) -> str:
        return self._chunk(None, "", reason)

    def usage(self, usage: Usage) -> str:
        cls = ChatCompletionChunk if self.kind == "chat" else Completion
        return f"data: {cls(**self.head, choices=[], usage=usage).model_dump_json()}\n\n"

    @staticmethod
    def error(body: dict) -> str:
        return f"data: {json.dumps(body)}\n\n"

    @staticmethod
    def done() -> str:
        return "data: [DONE]\n\n"
