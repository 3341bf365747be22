"""Fit verdicts, what would make a workload fit, and backward search (largest batch / context,
fewest devices) for one device kind."""

from __future__ import annotations

import dataclasses

from aipc.estimate.memory import memory_breakdown
from aipc.estimate.types import Search
from aipc.hardware.spec import DeviceSpec
from aipc.models.spec import ModelSpec
from aipc.render import gb
from aipc.spec import Workload

MAX_DEVICES = 4096


def peak_bytes(m: ModelSpec, w: Workload, d: DeviceSpec) -> int:
    """Peak bytes per device by the estimator's memory model (no times, no suggestions: fast)."""
    return memory_breakdown(m, w, d).peak_bytes


def _with(w: Workload, **kw) -> Workload:
    """A variant of the workload (validated; quantized + train => qlora handled by validate)."""
    return dataclasses.replace(w, **kw).validate()


def spread(w: Workload, n: int) -> Workload:
    """The workload over ``n`` devices of one kind, sharded as :func:`devices_needed` counts them:
    ZeRO-3 for training, tensor parallel for inference."""
    return _with(w, num_devices=n, sharding="zero3" if w.is_train else "tp")


def devices_needed(m: ModelSpec, w: Workload, d: DeviceSpec) -> int | None:
    """Fewest devices of this kind that hold the workload: ZeRO-3 for training, tensor parallel for
    inference (per-device memory falls with n); None if even MAX_DEVICES do not."""
    cap = d.usable_memory_bytes
    if w.num_devices > 1 and peak_bytes(m, w, d) <= cap:
        return w.num_devices
    lo, hi = 1, 2
    if peak_bytes(m, w, d) <= cap:
        return 1
    while hi <= MAX_DEVICES and peak_bytes(m, spread(w, hi), d) > cap:
        lo, hi = hi, hi * 2
    if hi > MAX_DEVICES:
        return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if peak_bytes(m, spread(w, mid), d) <= cap:
            hi = mid
        else:
            lo = mid
    return hi


def _train_variants(w: Workload, d: DeviceSpec | None) -> list[tuple[str, Workload]]:
    """Training changes: method, checkpointing, optimizer, adapter dtype and rank, batch, sequence."""
    out: list[tuple[str, Workload]] = []
    lora = w.method in ("lora", "qlora")
    if w.method == "full":
        out.append(("--method lora", _with(w, method="lora")))
    if w.method in ("full", "lora"):
        out.append(("--method qlora", _with(w, method="qlora", weight_dtype="nf4", compute_dtype="bf16")))
    if not w.grad_ckpt:
        out.append(("--grad-ckpt", _with(w, grad_ckpt=True)))
    gpu = d is not None and d.kind == "gpu"
    if w.optimizer in ("adamw", "paged-adamw"):
        out.append(("--optimizer adamw8bit", _with(w, optimizer="adamw8bit")))
    if gpu and w.optimizer in ("adamw", "adamw8bit", "paged-adamw"):
        out.append(("--optimizer paged-adamw8bit", _with(w, optimizer="paged-adamw8bit")))
    if lora and w.adapter == "fp32":
        half = w.compute if w.compute in ("bf16", "fp16") else "bf16"
        out.append((f"--adapter-dtype {half}", _with(w, adapter_dtype=half)))
    if lora and w.lora_rank >= 8:
        out.append((f"--lora-rank {w.lora_rank // 2}", _with(w, lora_rank=w.lora_rank // 2)))
    if w.batch_size > 1:
        out.append((f"--batch 1 --grad-accum {w.batch_size * w.grad_accum}",
                    _with(w, batch_size=1, grad_accum=w.batch_size * w.grad_accum)))
    if w.seq_len > 512:
        out.append((f"--seq-len {w.seq_len // 2}", _with(w, seq_len=w.seq_len // 2)))
    return out


# Smaller weight formats to suggest per engine (each engine runs only its own; a GGUF type given to the
# torch engine moves the workload to llama.cpp, as `aipc estimate --precision q4_k_m` does)
SMALLER_FORMATS = {"torch": ("int8", "q4_k_m"), "llamacpp": ("q8_0", "q4_k_m"), "openvino": ("int8", "int4")}


def _variants(m: ModelSpec, w: Workload, d: DeviceSpec | None = None) -> list[tuple[str, Workload]]:
    """Changes a user can make, as (flag text, workload)."""
    if w.is_train:
        return _train_variants(w, d)
    out: list[tuple[str, Workload]] = []
    for q in SMALLER_FORMATS.get(w.engine, ()):
        if w.weight_dtype not in (q, "int4", "nf4", "q4_0", "q4_k_m"):
            out.append((f"--precision {q}", _with(w, weight_dtype=q, compute_dtype="bf16")))
    if w.kv != "fp8" and m.is_decoder:
        out.append(("--kv-dtype fp8", _with(w, kv_dtype="fp8")))
    if w.batch_size > 1:
        out.append(("--batch 1", _with(w, batch_size=1)))
    if w.context > 4096:
        out.append((f"--prompt-tokens {w.prompt_tokens // 2}", _with(w, prompt_tokens=max(w.prompt_tokens // 2, 1))))
    return out


def _combined(m: ModelSpec, w: Workload, d: DeviceSpec, max_changes: int = 6) -> tuple[list[str], int] | None:
    """Greedy: apply the change that lowers the peak most, again and again, until the workload fits
    (at most ``max_changes``); (flags, peak) of the first combination that fits, else None."""
    cap, flags, cur = d.usable_memory_bytes, [], w
    best = peak_bytes(m, w, d)
    for _ in range(max_changes):
        scored = [(peak_bytes(m, v, d), flag, v) for flag, v in _variants(m, cur, d)]
        if not scored:
            return None
        p, flag, v = min(scored, key=lambda t: t[0])
        if p >= best:
            return None
        flags, cur, best = [*flags, flag], v, p
        if p <= cap:
            return flags, p
    return None


def suggestions(m: ModelSpec, w: Workload, d: DeviceSpec, peak: int, need: int | None) -> list[str]:
    """What would make it fit on this device (each with its peak): single changes that fit, else the
    fewest combined changes found greedily; then how many devices it needs as it is."""
    cap = d.usable_memory_bytes
    fits, misses = [], []
    for flag, v in _variants(m, w, d):
        p = peak_bytes(m, v, d)
        (fits if p <= cap else misses).append((p, flag))
    out = [f"{flag}: {gb(p)} (fits)" for p, flag in sorted(fits)[:4]]
    combo = None if out else _combined(m, w, d)
    if combo:
        out.append(f"{' '.join(combo[0])}: {gb(combo[1])} (fits)")
    if not out and misses:
        p, flag = min(misses)
        out.append(f"closest single change {flag}: {gb(p)}, still over {gb(cap)}")
    n = need
    if n and n > 1:
        out.append(f"{n} x {d.label} with {'ZeRO-3/FSDP' if w.is_train else 'tensor parallel'}")
    return out


def _largest(ok, lo: int, limit: int) -> int | None:
    """Largest x in [lo, limit] with ok(x) (ok monotone decreasing), by doubling then bisection."""
    if not ok(lo):
        return None
    hi = lo
    while hi < limit and ok(min(hi * 2, limit)):
        hi = min(hi * 2, limit)
    if hi == limit:
        return hi
    top = min(hi * 2, limit)
    while top - hi > 1:
        mid = (hi + top) // 2
        if ok(mid):
            hi = mid
        else:
            top = mid
    return hi


def backward_search(m: ModelSpec, w: Workload, d: DeviceSpec) -> Search:
    """Largest batch, largest context (up to the model's maximum) and fewest devices that fit."""
    cap = d.usable_memory_bytes

    def ok_batch(b: int) -> bool:
        return peak_bytes(m, _with(w, batch_size=b), d) <= cap

    def ok_ctx(n: int) -> bool:
        v = _with(w, seq_len=n) if w.is_train else _with(w, prompt_tokens=max(n - w.gen_tokens, 1))
        return peak_bytes(m, v, d) <= cap

    min_ctx = 1 if w.is_train else w.gen_tokens + 1
    return Search(
        device=d.name,
        max_batch=_largest(ok_batch, 1, 1 << 20),
        max_context=_largest(ok_ctx, min_ctx, max(m.max_position, min_ctx)),
        min_devices=devices_needed(m, w, d),
    )
