"""Fast local generation: prefill, then one token at a time over a static KV cache, with timing.

Definitions (printed with the numbers):
* TTFT — time to first token: from the start of prefill to the first token sampled (includes prefill);
* TPOT — time per output token after the first: decode time / (tokens − 1) (excludes the first token);
* decode tokens/s = 1 / TPOT;
* achieved bandwidth = (weight bytes + KV-cache bytes read per decode step) / TPOT;
* MBU = achieved bandwidth / the device's measured memory bandwidth (``aipc hw``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from aipc.measure import sync_fn
from aipc.engines.sampling import SamplingParams, TextStream, eos_ids, sample

DEFINITIONS = {
    "ttft_s": "time to first token, includes prefill",
    "tpot_s": "time per output token, excludes the first token",
    "decode_tokens_per_s": "1 / TPOT",
    "bandwidth_bytes_per_s": "(weight bytes + KV bytes read per decode step) / TPOT",
    "mbu": "achieved bandwidth / measured memory bandwidth of the device",
}


@dataclass(kw_only=True)
class GenStats:
    prompt_tokens: int
    output_tokens: int
    finish_reason: str             # stop | length
    ttft_s: float
    decode_s: float                # first token to last token
    tpot_s: float | None
    decode_tokens_per_s: float | None
    weight_bytes_per_step: int
    kv_bytes_per_step: float       # mean over the decode steps
    bandwidth_bytes_per_s: float | None
    peak_bandwidth_bytes_per_s: float | None
    bandwidth_source: str
    mbu: float | None


@dataclass
class Result:
    text: str
    token_ids: list[int]
    stats: GenStats


def encode_prompt(tokenizer, prompt: str, chat: bool = False, system: str | None = None) -> list[int]:
    """Prompt token ids; with ``chat`` the tokenizer's chat template wraps it as a user message."""
    if chat:
        if not getattr(tokenizer, "chat_template", None):
            from aipc.errors import AipcError

            raise AipcError("this model's tokenizer has no chat template; drop --chat")
        msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        return encode_messages(tokenizer, msgs)
    return list(tokenizer(prompt, add_special_tokens=True)["input_ids"])


def encode_messages(tokenizer, messages: list[dict]) -> list[int]:
    """Chat messages rendered with the tokenizer's chat template, ready for the assistant's turn."""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def measured_bandwidth(device: str) -> tuple[float | None, str]:
    """(bytes/s, source) of the device's memory bandwidth from aipc's measured hardware profile."""
    from aipc.hardware.profile import load_or_measure

    try:
        prof = load_or_measure(quick=True)
    except Exception as e:  # a failed measurement must not stop generation
        return None, f"n/a (bandwidth measurement failed: {type(e).__name__})"
    want = "this-machine:" + ("cuda:0" if device == "cuda" else device)
    for spec in prof.device_specs():
        if spec.name == want and spec.bandwidth_bytes_s:
            return float(spec.bandwidth_bytes_s), f"measured by aipc hw {prof.date} ({prof.mode}, copy bandwidth)"
    return None, f"n/a (no measured bandwidth for {device})"


def generate(runner, tokenizer, prompt_ids: list[int], params: SamplingParams, *, model=None,
             on_text: Callable[[str], None] | None = None, bandwidth: tuple[float | None, str] | None = None,
             slot: int = 0) -> Result:
    """Generate from ``prompt_ids`` with ``runner`` (FastLM or HFRunner); stream text to ``on_text``."""
    n_prompt = len(prompt_ids)
    if n_prompt < 1:
        raise ValueError("empty prompt")
    budget = min(params.max_tokens, runner.max_len - n_prompt)
    if budget < 1:
        raise ValueError(f"prompt of {n_prompt} tokens leaves no room in the context of {runner.max_len}")
    eos = set() if params.ignore_eos else eos_ids(tokenizer, model)
    gen = params.generator(runner.device)
    stream = TextStream(tokenizer, tuple(params.stop))
    ids: list[int] = []
    ttft = 0.0
    finish = "length"
    pos = n_prompt
    steps = 0  # decode steps: each samples one token after the first (an end token counts too)
    emit = on_text or (lambda s: None)
    t0 = time.perf_counter()
    logits = runner.prefill(slot, torch.tensor(prompt_ids, device=runner.device))
    while True:
        tok = sample(logits, params, gen)  # int(): synchronises the device
        now = time.perf_counter()
        if not ids:
            ttft = now - t0
        t_last = now
        if tok in eos:
            finish = "stop"
            break
        ids.append(tok)
        emit(stream.push(tok))
        if stream.stopped:
            finish = "stop"
            break
        if len(ids) >= budget:
            break
        logits = runner.decode1(tok, pos, slot)
        pos += 1
        steps += 1
    emit(stream.finish())
    sync_fn(str(runner.device))()
    n = len(ids)
    decode_s = t_last - t0 - ttft
    tpot = decode_s / steps if steps else None
    wbytes = runner.weight_bytes_per_step()
    # step i (1..steps) reads the KV of positions 0..n_prompt+i-1 plus the one it writes
    kv = runner.kv_bytes_per_token() * (n_prompt + (steps + 1) / 2) if steps else 0.0
    bw = (wbytes + kv) / tpot if tpot else None
    peak, src = bandwidth if bandwidth is not None else (None, "not requested")
    stats = GenStats(prompt_tokens=n_prompt, output_tokens=n, finish_reason=finish, ttft_s=ttft, decode_s=decode_s,
                     tpot_s=tpot, decode_tokens_per_s=(1 / tpot if tpot else None), weight_bytes_per_step=wbytes,
                     kv_bytes_per_step=kv, bandwidth_bytes_per_s=bw, peak_bandwidth_bytes_per_s=peak,
                     bandwidth_source=src, mbu=(bw / peak if bw and peak else None))
    return Result(text=stream.text, token_ids=ids, stats=stats)


def pick_threads(runner, candidates: list[int], steps: int = 4, rounds: int = 2, batch: int = 1
                 ) -> tuple[int, dict[int, float]]:
    """The torch thread count with the fastest decode step (``batch`` sequences), measured now.

    Times ``steps`` decode steps per candidate, ``rounds`` times alternating, and keeps the median
    seconds per step of each. On a busy CPU one thread can beat several (every multi-threaded op
    waits for all its threads); on an idle one more threads usually win. Leaves the winner set.
    """
    import statistics

    batch = max(1, min(batch, runner.max_batch))
    warm = torch.arange(8, device=runner.device) % runner.vocab_size
    for slot in range(batch):
        runner.prefill(slot, warm)
    tokens = torch.ones(batch, dtype=torch.long)
    pos = torch.full((batch,), 8, dtype=torch.long)

    def step(i: int) -> None:
        if batch == 1:
            int(runner.decode1(1, 8 + i).argmax())
        else:
            runner.decode(tokens, pos + i).argmax(-1).tolist()

    per: dict[int, list[float]] = {c: [] for c in candidates}
    set_threads = getattr(runner, "set_threads", torch.set_num_threads)  # engines with their own thread pool
    for _ in range(rounds):
        for c in candidates:
            set_threads(c)
            t = time.perf_counter()
            for i in range(steps):
                step(i)
            per[c].append((time.perf_counter() - t) / steps)
    for slot in range(batch):
        runner.free(slot)
    med = {c: statistics.median(v) for c, v in per.items()}
    best = min(med, key=med.get)
    set_threads(best)
    return best, med
