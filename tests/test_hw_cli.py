"""`aipc hw` on the command line: one JSON object with peaks, cache reuse, export, bad input."""

from __future__ import annotations

import json

import pytest
from helpers import run_cli

pytest.importorskip("torch")


def test_hw_quick_json_then_cached_table_and_export(tmp_path, monkeypatch):
    from aipc.hardware import conditions

    # aipc hw re-measures a profile taken on a busy machine once the machine is quiet
    # (tests/test_hw_conditions.py); here the cache is under test, so the machine never turns quiet
    monkeypatch.setattr(conditions, "quiet_now", lambda cores, interval_s=0.5: (False, None, None))
    code, out, err = run_cli("hw", "--quick", "--json", "--export", str(tmp_path / "me.json"))
    assert code == 0, err
    d = json.loads(out)  # exactly one JSON object on stdout
    assert isinstance(d, dict) and d["cached"] is False and d["mode"] == "quick"
    assert d["machine"]["cpu"]["logical_cores"] >= 1 and d["machine"]["ram_total_bytes"] > 0
    cpu = d["devices"][0]
    assert cpu["device"] == "cpu" and cpu["threads"] >= 1
    fp32 = cpu["gemm"]["fp32"]
    assert fp32["flops_per_call"] == 2 * fp32["n"] ** 3 and fp32["n"] >= 128
    # median FLOP/s and median seconds per call describe the same samples
    assert fp32["flops_s"]["median"] * fp32["flops_s"]["seconds_per_call"] == pytest.approx(fp32["flops_per_call"], rel=0.25)
    assert cpu["bandwidth"]["copy"]["bytes_s"]["median"] > 0.1e9
    spec = d["device_specs"][0]
    assert spec["name"] == "this-machine:cpu" and spec["measured"] is True
    assert spec["peak_flops"]["fp32"]["value"] == fp32["flops_s"]["median"]
    exported = json.loads((tmp_path / "me.json").read_text())
    assert exported["devices"]["this-machine:cpu"]["peak_flops"]["fp32"]["value"] == fp32["flops_s"]["median"]

    code, out, err = run_cli("hw", "--quick")  # same machine, same stack: served from the cache
    assert code == 0, err
    flat = " ".join(out.split())  # rich wraps long lines
    assert f"cached from {d['measured_at']}" in flat
    assert f"fp32 GEMM {fp32['n']}x{fp32['n']}" in flat and "memory copy" in flat
    assert "bandwidth counts read + write bytes" in flat

    code, out, _ = run_cli("hw", "--quick", "--json")
    again = json.loads(out)
    assert again["cached"] is True and again["devices"] == d["devices"]


def test_hw_bad_export_path_exits_2_before_measuring(tmp_path):
    code, out, err = run_cli("hw", "--quick", "--export", str(tmp_path / "me.csv"))
    assert code == 2 and out == ""
    assert err.startswith("error: --export") and ".toml or .json" in err and len(err.strip().splitlines()) == 1
    from aipc.paths import profiles_dir

    assert not list(profiles_dir().iterdir()), "measured although the export path was bad"


def test_hw_listed_in_help():
    code, out, _ = run_cli("hw", "--help")
    assert code == 0 and "--quick" in out and "--refresh" in out and "--export" in out
