"""Generation through OpenVINO GenAI's own ``LLMPipeline``, with aipc's result type and statistics.

Used where aipc's runner cannot go (the NPU: GenAI reshapes the model to static shapes there) and as
the peer in benchmarks/. Tokens reach a :class:`StreamerBase` subclass one at a time; their arrival
times give TTFT and TPOT with the same definitions as :func:`aipc.engines.generate.generate`, and
aipc's :class:`~aipc.engines.sampling.TextStream` turns them into text and applies stop strings.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from aipc.engines.generate import GenStats, Result
from aipc.engines.sampling import SamplingParams, TextStream


def generation_config(pipe, params: SamplingParams, budget: int):
    cfg = pipe.get_generation_config()
    cfg.max_new_tokens = int(budget)
    cfg.ignore_eos = bool(params.ignore_eos)
    cfg.do_sample = params.temperature > 0
    if cfg.do_sample:
        cfg.temperature = float(params.temperature)
        cfg.top_p = float(params.top_p)
        if params.top_k:
            cfg.top_k = int(params.top_k)
        if params.seed is not None:
            cfg.rng_seed = int(params.seed)
    return cfg


def _streamer(text: TextStream, emit):
    import openvino_genai as og

    class Timed(og.StreamerBase):
        """Records each token's arrival time; stops the pipeline at a stop string."""

        def __init__(self):
            super().__init__()
            self.ids: list[int] = []
            self.times: list[float] = []

        def write(self, token):
            now = time.perf_counter()
            for t in token if isinstance(token, list) else [token]:
                self.ids.append(int(t))
                self.times.append(now)
                emit(text.push(int(t)))
                if text.stopped:
                    return og.StreamingStatus.STOP
            return og.StreamingStatus.RUNNING

        def end(self):
            return None

    return Timed()


class GenAIGenerator:
    """``generate(tokenizer, prompt_ids, params, ...) -> Result`` over one ``LLMPipeline``; one request at a time."""

    def __init__(self, folder: str | Path, *, device: str = "CPU", threads: int | None = None,
                 config: dict | None = None, max_len: int = 2048):
        import openvino_genai as og

        props = dict(config or {})
        if threads and device == "CPU":
            props["INFERENCE_NUM_THREADS"] = int(threads)
        self.folder, self.ov_device, self.max_len = Path(folder), device, int(max_len)
        self.pipe = og.LLMPipeline(str(self.folder), device, **props)
        self.lock = threading.Lock()  # LLMPipeline runs one generation at a time

    def generate(self, tokenizer, prompt_ids: list[int], params: SamplingParams, *, on_text=None,
                 bandwidth=None, weight_bytes: int = 0, kv_bytes_per_token: int = 0) -> Result:
        import openvino as ov
        import openvino_genai as og

        n_prompt = len(prompt_ids)
        budget = min(params.max_tokens, self.max_len - n_prompt)
        if n_prompt < 1 or budget < 1:
            raise ValueError(f"prompt of {n_prompt} tokens leaves no room in the context of {self.max_len}")
        text = TextStream(tokenizer, tuple(params.stop))
        streamer = _streamer(text, on_text or (lambda s: None))
        ids = np.array([prompt_ids], dtype=np.int64)
        inputs = og.TokenizedInputs(ov.Tensor(ids), ov.Tensor(np.ones_like(ids)))
        with self.lock:
            t0 = time.perf_counter()
            self.pipe.generate(inputs, generation_config(self.pipe, params, budget), streamer)
        if on_text:
            on_text(text.finish())
        return Result(text=text.text, token_ids=streamer.ids,
                      stats=_stats(streamer, t0, n_prompt, budget, text.stopped, bandwidth, weight_bytes,
                                   kv_bytes_per_token))


def _stats(streamer, t0: float, n_prompt: int, budget: int, stopped: bool, bandwidth, wbytes: int,
           kv_token: int) -> GenStats:
    n = len(streamer.ids)
    steps = max(n - 1, 0)
    ttft = streamer.times[0] - t0 if n else 0.0
    decode_s = streamer.times[-1] - streamer.times[0] if n else 0.0
    tpot = decode_s / steps if steps else None
    kv = kv_token * (n_prompt + (steps + 1) / 2) if steps else 0.0
    bw = (wbytes + kv) / tpot if tpot and wbytes else None
    peak, src = bandwidth if bandwidth is not None else (None, "not requested")
    finish = "length" if n >= budget and not stopped else "stop"
    return GenStats(prompt_tokens=n_prompt, output_tokens=n, finish_reason=finish, ttft_s=ttft, decode_s=decode_s,
                    tpot_s=tpot, decode_tokens_per_s=(1 / tpot if tpot else None), weight_bytes_per_step=wbytes,
                    kv_bytes_per_step=kv, bandwidth_bytes_per_s=bw, peak_bandwidth_bytes_per_s=peak,
                    bandwidth_source=src, mbu=(bw / peak if bw and peak else None))
