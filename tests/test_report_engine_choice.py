"""The report's engine x precision choice and verdict rule: the best setup that fits and meets the need
per device (llama.cpp quantized where torch is too slow or too big), the torch figure beside it, and never
"runs here" when the estimate misses the need."""

import importlib
import importlib.util

from aipc.estimate.choose import Need, best_setup, candidates
from aipc.hardware.catalog import get_device, load_catalog
from aipc.hardware.spec import DeviceSpec
from aipc.models import catalog
from aipc.report import defaults as D
from aipc.report import verdict as V
from aipc.spec import Workload

collect = importlib.import_module("aipc.report.collect")


def two_core_cpu(native_bf16=False):
    """This project's 2-core machine as aipc hw measured it (issue 12: 34.5 GB/s, fp32 130 GFLOP/s)."""
    return DeviceSpec(name="this-machine:cpu", label="2-core x86 CPU — this machine", vendor="intel", kind="cpu",
                      category="this-machine", memory_bytes=24 * 10**9, usable_memory_bytes=22 * 10**9,
                      bandwidth_bytes_s=34.5e9, peak_flops={"fp32": 130e9, "bf16": 20e9}, measured=True)


CHAT = Workload(model="llama-3.1-8b", task="infer", prompt_tokens=512, gen_tokens=256)
OPENVINO = importlib.util.find_spec("openvino") is not None  # OpenVINO candidates only where it is installed


def test_cpu_never_gets_an_emulated_torch_dtype_by_default():
    cpu = two_core_cpu()
    assert [c.weight_dtype for c in candidates(CHAT, cpu, cpu_bf16_native=False)] == \
        ["fp32", "q8_0", "q4_k_m"] + (["int8", "int4"] if OPENVINO else [])
    assert candidates(CHAT, cpu, cpu_bf16_native=True)[0].weight_dtype == "bf16"
    train = Workload(model="llama-3.2-1b", task="train", weight_dtype="bf16")
    assert [c.weight_dtype for c in candidates(train, cpu, cpu_bf16_native=False)] == ["fp32", "bf16"]


def test_8b_chat_on_the_2_core_cpu_is_4_bit_quantized_and_misses_the_need():
    ch = best_setup(CHAT, two_core_cpu(), catalog.get("llama-3.1-8b"), Need(ttft_s=2.0, tpot_s=0.1), False)
    assert (ch.workload.engine, ch.workload.weight_dtype) in (("llamacpp", "q4_k_m"), ("openvino", "int4"))
    fastest = max((e.time.decode_tokens_per_s, c.weight_dtype) for c, e in ch.tried if e.fits)
    assert fastest[1] == ch.workload.weight_dtype  # none meets the need: the fastest that fits
    assert ch.estimate.fits and not ch.meets
    assert any(m.startswith("TPOT") for m in ch.misses) and any(m.startswith("TTFT") for m in ch.misses)
    # the torch candidate is there to be shown beside it: fp32 does not fit 22 GB
    assert ch.torch() is not None and not ch.torch().fits


def test_a_datacenter_gpu_keeps_the_most_precise_setup_that_meets_the_need():
    ch = best_setup(CHAT, get_device("h100-sxm"), catalog.get("llama-3.1-8b"), Need())
    assert ch.meets and (ch.workload.engine, ch.workload.weight_dtype) == ("torch", "bf16")


def test_a_training_job_past_its_deadline_misses():
    w = Workload(model="llama-3.2-1b", task="train", weight_dtype="bf16", grad_ckpt=True)
    ch = best_setup(w, two_core_cpu(), catalog.get("llama-3.2-1b"), Need(train_tokens=50_000_000, deadline_s=48 * 3600))
    assert not ch.meets and "days" in ch.misses[0] and "deadline" in ch.misses[0]


def test_verdict_never_says_runs_here_when_the_need_is_missed():
    est = collect.estimates_section(D.workloads(), [two_core_cpu()], load_catalog(), D.needs(), False)
    lines = V.runs_here({"estimates": est})
    chat = next(line for line in lines if line.startswith("Serve an 8B chat model"))
    assert "runs here" not in chat and "does not meet the need" in chat
    assert ("llama.cpp Q4_K_M" in chat or "OpenVINO int4" in chat) and "PyTorch fp32" in chat and "To meet it:" in chat
    for line in lines:
        assert "runs here" not in line  # every default workload misses its need on 2 cores


def test_verdict_names_the_setup_and_the_torch_figure_beside_it_when_it_runs():
    w = {"name": "Serve", "model": "m", "task": "infer", "need": {"ttft_s": 2.0, "tpot_s": 0.1}, "rows": [
        {"local": True, "available": True, "fits": True, "meets": True, "setup": "llama.cpp Q4_K_M", "label": "CPU",
         "decode_tokens_per_s": 12.0, "tpot_s": 0.083, "ttft_s": 1.5, "peak_bytes": 5e9, "capacity_bytes": 20e9,
         "torch": {"setup": "PyTorch fp32", "fits": True, "decode_tokens_per_s": 1.1}}]}
    line = V.runs_here({"estimates": {"available": True, "workloads": [w]}})[0]
    assert "runs here on CPU — llama.cpp Q4_K_M: 12 tokens/s generated" in line
    assert "PyTorch fp32: 1.1 tokens/s for comparison" in line


def test_measured_engine_lines_name_each_engine_and_a_busy_run():
    def row(engine, fmt, scenario, tok_s):
        return {"engine": engine, "weight_format": fmt, "scenario": scenario, "device": "cpu", "tokens_per_s": tok_s}

    eb = {"available": True, "model": "smollm2-135m", "engine": "llamacpp", "engines": ["llamacpp", "openvino"],
          "results": [row("llamacpp", "q4_k_m", "decode", 40.0), row("openvino", "int4", "decode", 30.0),
                      row("openvino", "int4", "prefill", 900.0)],
          "not_used": "measured under load (load 3.1): not used for the estimates"}
    lines = V.engine_measured({"engine_bench": eb})
    assert lines[0].startswith("smollm2-135m through llama.cpp Q4_K_M on cpu (measured): decode 40")
    assert lines[1].startswith("smollm2-135m through OpenVINO int4 on cpu (measured): decode 30")
    assert "prefill 900" in lines[1] and len(lines) == 3 and "not used for the estimates" in lines[2]
    assert V.engine_measured({"engine_bench": {"available": False, "why": "skipped (--no-bench)"}}) == [
        "quantized engines not measured: skipped (--no-bench)"]
