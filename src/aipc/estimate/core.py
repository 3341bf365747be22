"""The one path from (model, workload, device) to memory, compute, efficiency and time.

``aipc.estimate.estimate`` and ``aipc.estimate.sweep.sweep`` both call :func:`evaluate`, so a sweep
point and an estimate of the same workload agree exactly: the same checks (a workload estimate()
rejects, sweep rejects), and efficiency looked up with each workload's own shape (calibrated factors
depend on the tokens per forward)."""

from __future__ import annotations

from dataclasses import dataclass

from aipc.errors import AipcError
from aipc.estimate.compute import compute_for
from aipc.estimate.efficiency import efficiency_for
from aipc.estimate.memory import memory_breakdown
from aipc.estimate.roofline import timing
from aipc.estimate.types import Compute, Efficiency, MemoryBreakdown, Timing
from aipc.hardware.spec import DeviceSpec
from aipc.models.spec import ModelSpec
from aipc.spec import Workload


@dataclass(frozen=True, kw_only=True)
class Evaluated:
    memory: MemoryBreakdown
    compute: Compute
    efficiency: Efficiency
    time: Timing
    warnings: tuple[str, ...]


def check(m: ModelSpec, w: Workload) -> list[str]:
    """Warnings for a workload this model can run oddly; AipcError for one it cannot run."""
    warnings: list[str] = []
    if w.context > m.max_position:
        warnings.append(f"context {w.context} exceeds {m.name}'s maximum {m.max_position} positions")
    if not m.is_decoder and not w.is_train and w.gen_tokens > 0:
        warnings.append(f"{m.name} is an encoder: no generation; only the forward of the prompt is estimated")
    if w.sharding == "tp" and w.num_devices > m.num_kv_heads and m.kv_lora_rank is None:
        warnings.append(f"tensor parallel over {w.num_devices} devices exceeds {m.num_kv_heads} KV heads: KV heads get replicated")
    if w.sharding == "tp" and w.num_devices > m.num_heads:
        raise AipcError(f"tensor parallel splits attention heads: {m.name} has {m.num_heads}, "
                        f"so at most {m.num_heads} devices; use --num-devices <= {m.num_heads}")
    return warnings


def device_warnings(w: Workload, d: DeviceSpec) -> list[str]:
    """What the device's own figures say about this estimate: measured under load (low confidence),
    or a torch compute dtype without native kernels here (emulated: slower than fp32; llama.cpp and
    OpenVINO pick their own kernels' precision, see calibrate.workload_peak)."""
    from aipc.estimate.calibrate import outdated_note

    note = outdated_note() if d.category == "this-machine" else None  # calibrations are of this machine
    out = [note] if note else []
    if d.confidence:
        out.append(f"{d.name}: {d.confidence}")
    if (w.engine == "torch" and d.native_dtypes and w.compute not in d.native_dtypes
            and w.compute in ("bf16", "fp16")):
        fast = max(d.native_dtypes, key=lambda dt: (d.train_peak(dt) if w.is_train else d.peak(dt)) or 0)
        mine = (d.train_peak(w.compute) if w.is_train else d.peak(w.compute)) or 0
        theirs = (d.train_peak(fast) if w.is_train else d.peak(fast)) or 0
        ratio = f" ({theirs / mine:.1f}x faster here by the measured peaks)" if mine and theirs > mine else ""
        out.append(f"{w.compute} is emulated on {d.name} (no native {w.compute} kernels); {fast} runs "
                   f"faster{ratio}: use --precision {fast}")
    return out


def ideal_seconds(d: DeviceSpec, w: Workload, comp: Compute) -> dict[str, float]:
    """Per scenario, the step's FLOPs (per device) over the peak the roofline uses: what a fitted
    calibration time model starts from (``aipc.estimate.calibrate_linear``)."""
    from aipc.estimate.calibrate import peak_for, workload_peak

    out = {}
    if w.is_train:
        pk = peak_for(d, w.compute, train=True)
        if pk:
            out["train"] = comp.flops_per_step / max(w.num_devices, 1) / pk
    else:
        pk = workload_peak(d, w, compute=comp)  # llama.cpp on a CPU: its kernels' FLOP/s
        if pk:
            out["prefill"] = comp.prefill_flops / (w.num_devices if w.sharding == "tp" else 1) / pk
    return out


def evaluate(m: ModelSpec, w: Workload, d: DeviceSpec) -> Evaluated:
    """Memory, compute, efficiency (calibrated where ``aipc calibrate`` fitted this device, for this
    workload's shape) and time of one validated workload on one device."""
    warnings = check(m, w) + device_warnings(w, d)
    mem = memory_breakdown(m, w, d)
    comp = compute_for(m, w)
    eff = efficiency_for(d, comp.flops_per_token, workload=w, ideal_s=ideal_seconds(d, w, comp), layers=comp.layers,
                         runner=m.torch_runner, width=comp.prefill_width, mix=comp.decode_mix, model=m)
    t, twarn = timing(d, w, comp, eff)
    return Evaluated(memory=mem, compute=comp, efficiency=eff, time=t,
                     warnings=tuple(warnings + twarn + list(mem.notes)))
