"""aipc hw profile: cache per fingerprint, DeviceSpecs from measurements, export in catalog format."""

from __future__ import annotations

import json

import pytest

from aipc.errors import AipcError
from aipc.hardware import catalog, profile
from aipc.hardware.probe import ProbeSettings

pytest.importorskip("torch")

# Tiny settings: the same code paths as aipc hw, a fraction of a second per device.
TINY = ProbeSettings(warmup=1, min_reps=3, min_time_s=0.02, max_time_s=0.3, max_call_s=0.005,
                     min_gemm_n=128, gemm_sizes=(64, 128, 256), cpu_copy_min_bytes=8 * 2**20,
                     gpu_copy_bytes=64 * 2**20, llc_factor=0)


@pytest.fixture(scope="module")
def measured():
    return profile.measure(quick=True, settings=TINY)


def test_profile_has_cpu_peaks_and_bandwidth(measured):
    cpu = measured.devices[0]
    assert cpu.device == "cpu" and cpu.threads >= 1
    assert {"fp32", "bf16"} <= set(cpu.gemm)
    for dt, g in cpu.gemm.items():
        assert g.n in TINY.gemm_sizes and g.flops_per_call == 2 * g.n**3
        s = g.flops_s
        assert 0 < s.p10 <= s.median <= s.p90 and s.samples >= TINY.min_reps
    bw = cpu.bandwidth["copy"]
    assert bw.bytes_per_call == 2 * bw.buffer_bytes == 2 * 8 * 2**20
    assert bw.bytes_s.median > 0
    assert measured.fingerprint == profile.fingerprint(measured.machine)


def test_device_specs_carry_measured_numbers_with_sources(measured):
    specs = measured.device_specs()
    assert specs[0].name == "this-machine:cpu"
    assert len(specs) == len(measured.devices)
    cpu = specs[0]
    m = measured.devices[0]
    assert cpu.measured and cpu.category == "this-machine" and cpu.kind == "cpu"
    assert cpu.memory_bytes == measured.machine.ram_total_bytes
    assert cpu.bandwidth_bytes_s == m.bandwidth["copy"].bytes_s.median
    assert cpu.peak_flops == {dt: g.flops_s.median for dt, g in m.gemm.items()}
    assert cpu.peak("fp32") == m.gemm["fp32"].flops_s.median
    for fld in ["memory_bytes", "usable_memory_bytes", "bandwidth_bytes_s", *[f"peak_flops.{d}" for d in m.gemm]]:
        src = cpu.sources[fld]
        assert src.source.startswith(f"measured by aipc hw {measured.date}") and src.as_of == measured.date


def test_dict_round_trip(measured):
    again = profile.MachineProfile.from_dict(json.loads(json.dumps(measured.to_dict())))
    assert again.to_dict() == measured.to_dict()
    assert again.device_specs() == measured.device_specs()


def test_cache_hit_on_second_call_without_measuring(monkeypatch):
    monkeypatch.setattr(ProbeSettings, "quick", classmethod(lambda cls: TINY))
    n0 = profile.measure_count
    first = profile.load_or_measure(quick=True)
    assert profile.measure_count == n0 + 1 and not first.cached
    second = profile.load_or_measure(quick=True)
    assert profile.measure_count == n0 + 1, "second call measured again instead of using the cache"
    assert second.cached and second.fingerprint == first.fingerprint
    assert second.measured_at == first.measured_at
    assert second.device_specs() == first.device_specs()
    third = profile.load_or_measure(quick=True, refresh=True)
    assert profile.measure_count == n0 + 2 and not third.cached


def test_quick_cache_does_not_answer_full_request(monkeypatch):
    monkeypatch.setattr(ProbeSettings, "quick", classmethod(lambda cls: TINY))
    monkeypatch.setattr(ProbeSettings, "full", classmethod(lambda cls: TINY))
    n0 = profile.measure_count
    profile.load_or_measure(quick=True)
    full = profile.load_or_measure(quick=False)  # a quick profile is not good enough
    assert profile.measure_count == n0 + 2 and full.mode == "full"
    assert profile.load_or_measure(quick=True).mode == "full"  # a full one answers a quick request
    assert profile.measure_count == n0 + 2


def test_cache_miss_when_fingerprint_changes(monkeypatch):
    import torch

    monkeypatch.setattr(ProbeSettings, "quick", classmethod(lambda cls: TINY))
    n0 = profile.measure_count
    a = profile.load_or_measure(quick=True)
    monkeypatch.setattr(torch, "__version__", "9.9.9+other")
    b = profile.load_or_measure(quick=True)
    assert profile.measure_count == n0 + 2 and a.fingerprint != b.fingerprint


def test_corrupt_cache_is_remeasured(monkeypatch):
    monkeypatch.setattr(ProbeSettings, "quick", classmethod(lambda cls: TINY))
    p = profile.load_or_measure(quick=True)
    with open(p.cache_path, "w") as f:
        f.write("{ not json")
    n0 = profile.measure_count
    again = profile.load_or_measure(quick=True)
    assert profile.measure_count == n0 + 1 and not again.cached


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_export_round_trips_through_the_catalog_loader(measured, tmp_path, suffix):
    path = profile.export_profile(measured, tmp_path / f"me{suffix}")
    loaded = catalog.load_catalog(extra=[path])
    for spec in measured.device_specs():
        assert loaded[spec.name] == spec
    assert catalog.get_device("this-machine:cpu", extra=[path]) == measured.device_specs()[0]
    if suffix == ".json":
        data = json.loads(path.read_text())
        assert data["devices"]["this-machine:cpu"]["measured"] is True


def test_export_bad_path_is_one_line_error(measured, tmp_path):
    with pytest.raises(AipcError, match="use a .toml or .json"):
        profile.export_profile(measured, tmp_path / "me.yaml")
    with pytest.raises(AipcError, match="does not exist"):
        profile.export_profile(measured, tmp_path / "missing" / "me.toml")
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_toml_writer_escapes_text():
    text = profile.catalog_toml({"schema": 1, "devices": {"a:b": {"label": 'quote " back \\ tab\t é', "x": 1.5e20}}})
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    d = tomllib.loads(text)
    assert d["devices"]["a:b"] == {"label": 'quote " back \\ tab\t é', "x": 1.5e20}


def test_lookup_helpers(measured):
    cpu = measured.devices[0]
    assert measured.peak_flops("fp32", "cpu") == cpu.gemm["fp32"].flops_s.median
    assert measured.bandwidth_bytes_s("cpu") == cpu.bandwidth["copy"].bytes_s.median
    assert measured.peak_flops("fp4", "cpu") is None and measured.measurement("cuda:7") is None
    assert measured.default_device() == (measured.devices[1].device if len(measured.devices) > 1 else "cpu")
    assert measured.source.startswith("aipc hw quick profile measured ")


def test_load_cached_without_measuring(monkeypatch):
    monkeypatch.setattr(ProbeSettings, "quick", classmethod(lambda cls: TINY))
    assert profile.load_cached() is None  # nothing cached in this test's AIPC_HOME
    n0 = profile.measure_count
    p = profile.load_or_measure(quick=True)
    got = profile.load_cached()
    assert got is not None and got.cached and got.measured_at == p.measured_at
    assert profile.measure_count == n0 + 1
