"""llama.cpp prefill per weight type: the kernel store beside the hardware profile, the estimator's
type mix, and a real (tiny) measurement through llama.cpp's quantizer and runner."""

from __future__ import annotations

import json
import math

import pytest

from aipc.estimate import estimate, resolve_model
from aipc.estimate.compute import compute_for, prefill_flops_decoder
from aipc.estimate.kernels import DEFAULT_SHARE, mix_flops, type_flops
from aipc.estimate.quant import matmul_mix
from aipc.hardware import kernels as K
from aipc.hardware.spec import DeviceSpec
from aipc.spec import Workload


def _cpu(kernels: dict | None = None) -> DeviceSpec:
    return DeviceSpec(name="test-cpu", label="test CPU", vendor="intel", kind="cpu", category="this-machine",
                      memory_bytes=32 << 30, usable_memory_bytes=32 << 30, bandwidth_bytes_s=30e9,
                      peak_flops={"fp32": 400e9}, measured=True, kernel_flops={"llamacpp": kernels} if kernels else {})


def _rec(types: dict, version: str = "0.3.36") -> dict:
    return {"version": version, "types": {t: [list(p) for p in pts] for t, pts in types.items()}}


def test_store_round_trip_best_of_and_refusals(tmp_path, monkeypatch):
    monkeypatch.setenv("AIPC_HOME", str(tmp_path))
    assert K.load("fp") == {}
    K.save("fp", "llamacpp", _rec({"Q4_0": [(128, 200e9), (512, 250e9)]}))
    K.save("fp", "llamacpp", _rec({"Q4_0": [(128, 300e9), (512, 100e9)], "Q8_0": [(128, 150e9)]}))
    got = K.load("fp")["llamacpp"]["types"]
    assert got == {"Q4_0": [[128, 300e9], [512, 250e9]], "Q8_0": [[128, 150e9]]}  # peaks are maxima
    K.save("fp", "llamacpp", _rec({"Q4_0": [(128, 100e9)]}), replace=True)
    assert K.load("fp")["llamacpp"]["types"] == {"Q4_0": [[128, 100e9]]}
    K.save("fp", "llamacpp", _rec({"Q5_0": [(128, 90e9)]}, version="0.4"))  # a new llama.cpp: no mixing
    assert K.load("fp")["llamacpp"]["types"] == {"Q5_0": [[128, 90e9]]}
    for bad in ({"types": {}}, {"types": {"Q4_0": [[128, -1]]}}, {"types": {"Q4_0": [[128, math.nan]]}}):
        with pytest.raises(ValueError):
            K.save("fp", "llamacpp", bad)
    K.path("fp").write_text("{not json", encoding="utf-8")
    assert K.load("fp") == {}
    K.path("fp").write_text(json.dumps({"engines": {"llamacpp": {"types": {"Q4_0": [[128, "fast"]]}}}}))
    assert K.load("fp") == {}


def test_interpolation_in_log_tokens():
    pts = ((128.0, 100.0), (512.0, 200.0))
    assert K.at_tokens(pts, 64) == 100.0 and K.at_tokens(pts, 4096) == 200.0
    assert K.at_tokens(pts, 256) == pytest.approx(150.0)  # halfway in log2
    assert K.at_tokens(((128.0, 80.0),), 999) == 80.0


def test_kernel_speed_is_interpolated_by_layer_width_between_the_probes():
    """Two probe widths: a model between them reads in log(width), outside them the nearest probe (never
    extrapolated), a width-less key holds for every width, an unknown width takes the narrower probe."""
    from aipc.estimate.compute import layer_width

    assert K.split_key("Q4_K@22016") == ("Q4_K", 22016.0) and K.split_key("Q4_K") == ("Q4_K", None)
    spec = _cpu({"Q4_K@1000": ((128.0, 100e9),), "Q4_K@4000": ((128.0, 300e9),), "Q8_0": ((128.0, 50e9),)})
    assert type_flops(spec, "Q4_K", 128, 2000) == pytest.approx(200e9)  # halfway in log2
    assert type_flops(spec, "Q4_K", 128, 10) == 100e9 and type_flops(spec, "Q4_K", 128, 1e6) == 300e9
    assert type_flops(spec, "Q4_K", 128) == 100e9
    assert type_flops(spec, "Q8_0", 128, 2000) == 50e9
    # the probes' widths and the validation models': Llama-3.2-1B is the wide probe's shape
    assert layer_width(resolve_model("llama-3.2-1b")) == 2 * 2048 + 2 * 512 + 3 * 8192
    assert layer_width(resolve_model("qwen2.5-0.5b")) == 2 * 896 + 2 * 128 + 3 * 4864
    w = Workload(model="llama-3.2-1b", task="infer", prompt_tokens=128, gen_tokens=8, engine="llamacpp",
                 weight_dtype="q4_0")
    wide = _cpu({"Q4_0@22016": ((128.0, 200e9),), "Q4_0@29696": ((128.0, 300e9),), "F16": ((128.0, 200e9),)})
    narrow = _cpu({"Q4_0@22016": ((128.0, 200e9),), "Q4_0@29696": ((128.0, 200e9),), "F16": ((128.0, 200e9),)})
    assert estimate(w, wide).time.prefill_s < 0.8 * estimate(w, narrow).time.prefill_s


def test_probes_span_small_to_1b_layer_widths_with_true_k_quants(tmp_path, monkeypatch):
    """The probes' widths bracket the validation models' (SmolLM2-135M 6144 .. Llama-3.2-1B 29696); every
    probe's rows are multiples of 256 (no K-quant fallback); layers hold 1.3x the cache and at least
    512 MiB, 2 to 24; the
    wide probes keep their folder names (their cached f16 GGUFs)."""
    from aipc.bench.llamacpp_kernels import PROBE_SHAPES, probe_config, probe_folder, probe_layers, probe_width
    from aipc.estimate.compute import layer_width
    from aipc.models.load import resolve

    monkeypatch.setenv("AIPC_HOME", str(tmp_path))
    widths = sorted(round(layer_width(resolve(str(probe_folder(4, s))))) for s in PROBE_SHAPES)
    assert widths == [5888, 22016, 29696]
    assert widths[0] <= layer_width(resolve_model("smollm2-135m")) and widths[-1] == layer_width(resolve_model("llama-3.2-1b"))
    assert all(h % 256 == 0 and ffn % 256 == 0 for h, ffn, _, _ in PROBE_SHAPES)
    assert {p.name for p in tmp_path.iterdir() if p.name.startswith("kernel-probe")} == {
        "kernel-probe-4", "kernel-probe-4-ffn8192", "kernel-probe-4-ffn1536-h512"}
    assert probe_width(probe_folder(4, PROBE_SHAPES[0])) == 5888
    per_layer = {s: probe_config(s, 1) for s in PROBE_SHAPES}
    assert per_layer[PROBE_SHAPES[0]]["hidden_size"] == 512 and per_layer[PROBE_SHAPES[0]]["num_key_value_heads"] == 2
    # 45.1M elements a layer at 4.5 bits: 25.4 MB; 1.3x a 420 MiB cache, else 512 MiB at the least
    assert probe_layers(420 << 20, PROBE_SHAPES[1]) == 23 and probe_layers(300 << 20, PROBE_SHAPES[1]) == 22
    assert probe_layers(32 << 20, PROBE_SHAPES[2]) == 16  # 60.8M elements: 34.2 MB a layer
    assert probe_layers(300 << 20, PROBE_SHAPES[0]) == 24 and probe_layers(2 << 30, PROBE_SHAPES[2]) == 24


def test_mix_is_a_harmonic_mean_and_defaults_follow_the_fp32_peak():
    spec = _cpu({"Q4_0": ((128.0, 300e9),), "Q5_1": ((128.0, 100e9),), "F16": ((128.0, 50e9),)})
    assert mix_flops(spec, (("Q4_0", 0.5), ("Q5_1", 0.5)), 128) == pytest.approx(150e9)
    assert type_flops(spec, "BF16", 128) == 50e9  # a float type not measured: as F16
    assert type_flops(spec, "Q6_K", 128) == pytest.approx(400e9 * DEFAULT_SHARE["Q6_K"])  # not measured
    assert type_flops(_cpu(), "Q4_0", 512) == pytest.approx(400e9 * DEFAULT_SHARE["Q4_0"])


def test_type_mix_follows_llamacpp_fallbacks():
    qwen = resolve_model("qwen2.5-0.5b")  # hidden 896: rows of 896 are no multiple of 256
    mix = dict(matmul_mix(qwen, "q4_k_m"))
    assert sum(mix.values()) == pytest.approx(1.0)
    assert mix["Q5_0"] > 0.5 and "Q4_K" in mix and "Q6_K" in mix  # Q4_K falls back to Q5_0 on most rows
    assert dict(matmul_mix(resolve_model("llama-3.2-1b"), "q4_0")) == {"Q4_0": 1.0}


def test_prefill_counts_the_head_for_the_last_token_only():
    from aipc.estimate.params import matmul_params

    m = resolve_model("llama-3.2-1b")
    head, n = m.vocab_size * m.hidden_size, matmul_params(m)
    f = prefill_flops_decoder(m, 128)
    assert 128 * 2 * (n - head) + 2 * head <= f < 128 * 2 * (n - head) + 2 * head + 128 * 2 * 0.05 * n  # + attention
    assert f < 128 * 2 * n - 100 * 2 * head  # not the head for every prompt token
    w = Workload(model="llama-3.2-1b", task="infer", prompt_tokens=128, gen_tokens=8, engine="llamacpp",
                 weight_dtype="q4_0")
    assert compute_for(m, w).prefill_flops == pytest.approx(prefill_flops_decoder(m, 128))


def test_prefill_estimate_follows_the_measured_kernels():
    """Q5_1 (qwen2.5-0.5b's q5_k_m fallback) measured slow: q5_k_m prefills slower than q4_0; measured
    fast, the order flips — the estimate follows the machine's kernels, not the file's bits."""
    def prefill(spec, fmt):
        w = Workload(model="qwen2.5-0.5b", task="infer", prompt_tokens=128, gen_tokens=8, engine="llamacpp",
                     weight_dtype=fmt)
        return estimate(w, spec).time.prefill_s

    base = {"Q4_0": ((128.0, 300e9),), "Q5_K": ((128.0, 400e9),), "Q6_K": ((128.0, 400e9),),
            "Q8_0": ((128.0, 200e9),)}
    slow = _cpu({**base, "Q5_1": ((128.0, 75e9),)})
    fast = _cpu({**base, "Q5_1": ((128.0, 900e9),)})
    assert prefill(slow, "q5_k_m") > 2 * prefill(slow, "q4_0")
    assert prefill(fast, "q5_k_m") < prefill(fast, "q4_0")


def test_measure_a_tiny_model_for_real(tiny_ggufs, tmp_path, monkeypatch):
    """llama.cpp's quantizer (pure types) and runner on a tiny f16 model: a record the store accepts."""
    from aipc.bench.llamacpp_kernels import measure

    monkeypatch.setenv("AIPC_HOME", str(tmp_path))
    from aipc.bench.llamacpp_kernels import probe_width

    from aipc.hardware import detect

    monkeypatch.setattr(detect, "llc_bytes", lambda: 1 << 30)  # the tiny model's files fit in the cache: decode too
    rec = measure(types=("Q8_0", "F16"), tokens=(8, 32), reps=1, threads=1, source=tiny_ggufs["qwen_f16"])
    w = probe_width(tiny_ggufs["qwen_f16"])  # the tiny model's own layer width labels its figures
    keys = {f"Q8_0@{w}", f"F16@{w}", f"decode:Q8_0@{w}", f"decode:F16@{w}", "attn:F16@4"}  # 4 query heads
    assert w > 0 and set(rec["types"]) == keys
    [[n, attn]] = rec["types"]["attn:F16@4"]  # decode attention timed at two contexts
    assert n == 1 and 1e6 < attn < 1e13
    assert all(n in (8, 32) and f > 0 for k, pts in rec["types"].items() if ":" not in k for n, f in pts)
    assert all(len(pts) == 1 and pts[0][0] == 1 and pts[0][1] > 0 for k, pts in rec["types"].items() if "decode" in k)
    K.save("fp", "llamacpp", rec)
    assert set(K.spec_table(K.load("fp")["llamacpp"])) == keys
    assert not list(tmp_path.glob("**/probe-*.gguf"))  # quantized probes are removed
    monkeypatch.setattr(detect, "llc_bytes", lambda: 4096)  # files beyond the cache: the bandwidth decode reached
    rec = measure(types=("Q8_0",), tokens=(8,), reps=1, threads=1, source=tiny_ggufs["qwen_f16"])
    assert set(rec["types"]) == {f"Q8_0@{w}", f"read:Q8_0@{w}", "attn:F16@4"}
    [[n, read]] = rec["types"][f"read:Q8_0@{w}"]
    assert n == 1 and 1e6 < read < 1e13
    size = tiny_ggufs["q8_0"].stat().st_size  # a file beyond the cache but under twice it: prefill only
    monkeypatch.setattr(detect, "llc_bytes", lambda: int(size * 0.7))
    rec = measure(types=("Q8_0",), tokens=(8,), reps=1, threads=1, source=tiny_ggufs["qwen_f16"])
    assert set(rec["types"]) == {f"Q8_0@{w}", "attn:F16@4"}


def test_decode_bytes_of_a_probe_file_are_the_estimators(tiny_ggufs):
    """The bytes a measured decode step is divided by: every tensor the step reads (not the embedding
    table's other rows) plus the KV cache at DECODE_CONTEXT, from the file's own header."""
    from aipc.bench.llamacpp_kernels import DECODE_CONTEXT, decode_bytes
    from aipc.estimate.memory import kv_cache_bytes
    from aipc.models.gguf import read_header

    path = tiny_ggufs["q8_0"]
    h = read_header(path)
    parts = h.parts()
    m = resolve_model(str(path))
    w = Workload(model=str(path), task="infer", prompt_tokens=DECODE_CONTEXT, gen_tokens=1, engine="llamacpp",
                 weight_dtype=h.file_type)
    kv = kv_cache_bytes(m, w, int(DECODE_CONTEXT + 0.5))
    got = decode_bytes(path)
    assert kv > 0 and parts["blocks"] > 0
    read = parts["blocks"] + parts["output"] + parts["other"] + kv
    table = parts["token_embd"] if m.tie_embeddings else parts["token_embd"] / m.vocab_size
    assert got == pytest.approx(read + table, rel=1e-6)


def test_cpu_runner_turns_flash_attention_off(tiny_ggufs):
    from aipc.engines import load

    loaded = load(tiny_ggufs["q8_0"], threads=1)
    runner = loaded.make_runner(1, 64)
    try:
        assert runner.flash_attn is False
    finally:
        runner.close()


def test_a_decode_that_fits_in_the_last_level_cache_is_flagged_and_calibrates_nothing():
    from dataclasses import replace

    from aipc.estimate import calibrate as C

    w = Workload(model="smollm2-135m", task="infer", prompt_tokens=128, gen_tokens=8, engine="llamacpp",
                 weight_dtype="q4_0")
    big_cache = replace(_cpu(), llc_bytes=1 << 30)
    assert any("last-level cache" in x for x in estimate(w, big_cache).warnings)
    assert not any("last-level cache" in x for x in estimate(w, _cpu()).warnings)  # cache size not known
    pt = {"device": "dev", "scenario": "decode", "flops_per_token": 1e9, "tokens": 1, "engine": "llamacpp",
          "weight_format": "q4_0"}
    mixed = C.fit([{**pt, "factor": 0.5}, {**pt, "factor": 2.0, "cache_resident": True}])
    only_cache = C.fit([{**pt, "factor": 2.0, "cache_resident": True}])
    with C.using(mixed):
        assert C.lookup_decode("dev", 1, engine="llamacpp", weight_format="q4_0")[0] == pytest.approx(0.5)
    with C.using(only_cache):  # nothing larger measured: the in-cache run is all there is
        assert C.lookup_decode("dev", 1, engine="llamacpp", weight_format="q4_0")[0] == pytest.approx(2.0)


def test_a_decode_on_cached_weights_runs_at_the_measured_matrix_vector_speed():
    """With aipc hw --kernels' decode figures: a model whose decode bytes fit in the last-level cache
    decodes at its FLOPs over its types' decode FLOP/s (harmonic mean; memory not counted) and says so;
    beyond the cache the figure is only a floor under the memory-bound time; a type without a figure, or
    no figures, leaves the memory-bound estimate as it was."""
    from dataclasses import replace

    from aipc.estimate.kernels import decode_mix_flops

    w = Workload(model="smollm2-135m", task="infer", prompt_tokens=128, gen_tokens=8, engine="llamacpp",
                 weight_dtype="q4_k_m")
    plain = replace(_cpu({"Q4_0@5888": ((128.0, 200e9),)}), llc_bytes=300 << 20)
    c = estimate(w, plain).compute
    types = [t for t, _ in c.decode_mix]
    assert {"Q5_0", "Q8_0", "F16"} <= set(types) and sum(s for _, s in c.decode_mix) == pytest.approx(1.0)
    decode = {f"decode:{t}@5888": ((1.0, 60e9 if t != "F16" else 30e9),) for t in types}
    share16 = dict(c.decode_mix)["F16"]
    assert decode_mix_flops(_cpu(decode), c.decode_mix) == pytest.approx(1 / ((1 - share16) / 60e9 + share16 / 30e9))
    cached = replace(plain, kernel_flops={"llamacpp": {**plain.kernel_flops["llamacpp"], **decode}})
    got = estimate(w, cached)
    assert got.time.tpot_s == pytest.approx(c.decode_flops_per_step * ((1 - share16) / 60e9 + share16 / 30e9))
    assert any("matrix-vector speed on cached weights" in x for x in got.warnings)
    beyond = replace(cached, llc_bytes=1 << 20)  # the same figures, the bytes no longer in the cache
    assert estimate(w, beyond).time.tpot_s == estimate(w, replace(plain, llc_bytes=1 << 20)).time.tpot_s
    slow = {k: ((1.0, 1e9),) for k in decode}  # a floor above the memory-bound time takes over
    assert estimate(w, replace(beyond, kernel_flops={"llamacpp": slow})).time.tpot_s == pytest.approx(
        c.decode_flops_per_step / 1e9)
    partial = {k: v for k, v in decode.items() if "Q5_0" not in k}
    assert estimate(w, replace(cached, kernel_flops={"llamacpp": partial})).time.tpot_s == estimate(w, plain).time.tpot_s


def test_measured_decode_bandwidth_sets_the_uncalibrated_mbu():
    """aipc hw --kernels' decode read figure (bytes/s from memory) over the device's bandwidth is the
    llama.cpp CPU decode MBU; the type's own figure, else the median measured type's; no figure, the
    class default; a figure above the bandwidth reads as MBU 1."""
    from dataclasses import replace

    from aipc.estimate.efficiency import default_efficiency
    from aipc.estimate.efficiency_defaults import DEFAULTS

    base = _cpu({"Q4_K@22016": ((128.0, 300e9),)})
    read = {"read:Q4_K@22016": ((1.0, 12e9),), "read:Q4_K@29696": ((1.0, 15e9),), "read:Q8_0@29696": ((1.0, 21e9),),
            "read:F16@29696": ((1.0, 24e9),)}
    spec = replace(base, kernel_flops={"llamacpp": {**base.kernel_flops["llamacpp"], **read}})
    assert default_efficiency(base, "llamacpp", "q4_k_m").mbu_decode == DEFAULTS[("cpu", "llamacpp")].mbu_decode
    eff = default_efficiency(spec, "llamacpp", "q4_k_m")
    assert eff.mbu_decode == pytest.approx(15e9 / 30e9) and "15.0 GB/s" in eff.source  # the widest probe's
    assert default_efficiency(spec, "llamacpp", "q8_0").mbu_decode == pytest.approx(21e9 / 30e9)
    assert default_efficiency(spec, "llamacpp", "q5_0").mbu_decode == pytest.approx(21e9 / 30e9)  # the median
    assert default_efficiency(spec, "torch").mbu_decode == DEFAULTS[("cpu", "torch")].mbu_decode
    fast = replace(spec, bandwidth_bytes_s=10e9)
    assert default_efficiency(fast, "llamacpp", "f16").mbu_decode == 1.0
    # narrower layers read slower: the measured types' median ratio to the widest probe scales every type
    narrow = {**spec.kernel_flops["llamacpp"], "read:Q8_0@5888": ((1.0, 12e9),), "read:F16@5888": ((1.0, 12e9),)}
    spec_n = replace(spec, kernel_flops={"llamacpp": narrow})
    ratio = (12e9 / 21e9 + 12e9 / 24e9) / 2
    assert default_efficiency(spec_n, "llamacpp", "q4_k_m", 5888).mbu_decode == pytest.approx(15e9 * ratio / 30e9)
    assert default_efficiency(spec_n, "llamacpp", "q4_k_m", 3000).mbu_decode == pytest.approx(15e9 * ratio / 30e9)
    assert default_efficiency(spec_n, "llamacpp", "q4_k_m", 29696).mbu_decode == pytest.approx(15e9 / 30e9)
    mid = default_efficiency(spec_n, "llamacpp", "q4_k_m", 13000).mbu_decode
    assert 15e9 * ratio / 30e9 < mid < 15e9 / 30e9
    # an estimate reads each of the model's weight types at its own figure: llama-3.2-1b's q8_0 matrices at
    # Q8_0's, the attention's share (F16 KV cache) at F16's
    w = Workload(model="llama-3.2-1b", task="infer", prompt_tokens=128, gen_tokens=8, engine="llamacpp",
                 weight_dtype="q8_0")
    got = estimate(w, spec)
    mix = dict(got.compute.decode_mix)
    assert set(mix) == {"Q8_0", "F16"}
    q8, f16 = mix["Q8_0"] * 34 / 32, mix["F16"] * 2  # bytes per element: Q8_0 34 per block of 32
    rate = (q8 + f16) / (q8 / 21e9 + f16 / 24e9)
    assert got.time.tpot_s == pytest.approx(got.compute.decode_bytes_per_step / rate)
    # smollm2-135m's rows (576) are no multiple of 256: its q4_k_m falls back to Q5_0 / Q8_0, read at their speed
    slow_q5 = replace(spec, kernel_flops={"llamacpp": {**spec.kernel_flops["llamacpp"], "read:Q5_0@29696": ((1.0, 6e9),)}})
    w = replace(w, model="smollm2-135m", weight_dtype="q4_k_m")
    assert "Q5_0" in dict(estimate(w, spec).compute.decode_mix)
    assert estimate(w, slow_q5).time.tpot_s > 1.5 * estimate(w, spec).time.tpot_s


def test_kernels_travel_with_an_exported_machine():
    from dataclasses import replace

    from aipc.errors import AipcError
    from aipc.hardware.catalog import device_from_dict, device_to_dict
    from aipc.hardware.spec import Sourced

    src = Sourced(source="measured here", as_of="2026-12-06")
    spec = replace(_cpu({"Q4_0": ((128.0, 300e9), (512.0, 280e9))}), llc_bytes=300 << 20,
                   sources={k: src for k in ("memory_bytes", "usable_memory_bytes", "bandwidth_bytes_s",
                                             "peak_flops.fp32", "kernel_flops.llamacpp")})
    entry = device_to_dict(spec)
    back = device_from_dict(entry)
    assert back.kernel_flops == spec.kernel_flops and back.llc_bytes == spec.llc_bytes
    assert type_flops(back, "Q4_0", 512) == 280e9
    for bad in ({"llamacpp": {"types": {"Q4_0": [[128, -1.0]]}, "source": "x", "as_of": "2026-12-06"}},
                {"llamacpp": {"types": {"Q4_0": [[128, 1e9]]}}}):  # a negative figure; no source
        with pytest.raises(AipcError):
            device_from_dict({**entry, "kernel_flops": bad})


def test_no_room_for_the_quantized_probe_is_one_error(tiny_ggufs, tmp_path, monkeypatch):
    import tempfile

    from aipc.bench.llamacpp_kernels import measure
    from aipc.errors import AipcError

    monkeypatch.setenv("AIPC_HOME", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-folder"))
    with pytest.raises(AipcError, match="free about 2 GB of disk"):
        measure(types=("Q8_0",), tokens=(8,), reps=1, threads=1, source=tiny_ggufs["qwen_f16"])


@pytest.mark.parametrize("engine,fmt,flagged", [("llamacpp", "q4_0", True), ("openvino", "int8", True),
                                                ("torch", "fp32", False)])
def test_a_quantized_engines_decode_within_the_cache_is_marked_for_the_fit(engine, fmt, flagged):
    """llama.cpp's and OpenVINO's decode models are memory-bound: a run whose bytes fit in the last-level
    cache is marked (and fitted only where nothing larger was measured); torch's tiny calibration models
    are all that small, so its runs are not."""
    from dataclasses import replace

    from aipc.bench.calibration import prepare_points

    spec = replace(_cpu(), llc_bytes=1 << 30)
    run = {"id": "r" * 16, "scenario": "decode", "device": "cpu", "model": "smollm2-135m",
           "metrics": {"median_s": 0.01}, "context": {},
           "workload": {"model": "smollm2-135m", "task": "infer", "engine": engine, "weight_dtype": fmt,
                        "prompt_tokens": 128, "gen_tokens": 32}}
    points, skipped = prepare_points([run], {"cpu": spec})
    assert not skipped and len(points) == 1
    assert bool(points[0].get("cache_resident")) is flagged


def test_hw_lists_the_kernels_per_layer_width(tmp_path, monkeypatch):
    """`aipc hw` groups the stored figures by probe width, narrowest first; an older width-less record
    prints as before."""
    import io

    from rich.console import Console

    from aipc.commands.hw import _render_kernels

    monkeypatch.setenv("AIPC_HOME", str(tmp_path))
    K.save("fp", "llamacpp", _rec({"decode:Q4_K@5888": [(1, 70e9)], "Q4_K@22016": [(128, 300e9), (512, 280e9)],
                                   "Q4_K@29696": [(128, 340e9), (512, 320e9)], "Q8_0@22016": [(128, 180e9), (512, 170e9)],
                                   "Q4_K@5888": [(128, 200e9), (512, 190e9)]}))
    out = io.StringIO()
    _render_kernels(Console(file=out, width=400), "fp")
    text = out.getvalue()
    assert ("at 128/512 prompt tokens" in text and "layer width 5888: Q4_K 200/190; layer width 22016: Q4_K 300/280, "
            "Q8_0 180/170; layer width 29696: Q4_K 340/320\n") in text
    assert "decode GFLOP/s per weight type (one token after 128, weights in the cache): layer width 5888: Q4_K 70" in text
    assert "decode GB/s per weight type" not in text
    assert "attention" not in text
    K.save("fp", "llamacpp", _rec({"read:Q4_K@29696": [(1, 14.3e9)], "read:Q8_0@29696": [(1, 20e9)],
                                   "attn:F16@32": [(1, 45.7e9)], "attn:F16@8": [(1, 41.2e9)]}))
    out = io.StringIO()
    _render_kernels(Console(file=out, width=400), "fp")
    assert "decode GB/s per weight type (weights from memory; the uncalibrated decode MBU): layer width 29696: " \
           "Q4_K 14.3, Q8_0 20.0" in out.getvalue()
    assert "decode attention GFLOP/s over the f16 KV cache (timed at two contexts; added per token of context): " \
           "8 heads 41.2, 32 heads 45.7" in out.getvalue()
    assert "layer width 8" not in out.getvalue() and "layer width 32:" not in out.getvalue()
    K.save("fp", "llamacpp", _rec({"Q4_0": [(128, 250e9)]}), replace=True)
    out = io.StringIO()
    _render_kernels(Console(file=out, width=400), "fp")
    assert "128 prompt tokens" in out.getvalue() and "Q4_0 250" in out.getvalue() and "width" not in out.getvalue()


def test_a_calibration_carries_to_unseen_formats_by_the_measured_bandwidths():
    """Decode fitted on q4_k_m runs only: a q5_k_m estimate takes that fit scaled by the measured decode
    bandwidth of the model's q5_k_m types over its q4_k_m types; the per-layer term stays as fitted."""
    from dataclasses import replace

    from aipc.estimate import calibrate as C

    base = _cpu({"Q4_K@29696": ((128.0, 300e9),)})
    reads = {"read:Q4_K@29696": ((1.0, 20e9),), "read:Q6_K@29696": ((1.0, 20e9),), "read:Q5_K@29696": ((1.0, 10e9),),
             "read:F16@29696": ((1.0, 20e9),)}
    spec = replace(base, kernel_flops={"llamacpp": {**base.kernel_flops["llamacpp"], **reads}})
    pts = [{"device": spec.name, "scenario": "decode", "engine": "llamacpp", "weight_format": "q4_k_m", "tokens": 1,
            "flops_per_token": 1e9, "factor": f, "layers": n, "ideal_s": s} for f, n, s in
           ((0.4, 16, 0.010), (0.3, 30, 0.004), (0.45, 16, 0.020))]
    w = Workload(model="llama-3.2-1b", task="infer", prompt_tokens=128, gen_tokens=8, engine="llamacpp",
                 weight_dtype="q4_k_m")
    with C.using(C.fit(pts)):
        q4 = estimate(w, spec)
        q5 = estimate(replace(w, weight_dtype="q5_k_m"), spec)
        q5_slow = estimate(replace(w, weight_dtype="q5_k_m"), replace(
            spec, kernel_flops={"llamacpp": {**spec.kernel_flops["llamacpp"], "read:Q5_K@29696": ((1.0, 5e9),)}}))
    assert q4.efficiency.source.startswith("calibrated") and "q5_k_m not measured" in q5.efficiency.source
    assert q5.efficiency.decode_layer_s == pytest.approx(q4.efficiency.decode_layer_s)
    assert q5.efficiency.mbu_decode < 0.8 * q4.efficiency.mbu_decode
    assert q5_slow.efficiency.mbu_decode < 0.7 * q5.efficiency.mbu_decode


def test_decode_calibrated_against_the_measured_bandwidths_follows_each_models_types():
    """Points fitted against each run's own types' measured decode bandwidth (C.READS) give an MBU relative
    to it: an estimate multiplies it back by its own model's figure, so a model whose q4_k_m falls back to a
    slower type reads slower under the same calibration, and an unseen format needs no ratio."""
    from dataclasses import replace

    from aipc.estimate import calibrate as C

    base = _cpu({"Q4_K@29696": ((128.0, 300e9),)})
    reads = {f"read:{t}@29696": ((1.0, 20e9),) for t in ("Q4_K", "Q6_K", "Q8_0", "F16", "Q5_0", "Q5_K")}
    spec = replace(base, kernel_flops={"llamacpp": {**base.kernel_flops["llamacpp"], **reads}})
    pts = [{"device": spec.name, "scenario": "decode", "engine": "llamacpp", "weight_format": "q4_k_m", "tokens": 1,
            "flops_per_token": 1e9, "factor": 0.8, "layers": n, "ideal_s": s, "against": C.READS}
           for n, s in ((16, 0.010), (30, 0.004), (16, 0.020))]
    table = C.fit(pts)
    assert table["devices"][spec.name]["decode@llamacpp"]["against"] == C.READS
    slow = replace(spec, kernel_flops={"llamacpp": {**spec.kernel_flops["llamacpp"], "read:Q5_0@29696": ((1.0, 5e9),)}})
    w = Workload(model="smollm2-135m", task="infer", prompt_tokens=128, gen_tokens=8, engine="llamacpp",
                 weight_dtype="q4_k_m")
    with C.using(table):
        fast_e, slow_e = estimate(w, spec).efficiency, estimate(w, slow).efficiency
        q5 = estimate(replace(w, weight_dtype="q5_k_m"), spec).efficiency
    assert fast_e.source.startswith("calibrated") and "relative to the decode bandwidth measured on this machine" in fast_e.source
    assert slow_e.mbu_decode < 0.7 * fast_e.mbu_decode and slow_e.decode_layer_s == fast_e.decode_layer_s
    assert "scaled by" not in q5.source and q5.mbu_decode > 0
    pts_plain = [{k: v for k, v in p.items() if k != "against"} for p in pts]
    assert "against" not in C.fit(pts_plain)["devices"][spec.name]["decode@llamacpp"]


def _attn_spec(attn: dict | None = None):
    from dataclasses import replace

    base = _cpu({"Q4_K@29696": ((128.0, 300e9),)})
    reads = {f"read:{t}@29696": ((1.0, 20e9),) for t in ("Q4_K", "Q6_K", "Q8_0", "F16", "Q5_0")}
    return replace(base, kernel_flops={"llamacpp": {**base.kernel_flops["llamacpp"], **reads, **(attn or {})}})


def test_decode_attention_is_timed_apart_at_its_measured_speed():
    """Where aipc hw --kernels timed llama.cpp's decode attention (attn:F16@<heads>), a decode step adds the
    attention's FLOPs at that speed (interpolated in log(heads)) to the weights' and KV cache's bytes at their
    bandwidth, so a longer context costs what the attention measured; without the figures, as before."""
    from dataclasses import replace

    from aipc.estimate.kernels import decode_attention_flops

    attn = {"attn:F16@8": ((1.0, 10e9),), "attn:F16@32": ((1.0, 40e9),)}
    spec, plain = _attn_spec(attn), _attn_spec()
    assert decode_attention_flops(spec, 8) == 10e9 and decode_attention_flops(spec, 64) == 40e9
    assert decode_attention_flops(spec, 16) == pytest.approx(25e9)  # halfway in log(heads)
    assert decode_attention_flops(plain, 16) is None
    w = Workload(model="smollm2-135m", task="infer", prompt_tokens=128, gen_tokens=8, engine="llamacpp",
                 weight_dtype="q8_0")
    short, long_ = estimate(w, spec), estimate(replace(w, prompt_tokens=2048), spec)
    c_s, c_l = short.compute, long_.compute
    assert c_s.heads == 9 and c_l.decode_attention_flops > 10 * c_s.decode_attention_flops
    rate = decode_attention_flops(spec, 9)
    assert short.time.decode_attention_s == pytest.approx(c_s.decode_attention_flops / rate)
    grow = long_.time.tpot_s - short.time.tpot_s  # the attention's work and the KV cache's bytes
    kv = (c_l.decode_bytes_per_step - c_s.decode_bytes_per_step) / (spec.bandwidth_bytes_s * short.efficiency.mbu_decode)
    assert grow == pytest.approx((c_l.decode_attention_flops - c_s.decode_attention_flops) / rate + kv, rel=1e-6)
    before = estimate(w, plain)
    assert before.time.decode_attention_s == 0.0
    nbytes = c_s.decode_bytes_per_step / (spec.bandwidth_bytes_s * short.efficiency.mbu_decode)  # weights and KV
    assert short.time.tpot_s == pytest.approx(nbytes + short.time.decode_attention_s)
    assert before.time.tpot_s == pytest.approx(c_s.decode_bytes_per_step / (plain.bandwidth_bytes_s * before.efficiency.mbu_decode))
    torch_w = replace(w, engine="torch", weight_dtype="fp32")
    assert estimate(torch_w, spec).time.decode_attention_s == 0.0  # llama.cpp's figure only


def test_decode_calibration_leaves_the_measured_attention_out():
    """Runs of one context fitted with the attention apart (C.ATTENTION) predict another context by the
    measured attention; a table fitted with it inside (no mark) adds none."""
    from dataclasses import replace

    from aipc.bench.calibration import prepare_points
    from aipc.estimate import calibrate as C

    spec = _attn_spec({"attn:F16@9": ((1.0, 8e9),)})
    w = Workload(model="smollm2-135m", task="infer", prompt_tokens=128, gen_tokens=32, engine="llamacpp",
                 weight_dtype="q8_0")
    true_mbu, true_layer = 0.5, 20e-6

    def measured(wl):  # a machine whose decode is the attention at 8 GFLOP/s + weights at MBU 0.5 + 20 us a layer
        c = estimate(wl, spec).compute
        return (c.decode_bytes_per_step / (spec.bandwidth_bytes_s * true_mbu)
                + c.decode_attention_flops / 8e9 + c.layers * true_layer)

    runs = [{"id": f"r{i}{m}", "scenario": "decode", "device": "cpu", "model": m,
             "workload": replace(w, model=m, weight_dtype=q).to_dict(), "metrics": {"median_s": measured(replace(w, model=m, weight_dtype=q))}}
            for i, (m, q) in enumerate((("smollm2-135m", "q8_0"), ("qwen2.5-0.5b", "q8_0"), ("llama-3.2-1b", "q8_0")))]
    pts, skipped = prepare_points(runs, {"cpu": spec})
    assert not skipped and all(p["attention_apart"] for p in pts)
    table = C.fit(pts)
    assert table["devices"][spec.name]["decode@llamacpp"]["attention"] == C.ATTENTION
    far = replace(w, prompt_tokens=1024)
    with C.using(table):
        got = estimate(far, spec)
    assert got.efficiency.attention_apart and got.time.tpot_s == pytest.approx(measured(far), rel=0.03)
    inside = json.loads(json.dumps(table))
    del inside["devices"][spec.name]["decode@llamacpp"]["attention"]
    with C.using(inside):
        old = estimate(far, spec)
    assert not old.efficiency.attention_apart and old.time.decode_attention_s == 0.0
