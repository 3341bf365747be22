"""Choosing the next token (greedy, temperature, top-k, top-p, seed) and turning tokens into text
with stop strings, safely for streaming.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass(frozen=True, kw_only=True)
class SamplingParams:
    """How one request picks tokens and when it stops. ``temperature == 0`` means greedy."""

    max_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0                  # 0 = no top-k filter
    seed: int | None = None
    stop: tuple[str, ...] = ()      # stop strings; the text returned ends before the first one
    ignore_eos: bool = False        # keep going past the end-of-sequence token (benchmarks)

    def __post_init__(self):
        if self.max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        if self.temperature < 0:
            raise ValueError("temperature must be >= 0")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")
        if self.top_k < 0:
            raise ValueError("top_k must be >= 0")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0 or self.top_k == 1

    def generator(self, device="cpu") -> torch.Generator | None:
        """A generator seeded from ``seed`` (None when unseeded: torch's global RNG is used)."""
        if self.seed is None or self.greedy:
            return None
        g = torch.Generator(device=device)
        g.manual_seed(int(self.seed))
        return g


def sample(logits: torch.Tensor, p: SamplingParams, gen: torch.Generator | None = None) -> int:
    """The next token id from one row of logits (V,).

    Greedy: argmax. Otherwise softmax(logits / temperature), keep the ``top_k`` largest, then the
    smallest set whose probability mass reaches ``top_p``, renormalise and draw one.
    """
    if p.greedy:
        if logits.device.type == "cpu" and logits.dtype == torch.float32:
            return int(logits.detach().numpy().argmax())  # the same first maximum, ~6 us against torch's ~80
        return int(torch.argmax(logits))
    x = logits.float() / p.temperature
    if p.top_k and p.top_k < x.shape[-1]:
        kth = torch.topk(x, p.top_k).values[-1]
        x = x.masked_fill(x < kth, float("-inf"))
    if p.top_p < 1.0:
        sx, idx = torch.sort(x, descending=True)
        probs = torch.softmax(sx, dim=-1)
        drop = probs.cumsum(-1) - probs > p.top_p  # tokens after the mass is already reached
        sx = sx.masked_fill(drop, float("-inf"))
        x = torch.full_like(x, float("-inf")).scatter(-1, idx, sx)
    probs = torch.softmax(x, dim=-1)
    return int(torch.multinomial(probs, 1, generator=gen))


def eos_ids(tokenizer, model=None) -> set[int]:
    """End-of-sequence ids from the generation config and the tokenizer."""
    ids: set[int] = set()
    gc = getattr(model, "generation_config", None) if model is not None else None
    for src in (getattr(gc, "eos_token_id", None), getattr(tokenizer, "eos_token_id", None)):
        if isinstance(src, int):
            ids.add(src)
        elif isinstance(src, (list, tuple)):
            ids.update(int(i) for i in src)
    return ids


@dataclass
class TextStream:
    """Incremental detokenizer with stop strings.

    ``push(token_id)`` returns the new text that is safe to show: text that is not a possible start
    of a stop string and does not end inside a multi-byte character. ``stopped`` turns True when a
    stop string appears; the text never includes it. ``finish()`` returns what was held back.
    """

    tokenizer: object
    stop: tuple[str, ...] = ()
    ids: list[int] = field(default_factory=list)
    text: str = ""         # all decoded text so far (up to a stop string once stopped)
    sent: int = 0          # characters of ``text`` already returned
    stopped: bool = False
    _prefix: int = 0       # ids[_prefix:_read] give context for decoding ids[_read:] (O(n) overall)
    _read: int = 0

    def push(self, token_id: int) -> str:
        if self.stopped:
            return ""
        self.ids.append(int(token_id))
        dec = self.tokenizer.decode
        before = dec(self.ids[self._prefix:self._read], skip_special_tokens=True)
        now = dec(self.ids[self._prefix:], skip_special_tokens=True)
        if now.endswith("\ufffd") or len(now) < len(before):  # inside a multi-byte character: wait
            return ""
        text = self.text + now[len(before):]
        self._prefix, self._read = self._read, len(self.ids)
        self.text = text
        hits = [at for at in (text.find(s, self.sent) for s in self.stop if s) if at != -1]
        if hits:
            self.text, self.stopped = text[:min(hits)], True
        if self.stopped:
            return self._flush()
        hold = max((self._partial(s) for s in self.stop), default=0)
        end = len(self.text) - hold
        if end <= self.sent:
            return ""
        out, self.sent = self.text[self.sent:end], end
        return out

    def _partial(self, s: str) -> int:
        """Length of the longest proper prefix of ``s`` that the text ends with."""
        for n in range(min(len(s) - 1, len(self.text)), 0, -1):
            if self.text.endswith(s[:n]):
                return n
        return 0

    def _flush(self) -> str:
        out, self.sent = self.text[self.sent:], len(self.text)
        return out

    def finish(self) -> str:
        """The held-back tail once generation ended without a stop string (incomplete bytes too)."""
        if not self.stopped and self._read < len(self.ids):
            dec = self.tokenizer.decode
            before = dec(self.ids[self._prefix:self._read], skip_special_tokens=True)
            now = dec(self.ids[self._prefix:], skip_special_tokens=True)
            self.text += now[len(before):]
            self._prefix = self._read = len(self.ids)
        return self._flush()
