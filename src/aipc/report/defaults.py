"""What ``aipc report`` measures, estimates and decides when given no arguments.

Three workloads a small team asks about first — serving an 8B chat model, a LoRA fine-tune of a 7B
model, a full fine-tune of a 1B model — estimated on this machine and every catalog device; a needs
file with the same three as monthly demand for buy-versus-rent; and a small model benchmarked on each
local device with short shapes so the whole report stays within about two minutes on a 2-core CPU.
Import-light (no torch).
"""

from __future__ import annotations

import copy
from typing import Any

# The model measured on every local device (aipc bench's default small model) and its shapes:
# short prompts and sequences keep one quick run on a 2-core CPU to tens of seconds.
BENCH_MODEL = "smollm2-135m"
BENCH_SHAPE: dict[str, Any] = {"batch": 1, "prompt": 32, "gen": 8, "seq": 32, "method": "full"}
BENCH_SCENARIOS = ("prefill", "decode", "train")
# Timing loop for the report's bench: 1 warm-up, then >= 3 samples and >= 0.2 s, at most 2 s per scenario.
BENCH_LOOP = {"warmup": 1, "min_reps": 3, "min_s": 0.2, "max_s": 2.0}
# Where llama.cpp is installed, the bench model also runs through it at two GGUF types (their bytes per
# layer differ ~1.8x, so decode's two terms — bandwidth and per-layer time — can be told apart); the
# local llama.cpp estimates use factors fitted on these runs unless 'aipc calibrate' stored some.
ENGINE_BENCH_FORMATS = ("q4_k_m", "q8_0")  # llama.cpp
# every quantized engine the report measures where it is installed, with its weight formats
ENGINE_BENCH = {"llamacpp": ENGINE_BENCH_FORMATS, "openvino": ("int4", "int8")}
ENGINE_BENCH_SHAPE: dict[str, Any] = {"batch": 1, "prompt": 256, "gen": 16}

# Workloads estimated on this machine and every catalog device (aipc.spec.Workload fields).
WORKLOADS: list[dict[str, Any]] = [
    {"name": "Serve an 8B chat model",
     "workload": {"model": "llama-3.1-8b", "task": "infer", "precision": "bf16", "batch_size": 1,
                  "prompt_tokens": 512, "gen_tokens": 256}},
    {"name": "LoRA fine-tune of a 7B model",
     "workload": {"model": "mistral-7b-v0.3", "task": "train", "method": "lora", "precision": "bf16",
                  "batch_size": 1, "seq_len": 2048, "grad_ckpt": True, "lora_rank": 16}},
    {"name": "Full fine-tune of a 1B model",
     "workload": {"model": "llama-3.2-1b", "task": "train", "method": "full", "precision": "bf16",
                  "batch_size": 1, "seq_len": 2048, "grad_ckpt": True}},
]

# The needs file decided by default: the same three workloads as a team's monthly demand. Fields
# left out take aipc.cost's documented defaults (each with its source and date).
NEEDS: dict[str, Any] = {
    "currency": "USD",
    "jobs": [
        {"name": "LoRA fine-tune of a 7B model", "model": "mistral-7b-v0.3", "method": "lora",
         "train_tokens": 20_000_000, "jobs_per_month": 4, "deadline_hours": 24, "seq_len": 2048,
         "batch_size": 1},
        {"name": "Full fine-tune of a 1B model", "model": "llama-3.2-1b", "method": "full",
         "train_tokens": 50_000_000, "jobs_per_month": 1, "deadline_hours": 48, "seq_len": 2048,
         "batch_size": 1},
    ],
    "inference": [
        {"name": "Serve an 8B chat model", "model": "llama-3.1-8b", "requests_per_day": 2000,
         "prompt_tokens": 512, "output_tokens": 256},
    ],
}

# Devices whose memory capacity is marked on the memory chart (when in the catalog), besides this
# machine's: a 16 GB and a 24 GB card, a 32 GB card, a 128 GB unified-memory AI PC, an 80 GB datacenter GPU.
CAPACITY_MARKS = ("rtx-4060-ti-16gb", "rtx-4090", "rtx-5090", "dgx-spark", "h100-sxm")
# Catalog devices shown in the estimated-speed chart (all catalog devices are in the table).
SPEED_CHART_LIMIT = 14


def workloads() -> list[dict[str, Any]]:
    return copy.deepcopy(WORKLOADS)


def needs() -> dict[str, Any]:
    return copy.deepcopy(NEEDS)


def with_model(model: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The default workloads and needs with every model replaced by ``model`` (``--model``)."""
    ws = workloads()
    names = {"infer": f"Serve {model}", "lora": f"LoRA fine-tune of {model}", "full": f"Full fine-tune of {model}"}
    for w in ws:
        wl = w["workload"]
        wl["model"] = model
        w["name"] = names["infer"] if wl["task"] == "infer" else names[wl.get("method", "full")]
    n = needs()
    for j in n["jobs"]:
        j["model"] = model
        j["name"] = names[j["method"]]
    for i in n["inference"]:
        i["model"] = model
        i["name"] = names["infer"]
    return ws, n
