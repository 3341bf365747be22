"""Measure one inference workload through an engine other than torch (``aipc.engines``), in the fresh
process ``aipc.validation.child`` starts: peak memory above the post-import baseline, and time.

The parent hands over a model file the engine reads (a GGUF converted beforehand, so that conversion
never counts). ``batch_size`` slots are prefilled with ``prompt_tokens`` random tokens each, then
decoded together for ``gen_tokens`` steps through the engine's runner (what ``aipc serve`` does).
"""

from __future__ import annotations

import gc
import importlib
import time


def run(d: dict) -> dict:
    import torch

    from aipc.engines import LIBRARIES, load
    from aipc.spec import workload_from_dict
    from aipc.measure import proc_status_bytes, reset_peak_rss

    w = workload_from_dict(d["workload"])
    importlib.import_module(LIBRARIES[w.engine])  # the baseline includes the engine's library
    importlib.import_module(f"aipc.engines.{w.engine}")
    gc.collect()
    baseline = proc_status_bytes("VmRSS")
    t0 = time.perf_counter()
    lm = load(d["model_path"], engine=w.engine, max_batch=w.batch_size, max_len=w.prompt_tokens + w.gen_tokens,
              threads=d.get("threads"))
    runner = lm.runner
    build_s = time.perf_counter() - t0
    gc.collect()
    reset_peak_rss()
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, runner.vocab_size, (w.batch_size, w.prompt_tokens), generator=g)
    t = time.perf_counter()
    last = [int(runner.prefill(s, ids[s]).argmax()) for s in range(w.batch_size)]
    prefill_s = time.perf_counter() - t
    t = time.perf_counter()
    for i in range(w.gen_tokens - 1):
        pos = torch.full((w.batch_size,), w.prompt_tokens + i)
        last = runner.decode(torch.tensor(last), pos).argmax(-1).tolist()
    gen_s = time.perf_counter() - t
    peak = proc_status_bytes("VmHWM") - baseline
    return {"peak_bytes": int(peak), "baseline_rss_bytes": baseline, "build_s": build_s, "prefill_s": prefill_s,
            "generate_s": gen_s, "engine": w.engine, "weight_format": lm.weight_format,
            "threads": getattr(runner, "threads", None)}
