"""A busy moment must not rewrite the machine: aipc hw keeps the best of its measurements per figure,
records the conditions of each, marks figures measured on a busy machine, and re-measures when quiet.

The probe's numbers are injected here (``probe.measure_all`` returns chosen values, and the load /
CPU-use readings are set): a unit test cannot make this shared machine quiet or busy on demand.
The profile code under test — merge, cache, DeviceSpec, estimate — is the real one."""

from __future__ import annotations

import copy

import pytest

from aipc.estimate import estimate
from aipc.hardware import conditions as cond
from aipc.hardware import probe, profile
from aipc.hardware.probe import BandwidthResult, DeviceMeasurement, GemmResult, Stats
from aipc.spec import Workload

pytest.importorskip("torch")


def _stats(v: float) -> Stats:
    return Stats(median=v, p10=v, p90=v, samples=5, seconds_per_call=0.01)


def _cpu(gflops: float, gbs: float, train: float | None = None) -> DeviceMeasurement:
    g = {"fp32": GemmResult(dtype="fp32", n=1024, flops_per_call=2 * 1024**3, flops_s=_stats(gflops * 1e9))}
    t = {"fp32": GemmResult(dtype="fp32", n=1024, flops_per_call=6 * 1024**3,
                            flops_s=_stats((train or gflops / 2) * 1e9))}
    bw = {"copy": BandwidthResult(kind="copy", buffer_bytes=1 << 28, bytes_per_call=2 << 28, bytes_s=_stats(gbs * 1e9))}
    return DeviceMeasurement(device="cpu", threads=2, gemm=g, train_gemm=t, bandwidth=bw,
                             dtype_support={"fp32": "native", "bf16": "emulated (no avx512_bf16 or amx_bf16)"})


@pytest.fixture
def machine(monkeypatch):
    """Set what the next measurement returns and how busy the machine looks."""
    state = {"cpu": _cpu(130, 34.5), "busy": 5.0, "load": 0.2}
    monkeypatch.setattr(probe, "measure_all", lambda info, settings: [copy.deepcopy(state["cpu"])])
    monkeypatch.setattr(cond, "cpu_busy_percent", lambda interval_s=0.5: state["busy"])
    monkeypatch.setattr(cond, "loadavg", lambda: state["load"])
    return state


def _step_s() -> float:
    w = Workload(model="smollm2-135m", task="train", seq_len=256, weight_dtype="fp32")
    return estimate(w, "this:cpu").time.step_s


def test_busy_refresh_keeps_the_quiet_peaks(machine):
    quiet = profile.load_or_measure(quick=True, refresh=True)
    assert not quiet.busy and quiet.device_specs()[0].confidence == ""
    t_quiet = _step_s()
    # the numbers: 27.6 GFLOP/s and 5.7 GB/s at load 2-3 on 2 cores
    machine.update(cpu=_cpu(27.6, 5.7), busy=95.0, load=2.6)
    busy = profile.load_or_measure(quick=False, refresh=True)
    assert busy.busy
    spec = busy.device_specs()[0]
    assert spec.peak("fp32") == 130e9 and spec.bandwidth_bytes_s == 34.5e9
    assert spec.confidence == ""  # the kept figures were measured quietly
    attempts = busy.devices[0].gemm["fp32"].conditions["attempts"]
    assert [a[1] for a in attempts] == [27.6e9, 130e9] and attempts[0][2] is True
    assert _step_s() == pytest.approx(t_quiet, rel=1e-9)
    # --replace forgets the kept figures
    only = profile.load_or_measure(quick=False, refresh=True, replace=True)
    assert only.device_specs()[0].peak("fp32") == 27.6e9


def test_busy_figures_are_marked_in_every_estimate(machine):
    machine.update(cpu=_cpu(27.6, 5.7), busy=95.0, load=2.6)
    p = profile.load_or_measure(quick=True, refresh=True)
    spec = p.device_specs()[0]
    assert "low confidence" in spec.confidence and "aipc hw --refresh" in spec.confidence
    assert "load average 2.6" in spec.confidence
    e = estimate(Workload(model="smollm2-135m", task="infer"), "this:cpu")
    assert any("low confidence" in w and "aipc hw --refresh" in w for w in e.warnings)


def test_remeasures_when_the_machine_turns_quiet(machine):
    machine.update(cpu=_cpu(27.6, 5.7), busy=95.0, load=2.6)
    profile.load_or_measure(quick=True, refresh=True)
    n0 = profile.measure_count
    profile.load_or_measure(quick=True, remeasure_if_quiet=True)   # still busy: the cache answers
    assert profile.measure_count == n0
    machine.update(cpu=_cpu(120, 30.0), busy=3.0, load=0.1)
    p = profile.load_or_measure(quick=True, remeasure_if_quiet=True)
    assert profile.measure_count == n0 + 1
    assert p.device_specs()[0].peak("fp32") == 120e9 and p.device_specs()[0].confidence == ""
    profile.load_or_measure(quick=True, remeasure_if_quiet=True)    # quiet figures: no more measuring
    assert profile.measure_count == n0 + 1


def test_full_and_quick_profiles_merge_on_read(machine):
    machine.update(cpu=_cpu(27.6, 5.7), busy=95.0, load=2.6)
    profile._write_cache(profile.measure(quick=False))  # a busy full profile, written unmerged
    machine.update(cpu=_cpu(130, 34.5), busy=3.0, load=0.1)
    profile._write_cache(profile.measure(quick=True))   # a quiet quick one beside it
    got = profile.cached_profile(quick=True)
    assert got.mode == "full" and got.device_specs()[0].peak("fp32") == 130e9
    assert profile.newest_cached().device_specs()[0].bandwidth_bytes_s == 34.5e9


def test_train_peak_drives_training_time_and_emulated_dtype_is_named(machine):
    machine.update(cpu=_cpu(100, 30.0, train=25))
    p = profile.load_or_measure(quick=True, refresh=True)
    spec = p.device_specs()[0]
    assert spec.train_peak("fp32") == 25e9 and spec.peak("fp32") == 100e9 and spec.native_dtypes == ("fp32",)
    w = Workload(model="smollm2-135m", task="train", seq_len=256, weight_dtype="fp32")
    e = estimate(w, spec)
    assert e.time.step_s == pytest.approx(e.compute.flops_per_step / (25e9 * e.efficiency.mfu_train))
    e16 = estimate(w.replace(weight_dtype="bf16"), spec)
    assert any("bf16 is emulated" in x and "--precision fp32" in x for x in e16.warnings)
    assert p.fast_dtype("cpu") == "fp32" and p.native_dtypes("cpu") == ["fp32"]


def test_busy_rule():
    assert cond.is_busy(0.2, 5.0, 2) is False
    assert cond.is_busy(1.0, 5.0, 2) is True        # load at half the cores
    assert cond.is_busy(0.2, 40.0, 2) is True       # others used 40% of the CPU just before
    assert cond.is_busy(None, None, 2) is False
