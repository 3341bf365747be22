"""The context stored with every run: machine fingerprint and profile, versions, device specs.

The measured peaks come from ``aipc hw`` (``aipc.hardware.profile.load_or_measure``): the cached
profile of this machine, or one measured now when none is cached. The estimator reads the same
profile (``aipc.hardware.local.resolve_device('this:cpu')``), so MFU here and efficiency there share peaks.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import sys
from dataclasses import dataclass, field
from typing import Any

from aipc.hardware.spec import DeviceSpec


def versions() -> dict[str, str | None]:
    """Versions of the software that shapes a measurement."""
    def v(pkg: str) -> str | None:
        try:
            return importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            return None

    out = {"aipc": v("aipc"), "python": platform.python_version(), "torch": v("torch"),
           "transformers": v("transformers"), "peft": v("peft")}
    try:
        import torch

        out["torch_cuda"] = torch.version.cuda
        out["torch_threads"] = str(torch.get_num_threads())
    except ImportError:
        pass
    return out


@dataclass(kw_only=True)
class MachineContext:
    """This machine as a run records it; ``specs`` maps bench device ('cpu', 'cuda:0') -> DeviceSpec."""

    fingerprint: str
    host: str
    profile: dict[str, Any] | None
    profile_source: str                 # "cached aipc hw profile" | "measured now (aipc hw --quick)" | why absent
    specs: dict[str, DeviceSpec] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from aipc.render import to_jsonable

        return {"fingerprint": self.fingerprint, "host": self.host, "profile_source": self.profile_source,
                "profile": self.profile, "devices": {k: to_jsonable(v) for k, v in self.specs.items()},
                "os": platform.platform(), "cpu": platform.processor() or platform.machine()}


def _fallback_fingerprint() -> str:
    """sha256 of CPU model, core count, RAM and torch version, when aipc hw has no fingerprint."""
    import psutil

    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    key = f"{cpu}|{os.cpu_count()}|{psutil.virtual_memory().total}|{versions().get('torch')}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def bench_name(spec_name: str) -> str:
    """'this-machine:cuda:0' -> 'cuda:0'."""
    return spec_name.split(":", 1)[1] if spec_name.startswith("this-machine:") else spec_name


def machine_context(*, quick: bool = True, measure: bool = True) -> MachineContext:
    """The cached profile of this machine (measured now when none is cached and ``measure``)."""
    from aipc.hardware import profile as hwprofile

    host = platform.node()
    src = "cached aipc hw profile"
    prof = hwprofile.cached_profile()
    if prof is None:
        if not measure:
            return _without_profile(host, "not measured: no cached aipc hw profile (run 'aipc hw')")
        prof = hwprofile.load_or_measure(quick=quick)
        src = f"measured now (aipc hw{' --quick' if quick else ''})"
    src += f", {prof.mode} probe of {prof.measured_at}"
    specs = {bench_name(s.name): s for s in prof.device_specs()}
    return MachineContext(fingerprint=str(prof.fingerprint or _fallback_fingerprint()), host=host,
                          profile=prof.to_dict(), profile_source=src, specs=specs)


def _without_profile(host: str, why: str) -> MachineContext:
    from aipc.hardware.local import local_devices

    specs = {bench_name(s.name): s for s in local_devices()}
    return MachineContext(fingerprint=_fallback_fingerprint(), host=host, profile=None, profile_source=why, specs=specs)


def in_env_note() -> str:
    """Allocator settings that change CPU peak memory (FIELD-NOTES): say which were in effect."""
    keys = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_ARENA_MAX", "LD_PRELOAD")
    set_ = {k: os.environ[k] for k in keys if k in os.environ}
    return "glibc malloc defaults" if not set_ else ", ".join(f"{k}={v}" for k, v in set_.items())


def python_exe() -> str:
    return sys.executable
