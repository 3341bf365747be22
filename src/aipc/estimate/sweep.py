"""Many workloads at once: peak memory, fit and time for each, without the per-estimate extras
(suggestions, device counts, storage). For planners that scan shapes or settings."""

from __future__ import annotations

from dataclasses import dataclass

from aipc.estimate import calibrate
from aipc.estimate.api import resolve_model
from aipc.estimate.core import evaluate
from aipc.hardware.local import resolve_device
from aipc.hardware.spec import DeviceSpec
from aipc.spec import Workload


@dataclass(frozen=True, slots=True)
class SweepPoint:
    workload: Workload
    peak_bytes: int
    fits: bool
    seconds: float | None       # training: step time; inference: time for one request (prefill + decode)
    tokens_per_s: float | None  # training tokens/s or decode tokens/s of the batch


def sweep(workloads: list[Workload], device: str | DeviceSpec) -> list[SweepPoint]:
    """Estimate every workload on one device kind through the same path as ``estimate()``
    (``aipc.estimate.core.evaluate``): each workload validated and estimated with its own shape."""
    d = resolve_device(device)
    cap = d.usable_memory_bytes
    out = []
    with calibrate.using(calibrate.snapshot()):  # the calibration table read once, not per workload
        for w in workloads:
            w = w.validate()
            ev = evaluate(resolve_model(w.model), w, d)
            t = ev.time
            secs = t.step_s if w.is_train else t.request_s
            tps = t.train_tokens_per_s if w.is_train else t.decode_tokens_per_s
            out.append(SweepPoint(workload=w, peak_bytes=ev.memory.peak_bytes, fits=ev.memory.peak_bytes <= cap,
                                  seconds=secs, tokens_per_s=tps))
    return out
