"""aipc report: the page rendered from FIXED input data shows the numbers it was given; missing parts
say "not available: <why>"; bad input fails with exit 2 before anything is measured or written."""

from __future__ import annotations

import copy
import json
import re
from html.parser import HTMLParser

import pytest

from aipc.report.collect import unavailable
from aipc.report.html import MAX_PAGE_BYTES, render_page, write_report

GIB = 2**30


def _src(text: str) -> dict:
    return {"source": text, "as_of": "2026-11-25"}


def _est_row(device, label, category, local, fits, peak, cap, tps, task, comps):
    speed = {"decode_tokens_per_s": tps, "ttft_s": 0.25, "tpot_s": 1 / tps} if task == "infer" else \
        {"train_tokens_per_s": tps, "step_s": 2048 / tps}
    return {"device": device, "label": label, "category": category, "kind": "gpu" if "cuda" in device or "rtx" in device
            else "cpu", "local": local, "memory_bytes": cap, "price_usd": None, "available": True, "fits": fits,
            "devices_needed": 1 if fits else 2, "peak_bytes": peak, "capacity_bytes": cap, "peak_phase": "decode",
            "components": comps, "weights_only_bytes": comps["weights_bytes"], "efficiency_source": "default: test MBU 0.60",
            "verdict": "fits" if fits else "does not fit", "suggestions": ["try --precision int4"], "warnings": [],
            "ttft_s": None, "tpot_s": None, "decode_tokens_per_s": None, "train_tokens_per_s": None, "step_s": None,
            "bound": "memory", **speed}


def fixture_data() -> dict:
    """A complete report data dict with hand-picked numbers (no measuring)."""
    infer_c = {"weights_bytes": 15 * GIB, "kv_cache_bytes": int(0.5 * GIB), "runtime_bytes": int(0.6 * GIB)}
    lora_c = {"weights_bytes": 13 * GIB, "activations_bytes": 3 * GIB, "lora_adapters_bytes": int(0.2 * GIB)}
    bench_row = dict(precision="fp32", n=5, p10_s=0.9, p90_s=1.1, ci95_low_s=0.9, ci95_high_s=1.1, tokens_per_sample=32,
                     peak_flops_spec=None, mfu_spec=None, est_s=0.5, est_error=-0.5, peak_mem_bytes=GIB,
                     est_peak_mem_bytes=GIB, peak_mem_method="RSS", definition="d", bytes_per_sample=None,
                     achieved_bytes_s=None, bandwidth_measured_bytes_s=None, mbu_measured=None,
                     bandwidth_spec_bytes_s=None, mbu_spec=None, peak_flops_measured=1.5e12)
    results = []
    for dev, scen, tps, mfu in (("cpu", "prefill", 38.7, 0.021), ("cpu", "decode", 12.5, None), ("cpu", "train", 9.25, 0.012),
                                ("cuda:0", "prefill", 4520.0, 0.31), ("cuda:0", "decode", 95.3, None),
                                ("cuda:0", "train", 1800.0, 0.22)):
        r = {**bench_row, "device": dev, "scenario": scen, "tokens_per_s": tps, "median_s": 32 / tps,
             "flops_per_sample": 32 * 2.7e8 * (3 if scen == "train" else 1), "mfu_measured": mfu}
        r["achieved_flops_s"] = r["flops_per_sample"] / r["median_s"]
        if scen == "decode":
            r.update(bytes_per_sample=5.4e8, achieved_bytes_s=5.4e8 / r["median_s"], mbu_measured=0.42 if dev == "cpu" else 0.57)
        if dev == "cuda:0":
            r["precision"] = "bf16"
        results.append(r)
    owned = {"id": "owned:this-machine:cuda:0", "kind": "owned", "device": "this-machine:cuda:0",
             "label": "This machine: NVIDIA GeForce RTX 4090", "provider": None, "feasible": True, "reasons": [],
             "devices": 1, "price_source": "already owned: capex 0", "capex": 0.0, "per_hour": None,
             "capex_per_month": 0.0, "ops_per_month": 0.0, "energy_per_month": 12.34, "rent_per_month": 0.0,
             "cost_per_month": 12.34, "utilization": 0.23, "amortized_per_hour": 0.073, "busy_device_hours_per_month": 168.0,
             "cost_per_mtok_train": 0.05, "cost_per_mtok_infer": 0.21, "throughput_source": "measured (3 runs)",
             "workloads": [], "break_even": []}
    buy = {**owned, "id": "buy:rtx-5090", "kind": "buy", "device": "rtx-5090", "label": "Buy NVIDIA GeForce RTX 5090",
           "price_source": "catalog: https://example.org/rtx5090 (2026-11-25)", "capex": 2999.0, "capex_per_month": 83.31,
           "energy_per_month": 15.45, "cost_per_month": 98.76, "utilization": 0.18, "throughput_source": "estimated",
           "break_even": [{"vs": "cloud:h100-sxm:Lambda", "vs_label": "Rent NVIDIA H100 SXM5 80 GB at Lambda",
                           "cloud_per_month": 765.43, "cloud_billed_device_hours": 730.0, "cloud_work_device_hours": 120.0,
                           "months": 4.2, "utilization": 0.31}]}
    cloud = {**owned, "id": "cloud:h100-sxm:Lambda", "kind": "cloud", "device": "h100-sxm", "provider": "Lambda",
             "label": "Rent NVIDIA H100 SXM5 80 GB at Lambda", "price_source": "catalog: https://lambda.ai/pricing (2026-11-25)",
             "per_hour": 2.99, "energy_per_month": 0.0, "rent_per_month": 765.43, "cost_per_month": 765.43,
             "utilization": None, "cost_per_mtok_infer": 7.77, "throughput_source": "estimated"}
    miss = {**owned, "id": "buy:t4", "kind": "buy", "label": "Buy NVIDIA T4 16 GB", "feasible": False, "cost_per_month": None,
            "reasons": ["Serve an 8B chat model: does not fit: needs 16.1 GiB"]}
    return {
        "schema": "aipc-report/1", "generated_at": "2026-11-25T12:00:00+00:00",
        "inputs": {"model": None, "workload_file": None, "needs_file": None, "bench": True, "bench_model": "smollm2-135m",
                   "defaults_used": ["default workloads"], "needs": {"currency": "USD"},
                   "workloads": [{"name": "Serve an 8B chat model", "workload": {}}, {"name": "LoRA of a 7B", "workload": {}}]},
        "argv": ["-o", "out"],
        "versions": {"python": "3.11.7", "os": "Linux-test", "aipc": "0.1.0", "torch": "2.13.0", "transformers": "5.24.0",
                     "peft": "0.21.2"},
        "machine": {
            "available": True, "fingerprint": "abc123", "mode": "quick", "measured_at": "2026-11-25T11:00:00+00:00",
            "cached": True, "measure_wall_s": 9.0, "load_avg": [0.5, 0.7],
            "cpu": {"model": "Test CPU 9000", "arch": "x86_64", "physical_cores": 8, "logical_cores": 16,
                    "torch_capability": "AVX512", "features": ["avx2"]},
            "ram_total_bytes": 64 * GIB, "gpus": [{"device": "cuda:0", "name": "NVIDIA GeForce RTX 4090", "backend": "cuda",
                                                   "memory_bytes": 24 * GIB}], "npus": [],
            "software": {"os": "Linux", "python": "3.11.7", "torch": "2.13.0", "torch_build": "cuda 12.8",
                         "transformers": "5.24.0", "blas": "mkl", "torch_threads": 8},
            "devices": [
                {"name": "this-machine:cpu", "label": "Test CPU 9000 — this machine", "kind": "cpu", "memory_bytes": 64 * GIB,
                 "usable_memory_bytes": 64 * GIB, "measured": {"peak_flops": {"fp32": 1.5e12}, "bandwidth_bytes_s": 8.0e10,
                                                               "sources": {"peak_flops.fp32": _src("measured by aipc hw: GEMM")}},
                 "spec": None, "spec_why": "the catalog lists no CPUs", "notes": ""},
                {"name": "this-machine:cuda:0", "label": "NVIDIA GeForce RTX 4090 — this machine", "kind": "gpu",
                 "memory_bytes": 24 * GIB, "usable_memory_bytes": 23 * GIB,
                 "measured": {"peak_flops": {"bf16": 1.32e14}, "bandwidth_bytes_s": 9.1e11,
                              "sources": {"bandwidth_bytes_s": _src("measured by aipc hw: copy")}},
                 "spec": {"device": "rtx-4090", "label": "NVIDIA GeForce RTX 4090", "peak_flops": {"bf16": 1.652e14},
                          "bandwidth_bytes_s": 1.008e12, "memory_bytes": 24 * GIB,
                          "sources": {"bandwidth_bytes_s": _src("https://example.org/4090-whitepaper")}},
                 "spec_why": None, "notes": ""}]},
        "bench": {"available": True, "model": "smollm2-135m", "params": 134515008, "devices": ["cpu", "cuda:0"],
                  "scenarios": ["prefill", "decode", "train"], "shape": {"batch": 1, "prompt": 32, "gen": 8, "seq": 32,
                                                                          "method": "full"},
                  "loop": {"warmup": 1, "min_reps": 3, "min_s": 0.2, "max_s": 2.0}, "wall_s": 30.0,
                  "definitions": {"prefill": "prefill: one forward"}, "ci_method": "order statistics", "db": "/tmp/x.sqlite",
                  "peaks": "cached aipc hw profile", "results": results,
                  "speedup": [{"scenario": "prefill", "reference": "cpu", "r": {"cuda:0": 116.8}, "shape": [1, 32, 8],
                               "precision": {"cpu": "fp32", "cuda:0": "bf16"}},
                              {"scenario": "train", "reference": "cpu", "r": {"cuda:0": 194.6}, "shape": [1, 32, "full"],
                               "precision": {"cpu": "fp32", "cuda:0": "bf16"}}]},
        "estimates": {"available": True, "workloads": [
            {"name": "Serve an 8B chat model", "model": "llama-3.1-8b", "task": "infer", "method": "full", "params": 8.03e9,
             "workload": {"weight_dtype": "bf16", "batch_size": 1, "prompt_tokens": 512, "gen_tokens": 256},
             "rows": [_est_row("this-machine:cpu", "Test CPU 9000 — this machine", "this-machine", True, True,
                               int(16.1 * GIB), 64 * GIB, 3.21, "infer", infer_c),
                      _est_row("this-machine:cuda:0", "NVIDIA GeForce RTX 4090 — this machine", "this-machine", True, True,
                               int(16.1 * GIB), 23 * GIB, 37.5, "infer", infer_c),
                      _est_row("rtx-5090", "NVIDIA GeForce RTX 5090", "workstation", False, True, int(16.1 * GIB),
                               32 * GIB, 66.6, "infer", infer_c),
                      _est_row("t4", "NVIDIA T4 16 GB", "datacenter", False, False, int(16.1 * GIB), 15 * GIB, 11.0,
                               "infer", infer_c)]},
            {"name": "LoRA of a 7B", "model": "mistral-7b-v0.3", "task": "train", "method": "lora", "params": 7.25e9,
             "workload": {"weight_dtype": "bf16", "batch_size": 1, "seq_len": 2048, "optimizer": "adamw", "grad_ckpt": True},
             "rows": [_est_row("this-machine:cpu", "Test CPU 9000 — this machine", "this-machine", True, True,
                               int(16.2 * GIB), 64 * GIB, 1.74, "train", lora_c),
                      _est_row("this-machine:cuda:0", "NVIDIA GeForce RTX 4090 — this machine", "this-machine", True, True,
                               int(16.2 * GIB), 23 * GIB, 1399.0, "train", lora_c),
                      _est_row("rtx-5090", "NVIDIA GeForce RTX 5090", "workstation", False, True, int(16.2 * GIB),
                               32 * GIB, 1774.0, "train", lora_c),
                      _est_row("t4", "NVIDIA T4 16 GB", "datacenter", False, False, int(16.2 * GIB), 15 * GIB, 300.0,
                               "train", lora_c)]}]},
        "decision": {
            "available": True, "currency": "USD", "feasible": True,
            "recommendation": "Recommendation: This machine: NVIDIA GeForce RTX 4090 — $12.34/month.\n  - already owned",
            "picks": {"cheapest": {"role": "cheapest", "id": owned["id"], "label": owned["label"], "cost_per_month": 12.34,
                                   "reasons": ["already owned"]},
                      "fastest": {"role": "fastest", "id": cloud["id"], "label": cloud["label"], "cost_per_month": 765.43,
                                  "reasons": ["fastest"]},
                      "on_prem": {"role": "on_prem", "id": owned["id"], "label": owned["label"], "cost_per_month": 12.34,
                                  "reasons": ["on premises"]}},
            "candidates": [owned, buy, cloud, miss], "closest_misses": [miss],
            "per_workload": [{"workload": "Serve an 8B chat model", "text": "Serve an 8B chat model: This machine at $12.34/month"}],
            "sensitivity": [{"parameter": "cloud_price", "meaning": "cloud price multiple", "values": [0.25, 0.5, 1.0, 2.0],
                             "cheapest": ["cloud:h100-sxm:Lambda", owned["id"], owned["id"], owned["id"]],
                             "cheapest_label": [cloud["label"], owned["label"], owned["label"], owned["label"]],
                             "cost_per_month": [191.0, 12.34, 12.34, 12.34]}],
            "flips": [], "throughput": "measured for 2 of 8 (device, workload) pairs", "warnings": [],
            "assumptions": [{"field": "horizon_months", "value": 36, "given": False, "meaning": "write-off months",
                             "source": "FIELD-NOTES: TCO write-ups commonly use 3 years", "as_of": "2026-11-25"},
                            {"field": "electricity_per_kwh", "value": 0.13, "given": False, "meaning": "price per kWh",
                             "source": "EIA Electric Power Annual 2023", "as_of": "2026-11-25"}],
            "needs": {}},
        "timings_s": {"profile": 0.1, "bench": 30.0, "total": 31.0},
    }


class _Text(HTMLParser):
    """The page's visible text (including SVG <text>), tags stripped; <style> and <title> skipped."""

    def __init__(self):
        super().__init__()
        self.parts: list[str] = []
        self.skip = 0
        self.figures = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("style", "title"):
            self.skip += 1
        if tag == "figure" and ("class", "chart") in attrs:
            self.figures += 1

    def handle_endtag(self, tag):
        if tag in ("style", "title"):
            self.skip -= 1

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)


def page_text(html: str) -> tuple[str, int]:
    p = _Text()
    p.feed(html)
    return " ".join(" ".join(p.parts).split()), p.figures


# The numbers the fixture carries, as the page must print them.
KEY_NUMBERS = [
    "132 TFLOP/s", "165 TFLOP/s", "80%",            # RTX 4090 measured vs spec bf16 peak, and the ratio
    "910 GB/s", "1.01 TB/s", "1.5 TFLOP/s",         # bandwidth measured vs spec; CPU fp32 peak
    "38.7 tokens/s", "4,520 tokens/s", "95.3 tokens/s",  # measured tokens/s
    "R = 116.80", "116.80x", "194.60x",             # speedup R (verdict and chart)
    "$12.34/month", "$765/month", "$2,999 up front",  # cost
    "break-even 4.2 months", "break-even 31%", "needs today: 18%",
    "16.1 GiB", "37.5 tokens/s", "1,399 tokens/s",  # estimates
    "EIA Electric Power Annual 2023", "2026-11-25",  # assumption source and date
    "aipc report -o out", "aipc decide needs.json", "torch 2.13.0", "2.13.0",  # reproduce
]


def test_fixed_data_numbers_appear_on_the_page():
    html = render_page(fixture_data())
    text, figures = page_text(html)
    missing = [k for k in KEY_NUMBERS if k not in text]
    assert not missing, f"numbers missing from the page: {missing}"
    # verdict first: the three verdict headings come before the machine section
    assert text.index("What runs on this machine") < text.index("How fast it runs here") < \
        text.index("What it would cost elsewhere") < text.index("This machine: measured versus spec peaks")
    # every chart: roofline, tokens/s, speedup, memory, estimated speed, cost over months, cost vs utilization
    assert figures == 7
    assert "not available" not in text.replace("speed not available", "")
    # self-contained: no script, no external reference of any kind
    assert "<script" not in html.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html, re.I)
    assert "default-src 'none'" in html


def test_measured_versus_spec_ratio_is_computed_not_copied():
    d = fixture_data()
    d["machine"]["devices"][1]["measured"]["peak_flops"]["bf16"] = 0.5 * 1.652e14
    text, _ = page_text(render_page(d))
    assert "82.6 TFLOP/s" in text and "50%" in text and "132 TFLOP/s" not in text


def test_missing_parts_say_not_available_with_the_reason():
    d = fixture_data()
    for key, why in (("machine", "probe crashed: X1"), ("bench", "skipped (--no-bench)"),
                     ("estimates", "estimator raised Y2"), ("decision", "decide raised Z3")):
        d[key] = unavailable(why)
    html = render_page(d)
    text, figures = page_text(html)
    for why in ("probe crashed: X1", "skipped (--no-bench)", "estimator raised Y2", "decide raised Z3"):
        assert f"not available: {why}" in text
    assert figures == 0
    assert "aipc report -o out" in text  # reproduce still renders


def test_one_device_says_why_there_is_no_speedup():
    d = fixture_data()
    d["bench"]["results"] = [r for r in d["bench"]["results"] if r["device"] == "cpu"]
    d["bench"]["speedup"] = []
    text, figures = page_text(render_page(d))
    assert "not available: only one local device was measured (cpu)" in text
    assert figures == 6


def test_written_page_and_json_weigh_under_5_mib_even_for_a_big_catalog(tmp_path):
    d = fixture_data()
    for w in d["estimates"]["workloads"]:  # 400 catalog devices per workload
        extra = copy.deepcopy(w["rows"][2])
        w["rows"] += [{**extra, "device": f"dev-{i}", "label": f"Device {i}"} for i in range(400)]
    paths = write_report(d, tmp_path / "r")
    page = (tmp_path / "r" / "index.html").read_bytes()
    assert paths["page_bytes"] == len(page) <= MAX_PAGE_BYTES
    assert json.loads((tmp_path / "r" / "report.json").read_text())["bench"]["results"][0]["tokens_per_s"] == 38.7


@pytest.mark.parametrize("args, msg", [
    (["--needs", "/nonexistent/needs.toml"], "--needs"),
    (["--model", "no-such-model-xyz"], "no-such-model-xyz"),
    (["--workload", "/nonexistent/w.toml"], "--workload"),
])
def test_bad_input_exits_2_before_measuring_and_writes_nothing(tmp_path, args, msg):
    from helpers import run_cli

    from aipc.hardware import profile

    before = profile.measure_count
    out = tmp_path / "out"
    code, _, err = run_cli("report", *args, "-o", str(out), "--no-bench")
    assert code == 2, err
    assert err.startswith("error: ") and msg in err and "Traceback" not in err
    assert profile.measure_count == before           # nothing was measured
    assert not (out / "index.html").exists()         # and nothing written


def test_output_path_that_is_a_file_is_refused(tmp_path):
    from helpers import run_cli

    f = tmp_path / "file.txt"
    f.write_text("keep me")
    code, _, err = run_cli("report", "-o", str(f), "--no-bench")
    assert code == 2 and "is a file" in err
    assert f.read_text() == "keep me"


def test_low_confidence_peaks_and_train_peaks_are_on_the_page():
    d = fixture_data()
    cpu = d["machine"]["devices"][0]
    cpu["confidence"] = ("low confidence: fp32 GEMM measured while the machine was busy (load average 2.6 on 2 cores); "
                         "refresh with 'aipc hw --refresh' when the machine is quiet")
    cpu["native_dtypes"] = ["fp32"]
    cpu["train_peak_flops"] = {"fp32": 4.2e11}
    cpu["measured"]["sources"]["train_peak_flops.fp32"] = _src("measured by aipc hw: linear forward+backward")
    text, _ = page_text(render_page(d))
    assert "low confidence: fp32 GEMM measured while the machine was busy" in text
    assert "aipc hw --refresh" in text and "fp32 linear forward+backward (training)" in text and "420 GFLOP/s" in text
    assert "Native dtypes" in text
    text2, _ = page_text(render_page(fixture_data()))  # a quiet profile says nothing of the kind
    assert "low confidence" not in text2
