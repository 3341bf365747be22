"""Measuring conditions and the best-of-runs rule for ``aipc hw`` profiles.

A peak is a maximum: other processes on the machine can only lower what a probe measures (on a
2-core CPU, two busy processes cut the fp32 GEMM rate 5x and the copy bandwidth 6x). So every
measured figure carries the conditions it was taken under (time, mode, 1-minute load average before
and after, CPU use by other processes just before), a profile keeps for each figure the best of the
measurements of this machine (same fingerprint: same hardware, software and thread count), and a
figure taken while the machine was busy is marked low-confidence with how to refresh it.

Busy = other processes used more than ``BUSY_CPU_PERCENT`` of the CPU in the half second before
measuring, or the 1-minute load average before measuring was at least half the logical cores.
"""

from __future__ import annotations

import os
import time
from typing import Iterable

BUSY_CPU_PERCENT = 25.0        # % of all cores used by others just before measuring
BUSY_LOAD_PER_CORE = 0.5       # 1-minute load average / logical cores
KEEP_ATTEMPTS = 8              # measurements remembered per figure (median, when, busy)


def loadavg() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def cpu_busy_percent(interval_s: float = 0.5) -> float | None:
    """% of all CPU time used (by every process) over ``interval_s``, measured now."""
    try:
        import psutil

        return float(psutil.cpu_percent(interval=interval_s))
    except Exception:  # noqa: BLE001 - psutil missing or failing on an odd VM
        return None


def is_busy(load_before: float | None, busy_percent: float | None, cores: int) -> bool:
    """The module's rule: others used > 25% of the CPU, or load >= half the cores."""
    return bool((busy_percent is not None and busy_percent > BUSY_CPU_PERCENT)
                or (load_before is not None and load_before >= BUSY_LOAD_PER_CORE * cores))


def quiet_now(cores: int, interval_s: float = 0.5) -> tuple[bool, float | None, float | None]:
    """(quiet, load, busy %) right now."""
    load, busy = loadavg(), cpu_busy_percent(interval_s)
    return not is_busy(load, busy, cores), load, busy


def wait_quiet(cores: int, max_wait_s: float, poll_s: float = 2.0) -> tuple[bool, float]:
    """Wait up to ``max_wait_s`` for a quiet machine; (quiet, seconds waited)."""
    t0 = time.monotonic()
    while True:
        quiet, _, _ = quiet_now(cores)
        waited = time.monotonic() - t0
        if quiet or waited >= max_wait_s:
            return quiet, waited
        time.sleep(min(poll_s, max(0.0, max_wait_s - waited)))


def conditions(*, measured_at: str, mode: str, load_before: float | None, load_after: float | None,
               busy_percent: float | None, cores: int) -> dict:
    """The conditions record stored with each figure of one measurement."""
    busy = is_busy(load_before, busy_percent, cores)
    return {"measured_at": measured_at, "mode": mode, "load_avg": [load_before, load_after],
            "busy_cpu_percent": busy_percent, "busy": busy, "cores": cores}


def _value(r) -> float:
    return r.flops_s.median if hasattr(r, "flops_s") else r.bytes_s.median


def _attempts(r) -> list:
    c = r.conditions or {}
    return c.get("attempts") or [[c.get("measured_at"), _value(r), bool(c.get("busy"))]]


def best(results: Iterable) -> object:
    """The result with the highest median among measurements of one figure (GemmResult or
    BandwidthResult), its conditions extended with the attempts seen (newest first, at most 8)."""
    rs = [r for r in results if r is not None]
    top = max(rs, key=_value)
    seen, attempts = set(), []
    for r in sorted(rs, key=lambda r: (r.conditions or {}).get("measured_at") or "", reverse=True):
        for a in _attempts(r):
            key = (a[0], a[1])
            if key not in seen:
                seen.add(key)
                attempts.append(a)
    attempts.sort(key=lambda a: a[0] or "", reverse=True)
    top.conditions = {**(top.conditions or {}), "attempts": attempts[:KEEP_ATTEMPTS]}
    return top


def merge_devices(new: list, olds: list[list]) -> list:
    """Per device and figure (GEMM per dtype, train GEMM per dtype, bandwidth per kind), the best of
    ``new`` and the older measurements of the same device. Devices only in old profiles are dropped
    (the fingerprint matched, so they should not exist)."""
    for dev in new:
        same = [d for old in olds for d in old if d.device == dev.device]
        for table in ("gemm", "train_gemm", "bandwidth"):
            mine = getattr(dev, table)
            keys = set(mine).union(*(getattr(d, table).keys() for d in same))
            for k in keys:
                mine[k] = best([mine.get(k), *(getattr(d, table).get(k) for d in same)])
                dev.skipped.pop(k if table != "train_gemm" else f"{k} train", None)
    return new


def low_confidence(dev) -> list[str]:
    """The figures of a device measurement whose kept value was taken while the machine was busy."""
    out = []
    for table, what in (("gemm", "{} GEMM"), ("train_gemm", "{} train"), ("bandwidth", "memory {}")):
        for k, r in getattr(dev, table).items():
            if (r.conditions or {}).get("busy"):
                out.append(what.format(k))
    return out


def confidence_note(dev) -> str:
    """'' when every kept figure was measured on a quiet machine, else what is low and how to refresh."""
    low = low_confidence(dev)
    if not low:
        return ""
    worst = max((getattr(dev, t)[k] for t in ("gemm", "train_gemm", "bandwidth") for k in getattr(dev, t)
                 if (getattr(dev, t)[k].conditions or {}).get("busy")),
                key=lambda r: (r.conditions.get("load_avg") or [0])[0] or 0)
    c = worst.conditions
    load = (c.get("load_avg") or [None])[0]
    busy = c.get("busy_cpu_percent")
    when = []
    if load is not None:
        when.append(f"load average {load:.1f} on {c.get('cores')} cores")
    if busy is not None:
        when.append(f"{busy:.0f}% CPU in use just before")
    return (f"low confidence: {', '.join(low)} measured while the machine was busy ({'; '.join(when)}; "
            f"{c.get('measured_at')}), so peaks may be low and times too long; refresh with "
            "'aipc hw --refresh' when the machine is quiet (aipc hw re-measures by itself when it finds "
            "the machine quiet)")
