"""DeviceSpec: one device's memory, bandwidth, dense peaks, power and price, each number sourced.

Import-light (no torch). The catalog (``catalog.toml``), user override files, and this machine's
measured profile (``aipc hw``) all produce DeviceSpec objects, so they compare directly.

INTERFACE CONTRACT (estimator, decide and report rely on these names; keep them stable).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, kw_only=True)
class Sourced:
    """Where a number came from: a URL or document, and the date it was read (YYYY-MM-DD)."""

    source: str
    as_of: str


@dataclass(frozen=True, kw_only=True)
class CloudOffer:
    provider: str                  # "AWS p5.48xlarge", "Lambda", "RunPod", ...
    usd_per_hour: float            # on-demand, per device (GPU)
    source: str
    as_of: str
    instance: str | None = None
    devices_per_instance: int = 1


@dataclass(frozen=True, kw_only=True)
class DeviceSpec:
    name: str                      # short id: "rtx-4090", "h100-sxm", "m4-max-40c", "this-machine:cpu"
    label: str                     # human name
    vendor: str                    # nvidia | amd | apple | intel | qualcomm | ...
    kind: str                      # gpu | apu (unified-memory SoC GPU) | npu | cpu
    category: str                  # ai-pc | workstation | datacenter | this-machine
    memory_bytes: int              # total device memory (or total unified memory)
    usable_memory_bytes: int       # what a model can use (unified memory: the GPU-addressable share)
    bandwidth_bytes_s: float       # memory bandwidth, spec (or measured for this machine)
    peak_flops: dict[str, float]   # dense peak FLOP/s (OP/s for int8) per dtype: fp32, tf32, bf16, fp16, fp8, int8
    power_w: float | None = None   # board / package power under load
    price_usd: float | None = None # purchase price of one device (or the smallest system with it)
    cloud: tuple[CloudOffer, ...] = ()
    sources: dict[str, Sourced] = field(default_factory=dict)  # field name -> source, e.g. "bandwidth_bytes_s"
    measured: bool = False         # True when the numbers were measured here (aipc hw), not spec
    notes: str = ""
    # measured devices only (aipc hw): a linear layer's forward + backward FLOP/s per dtype (6·n³ per
    # call, through the kernels aipc's training uses), what training runs at where backward kernels
    # are slower than the forward GEMM (emulated bf16: several times); {} = use peak_flops
    train_peak_flops: dict[str, float] = field(default_factory=dict)
    native_dtypes: tuple[str, ...] = ()  # dtypes with native kernels here (aipc hw); () = not known
    confidence: str = ""           # why a measured figure may be low, and how to refresh it ("" = fine)
    # measured devices only: an engine's prefill FLOP/s per weight type at a few prompt lengths,
    # {"llamacpp": {"Q4_K": ((tokens, flops_s), ...), ...}} (aipc.hardware.kernels); {} = not measured
    kernel_flops: dict[str, dict[str, tuple]] = field(default_factory=dict)
    llc_bytes: int = 0             # measured CPUs: the last-level cache (aipc hw); 0 = not known

    def peak(self, dtype: str) -> float | None:
        """Dense peak FLOP/s for a compute dtype; fp16/bf16 fall back to each other."""
        if dtype in self.peak_flops:
            return self.peak_flops[dtype]
        alias = {"bf16": "fp16", "fp16": "bf16"}.get(dtype)
        return self.peak_flops.get(alias) if alias else None

    def train_peak(self, dtype: str) -> float | None:
        """FLOP/s a training step's layers reach in ``dtype`` (forward + backward): the measured
        train peak where there is one, else the dense GEMM peak."""
        return self.train_peak_flops.get(dtype) or self.peak(dtype)
