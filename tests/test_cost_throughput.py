"""Measured throughput lookup over a real results database, and this machine without torch."""

from __future__ import annotations

import sys

import pytest

from aipc.cost.throughput import MeasuredIndex, load_index


def test_lookup_matches_device_model_scenario_and_shape():
    idx = MeasuredIndex([
        {"device": "rtx-4090", "model": "m", "scenario": "train", "workload": {"method": "lora", "batch_size": 1},
         "metrics": {"tokens_per_s": 100.0}},
        {"device": "rtx-4090", "model": "m", "scenario": "train", "workload": {"method": "lora", "batch_size": 1},
         "metrics": {"tokens_per_s": {"median": 300.0, "p10": 250.0}}},
        {"device": "rtx-4090", "model": "m", "scenario": "train", "workload": {"method": "full", "batch_size": 1},
         "metrics": {"tokens_per_s": 9999.0}},                                      # other method: ignored
        {"device": "cpu", "model": "m", "scenario": "decode", "workload": {"batch_size": 4},
         "metrics": {"decode_tokens_per_s": 40.0}},                                   # 4 sequences at 10 tok/s
        {"device": "cpu", "model": "m", "scenario": "prefill", "metrics": {"ttft_s": -1}},  # not a time: ignored
        {"bad": "row"},
    ])
    hit = idx.lookup("rtx-4090", "M", "train", {"method": "lora", "batch_size": 1, "seq_len": 2048})
    assert hit.value == pytest.approx(200.0) and hit.runs == 2                        # median of 100 and 300
    assert idx.lookup("rtx-4090", "m", "train", {"method": "qlora"}) is None
    # this machine's devices match the bench's short device names ('cpu', 'cuda:0')
    d = idx.lookup("this-machine:cpu", "m", "decode", {"batch_size": 4})
    assert d.value == pytest.approx(0.1)
    assert idx.lookup("this-machine:cpu", "m", "decode", {"batch_size": 1}) is None
    assert idx.lookup("this-machine:cpu", "m", "prefill", {}) is None
    assert len(idx) == 5


def test_load_index_reads_a_real_results_database(tmp_path):
    from aipc.bench.store import ResultsDB

    path = tmp_path / "results.sqlite"
    db = ResultsDB(path)
    db.add_run(kind="bench", scenario="train", device="rtx-4090", model="llama-3.2-1b",
               workload={"method": "lora", "batch_size": 1}, metrics={"tokens_per_s": 1234.0})
    db.add_run(kind="loadtest", scenario="train", device="rtx-4090", model="llama-3.2-1b",
               metrics={"tokens_per_s": 1.0})                                       # not a bench run
    idx = load_index(path)
    assert len(idx) == 1
    assert idx.lookup("rtx-4090", "llama-3.2-1b", "train", {"method": "lora"}).value == 1234.0


def test_no_database_means_estimates(tmp_path, monkeypatch):
    monkeypatch.setenv("AIPC_HOME", str(tmp_path / "home"))
    idx = load_index()
    assert len(idx) == 0 and idx.source == "no results database"
    assert not (tmp_path / "home" / "results.sqlite").exists()      # never created by decide
    from aipc.errors import AipcError

    with pytest.raises(AipcError):
        load_index(tmp_path / "missing.sqlite")                      # a database the user named must exist


def test_this_machine_without_torch():
    from aipc.hardware.local import local_devices

    had = "torch" in sys.modules
    devs = local_devices()
    assert devs and devs[0].name.startswith("this-machine:")
    if not had:
        assert "torch" not in sys.modules
