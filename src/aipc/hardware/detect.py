"""Detect this machine: CPU, RAM, GPUs, NPUs and the software stack. No measurement here.

Everything is read from the OS (``/proc/cpuinfo``, ``sysctl``, ``/sys``), psutil and torch's own
queries. Detection must be fast (well under a second after torch is imported) and never fails: a
fact that cannot be read is recorded as ``None`` (rendered "not available") with a note saying why.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

# ISA features that matter for GEMM speed, as the kernel names them in /proc/cpuinfo.
X86_FEATURES = ("avx2", "fma", "f16c", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni",
                "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8")
ARM_FEATURES = ("asimd", "asimdhp", "bf16", "i8mm", "sve", "sve2", "sme")
ARM_NAMES = {"asimd": "neon", "asimdhp": "neon_fp16"}  # kernel name -> common name
VENDORS = {"GenuineIntel": "intel", "AuthenticAMD": "amd", "Apple": "apple", "Qualcomm": "qualcomm"}


@dataclass(kw_only=True)
class CpuInfo:
    model: str
    vendor: str                         # intel | amd | apple | arm | qualcomm | unknown
    arch: str                           # x86_64 | arm64 | ...
    physical_cores: int | None
    logical_cores: int
    features: dict[str, bool]           # ISA feature -> present (see X86_FEATURES / ARM_FEATURES)
    torch_capability: str | None        # torch.backends.cpu.get_cpu_capability(): AVX512, AVX2, ...
    llc_bytes: int | None               # last-level cache size, for sizing the bandwidth probe
    freq_hz: float | None               # max clock, or the current one where max is not reported


@dataclass(kw_only=True)
class GpuInfo:
    device: str                         # torch device string: cuda:0, mps, xpu:0
    backend: str                        # cuda | rocm | mps | xpu
    vendor: str                         # nvidia | amd | apple | intel
    name: str
    memory_bytes: int | None            # device memory (unified: total RAM)
    usable_memory_bytes: int | None     # what torch may allocate (MPS: recommended max)
    compute_capability: str | None      # "9.0" (CUDA), gfx arch (ROCm)
    multiprocessors: int | None
    bf16: str                           # native | emulated | no | unknown
    flash_attention: bool | None        # SDPA flash kernel usable on this device
    mem_efficient_attention: bool | None


@dataclass(kw_only=True)
class NpuInfo:
    name: str
    path: str | None                    # /dev/accel/accel0, /sys/class/accel/accel0, or None
    driver: str | None                  # intel_vpu | amdxdna | qaic | ... ; None when unknown


@dataclass(kw_only=True)
class SoftwareInfo:
    os: str
    python: str
    torch: str | None
    torch_build: str                    # "cpu" | "cuda 12.8" | "rocm 6.3"
    cuda_runtime: str | None
    cuda_driver: str | None
    cudnn: str | None
    transformers: str | None
    blas: str | None                    # mkl | openblas | accelerate | ...
    mkldnn: bool | None
    torch_threads: int | None
    interop_threads: int | None
    omp_threads: int | None
    mkl_threads: int | None
    cpu_bf16: str                       # native | emulated | unknown
    sdpa: dict[str, bool | None]        # available, flash_built, flash/mem_efficient/math/cudnn enabled


@dataclass(kw_only=True)
class MachineInfo:
    hostname: str
    cpu: CpuInfo
    ram_total_bytes: int
    ram_available_bytes: int | None
    gpus: list[GpuInfo]
    npus: list[NpuInfo]
    software: SoftwareInfo
    notes: list[str] = field(default_factory=list)  # what could not be read, and why


# ---------------------------------------------------------------- CPU

def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return None


def _sysctl(*keys: str) -> dict[str, str]:
    """macOS sysctl values (empty dict elsewhere or on failure)."""
    if sys.platform != "darwin":
        return {}
    try:
        out = subprocess.run(["sysctl", *keys], capture_output=True, text=True, timeout=2).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)


def _cpuinfo_fields(text: str) -> dict[str, str]:
    """First value of each key in /proc/cpuinfo."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            out.setdefault(k.strip(), v.strip())
    return out


def llc_bytes() -> int | None:
    """Largest cache level's size from /sys (Linux) or sysctl (macOS)."""
    best: tuple[int, int] | None = None
    for idx in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        level, size = _read(str(idx / "level")), _read(str(idx / "size"))
        m = re.match(r"(\d+)([KMG]?)", (size or "").strip())
        if level and m:
            b = int(m.group(1)) * {"": 1, "K": 2**10, "M": 2**20, "G": 2**30}[m.group(2)]
            if best is None or int(level) >= best[0]:
                best = (int(level), b)
    if best:
        return best[1]
    vals = _sysctl("hw.l3cachesize", "hw.l2cachesize")
    for k in ("hw.l3cachesize", "hw.l2cachesize"):
        if vals.get(k, "0").strip().isdigit() and int(vals[k]) > 0:
            return int(vals[k])
    return None


ISA_PREFIXES = ("avx", "amx", "fma", "f16c", "sse4", "vnni", "bmi2")


def isa_flags_line() -> str:
    """This CPU's vector and matrix ISA flags, sorted, on one line (what benchmark records cite); the
    machine's architecture name where /proc/cpuinfo has no flags."""
    text = _read("/proc/cpuinfo") or ""
    flags = _cpuinfo_fields(text).get("flags", "").split()
    return " ".join(sorted(f for f in flags if f.startswith(ISA_PREFIXES))) or platform.machine()


def detect_cpu(torch_mod=None, notes: list[str] | None = None) -> CpuInfo:
    """CPU model, cores and ISA features; unknown facts become None."""
    import psutil

    notes = notes if notes is not None else []
    arch = platform.machine().lower().replace("aarch64", "arm64").replace("amd64", "x86_64")
    model, vendor, flags = None, "unknown", set()
    text = _read("/proc/cpuinfo")
    if text:
        f = _cpuinfo_fields(text)
        model = f.get("model name") or f.get("Model") or f.get("Hardware")
        vendor = VENDORS.get(f.get("vendor_id", ""), "arm" if arch == "arm64" else "unknown")
        flags = set((f.get("flags") or f.get("Features") or "").split())
    elif sys.platform == "darwin":
        keys = ["machdep.cpu.brand_string", "machdep.cpu.features", "machdep.cpu.leaf7_features",
                "hw.optional.arm.FEAT_BF16", "hw.optional.arm.FEAT_I8MM", "hw.optional.AdvSIMD",
                "hw.optional.arm.FEAT_SME"]
        v = _sysctl(*keys)
        model = v.get("machdep.cpu.brand_string")
        vendor = "apple" if arch == "arm64" else "intel"
        flags = set((v.get("machdep.cpu.features", "") + " " + v.get("machdep.cpu.leaf7_features", "")).lower().split())
        flags = {x.replace(".", "_") for x in flags}
        for key, name in (("hw.optional.arm.FEAT_BF16", "bf16"), ("hw.optional.arm.FEAT_I8MM", "i8mm"),
                          ("hw.optional.AdvSIMD", "asimd"), ("hw.optional.arm.FEAT_SME", "sme")):
            if v.get(key, "0").strip() == "1":
                flags.add(name)
    if not model:
        model = platform.processor() or "unknown CPU"
        notes.append("cpu model: not available from /proc/cpuinfo or sysctl; used platform.processor()")
    wanted = ARM_FEATURES if arch == "arm64" else X86_FEATURES
    features = {ARM_NAMES.get(k, k): k in flags for k in wanted}
    if not flags:
        notes.append("cpu features: not available (no /proc/cpuinfo flags); see torch_capability")
    cap = None
    if torch_mod is not None:
        try:
            cap = torch_mod.backends.cpu.get_cpu_capability()
        except Exception:  # noqa: BLE001 - old torch
            notes.append("torch cpu capability: not available in this torch")
    try:
        freq = psutil.cpu_freq()
        max_hz = (freq.max or freq.current) * 1e6 if freq and (freq.max or freq.current) else None
    except Exception:  # noqa: BLE001 - psutil raises on some VMs
        max_hz = None
    return CpuInfo(model=model, vendor=vendor, arch=arch, physical_cores=psutil.cpu_count(logical=False),
                   logical_cores=psutil.cpu_count(logical=True) or os.cpu_count() or 1,
                   features=features, torch_capability=cap, llc_bytes=llc_bytes(), freq_hz=max_hz)


# ---------------------------------------------------------------- accelerators

def _cuda_gpus(torch, notes: list[str]) -> list[GpuInfo]:
    if not torch.cuda.is_available():
        return []
    rocm = getattr(torch.version, "hip", None) is not None
    flash_built = _call(getattr(torch.backends.cuda, "is_flash_attention_available", None))
    out = []
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        cc = (p.major, p.minor)
        if rocm:
            arch = getattr(p, "gcnArchName", None)
            bf16 = "native" if _call(torch.cuda.is_bf16_supported) else "no"
            flash = bool(flash_built) and bool(arch) and arch.split(":")[0] in ("gfx90a", "gfx942", "gfx950")
        else:
            arch = f"{p.major}.{p.minor}"
            bf16 = "native" if cc >= (8, 0) else ("emulated" if _call(torch.cuda.is_bf16_supported) else "no")
            flash = bool(flash_built) and cc >= (8, 0)  # FlashAttention-2 kernels need sm80+
        out.append(GpuInfo(device=f"cuda:{i}", backend="rocm" if rocm else "cuda",
                           vendor="amd" if rocm else "nvidia", name=p.name, memory_bytes=int(p.total_memory),
                           usable_memory_bytes=int(p.total_memory), compute_capability=arch,
                           multiprocessors=getattr(p, "multi_processor_count", None), bf16=bf16,
                           flash_attention=flash, mem_efficient_attention=rocm or cc >= (5, 0)))
    return out


def _mps_gpu(torch, ram_total: int, notes: list[str]) -> list[GpuInfo]:
    mps = getattr(torch.backends, "mps", None)
    if mps is None or not mps.is_available():
        return []
    usable = _call(getattr(torch.mps, "recommended_max_memory", None))
    try:
        torch.zeros(1, dtype=torch.bfloat16, device="mps")
        bf16 = "native"
    except Exception:  # noqa: BLE001 - bf16 on MPS needs macOS 14+
        bf16 = "no"
    name = _sysctl("machdep.cpu.brand_string").get("machdep.cpu.brand_string", "Apple GPU")
    return [GpuInfo(device="mps", backend="mps", vendor="apple", name=f"{name} GPU (MPS)",
                    memory_bytes=ram_total, usable_memory_bytes=int(usable) if usable else None,
                    compute_capability=None, multiprocessors=None, bf16=bf16,
                    flash_attention=None, mem_efficient_attention=None)]


def _xpu_gpus(torch, notes: list[str]) -> list[GpuInfo]:
    xpu = getattr(torch, "xpu", None)
    if xpu is None or not _call(xpu.is_available):
        return []
    out = []
    for i in range(xpu.device_count()):
        p = xpu.get_device_properties(i)
        bf16 = "native" if _call(getattr(xpu, "is_bf16_supported", None)) else "unknown"
        out.append(GpuInfo(device=f"xpu:{i}", backend="xpu", vendor="intel", name=p.name,
                           memory_bytes=int(p.total_memory), usable_memory_bytes=int(p.total_memory),
                           compute_capability=None, multiprocessors=getattr(p, "gpu_eu_count", None),
                           bf16=bf16, flash_attention=None, mem_efficient_attention=None))
    return out


def detect_npus(notes: list[str]) -> list[NpuInfo]:
    """NPUs the OS exposes: Linux accel class devices (intel_vpu, amdxdna, qaic, ...)."""
    out = []
    sysfs = Path("/sys/class/accel")
    for dev in sorted(sysfs.glob("accel*")) if sysfs.is_dir() else []:
        drv = dev / "device" / "driver"
        driver = os.path.basename(os.path.realpath(drv)) if drv.exists() else None
        label = {"intel_vpu": "Intel NPU", "amdxdna": "AMD XDNA NPU", "qaic": "Qualcomm Cloud AI"}.get(driver or "", "NPU")
        out.append(NpuInfo(name=label, path=f"/dev/accel/{dev.name}", driver=driver))
    if not out and Path("/dev/accel").is_dir():
        out = [NpuInfo(name="NPU", path=str(p), driver=None) for p in sorted(Path("/dev/accel").iterdir())]
    if sys.platform == "darwin" and platform.machine() == "arm64":
        out.append(NpuInfo(name="Apple Neural Engine", path=None, driver=None))
        notes.append("npu: Apple Neural Engine is present on Apple silicon but not reachable from torch")
    elif sys.platform == "win32":
        notes.append("npu: unknown (aipc does not query NPUs on Windows)")
    return out


# ---------------------------------------------------------------- software stack

def _call(fn, *a):
    """fn(*a), or None when fn is missing or raises (optional APIs differ across torch builds)."""
    if fn is None:
        return None
    try:
        return fn(*a)
    except Exception:  # noqa: BLE001
        return None


def _version(pkg: str) -> str | None:
    try:
        return importlib.metadata.version(pkg)
    except importlib.metadata.PackageNotFoundError:
        return None


def _nvidia_driver() -> str | None:
    """NVIDIA driver version via NVML (pynvml) when installed, else /proc/driver/nvidia/version."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            v = pynvml.nvmlSystemGetDriverVersion()
            return v.decode() if isinstance(v, bytes) else str(v)
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # noqa: BLE001 - not installed or no driver
        pass
    m = re.search(r"Kernel Module\s+(?:for \S+\s+)?([\d.]+)", _read("/proc/driver/nvidia/version") or "")
    return m.group(1) if m else None


def _parallel_value(info: str, key: str) -> int | None:
    m = re.search(re.escape(key) + r"\s*:\s*(\d+)", info)
    return int(m.group(1)) if m else None


def detect_software(torch, cpu: CpuInfo, has_cuda: bool, notes: list[str]) -> SoftwareInfo:
    os_name = f"{platform.system()} {platform.release()}"
    if torch is None:
        notes.append("torch: not importable; no accelerator or thread facts")
        return SoftwareInfo(os=os_name, python=platform.python_version(), torch=None, torch_build="none",
                            cuda_runtime=None, cuda_driver=None, cudnn=None, transformers=_version("transformers"),
                            blas=None, mkldnn=None, torch_threads=None, interop_threads=None, omp_threads=None,
                            mkl_threads=None, cpu_bf16="unknown", sdpa={})
    hip, cuda = getattr(torch.version, "hip", None), torch.version.cuda
    build = f"rocm {hip}" if hip else (f"cuda {cuda}" if cuda else "cpu")
    pinfo = _call(torch.__config__.parallel_info) or ""
    show = _call(torch.__config__.show) or ""
    m = re.search(r"BLAS_INFO=(\w+)", show)
    cudnn = _call(torch.backends.cudnn.version) if (cuda or hip) else None
    b = torch.backends.cuda
    sdpa = {
        "available": hasattr(torch.nn.functional, "scaled_dot_product_attention"),
        "flash_built": _call(getattr(b, "is_flash_attention_available", None)),
        "flash_enabled": _call(getattr(b, "flash_sdp_enabled", None)),
        "mem_efficient_enabled": _call(getattr(b, "mem_efficient_sdp_enabled", None)),
        "math_enabled": _call(getattr(b, "math_sdp_enabled", None)),
        "cudnn_enabled": _call(getattr(b, "cudnn_sdp_enabled", None)),
    }
    from aipc.hardware.isa import cpu_dtype_support

    bf16 = cpu_dtype_support(cpu.features, cpu.arch, os.environ)["bf16"]
    return SoftwareInfo(
        os=os_name, python=platform.python_version(), torch=str(torch.__version__), torch_build=build,
        cuda_runtime=cuda or hip, cuda_driver=_nvidia_driver() if has_cuda and not hip else None,
        cudnn=str(cudnn) if cudnn else None, transformers=_version("transformers"),
        blas=m.group(1) if m else None, mkldnn=_call(torch.backends.mkldnn.is_available),
        torch_threads=torch.get_num_threads(), interop_threads=torch.get_num_interop_threads(),
        omp_threads=_parallel_value(pinfo, "omp_get_max_threads()"),
        mkl_threads=_parallel_value(pinfo, "mkl_get_max_threads()"),
        cpu_bf16=bf16.split(" ")[0], sdpa=sdpa)


def detect() -> MachineInfo:
    """This machine's CPU, RAM, accelerators and software stack (no measurement)."""
    import psutil

    notes: list[str] = []
    try:
        import torch
    except Exception as e:  # noqa: BLE001 - detection never fails
        torch = None
        notes.append(f"torch: not importable ({type(e).__name__}); accelerators not detected")
    cpu = detect_cpu(torch, notes)
    vm = psutil.virtual_memory()
    gpus: list[GpuInfo] = []
    if torch is not None:
        for probe in (_cuda_gpus, _xpu_gpus):
            try:
                gpus += probe(torch, notes)
            except Exception as e:  # noqa: BLE001 - a broken driver must not stop detection
                notes.append(f"{probe.__name__.strip('_')}: not available ({type(e).__name__}: {e})")
        try:
            gpus += _mps_gpu(torch, int(vm.total), notes)
        except Exception as e:  # noqa: BLE001
            notes.append(f"mps: not available ({type(e).__name__}: {e})")
    if not gpus:
        notes.append("gpu: none visible to torch")
    has_cuda = any(g.backend == "cuda" for g in gpus)
    return MachineInfo(hostname=platform.node(), cpu=cpu, ram_total_bytes=int(vm.total),
                       ram_available_bytes=int(vm.available), gpus=gpus, npus=detect_npus(notes),
                       software=detect_software(torch, cpu, has_cuda, notes), notes=notes)
