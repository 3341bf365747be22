"""Workload: what a team wants to run — typed, validated, keyword-only.

A Workload names a model (catalog name, HF id, config.json or folder), a task (``infer`` or
``train``), a method, precisions, shapes and parallelism. It is loadable from TOML/JSON and from CLI
flags; :func:`Workload.validate` turns bad input into one-line :class:`~aipc.errors.AipcError`.
Import-light: no torch.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aipc.datafile import read_data
from aipc.errors import AipcError

TASKS = ("infer", "train")
METHODS = ("full", "lora", "qlora", "freeze")
# paged-*: bitsandbytes paged optimizers (QLoRA, Dettmers et al. 2023 sec. 3): states in CUDA unified
# memory that page out to host RAM while the GPU is short; paged-adamw keeps fp32 states (bnb
# PagedAdamW32bit, qlora.py's default), paged-adamw8bit block-quantized 8-bit states.
OPTIMIZERS = ("adamw", "adamw8bit", "paged-adamw", "paged-adamw8bit", "sgd", "sgd-momentum")
PAGED_OPTIMIZERS = ("paged-adamw", "paged-adamw8bit")
ADAPTER_DTYPES = ("fp32", "bf16", "fp16")
ATTENTION = ("sdpa", "eager", "flash")
SHARDING = ("none", "ddp", "zero1", "zero2", "zero3", "fsdp", "tp")
# Inference engines (aipc.engines): torch (FastLM / HF), llama.cpp (GGUF files), OpenVINO (IR folders)
ENGINES = ("torch", "llamacpp", "openvino")

# Bytes per stored value. Quantized formats include their scales:
#  int4 (GPTQ/AWQ style, group g): 4 bits + fp16 scale + 4-bit zero per group  -> 0.5 + 2.5/g
#  nf4 (QLoRA, bitsandbytes): 4 bits + double-quantized absmax: 0.5 + 1/64 + 4/(64*256) ~ 0.516
#    (Dettmers et al. 2023, "QLoRA", sec. 3: 0.127 bits/param of constants at block 64)
#  GGUF bits per weight from llama.cpp's quantization table (FIELD-NOTES: q4_0 4.5, q4_k_m ~4.85,
#    q5_k_m ~5.7, q6_k 6.56, q8_0 8.5, f16 16).
DTYPE_BYTES: dict[str, float] = {
    "fp32": 4.0, "tf32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0,
    "int4": 0.5 + 2.5 / 128, "nf4": 0.5 + 1 / 64 + 4 / (64 * 256),
    "q4_0": 4.5 / 8, "q4_k_m": 4.85 / 8, "q5_k_m": 5.7 / 8, "q6_k": 6.56 / 8, "q8_0": 8.5 / 8, "f16": 2.0,
}
QUANTIZED = ("int8", "int4", "nf4", "q4_0", "q4_k_m", "q5_k_m", "q6_k", "q8_0")
FLOAT_DTYPES = ("fp32", "bf16", "fp16")
DEFAULT_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

# --precision presets: (weight, compute, optimizer states, fp32 master copy)
PRECISION_PRESETS: dict[str, tuple[str, str, str | None, bool]] = {
    "fp32": ("fp32", "fp32", None, False),
    "bf16": ("bf16", "bf16", None, False),         # pure bf16: torch AdamW keeps states in the param dtype
    "fp16": ("fp16", "fp16", None, False),
    "amp-bf16": ("fp32", "bf16", None, False),     # fp32 weights, bf16 autocast (torch.autocast)
    "amp-fp16": ("fp32", "fp16", None, False),
    "mixed-bf16": ("bf16", "bf16", "fp32", True),  # Megatron/DeepSpeed: bf16 weights+grads, fp32 master+states
}


def dtype_bytes(dtype: str, group_size: int = 128) -> float:
    """Bytes per value of a storage dtype (int4 depends on its group size)."""
    if dtype == "int4":
        return 0.5 + 2.5 / group_size
    return DTYPE_BYTES[dtype]


@dataclass(frozen=True, kw_only=True)
class Workload:
    """One workload. Sizes are tokens; ``seq_len`` is the training sequence length,
    ``prompt_tokens``/``gen_tokens`` the inference shape (context = prompt + generated)."""

    model: str
    task: str = "infer"
    engine: str = "torch"                  # the runtime the workload runs on (ENGINES); training is torch only
    method: str = "full"
    weight_dtype: str = "bf16"
    compute_dtype: str | None = None       # default: weight dtype, or bf16 for quantized weights
    optim_dtype: str | None = None         # default: the trainable parameters' dtype (torch behaviour)
    master_weights: bool = False           # an fp32 master copy of trainable weights (mixed precision)
    kv_dtype: str | None = None            # default: compute dtype
    int4_group_size: int = 128
    batch_size: int = 1
    seq_len: int = 2048
    prompt_tokens: int = 512
    gen_tokens: int = 256
    grad_ckpt: bool = False
    grad_accum: int = 1
    optimizer: str = "adamw"
    lora_rank: int = 16
    adapter_dtype: str | None = None       # LoRA/QLoRA adapter weights (and their grads): default fp32 (peft's)
    lora_targets: tuple[str, ...] = DEFAULT_LORA_TARGETS
    trainable_layers: int = 2              # method "freeze": train only the top N blocks and the head
    attention: str = "sdpa"                # sdpa / flash: fused (no s^2 scores kept); eager: scores materialized
    num_devices: int = 1
    sharding: str = "none"
    nodes: int = 1
    link: str | None = None                # interconnect for multi-device: pcie4, nvlink4, 100gbe, ib-ndr, ...
    train_tokens: int = 0                  # D, tokens to train on (for a job's total time)
    logits_fp32: bool = True               # loss upcasts logits to fp32 (HF does)
    fused_loss: bool = False               # chunked head + cross-entropy (aipc train): full logits never held

    # ----- derived -----
    @property
    def compute(self) -> str:
        if self.compute_dtype:
            return self.compute_dtype
        return self.weight_dtype if self.weight_dtype in FLOAT_DTYPES else "bf16"

    @property
    def adapter(self) -> str:
        """The LoRA adapters' dtype: fp32 unless set (peft keeps adapters in fp32 by default)."""
        return self.adapter_dtype or "fp32"

    @property
    def kv(self) -> str:
        return self.kv_dtype or self.compute

    @property
    def is_train(self) -> bool:
        return self.task == "train"

    @property
    def context(self) -> int:
        """Tokens the model attends over: seq_len for training, prompt + generated for inference."""
        return self.seq_len if self.is_train else self.prompt_tokens + self.gen_tokens

    @property
    def tokens_per_step(self) -> int:
        """Training tokens per optimizer step across all data-parallel devices."""
        dp = 1 if self.sharding == "tp" else self.num_devices
        return self.batch_size * self.seq_len * self.grad_accum * dp

    def replace(self, **changes: Any) -> Workload:
        return dataclasses.replace(self, **changes).validate()

    def to_dict(self) -> dict[str, Any]:
        d = {name: getattr(self, name) for name in _FIELD_NAMES}
        d["lora_targets"] = list(self.lora_targets)
        return d

    # ----- validation -----
    def validate(self) -> Workload:
        """Check every field; raise AipcError with a one-line fix on the first problem."""
        def choice(field: str, value: Any, options: tuple[str, ...]) -> None:
            if value not in options:
                raise AipcError(f"{field} must be one of {', '.join(options)} (got {value!r})")

        if not isinstance(self.model, str) or not self.model.strip():
            raise AipcError("model is missing; name a catalog model (see 'aipc models'), a config.json or a folder")
        choice("task", self.task, TASKS)
        choice("method", self.method, METHODS)
        choice("optimizer", self.optimizer, OPTIMIZERS)
        choice("attention", self.attention, ATTENTION)
        choice("sharding", self.sharding, SHARDING)
        choice("engine", self.engine, ENGINES)
        if self.is_train and self.engine != "torch":
            raise AipcError(f"engine {self.engine} runs inference only; train with --engine torch")
        for field in ("weight_dtype", "compute_dtype", "optim_dtype", "kv_dtype"):
            v = getattr(self, field)
            if v is not None and v not in DTYPE_BYTES:
                raise AipcError(f"unknown precision {v!r} for {field}; use one of {', '.join(DTYPE_BYTES)}")
        if self.adapter_dtype is not None and self.adapter_dtype not in ADAPTER_DTYPES:
            raise AipcError(f"adapter dtype must be one of {', '.join(ADAPTER_DTYPES)} (got {self.adapter_dtype!r})")
        if self.compute not in ("fp32", "bf16", "fp16", "fp8"):
            raise AipcError(f"compute precision must be fp32, bf16, fp16 or fp8 (got {self.compute!r})")
        for field in ("batch_size", "seq_len", "prompt_tokens", "gen_tokens", "grad_accum", "num_devices",
                      "nodes", "lora_rank", "int4_group_size", "trainable_layers"):
            v = getattr(self, field)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise AipcError(f"{field} must be a positive whole number (got {v!r})")
        if self.train_tokens < 0 or isinstance(self.train_tokens, bool):
            raise AipcError(f"train_tokens must be >= 0 (got {self.train_tokens!r})")
        if self.task == "infer" and self.method != "full":
            raise AipcError(f"method {self.method!r} is for training; use --task train or --method full")
        if self.method == "qlora" and self.weight_dtype not in ("nf4", "int4"):
            object.__setattr__(self, "weight_dtype", "nf4")
        if self.is_train and self.weight_dtype in QUANTIZED and self.method not in ("qlora", "lora"):
            raise AipcError(f"cannot train {self.weight_dtype} weights with method {self.method}; "
                            "use --method qlora (4-bit base + LoRA) or a float precision")
        if self.is_train and self.weight_dtype.startswith("q") and self.weight_dtype not in ("qlora",):
            raise AipcError(f"GGUF type {self.weight_dtype} is for llama.cpp-style inference, not training")
        if self.sharding == "none" and self.num_devices > 1:
            object.__setattr__(self, "sharding", "ddp" if self.is_train else "tp")
        if self.sharding == "tp" and self.is_train:
            raise AipcError("tensor parallel ('tp') is modelled for inference only; use ddp, zero1-3 or fsdp for training")
        if self.sharding in ("ddp", "zero1", "zero2", "zero3", "fsdp") and not self.is_train:
            raise AipcError(f"sharding {self.sharding} is for training; use --sharding tp for inference on several devices")
        if not self.lora_targets:
            raise AipcError("lora_targets is empty; name modules such as q_proj,v_proj or 'all-linear'")
        return self


_FIELD_NAMES = tuple(f.name for f in dataclasses.fields(Workload))


def _coerce(field: dataclasses.Field, value: Any, where: str) -> Any:
    """Coerce a TOML/JSON/CLI value to the field's type, with a one-line error on mismatch."""
    t = str(field.type)
    try:
        if t.startswith("int"):
            if isinstance(value, bool):
                raise TypeError
            if isinstance(value, float):
                if not math.isfinite(value) or value != int(value):
                    raise TypeError
                value = int(value)
            return int(value)
        if t.startswith("bool"):
            if isinstance(value, str):
                low = value.strip().lower()
                if low in ("true", "yes", "1", "on"):
                    return True
                if low in ("false", "no", "0", "off"):
                    return False
                raise TypeError
            if not isinstance(value, bool):
                raise TypeError
            return value
        if t.startswith("tuple"):
            if isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                raise TypeError
            return tuple(value)
        if value is None and "None" in t:
            return None
        if not isinstance(value, str):
            raise TypeError
        return value.strip().lower() if field.name != "model" else value.strip()
    except (TypeError, ValueError, OverflowError):
        kind = t.replace("tuple[str, ...]", "list of names").split(" ")[0]
        raise AipcError(f"{where}: field '{field.name}' must be {kind} (got {value!r})") from None


def workload_from_dict(d: dict[str, Any], where: str = "workload") -> Workload:
    """Build a validated Workload from a dict (TOML/JSON), accepting a 'precision' preset."""
    if not isinstance(d, dict):
        raise AipcError(f"{where}: expected a table of workload fields")
    d = dict(d)
    fields = {f.name: f for f in dataclasses.fields(Workload)}
    kwargs: dict[str, Any] = {}
    if "precision" in d:
        preset = d.pop("precision")
        kwargs.update(precision_fields(str(preset).lower(), task=str(d.get("task", "infer")).lower()))
    if d.get("lora_targets") in ("all-linear", ["all-linear"]):
        d["lora_targets"] = list(DEFAULT_LORA_TARGETS)
    for k, v in d.items():
        if k not in fields:
            near = [n for n in fields if n.startswith(k[:3])][:3]
            hint = f"; did you mean {', '.join(near)}?" if near else ""
            raise AipcError(f"{where}: unknown field '{k}'{hint}")
        kwargs[k] = _coerce(fields[k], v, where)
    if "model" not in kwargs:
        raise AipcError(f"{where}: field 'model' is required (a catalog name, config.json or folder)")
    return Workload(**kwargs).validate()


def precision_fields(preset: str, task: str = "infer") -> dict[str, Any]:
    """Expand a --precision preset into weight/compute/optimizer dtypes and master-weight flag.

    Quantized names (int8, int4, nf4, GGUF types) set the weight dtype with bf16 compute."""
    if preset in PRECISION_PRESETS:
        w, c, o, master = PRECISION_PRESETS[preset]
        return {"weight_dtype": w, "compute_dtype": c, "optim_dtype": o, "master_weights": master}
    if preset in QUANTIZED:
        return {"weight_dtype": preset, "compute_dtype": "bf16"}
    options = ", ".join([*PRECISION_PRESETS, *QUANTIZED])
    raise AipcError(f"unknown precision {preset!r}; use one of {options}")


# Keys only a Hugging Face model config has (a workload has 'model' and none of these).
HF_CONFIG_KEYS = frozenset({"model_type", "architectures", "transformers_version", "hidden_size", "n_embd",
                            "num_hidden_layers", "n_layer", "num_attention_heads", "n_head", "vocab_size",
                            "intermediate_size", "max_position_embeddings"})


def is_hf_config(data: Any) -> bool:
    """True for a Hugging Face model config (recognised by its keys, whatever the file is called):
    'model_type' or 'architectures', or two or more other config keys, and no workload 'model' field."""
    if not isinstance(data, dict) or "model" in data or "workload" in data:
        return False
    keys = HF_CONFIG_KEYS & set(data)
    return bool({"model_type", "architectures"} & keys) or len(keys) >= 2


def is_hf_config_file(path: str | Path) -> bool:
    """True when ``path`` is a readable JSON file holding a Hugging Face model config."""
    p = Path(path)
    if p.suffix.lower() != ".json" or not p.is_file():
        return False
    try:
        return is_hf_config(json.loads(p.read_text(encoding="utf-8")))
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        return False


def load_workload_file(path: str | Path) -> Workload:
    """A Workload from a TOML or JSON file (top level, or a [workload] table)."""
    p = Path(path)
    data = read_data(p, what="workload file", fix="pass a .toml or .json file")
    if isinstance(data, dict) and isinstance(data.get("workload"), dict):
        data = data["workload"]
    if is_hf_config(data):
        raise AipcError(f"{p} is a Hugging Face model config, not a workload file; pass it as the model "
                        f"(e.g. 'aipc estimate {p}') or write a workload file with model = \"{p}\"")
    return workload_from_dict(data, where=str(p))
