"""Continuous batching: one background thread owns the model and advances every running request by
one token per step, in one batched forward over the slots of a static KV cache.

New requests wait in a queue; at each step the engine admits as many as there are free slots
(prefill, first token), then decodes all running ones together. Weights are read once per step
whatever the batch, so output tokens/s grows with concurrency until compute saturates. A request
leaves its slot on end-of-sequence, a stop string, its token budget, or cancellation (client gone);
the slot is reused at once. Events reach the asyncio side through ``loop.call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import threading
import time
from dataclasses import dataclass, field

import torch

from aipc.engines.sampling import SamplingParams, TextStream, eos_ids, sample

log = logging.getLogger("aipc.serve")
_ids = itertools.count()


class Overloaded(Exception):
    """The waiting queue is full."""


@dataclass(eq=False)
class Request:
    """One generation request; the engine thread fills in the timing fields."""

    prompt_ids: list[int]
    params: SamplingParams
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue = field(default_factory=asyncio.Queue)  # ("token", text, id) / ("done", reason, None)
    id: int = field(default_factory=lambda: next(_ids))
    cancelled: bool = False
    t_submit: float = 0.0
    t_first: float | None = None
    t_done: float | None = None
    output_tokens: int = 0
    finish_reason: str | None = None
    text: str = ""
    # engine-private state
    slot: int = -1
    pos: int = 0
    last: int = 0
    stream: TextStream | None = None
    gen: torch.Generator | None = None

    def cancel(self) -> None:
        """Ask the engine to drop this request at its next step (the client went away)."""
        self.cancelled = True


class Engine:
    """The batching scheduler around a runner (FastLM, or HFRunner for other architectures)."""

    def __init__(self, runner, tokenizer, *, model=None, max_queue: int = 256, max_prefill_per_step: int = 8,
                 metrics=None):
        self.runner = runner
        self.tokenizer = tokenizer
        self.eos = eos_ids(tokenizer, model)
        self.max_queue = max_queue
        self.max_prefill_per_step = max_prefill_per_step
        self.metrics = metrics
        self.slots: list[Request | None] = [None] * runner.max_batch
        self.pending: collections.deque[Request] = collections.deque()
        self.cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.steps = 0
        self.error: BaseException | None = None
        self._outbox: list[tuple[Request, tuple]] = []

    # ------------------------------------------------------------------ public API (any thread)
    @property
    def max_len(self) -> int:
        return self.runner.max_len

    @property
    def vocab_size(self) -> int:
        return self.runner.vocab_size

    @property
    def started(self) -> bool:
        """True once :meth:`start` has run (the engine thread may have ended since)."""
        return self._thread is not None

    def start(self) -> None:
        """Start the engine thread; calling it again is a no-op."""
        with self.cond:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="aipc-engine", daemon=True)
        self._thread.start()

    def submit(self, req: Request) -> None:
        """Queue a request; raises Overloaded when the queue is full, RuntimeError when stopping."""
        with self.cond:
            if self._stopping or self.error is not None:
                raise RuntimeError("the server is shutting down")
            if len(self.pending) >= self.max_queue:
                raise Overloaded(f"{len(self.pending)} requests already waiting")
            req.t_submit = time.perf_counter()
            self.pending.append(req)
            self.cond.notify()

    def stop(self, timeout: float | None = None) -> None:
        """Finish running and queued requests, then stop the thread."""
        with self.cond:
            self._stopping = True
            self.cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)

    def load(self) -> tuple[int, int]:
        """(running, waiting) request counts."""
        return sum(r is not None for r in self.slots), len(self.pending)

    # ------------------------------------------------------------------ engine thread
    def _run(self) -> None:
        try:
            while True:
                with self.cond:
                    while not self.pending and not any(self.slots) and not self._stopping:
                        self.cond.wait()
                    if self._stopping and not self.pending and not any(self.slots):
                        return
                self._admit()
                if any(self.slots):
                    self._step()
        except BaseException as e:  # a bug must not leave clients hanging forever
            log.exception("engine stopped by an error")
            self.error = e
            for r in [*self.slots, *self.pending]:
                if r is not None:
                    self._finish(r, "error")
            self._flush()

    def _admit(self) -> None:
        for _ in range(self.max_prefill_per_step):
            with self.cond:
                free = next((i for i, r in enumerate(self.slots) if r is None), None)
                if free is None or not self.pending:
                    return
                req = self.pending.popleft()
            if req.cancelled:
                self._finish(req, "cancelled")
                self._flush()
                continue
            req.slot, req.pos = free, len(req.prompt_ids)
            self.slots[free] = req  # first: if anything below fails, the error path finishes it too
            req.stream = TextStream(self.tokenizer, tuple(req.params.stop))
            req.gen = req.params.generator(self.runner.device)
            logits = self.runner.prefill(free, torch.tensor(req.prompt_ids, device=self.runner.device))
            self._accept(req, sample(logits, req.params, req.gen))
            self._flush()

    def _step(self) -> None:
        active = [i for i, r in enumerate(self.slots) if r is not None]
        n = active[-1] + 1  # idle slots below n ride along (position 0) and are ignored
        tokens, pos = [0] * n, [0] * n
        for i in active:
            tokens[i], pos[i] = self.slots[i].last, self.slots[i].pos
        logits = self.runner.decode(torch.tensor(tokens), torch.tensor(pos), active=active)
        self.steps += 1
        if self.metrics is not None:
            self.metrics.observe_batch(len(active))
        greedy = logits.argmax(-1).tolist()
        for i in active:
            r = self.slots[i]
            r.pos += 1
            if r.cancelled:
                self._finish(r, "cancelled")
                continue
            tok = greedy[i] if r.params.greedy else sample(logits[i], r.params, r.gen)
            self._accept(r, tok)
        self._flush()

    def _accept(self, r: Request, tok: int) -> None:
        """Record one sampled token for ``r``: emit its text, or finish the request."""
        now = time.perf_counter()
        if r.t_first is None:
            r.t_first = now
        if tok in self.eos and not r.params.ignore_eos:
            return self._finish(r, "stop")
        r.output_tokens += 1
        r.last = tok
        delta = r.stream.push(tok)
        if r.stream.stopped:
            self._emit(r, ("token", delta, tok))
            return self._finish(r, "stop")
        budget = min(r.params.max_tokens, self.runner.max_len - len(r.prompt_ids))
        if r.output_tokens >= budget:
            self._emit(r, ("token", delta + r.stream.finish(), tok))
            return self._finish(r, "length")
        self._emit(r, ("token", delta, tok))

    def _finish(self, r: Request, reason: str) -> None:
        if r.stream is not None and reason == "stop" and not r.stream.stopped:
            tail = r.stream.finish()
            if tail:
                self._emit(r, ("token", tail, None))
        r.finish_reason, r.t_done = reason, time.perf_counter()
        r.text = r.stream.text if r.stream is not None else ""
        if 0 <= r.slot < len(self.slots) and self.slots[r.slot] is r:
            self.slots[r.slot] = None
            self.runner.free(r.slot)
        if self.metrics is not None:
            self.metrics.observe_request(r)
        self._emit(r, ("done", reason, None))

    def _emit(self, r: Request, event: tuple) -> None:
        self._outbox.append((r, event))

    def _flush(self) -> None:
        """Hand this step's events to their event loops: one cross-thread wake-up per loop, not per token."""
        if not self._outbox:
            return
        by_loop: dict = {}
        for r, ev in self._outbox:
            by_loop.setdefault(r.loop, []).append((r, ev))
        self._outbox = []
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(_deliver, items)
            except RuntimeError:  # the event loop is closed: nobody is listening any more
                for r, _ in items:
                    r.cancelled = True


def _deliver(items: list) -> None:
    for r, ev in items:
        r.events.put_nowait(ev)
