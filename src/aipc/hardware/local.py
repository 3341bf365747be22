"""This machine: its devices as DeviceSpecs (from the cached ``aipc hw`` profile), the device a
reference names ('this', 'this:cpu', or a catalog name), and the catalog entry of a local GPU.

Import-light: no torch unless :func:`catalog_spec` asks torch for a GPU's name.
"""

from __future__ import annotations

import re

from aipc.errors import AipcError
from aipc.hardware.catalog import get_device, load_catalog
from aipc.hardware.spec import DeviceSpec

LOCAL_NAMES = ("this", "local", "this-machine")


def local_devices() -> list[DeviceSpec]:
    """This machine's devices from the cached aipc hw profile; without one, the CPU with its RAM
    and no measured peaks (times then say 'run aipc hw')."""
    from aipc.hardware import profile

    cached = profile.newest_cached()
    if cached is not None:
        return list(cached.device_specs())
    import platform

    import psutil

    mem = psutil.virtual_memory().total
    return [DeviceSpec(name="this-machine:cpu", label=f"this machine's CPU ({platform.processor() or platform.machine()})",
                       vendor="unknown", kind="cpu", category="this-machine", memory_bytes=mem,
                       usable_memory_bytes=mem, bandwidth_bytes_s=0.0, peak_flops={},
                       notes="not measured: run 'aipc hw' for measured peaks")]


def resolve_device(ref: str | DeviceSpec) -> DeviceSpec:
    """A DeviceSpec from a catalog name, 'this' (first local accelerator else CPU), or 'this:cpu'."""
    if isinstance(ref, DeviceSpec):
        return ref
    low = ref.strip().lower()
    if low in LOCAL_NAMES or low.startswith(tuple(n + ":" for n in LOCAL_NAMES)):
        devs = local_devices()
        if ":" in low:
            want = low.split(":", 1)[1]
            for d in devs:
                if d.name.split(":", 1)[1] == want:
                    return d
            raise AipcError(f"this machine has no device {want!r}; it has "
                            f"{', '.join(d.name for d in devs)}")
        accel = [d for d in devs if d.kind != "cpu"]
        return (accel or devs)[0]
    return get_device(ref)


def match_gpu(torch_name: str, memory_bytes: int | None, catalog: dict[str, DeviceSpec]) -> DeviceSpec | None:
    """The catalog GPU a torch device name denotes: every token of the catalog id must be a token of
    the name, except memory sizes ('80gb': checked against ``memory_bytes`` within 15%) and 'sxm'
    (assumed unless the name says 'pcie'). 'NVIDIA H100 80GB HBM3' -> h100-sxm; 'NVIDIA L4' -> l4."""
    toks = set(re.findall(r"[a-z]+|[0-9]+", torch_name.lower().replace("nvidia", "").replace("geforce", "")))
    raw = set(re.findall(r"[a-z0-9]+", torch_name.lower()))
    best, best_score = None, 0
    for spec in catalog.values():
        if spec.kind != "gpu":
            continue
        ok, score = True, 0
        for t in spec.name.split("-"):
            m = re.fullmatch(r"(\d+)gb", t)
            if m:
                if memory_bytes and abs(memory_bytes / 1e9 - int(m.group(1))) > 0.15 * int(m.group(1)) + 2:
                    ok = False
                continue
            if t in ("sxm",):
                ok = ok and "pcie" not in raw
                continue
            parts = re.findall(r"[a-z]+|[0-9]+", t)
            if t in raw or (parts and all(p in toks for p in parts)):
                score += 1
            else:
                ok = False
        ok = ok and not any(v in raw and v not in spec.name for v in ("nvl", "pcie", "max", "mobile", "laptop"))
        if ok and score > best_score:
            best, best_score = spec, score
    return best


def profile_catalog_specs(profile, catalog: dict[str, DeviceSpec]) -> dict[str, DeviceSpec | None]:
    """Per local device of an ``aipc hw`` profile (by DeviceSpec name): the catalog GPU it is, matched
    by its torch name and memory; None for a CPU or a device no catalog entry matches."""
    out: dict[str, DeviceSpec | None] = {}
    for spec in profile.device_specs():
        gpu = next((g for g in profile.machine.gpus if spec.name.endswith(":" + g.device)), None)
        out[spec.name] = match_gpu(gpu.name, gpu.memory_bytes, catalog) if spec.kind != "cpu" and gpu else None
    return out


def catalog_spec(device: str) -> DeviceSpec | None:
    """The catalog entry of a local accelerator (by its torch name), for MFU against the spec peak."""
    if not device.startswith("cuda"):
        return None
    try:
        import torch

        idx = int(device.split(":")[1]) if ":" in device else 0
        name = torch.cuda.get_device_name(idx)
        mem = torch.cuda.get_device_properties(idx).total_memory
    except Exception:  # noqa: BLE001 - no CUDA: nothing to match
        return None
    return match_gpu(name, mem, load_catalog())


# oneDNN ISA caps (ONEDNN_MAX_CPU_ISA) that still include native bf16 instructions
_ONEDNN_BF16 = ("BF16", "AMX", "FP16", "AVX10", "AVX2_VNNI_2", "ALL", "DEFAULT")


def cpu_bf16_native(profile=None) -> bool:
    """True when torch runs bf16 matrix products natively on this CPU: the CPU has AVX512_BF16 or
    AMX-BF16 (x86) or BF16 (Arm), and neither ``ATEN_CPU_CAPABILITY`` nor ``ONEDNN_MAX_CPU_ISA`` caps
    torch below them. Elsewhere bf16 is emulated, many times slower than fp32. With a ``profile``
    (:class:`aipc.hardware.profile.MachineProfile`), as ``aipc hw`` recorded it there when it did."""
    import os

    sw = getattr(getattr(profile, "machine", None), "software", None)
    flag = getattr(sw, "cpu_bf16", None)
    if flag is not None:
        return flag == "native"

    from aipc.hardware.detect import detect_cpu

    f = detect_cpu().features
    if not (f.get("avx512_bf16") or f.get("amx_bf16") or f.get("bf16")):
        return False
    aten = os.environ.get("ATEN_CPU_CAPABILITY", "").strip().lower()
    onednn = os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
    return aten not in ("default", "avx2") and (not onednn or any(k in onednn for k in _ONEDNN_BF16))
