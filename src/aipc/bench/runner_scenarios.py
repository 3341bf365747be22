"""Bench scenarios over an engine's runner (contract 2: ``prefill``, ``decode1``, ``free``): the same
definitions as the torch scenarios (aipc.bench.scenarios.DEFINITIONS), for engines that are not torch
modules (llama.cpp). One call of ``Prepared.fn`` is one sample.

- ``prefill``: the b x p prompt into slots 0..b-1 from position 0 (the runner frees a slot first); the
  logits of each prompt's last position are produced (TTFT's compute).
- ``decode``: one token per sequence against a cache of p..p+g-2 tokens; every g-1 steps a fresh
  prefill (untimed, in ``before``) resets the caches to p. Its median is TPOT.
- ``generate``: one greedy request per sequence: prefill, the first token (TTFT), g-1 decode steps.
"""

from __future__ import annotations

import time

from aipc.bench.scenarios import Prepared


def _ids(vocab: int, batch: int, length: int, seed: int = 0) -> list[list[int]]:
    """Deterministic token ids in [4, vocab) (a small LCG: no torch, no numpy needed)."""
    out, x = [], seed * 7919 + 1
    for _ in range(batch):
        row = []
        for _ in range(length):
            x = (1103515245 * x + 12345) % 2**31
            row.append(4 + x % max(vocab - 4, 1))
        out.append(row)
    return out


def _argmax(logits) -> int:
    return int(logits.argmax())


def _prefill_all(runner, prompts) -> list[int]:
    """Prefill every prompt into its slot; the greedy next token of each."""
    import torch

    return [_argmax(runner.prefill(slot, torch.tensor(ids))) for slot, ids in enumerate(prompts)]


def prepare_prefill(runner, *, batch: int, prompt: int, vocab: int) -> Prepared:
    prompts = _ids(vocab, batch, prompt)
    return Prepared(fn=lambda: _prefill_all(runner, prompts), tokens_per_sample=batch * prompt,
                    cleanup=lambda: [runner.free(s) for s in range(batch)])


def prepare_decode(runner, *, batch: int, prompt: int, gen: int, vocab: int) -> Prepared:
    prompts = _ids(vocab, batch, prompt)
    span = max(gen - 1, 1)
    state = {"steps": span, "tok": [], "pos": prompt}

    def before():
        if state["steps"] >= span:
            state["tok"], state["pos"], state["steps"] = _prefill_all(runner, prompts), prompt, 0

    def step():
        state["tok"] = [_argmax(runner.decode1(t, state["pos"], slot=s)) for s, t in enumerate(state["tok"])]
        state["pos"] += 1
        state["steps"] += 1

    return Prepared(fn=step, tokens_per_sample=batch, before=before,
                    cleanup=lambda: [runner.free(s) for s in range(batch)])


def prepare_generate(runner, *, batch: int, prompt: int, gen: int, vocab: int) -> Prepared:
    prompts = _ids(vocab, batch, prompt)
    ttft: list[float] = []

    def request():
        t0 = time.perf_counter()
        toks = _prefill_all(runner, prompts)
        ttft.append(time.perf_counter() - t0)
        for i in range(gen - 1):
            toks = [_argmax(runner.decode1(t, prompt + i, slot=s)) for s, t in enumerate(toks)]

    return Prepared(fn=request, tokens_per_sample=batch * gen, extra_samples={"ttft_s": ttft},
                    cleanup=lambda: [runner.free(s) for s in range(batch)])


def prepare(scenario: str, runner, *, shape: dict, vocab: int) -> Prepared:
    b, p, g = shape["batch"], shape["prompt"], shape["gen"]
    if scenario == "prefill":
        return prepare_prefill(runner, batch=b, prompt=p, vocab=vocab)
    if scenario == "decode":
        return prepare_decode(runner, batch=b, prompt=p, gen=g, vocab=vocab)
    if scenario == "generate":
        return prepare_generate(runner, batch=b, prompt=p, gen=g, vocab=vocab)
    from aipc.errors import AipcError

    raise AipcError(f"scenario '{scenario}' is not measured through an inference engine; use prefill, decode "
                    "or generate (train runs on --engine torch)")
