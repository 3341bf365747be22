"""aipc hw detection: fields present and sane, never failing, fingerprint sensitive to the stack."""

from __future__ import annotations

import psutil
import pytest

from aipc.hardware import detect as det
from aipc.hardware.profile import fingerprint


def test_detect_fields_present_and_sane():
    m = det.detect()
    assert m.cpu.logical_cores >= 1
    assert m.cpu.physical_cores is None or 1 <= m.cpu.physical_cores <= m.cpu.logical_cores
    assert m.cpu.logical_cores == psutil.cpu_count(logical=True)
    assert isinstance(m.cpu.model, str) and m.cpu.model
    assert m.ram_total_bytes == psutil.virtual_memory().total > 0
    assert 0 < m.ram_available_bytes <= m.ram_total_bytes
    assert m.cpu.arch in ("x86_64", "arm64") or m.cpu.arch
    import torch

    sw = m.software
    assert sw.torch == torch.__version__
    assert sw.torch_threads == torch.get_num_threads() >= 1
    expect = (f"rocm {torch.version.hip}" if torch.version.hip else
              f"cuda {torch.version.cuda}" if torch.version.cuda else "cpu")
    assert sw.torch_build == expect
    assert sw.python.count(".") == 2
    assert sw.sdpa["available"] is True
    assert len(m.gpus) == (torch.cuda.device_count() if torch.cuda.is_available() else 0) + \
        (1 if torch.backends.mps.is_available() else 0) + \
        (torch.xpu.device_count() if hasattr(torch, "xpu") and torch.xpu.is_available() else 0)


def test_cpu_features_match_proc_cpuinfo():
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        pytest.skip("no /proc/cpuinfo on this OS")
    flags = set(next(line for line in text.splitlines() if line.startswith(("flags", "Features"))).split(":")[1].split())
    cpu = det.detect_cpu()
    assert cpu.features, "no ISA features read"
    for name, present in cpu.features.items():
        kernel_name = {"neon": "asimd", "neon_fp16": "asimdhp"}.get(name, name)
        assert present == (kernel_name in flags), name


def test_detect_survives_missing_sensors(monkeypatch):
    import torch

    def boom(*a, **k):
        raise RuntimeError("no sensor")

    monkeypatch.setattr(psutil, "cpu_freq", boom)
    monkeypatch.setattr(torch.cuda, "is_available", boom)
    m = det.detect()
    assert m.cpu.freq_hz is None
    assert any(n.startswith("cuda_gpus: not available (RuntimeError") for n in m.notes)
    assert m.cpu.logical_cores >= 1  # the rest still detected


def test_fingerprint_stable_and_changes_with_torch_version(monkeypatch):
    import torch

    a, b = fingerprint(det.detect()), fingerprint(det.detect())
    assert a == b and len(a) == 16
    monkeypatch.setattr(torch, "__version__", "9.9.9+fake")
    assert fingerprint(det.detect()) != a
    monkeypatch.undo()
    assert fingerprint(det.detect()) == a


def test_fingerprint_changes_with_hardware():
    m = det.detect()
    base = fingerprint(m)
    m.ram_total_bytes *= 2
    assert fingerprint(m) != base
    m.ram_total_bytes //= 2
    m.cpu.logical_cores += 1
    assert fingerprint(m) != base
