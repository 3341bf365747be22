"""Measurement primitives shared by the hardware probes, the benchmarks and the validation runs:
a percentile, a device synchronisation, and the process's resident memory from /proc/self/status.

Import-light: torch is imported only by :func:`sync_fn`.
"""

from __future__ import annotations

import math
from collections.abc import Callable


def percentile(xs: list[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between closest ranks (numpy's default,
    'linear'): position q/100 · (n − 1) of the sorted values."""
    if not xs:
        raise ValueError("percentile of no samples")
    s = sorted(xs)
    pos = (len(s) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def sync_fn(device: str) -> Callable[[], None]:
    """A function that waits until ``device`` ('cpu', 'cuda', 'cuda:N', 'mps', 'xpu:N') has finished
    all queued work (a no-op on the CPU)."""
    import torch

    kind = device.split(":")[0]
    if kind == "cuda":
        dev = torch.device(device)
        return lambda: torch.cuda.synchronize(dev)
    if kind == "mps":
        return torch.mps.synchronize
    if kind == "xpu":
        dev = torch.device(device)
        return lambda: torch.xpu.synchronize(dev)
    return lambda: None


def proc_status_bytes(key: str) -> int | None:
    """A /proc/self/status memory field in bytes (``VmRSS``, ``VmHWM`` = peak RSS); None off Linux."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def reset_peak_rss() -> bool:
    """Reset ``VmHWM`` to the current RSS (write 5 to /proc/self/clear_refs); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return proc_status_bytes("VmHWM") is not None
    except OSError:
        return False
