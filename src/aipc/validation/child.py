"""Measure one workload in a fresh process: peak memory above the post-import baseline, and time.

Run as ``python -m aipc.validation.child '<workload json>'``; prints one JSON line. It sets the
allocator the way aipc's own processes do (``aipc.runtime.configure_allocator``: glibc's mmap
threshold at 64 KiB, so large blocks are returned on free) unless the parent passes
``AIPC_MALLOC=default`` (glibc's default keeps freed large blocks in the heap and makes peak RSS
depend on history; FIELD-NOTES) — ``aipc validate --allocator`` measures both.
CPU peak = VmHWM (reset via /proc/self/clear_refs after building the model) minus VmRSS right after
importing torch + transformers; CUDA peak = torch.cuda.max_memory_allocated.
"""

from __future__ import annotations

import gc
import json
import sys
import time

from aipc.measure import proc_status_bytes, reset_peak_rss, sync_fn


def run(d: dict) -> dict:
    from aipc.runtime import allocator, configure_allocator

    configure_allocator()  # before torch: as `aipc train/generate/bench` (the CLI) do it
    if d["workload"].get("engine", "torch") != "torch":  # llama.cpp, ...: measured through aipc.engines
        from aipc.validation.engine_child import run as run_engine

        return run_engine(d)
    import torch  # noqa: F401  (the baseline includes torch and transformers)
    import transformers  # noqa: F401
    # imported by every model build, and it imports scipy.optimize wherever scipy is installed (OpenVINO's
    # NNCF brings it): part of the framework's import cost, so in the baseline, not in the measured peak
    import transformers.loss.loss_utils  # noqa: F401

    from aipc.models.live import load_or_build
    from aipc.spec import workload_from_dict

    from aipc.runtime import prepare_cpu

    prepare_cpu()  # flush denormals (times only; memory is unaffected)
    gc.collect()
    baseline = proc_status_bytes("VmRSS")
    w = workload_from_dict(d["workload"])
    device = d.get("device", "cpu")
    torch.set_num_threads(int(d.get("threads", torch.get_num_threads())))
    t0 = time.perf_counter()
    dtype = w.weight_dtype if w.weight_dtype in ("fp32", "bf16", "fp16") else "bf16"
    live = load_or_build(w.model, dtype=dtype, device=device, seed=0, allow_pickle=bool(d.get("allow_pickle")))
    model, spec = live.model, live.spec
    if w.attention != "sdpa":
        model.config._attn_implementation = w.attention
        model.set_attn_implementation(w.attention) if hasattr(model, "set_attn_implementation") else None
    build_s = time.perf_counter() - t0
    gc.collect()
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    reset_peak_rss()
    g = torch.Generator().manual_seed(1)
    if w.is_train:
        timing = _train(model, w, spec, device, g, steps=int(d.get("steps", 2)))
    else:
        timing = _infer(model, w, spec, device, g)
    peak = (torch.cuda.max_memory_allocated() if cuda else proc_status_bytes("VmHWM") - baseline)
    return {"peak_bytes": int(peak), "baseline_rss_bytes": baseline, "build_s": build_s, **timing,
            "torch": torch.__version__, "transformers": transformers.__version__, "allocator": allocator()}


def _train(model, w, spec, device: str, g, *, steps: int) -> dict:
    """``steps`` optimizer steps (step 2 runs forward/backward with optimizer states allocated: the peak)."""
    import torch

    if w.method == "lora":
        from peft import LoraConfig

        from aipc.models.live import with_lora

        model = with_lora(model, LoraConfig(r=w.lora_rank, lora_alpha=2 * w.lora_rank, lora_dropout=0.0,
                                            target_modules=list(w.lora_targets)))
    if w.grad_ckpt:
        model.gradient_checkpointing_enable()
        if w.method == "lora":
            model.enable_input_require_grads()
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    ids = torch.randint(0, spec.vocab_size, (w.batch_size, w.seq_len), generator=g).to(device)
    sync, times = sync_fn(device), []
    for _ in range(steps):
        t = time.perf_counter()
        for _ in range(w.grad_accum):
            loss = model(input_ids=ids, labels=ids, use_cache=False).loss
            loss.backward()
            del loss
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync()
        times.append(time.perf_counter() - t)
    timed = times[1:] or times
    return {"step_s": sorted(timed)[len(timed) // 2], "steps": steps}


def _infer(model, w, spec, device: str, g) -> dict:
    """A prefill (logits of the last position), then greedy generation of ``gen_tokens``; an encoder
    runs one forward over the input."""
    import torch

    model.eval()
    ids = torch.randint(0, spec.vocab_size, (w.batch_size, w.prompt_tokens), generator=g).to(device)
    with torch.inference_mode():
        t = time.perf_counter()
        if not spec.is_decoder:
            model(input_ids=ids)
            return {"prefill_s": time.perf_counter() - t}
        model(input_ids=ids, use_cache=True, logits_to_keep=1)
        prefill_s = time.perf_counter() - t
        t = time.perf_counter()
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=w.gen_tokens,
                             min_new_tokens=w.gen_tokens, do_sample=False, pad_token_id=0)
        gen_s = time.perf_counter() - t
    assert out.shape[1] == w.prompt_tokens + w.gen_tokens
    return {"prefill_s": prefill_s, "generate_s": gen_s}


if __name__ == "__main__":
    from aipc.errors import AipcError

    try:
        print(json.dumps(run(json.loads(sys.argv[1]))), flush=True)
    except AipcError as e:  # one line for the parent to show
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
