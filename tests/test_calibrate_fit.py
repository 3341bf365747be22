"""Calibration: the lookup contract the estimator calls, fitting, and its effect on real tiny runs."""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest

from aipc.estimate import calibrate as C


def _table(points):
    return C.fit([{"device": "dev-a", "scenario": s, "flops_per_token": f, "factor": x} for s, f, x in points], "test")


def test_missing_file_costs_little_and_answers_none(_aipc_home):
    assert not (_aipc_home / "calibration.json").exists()
    assert C.lookup("this-machine:cpu", "train", 1e9) is None
    t0 = time.perf_counter()
    for _ in range(1000):
        C.lookup("this-machine:cpu", "decode", 1e9)
    assert (time.perf_counter() - t0) / 1000 < 1e-3  # generous: a stat per call, no parsing


def test_fit_buckets_by_size_then_tokens_and_interpolates():
    pts = [("train", 100.0, 0.2, 64), ("train", 120.0, 0.4, 256), ("train", 130.0, 0.3, 256),
           ("train", 1000.0, 0.6, 64), ("train", 0.0, 1.0, 64), ("train", 50.0, float("nan"), 64)]
    t = C.fit([{"device": "d", "scenario": s, "flops_per_token": f, "factor": x, "tokens": n} for s, f, x, n in pts])
    b = t["devices"]["d"]["train"]["buckets"]
    assert [x["n"] for x in b] == [3, 1]                      # fpt 0 and NaN factor dropped; 100-130 share a bucket
    assert b[0]["fpt"] == pytest.approx((100 * 120 * 130) ** (1 / 3)) and b[0]["factor"] == 0.3
    assert b[0]["by_tokens"] == [[64.0, 0.2, 1], [256.0, 0.35, 2]]
    with C.using(t):
        assert C.lookup("d", "train", 115.0, tokens=64)[0] == pytest.approx(0.2)
        assert C.lookup("d", "train", 115.0, tokens=128)[0] == pytest.approx(0.275)   # halfway in log(tokens)
        assert C.lookup("d", "train", 115.0, tokens=4096)[0] == pytest.approx(0.35)   # nearest outside
        assert C.lookup("d", "train", 115.0)[0] == pytest.approx(0.3)                 # no tokens: bucket median
        assert C.lookup("d", "train", 1e6, tokens=64)[0] == pytest.approx(0.6)        # nearest size bucket
        assert C.lookup("d", "decode", 115.0) is None
    pts = [[100.0, 0.2, 1], [10000.0, 0.6, 1]]
    assert C.interpolate(pts, 1000.0) == pytest.approx(0.4)   # halfway in log space
    assert C.interpolate(pts, 10.0) == 0.2 and C.interpolate(pts, 1e6) == 0.6
    assert C.interpolate(pts, None) == pytest.approx(0.4)


def _decode_points(models, mbu, layer_s, batch=1):
    """Decode points a device with this MBU and per-layer time would produce: (ideal seconds, layers) each."""
    return [{"device": "d", "scenario": "decode", "flops_per_token": 1e8, "tokens": batch, "layers": layers,
             "ideal_s": ideal, "factor": ideal / (ideal / mbu + layers * layer_s)} for ideal, layers in models]


def test_decode_fit_separates_bytes_from_per_layer_time():
    # three models: like gpt2 (12 layers), smollm2-135m (30) and -360m (32) at full-bandwidth times 5/6/16 ms
    models = [(0.005, 12), (0.0058, 30), (0.0156, 32), (0.005, 12)]
    t = C.fit(_decode_points(models, 0.3, 2.5e-4) + _decode_points(models[:1], 0.2, 0.0, batch=4))
    t["devices"]["d"]["decode"].pop("joint")  # the per-batch fits (what answers without a joint model)
    b1, b4 = t["devices"]["d"]["decode"]["by_batch"]
    assert b1[0] == 1.0 and b1[1] == pytest.approx(0.3) and b1[2] == pytest.approx(2.5e-4) and b1[3] == 4
    assert b4 == [4.0, pytest.approx(0.2), 0.0, 1]  # one model cannot separate the terms: per-layer 0, median MBU
    with C.using(t):
        assert C.lookup_decode("d", 1)[:2] == (pytest.approx(0.3), pytest.approx(2.5e-4))
        mbu2, layer2, _ = C.lookup_decode("d", 2)  # halfway in log(batch)
        assert mbu2 == pytest.approx(0.25) and layer2 == pytest.approx(1.25e-4)
        assert C.lookup_decode("d", 64)[:2] == (pytest.approx(0.2), 0.0)
        assert C.lookup_decode("other", 1) is None and C.lookup("d", "decode", 1e8) is None
    # noise-free points from one MBU and no per-layer time give exactly that back
    flat = C.fit(_decode_points(models, 0.4, 0.0))["devices"]["d"]["decode"]["by_batch"][0]
    assert flat[1] == pytest.approx(0.4) and flat[2] == pytest.approx(0.0, abs=1e-12)
    # a fit that would need a negative per-layer time falls back to the median MBU
    odd = _decode_points([(0.005, 12)], 0.3, 1e-3) + _decode_points([(0.005, 40)], 0.3, 0.0)
    assert C.fit(odd)["devices"]["d"]["decode"]["by_batch"][0][2] == 0.0


def test_joint_decode_model_over_batch_sizes():
    """t = a*I + c*L + d*B*L across batches: recovered from noise-free runs, and a batch never
    measured (3) gets its terms from the same model instead of an interpolation between batches."""
    a, c, d = 1.25, 5e-4, 7e-5
    pts = []
    for batch in (1, 2, 4):
        for ideal, layers in ((0.005, 12), (0.0058, 30), (0.0156, 32)):
            ideal_b = ideal * (1 + 0.05 * (batch - 1))  # KV reads grow with the batch
            t = a * ideal_b + c * layers + d * batch * layers
            pts.append({"device": "d", "scenario": "decode", "flops_per_token": 1e8, "tokens": batch, "layers": layers,
                        "ideal_s": ideal_b, "factor": ideal_b / t})
    table = C.fit(pts)
    joint = table["devices"]["d"]["decode"]["joint"]
    assert (joint["a"], joint["c"], joint["d"]) == (pytest.approx(a), pytest.approx(c), pytest.approx(d))
    with C.using(table):
        mbu, layer_s, _ = C.lookup_decode("d", 3)
    assert mbu == pytest.approx(1 / a) and layer_s == pytest.approx(c + 3 * d)


def test_estimator_adds_the_per_layer_time_to_each_decode_step():
    from aipc.estimate import estimate
    from aipc.hardware.catalog import get_device
    from aipc.models import get as get_model
    from aipc.spec import Workload, precision_fields

    spec, m = get_device("rtx-4090"), get_model("smollm2-135m")
    w = Workload(model="smollm2-135m", task="infer", prompt_tokens=64, gen_tokens=8, **precision_fields("bf16"))
    table = {"format": C.FORMAT, "version": C.VERSION, "devices": {spec.name: {"decode": {
        "by_batch": [[1.0, 0.5, 1e-3, 3]], "n_runs": 3, "source": "test"}}}}
    with C.using({}):
        base = estimate(w, spec, model=m)
    with C.using(table):
        cal = estimate(w, spec, model=m)
    ideal = base.compute.decode_bytes_per_step / spec.bandwidth_bytes_s
    assert cal.compute.layers == m.num_layers == 30
    assert cal.time.tpot_s == pytest.approx(ideal / 0.5 + 30 * 1e-3)
    assert cal.efficiency.decode_layer_s == 1e-3 and "ms per layer" in cal.efficiency.source
    # uncalibrated: the published default of the device class (aipc.estimate.efficiency_defaults)
    layer = base.efficiency.decode_layer_s
    assert layer > 0 and base.time.tpot_s == pytest.approx(ideal / base.efficiency.mbu_decode + 30 * layer)


def test_save_lookup_cache_invalidation_merge_and_reset(_aipc_home):
    C.save(_table([("train", 1e6, 0.3), ("decode", 1e6, 0.5)]))
    assert C.lookup("dev-a", "train", 1e6) == (0.3, "test")
    assert C.lookup("dev-a", "prefill", 1e6) is None and C.lookup("dev-b", "train", 1e6) is None
    time.sleep(0.01)
    C.save(_table([("train", 1e6, 0.25)]))  # same device replaced; file changed -> cache refreshed
    assert C.lookup("dev-a", "train", 1e6)[0] == 0.25
    other = C.fit([{"device": "dev-b", "scenario": "prefill", "flops_per_token": 1e6, "factor": 0.7}], "b")
    C.save(other)
    assert C.lookup("dev-a", "train", 1e6)[0] == 0.25 and C.lookup("dev-b", "prefill", 1)[0] == 0.7
    with C.using({}):
        assert C.lookup("dev-a", "train", 1e6) is None
    assert C.reset(["dev-b"]) == ["dev-b"] and C.lookup("dev-b", "prefill", 1) is None
    (_aipc_home / "calibration.json").write_text("{broken")
    assert C.lookup("dev-a", "train", 1e6) is None  # unreadable file: defaults, never a crash


def test_calibrate_does_not_import_bench_or_torch():
    import subprocess
    import sys

    code = ("import sys, aipc.estimate.calibrate as c; c.lookup('x', 'train', 1.0); "
            "bad = [m for m in sys.modules if m.startswith(('aipc.bench', 'torch', 'transformers'))]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert r.returncode == 0, r.stdout + r.stderr


# ---- effect on real runs ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """A profile (tiny probe) and real tiny bench runs at three shapes, in a module-private home."""
    from aipc.bench.runner import BenchOptions, run_bench
    from aipc.bench.stats import LoopConfig
    from aipc.models.tiny import tiny_config
    from helpers import tiny_profile_home

    home = tmp_path_factory.mktemp("cal-home")
    with tiny_profile_home(home):  # the runs use --threads 1, as the profile
        cfg = home / "tiny.json"
        cfg.write_text(json.dumps(tiny_config("llama")))
        loop = LoopConfig(warmup=1, min_reps=5, min_s=0.02, max_s=0.5)
        for n in (8, 16, 32):
            run_bench(BenchOptions(model=str(cfg), devices="cpu", scenarios=("train", "prefill", "decode"), seq=n,
                                   prompt=n, gen=4, loop=loop, threads=1, db=home / "r.sqlite"))
    return home


def test_calibrate_cli_effect_on_estimates(measured, _aipc_home, one_torch_thread):
    from helpers import run_cli

    shutil.copytree(measured / "profiles", _aipc_home / "profiles", dirs_exist_ok=True)
    code, out, err = run_cli("calibrate", "--db", str(measured / "r.sqlite"), "--threads", "1", "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["runs_used"] == 9 and len(res["held_out"]) == 9
    allerr = res["errors"]["all"]
    # tiny models are overhead-bound: the default factors are far off; held-out calibrated ones are closer
    assert allerr["median_abs_error_after"] < allerr["median_abs_error_before"]
    entry = res["table"]["devices"]["this-machine:cpu"]
    assert set(entry) == {"train", "prefill", "decode"}
    assert "fitted from 3 runs" in entry["decode"]["source"] and "held-out median error" in entry["decode"]["source"]

    # a later estimate for this device uses the calibrated factors and says so
    from aipc.bench.context import machine_context
    from aipc.estimate import estimate
    from aipc.spec import Workload, precision_fields

    spec = machine_context(measure=False).specs["cpu"]
    w = Workload(model=str(measured / "tiny.json"), task="infer", prompt_tokens=16, gen_tokens=4, **precision_fields("fp32"))
    est = estimate(w, spec)
    assert est.efficiency.source.startswith("calibrated:")
    batch, mbu_b1, layer_s_b1, _ = entry["decode"]["by_batch"][0]
    assert batch == 1.0 and est.efficiency.mbu_decode == pytest.approx(mbu_b1)
    assert est.efficiency.decode_layer_s == pytest.approx(layer_s_b1)
    # in-sample: the calibrated decode time is close to what was measured for that shape
    from aipc.bench.store import ResultsDB

    run = [r for r in ResultsDB(measured / "r.sqlite").runs(scenario="decode") if r["workload"]["prompt_tokens"] == 16][0]
    meas = run["metrics"]["median_s"]
    with C.using({}):
        before = estimate(w, spec)
    assert before.efficiency.source.startswith("default")
    assert abs(est.time.tpot_s / meas - 1) < abs(before.time.tpot_s / meas - 1)

    code, out, _ = run_cli("calibrate", "--reset")
    assert code == 0 and "this-machine:cpu" in out
    assert estimate(w, spec).efficiency.source.startswith("default")


def test_calibrate_refuses_without_runs_or_profile(measured, _aipc_home, tmp_path, one_torch_thread):
    from helpers import run_cli

    code, _, err = run_cli("calibrate", "--db", str(measured / "r.sqlite"))
    assert code == 2 and "aipc hw" in err  # no profile in this home
    shutil.copytree(measured / "profiles", _aipc_home / "profiles", dirs_exist_ok=True)
    code, _, err = run_cli("calibrate", "--db", str(measured / "r.sqlite"), "--model", "nothing-like-this")
    assert code == 2 and "at least" in err
    code, _, err = run_cli("calibrate", "--db", str(tmp_path / "none.sqlite"))
    assert code == 2 and "no results database" in err


def _linear_points(a=1.2, b=0.004, c=0.0008, noise=None):  # b: seconds per (FLOP/token / peak)
    """Runs of two model sizes at several shapes whose times follow t = a*I + b*I/T + c*L exactly."""
    pts = []
    for fpt, layers in ((1e9, 12), (2.5e9, 24)):
        for tokens in (32, 64, 128, 256, 512):
            ideal = fpt * tokens / 4e12
            t = a * ideal + b * ideal / tokens + c * layers
            t *= (noise or {}).get((fpt, tokens), 1.0)
            pts.append({"device": "d", "scenario": "train", "flops_per_token": fpt, "tokens": tokens,
                        "factor": ideal / t, "ideal_s": ideal, "layers": layers, "t": t})
    return pts


def test_fitted_time_model_recovers_its_terms_and_answers_lookups():
    from aipc.estimate import calibrate_linear

    pts = _linear_points()
    lin = calibrate_linear.fit(pts)
    assert lin["a"] == pytest.approx(1.2, rel=1e-6) and lin["b"] == pytest.approx(0.004, rel=1e-6)
    assert lin["c"] == pytest.approx(0.0008, rel=1e-6) and lin["n"] == len(pts)
    table = C.fit(pts)
    with C.using(table):
        for p in pts:
            f, _ = C.lookup("d", "train", p["flops_per_token"], tokens=p["tokens"], ideal_s=p["ideal_s"],
                            layers=p["layers"])
            assert p["ideal_s"] / f == pytest.approx(p["t"], rel=1e-9)
        # without the step's ideal time and layers the size buckets answer, as before
        assert C.lookup("d", "train", 1e9, tokens=64)[0] == pytest.approx(
            next(p["factor"] for p in pts if p["flops_per_token"] == 1e9 and p["tokens"] == 64))


def test_fitted_time_model_extrapolates_where_buckets_cannot():
    """Leave out the smallest shape of the larger model: the time model predicts it from the other
    runs; the buckets can only carry over the nearest factor."""
    from aipc.estimate import calibrate_linear

    pts = _linear_points(b=0.05, noise={(1e9, 64): 1.05, (2.5e9, 128): 0.96})
    held = next(p for p in pts if p["flops_per_token"] == 2.5e9 and p["tokens"] == 32)
    rest = [p for p in pts if p is not held]
    lin = calibrate_linear.fit(rest)
    err_lin = abs(held["ideal_s"] / calibrate_linear.factor(lin, held["ideal_s"], 32, 24) / held["t"] - 1)
    with C.using(C.fit(rest)):
        f_bucket, _ = C.lookup("d", "train", 2.5e9, tokens=32)
    err_bucket = abs(held["ideal_s"] / f_bucket / held["t"] - 1)
    assert err_lin < 0.05 < err_bucket


def test_too_few_points_keep_the_buckets():
    from aipc.estimate import calibrate_linear

    assert calibrate_linear.fit(_linear_points()[:3]) is None
    assert calibrate_linear.factor({"a": 1.0, "b": 0.0, "c": 0.0}, 0.0, 32, 12) is None


def test_a_decode_fit_faster_than_memory_is_capped_and_the_rest_is_per_layer_time():
    # small models whose time is mostly per-layer work: an unconstrained two-term fit reads it as MBU > 1
    models = [(0.0004, 12), (0.0005, 30), (0.0009, 18)]
    pts = _decode_points(models, 1.8, 4e-4)
    b1 = C.fit(pts)["devices"]["d"]["decode"]["by_batch"][0]
    assert b1[1] == C.MAX_MBU == 1.0
    assert b1[2] > 3.5e-4  # the per-layer time takes what the bandwidth term cannot
    times = [ideal / 1.8 + layers * 4e-4 for ideal, layers in models]
    pred = [ideal / b1[1] + layers * b1[2] for ideal, layers in models]
    assert max(abs(p / t - 1) for p, t in zip(pred, times)) < 0.15  # still close where it was fitted


def _prefill_points(fmt: str, slow: float, models=((1e-3, 30), (4e-3, 16))):
    """Prefill points of an engine whose time is t = slow x (1.25 I + 0.5 ms x L): (ideal seconds, layers)."""
    out = []
    for ideal, layers in models:
        t = slow * (1.25 * ideal + 0.5e-3 * layers)
        out.append({"device": "d", "scenario": "prefill", "engine": "openvino", "weight_format": fmt,
                    "flops_per_token": ideal * 1e12, "factor": ideal / t, "tokens": 128, "ideal_s": ideal,
                    "layers": layers})
    return out


def test_a_format_too_few_for_a_time_model_takes_the_engines_scaled_by_its_own_factor():
    table = C.fit(_prefill_points("int8", 1.0) + _prefill_points("int4", 1.1))
    entry = table["devices"]["d"]["prefill@openvino"]
    assert not entry["by_format"]["int8"].get("linear") and entry["all"]["linear"]  # 2 runs each, 4 over both
    ideal, layers = 2e-3, 24  # a model between the two measured ones
    with C.using(table):
        f8, src = C.lookup("d", "prefill", ideal * 1e12, tokens=128, ideal_s=ideal, layers=layers,
                           engine="openvino", weight_format="int8")
        f4, _ = C.lookup("d", "prefill", ideal * 1e12, tokens=128, ideal_s=ideal, layers=layers,
                         engine="openvino", weight_format="int4")
        bucket8, _ = C.lookup("d", "prefill", ideal * 1e12, tokens=128, engine="openvino", weight_format="int8")
    assert "time model over all openvino formats" in src
    t_all = 1.05 * (1.25 * ideal + 0.5e-3 * layers)   # the joint fit sits between the two formats
    assert ideal / f8 < t_all < ideal / f4
    assert (ideal / f4) / (ideal / f8) == pytest.approx(1.1, rel=0.03)  # each format keeps its own level
    assert ideal / f8 == pytest.approx(1.25 * ideal + 0.5e-3 * layers, rel=0.05)
    assert bucket8 != pytest.approx(f8, rel=0.01)  # without the time model's inputs: the size buckets


def _torch_points(scenario: str, runner: str, per_layer: float, shapes=((1e-3, 30, 32), (2e-3, 30, 128),
                                                                       (4e-3, 16, 64), (8e-3, 16, 256))):
    """Prefill points of t = 1.5 I + per_layer x L on one runner: (ideal seconds, layers, tokens) each."""
    return [{"device": "d", "scenario": scenario, "engine": "torch", "runner": runner, "flops_per_token": i * 1e12,
             "factor": i / (1.5 * i + per_layer * layers), "tokens": t, "ideal_s": i, "layers": layers}
            for i, layers, t in shapes]


def test_torch_inference_on_the_hf_forward_is_fitted_apart_from_fastlm():
    from aipc.models import catalog

    assert catalog.get("gpt2").torch_runner == "hf" and catalog.get("llama-3.2-1b").torch_runner == "fastlm"
    table = C.fit(_torch_points("prefill", "fastlm", 0.2e-3) + _torch_points("prefill", "hf", 2e-3))
    assert set(table["devices"]["d"]) == {"prefill", "prefill" + C.HF_RUNNER}
    ideal, layers = 3e-3, 20
    with C.using(table):
        fast, _ = C.lookup("d", "prefill", 3e9, tokens=100, ideal_s=ideal, layers=layers)
        hf, src = C.lookup("d", "prefill", 3e9, tokens=100, ideal_s=ideal, layers=layers, runner="hf")
    assert ideal / fast == pytest.approx(1.5 * ideal + 0.2e-3 * layers, rel=0.02)
    assert ideal / hf == pytest.approx(1.5 * ideal + 2e-3 * layers, rel=0.02) and "HF-forward" in src
    only_fast = C.fit(_torch_points("prefill", "fastlm", 0.2e-3))
    with C.using(only_fast):  # no HF-forward run measured: the torch entry answers
        assert C.lookup("d", "prefill", 3e9, tokens=100, ideal_s=ideal, layers=layers, runner="hf")[0] == \
            pytest.approx(fast)


def test_prefill_fitted_at_one_prompt_length_does_not_extrapolate_token_terms():
    from aipc.estimate import calibrate_linear

    pts = [{"ideal_s": i, "tokens": 128, "layers": layers, "factor": i / (1.2 * i + 1e-3 * layers)}
           for i, layers in ((1e-3, 30), (2e-3, 24), (4e-3, 16), (8e-3, 16))]
    model = calibrate_linear.fit(pts)
    assert model["b"] == 0 and model["e"] == 0
    assert model["a"] == pytest.approx(1.2, rel=1e-6) and model["c"] == pytest.approx(1e-3, rel=1e-6)


def test_decode_per_layer_time_grows_with_the_context_where_runs_span_contexts():
    from aipc.estimate import calibrate_linear

    def pts(contexts):  # t = I / 0.8 + L x (0.1 ms + 2 us x context), batch 1
        return [{"ideal_s": i, "tokens": 1, "layers": layers, "context": ctx,
                 "factor": i / (i / 0.8 + layers * (0.1e-3 + 2e-6 * ctx))}
                for i, layers in ((1e-3, 30), (4e-3, 16), (2e-3, 24)) for ctx in contexts]

    model = calibrate_linear.fit_decode(pts((40, 136, 264)))
    mbu, at_100 = calibrate_linear.decode_terms(model, 1, 100)
    assert mbu == pytest.approx(0.8, rel=1e-3)
    assert at_100 == pytest.approx(0.1e-3 + 2e-6 * 100, rel=1e-3)
    assert calibrate_linear.decode_terms(model, 1, 1000)[1] > at_100
    assert calibrate_linear.fit_decode(pts((136, 140)))["e"] == 0  # one context: the term is not identifiable


def test_a_table_of_another_version_is_not_used_and_estimates_say_so(_aipc_home):
    from aipc.estimate import estimate
    from aipc.hardware.spec import DeviceSpec
    from aipc.spec import Workload

    spec = DeviceSpec(name="this-machine:cpu", label="cpu", vendor="intel", kind="cpu", category="this-machine",
                      memory_bytes=32 << 30, usable_memory_bytes=32 << 30, bandwidth_bytes_s=30e9,
                      peak_flops={"fp32": 400e9})
    w = Workload(model="smollm2-135m", task="infer", weight_dtype="fp32", prompt_tokens=64, gen_tokens=8)
    good = C.fit(_prefill_points("int8", 1.0) + _prefill_points("int4", 1.1))
    old = {**good, "version": C.VERSION - 1, "devices": {"this-machine:cpu": {"prefill": {"buckets": []}}}}
    (_aipc_home / "calibration.json").write_text(json.dumps(old), encoding="utf-8")
    assert C.load() is None
    warn = [x for x in estimate(w, spec).warnings if "another aipc version" in x]
    assert len(warn) == 1 and "aipc calibrate" in warn[0] and f"({C.VERSION - 1}," in warn[0]
    catalog_cpu = DeviceSpec(**{**spec.__dict__, "name": "some-cpu", "category": "desktop"})
    assert not any("another aipc version" in x for x in estimate(w, catalog_cpu).warnings)
    (_aipc_home / "calibration.json").write_text(json.dumps(good), encoding="utf-8")
    assert C.load() is not None and not any("another aipc version" in x for x in estimate(w, spec).warnings)
