"""Measure one workload in a fresh process: peak memory above the post-import baseline, and time.

Run as ``python -m aipc.validation.child '<workload json>'``; prints one JSON line. The parent sets
``MALLOC_MMAP_THRESHOLD_=65536`` so that large blocks are mmapped and returned on free (glibc's
default keeps freed large blocks in the heap and makes peak RSS depend on history; FIELD-NOTES).
CPU peak = VmHWM (reset via /proc/self/clear_refs after building the model) minus VmRSS right after
importing torch + transformers; CUDA peak = torch.cuda.max_memory_allocated.
"""

from __future__ import annotations

import gc
import json
import re
import sys
import time


def _status(key: str) -> int:
    """A /proc/self/status field in bytes (VmRSS, VmHWM)."""
    with open("/proc/self/status") as f:
        return int(re.search(key + r":\s+(\d+)", f.read()).group(1)) * 1024


def _reset_hwm() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def build_model(spec, dtype, device):
    """The real architecture with random weights, built directly in ``dtype`` on ``device``."""
    import torch

    if hasattr(spec, "build"):
        try:
            return spec.build(dtype=dtype, device=device)
        except NotImplementedError:
            pass
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    cfg = dict(spec.config)
    mt = cfg.pop("model_type", spec.model_type)
    config = AutoConfig.for_model(mt, **{k: v for k, v in cfg.items() if k not in ("architectures", "transformers_version")})
    td = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    cls = AutoModelForCausalLM if spec.is_decoder else AutoModel
    with torch.device(device):
        return cls.from_config(config, dtype=td)


def run(d: dict) -> dict:
    import torch  # noqa: F401  (the baseline includes torch and transformers)
    import transformers  # noqa: F401

    from aipc.estimate import resolve_model
    from aipc.spec import workload_from_dict

    from aipc.runtime import prepare_cpu

    prepare_cpu()  # flush denormals (times only; memory is unaffected)
    gc.collect()
    baseline = _status("VmRSS")
    w = workload_from_dict(d["workload"])
    spec = resolve_model(w.model)
    device = d.get("device", "cpu")
    torch.manual_seed(0)
    torch.set_num_threads(int(d.get("threads", torch.get_num_threads())))
    t0 = time.perf_counter()
    model = build_model(spec, w.weight_dtype if w.weight_dtype in ("fp32", "bf16", "fp16") else "bf16", device)
    if w.attention != "sdpa":
        model.config._attn_implementation = w.attention
        model.set_attn_implementation(w.attention) if hasattr(model, "set_attn_implementation") else None
    build_s = time.perf_counter() - t0
    gc.collect()
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    _reset_hwm()
    steps = int(d.get("steps", 2))  # step 2 runs forward/backward with optimizer states allocated: the peak
    times: list[float] = []
    g = torch.Generator().manual_seed(1)
    if w.is_train:
        if w.method == "lora":
            from peft import LoraConfig, get_peft_model

            model = get_peft_model(model, LoraConfig(r=w.lora_rank, lora_alpha=2 * w.lora_rank, lora_dropout=0.0,
                                                     target_modules=list(w.lora_targets)))
        if w.grad_ckpt:
            model.gradient_checkpointing_enable()
            if w.method == "lora":
                model.enable_input_require_grads()
        model.train()
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
        ids = torch.randint(0, spec.vocab_size, (w.batch_size, w.seq_len), generator=g).to(device)
        for _ in range(steps):
            t = time.perf_counter()
            for _ in range(w.grad_accum):
                loss = model(input_ids=ids, labels=ids, use_cache=False).loss
                loss.backward()
                del loss
            opt.step()
            opt.zero_grad(set_to_none=True)
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
        timing = {"step_s": sorted(times[1:] or times)[len(times[1:] or times) // 2], "steps": steps}
    else:
        model.eval()
        ids = torch.randint(0, spec.vocab_size, (w.batch_size, w.prompt_tokens), generator=g).to(device)
        if not spec.is_decoder:  # an encoder: inference is one forward over the input
            with torch.inference_mode():
                t = time.perf_counter()
                model(input_ids=ids)
                prefill_s = time.perf_counter() - t
            peak = _status("VmHWM") - baseline
            return {"peak_bytes": int(peak), "baseline_rss_bytes": baseline, "build_s": build_s,
                    "prefill_s": prefill_s, "torch": torch.__version__, "transformers": transformers.__version__}
        with torch.inference_mode():
            t = time.perf_counter()
            model(input_ids=ids, use_cache=True, logits_to_keep=1)
            prefill_s = time.perf_counter() - t
            t = time.perf_counter()
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=w.gen_tokens,
                                 min_new_tokens=w.gen_tokens, do_sample=False, pad_token_id=0)
            gen_s = time.perf_counter() - t
        assert out.shape[1] == w.prompt_tokens + w.gen_tokens
        timing = {"prefill_s": prefill_s, "generate_s": gen_s}
    peak = (torch.cuda.max_memory_allocated() if cuda else _status("VmHWM") - baseline)
    return {"peak_bytes": int(peak), "baseline_rss_bytes": baseline, "build_s": build_s, **timing,
            "torch": torch.__version__, "transformers": transformers.__version__}


if __name__ == "__main__":
    print(json.dumps(run(json.loads(sys.argv[1]))), flush=True)
