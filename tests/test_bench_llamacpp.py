"""aipc bench --engine llamacpp for real: a tiny GGUF (converted in the session by llama.cpp's own
converter and quantizer) measured through the engine runner, stored with engine and weight format,
compared side by side with torch runs by `aipc results --compare`, and fitted per engine and format
by `aipc calibrate`."""

import json
import sqlite3

import pytest

from helpers import run_cli, tiny_profile_home

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def bench_db(tiny_ggufs, tiny_llama_dir, tmp_path_factory):
    home = tmp_path_factory.mktemp("benchdb")
    db = home / "runs.sqlite"
    common = ("--scenario", "prefill,decode,generate", "--quick", "--prompt-tokens", "16", "--gen-tokens", "4",
              "--threads", "1", "--db", str(db), "--json")
    out = {}
    with tiny_profile_home(home):  # calibrate needs this machine's aipc hw profile beside the runs
        for key in ("q8_0", "q4_k_m"):
            code, stdout, err = run_cli("bench", str(tiny_ggufs[key]), "--engine", "llamacpp", *common)
            assert code == 0, err
            out[key] = json.loads(stdout)
        code, stdout, err = run_cli("bench", str(tiny_ggufs["qwen_dir"]), "--engine", "torch", "--precision",
                                    "fp32", *common)
        assert code == 0, err
        out["torch"] = json.loads(stdout)
    return db, out


def test_every_scenario_measured_with_the_torch_paths_statistics(bench_db):
    _, out = bench_db
    rows = out["q8_0"]["results"]
    assert sorted(r["scenario"] for r in rows) == ["decode", "generate", "prefill"]
    for r in rows:
        assert r["engine"] == "llamacpp" and r["weight_format"] == "q8_0"
        assert r["n"] >= 3 and r["median_s"] > 0
        assert r["ci95_low_s"] <= r["median_s"] <= r["ci95_high_s"]
    decode = next(r for r in rows if r["scenario"] == "decode")
    assert decode["tokens_per_s"] > 0 and 0 < decode["mbu_measured"] < 1.5
    gen = next(r for r in rows if r["scenario"] == "generate")
    ttft = [v for k, v in gen.items() if k.startswith("ttft") and isinstance(v, float)]
    assert ttft and min(ttft) > 0 and gen["tpot_s"] > 0


def test_runs_are_stored_with_engine_and_weight_format_columns(bench_db):
    db, _ = bench_db
    with sqlite3.connect(db) as con:
        got = sorted(set(con.execute("SELECT engine, weight_format FROM runs").fetchall()))
    assert got == [("llamacpp", "q4_k_m"), ("llamacpp", "q8_0"), ("torch", "fp32")]


def test_results_compare_puts_engines_side_by_side(bench_db):
    db, _ = bench_db
    code, stdout, err = run_cli("results", "--db", str(db), "--compare", "--json")
    assert code == 0, err
    text = stdout
    for word in ("llamacpp", "q8_0", "q4_k_m", "torch", "fp32"):
        assert word in text


def test_calibrate_fits_each_engine_and_format_apart(bench_db, monkeypatch):
    db, _ = bench_db
    monkeypatch.setenv("AIPC_HOME", str(db.parent))
    code, stdout, err = run_cli("calibrate", "--db", str(db), "--json")
    assert code == 0, err
    text = json.dumps(json.loads(stdout))
    assert "llamacpp" in text and "q8_0" in text and "q4_k_m" in text


def test_a_gguf_type_with_the_torch_engine_is_one_error_line(tiny_ggufs):
    code, _, err = run_cli("bench", str(tiny_ggufs["qwen_dir"]), "--engine", "torch", "--precision", "q4_k_m",
                           "--scenario", "decode", "--no-store")
    assert code == 2
    assert err.strip().startswith("error:") and len(err.strip().splitlines()) == 1
    assert "llamacpp" in err
