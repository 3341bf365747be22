"""Energy counters: NVML (NVIDIA GPUs) and RAPL (CPU package, Linux powercap). Never invented.

A meter is opened per device before a timed loop and read after it; ``joules()`` is the energy the
counter advanced by, or None when no counter is readable (the run then says "not measured").

- NVML: ``nvmlDeviceGetTotalEnergyConsumption`` (millijoules since driver load, Volta and newer),
  through the ``pynvml`` module of nvidia-ml-py where installed.
- RAPL: ``/sys/class/powercap/intel-rapl:N/energy_uj`` (package domains, microjoules, wraps at
  ``max_energy_range_uj``; AMD Zen exposes the same files). It counts the whole package, so other
  load on the machine during the run is included; the note says so.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass

RAPL_GLOB = "/sys/class/powercap/intel-rapl:[0-9]*"


@dataclass
class EnergyMeter:
    device: str
    source: str | None = None        # what is read, or None when nothing is readable
    why_not: str = ""
    _start: list[float] | None = None
    _handles: list | None = None
    _zones: list[str] | None = None

    def start(self) -> None:
        self._start = self._read()

    def joules(self) -> float | None:
        """Energy since start(), or None when not measured."""
        if self.source is None or self._start is None:
            return None
        end = self._read()
        if end is None:
            return None
        total = 0.0
        for i, (a, b) in enumerate(zip(self._start, end)):
            d = b - a
            if d < 0 and self._zones:  # RAPL counter wrapped
                d += _read_float(os.path.join(self._zones[i], "max_energy_range_uj")) or 0.0
            total += d
        return total * (1e-6 if self._zones else 1e-3)

    def _read(self) -> list[float] | None:
        try:
            if self._zones:
                vals = [_read_float(os.path.join(z, "energy_uj")) for z in self._zones]
                return None if any(v is None for v in vals) else vals
            if self._handles:
                import pynvml

                return [float(pynvml.nvmlDeviceGetTotalEnergyConsumption(h)) for h in self._handles]
        except Exception:  # noqa: BLE001 - a counter that stops answering: not measured
            return None
        return None


def _read_float(path: str) -> float | None:
    try:
        with open(path, encoding="ascii") as f:
            return float(f.read().strip())
    except (OSError, ValueError):
        return None


def rapl_zones() -> list[str]:
    """Package-level RAPL zones whose energy counter this process can read."""
    return [z for z in sorted(glob.glob(RAPL_GLOB))
            if z.count(":") == 1 and _read_float(os.path.join(z, "energy_uj")) is not None]


def _nvml_handle(pynvml, idx: int):
    """NVML handle of torch's cuda:idx, by PCI bus id (NVML and CUDA_VISIBLE_DEVICES index differently)."""
    try:
        import torch

        p = torch.cuda.get_device_properties(idx)
        bus = f"{p.pci_domain_id:08x}:{p.pci_bus_id:02x}:{p.pci_device_id:02x}.0"
        return pynvml.nvmlDeviceGetHandleByPciBusId(bus)
    except Exception:  # noqa: BLE001 - older torch without PCI ids: same index
        return pynvml.nvmlDeviceGetHandleByIndex(idx)


def meter_for(device: str) -> EnergyMeter:
    """An energy meter for a bench device ('cpu', 'cuda:0', 'mps'), or one that says why not."""
    if device == "cpu":
        zones = rapl_zones()
        if not zones:
            why = ("not measured: RAPL not readable (/sys/class/powercap absent or permission denied)"
                   if not glob.glob(RAPL_GLOB) or not os.path.isdir("/sys/class/powercap") else
                   "not measured: RAPL energy_uj not readable (needs root or a udev rule)")
            return EnergyMeter(device, None, why)
        return EnergyMeter(device, f"RAPL package energy ({len(zones)} zone(s); includes all load on the package)",
                           _zones=zones)
    if device.startswith("cuda"):
        try:
            import pynvml

            pynvml.nvmlInit()
            h = _nvml_handle(pynvml, int(device.split(":")[1]) if ":" in device else 0)
            pynvml.nvmlDeviceGetTotalEnergyConsumption(h)
        except ImportError:
            return EnergyMeter(device, None, "not measured: NVML not installed (pip install nvidia-ml-py)")
        except Exception as e:  # noqa: BLE001 - NVML present but unsupported on this GPU
            return EnergyMeter(device, None, f"not measured: NVML energy counter unavailable ({e})")
        return EnergyMeter(device, "NVML total energy counter (board)", _handles=[h])
    return EnergyMeter(device, None, f"not measured: no energy sensor known for {device}")
