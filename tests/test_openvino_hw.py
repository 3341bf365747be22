"""`aipc hw` lists OpenVINO's devices next to torch's and measures them through OpenVINO (for real on
this CPU; a GPU / NPU that OpenVINO does not see is listed as absent with the reason)."""

from __future__ import annotations

import json

import pytest
from helpers import run_cli, tiny_profile_home

ov = pytest.importorskip("openvino", reason="OpenVINO is not installed (./setup.sh installs it)")
from aipc.hardware import openvino_devices as ovd  # noqa: E402
from aipc.hardware.probe import ProbeSettings  # noqa: E402

TINY = ProbeSettings(warmup=1, min_reps=3, min_time_s=0.02, max_time_s=0.3, min_gemm_n=128)


def test_report_lists_and_measures_the_cpu():
    rep = ovd.report(quick=True, buffer_bytes=16 << 20, settings=TINY, fingerprint="t")
    core = ov.Core()
    assert [d.device for d in rep.devices] == core.available_devices
    cpu = rep.devices[0]
    assert cpu.device == "CPU" and cpu.name == core.get_property("CPU", "FULL_DEVICE_NAME")
    assert "FP32" in cpu.properties["OPTIMIZATION_CAPABILITIES"]
    f32 = cpu.gemm["f32"]
    assert f32["n"] == 1024 and f32["flops_s"].median > 1e8
    # median FLOP/s and median seconds per call describe the same samples
    assert f32["flops_s"].median * f32["flops_s"].seconds_per_call == pytest.approx(2 * 1024**3, rel=0.3)
    assert cpu.bandwidth["buffer_bytes"] == 16 << 20 and cpu.bandwidth["bytes_s"].median > 1e8
    for kind in ("GPU", "NPU"):
        present = any(d.startswith(kind) for d in core.available_devices)
        assert (kind in rep.absent) != present
        if not present:
            assert "driver" in rep.absent[kind] or "runtime" in rep.absent[kind]
    again = ovd.report(quick=True, buffer_bytes=16 << 20, settings=TINY, fingerprint="t")
    assert again.cached and again.devices[0].gemm["f32"]["flops_s"].median == f32["flops_s"].median


def test_hw_json_and_table_include_openvino(tmp_path):
    with tiny_profile_home(tmp_path):
        code, out, err = run_cli("hw", "--quick", "--json")
        assert code == 0, err
        d = json.loads(out)
        assert d["devices"][0]["device"] == "cpu"  # torch's view, unchanged
        o = d["openvino"]
        assert o["version"] == ov.__version__ and o["devices"][0]["device"] == "CPU"
        assert o["devices"][0]["gemm"]["f32"]["flops_s"]["median"] > 0
        code, out, err = run_cli("hw", "--quick")
        flat = " ".join(out.split())
        assert code == 0 and f"OpenVINO {ov.__version__} devices (cached measurements)" in flat
        assert "f32 GEMM 1024x1024 (OpenVINO MatMul)" in flat and "(OpenVINO ReduceSum)" in flat
        if "NPU" not in ov.Core().available_devices:
            assert "NPU not listed: OpenVINO sees no NPU" in flat
