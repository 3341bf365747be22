"""``aipc bench --engine openvino`` for real on the CPU (a tiny IR exported in the session): prefill and
decode with the torch path's statistics, stored with engine and weight format, then ``aipc calibrate``
fits OpenVINO's own factors (contract 3: they never calibrate torch)."""

from __future__ import annotations

import json

import pytest
from helpers import run_cli, tiny_profile_home

ov = pytest.importorskip("openvino", reason="OpenVINO is not installed (./setup.sh installs it)")


def test_bench_stores_openvino_runs_and_calibrates_them_apart(ov_ir, tmp_path):
    db = tmp_path / "r.sqlite"
    with tiny_profile_home(tmp_path):
        code, out, err = run_cli("bench", str(ov_ir["int4"]), "--engine", "openvino", "--precision", "int4",
                                 "-s", "prefill,decode", "--quick", "--threads", "1", "--prompt-tokens", "16",
                                 "--gen-tokens", "8", "--db", str(db), "--json")
        assert code == 0, err
        r = json.loads(out)
        assert (r["engine"], r["weight_format"]) == ("openvino", "int4")
        rows = {x["scenario"]: x for x in r["results"]}
        assert set(rows) == {"prefill", "decode"}
        for x in rows.values():
            assert x["engine"] == "openvino" and x["weight_format"] == "int4" and x["workload"]["engine"] == "openvino"
            assert x["run_id"] and x["cpu_threads"] == 1
        dec = rows["decode"]
        assert 0 < dec["mbu_measured"] < 2 and dec["tokens_per_s"] > 0  # against aipc hw's measured bandwidth
        # bytes per step from the estimator's OpenVINO rules (exact for this IR, tests/test_openvino_estimate.py)
        assert dec["bytes_per_sample"] > 0
        code, out, err = run_cli("calibrate", "--db", str(db), "--threads", "1", "--json")
        assert code == 0, err
        from aipc.estimate import calibrate

        got = calibrate.lookup_decode("this-machine:cpu", 1, engine="openvino", weight_format="int4")
        assert got is not None and got[0] > 0
        assert calibrate.lookup_decode("this-machine:cpu", 1, engine="torch") is None  # never torch's
