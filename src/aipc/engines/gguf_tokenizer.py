"""An HF-like tokenizer over a GGUF model's own vocabulary: llama.cpp tokenizes and detokenizes, and
the chat template stored in the GGUF is rendered with jinja2 the way transformers renders it
(sandboxed, ``trim_blocks``/``lstrip_blocks``, ``raise_exception``, ``tojson``, ``strftime_now``).

What aipc's generate / serve / engine code calls: ``__call__(text, add_special_tokens)``,
``decode(ids, skip_special_tokens)``, ``eos_token_id``, ``chat_template``, ``apply_chat_template``.
"""

from __future__ import annotations

import ctypes
import datetime
import json

from aipc.engines.llamacpp_lib import lib


class GGUFTokenizer:
    def __init__(self, model):
        ll = lib()
        self._ll = ll
        self._model = model  # kept alive with the tokenizer
        self.vocab = ll.llama_model_get_vocab(model)
        self.vocab_size = ll.llama_vocab_n_tokens(self.vocab)
        self.eos_token_id = _tok(ll.llama_vocab_eos(self.vocab))
        self.bos_token_id = _tok(ll.llama_vocab_bos(self.vocab))
        self.eos_token = self._text(self.eos_token_id)
        self.bos_token = self._text(self.bos_token_id)
        raw = ll.llama_model_chat_template(model, None)
        self.chat_template = raw.decode("utf-8", errors="replace") if raw else None
        self._template = None

    def __len__(self) -> int:
        return self.vocab_size

    def _text(self, tok: int | None) -> str | None:
        if tok is None:
            return None
        raw = self._ll.llama_vocab_get_text(self.vocab, tok)
        return raw.decode("utf-8", errors="replace") if raw else ""

    def end_of_generation_ids(self) -> list[int]:
        """Every token llama.cpp treats as end of generation (EOS, EOT, <|im_end|>, ...)."""
        is_eog = self._ll.llama_vocab_is_eog
        return [t for t in range(self.vocab_size) if is_eog(self.vocab, t)]

    # ------------------------------------------------------------------ text <-> ids
    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        data = text.encode("utf-8")
        n_max = len(data) + 8
        buf = (ctypes.c_int32 * n_max)()
        n = self._ll.llama_tokenize(self.vocab, data, len(data), buf, n_max, add_special_tokens, True)
        if n < 0:  # the buffer was too small: -n tokens needed
            n_max = -n
            buf = (ctypes.c_int32 * n_max)()
            n = self._ll.llama_tokenize(self.vocab, data, len(data), buf, n_max, add_special_tokens, True)
        if n < 0:
            raise ValueError(f"llama.cpp could not tokenize a text of {len(data)} bytes")
        return list(buf[:n])

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict:
        return {"input_ids": self.encode(text, add_special_tokens=add_special_tokens)}

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        ids = [int(i) for i in (ids if isinstance(ids, (list, tuple)) else list(ids))]
        if not ids:
            return ""
        arr = (ctypes.c_int32 * len(ids))(*ids)
        size = 16 * len(ids) + 16
        for _ in range(2):
            out = ctypes.create_string_buffer(size)
            n = self._ll.llama_detokenize(self.vocab, arr, len(ids), out, size, False, not skip_special_tokens)
            if n >= 0:
                return out.raw[:n].decode("utf-8", errors="replace")
            size = -n + 1
        raise ValueError("llama.cpp could not detokenize")

    # ------------------------------------------------------------------ chat
    def apply_chat_template(self, messages: list[dict], tokenize: bool = False, add_generation_prompt: bool = True,
                            **kwargs):
        if not self.chat_template:
            raise ValueError("this GGUF has no chat template")
        if self._template is None:
            self._template = _environment().from_string(self.chat_template)
        text = self._template.render(messages=messages, add_generation_prompt=add_generation_prompt,
                                     bos_token=self.bos_token or "", eos_token=self.eos_token or "", **kwargs)
        return self.encode(text, add_special_tokens=False) if tokenize else text


def _tok(t: int) -> int | None:
    return int(t) if t is not None and t >= 0 else None


def _raise(message: str):
    from jinja2.exceptions import TemplateError

    raise TemplateError(message)


def _environment():
    """jinja2 as transformers sets it up for chat templates."""
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = lambda x, indent=None, separators=None, sort_keys=False: json.dumps(
        x, ensure_ascii=False, indent=indent, separators=separators, sort_keys=sort_keys)
    env.globals["raise_exception"] = _raise
    env.globals["strftime_now"] = lambda fmt: datetime.datetime.now().strftime(fmt)
    return env
