"""The estimator's Python API: ``estimate(workload, device)`` -> :class:`Estimate`.

Import-light: no torch, no transformers. ``device`` is a DeviceSpec, a catalog name, or ``this``
(this machine's cached ``aipc hw`` profile)."""

from __future__ import annotations

from functools import lru_cache

from aipc.errors import AipcError
from aipc.estimate.core import evaluate
from aipc.estimate.fit import devices_needed, suggestions
from aipc.estimate.storage import storage_for
from aipc.estimate.types import Estimate
from aipc.hardware.local import local_devices, resolve_device
from aipc.hardware.spec import DeviceSpec
from aipc.models.spec import ModelSpec
from aipc.render import gb
from aipc.spec import Workload

@lru_cache(maxsize=256)
def _resolve_model_cached(ref: str) -> ModelSpec:
    from aipc.models.load import resolve

    return resolve(ref)


def resolve_model(ref: str | ModelSpec) -> ModelSpec:
    """A ModelSpec from a catalog name / HF id / config.json / folder (cached by reference)."""
    return ref if isinstance(ref, ModelSpec) else _resolve_model_cached(ref)


def estimate(workload: Workload, device: str | DeviceSpec, *, model: ModelSpec | None = None) -> Estimate:
    """Memory, compute, time, storage and the fit verdict of one workload on one device kind."""
    w = workload.validate()
    m = model or resolve_model(w.model)
    d = resolve_device(device)
    ev = evaluate(m, w, d)
    mem, comp, eff, t, warnings = ev.memory, ev.compute, ev.efficiency, ev.time, list(ev.warnings)
    cap = d.usable_memory_bytes
    fits = mem.peak_bytes <= cap
    need = 1 if fits and w.num_devices == 1 else devices_needed(m, w, d)
    if fits:
        verdict = f"fits: {gb(mem.peak_bytes)} of {gb(cap)} ({mem.peak_phase} peak)"
        sugg: list[str] = []
    else:
        verdict = f"does not fit: needs {gb(mem.peak_bytes)}, {d.label} has {gb(cap)} usable"
        sugg = suggestions(m, w, d, mem.peak_bytes, need)
    return Estimate(
        workload=w.to_dict(), model=m.name, device=d.name, device_label=d.label, memory=mem,
        capacity_bytes=cap, fits=fits, devices_needed=need, headroom_bytes=cap - mem.peak_bytes,
        compute=comp, efficiency=eff, time=t, storage=storage_for(m, w), verdict=verdict,
        suggestions=tuple(sugg), warnings=tuple(warnings),
    )


def estimate_devices(workload: Workload, devices: list[str | DeviceSpec] | None = None) -> list[Estimate]:
    """The workload on several devices (default: every catalog device plus this machine)."""
    if devices is None:
        from aipc.hardware.catalog import load_catalog

        devices = [*local_devices(), *load_catalog().values()]
    m = resolve_model(workload.model)
    return [estimate(workload, d, model=m) for d in devices]
