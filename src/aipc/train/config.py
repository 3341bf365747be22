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

from aipc import rules as R
from aipc.errors import AipcError
from aipc.rules import flag

METHODS = ("full", "lora", "qlora")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda", "mps", "xpu")

# Settings that only change what is written or shown, never the numbers of the trajectory.
_IO_ONLY = frozenset({
    "data", "tokenizer", "out", "save_every", "keep", "log_every", "eval_every", "eval_batches", "export",
    "resume", "resume_from", "progress", "mfu", "preflight", "nproc_per_node", "nnodes",
    "rdzv_endpoint", "rdzv_id", "threads", "allow_pickle", "allow_network",
})


@dataclass(kw_only=True)
class TrainConfig:
    """One training run. Sizes are tokens and sequences; ``batch_size`` is per process.

    Each field's metadata holds its help text and its rule (:mod:`aipc.rules`): ``aipc train``'s flags
    are generated from these fields (:mod:`aipc.commands.config_opts`), and :meth:`validate` checks the
    same rules for library callers.
    """

    model: str = field(metadata=flag("Local HF folder, catalog model, HF id or config.json.", argument=True))
    data: list[str] = field(metadata=flag("Text file/folder, .jsonl or .parquet (repeatable).", R.PathRule("any")))
    out: str | None = field(default=None, metadata=flag(
        "Run folder: checkpoints/, metrics.jsonl, run.json (default runs/<model>).", R.PathRule("out-dir")))
    tokenizer: str | None = field(default=None, metadata=flag(
        "Tokenizer folder (default: the model's, else byte-level).", R.PathRule("dir")))
    allow_pickle: bool = field(default=False, metadata=flag(
        "Load pickle weights (pytorch_model*.bin) when a folder has no safetensors; pickle can run code, so only "
        "for a source you trust."))
    # data
    seq_len: int = field(default=512, metadata=flag("Tokens per packed sequence.", R.COUNT))
    val_fraction: float = field(default=0.05, metadata=flag("Share of sequences held out for validation.",
                                                            R.FRACTION_OPEN))
    text_field: str = field(default="text", metadata=flag("JSONL/parquet field with plain text."))
    prompt_field: str = field(default="prompt", metadata=flag("Field with the prompt (prompt/completion data)."))
    completion_field: str = field(default="completion", metadata=flag("Field with the completion."))
    messages_field: str = field(default="messages", metadata=flag("Field with chat messages."))
    # method
    method: str = field(default="full", metadata=flag("full | lora | qlora (CUDA)."))
    lora_rank: int = field(default=16, metadata=flag("LoRA rank r (the same default as estimate and bench).",
                                                     R.Num(int, ge=1, le=65536)))
    lora_alpha: float = field(default=32.0, metadata=flag("LoRA alpha (scale alpha / r).", R.Num(float, gt=0, le=1e6)))
    lora_dropout: float = field(default=0.0, metadata=flag("Dropout on the LoRA input.", R.FRACTION_OPEN))
    lora_targets: list[str] = field(default_factory=lambda: ["all-linear"], metadata=flag(
        "Comma list of module names, or all-linear.", split=","))
    # optimisation
    batch_size: int = field(default=4, metadata=flag("Sequences per micro-batch per process.", R.COUNT,
                                                     name="--batch", aliases=("--batch-size",)))
    grad_accum: int = field(default=1, metadata=flag("Micro-batches per optimizer step.", R.COUNT))
    steps: int | None = field(default=None, metadata=flag("Optimizer steps (default: one epoch).",
                                                          R.Num(int, ge=1, le=10**9)))
    epochs: float | None = field(default=None, metadata=flag("Epochs (instead of --steps).", R.Num(float, gt=0, le=1e6)))
    lr: float = field(default=2e-4, metadata=flag("Peak learning rate.", R.Num(float, gt=0, le=10)))
    min_lr_ratio: float = field(default=0.0, metadata=flag("Cosine decays to lr * this.", R.FRACTION))
    warmup_steps: int = field(default=0, metadata=flag("Linear warm-up steps.", R.COUNT0))
    weight_decay: float = field(default=0.0, metadata=flag("AdamW weight decay (matrices only).",
                                                           R.Num(float, ge=0, le=10)))
    beta1: float = field(default=0.9, metadata=flag("AdamW beta1.", R.FRACTION_OPEN))
    beta2: float = field(default=0.999, metadata=flag("AdamW beta2.", R.FRACTION_OPEN))
    eps: float = field(default=1e-8, metadata=flag("AdamW epsilon.", R.Num(float, gt=0, le=1)))
    max_grad_norm: float = field(default=1.0, metadata=flag("Clip gradients to this norm; 0 disables clipping.",
                                                            R.Num(float, ge=0, le=1e6)))
    seed: int = field(default=0, metadata=flag("Seed of weights, data order and dropout.", R.SEED))
    # acceleration
    device: str = field(default="auto", metadata=flag("auto (cuda > mps > xpu > cpu) | cpu | cuda | mps | xpu."))
    precision: str = field(default="auto", metadata=flag("auto | fp32 | bf16 (autocast) | fp16 (autocast + scaler)."))
    grad_ckpt: bool = field(default=False, metadata=flag("Gradient checkpointing."))
    compile: bool = field(default=False, metadata=flag("torch.compile the model."))
    fused_loss: bool = field(default=True, metadata=flag("Chunked linear + cross-entropy (no full logits tensor)."))
    deterministic: bool | None = field(default=None, metadata=flag("Deterministic kernels (default: on for CPU)."))
    threads: int | None = field(default=None, metadata=flag("CPU threads per process.", R.THREADS))
    fsdp: bool = field(default=False, metadata=flag("Shard with FSDP instead of DDP."))
    # distributed launch (read by the launcher; workers get WORLD_SIZE from torchrun)
    nproc_per_node: int = field(default=1, metadata=flag("Processes per node (torchrun).", R.Num(int, ge=1, le=1024),
                                                         name="--nproc"))
    nnodes: int = field(default=1, metadata=flag("Machines (needs --rdzv-endpoint and --allow-network).",
                                                 R.Num(int, ge=1, le=65536), name="--nodes", aliases=("--nnodes",)))
    rdzv_endpoint: str | None = field(default=None, metadata=flag("HOST:PORT of the rendezvous (multi-node)."))
    rdzv_id: str = field(default="aipc-train", metadata=flag("Rendezvous id (the same on every node)."))
    # output
    save_every: int = field(default=0, metadata=flag("Checkpoint every N steps (always at the end).", R.COUNT0))
    keep: int = field(default=2, metadata=flag("Checkpoints kept (the newest ones).", R.COUNT))
    log_every: int = field(default=1, metadata=flag("Log every N steps.", R.COUNT))
    eval_every: int = field(default=0, metadata=flag("Validate every N steps (0: only at the end).", R.COUNT0))
    eval_batches: int = field(default=0, metadata=flag("Validation batches (0: the whole split).", R.COUNT0))
    export: str | None = field(default=None, metadata=flag("Write the merged model as an HF folder here (new or empty).",
                                                           R.PathRule("new-dir")))
    resume: bool = field(default=False, metadata=flag("Continue the run in --out from its latest checkpoint."))
    resume_from: str | None = field(default=None, metadata=flag("Continue from this checkpoint (or run) folder.",
                                                                R.PathRule("dir")))
    progress: bool = field(default=True, metadata=flag(cli=False))
    mfu: bool = field(default=True, metadata=flag("Look up the measured peak for MFU."))
    preflight: bool = field(default=True, metadata=flag("Run the estimator's fit check before training."))
    allow_network: bool = field(default=False, metadata=flag(
        "Turn off the offline guard (multi-node training needs it)."))

    def __post_init__(self) -> None:
        if self.out is None:
            self.out = default_out(self.model)

    def validate(self) -> TrainConfig:
        """Check every field; raise AipcError with a one-line fix on the first problem."""
        if not self.data:
            raise AipcError("no training data; pass --data FILE_OR_FOLDER (text, .jsonl or .parquet)")
        for name, allowed in (("method", METHODS), ("precision", PRECISIONS), ("device", DEVICES)):
            if getattr(self, name) not in allowed:
                raise AipcError(f"--{name} must be one of {', '.join(allowed)} (got {getattr(self, name)!r})")
        R.check_fields(self)
        if self.steps is not None and self.epochs is not None:
            raise AipcError("give --steps or --epochs, not both")
        if self.nnodes > 1 and not self.rdzv_endpoint:
            raise AipcError("--nodes > 1 needs --rdzv-endpoint HOST:PORT (the same on every node)")
        if self.rdzv_endpoint:
            check_endpoint(self.rdzv_endpoint, self.allow_network)
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


def check_endpoint(endpoint: str, allow_network: bool) -> None:
    """``--rdzv-endpoint HOST:PORT``: well formed; a host other than this machine needs --allow-network."""
    from aipc.privacy.guard import is_local_ip, is_loopback_name

    host, sep, port = endpoint.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise AipcError(f"--rdzv-endpoint must be HOST:PORT with a port in 1..65535 (got {endpoint!r})")
    if not allow_network and not (is_loopback_name(host) or is_local_ip(host)):
        raise AipcError(f"--rdzv-endpoint {endpoint} is on another machine and aipc runs offline; "
                        "pass --allow-network to train across machines")
