"""OpenVINO estimates on CPUs per weight format: decode factors per format (an fp16 IR streams its
weights at nearly full bandwidth, int8 / int4 are held back by dequantisation), prefill against the peak
of the precision the CPU plugin computes in (bf16 where the ISA flags say bf16 is native, fp32 without),
and a calibration that carries a measured format's factors to an unmeasured one by the default ratios.
The CPUs are DeviceSpecs built here (one with AMX-class native bf16, one AVX2-only, one Arm), so the
tests hold whatever CPU runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from aipc.estimate import calibrate as C
from aipc.estimate import estimate
from aipc.estimate.efficiency_defaults import DECODE_BY_FORMAT
from aipc.hardware.spec import DeviceSpec
from aipc.models import catalog
from aipc.spec import Workload

OV_CPU = DECODE_BY_FORMAT[("cpu", "openvino")]
MODEL = catalog.get("qwen2.5-0.5b")


def _cpu(name: str, native: tuple[str, ...], peaks: dict[str, float], vendor: str = "intel") -> DeviceSpec:
    return DeviceSpec(name=name, label=name, vendor=vendor, kind="cpu", category="this-machine",
                      memory_bytes=64 << 30, usable_memory_bytes=64 << 30, bandwidth_bytes_s=25e9,
                      peak_flops=peaks, native_dtypes=native)


# torch's measured GEMM peaks on each kind of CPU: AMX runs bf16 several times faster than fp32; on an
# AVX2-only CPU bf16 and fp16 are emulated (slower than fp32)
AMX = _cpu("test-amx", ("fp32", "bf16", "fp16"), {"fp32": 0.4e12, "bf16": 1.8e12, "fp16": 0.38e12})
AVX2 = _cpu("test-avx2", ("fp32",), {"fp32": 0.3e12, "bf16": 0.05e12, "fp16": 0.04e12})
UNKNOWN = _cpu("test-unknown", (), {"fp32": 0.3e12, "bf16": 0.9e12})
ARM = _cpu("test-arm", ("fp32", "bf16", "fp16"), {"fp32": 0.2e12, "bf16": 0.3e12, "fp16": 0.5e12}, vendor="arm")


def _w(fmt: str, engine: str = "openvino", **kw) -> Workload:
    return Workload(model=MODEL.name, task="infer", engine=engine, weight_dtype=fmt, prompt_tokens=512,
                    gen_tokens=32, **kw)


def _est(w: Workload, spec: DeviceSpec, table: dict | None = None):
    with C.using(table or {}):
        return estimate(w, spec, model=MODEL)


def test_the_plugin_precision_follows_the_isa_flags():
    assert C.openvino_cpu_precision(AMX) == "bf16"
    assert C.openvino_cpu_precision(AVX2) == "fp32"
    assert C.openvino_cpu_precision(UNKNOWN) == "fp32"  # flags not known: never assume bf16
    assert C.openvino_cpu_precision(ARM) == "fp16"


@pytest.mark.parametrize("spec,want", [(AMX, "bf16"), (AVX2, "fp32"), (UNKNOWN, "fp32"), (ARM, "fp16")])
@pytest.mark.parametrize("fmt", ["fp16", "int8", "int4"])
def test_prefill_is_timed_against_the_peak_of_the_plugin_precision(spec, want, fmt):
    e = _est(_w(fmt), spec)
    peak = spec.peak_flops[want]
    compute_s = e.compute.prefill_flops / (peak * e.efficiency.mfu_prefill)
    assert compute_s > e.compute.decode_bytes_per_step / spec.bandwidth_bytes_s  # compute-bound at 512 tokens
    assert e.time.prefill_s == pytest.approx(compute_s)


def test_other_engines_keep_their_own_peaks():
    torch_fp16 = _est(_w("fp16", engine="torch"), AMX)  # torch computes fp16 in fp16 (its measured peak)
    assert torch_fp16.time.prefill_s == pytest.approx(
        torch_fp16.compute.prefill_flops / (AMX.peak_flops["fp16"] * torch_fp16.efficiency.mfu_prefill))
    gguf = _est(_w("q4_0", engine="llamacpp"), AMX)  # ggml's kernels per weight type (aipc.estimate.kernels)
    from aipc.estimate.kernels import mix_flops

    assert gguf.time.prefill_s == pytest.approx(
        max(gguf.compute.prefill_flops / (mix_flops(AMX, gguf.compute.prefill_mix, 512) * gguf.efficiency.mfu_prefill),
            gguf.compute.decode_bytes_per_step / (AMX.bandwidth_bytes_s * gguf.efficiency.mbu_decode)))


@pytest.mark.parametrize("spec", [AMX, AVX2])
def test_decode_follows_the_per_format_factors(spec):
    fp16, int8, int4 = (_est(_w(f), spec) for f in ("fp16", "int8", "int4"))
    layers = MODEL.num_layers
    for e, fmt in ((fp16, "fp16"), (int8, "int8"), (int4, "int4")):
        mbu, layer_s = OV_CPU[fmt]
        assert (e.efficiency.mbu_decode, e.efficiency.decode_layer_s) == (mbu, layer_s)
        assert f"{fmt} decode MBU {mbu:.2f}" in e.efficiency.source and "measured" in e.efficiency.source
        assert e.time.tpot_s == pytest.approx(e.compute.decode_bytes_per_step / (spec.bandwidth_bytes_s * mbu)
                                              + layers * layer_s)
    # an fp16 IR reads twice int8's bytes but at a higher fraction of the bandwidth: less than 2x slower
    assert fp16.compute.decode_bytes_per_step > 1.9 * int8.compute.decode_bytes_per_step
    assert OV_CPU["fp16"][0] > OV_CPU["int8"][0] >= OV_CPU["int4"][0]
    ratio = (fp16.time.tpot_s - layers * OV_CPU["fp16"][1]) / (int8.time.tpot_s - layers * OV_CPU["int8"][1])
    assert ratio == pytest.approx(fp16.compute.decode_bytes_per_step / int8.compute.decode_bytes_per_step
                                  * OV_CPU["int8"][0] / OV_CPU["fp16"][0])
    assert fp16.time.tpot_s < 1.5 * int8.time.tpot_s


def _decode_entry(mbu: float, layer_s: float) -> dict:
    return {"by_batch": [[1.0, mbu, layer_s, 3]], "n_runs": 3, "source": "test"}


def _ov_table(device: str, formats: dict[str, tuple[float, float]], all_=(0.45, 1e-4)) -> dict:
    return {"format": C.FORMAT, "version": C.VERSION, "devices": {device: {"decode@openvino": {
        "by_format": {f: _decode_entry(*v) for f, v in formats.items()}, "all": _decode_entry(*all_),
        "n_runs": 3 * len(formats), "source": "test"}}}}


def test_an_unmeasured_format_is_scaled_from_a_measured_one_by_the_default_ratios():
    table = _ov_table("dev", {"int8": (0.3, 2e-4), "int4": (0.28, 2.2e-4)})
    with C.using(table):
        mbu, layer_s, src = C.lookup_decode("dev", 1, engine="openvino", weight_format="fp16", defaults=OV_CPU)
        # from int8, whose default MBU is nearest fp16's
        assert mbu == pytest.approx(0.3 * OV_CPU["fp16"][0] / OV_CPU["int8"][0])
        assert layer_s == pytest.approx(2e-4 * OV_CPU["fp16"][1] / OV_CPU["int8"][1])
        assert "from int8, scaled by the default fp16/int8 ratio" in src
        # a measured format answers with its own fit, unscaled
        assert C.lookup_decode("dev", 1, engine="openvino", weight_format="int4", defaults=OV_CPU)[:2] == (0.28, 2.2e-4)
        # without per-format defaults: the fit over all formats, as before
        assert C.lookup_decode("dev", 1, engine="openvino", weight_format="fp16")[:2] == (0.45, 1e-4)
        # a base format whose default per-layer time is 0 gives the other format its default per-layer time
        mbu, layer_s, _ = C.lookup_decode("dev", 1, engine="openvino", weight_format="x",
                                          defaults={"int8": (0.5, 0.0), "x": (1.0, 3e-5)})
        assert (mbu, layer_s) == (pytest.approx(0.6), 3e-5)
        assert C.lookup_decode("dev", 1) is None  # OpenVINO's runs never calibrate torch (contract 3)


def test_the_estimator_scales_a_calibration_of_int8_runs_to_fp16():
    table = _ov_table(AMX.name, {"int8": (0.3, 2e-4)})
    e = _est(_w("fp16"), AMX, table)
    assert e.efficiency.mbu_decode == pytest.approx(0.3 * OV_CPU["fp16"][0] / OV_CPU["int8"][0])
    assert "calibrated" in e.efficiency.source and "from int8, scaled" in e.efficiency.source
    assert _est(_w("int8"), AMX, table).efficiency.mbu_decode == 0.3


def test_validation_from_db_refuses_a_missing_or_foreign_file(tmp_path):
    script = Path(__file__).resolve().parents[1] / "scripts" / "openvino_validation.py"
    junk = tmp_path / "notes.txt"
    junk.write_text("not a database\n", encoding="utf-8")
    for arg in (str(tmp_path / "missing.db"), str(junk)):
        r = subprocess.run([sys.executable, str(script), "--from-db", arg], capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and r.stderr.startswith("error: --from-db") and "Traceback" not in r.stderr, r.stderr
        assert "re-evaluated" not in r.stdout


@pytest.mark.parametrize("script", ["llamacpp_validation.py", "openvino_validation.py"])
def test_validation_scripts_refuse_an_unknown_option_before_measuring(script):
    """A typo (or --help) never starts a measuring run of half an hour: one line and exit 2, or the help."""
    path = Path(__file__).resolve().parents[1] / "scripts" / script
    r = subprocess.run([sys.executable, str(path), "--quick", "--wirte"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.startswith("error: --wirte is not an option") and "--write" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "load average" not in r.stdout
    r = subprocess.run([sys.executable, str(path), "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "--write" in r.stdout and "load average at start" not in r.stdout


def test_no_torch_emulation_warning_for_the_plugin_precision():
    """On an AVX2-only CPU the plugin computes in fp32 itself: no 'bf16 is emulated, use --precision fp32'."""
    assert not [x for x in _est(_w("int8"), AVX2).warnings if "emulated" in x]
    assert any("bf16 is emulated" in x for x in _est(_w("bf16", engine="torch"), AVX2).warnings)


def test_validation_keeps_the_faster_pass_of_each_shape():
    """The validation scripts measure every shape twice; the fit and the errors take the faster run of
    each (model, engine, format, scenario, shape) and keep different shapes apart."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from llamacpp_validation import fastest_of_passes

    def run(model, prompt, secs, fmt="int8", threads=2):
        return {"model": model, "scenario": "prefill", "metrics": {"median_s": secs}, "context": {"cpu_threads": threads},
                "workload": {"engine": "openvino", "weight_dtype": fmt, "prompt_tokens": prompt, "gen_tokens": 32}}

    runs = [run("a", 128, 0.9), run("a", 128, 0.7), run("a", 512, 3.0), run("a", 128, 0.8, "int4"), run("b", 128, 1.0),
            run("a", 128, 1.5, threads=1)]  # another thread count (as bench runs record it): a shape of its own
    kept = sorted((r["model"], r["workload"]["prompt_tokens"], r["workload"]["weight_dtype"], r["metrics"]["median_s"])
                  for r in fastest_of_passes(runs))
    assert kept == [("a", 128, "int4", 0.8), ("a", 128, "int8", 0.7), ("a", 128, "int8", 1.5), ("a", 512, "int8", 3.0),
                    ("b", 128, "int8", 1.0)]


def test_validation_docs_show_the_options_a_run_was_given():
    """docs/validation.md shows the command as run (--passes, --gguf-8b), a local model path as FILE."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from llamacpp_validation import shown_flags

    assert shown_flags(["--write", "--passes", "3"]) == "--write --passes 3"
    assert shown_flags(["--write", "--gguf-8b", "/root/x.gguf", "--skip-8b"]) == "--write --gguf-8b FILE --skip-8b"
