"""Measure a device's peaks: dense GEMM FLOP/s per dtype and memory bandwidth.

Method (same for every device; docs/hw.md explains it):
- GEMM: C = A @ B with square n x n matrices counts 2·n³ FLOPs per call; on the CPU through
  ``F.linear`` (x @ W.T, W stored (out, in) as nn.Linear keeps it), the call aipc's layers make — in
  bf16 on a CPU without native bf16 ``torch.matmul(out=)`` runs ~8x slower than ``F.linear``, so a
  peak measured that way misdescribes every bf16 layer. The size n is chosen
  per device and dtype (``choose_gemm_size``): grow n (x2) while calls stay within ``max_call_s``
  (from ``min_gemm_n`` on: while the next size's predicted call time, x8, does); the largest size
  that fits wins, so each call takes at least a few ms.
- Train peak (CPU): one linear layer's forward and backward (dX and dW) at the same n through the
  path ``aipc train`` uses (fp32: ``aipc.cpu_gemm.train_linear``; 16-bit: ``F.linear`` with autograd),
  6·n³ FLOPs per call — where backward kernels are slower than the forward GEMM (emulated bf16:
  several times), a training step runs at this rate, not at the GEMM peak.
- Bandwidth: ``b.copy_(a)`` on buffers well beyond the last-level cache, counting read + write
  bytes (2·N per call, STREAM "copy" convention); plus a read-only ``a.sum()`` (N bytes per call).
- Timing: warm up, then repeat until both ``min_reps`` samples and ``min_time_s`` have passed
  (capped by ``max_time_s``); the device is synchronized before each clock read. Reported: the
  median of the samples, with p10 and p90.
CPU runs use torch's default thread count, recorded with the result.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

from aipc.measure import percentile, sync_fn

TORCH_DTYPES = {"fp32": "float32", "tf32": "float32", "bf16": "bfloat16", "fp16": "float16",
                "fp8": "float8_e4m3fn"}
DTYPE_BYTES = {"fp32": 4, "tf32": 4, "bf16": 2, "fp16": 2, "fp8": 1}
MIB = 2**20


@dataclass(frozen=True, kw_only=True)
class ProbeSettings:
    warmup: int = 2
    min_reps: int = 10
    min_time_s: float = 1.0
    max_time_s: float = 3.0
    max_call_s: float = 0.1               # GEMM sizing: calls up to this long
    min_gemm_n: int = 2048                # GEMM sizing: grow at least to this n while calls stay < max_call_s
    sample_s: float = 0.01                # accelerators: batch calls so one sample lasts this long
    gemm_sizes: tuple[int, ...] = (128, 256, 512, 1024, 2048, 4096, 8192, 16384)
    cpu_copy_min_bytes: int = 256 * MIB   # per buffer, and at least llc_factor x last-level cache
    gpu_copy_bytes: int = 1024 * MIB
    llc_factor: int = 8

    @classmethod
    def full(cls) -> ProbeSettings:
        return cls()

    @classmethod
    def quick(cls) -> ProbeSettings:
        return cls(warmup=1, min_reps=5, min_time_s=0.3, max_time_s=1.0, max_call_s=0.05, min_gemm_n=1024,
                   sample_s=0.005, cpu_copy_min_bytes=128 * MIB, gpu_copy_bytes=512 * MIB, llc_factor=4)


@dataclass(kw_only=True)
class Stats:
    """Throughput over repeated samples: median with the 10th and 90th percentile."""

    median: float
    p10: float
    p90: float
    samples: int
    seconds_per_call: float               # median time of one call


@dataclass(kw_only=True)
class GemmResult:
    dtype: str
    n: int                                # square matrices n x n
    flops_per_call: float                 # 2·n³ (train: 6·n³)
    flops_s: Stats
    note: str = ""
    conditions: dict = field(default_factory=dict)  # measured_at, mode, load_avg, busy_cpu_percent (profile fills it)


@dataclass(kw_only=True)
class BandwidthResult:
    kind: str                             # copy | read
    buffer_bytes: int                     # size of one buffer
    bytes_per_call: float                 # copy: 2·buffer (read + write); read: buffer
    bytes_s: Stats
    conditions: dict = field(default_factory=dict)


@dataclass(kw_only=True)
class DeviceMeasurement:
    device: str                           # cpu | cuda:0 | mps | xpu:0
    threads: int | None                   # CPU: torch.get_num_threads() used
    gemm: dict[str, GemmResult] = field(default_factory=dict)
    train_gemm: dict[str, GemmResult] = field(default_factory=dict)   # CPU: linear forward + backward
    bandwidth: dict[str, BandwidthResult] = field(default_factory=dict)
    dtype_support: dict[str, str] = field(default_factory=dict)       # dtype -> "native (...)" | "emulated (...)"
    skipped: dict[str, str] = field(default_factory=dict)  # what was not measured -> why
    wall_s: float = 0.0


# ---------------------------------------------------------------- statistics and timing

def throughput_stats(seconds: list[float], work: float) -> Stats:
    """work/second per sample -> median, p10, p90 (p10 is the slow end)."""
    rates = [work / t for t in seconds]
    return Stats(median=percentile(rates, 50), p10=percentile(rates, 10), p90=percentile(rates, 90),
                 samples=len(seconds), seconds_per_call=percentile(seconds, 50))


def time_calls(fn: Callable[[], object], sync: Callable[[], None], settings: ProbeSettings,
               inner: int = 1) -> list[float]:
    """Seconds per call: warm up, then samples of ``inner`` calls until both min_reps and min_time_s
    have passed (or max_time_s, with at least 3 samples). ``sync`` runs before each clock read."""
    for _ in range(settings.warmup):
        fn()
    sync()
    samples: list[float] = []
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        sync()
        t1 = time.perf_counter()
        samples.append((t1 - t0) / inner)
        elapsed = t1 - start
        if (len(samples) >= settings.min_reps and elapsed >= settings.min_time_s) or \
                (elapsed >= settings.max_time_s and len(samples) >= 3):
            return samples


def _once(fn: Callable[[], object], sync: Callable[[], None], limit_s: float = math.inf) -> float:
    """One warm call, then the faster of two timed calls (for sizing, not for reporting); returns
    the warm call's time at once when it already exceeds ``limit_s``."""
    t0 = time.perf_counter()
    fn()
    sync()
    warm = time.perf_counter() - t0
    if warm > limit_s:
        return warm
    best = math.inf
    for _ in range(2):
        t0 = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t0)
    return best


def _inner_calls(call_s: float, settings: ProbeSettings, device: str) -> int:
    """Accelerators batch short calls into one sample of ~sample_s; CPU samples are single calls."""
    if device == "cpu" or call_s <= 0:
        return 1
    return max(1, min(1000, math.ceil(settings.sample_s / call_s)))


# ---------------------------------------------------------------- device plumbing

def flops_per_call(n: int, backend: str = "torch") -> float:
    """2·n³ for one GEMM; 6·n³ for a linear layer's forward + backward (``backend="train"``)."""
    return (6.0 if backend == "train" else 2.0) * n**3


def _train_fn(torch, dtype: str, n: int) -> Callable[[], object]:
    """One CPU linear layer's forward and backward (dX, dW) in ``dtype``, through the kernels
    ``aipc train`` uses (fp32: aipc.cpu_gemm.train_linear, which picks oneDNN or MKL as measured)."""
    from aipc import cpu_gemm

    tdt = getattr(torch, TORCH_DTYPES[dtype])
    x = torch.randn(n, n, dtype=tdt, requires_grad=True)
    w = torch.randn(n, n, dtype=tdt, requires_grad=True)
    gy = torch.randn(n, n, dtype=tdt)
    fwd = cpu_gemm.train_linear if dtype == "fp32" else torch.nn.functional.linear

    def step():
        x.grad = w.grad = None
        fwd(x, w).backward(gy)
    return step


def _gemm_fn(torch, device: str, dtype: str, n: int, backend: str = "torch") -> Callable[[], object]:
    """A closure doing one n x n GEMM in ``dtype`` on ``device``: CPUs through ``F.linear`` (no
    autograd), accelerators through ``torch.matmul``, fp8 through torch._scaled_mm;
    ``backend="onednn"``: a CPU fp32 GEMM through oneDNN's linear, as ``aipc.cpu_gemm`` runs it;
    ``backend="train"``: a CPU linear layer's forward + backward (:func:`_train_fn`)."""
    if backend == "train":
        return _train_fn(torch, dtype, n)
    if backend == "onednn":
        a, b = torch.randn(n, n), torch.randn(n, n)
        bt = b.t()  # linear computes a @ weight.T: weight = b.T gives a @ b
        return lambda: torch.ops.mkldnn._linear_pointwise(a, bt, None, "none", [], "")
    if dtype == "fp8":
        a = torch.randn(n, n, device=device).to(torch.float8_e4m3fn)
        b = torch.randn(n, n, device=device).to(torch.float8_e4m3fn).t()  # column-major, as cuBLASLt wants
        one = torch.ones((), device=device)
        return lambda: torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
    tdt = getattr(torch, TORCH_DTYPES[dtype])
    a, b = torch.randn(n, n, device=device, dtype=tdt), torch.randn(n, n, device=device, dtype=tdt)
    if device == "cpu":
        def linear():
            with torch.inference_mode():
                return torch.nn.functional.linear(a, b)
        return linear
    c = torch.empty(n, n, device=device, dtype=tdt)
    return lambda: torch.matmul(a, b, out=c)


class _Tf32:
    """Context: CUDA fp32 matmuls use TF32 tensor cores (on=True) or full IEEE fp32 (on=False)."""

    def __init__(self, torch, on: bool):
        self.m, self.on = torch.backends.cuda.matmul, on

    def __enter__(self):
        self.old = self.m.allow_tf32
        self.m.allow_tf32 = self.on

    def __exit__(self, *exc):
        self.m.allow_tf32 = self.old


def choose_gemm_size(torch, device: str, dtype: str, settings: ProbeSettings, mem_limit_bytes: float,
                     backend: str = "torch", min_n: int = 0) -> tuple[int, float]:
    """(n, seconds per call): the largest candidate size whose call stays under about max_call_s.

    Candidates grow x2. Below ``min_gemm_n`` the next size is tried while a call stays under
    max_call_s (on a busy machine small calls are dominated by scheduling delays, not by the GEMM);
    from ``min_gemm_n`` on, growth stops once 8 x this call (a GEMM's work grows as n³) would pass
    max_call_s. A size whose call takes over 2 x max_call_s is dropped for the previous one (a slow
    kernel, e.g. fp16 on most CPUs); sizes whose A, B and C (3·n²·bytes) pass ``mem_limit_bytes``
    are not tried; sizes below ``min_n`` neither (a layer's forward+backward at n = 128 measures
    autograd's per-call cost, not its GEMMs)."""
    sync = sync_fn(device)
    best: tuple[int, float] | None = None
    sizes = [n for n in settings.gemm_sizes if n >= min_n] or [max(settings.gemm_sizes)]
    for n in sizes:
        if best and 3 * n * n * DTYPE_BYTES[dtype] > mem_limit_bytes:
            break
        t = _once(_gemm_fn(torch, device, dtype, n, backend), sync, limit_s=2 * settings.max_call_s)
        if best and t > 2 * settings.max_call_s:
            break
        best = (n, t)
        if t > settings.max_call_s or (n >= settings.min_gemm_n and t * 8 > settings.max_call_s):
            break
    assert best is not None
    return best


def measure_gemm(torch, device: str, dtype: str, settings: ProbeSettings, n: int | None = None,
                 mem_limit_bytes: float = 4e9, backend: str = "torch", min_n: int = 0) -> GemmResult:
    """Dense GEMM FLOP/s for ``dtype``: 2·n³ FLOPs per call over the median call time."""
    with _Tf32(torch, dtype == "tf32") if device.startswith("cuda") else _nullcontext():
        call_s = None
        if n is None:
            n, call_s = choose_gemm_size(torch, device, dtype, settings, mem_limit_bytes, backend, min_n)
        fn = _gemm_fn(torch, device, dtype, n, backend)
        inner = _inner_calls(call_s if call_s is not None else _once(fn, sync_fn(device)), settings, device)
        secs = time_calls(fn, sync_fn(device), settings, inner=inner)
    flops = flops_per_call(n, backend)
    return GemmResult(dtype=dtype, n=n, flops_per_call=flops, flops_s=throughput_stats(secs, flops))


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def measure_bandwidth(torch, device: str, buffer_bytes: int, settings: ProbeSettings) -> dict[str, BandwidthResult]:
    """Memory bandwidth from ``b.copy_(a)`` (2·N bytes per call: read a, write b) and ``a.sum()``
    (N bytes per call), on fp32 buffers of ``buffer_bytes`` each."""
    numel = buffer_bytes // 4
    a = torch.ones(numel, device=device)      # written once so its pages are real
    b = torch.zeros(numel, device=device)
    nbytes = numel * 4
    sync = sync_fn(device)
    out = {}
    for kind, fn, work in (("copy", lambda: b.copy_(a), 2.0 * nbytes), ("read", lambda: a.sum(), 1.0 * nbytes)):
        inner = _inner_calls(_once(fn, sync), settings, device)
        secs = time_calls(fn, sync, settings, inner=inner)
        out[kind] = BandwidthResult(kind=kind, buffer_bytes=nbytes, bytes_per_call=work,
                                    bytes_s=throughput_stats(secs, work))
    del a, b
    return out


# ---------------------------------------------------------------- per device

def cpu_copy_bytes(llc_bytes: int | None, ram_available: int | None, settings: ProbeSettings) -> int:
    """Buffer size for the CPU bandwidth probe: max(cpu_copy_min_bytes, llc_factor x LLC), at most
    1/8 of available RAM (two buffers)."""
    size = max(settings.cpu_copy_min_bytes, settings.llc_factor * (llc_bytes or 0))
    if ram_available:
        size = min(size, ram_available // 8)
    return int(size)


def cpu_dtypes() -> list[str]:
    """CPU GEMM dtypes: fp32 and bf16; fp16 too (measured at whatever size stays fast enough)."""
    return ["fp32", "bf16", "fp16"]


def gpu_dtypes(torch, gpu) -> tuple[list[str], dict[str, str]]:
    """(dtypes to measure, skipped dtype -> reason) for one accelerator (a detect.GpuInfo)."""
    skipped: dict[str, str] = {}
    dts = ["fp32"]
    if gpu.backend == "cuda":
        dts.append("tf32")
    if gpu.bf16 in ("native",):
        dts.append("bf16")
    else:
        skipped["bf16"] = f"bf16 is {gpu.bf16} on {gpu.name}"
    dts.append("fp16")
    if gpu.backend == "cuda":
        cc = tuple(int(x) for x in (gpu.compute_capability or "0.0").split("."))
        if cc >= (8, 9) and hasattr(torch, "_scaled_mm"):
            dts.append("fp8")
        else:
            skipped["fp8"] = f"fp8 GEMM needs compute capability >= 8.9 (this is {gpu.compute_capability})"
    return dts, skipped


def _why(e: Exception) -> str:
    return f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"


def measure_device(torch, device: str, dtypes: list[str], copy_bytes: int, settings: ProbeSettings,
                   mem_limit_bytes: float, skipped: dict[str, str] | None = None,
                   dtype_support: dict[str, str] | None = None) -> DeviceMeasurement:
    """All GEMM dtypes (CPU: also each dtype's linear forward + backward), then bandwidth on one
    device; a dtype that fails is recorded as skipped."""
    t0 = time.perf_counter()
    m = DeviceMeasurement(device=device, threads=torch.get_num_threads() if device == "cpu" else None,
                          skipped=dict(skipped or {}), dtype_support=dict(dtype_support or {}))
    for dt in dtypes:
        try:
            m.gemm[dt] = measure_gemm(torch, device, dt, settings, mem_limit_bytes=mem_limit_bytes)
        except Exception as e:  # noqa: BLE001 - an unsupported dtype must not stop the probe
            m.skipped[dt] = _why(e)
    if device == "cpu" and "fp32" in m.gemm:
        _best_cpu_fp32(torch, m, settings, mem_limit_bytes)
    for dt in list(m.gemm) if device == "cpu" else []:
        try:
            m.train_gemm[dt] = measure_gemm(torch, device, dt, settings, mem_limit_bytes=mem_limit_bytes,
                                            backend="train", min_n=min(512, m.gemm[dt].n))
        except Exception as e:  # noqa: BLE001
            m.skipped[f"{dt} train"] = _why(e)
    _slow_notes(m)
    try:
        m.bandwidth = measure_bandwidth(torch, device, copy_bytes, settings)
    except Exception as e:  # noqa: BLE001 - e.g. out of memory on a busy GPU
        m.skipped["bandwidth"] = _why(e)
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    m.wall_s = time.perf_counter() - t0
    return m


def _slow_notes(m: DeviceMeasurement) -> None:
    """Say where a 16-bit dtype runs below fp32, and why when the ISA tells (emulated bf16/fp16)."""
    for table in (m.gemm, m.train_gemm):
        fp32 = table.get("fp32")
        for dt, r in table.items():
            how = m.dtype_support.get(dt, "")
            if fp32 and dt != "fp32" and r.flops_s.median < 0.25 * fp32.flops_s.median:
                why = how if how.startswith("emulated") else f"no fast {dt} kernel on this device"
                r.note = f"slow: {fp32.flops_s.median / r.flops_s.median:.0f}x below fp32; {why}"
            elif how.startswith("emulated") and dt != "fp32":
                r.note = how

def _best_cpu_fp32(torch, m: DeviceMeasurement, settings: ProbeSettings, mem_limit_bytes: float) -> None:
    """The CPU's fp32 peak is the faster of torch.matmul (MKL) and oneDNN: aipc's own CPU paths use
    oneDNN where it is faster (``aipc.cpu_gemm``), and an MFU against the slower one could pass 100%."""
    from aipc import cpu_gemm

    if not cpu_gemm.available():
        return
    mkl = m.gemm["fp32"]
    try:
        dnn = measure_gemm(torch, "cpu", "fp32", settings, mem_limit_bytes=mem_limit_bytes, backend="onednn")
    except Exception as e:  # noqa: BLE001 - oneDNN missing or failing: keep torch.matmul's figure
        m.skipped["fp32 oneDNN"] = _why(e)
        return
    a, b = mkl.flops_s.median, dnn.flops_s.median
    if b > a:
        dnn.note = (f"oneDNN GEMM (what aipc train/generate use on this CPU); torch.matmul (MKL) reached "
                    f"{a / 1e9:,.0f} GFLOP/s ({a / b:.0%} of it)")
        m.gemm["fp32"] = dnn
    else:
        mkl.note = f"torch.matmul (MKL); oneDNN reached {b / 1e9:,.0f} GFLOP/s"


def measure_all(info, settings: ProbeSettings) -> list[DeviceMeasurement]:
    """Measure the CPU and every detected accelerator (``info`` is a detect.MachineInfo)."""
    import torch

    import os

    from aipc.hardware.isa import cpu_dtype_support

    support = cpu_dtype_support(info.cpu.features, info.cpu.arch, os.environ)
    out = [measure_device(torch, "cpu", cpu_dtypes(),
                          cpu_copy_bytes(info.cpu.llc_bytes, info.ram_available_bytes, settings),
                          settings, mem_limit_bytes=(info.ram_available_bytes or info.ram_total_bytes) / 4,
                          dtype_support=support)]
    for gpu in info.gpus:
        dts, skipped = gpu_dtypes(torch, gpu)
        mem = gpu.usable_memory_bytes or gpu.memory_bytes or 8e9
        gsupport = {"fp32": "native", "bf16": gpu.bf16, "fp16": "native"}
        out.append(measure_device(torch, gpu.device, dts, int(min(settings.gpu_copy_bytes, mem // 8)),
                                  settings, mem_limit_bytes=mem / 4, skipped=skipped, dtype_support=gsupport))
    return out
