"""Real tiny benchmarks end to end: statistics, stored rows, estimates, refusals, the CLI.

Tiny real architectures (2 layers, hidden 64) with random weights on the CPU, one thread (the test
machine is shared; timings are never asserted, only their statistics and bookkeeping).
"""

from __future__ import annotations

import json
import shutil

import pytest

from aipc.bench.runner import BenchOptions, run_bench
from aipc.bench.stats import LoopConfig
from aipc.bench.store import ResultsDB
from aipc.errors import AipcError
from helpers import run_cli

LOOP = LoopConfig(warmup=1, min_reps=4, min_s=0.02, max_s=0.5)


@pytest.fixture(scope="module")
def profile_dir(tmp_path_factory):
    """This machine's aipc hw profile, measured once with tiny probe settings (seconds, not a benchmark)."""
    from helpers import tiny_profile_home

    home = tmp_path_factory.mktemp("hw-home")
    with tiny_profile_home(home):  # these tests bench with --threads 1
        pass
    return home / "profiles"


@pytest.fixture
def with_profile(profile_dir, _aipc_home):
    shutil.copytree(profile_dir, _aipc_home / "profiles", dirs_exist_ok=True)
    return _aipc_home


@pytest.fixture(scope="module")
def tiny_cfg(tmp_path_factory):
    from aipc.models.tiny import tiny_config

    d = tmp_path_factory.mktemp("cfg")
    (d / "llama.json").write_text(json.dumps(tiny_config("llama")))
    (d / "bert.json").write_text(json.dumps(tiny_config("bert")))
    return d


def test_tiny_bench_all_scenarios_statistics_and_rows(tiny_cfg, with_profile, tmp_path):
    db = tmp_path / "r.sqlite"
    rep = run_bench(BenchOptions(model=str(tiny_cfg / "llama.json"), devices="cpu", prompt=12, gen=5, seq=12,
                                 loop=LOOP, db=db, threads=1))
    rows = {r["scenario"]: r for r in rep["results"]}
    assert set(rows) == {"train", "prefill", "decode", "generate"}
    for r in rows.values():
        assert r["n"] >= LOOP.min_reps
        assert r["p10_s"] <= r["median_s"] <= r["p90_s"]
        assert r["ci95_low_s"] <= r["median_s"] <= r["ci95_high_s"]
        assert r["tokens_per_s"] == pytest.approx(r["tokens_per_sample"] / r["median_s"])
        assert r["peak_mem_bytes"] > 0 and r["cpu_threads"] == 1
        # measured peaks from the profile: MFU is achieved / measured peak, and an estimate sits beside it
        assert r["mfu_measured"] == pytest.approx(r["achieved_flops_s"] / r["peak_flops_measured"])
        assert r["est_s"] > 0 and r["est_error"] == pytest.approx(r["est_s"] / r["median_s"] - 1)
        assert r["energy_per_token_j"] is None or r["energy_per_token_j"] > 0
        assert r["energy_source"]  # what was read, or why not ("not measured: ...")
    assert rows["train"]["tokens_per_sample"] == 12 and rows["prefill"]["tokens_per_sample"] == 12
    assert rows["decode"]["tokens_per_sample"] == 1 and rows["generate"]["tokens_per_sample"] == 5
    assert rows["decode"]["mbu_measured"] == pytest.approx(rows["decode"]["achieved_bytes_s"]
                                                           / rows["decode"]["bandwidth_measured_bytes_s"])
    g = rows["generate"]
    assert 0 < g["ttft_median_s"] < g["median_s"]
    assert g["tpot_median_s"] == pytest.approx(g["tpot_median_s"]) and g["tpot_median_s"] > 0
    assert rep["speedup"] == []  # one device
    stored = ResultsDB(db).runs(kind="bench")
    assert len(stored) == 4
    by = {s["scenario"]: s for s in stored}
    assert len(by["decode"]["samples"]["samples_s"]) == rows["decode"]["n"]
    assert len(by["decode"]["samples"]["warmup_s"]) == LOOP.warmup
    assert len(by["generate"]["samples"]["ttft_s"]) == g["n"]
    ctx = by["train"]["context"]
    assert ctx["machine"]["fingerprint"] == by["train"]["machine"] and ctx["machine"]["profile"]
    assert ctx["versions"]["torch"] and ctx["versions"]["transformers"] and ctx["versions"]["python"]
    assert by["train"]["workload"]["seq_len"] == 12 and by["prefill"]["workload"]["prompt_tokens"] == 12
    assert by["prefill"]["metrics"]["median_s"] == rows["prefill"]["median_s"]


def test_lora_train_and_encoder_prefill(tiny_cfg, tmp_path):
    rep = run_bench(BenchOptions(model=str(tiny_cfg / "llama.json"), devices="cpu", scenarios=("train",),
                                 method="lora", lora_rank=4, seq=8, loop=LOOP, store=False, threads=1,
                                 measure_peaks=False))
    r = rep["results"][0]
    assert "LoRA r=4" in r["note"] and r["n"] >= LOOP.min_reps
    rep = run_bench(BenchOptions(model=str(tiny_cfg / "bert.json"), devices="cpu", scenarios=("prefill", "train"),
                                 prompt=8, seq=8, loop=LOOP, store=False, threads=1, measure_peaks=False))
    assert [r["scenario"] for r in rep["results"]] == ["prefill", "train"]


def test_local_weights_folder_is_loaded(tiny_llama_dir, tmp_path):
    db = tmp_path / "r.sqlite"
    run_bench(BenchOptions(model=str(tiny_llama_dir), devices="cpu", scenarios=("prefill",), prompt=8, loop=LOOP,
                           db=db, threads=1, measure_peaks=False))
    run = ResultsDB(db).runs()[0]
    assert run["context"]["weights"] == "local weights" and run["workload"]["prompt_tokens"] == 8


def test_refusals(tiny_cfg, tmp_path):
    with pytest.raises(AipcError, match="encoder"):
        run_bench(BenchOptions(model=str(tiny_cfg / "bert.json"), devices="cpu", scenarios=("decode",), store=False))
    with pytest.raises(AipcError, match="not present"):
        run_bench(BenchOptions(model=str(tiny_cfg / "llama.json"), devices="cuda:7", store=False))
    with pytest.raises(AipcError, match="unknown scenario"):
        run_bench(BenchOptions(model=str(tiny_cfg / "llama.json"), devices="cpu", scenarios=("fly",), store=False))
    bad = tmp_path / "x.db"
    bad.write_text("not a db")
    with pytest.raises(AipcError, match="not an aipc results database"):
        run_bench(BenchOptions(model=str(tiny_cfg / "llama.json"), devices="cpu", db=bad))
    assert bad.read_text() == "not a db"


def test_fit_check_refuses_before_building(with_profile):
    """405B parameters do not fit in this machine's RAM: refused with the estimate, nothing built."""
    with pytest.raises(AipcError, match="would not fit.*needs"):
        run_bench(BenchOptions(model="llama-3.1-405b", devices="cpu", scenarios=("prefill",), store=False, threads=1))


def test_cli_bench_json_and_errors(tiny_cfg, with_profile, tmp_path):
    db = tmp_path / "r.sqlite"
    code, out, err = run_cli("bench", str(tiny_cfg / "llama.json"), "--device", "cpu", "--scenario", "prefill,decode",
                             "--quick", "--threads", "1", "--prompt-tokens", "8", "--gen-tokens", "4",
                             "--db", str(db), "--json")
    assert code == 0, err
    rep = json.loads(out)
    assert [r["scenario"] for r in rep["results"]] == ["prefill", "decode"]
    assert "TPOT" in rep["definitions"]["decode"] and "median" in rep["ci_method"]
    assert ResultsDB(db).count() == 2
    code, out, err = run_cli("bench", str(tiny_cfg / "llama.json"), "--device", "cpu", "--scenario", "decode",
                             "--quick", "--threads", "1", "--prompt-tokens", "8", "--gen-tokens", "4", "--no-store")
    assert code == 0, err
    assert "TPOT" in out and "energy:" in out and "95% CI" in out
    for args, msg in ((["--device", "tpu"], "--device must be all, cpu, cuda"), (["--device", "cuda:7"], "not present"), (["--scenario", "decode", str(tiny_cfg / "bert.json")], "encoder"),
                      (["--db", "/proc/no/such/r.sqlite"], "cannot"), (["--precision", "int4"], "precision"),
                      (["--gen-tokens", "1"], "gen")):
        model = [] if any(a.endswith(".json") for a in args) else [str(tiny_cfg / "llama.json")]
        code, _, err = run_cli("bench", *model, *args)
        assert code == 2 and msg in err, (args, err)


def test_cpu_threads_chosen_by_measurement_when_not_given(tiny_cfg):
    import torch

    n = torch.get_num_threads()
    rep = run_bench(BenchOptions(model=str(tiny_cfg / "llama.json"), devices="cpu", scenarios=("prefill",), prompt=8,
                                 loop=LOOP, store=False, measure_peaks=False))
    note = rep["cpu_threads_note"]
    assert ("chosen by timing" in note and "ms" in note) or "one available" in note
    assert torch.get_num_threads() == n  # the process is left as it was
    rep1 = run_bench(BenchOptions(model=str(tiny_cfg / "llama.json"), devices="cpu", scenarios=("prefill",), prompt=8,
                                  loop=LOOP, store=False, measure_peaks=False, threads=1))
    assert rep1["cpu_threads_note"] == "1 CPU threads (--threads)" and rep1["cpu_threads"] == 1
