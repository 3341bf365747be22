"""Typed results of the estimator. Units in field names: bytes, FLOPs, seconds, tokens."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, kw_only=True)
class MemoryBreakdown:
    """Per-device memory at the peak phase of a step; ``components`` sum to ``peak_bytes``.

    ``phases`` gives the total of every phase (forward, backward, optimizer; prefill, decode), so a
    reader sees why the peak is where it is. ``weights_only_bytes`` is the naive weights-only figure
    other calculators report, kept as a baseline."""

    peak_bytes: int
    peak_phase: str
    components: dict[str, int]
    phases: dict[str, int]
    weights_only_bytes: int
    notes: tuple[str, ...] = ()
    allocator: str = ""              # the allocator behaviour the peak describes (memory.allocator_behaviour)


@dataclass(frozen=True, kw_only=True)
class Compute:
    """FLOPs and bytes moved. Training FLOPs per token follow 6N (+ attention), 8N with full
    recomputation, 4N + adapter terms for LoRA; decode is 2N per token plus attention over the
    context and reads all weights + the KV cache once per step."""

    params: int
    active_params: int
    trainable_params: int
    flops_per_token: float           # training: per trained token (fwd+bwd); inference: per generated token
    flops_per_step: float            # training: per optimizer step (all devices); inference: prefill of the batch
    prefill_flops: float
    decode_flops_per_step: float     # one decode step of the whole batch
    decode_bytes_per_step: float     # weights + KV cache read per decode step (per device)
    comm_bytes_per_step: float = 0.0 # multi-device: bytes each device sends+receives per training step
    layers: int = 0                  # transformer blocks one decode step runs through (per-layer overhead)
    model_flops_per_token: float = 0.0  # what MFU counts: flops_per_token without checkpointing's recompute
    # llama.cpp: share of the blocks' matrix elements per ggml type ((type, share), ...): the kernels
    # its prefill runs on (aipc.estimate.kernels); () for other engines
    prefill_mix: tuple = ()
    prefill_width: float | None = None  # llama.cpp, OpenVINO: matrix elements per layer / hidden (estimate.kernels)
    decode_mix: tuple = ()  # llama.cpp: a decode step's FLOPs per ggml type, the head's and attention's too
    decode_attention_flops: float = 0.0  # of decode_flops_per_step: the attention's over the KV cache
    heads: int = 0                       # query heads (llama.cpp's measured decode attention is per head count)

    @property
    def model_flops_per_step(self) -> float:
        """Training: model FLOPs of one optimizer step (MFU's numerator); inference: the prefill."""
        if not self.model_flops_per_token or not self.flops_per_token:
            return self.flops_per_step
        return self.flops_per_step * self.model_flops_per_token / self.flops_per_token


@dataclass(frozen=True, kw_only=True)
class Efficiency:
    """Fractions of peak achieved, with where each came from."""

    mfu_train: float
    mfu_prefill: float
    mbu_decode: float
    source: str                      # "default: ..." or "calibrated: ..."
    decode_layer_s: float = 0.0      # fixed time per layer per decode step (operator overhead), calibrated only
    # llama.cpp on a CPU: the decode attention is timed apart at aipc hw --kernels' measured FLOP/s; False for a
    # calibration fitted with the attention inside its MBU and per-layer time (aipc.estimate.calibrate.ATTENTION)
    attention_apart: bool = True


@dataclass(frozen=True, kw_only=True)
class Timing:
    """Times by roofline: max(FLOPs / (peak x MFU), bytes / (bandwidth x MBU)) per phase."""

    step_s: float | None = None          # training: one optimizer step
    train_tokens_per_s: float | None = None
    train_s: float | None = None         # training: the workload's train_tokens (0 -> None)
    prefill_s: float | None = None       # inference: prompt processing of the batch (= TTFT)
    ttft_s: float | None = None          # includes prefill
    tpot_s: float | None = None          # time per output token after the first (excludes the first)
    decode_tokens_per_s: float | None = None  # whole batch
    request_s: float | None = None       # prefill + all generated tokens
    bound: str = ""                      # compute | memory (decode) | comm
    comm_s: float = 0.0
    decode_attention_s: float = 0.0      # of tpot_s: the attention timed apart (llama.cpp on a CPU)


@dataclass(frozen=True, kw_only=True)
class Storage:
    """Disk a team must plan: model files to obtain, checkpoints, dataset tokens."""

    model_files_bytes: int
    checkpoint_bytes: int            # one checkpoint
    checkpoints_kept: int
    dataset_bytes: int


@dataclass(frozen=True, kw_only=True)
class Estimate:
    workload: dict[str, Any]
    model: str
    device: str
    device_label: str
    memory: MemoryBreakdown
    capacity_bytes: int              # usable memory of one device
    fits: bool
    devices_needed: int | None       # devices of this kind needed to fit (None: no count fits)
    headroom_bytes: int              # capacity - peak (negative when it does not fit)
    compute: Compute
    efficiency: Efficiency
    time: Timing
    storage: Storage
    verdict: str                     # one line: "fits: 18.4 of 24.0 GB" / "does not fit: needs ..."
    suggestions: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        from aipc.render import to_jsonable

        return {k: to_jsonable(v) for k, v in self.__dict__.items()}


@dataclass(frozen=True, kw_only=True)
class Search:
    """Backward search results for one device: the largest shapes and fewest devices that fit."""

    device: str
    max_batch: int | None
    max_context: int | None
    min_devices: int | None
    fastest: dict[str, Any] = field(default_factory=dict)
