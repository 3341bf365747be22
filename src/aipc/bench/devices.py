"""Local torch devices: which are present, how to time them on CUDA, how to read their peak memory.

Peak memory per scenario:
- CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats`` (tensors only; the
  allocator's reserved peak and the CUDA context are not in it, and are reported beside it).
- CPU (Linux): the process's peak resident set size ``VmHWM`` from /proc/self/status, reset before the
  scenario by writing 5 to /proc/self/clear_refs. It includes the Python runtime, torch and the model
  weights; ``peak_rss_above_base_bytes`` subtracts the RSS measured before the model was built.
  Where clear_refs is not writable, a thread samples RSS every 2 ms (may miss short spikes).
- MPS: ``torch.mps.driver_allocated_memory`` sampled every 2 ms.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from aipc.errors import AipcError
from aipc.measure import proc_status_bytes, reset_peak_rss


def present_devices() -> list[str]:
    """Torch devices on this machine: 'cpu', then 'cuda:N' for each GPU, then 'mps'."""
    import torch

    devs = ["cpu"]
    if torch.cuda.is_available():
        devs += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devs.append("mps")
    return devs


def parse_devices(text: str | None) -> list[str]:
    """'cpu,cuda:0' -> ['cpu', 'cuda:0']; 'cuda' means cuda:0; None or 'all' -> every present device.
    A device that is not present is an AipcError naming what is."""
    present = present_devices()
    if text is None or text.strip().lower() in ("", "all"):
        return present
    out: list[str] = []
    for raw in text.split(","):
        d = raw.strip().lower()
        if not d:
            continue
        if d == "cuda":
            d = "cuda:0"
        if d not in present:
            raise AipcError(f"device '{d}' is not present on this machine; it has {', '.join(present)} "
                            "(pass --device with those, or omit it to bench all)")
        if d not in out:
            out.append(d)
    if not out:
        raise AipcError(f"no device given; pass --device with some of {', '.join(present)}")
    return out


def cuda_event_timer(device: str):
    """A time_loop timer using CUDA events recorded on the current stream (seconds)."""
    import torch

    def timer(fn, sync):
        sync()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3

    return timer


def rss_bytes() -> int:
    import psutil

    return psutil.Process().memory_info().rss


@dataclass
class PeakMemory:
    """Peak memory of one scenario on one device: ``start()`` before, ``stop()`` after."""

    device: str
    method: str = ""
    peak_bytes: int | None = None
    extra: dict | None = None
    _thread: threading.Thread | None = None
    _stop: threading.Event | None = None
    _sampled: int = 0

    def start(self) -> None:
        import torch

        if self.device.startswith("cuda"):
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.method = "CUDA max_memory_allocated (tensors; reserved peak beside it)"
        elif self.device == "cpu" and reset_peak_rss():
            self.method = "process peak RSS (Linux VmHWM, reset via /proc/self/clear_refs before the scenario)"
        else:
            self.method = ("process RSS sampled every 2 ms" if self.device == "cpu"
                           else "MPS driver-allocated memory sampled every 2 ms")
            self._stop = threading.Event()
            self._sampled = 0
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()

    def _read_sampled(self) -> int:
        if self.device == "mps":
            import torch

            return int(torch.mps.driver_allocated_memory())
        return rss_bytes()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._sampled = max(self._sampled, self._read_sampled())
            self._stop.wait(0.002)

    def stop(self) -> int | None:
        import torch

        if self.device.startswith("cuda"):
            torch.cuda.synchronize(self.device)
            self.peak_bytes = int(torch.cuda.max_memory_allocated(self.device))
            self.extra = {"reserved_peak_bytes": int(torch.cuda.max_memory_reserved(self.device))}
        elif self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.peak_bytes = max(self._sampled, self._read_sampled())
        else:
            self.peak_bytes = proc_status_bytes("VmHWM")
        return self.peak_bytes
