"""This machine's measured profile: detection + probe results, cached per hardware+software fingerprint.

``load_or_measure()`` returns the cached :class:`MachineProfile` when the fingerprint of the machine
(CPU, cores, RAM, GPUs, torch version and build, driver, threads) matches a cached one, and measures
otherwise. ``MachineProfile.device_specs()`` turns the measurements into :class:`DeviceSpec` objects
("this-machine:cpu", "this-machine:cuda:0", ...) in the catalog's own terms, so this machine compares
with any catalog device; ``export_profile()`` writes them as a catalog file (TOML or JSON).
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from aipc import __version__
from aipc.errors import AipcError
from aipc.hardware import conditions as cond
from aipc.hardware.detect import CpuInfo, GpuInfo, MachineInfo, NpuInfo, SoftwareInfo, detect
from aipc.hardware.probe import BandwidthResult, DeviceMeasurement, GemmResult, ProbeSettings, Stats
from aipc.hardware.spec import DeviceSpec, Sourced

PROBE_VERSION = 2         # bump when the measuring method changes: old caches are then ignored
# 2: CPU GEMMs through F.linear, linear forward+backward (train) peaks, per-figure conditions, best of runs
SCHEMA = 1
measure_count = 0         # how many times this process measured (tests assert cache hits with it)


@dataclass(kw_only=True)
class MachineProfile:
    fingerprint: str
    mode: str                                   # full | quick
    measured_at: str                            # ISO 8601, UTC
    aipc_version: str
    measure_wall_s: float                       # time the probes took (without torch import)
    load_avg: list[float] | None                # 1-min load average before and after measuring
    machine: MachineInfo
    devices: list[DeviceMeasurement]
    busy_cpu_percent: float | None = None       # CPU in use (all processes) just before measuring
    cached: bool = False                        # True when read from the cache (not serialized)
    cache_path: str | None = None

    @property
    def date(self) -> str:
        return self.measured_at[:10]

    def to_dict(self) -> dict:
        d = {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)
             if f.name not in ("cached", "cache_path")}
        return {"schema": SCHEMA, "probe_version": PROBE_VERSION, **d}

    @classmethod
    def from_dict(cls, d: dict) -> MachineProfile:
        m = d["machine"]
        machine = MachineInfo(**{**m, "cpu": CpuInfo(**m["cpu"]), "gpus": [GpuInfo(**g) for g in m["gpus"]],
                                 "npus": [NpuInfo(**n) for n in m["npus"]], "software": SoftwareInfo(**m["software"])})
        devices = [_measurement(x) for x in d["devices"]]
        keep = {f.name for f in dataclasses.fields(cls)} - {"machine", "devices", "cached", "cache_path"}
        return cls(**{k: d[k] for k in keep}, machine=machine, devices=devices)

    @property
    def source(self) -> str:
        """Where these numbers came from, for citing next to a derived figure."""
        return f"aipc hw {self.mode} profile measured {self.measured_at}"

    def default_device(self) -> str:
        """The device torch work would run on: the first accelerator, else the CPU."""
        return self.devices[1].device if len(self.devices) > 1 else "cpu"

    def measurement(self, device: str | None = None) -> DeviceMeasurement | None:
        """The measurement of ``device`` ('cpu', 'cuda:0', 'cuda' = 'cuda:0', 'mps'); default: default_device()."""
        want = device or self.default_device()
        want = {"cuda": "cuda:0", "xpu": "xpu:0"}.get(want, want)
        return next((m for m in self.devices if m.device == want), None)

    def peak_flops(self, dtype: str, device: str | None = None) -> float | None:
        """Measured median dense GEMM FLOP/s for ``dtype`` on ``device`` (None when not measured)."""
        m = self.measurement(device)
        g = m.gemm.get(dtype) if m else None
        return g.flops_s.median if g else None

    def native_dtypes(self, device: str | None = None) -> list[str]:
        """Dtypes with native kernels on ``device`` (CPU: from its ISA flags and ISA caps, see
        ``aipc.hardware.isa``); [] when not known."""
        from aipc.hardware.isa import native

        m = self.measurement(device)
        return native(m.dtype_support) if m else []

    def fast_dtype(self, device: str | None = None, task: str = "infer") -> str:
        """The dtype that runs fastest here among the native ones, by the measured peaks (training:
        the linear forward + backward peaks): fp32 where 16-bit is emulated."""
        m = self.measurement(device)
        if m is None:
            return "fp32"
        table = m.train_gemm if task == "train" and m.train_gemm else m.gemm
        cands = [d for d in (self.native_dtypes(device) or ["fp32"]) if d in table]
        return max(cands, key=lambda d: table[d].flops_s.median) if cands else "fp32"

    @property
    def busy(self) -> bool:
        """True when this measurement itself ran on a busy machine (see aipc.hardware.conditions)."""
        before = self.load_avg[0] if self.load_avg else None
        return cond.is_busy(before, self.busy_cpu_percent, self.machine.cpu.logical_cores)

    def bandwidth_bytes_s(self, device: str | None = None) -> float | None:
        """Measured median copy bandwidth (read + write bytes per second) of ``device``."""
        m = self.measurement(device)
        return m.bandwidth["copy"].bytes_s.median if m and "copy" in m.bandwidth else None

    def device_specs(self) -> list[DeviceSpec]:
        """One DeviceSpec per measured local device, numbers sourced as measured here."""
        return [s for s in (self.spec_for(m) for m in self.devices) if s is not None]

    def spec_for(self, m: DeviceMeasurement) -> DeviceSpec | None:
        """The DeviceSpec of one measured device (None when no GEMM dtype could be measured)."""
        if not m.gemm or "copy" not in m.bandwidth:
            return None
        how = f"measured by aipc hw {self.date} ({self.mode})"
        sw = self.machine.software
        copy = m.bandwidth["copy"]
        sources = {
            "bandwidth_bytes_s": Sourced(source=f"{how}: b.copy_(a) on {copy.buffer_bytes >> 20} MiB fp32 buffers, "
                                                f"read+write bytes, median of {copy.bytes_s.samples}", as_of=self.date)}
        peaks, train = {}, {}
        call = "F.linear" if m.device == "cpu" else "torch.matmul"
        for dt, g in m.gemm.items():
            peaks[dt] = g.flops_s.median
            sources[f"peak_flops.{dt}"] = Sourced(
                source=f"{how}: {call} {dt} {g.n}x{g.n}, 2*n^3 FLOPs, median of {g.flops_s.samples}{_when(g)}",
                as_of=self.date)
        for dt, g in m.train_gemm.items():
            train[dt] = g.flops_s.median
            sources[f"train_peak_flops.{dt}"] = Sourced(
                source=f"{how}: linear forward+backward {dt} {g.n}x{g.n}, 6*n^3 FLOPs, median of "
                       f"{g.flops_s.samples}{_when(g)}", as_of=self.date)
        notes = [f"measured {self.mode} on {self.measured_at} with torch {sw.torch} ({sw.torch_build})"]
        if m.threads:
            notes.append(f"{m.threads} CPU threads")
        if "read" in m.bandwidth:
            notes.append(f"read-only bandwidth (a.sum) {m.bandwidth['read'].bytes_s.median / 1e9:.1f} GB/s")
        notes += [f"{dt}: {g.note}" for dt, g in m.gemm.items() if g.note]
        notes += [f"{dt} not measured: {why}" for dt, why in m.skipped.items()]
        if self.load_avg:
            notes.append(f"load average {self.load_avg[0]:.1f} before, {self.load_avg[1]:.1f} after measuring")
        if m.device == "cpu":
            cpu = self.machine.cpu
            mem = usable = self.machine.ram_total_bytes
            mem_src = "psutil.virtual_memory().total"
            label = f"{cpu.model} ({cpu.physical_cores or cpu.logical_cores} cores) — this machine"
            vendor, kind = cpu.vendor, "cpu"
        else:
            gpu = next(g for g in self.machine.gpus if g.device == m.device)
            mem = gpu.memory_bytes or 0
            usable = min(gpu.usable_memory_bytes or mem, mem)
            mem_src = "torch device properties (total_memory)" if gpu.backend != "mps" else \
                "psutil total RAM (unified); usable: torch.mps.recommended_max_memory()"
            label = f"{gpu.name} — this machine"
            vendor, kind = gpu.vendor, "apu" if gpu.backend == "mps" else "gpu"
        sources["memory_bytes"] = sources["usable_memory_bytes"] = Sourced(source=f"{how}: {mem_src}", as_of=self.date)
        from aipc.hardware.isa import native

        kernels = self.kernel_tables(m.device, sources)
        return DeviceSpec(name=f"this-machine:{m.device}", label=label, vendor=vendor, kind=kind,
                          category="this-machine", memory_bytes=int(mem), usable_memory_bytes=int(usable),
                          bandwidth_bytes_s=float(copy.bytes_s.median), peak_flops=peaks, sources=sources,
                          measured=True, notes="; ".join(notes), train_peak_flops=train,
                          native_dtypes=tuple(native(m.dtype_support)), confidence=cond.confidence_note(m),
                          kernel_flops=kernels, llc_bytes=int(self.machine.cpu.llc_bytes or 0) if kind == "cpu" else 0)

    def kernel_tables(self, device: str, sources: dict) -> dict:
        """The engines' measured kernel throughput on this machine's CPU (aipc.hardware.kernels), and
        their sources added to ``sources``."""
        from aipc.hardware import kernels as K

        if device != "cpu":
            return {}
        out = {}
        for engine, rec in K.load(self.fingerprint).items():
            out[engine] = K.spec_table(rec)
            load = rec.get("load_avg") or [None]
            sources[f"kernel_flops.{engine}"] = Sourced(
                source=f"measured by aipc hw: {rec.get('method', 'prefill per weight type')} ({engine} "
                       f"{rec.get('version', '?')}, {rec.get('threads', '?')} threads, load "
                       f"{load[0] if load[0] is not None else '?'})", as_of=str(rec.get("measured_at", ""))[:10])
        return out


def _plain(obj):
    """Dataclasses to plain dicts/lists (JSON-ready)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _when(r) -> str:
    """', measured <time> at load <x>' for a figure kept from an earlier measurement or a busy one."""
    c = r.conditions or {}
    load = (c.get("load_avg") or [None])[0]
    return f" (measured {c.get('measured_at')}, load {load:.1f}{', busy' if c.get('busy') else ''})" \
        if c.get("measured_at") and load is not None else ""


def _measurement(d: dict) -> DeviceMeasurement:
    def gemms(t: dict) -> dict:
        return {k: GemmResult(**{**v, "flops_s": Stats(**v["flops_s"])}) for k, v in t.items()}
    bw = {k: BandwidthResult(**{**v, "bytes_s": Stats(**v["bytes_s"])}) for k, v in d["bandwidth"].items()}
    return DeviceMeasurement(**{**d, "gemm": gemms(d["gemm"]), "train_gemm": gemms(d.get("train_gemm", {})),
                                "bandwidth": bw})


# ---------------------------------------------------------------- fingerprint and cache

def fingerprint(info: MachineInfo) -> str:
    """16 hex digits of sha256 over the facts that change measured peaks: CPU model, cores, ISA,
    RAM (to 256 MiB), GPU names and memory, torch version and build, CUDA runtime and driver,
    torch thread count, and the probe method version."""
    sw = info.software
    from aipc.hardware.isa import isa_caps

    facts = {
        "cpu": [info.cpu.model, info.cpu.arch, info.cpu.physical_cores, info.cpu.logical_cores,
                sorted(k for k, v in info.cpu.features.items() if v), info.cpu.torch_capability,
                isa_caps(os.environ)],
        "ram": round(info.ram_total_bytes / 2**28),
        "gpus": [[g.backend, g.name, g.memory_bytes] for g in info.gpus],
        "torch": [sw.torch, sw.torch_build, sw.cuda_runtime, sw.cuda_driver, sw.torch_threads],
        "probe": PROBE_VERSION,
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]


def cache_path(fp: str, mode: str) -> Path:
    from aipc.paths import profiles_dir

    return profiles_dir() / f"{fp}-{mode}.json"


def _read_cache(path: Path) -> MachineProfile | None:
    """A cached profile, or None when absent, unreadable or from another schema/probe version."""
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
        if d.get("schema") != SCHEMA or d.get("probe_version") != PROBE_VERSION:
            return None
        p = MachineProfile.from_dict(d)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    p.cached, p.cache_path = True, str(path)
    return p


def _write_cache(p: MachineProfile) -> Path:
    path = cache_path(p.fingerprint, p.mode)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(p.to_dict(), indent=1), encoding="utf-8")
    os.replace(tmp, path)  # atomic: a reader never sees half a file
    return path


def measure(quick: bool = False, settings: ProbeSettings | None = None, info: MachineInfo | None = None,
            wait_quiet_s: float = 0.0) -> MachineProfile:
    """Detect and measure now (no cache). Every figure records the conditions it was measured under
    (``aipc.hardware.conditions``); ``wait_quiet_s`` first waits up to that long for a quiet machine."""
    global measure_count
    from aipc.hardware.probe import measure_all

    info = info or detect()
    settings = settings or (ProbeSettings.quick() if quick else ProbeSettings.full())
    cores = info.cpu.logical_cores
    if wait_quiet_s > 0:
        cond.wait_quiet(cores, wait_quiet_s)
    measure_count += 1
    busy = cond.cpu_busy_percent()
    before, t0 = cond.loadavg(), time.perf_counter()
    devices = measure_all(info, settings)
    wall, after = time.perf_counter() - t0, cond.loadavg()
    mode = "quick" if quick else "full"
    at = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    c = cond.conditions(measured_at=at, mode=mode, load_before=before, load_after=after, busy_percent=busy,
                        cores=cores)
    for d in devices:
        for table in (d.gemm, d.train_gemm, d.bandwidth):
            for r in table.values():
                r.conditions = dict(c)
    return MachineProfile(
        fingerprint=fingerprint(info), mode=mode, measured_at=at, aipc_version=__version__, measure_wall_s=wall,
        load_avg=[before, after] if before is not None and after is not None else None,
        machine=info, devices=devices, busy_cpu_percent=busy)


def _cached_modes(fp: str, modes: tuple[str, ...]) -> list[MachineProfile]:
    return [p for p in (_read_cache(cache_path(fp, m)) for m in modes) if p is not None]


def cached_profile(quick: bool = True) -> MachineProfile | None:
    """The cached profile for this machine without measuring (full preferred; quick accepted when
    ``quick``), or None; with both cached, each figure is the best of the two (peaks are maxima).
    Detection still runs to compute the fingerprint."""
    info = detect()
    fp = fingerprint(info)
    found = _cached_modes(fp, ("full", "quick") if quick else ("full",))
    if not found:
        return None
    p = found[0]
    if len(found) > 1:
        cond.merge_devices(p.devices, [o.devices for o in found[1:]])
    p.machine = info  # fresh transient facts (available RAM); the hardware matched
    return p


load_cached = cached_profile  # alias used by other modules


def newest_cached() -> MachineProfile | None:
    """The most recent cached profile (full preferred over quick) without detecting or importing
    torch — for the light verbs (estimate, decide) that must stay fast. It may be stale after a
    hardware or software change; ``cached_profile`` checks the fingerprint. Its figures are the best
    of the full and quick profiles of the same fingerprint."""
    from aipc.paths import profiles_dir

    files = sorted(profiles_dir().glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for path in [p for p in files if p.stem.endswith("-full")] + [p for p in files if not p.stem.endswith("-full")]:
        prof = _read_cache(path)
        if prof is not None:
            others = [o for o in _cached_modes(prof.fingerprint, ("full", "quick")) if o.mode != prof.mode]
            if others:
                cond.merge_devices(prof.devices, [o.devices for o in others])
            return prof
    return None


def load_or_measure(quick: bool = False, refresh: bool = False, settings: ProbeSettings | None = None, *,
                    remeasure_if_quiet: bool = False, wait_quiet_s: float = 0.0,
                    replace: bool = False) -> MachineProfile:
    """This machine's profile: cached when the fingerprint matches (a full profile also answers a
    quick request), measured and cached otherwise or when ``refresh``. A new measurement is merged
    with the cached ones, figure by figure keeping the best (``replace``: keep only the new one).
    ``remeasure_if_quiet``: a cached profile with figures measured on a busy machine is measured
    again when the machine is quiet now."""
    if not refresh:
        p = cached_profile(quick=quick)
        if p is not None:
            if not (remeasure_if_quiet and any(cond.low_confidence(d) for d in p.devices)
                    and cond.quiet_now(p.machine.cpu.logical_cores)[0]):
                return p
    p = measure(quick=quick, settings=settings, wait_quiet_s=wait_quiet_s)
    if not replace:
        olds = _cached_modes(p.fingerprint, ("full", "quick"))
        cond.merge_devices(p.devices, [o.devices for o in olds])
    else:  # forget every kept figure of this machine, the other mode's too
        for mode in ("full", "quick"):
            cache_path(p.fingerprint, mode).unlink(missing_ok=True)
    p.cache_path = str(_write_cache(p))
    return p


# ---------------------------------------------------------------- export in the catalog's format

def _toml_key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            raise AipcError("cannot export a non-finite number to TOML; re-measure with aipc hw --refresh")
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def catalog_toml(file_dict: dict) -> str:
    """A catalog file dict ({schema, devices: {id: entry}}) as TOML, one [devices."id"] table each."""
    lines = [f"# written by aipc hw {datetime.date.today().isoformat()}; load with --catalog FILE or AIPC_DEVICES"]
    lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in file_dict.items() if k != "devices"]
    for name, entry in file_dict["devices"].items():
        lines += ["", f"[devices.{_toml_key(name)}]"]
        lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in entry.items()]
    return "\n".join(lines) + "\n"


def check_export_path(path: Path) -> Path:
    """The export path, validated before any measuring: .toml or .json, in an existing folder."""
    path = Path(path).expanduser()
    if path.suffix.lower() not in (".toml", ".json"):
        raise AipcError(f"--export {path}: unknown file type '{path.suffix}'; use a .toml or .json file name")
    if not path.parent.is_dir():
        raise AipcError(f"--export {path}: folder {path.parent} does not exist; create it or pick another path")
    return path


def export_profile(profile: MachineProfile, path: Path) -> Path:
    """Write this machine's DeviceSpecs as a device catalog file (TOML or JSON by suffix)."""
    from aipc.hardware.catalog import catalog_file_dict

    path = check_export_path(path)
    data = catalog_file_dict(profile.device_specs())
    text = json.dumps(data, indent=2) + "\n" if path.suffix.lower() == ".json" else catalog_toml(data)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path
