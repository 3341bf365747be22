"""Efficiency factors (fraction of peak reached) by device, each with its source.

Defaults are replaced by calibrated values when ``aipc calibrate`` has fitted them for a device
from measured runs (``aipc.estimate.calibrate``); the Estimate says which was used.
"""

from __future__ import annotations

from aipc.estimate import calibrate
from aipc.estimate.types import Efficiency
from aipc.hardware.spec import DeviceSpec

# (train MFU, prefill MFU, decode MBU, source)
_DEFAULTS = {
    "nvidia-gpu": (0.40, 0.50, 0.60,
                   "default: train MFU 0.40 (torchtitan docs/performance.md: Llama-3.1-8B on 8xH100 33-39% "
                   "without float8; llm-foundry H100 bf16 30-46%); prefill MFU 0.50 (assumption, between "
                   "training MFU and GEMM peak); decode MBU 0.60 (Databricks: TensorRT-LLM batch 1 on H100 ~60%)"),
    "amd-gpu": (0.35, 0.45, 0.55, "default: assumption below NVIDIA's (ROCm kernels less tuned); decode MBU 0.55"),
    "apple-apu": (0.30, 0.45, 0.60, "default: train/prefill MFU assumption; decode MBU 0.60 (llama.cpp on Apple "
                                      "silicon 45-80% by chip and quantization, FIELD-NOTES)"),
    "amd-apu": (0.25, 0.40, 0.40, "default: decode MBU 0.40 (AMD iGPU ~40% in llama.cpp reports, FIELD-NOTES); "
                                    "MFU assumption"),
    "apu": (0.30, 0.40, 0.50, "default: assumption for unified-memory GPUs without published efficiency"),
    "npu": (0.0, 0.30, 0.40, "default: NPUs run inference graphs only (no training); MBU 0.40, MFU 0.30 assumed"),
    "cpu": (0.50, 0.60, 0.60, "default: against the measured GEMM peak and copy bandwidth of aipc hw; "
                              "uncalibrated assumption — run 'aipc bench' then 'aipc calibrate'"),
}


def default_efficiency(device: DeviceSpec) -> Efficiency:
    """The default factors for a device's kind and vendor."""
    if device.kind == "gpu":
        key = "amd-gpu" if device.vendor == "amd" else "nvidia-gpu"
    elif device.kind == "apu":
        key = {"apple": "apple-apu", "amd": "amd-apu"}.get(device.vendor, "apu")
    elif device.kind == "npu":
        key = "npu"
    else:
        key = "cpu"
    t, p, d, src = _DEFAULTS[key]
    return Efficiency(mfu_train=t, mfu_prefill=p, mbu_decode=d, source=src)


def efficiency_for(device: DeviceSpec, flops_per_token: float | None = None, workload=None, *,
                   ideal_s: dict[str, float] | None = None, layers: int | None = None) -> Efficiency:
    """Calibrated factors for this device where ``aipc calibrate`` stored them, else the defaults.
    ``workload`` (optional) gives the tokens per forward the calibration is also keyed by;
    ``ideal_s`` (scenario -> FLOPs / peak of the step) and ``layers`` let a fitted time model answer."""
    eff = default_efficiency(device)
    found = {}
    tokens = calibrate.tokens_for(workload) if workload is not None else {}  # tokens per forward, by scenario
    for scenario in ("train", "prefill"):
        hit = calibrate.lookup(device.name, scenario, flops_per_token, tokens=tokens.get(scenario),
                               ideal_s=(ideal_s or {}).get(scenario), layers=layers)
        if hit:
            found[scenario] = hit
    layer_s = 0.0
    dec = calibrate.lookup_decode(device.name, tokens.get("decode"))
    if dec:
        mbu, layer_s, dsrc = dec
        found["decode"] = (mbu, f"MBU {mbu:.2f} + {layer_s * 1e3:.3g} ms per layer per step, {dsrc}")
    if not found:
        return eff
    src = "; ".join(f"{k}: {v[1]}" for k, v in found.items())
    return Efficiency(
        mfu_train=found.get("train", (eff.mfu_train,))[0],
        mfu_prefill=found.get("prefill", (eff.mfu_prefill,))[0],
        mbu_decode=found.get("decode", (eff.mbu_decode,))[0], decode_layer_s=layer_s,
        source=f"calibrated: {src}" + ("" if len(found) == 3 else f"; others {eff.source}"),
    )
