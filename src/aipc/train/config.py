"""TrainConfig: every setting of a training run, keyword-only, validated, hashable for exact resume.

Import-light (no torch). ``settings_hash`` covers the settings that change the loss trajectory;
a resume whose hash differs is refused, because it could not reproduce the uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aipc.errors import AipcError

METHODS = ("full", "lora", "qlora")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda", "mps", "xpu")

# Settings that only change what is written or shown, never the numbers of the trajectory.
_IO_ONLY = frozenset({
    "data", "tokenizer", "out", "save_every", "keep", "log_every", "eval_every", "eval_batches", "export",
    "resume", "resume_from", "progress", "mfu", "preflight", "nproc_per_node", "nnodes",
    "rdzv_endpoint", "rdzv_id", "threads", "allow_pickle",
})


@dataclass(kw_only=True)
class TrainConfig:
    """One training run. Sizes are tokens and sequences; ``batch_size`` is per process."""

    model: str                                 # local HF folder, catalog name, HF id or config.json
    data: list[str]                            # files or folders
    out: str = "runs/train"                    # run folder: checkpoints/, metrics.jsonl, run.json
    tokenizer: str | None = None               # override the model's tokenizer (folder)
    allow_pickle: bool = False                 # load pickle weights (pytorch_model*.bin): they can run code
    # data
    seq_len: int = 512
    val_fraction: float = 0.05
    text_field: str = "text"
    prompt_field: str = "prompt"
    completion_field: str = "completion"
    messages_field: str = "messages"
    # method
    method: str = "full"
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    lora_targets: list[str] = field(default_factory=lambda: ["all-linear"])
    # optimisation
    batch_size: int = 4                        # sequences per micro-batch per process
    grad_accum: int = 1
    steps: int | None = None                   # optimizer steps; default: one epoch
    epochs: float | None = None
    lr: float = 2e-4
    min_lr_ratio: float = 0.0                  # cosine decays to lr * min_lr_ratio
    warmup_steps: int = 0
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    max_grad_norm: float = 1.0                 # 0 disables clipping
    seed: int = 0
    # acceleration
    device: str = "auto"
    precision: str = "auto"
    grad_ckpt: bool = False
    compile: bool = False
    fused_loss: bool = True                    # chunked linear + cross-entropy (no full logits tensor)
    deterministic: bool | None = None          # default: True on CPU
    threads: int | None = None                 # CPU threads per process
    fsdp: bool = False
    # distributed launch (read by the launcher; workers get WORLD_SIZE from torchrun)
    nproc_per_node: int = 1
    nnodes: int = 1
    rdzv_endpoint: str | None = None
    rdzv_id: str = "aipc-train"
    # output
    save_every: int = 0                        # 0: only at the end
    keep: int = 2                              # checkpoints kept (the newest ones)
    log_every: int = 1
    eval_every: int = 0                        # 0: only at the end
    eval_batches: int = 0                      # 0: the whole validation split
    export: str | None = None                  # write a merged HF model folder here at the end
    resume: bool = False
    resume_from: str | None = None             # a checkpoint folder (default: the run's latest)
    progress: bool = True
    mfu: bool = True                           # look up the measured peak for MFU
    preflight: bool = True                     # run the estimator before training

    def validate(self) -> TrainConfig:
        """Check every field; raise AipcError with a one-line fix on the first problem."""
        def pos(name: str, allow_zero: bool = False) -> None:
            v = getattr(self, name)
            low = 0 if allow_zero else 1
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise AipcError(f"--{name.replace('_', '-')} must be a whole number >= {low} (got {v!r})")

        if not self.data:
            raise AipcError("no training data; pass --data FILE_OR_FOLDER (text, .jsonl or .parquet)")
        if self.method not in METHODS:
            raise AipcError(f"--method must be one of {', '.join(METHODS)} (got {self.method!r})")
        if self.precision not in PRECISIONS:
            raise AipcError(f"--precision must be one of {', '.join(PRECISIONS)} (got {self.precision!r})")
        if self.device not in DEVICES:
            raise AipcError(f"--device must be one of {', '.join(DEVICES)} (got {self.device!r})")
        for name in ("seq_len", "batch_size", "grad_accum", "lora_rank", "log_every", "keep",
                     "nproc_per_node", "nnodes"):
            pos(name)
        for name in ("warmup_steps", "save_every", "eval_every", "eval_batches"):
            pos(name, allow_zero=True)
        if self.steps is not None:
            pos("steps")
        if self.epochs is not None and not self.epochs > 0:
            raise AipcError(f"--epochs must be > 0 (got {self.epochs})")
        if self.steps is not None and self.epochs is not None:
            raise AipcError("give --steps or --epochs, not both")
        if not 0 <= self.val_fraction < 1:
            raise AipcError(f"--val-fraction must be in [0, 1) (got {self.val_fraction})")
        if not self.lr > 0:
            raise AipcError(f"--lr must be > 0 (got {self.lr})")
        if not 0 <= self.lora_dropout < 1:
            raise AipcError(f"--lora-dropout must be in [0, 1) (got {self.lora_dropout})")
        if self.max_grad_norm < 0 or not 0 <= self.min_lr_ratio <= 1:
            raise AipcError("--max-grad-norm must be >= 0 and --min-lr-ratio in [0, 1]")
        if self.threads is not None and self.threads < 1:
            raise AipcError(f"--threads must be >= 1 (got {self.threads})")
        if self.nnodes > 1 and not self.rdzv_endpoint:
            raise AipcError("--nnodes > 1 needs --rdzv-endpoint HOST:PORT (the same on every node)")
        if self.fsdp and self.method == "qlora":
            raise AipcError("--fsdp with QLoRA is not supported; use DDP (drop --fsdp)")
        if not self.lora_targets:
            raise AipcError("--lora-targets is empty; name modules such as q_proj,v_proj or all-linear")
        return self

    @property
    def world_size_requested(self) -> int:
        return self.nproc_per_node * self.nnodes

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def trajectory_settings(self) -> dict[str, Any]:
        """The settings that decide the numbers of the run (everything but I/O and launch details)."""
        return {k: v for k, v in self.to_dict().items() if k not in _IO_ONLY and k != "model"}


def settings_hash(settings: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of ``settings`` (first 16 hex digits)."""
    blob = json.dumps(settings, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def changed_settings(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``name: old -> new`` for every setting that differs."""
    keys = sorted(set(old) | set(new))
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]


def default_out(model: str) -> str:
    """runs/<model name> — a stable folder so that --resume finds the run again."""
    name = Path(model.rstrip("/")).name.replace("config.json", "") or Path(model).parent.name
    return str(Path("runs") / (name.replace("/", "_") or "train"))
