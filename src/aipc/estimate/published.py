"""Published measurements the uncalibrated estimator is checked against (docs/validation.md).

Each run names its device (a catalog device, or one defined here with its spec source), its model
(a catalog model, or an HF config given here with its source), engine, precision, shape and the
published figure: generated tokens/s at batch 1 (decode), prompt tokens/s (prefill) or trained
tokens/s per GPU (train). :func:`compare` estimates each with the default efficiencies (no
calibration) and returns the estimate / published ratio. Import-light.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Devices missing from the device catalog, with the spec bandwidth / peak the estimate needs.
EXTRA_DEVICES: dict[str, dict[str, Any]] = {
    "m2-ultra-76c": dict(label="Apple M2 Ultra (76-core GPU)", vendor="apple", kind="apu", bandwidth_gbs=800,
                         bf16_tflops=27.2, memory_gb=192,
                         source="Apple M2 Ultra press release (2023-06-05): 800 GB/s unified memory; 27.2 TFLOPS"),
    "m4-10c": dict(label="Apple M4 (10-core GPU, Mac mini)", vendor="apple", kind="apu", bandwidth_gbs=120,
                   bf16_tflops=4.26, memory_gb=16, source="Apple Mac mini (M4) tech specs (2024-10): 120 GB/s"),
    "m1-max-32c": dict(label="Apple M1 Max (32-core GPU)", vendor="apple", kind="apu", bandwidth_gbs=400,
                       bf16_tflops=10.4, memory_gb=64, source="Apple M1 Max announcement (2021-10-18): 400 GB/s"),
    "ryzen-ai-max-385": dict(label="AMD Ryzen AI Max 385 (Radeon 8050S)", vendor="amd", kind="apu", bandwidth_gbs=256,
                             bf16_tflops=44.6, memory_gb=128,
                             source="AMD Ryzen AI Max 385 product page: 256-bit LPDDR5X-8000 = 256 GB/s"),
    "mi250x-gcd": dict(label="AMD MI250X, one GCD", vendor="amd", kind="gpu", bandwidth_gbs=1638.4, bf16_tflops=191.5,
                       memory_gb=64, source="AMD Instinct MI250X data sheet: 3.2768 TB/s and 383 TFLOPS bf16 for its two GCDs"),
}

# HF configs of models missing from the model catalog (as published in their config.json)
EXTRA_MODELS: dict[str, dict[str, Any]] = {
    "llama-2-7b": {"model_type": "llama", "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
                   "num_attention_heads": 32, "num_key_value_heads": 32, "vocab_size": 32000,
                   "max_position_embeddings": 4096, "tie_word_embeddings": False},
    "llama-2-70b": {"model_type": "llama", "hidden_size": 8192, "intermediate_size": 28672, "num_hidden_layers": 80,
                    "num_attention_heads": 64, "num_key_value_heads": 8, "vocab_size": 32000,
                    "max_position_embeddings": 4096, "tie_word_embeddings": False},
}
EXTRA_MODEL_SOURCE = "https://huggingface.co/meta-llama/Llama-2-7b-hf/blob/main/config.json (and Llama-2-70b-hf)"


@dataclass(frozen=True)
class Run:
    scenario: str          # decode | prefill | train
    device: str
    model: str
    engine: str
    precision: str
    value: float           # tokens/s (train: per GPU)
    source: str
    date: str
    shape: dict[str, Any] = field(default_factory=dict)


_GF = "gpt-fast README, pytorch-labs/gpt-fast (A100-80GB power-limited to 330 W, batch 1, 5-token prompt)"
_CUDA = "llama.cpp PR 4766 (llama-bench, RTX 4090, codellama-7b = Llama-2-7B layout)"
_METAL = "llama.cpp PR 2891 (llama-bench on M2 Ultra, ggerganov)"
_METAL2 = "llama.cpp PR 2917 (llama-bench on M2 Ultra, master column)"
_NB = "brand-o/normiebench"
_TT_A100 = "torchtitan docs/performance.md at commit 0413364 (64xA100-80GB, FSDP2, local batch 1, seq 8192, selective AC)"
_TT_H100 = "torchtitan docs/performance.md (8xH100 500 W HBM2e, FSDP, local batch 2, seq 8192, selective AC)"
_TG = {"prompt_tokens": 1, "gen_tokens": 128}
_GFS = {"prompt_tokens": 5, "gen_tokens": 200}

RUNS: tuple[Run, ...] = (
    Run("decode", "a100-80gb", "llama-2-7b", "torch", "bf16", 104.9, _GF, "2023-12", _GFS),
    Run("decode", "a100-80gb", "llama-2-7b", "torch", "int8", 155.58, _GF, "2023-12", _GFS),
    Run("decode", "a100-80gb", "llama-2-7b", "torch", "int4", 196.80, _GF + ", int4 group 32", "2023-12",
        {**_GFS, "int4_group_size": 32}),
    Run("decode", "a100-80gb", "llama-2-70b", "torch", "int8", 19.13, _GF, "2023-12", _GFS),
    Run("decode", "mi250x-gcd", "llama-2-7b", "torch", "bf16", 76.33, _GF + ", one MI250X GCD", "2023-12", _GFS),
    Run("decode", "rtx-4090", "llama-2-7b", "llamacpp", "f16", 61.03, _CUDA, "2024-01-10", _TG),
    Run("decode", "rtx-4090", "llama-2-7b", "llamacpp", "q8_0", 98.13, _CUDA, "2024-01-10", _TG),
    Run("decode", "m2-ultra-76c", "llama-2-7b", "llamacpp", "f16", 40.53, _METAL, "2023-08-30",
        {"prompt_tokens": 1, "gen_tokens": 64}),
    Run("decode", "m2-ultra-76c", "llama-2-7b", "llamacpp", "q8_0", 61.41, _METAL, "2023-08-30",
        {"prompt_tokens": 1, "gen_tokens": 64}),
    Run("decode", "m2-ultra-76c", "llama-2-7b", "llamacpp", "q4_0", 88.54, _METAL2, "2023-08-30", _TG),
    Run("decode", "m4-10c", "llama-3.1-8b", "llamacpp", "q4_k_m", 20.87, f"{_NB} issue 3 (Metal)", "2026-03-08", _TG),
    Run("decode", "m1-max-32c", "llama-3.1-8b", "llamacpp", "q4_k_m", 46.2, f"{_NB} issue 40 (Metal)", "2026-03-08", _TG),
    Run("decode", "ryzen-ai-max-385", "llama-3.1-8b", "llamacpp", "q4_k_m", 41.6,
        "deseven/strixhalo-homelab issue 11 (Vulkan RADV)", "2026-03-26", {"prompt_tokens": 1, "gen_tokens": 64}),
    Run("prefill", "rtx-4090", "llama-2-7b", "llamacpp", "f16", 11048.22, _CUDA + ", pp512", "2024-01-10",
        {"prompt_tokens": 512, "gen_tokens": 1}),
    Run("prefill", "m2-ultra-76c", "llama-2-7b", "llamacpp", "f16", 665.74, _METAL + ", pp512", "2023-08-30",
        {"prompt_tokens": 512, "gen_tokens": 1}),
    Run("prefill", "m4-10c", "llama-3.1-8b", "llamacpp", "q4_k_m", 224.81, f"{_NB} issue 3 (Metal), pp512",
        "2026-03-08", {"prompt_tokens": 512, "gen_tokens": 1}),
    Run("prefill", "m1-max-32c", "llama-3.1-8b", "llamacpp", "q4_k_m", 499.58, f"{_NB} issue 40 (Metal), pp512",
        "2026-03-08", {"prompt_tokens": 512, "gen_tokens": 1}),
    Run("prefill", "ryzen-ai-max-385", "llama-3.1-8b", "llamacpp", "q4_k_m", 833,
        "deseven/strixhalo-homelab issue 11 (Vulkan RADV), pp512", "2026-03-26", {"prompt_tokens": 512, "gen_tokens": 1}),
    Run("train", "a100-80gb", "llama-3.1-8b", "torch", "mixed-bf16", 2904, _TT_A100, "2024-04",
        {"seq_len": 8192, "batch_size": 1, "num_devices": 64, "nodes": 8, "sharding": "fsdp", "link": "ib-hdr"}),
    Run("train", "h100-sxm", "llama-3.1-8b", "torch", "mixed-bf16", 5762, _TT_H100, "2024-12",
        {"seq_len": 8192, "batch_size": 2, "num_devices": 8, "sharding": "fsdp"}),
)


def device(name: str):
    """A catalog device, or one of EXTRA_DEVICES as a DeviceSpec."""
    from aipc.hardware.spec import DeviceSpec, Sourced

    if name not in EXTRA_DEVICES:
        from aipc.hardware.catalog import get_device

        return get_device(name)
    d = EXTRA_DEVICES[name]
    mem = int(d["memory_gb"] * 1e9)
    src = Sourced(source=d["source"], as_of="2026-12-01")
    return DeviceSpec(name=name, label=d["label"], vendor=d["vendor"], kind=d["kind"], category="published",
                      memory_bytes=mem, usable_memory_bytes=mem, bandwidth_bytes_s=d["bandwidth_gbs"] * 1e9,
                      peak_flops={"bf16": d["bf16_tflops"] * 1e12, "fp16": d["bf16_tflops"] * 1e12},
                      sources={"bandwidth_bytes_s": src, "peak_flops.bf16": src})


def model(name: str):
    from aipc.models import catalog
    from aipc.models.spec import ModelSpec

    if name in EXTRA_MODELS:
        return ModelSpec.from_hf_config(EXTRA_MODELS[name], name=name, source=EXTRA_MODEL_SOURCE)
    return catalog.get(name)


def estimate_run(r: Run) -> float | None:
    """The uncalibrated estimate of a published run's figure (same unit)."""
    from aipc.estimate import calibrate
    from aipc.estimate.api import estimate
    from aipc.spec import workload_from_dict

    task = "train" if r.scenario == "train" else "infer"
    w = workload_from_dict({"model": r.model, "task": task, "engine": r.engine, "precision": r.precision,
                            **r.shape}, where="published run")
    with calibrate.using({}):
        e = estimate(w, device(r.device), model=model(r.model))
    if r.scenario == "decode":
        return e.time.decode_tokens_per_s
    if r.scenario == "prefill":
        return w.batch_size * w.prompt_tokens / e.time.prefill_s if e.time.prefill_s else None
    return e.time.train_tokens_per_s / w.num_devices if e.time.train_tokens_per_s else None


def compare() -> list[dict[str, Any]]:
    """Every published run with its estimate and the ratio estimate / published."""
    rows = []
    for r in RUNS:
        est = estimate_run(r)
        rows.append({"run": r, "estimate": est, "ratio": est / r.value if est else None})
    return rows
