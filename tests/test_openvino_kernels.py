"""OpenVINO's decode per weight format measured on this CPU (aipc hw --kernels): the probes' sizing, the
two-probe fit, the estimator's use of the stored figures (uncalibrated decode and the ratios a calibration
carries a measured format by), and a real measurement through OpenVINO on tiny probes exported here."""

from __future__ import annotations

import pytest

from aipc.bench import openvino_kernels as OK
from aipc.estimate import calibrate as C
from aipc.estimate import estimate
from aipc.estimate.efficiency import by_format, default_efficiency, openvino_measured
from aipc.estimate.efficiency_defaults import DECODE_BY_FORMAT
from aipc.errors import AipcError
from aipc.hardware import kernels as K
from aipc.hardware.spec import DeviceSpec
from aipc.models import catalog
from aipc.spec import Workload

MODEL = catalog.get("qwen2.5-0.5b")
PUBLISHED = DECODE_BY_FORMAT[("cpu", "openvino")]


def _cpu(ov: dict | None = None, name: str = "ov-test-cpu") -> DeviceSpec:
    return DeviceSpec(name=name, label=name, vendor="amd", kind="cpu", category="this-machine",
                      memory_bytes=32 << 30, usable_memory_bytes=32 << 30, bandwidth_bytes_s=80e9,
                      peak_flops={"fp32": 400e9, "bf16": 900e9}, native_dtypes=("fp32", "bf16"), measured=True,
                      llc_bytes=32 << 20, kernel_flops={"openvino": ov} if ov else {})


def _ov(**terms: tuple[float, float]) -> dict:
    """A stored OpenVINO record's types: format -> (MBU, microseconds per layer)."""
    out = {}
    for fmt, (mbu, us) in terms.items():
        out[f"mbu:{fmt}"] = ((1.0, mbu),)
        out[f"layer_us:{fmt}"] = ((1.0, us),)
        out[f"read:{fmt}@5888"] = ((1.0, 20e9),)
    return out


def test_fit_solves_bytes_and_layers_and_falls_back_on_noise():
    bw = 80e9
    mbu, layer_s = 0.6, 120e-6
    steps = [(b, n, b / (bw * mbu) + n * layer_s) for b, n in ((700e6, 6), (280e6, 45))]
    got = OK.fit(steps, bw)
    assert got[0] == pytest.approx(mbu) and got[1] == pytest.approx(layer_s)
    # the narrow probe faster per byte than the wide one allows with a positive per-layer time: per-layer 0,
    # the MBU of the summed bytes over the summed time
    noisy = [(700e6, 6, 10e-3), (280e6, 45, 3e-3)]
    assert OK.fit(noisy, bw) == (pytest.approx(980e6 / 13e-3 / bw), 0.0)
    assert OK.fit([(1e8, 4, -1e-3), (1e8, 8, -1e-3)], bw) is None


def test_a_new_measurement_keeps_each_probes_best_and_refits():
    """Each probe keeps the faster of the stored and the new measurement (a process can run in the slower
    of two states), and the format's terms are refitted from those; another OpenVINO version or other
    probes replace the record."""
    bw = 80e9
    probes = OK._by_width([(OK.WIDE, 6), (OK.NARROW, 45)])
    (w_wide, w_narrow) = sorted(probes, key=float, reverse=True)

    def rec(wide_s: float, narrow_s: float, version: str = "2026.4") -> dict:
        bytes_ = {w: OK.probe_bytes(tuple(probes[w][:4]), probes[w][4], "fp16") for w in probes}
        types = {f"read:fp16@{w_wide}": [[1, bytes_[w_wide] / wide_s]],
                 f"read:fp16@{w_narrow}": [[1, bytes_[w_narrow] / narrow_s]],
                 f"prefill:fp16@{w_wide}": [[128, 8e11], [512, 8e11]], "mbu:fp16": [[1, 0.1]], "layer_us:fp16": [[1, 1.0]]}
        return {"version": version, "probes": probes, "types": types, "measured_at": "then"}

    old, new = rec(12e-3, 11e-3), rec(17e-3, 10e-3)
    got = OK.merged(new, old, bw)
    want = OK._fit_records("fp16", rec(12e-3, 10e-3)["types"], probes, bw, lambda s: None)
    assert got["types"]["mbu:fp16"] == want["mbu:fp16"] and got["types"]["layer_us:fp16"] == want["layer_us:fp16"]
    assert got["types"][f"read:fp16@{w_wide}"] == old["types"][f"read:fp16@{w_wide}"]  # the faster wide step
    assert got["types"][f"read:fp16@{w_narrow}"] == new["types"][f"read:fp16@{w_narrow}"]
    assert got["best_since"] == "then"
    assert OK.merged(new, rec(1e-3, 1e-3, version="2027.0"), bw) is new
    assert OK.merged(new, {**old, "probes": {}}, bw) is new and OK.merged(new, None, bw) is new


def test_probes_are_sized_beyond_the_cache_and_shared_by_every_format():
    said = []
    plan, decode = OK._plan(OK.FORMATS, 32 << 20, said.append)
    assert list(plan) == list(OK.FORMATS) and decode == set(OK.FORMATS) and not said
    layers = {s: n for s, n in plan["int8"]}
    assert all(dict(pr) == layers for pr in plan.values())  # one export size per probe for every format
    assert layers[OK.NARROW] > 5 * layers[OK.WIDE] >= 5 * OK.MIN_LAYERS[OK.WIDE]
    for fmt, pr in plan.items():
        for shape, n in pr:
            assert OK.probe_bytes(shape, n, fmt) >= OK.READ_CACHE_MULTIPLE * (32 << 20)
    # int4, the smallest, sets the size: one layer fewer would leave its narrow probe short of the multiple
    n = layers[OK.NARROW]
    assert OK.probe_bytes(OK.NARROW, n - 1, "int4") < OK.READ_CACHE_MULTIPLE * (32 << 20)
    # a CPU with hundreds of MiB of cache: no format's decode can be read from memory within MAX_LAYERS; the
    # prefill is still measured, on probes of at most MAX_LAYERS
    big, decode = OK._plan(OK.FORMATS, 300 << 20, said.append)
    assert decode == set() and len(said) == 3 and "decode keeps the default" in said[0]
    assert all(dict(pr) == {OK.WIDE: 22, OK.NARROW: OK.MAX_LAYERS[OK.NARROW]} for pr in big.values())
    recs = OK.format_records("int8", big["int8"], [1e-2, 1e-2], 80e9, said.append, [[0.1, 0.4], [0.1, 0.4]],
                             decode=False)
    assert sorted(k.partition("@")[0] for k in recs) == ["prefill:int8", "prefill:int8"]


def test_uncalibrated_decode_uses_the_terms_measured_here():
    spec = _cpu(_ov(fp16=(0.75, 137.0), int8=(0.48, 114.0)))
    assert openvino_measured(spec) == {"fp16": (0.75, pytest.approx(137e-6)), "int8": (0.48, pytest.approx(114e-6))}
    assert by_format(spec, "openvino")["int4"] == PUBLISHED["int4"]  # not measured: the published default
    eff = default_efficiency(spec, "openvino", "fp16")
    assert (eff.mbu_decode, eff.decode_layer_s) == (0.75, pytest.approx(137e-6))
    assert "measured on this machine by aipc hw --kernels" in eff.source
    assert "aipc hw --kernels" not in default_efficiency(spec, "openvino", "int4").source
    assert default_efficiency(_cpu(), "openvino", "fp16").mbu_decode == PUBLISHED["fp16"][0]
    # llama.cpp and torch never read OpenVINO's record
    assert by_format(spec, "llamacpp") is None and default_efficiency(spec, "torch").mbu_decode != 0.75
    w = Workload(model=MODEL.name, task="infer", prompt_tokens=128, gen_tokens=1, engine="openvino", weight_dtype="fp16")
    with C.using({}):
        e = estimate(w, spec, model=MODEL)
    assert e.time.tpot_s == pytest.approx(e.compute.decode_bytes_per_step / (80e9 * 0.75) + MODEL.num_layers * 137e-6)
    # a stored per-layer time at the record's floor reads as 0
    assert openvino_measured(_cpu(_ov(int4=(0.3, OK.LAYER_FLOOR_S * 1e6))))["int4"] == (0.3, 0.0)


def test_a_calibration_of_int8_runs_reaches_fp16_by_the_measured_ratio():
    spec = _cpu(_ov(fp16=(0.60, 150.0), int8=(0.50, 100.0), int4=(0.30, 90.0)))
    table = {"format": C.FORMAT, "version": C.VERSION, "devices": {spec.name: {"decode@openvino": {
        "by_format": {"int8": {"by_batch": [[1.0, 0.7, 2e-4, 3]], "n_runs": 3, "source": "test"}},
        "all": {"by_batch": [[1.0, 0.7, 2e-4, 3]], "n_runs": 3, "source": "test"}, "n_runs": 3, "source": "test"}}}}
    w = Workload(model=MODEL.name, task="infer", prompt_tokens=128, gen_tokens=1, engine="openvino", weight_dtype="fp16")
    with C.using(table):
        e = estimate(w, spec, model=MODEL)
    assert e.efficiency.mbu_decode == pytest.approx(0.7 * 0.60 / 0.50)  # not the published 1.10 / 0.60
    assert e.efficiency.decode_layer_s == pytest.approx(2e-4 * 150 / 100)
    assert "from int8, scaled" in e.efficiency.source


def _with_prefill(types: dict, fmt: str = "int8") -> dict:
    return {**types, f"prefill:{fmt}@5888": ((128.0, 600e9), (512.0, 700e9)),
            f"prefill:{fmt}@29696": ((128.0, 900e9), (512.0, 1000e9))}


def test_prefill_runs_at_the_per_format_flops_measured_here():
    from aipc.estimate.calibrate import workload_peak
    from aipc.estimate.compute import layer_width
    from aipc.estimate.kernels import openvino_prefill

    spec = _cpu(_with_prefill(_ov(int8=(0.5, 100.0))))
    width = layer_width(MODEL)
    assert 5888 < width < 29696
    got = openvino_prefill(spec, "int8", 512, width)
    assert 700e9 < got < 1000e9  # interpolated in log(width) between the probes
    assert openvino_prefill(spec, "int8", 512, 29696) == 1000e9 and openvino_prefill(spec, "int8", 128, 5888) == 600e9
    assert openvino_prefill(spec, "fp16", 512, width) is None  # fp16 not measured
    w = Workload(model=MODEL.name, task="infer", prompt_tokens=512, gen_tokens=1, engine="openvino", weight_dtype="int8")
    with C.using({}):
        e = estimate(w, spec, model=MODEL)
    assert workload_peak(spec, w, compute=e.compute) == pytest.approx(got)
    assert e.efficiency.mfu_prefill == 1.0 and "prefill FLOP/s aipc hw --kernels measured" in e.efficiency.source
    # prefill and decode both measured here: the source names those alone, not the replaced class default
    assert e.efficiency.source.startswith("OpenVINO on this CPU; int8 decode MBU 0.50 + 0.1 ms per layer (measured")
    assert "Intel Xeon" not in e.efficiency.source
    assert e.time.prefill_s == pytest.approx(e.compute.prefill_flops / got)
    # fp16, not measured: the peak of the plugin's precision and the class default MFU, as before
    with C.using({}):
        f = estimate(Workload(model=MODEL.name, task="infer", prompt_tokens=512, gen_tokens=1, engine="openvino",
                              weight_dtype="fp16"), spec, model=MODEL)
    assert f.efficiency.mfu_prefill == default_efficiency(_cpu(), "openvino", "fp16").mfu_prefill != 1.0


def test_a_prefill_calibration_answers_only_against_the_peaks_it_was_fitted_on():
    """Factors fitted against the measured per-format FLOP/s (marked) are not applied to the plugin
    precision's peak, and unmarked ones not to the measured FLOP/s."""
    def table(mark: bool) -> dict:
        pts = [{"device": "ov-test-cpu", "scenario": "prefill", "flops_per_token": 1e9, "factor": 0.8, "tokens": n,
                "engine": "openvino", "weight_format": "int8", **({"against": C.OV_KERNELS} if mark else {})}
               for n in (128, 256, 512)]
        return C.fit(pts, source="test")

    assert table(True)["devices"]["ov-test-cpu"]["prefill@openvino"]["against"] == C.OV_KERNELS
    assert "against" not in table(False)["devices"]["ov-test-cpu"]["prefill@openvino"]
    w = Workload(model=MODEL.name, task="infer", prompt_tokens=512, gen_tokens=1, engine="openvino", weight_dtype="int8")
    measured, plain = _cpu(_with_prefill(_ov(int8=(0.5, 100.0)))), _cpu()
    for spec, mark, used in ((measured, True, True), (measured, False, False), (plain, False, True), (plain, True, False)):
        with C.using(table(mark)):
            e = estimate(w, spec, model=MODEL)
        assert (e.efficiency.mfu_prefill == pytest.approx(0.8)) == used, (spec.kernel_flops, mark)


def test_a_real_measurement_on_tiny_probes(monkeypatch, tmp_path):
    """Two tiny probes exported by aipc convert --to openvino and timed through aipc's runner: the stored
    record holds each probe's read rate and the fitted terms, and aipc hw prints them."""
    pytest.importorskip("openvino")
    from aipc.engines.openvino_export import check_toolchain

    try:
        check_toolchain()
    except Exception as e:  # noqa: BLE001 - the exporter is installed by ./setup.sh
        pytest.skip(f"OpenVINO exporter not installed: {e}")
    shapes = [((128, 256, 4, 2), 2), ((64, 128, 4, 2), 8)]
    said = []
    rec = OK.measure(10e9, 1 << 20, reps=1, threads=1, progress=said.append, probes={"int8": shapes}, processes=2)
    assert rec is not None and K.valid_record(rec)
    keys = set(rec["types"])
    assert {"mbu:int8", "layer_us:int8"} <= keys and len([k for k in keys if k.startswith("read:int8@")]) == 2
    assert [[p[0] for p in rec["types"][k]] for k in keys if k.startswith("prefill:int8@")] == [list(OK.PREFILL_TOKENS)] * 2
    for k in keys:
        assert rec["types"][k][0][1] > 0
    assert "in each of 2 processes" in rec["method"] and rec["threads"] == 1
    assert sorted(v[-1] for v in rec["probes"].values()) == [2, 8]
    steps = [(OK.probe_bytes(s, n, "int8"), n, OK.probe_bytes(s, n, "int8") / rec["types"][k][0][1])
             for (s, n), k in zip(shapes, sorted((k for k in keys if k.startswith("read:")), key=lambda k: -float(k.split("@")[1])))]
    mbu, layer_s = OK.fit(steps, 10e9)
    assert rec["types"]["mbu:int8"][0][1] == pytest.approx(mbu)
    assert "exporting 2 probes" in said[0] and "timing them in 2 processes" in said[1]
    assert any("int8: MBU" in s for s in said)
    with pytest.raises(AipcError, match="timing OpenVINO's decode probes failed"):
        OK.time_in_processes([tmp_path / "no-such-ir"], 1, 1, 1)  # one line from the child, no traceback
    K.save("fp-ov", "openvino", rec, replace=True)
    K.save("fp-ov", "llamacpp", {"version": "x", "types": {"Q4_0@5888": [[128, 1e11]]}})
    assert set(K.load("fp-ov")) == {"openvino", "llamacpp"}  # each engine's record kept apart

    import io

    from rich.console import Console

    from aipc.commands import hw

    monkeypatch.setattr(hw, "_kernels", lambda fp: K.load("fp-ov"))
    out = io.StringIO()
    hw._render_kernels(Console(file=out, width=300), "fp-ov")
    text = out.getvalue()
    assert "openvino decode per weight format" in text and "int8 MBU" in text and "llamacpp prefill" in text
    assert "openvino prefill GFLOP/s per weight format at 128/512 prompt tokens: int8 at layer width" in text


def test_hw_kernels_measures_the_installed_engines(monkeypatch):
    """--kernels measures llama.cpp and OpenVINO where installed, and refuses in one line where neither is."""
    import aipc.engines
    from aipc.commands import hw

    monkeypatch.setattr(aipc.engines, "available", lambda: [])
    with pytest.raises(AipcError, match="neither of which is installed"):
        hw._kernel_engines()
    monkeypatch.setattr(aipc.engines, "available", lambda: ["torch", "llamacpp"])
    assert hw._kernel_engines() == ("llamacpp",)
