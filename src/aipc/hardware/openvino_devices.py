"""OpenVINO's view of this machine: its devices (CPU, GPU, NPU) with names and properties, and what
aipc can measure on each through OpenVINO itself.

Measured per device (each a tiny OpenVINO model compiled for that device, timed like ``aipc hw``'s
torch probes: warm-up, then repeated calls, median with p10/p90):
* GEMM: one MatMul of two n x n inputs, 2·n³ FLOPs per call, at each inference precision the device
  reports (``OPTIMIZATION_CAPABILITIES``: FP32, BF16, FP16);
* memory read bandwidth: a ReduceSum (1024 rows in parallel) over a buffer well past the last-level cache (buffer bytes per call).
A device OpenVINO does not see is listed with the reason; a measurement that fails is skipped with
its error. Results are cached beside the torch profile, per OpenVINO version and device list.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

from aipc.hardware.probe import ProbeSettings, Stats, throughput_stats, time_calls

KINDS = ("CPU", "GPU", "NPU")
PRECISIONS = {"FP32": "f32", "BF16": "bf16", "FP16": "f16"}
# read-only properties worth showing, where the device has them
PROPERTIES = ("DEVICE_TYPE", "DEVICE_ARCHITECTURE", "OPTIMIZATION_CAPABILITIES", "GPU_DEVICE_TOTAL_MEM_SIZE",
              "GPU_EXECUTION_UNITS_COUNT", "DEVICE_GOPS", "NPU_DRIVER_VERSION", "NPU_DEVICE_TOTAL_MEM_SIZE",
              "DEVICE_UUID", "RANGE_FOR_STREAMS")
VERSION = 1  # bump when the method changes: old caches are ignored


@dataclass(kw_only=True)
class OVDevice:
    device: str                               # CPU | GPU | GPU.1 | NPU
    name: str                                 # FULL_DEVICE_NAME
    properties: dict = field(default_factory=dict)
    gemm: dict[str, dict] = field(default_factory=dict)       # precision -> {n, flops_s: Stats}
    bandwidth: dict | None = None             # {"buffer_bytes": int, "bytes_s": Stats}
    skipped: dict[str, str] = field(default_factory=dict)      # what -> why not measured


@dataclass(kw_only=True)
class OVReport:
    version: str | None                       # openvino.__version__, None when not installed
    devices: list[OVDevice] = field(default_factory=list)
    absent: dict[str, str] = field(default_factory=dict)       # CPU/GPU/NPU kind -> why not listed
    cached: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def _plain(v):
    """Property values as JSON-friendly scalars / lists."""
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, (list, tuple, set)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    return str(v)


def list_devices(core) -> list[OVDevice]:
    out = []
    for d in core.available_devices:
        props = {}
        supported = set(core.get_property(d, "SUPPORTED_PROPERTIES"))
        for p in PROPERTIES:
            if p in supported:
                try:
                    props[p] = _plain(core.get_property(d, p))
                except RuntimeError:
                    continue
        out.append(OVDevice(device=d, name=str(core.get_property(d, "FULL_DEVICE_NAME")), properties=props))
    return out


def _absent(devices: list[OVDevice]) -> dict[str, str]:
    have = {d.device.split(".")[0] for d in devices}
    why = {"GPU": "OpenVINO sees no GPU (an Intel GPU needs its compute runtime, intel-opencl-icd / Level Zero)",
           "NPU": "OpenVINO sees no NPU (an Intel Core Ultra NPU needs the intel-npu driver, /dev/accel)",
           "CPU": "OpenVINO's CPU plugin is missing"}
    return {k: why[k] for k in KINDS if k not in have}


def _gemm(core, device: str, precision: str, n: int, settings: ProbeSettings) -> dict:
    import numpy as np
    import openvino as ov
    import openvino.opset13 as ops

    a, b = ops.parameter([n, n], ov.Type.f32), ops.parameter([n, n], ov.Type.f32)
    model = ov.Model([ops.matmul(a, b, False, False)], [a, b], "gemm")
    compiled = core.compile_model(model, device, {"INFERENCE_PRECISION_HINT": precision,
                                                  "PERFORMANCE_HINT": "LATENCY"})
    req = compiled.create_infer_request()
    x = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    req.set_input_tensor(0, ov.Tensor(x))
    req.set_input_tensor(1, ov.Tensor(x.copy()))
    secs = time_calls(lambda: (req.start_async(), req.wait()), lambda: None, settings)
    return {"n": n, "flops_s": throughput_stats(secs, 2.0 * n**3)}


def _read_bandwidth(core, device: str, buffer_bytes: int, settings: ProbeSettings) -> dict:
    import numpy as np
    import openvino as ov
    import openvino.opset13 as ops

    rows = 1024  # a (rows, cols) sum over cols: rows run in parallel (a 1-D sum ran on one thread)
    count = buffer_bytes // 4 // rows * rows
    x = ops.parameter([rows, count // rows], ov.Type.f32)
    model = ov.Model([ops.reduce_sum(x, ops.constant(np.array([1], dtype=np.int64)), False)], [x], "read")
    req = core.compile_model(model, device, {"INFERENCE_PRECISION_HINT": "f32"}).create_infer_request()
    req.set_input_tensor(0, ov.Tensor(np.ones((rows, count // rows), dtype=np.float32)))
    secs = time_calls(lambda: (req.start_async(), req.wait()), lambda: None, settings)
    return {"buffer_bytes": count * 4, "bytes_s": throughput_stats(secs, count * 4.0)}


def measure_device(core, dev: OVDevice, settings: ProbeSettings, buffer_bytes: int) -> None:
    caps = dev.properties.get("OPTIMIZATION_CAPABILITIES") or ["FP32"]
    n = 1024 if settings.min_gemm_n <= 1024 else 2048
    for cap, hint in PRECISIONS.items():
        if cap not in caps:
            dev.skipped[f"{hint} GEMM"] = f"{dev.device} does not list {cap} in OPTIMIZATION_CAPABILITIES"
            continue
        try:
            dev.gemm[hint] = _gemm(core, dev.device, hint, n, settings)
        except RuntimeError as e:
            dev.skipped[f"{hint} GEMM"] = str(e).splitlines()[0][:200]
    try:
        dev.bandwidth = _read_bandwidth(core, dev.device, buffer_bytes, settings)
    except RuntimeError as e:
        dev.skipped["read bandwidth"] = str(e).splitlines()[0][:200]


def _cache_file(version: str, devices: list[OVDevice], mode: str, fingerprint: str):
    from hashlib import sha256

    from aipc.paths import profiles_dir

    key = json.dumps([version, [d.device for d in devices], [d.name for d in devices], VERSION, fingerprint])
    return profiles_dir() / f"openvino-{sha256(key.encode()).hexdigest()[:16]}-{mode}.json"


def _from_dict(d: dict) -> OVReport:
    devs = []
    for x in d["devices"]:
        gemm = {k: {**v, "flops_s": Stats(**v["flops_s"])} for k, v in x["gemm"].items()}
        bw = {**x["bandwidth"], "bytes_s": Stats(**x["bandwidth"]["bytes_s"])} if x["bandwidth"] else None
        devs.append(OVDevice(**{**x, "gemm": gemm, "bandwidth": bw}))
    return OVReport(version=d["version"], devices=devs, absent=d["absent"], cached=True)


def report(quick: bool = True, refresh: bool = False, fingerprint: str = "", buffer_bytes: int = 256 << 20,
           settings: ProbeSettings | None = None) -> OVReport:
    """OpenVINO's devices with their measurements (cached per OpenVINO version, devices and machine)."""
    try:
        import openvino as ov
    except ImportError:
        return OVReport(version=None, absent={k: "OpenVINO is not installed (./setup.sh installs it)" for k in KINDS})
    core = ov.Core()
    devices = list_devices(core)
    mode = "quick" if quick else "full"
    path = _cache_file(ov.__version__, devices, mode, fingerprint)
    if not refresh and path.is_file():
        try:
            return _from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError):
            pass
    settings = settings or (ProbeSettings.quick() if quick else ProbeSettings.full())
    for dev in devices:
        measure_device(core, dev, settings, buffer_bytes)
    rep = OVReport(version=ov.__version__, devices=devices, absent=_absent(devices))
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(rep.to_dict(), indent=1), encoding="utf-8")
    os.replace(tmp, path)
    return rep


def render(rep: OVReport, console) -> None:
    """The OpenVINO section of ``aipc hw``: devices, properties, measured peaks, what is absent and why."""
    from aipc.render import gb, si

    if rep.version is None:
        console.print("OpenVINO  not installed (./setup.sh installs it)")
        return
    console.print(f"[bold]OpenVINO {rep.version}[/bold] devices" + (" (cached measurements)" if rep.cached else ""))
    for d in rep.devices:
        p = d.properties
        mem = p.get("GPU_DEVICE_TOTAL_MEM_SIZE") or p.get("NPU_DEVICE_TOTAL_MEM_SIZE")
        extra = [f"{k.lower()} {p[k]}" for k in ("DEVICE_TYPE", "DEVICE_ARCHITECTURE", "GPU_EXECUTION_UNITS_COUNT",
                                                  "NPU_DRIVER_VERSION") if p.get(k) not in (None, "")]
        extra += [f"memory {gb(mem)}"] if mem else []
        caps = ", ".join(p.get("OPTIMIZATION_CAPABILITIES") or [])
        console.print(f"  {d.device:<6} {d.name}; {'; '.join(extra)}; capabilities {caps or '-'}")
        for hint, g in d.gemm.items():
            s = g["flops_s"]
            console.print(f"         {hint} GEMM {g['n']}x{g['n']} (OpenVINO MatMul): {si(s.median, 'FLOP/s')} "
                          f"median, p10..p90 {si(s.p10)}..{si(s.p90)}, {s.samples} samples")
        if d.bandwidth:
            s = d.bandwidth["bytes_s"]
            console.print(f"         memory read {d.bandwidth['buffer_bytes'] >> 20} MiB (OpenVINO ReduceSum): "
                          f"{si(s.median, 'B/s')} median, {s.samples} samples")
        for what, why in d.skipped.items():
            console.print(f"         {what} not measured: {why}")
    for kind, why in rep.absent.items():
        console.print(f"  {kind:<6} not listed: {why}")
