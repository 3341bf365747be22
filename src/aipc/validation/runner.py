"""Run the validation set: each workload in a fresh subprocess, estimate beside measurement."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from aipc.errors import AipcError
from aipc.estimate import estimate
from aipc.hardware.spec import DeviceSpec
from aipc.spec import workload_from_dict
from aipc.validation import configs

CHILD_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
# The allocator behaviour a child runs under (aipc.runtime.configure_allocator): "aipc" — what aipc's
# own processes set and what the estimate models; "default" — glibc's default malloc, for comparison.
ALLOCATORS = {"aipc": "aipc", "default": "default"}

# The estimator's CPU memory model needs a CPU device; capacity is irrelevant for the comparison.
_CPU = DeviceSpec(name="validate:cpu", label="this CPU", vendor="unknown", kind="cpu", category="this-machine",
                  memory_bytes=1 << 50, usable_memory_bytes=1 << 50, bandwidth_bytes_s=1e10, peak_flops={"fp32": 1e11})


@dataclass(frozen=True, kw_only=True)
class Row:
    name: str
    workload: dict[str, Any]
    measured_bytes: int
    estimated_bytes: int
    weights_only_bytes: int
    peak_phase: str
    measured: dict[str, Any]

    @property
    def error(self) -> float:
        return (self.estimated_bytes - self.measured_bytes) / self.measured_bytes

    @property
    def weights_only_error(self) -> float:
        return (self.weights_only_bytes - self.measured_bytes) / self.measured_bytes


def describe(w: dict[str, Any]) -> str:
    """A short label: 'smollm2-135m train lora bf16 b4 s512 ckpt'."""
    model = Path(w["model"]).parent.name if w["model"].endswith(".json") else w["model"]
    parts = [model, w["task"], w.get("method", "full") if w["task"] == "train" else "", w.get("precision", "")]
    if w.get("engine", "torch") != "torch":
        parts += [w["engine"], w.get("weight_dtype", "")]
    if w["task"] == "train":
        parts.append(f"b{w.get('batch_size', 1)} s{w.get('seq_len')}")
    else:
        parts.append(f"b{w.get('batch_size', 1)} p{w.get('prompt_tokens')}+{w.get('gen_tokens')}")
    if w.get("grad_ckpt"):
        parts.append("ckpt")
    if w.get("attention") == "eager":
        parts.append("eager")
    return " ".join(p for p in parts if p)


def config_set(folder: Path, models: dict[str, dict], workloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``workloads`` with model names replaced by config.json paths of ``models`` written under ``folder``."""
    paths = {}
    for name, cfg in models.items():
        d = folder / name
        d.mkdir(parents=True, exist_ok=True)
        (d / "config.json").write_text(json.dumps(cfg))
        paths[name] = str(d / "config.json")
    return [{**w, "model": paths[w["model"]]} for w in workloads]


def small_set(folder: Path, bf16_native: bool | None = None) -> list[dict[str, Any]]:
    """The small set for this CPU (``configs.small``; ``bf16_native`` None: read from the CPU) with model
    names replaced by config.json paths written under ``folder``."""
    if bf16_native is None:
        from aipc.hardware.local import cpu_bf16_native

        bf16_native = cpu_bf16_native()
    return config_set(folder, configs.SMALL_MODELS, configs.small(bf16_native))


def workloads_of(which: str, folder: Path) -> list[dict[str, Any]]:
    """The workloads of a validation set ('small', 'full' or 'unseen')."""
    if which not in configs.SETS:
        raise AipcError(f"--set must be one of {', '.join(configs.SETS)} (got {which!r})")
    if which == "full":
        return list(configs.FULL)
    if which == "unseen":
        return config_set(folder, configs.UNSEEN_MODELS, configs.UNSEEN)
    return small_set(folder)


def measure(w: dict[str, Any], *, timeout: float = 900, device: str = "cpu", allow_pickle: bool = False,
            allocator: str = "aipc") -> dict[str, Any]:
    """Run one workload in a fresh subprocess under ``allocator`` ('aipc' or 'default') and return
    its measurement."""
    if allocator not in ALLOCATORS:
        raise AipcError(f"--allocator must be one of {', '.join(ALLOCATORS)} (got {allocator!r})")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env.update(CHILD_ENV, AIPC_MALLOC=ALLOCATORS[allocator])
    job = {"workload": w, "device": device, "allow_pickle": allow_pickle}
    if w.get("engine", "torch") != "torch":
        job["model_path"] = engine_model_file(w, allow_pickle=allow_pickle)
    arg = json.dumps(job)
    argv = [sys.executable, "-m", "aipc.privacy.run_guarded", "aipc.validation.child", arg]  # guarded if the verb is
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    if r.returncode != 0:
        tail = (r.stderr.strip().splitlines() or ["no output"])[-1].removeprefix("error: ")
        raise AipcError(f"validation run failed for {describe(w)}: {tail}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def engine_model_file(w: dict[str, Any], *, allow_pickle: bool = False) -> str:
    """The file a non-torch engine reads, made here (before measuring) when needed: a GGUF of the
    workload's model at its weight format for llama.cpp, an IR folder for OpenVINO (converted once,
    then cached)."""
    from aipc.engines import WEIGHT_FORMATS, is_gguf

    engine, fmt = w["engine"], w.get("weight_dtype")
    if w.get("task", "infer") != "infer":
        raise AipcError(f"validate --engine {engine} measures inference; drop --task train")
    if engine == "openvino":
        from aipc.engines.openvino import ensure_ir

        fmt = fmt if fmt in WEIGHT_FORMATS["openvino"] else None
        return str(ensure_ir(w["model"], fmt, progress=False, allow_pickle=allow_pickle)[0])
    if engine != "llamacpp":
        raise AipcError(f"validate runs engine {engine} not yet; use --engine torch, llamacpp or openvino")
    if is_gguf(w["model"]):
        return w["model"]
    if fmt not in WEIGHT_FORMATS["llamacpp"]:
        raise AipcError(f"--engine llamacpp needs a GGUF weight format, got {fmt!r}; pass --precision q4_k_m "
                        "(or q8_0, f16, ...)")
    from aipc.engines.gguf_convert import cached_gguf

    return str(cached_gguf(w["model"], fmt, allow_pickle=allow_pickle))


# CUDA: torch.cuda.max_memory_allocated counts tensors only, so the estimate's CUDA context and
# allocator margin (its runtime component) are left out of the comparison there.
_GPU = DeviceSpec(name="validate:cuda", label="this GPU", vendor="nvidia", kind="gpu", category="this-machine",
                  memory_bytes=1 << 50, usable_memory_bytes=1 << 50, bandwidth_bytes_s=1e12, peak_flops={"bf16": 1e14})


def compare(w: dict[str, Any], measured: dict[str, Any], device: str = "cpu") -> Row:
    """Estimate beside measurement. CPU: measured is above the post-import baseline, so the
    estimate's framework-baseline component (the import's RSS) is left out; CUDA: measured is
    torch.cuda.max_memory_allocated, so framework and runtime (context, margin) are left out."""
    wl = workload_from_dict(w)
    cuda = device.startswith("cuda")
    est = estimate(wl, _GPU if cuda else _CPU)
    left_out = est.memory.components.get("framework", 0) + (est.memory.components.get("runtime", 0) if cuda else 0)
    return Row(name=describe(w), workload=w, measured_bytes=measured["peak_bytes"],
               estimated_bytes=est.memory.peak_bytes - left_out, weights_only_bytes=est.memory.weights_only_bytes,
               peak_phase=est.memory.peak_phase, measured=measured)


def run_set(which: str = "full", progress: Callable[[str], None] | None = None, allocator: str = "aipc",
            device: str = "cpu") -> list[Row]:
    """Measure every workload of the set ('full', 'small' or 'unseen') and compare."""
    tmp = tempfile.TemporaryDirectory(prefix="aipc-validate-")
    ws = workloads_of(which, Path(tmp.name))
    rows = []
    try:
        for i, w in enumerate(ws, 1):
            if progress:
                progress(f"[{i}/{len(ws)}] {describe(w)}")
            rows.append(compare(w, measure(w, allocator=allocator, device=device), device=device))
    finally:
        tmp.cleanup()
    return rows


def summary(rows: list[Row]) -> dict[str, float]:
    """Median and max absolute relative error, for aipc and for the weights-only baseline."""
    e = [abs(r.error) for r in rows]
    b = [abs(r.weights_only_error) for r in rows]
    return {"n": len(rows), "median_abs_error": statistics.median(e), "max_abs_error": max(e),
            "weights_only_median_abs_error": statistics.median(b), "weights_only_max_abs_error": max(b)}
