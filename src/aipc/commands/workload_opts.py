"""Workload flags shared by estimate, validate and bench: one definition, added to a command's
signature by :func:`with_workload_options`, turned into a validated Workload by :func:`build_workload`."""

from __future__ import annotations

import functools
import inspect
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from aipc.errors import AipcError

_OPTS: dict[str, tuple[Any, Any]] = {
    "task": (Optional[str], typer.Option(None, "--task", help="infer or train (default infer)")),
    "engine": (Optional[str], typer.Option(None, "--engine", help="torch, llamacpp or openvino (default torch; a .gguf model or a GGUF --precision means llamacpp, an OpenVINO IR folder openvino)")),
    "method": (Optional[str], typer.Option(None, "--method", help="full, lora, qlora or freeze")),
    "precision": (Optional[str], typer.Option(None, "--precision", help="fp32, bf16, fp16, amp-bf16, mixed-bf16, int8, int4, nf4; llama.cpp (GGUF): f16, q8_0, q6_k, q5_k_m, q4_k_m, q4_0, ... (default with --engine llamacpp: q4_k_m)")),
    "kv_dtype": (Optional[str], typer.Option(None, "--kv-dtype", help="KV cache precision (default: compute)")),
    "optimizer": (Optional[str], typer.Option(None, "--optimizer", help="adamw, adamw8bit, paged-adamw, paged-adamw8bit, sgd, sgd-momentum")),
    "batch_size": (Optional[int], typer.Option(None, "--batch", help="sequences per device per micro-step")),
    "seq_len": (Optional[int], typer.Option(None, "--seq-len", help="training sequence length")),
    "prompt_tokens": (Optional[int], typer.Option(None, "--prompt-tokens", help="inference prompt length")),
    "gen_tokens": (Optional[int], typer.Option(None, "--gen-tokens", help="tokens generated per request")),
    "context": (Optional[int], typer.Option(None, "--context", help="total context: seq len (train) or prompt+generated (infer)")),
    "grad_ckpt": (Optional[bool], typer.Option(None, "--grad-ckpt/--no-grad-ckpt", help="full activation checkpointing")),
    "grad_accum": (Optional[int], typer.Option(None, "--grad-accum", help="gradient accumulation steps")),
    "lora_rank": (Optional[int], typer.Option(None, "--lora-rank", help="LoRA rank r")),
    "adapter_dtype": (Optional[str], typer.Option(None, "--adapter-dtype", help="LoRA/QLoRA adapter dtype: fp32 (peft's default), bf16 or fp16")),
    "lora_targets": (Optional[str], typer.Option(None, "--lora-targets", help="comma-separated modules or all-linear")),
    "attention": (Optional[str], typer.Option(None, "--attention", help="sdpa, flash or eager")),
    "num_devices": (Optional[int], typer.Option(None, "--num-devices", help="devices to spread over")),
    "sharding": (Optional[str], typer.Option(None, "--sharding", help="ddp, zero1, zero2, zero3, fsdp, tp")),
    "nodes": (Optional[int], typer.Option(None, "--nodes", help="machines")),
    "link": (Optional[str], typer.Option(None, "--link", help="pcie4, pcie5, nvlink4, 10gbe, 100gbe, ib-ndr, ...")),
    "train_tokens": (Optional[int], typer.Option(None, "--train-tokens", help="tokens to train on (job time)")),
}


def with_workload_options(f: Callable) -> Callable:
    """Add the workload flags to a typer command; the command receives them as ``wopts`` (a dict)."""
    sig = inspect.signature(f)
    params = [p for p in sig.parameters.values() if p.name != "wopts"]
    extra = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=o, annotation=t) for n, (t, o) in _OPTS.items()]

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        wopts = {n: kwargs.pop(n) for n in _OPTS if n in kwargs}
        return f(*args, wopts=wopts, **kwargs)

    pos = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    kw = [p for p in params if p not in pos]
    wrapper.__signature__ = sig.replace(parameters=[*pos, *kw, *extra])
    return wrapper


DEFAULT_LLAMACPP = "q4_k_m"  # Ollama's and most published GGUF downloads' default quantization


def _file_format(ref: str) -> dict[str, Any]:
    """A .gguf model brings its engine and weight format: {'engine': 'llamacpp', 'weight_dtype': 'q4_k_m'}."""
    from aipc.models.gguf import is_gguf_path

    if not is_gguf_path(ref):
        return {}
    from aipc.estimate import resolve_model

    return {"engine": "llamacpp", "weight_dtype": resolve_model(ref).weight_format}


def build_workload(ref: str, wopts: dict[str, Any]):
    """A validated Workload from MODEL (or a workload .toml/.json) plus flags (flags override the file)."""
    from aipc.spec import is_hf_config_file, load_workload_file, precision_fields, workload_from_dict

    given = {k: v for k, v in wopts.items() if v is not None}
    p = Path(ref)
    base: dict[str, Any] = {}
    if p.suffix.lower() in (".toml",) or (p.suffix.lower() == ".json" and p.name != "config.json"
                                          and not is_hf_config_file(p)):
        base = load_workload_file(p).to_dict()
    else:
        base = {"model": ref, **_file_format(ref)}
    task = given.get("task", base.get("task", "infer"))
    if "precision" in given:
        base.update(precision_fields(str(given.pop("precision")).lower(), task))
    elif given.get("engine") == "llamacpp" and base.get("engine") != "llamacpp":
        base.update(weight_dtype=DEFAULT_LLAMACPP, compute_dtype=None)  # what llama.cpp users run
    ctx = given.pop("context", None)
    if ctx is not None:
        if ctx <= 0:
            raise AipcError(f"--context must be a positive number of tokens (got {ctx})")
        if task == "train":
            given.setdefault("seq_len", ctx)
        else:
            gen = given.get("gen_tokens", base.get("gen_tokens", 256))
            if ctx <= gen:
                raise AipcError(f"--context {ctx} must exceed --gen-tokens {gen}")
            given.setdefault("prompt_tokens", ctx - gen)
    if given.get("method") == "qlora" and "precision" not in wopts:
        given.setdefault("weight_dtype", "nf4")
    if given.get("lora_targets") == "all-linear":
        given["lora_targets"] = ["all-linear"]
    return workload_from_dict({**base, **given}, where="flags")
