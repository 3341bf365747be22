"""Device and precision choice: cuda > mps > xpu > cpu, bf16 autocast where supported.

Weights stay fp32 (the optimizer updates fp32 masters); bf16/fp16 are autocast compute dtypes;
fp16 adds a gradient scaler. ``auto`` precision picks bf16 on GPUs that support it, else fp32.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

from aipc.errors import AipcError


@dataclass(frozen=True)
class Placement:
    device: str          # "cpu", "cuda:0", "mps", "xpu:0"
    kind: str            # "cpu", "cuda", "mps", "xpu"
    precision: str       # "fp32", "bf16", "fp16"

    @property
    def autocast_dtype(self):
        from aipc.models.dtypes import torch_dtype

        return None if self.precision == "fp32" else torch_dtype(self.precision)

    def autocast(self):
        """The autocast context for forward passes (a no-op context in fp32)."""
        import torch

        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.kind, dtype=self.autocast_dtype)

    def scaler(self):
        """A GradScaler for fp16, else None."""
        import torch

        if self.precision != "fp16":
            return None
        return torch.amp.GradScaler(self.kind)


def available(kind: str) -> bool:
    import torch

    if kind == "cpu":
        return True
    if kind == "cuda":
        return torch.cuda.is_available()
    if kind == "mps":
        return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if kind == "xpu":
        return hasattr(torch, "xpu") and torch.xpu.is_available()
    return False


def choose(device: str = "auto", precision: str = "auto", local_rank: int = 0) -> Placement:
    """Resolve ``--device`` and ``--precision`` for this process."""
    import torch

    if device == "auto":
        kind = next(k for k in ("cuda", "mps", "xpu", "cpu") if available(k))
    else:
        kind = device
        if not available(kind):
            raise AipcError(f"--device {kind} is not available on this machine; use --device auto or cpu")
    if precision == "auto":
        if kind == "cuda":
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        elif kind in ("mps", "xpu"):
            precision = "bf16" if _bf16_ok(kind) else "fp16"
        else:
            precision = "fp32"  # CPU bf16 autocast is slower than fp32 on CPUs without AMX
    elif precision == "bf16" and kind != "cpu" and not _bf16_ok(kind):
        raise AipcError(f"{kind} here does not support bf16; use --precision fp16 or fp32")
    dev = f"{kind}:{local_rank}" if kind in ("cuda", "xpu") else kind
    return Placement(device=dev, kind=kind, precision=precision)


def _bf16_ok(kind: str) -> bool:
    import torch

    try:
        if kind == "cuda":
            return torch.cuda.is_bf16_supported()
        if kind == "xpu":
            return torch.xpu.is_bf16_supported()
        if kind == "mps":
            torch.ones(1, dtype=torch.bfloat16, device="mps")
            return True
    except Exception:
        return False
    return False


def set_determinism(place: Placement, deterministic: bool | None, threads: int | None) -> None:
    """Fixed thread count and deterministic kernels (default on CPU) so runs repeat bitwise."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    on = place.kind == "cpu" if deterministic is None else deterministic
    if on:
        if place.kind == "cuda":
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)


def seed_all(seed: int) -> None:
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def synchronize(place: Placement) -> None:
    """Wait for all queued work on the run's device."""
    from aipc.measure import sync_fn

    sync_fn(place.device)()


def peak_memory_bytes(place: Placement) -> tuple[int | None, str]:
    """(bytes, what was measured): the device allocator's peak on GPUs, peak RSS on CPU."""
    import torch

    if place.kind == "cuda":
        return int(torch.cuda.max_memory_allocated()), "torch.cuda.max_memory_allocated"
    if place.kind == "xpu":
        return int(torch.xpu.max_memory_allocated()), "torch.xpu.max_memory_allocated"
    if place.kind == "mps":
        return int(torch.mps.driver_allocated_memory()), "torch.mps.driver_allocated_memory (now)"
    try:
        import resource
        import sys

        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        scale = 1 if sys.platform == "darwin" else 1024  # Linux reports KiB
        malloc = "MALLOC_MMAP_THRESHOLD_=" + os.environ.get("MALLOC_MMAP_THRESHOLD_", "default")
        return int(rss * scale), f"peak RSS of the process (glibc {malloc})"
    except ImportError:  # Windows
        return None, "not measured"
