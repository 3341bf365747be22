"""Every machine of a team side by side: tokens/s, speedup R against a reference machine, $ per 1M tokens
(aipc results --compare, aipc report --team), on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from aipc.bench.store import ResultsDB
from aipc.errors import AipcError
from helpers import run_cli

RTX = "NVIDIA GeForce RTX 4090"
H100 = "NVIDIA H100 80GB HBM3"
HOURS_36_MONTHS = 36 * 8760 / 12


def _ctx(host, cpu, gpus=()):
    return {"machine": {"fingerprint": f"{abs(hash(host)) % 10**8:08d}{host}", "host": host,
                        "profile": {"machine": {"cpu": {"model": cpu}, "gpus": [{"device": d, "name": n} for d, n in gpus]}}}}


def _add(db, host, dev, med, tps, *, eng="torch", prec="fp32", cpu="Some CPU", gpus=(), ej=None, scen="decode"):
    return db.add_run(kind="bench", scenario=scen, device=dev, model="smollm2-135m",
                      workload={"batch_size": 1, "prompt_tokens": 128, "gen_tokens": 32, "engine": eng, "weight_dtype": prec},
                      metrics={"median_s": med, "tokens_per_s": tps, "precision": prec, "energy_per_token_j": ej},
                      samples=[med], context=_ctx(host, cpu, gpus))


def _team_db(target) -> ResultsDB:
    db = ResultsDB(target)
    _add(db, "laptop", "cpu", 0.08, 12.5)                                     # older laptop run: superseded below
    _add(db, "laptop", "cpu", 0.04, 25.0)
    _add(db, "laptop", "cpu", 0.02, 50.0, eng="llamacpp", prec="q4_0")
    _add(db, "ws", "cpu", 0.03, 33.3, cpu="AMD Ryzen", gpus=[("cuda:0", RTX)])
    _add(db, "ws", "cuda:0", 0.005, 200.0, cpu="AMD Ryzen", gpus=[("cuda:0", RTX)])
    _add(db, "ws", "cuda:0", 0.004, 250.0, prec="bf16", cpu="AMD Ryzen", gpus=[("cuda:0", RTX)], ej=0.36)
    _add(db, "rented", "cuda:0", 0.002, 500.0, prec="bf16", gpus=[("cuda:0", H100)])
    db.add_run(kind="loadtest", scenario="concurrency=1", model="m", metrics={"median_s": 1.0})  # not a bench: ignored
    return db


def test_team_table_r_and_costs(tmp_path):
    from aipc.report.team import team_data

    runs = _team_db(tmp_path / "t.sqlite").runs(brief=True)
    d = team_data(runs, reference="laptop", prices={"laptop": 1800.0})
    assert d["reference"] == "laptop" and d["machines"] == ["laptop", "rented", "ws"]
    assert [u["unit"] for u in d["units"]][:1] == ["laptop cpu"]  # the reference first
    assert [(r["engine"], r["precision"]) for r in d["rows"]] == [("llamacpp", "q4_0"), ("torch", "bf16"), ("torch", "fp32")]
    rows = {(r["engine"], r["precision"]): r for r in d["rows"]}
    fp32 = rows[("torch", "fp32")]["cells"]
    assert fp32["laptop cpu"]["n"] == 2 and fp32["laptop cpu"]["median_s"] == 0.04  # the latest run counts
    assert fp32["ws cuda:0"]["r"] == pytest.approx(0.04 / 0.005) and fp32["ws cpu"]["r"] == pytest.approx(0.04 / 0.03)
    bf16 = rows[("torch", "bf16")]["cells"]
    assert bf16["rented cuda:0"]["r"] is None  # the laptop ran no bf16 torch row ...
    assert bf16["rented cuda:0"]["r_vs_best"] == pytest.approx(0.02 / 0.002)  # ... R* against its fastest (llama.cpp)
    # $ per 1M tokens: the RTX 4090 box at its catalog price + host PC, 450 W board power; measured energy where metered
    fixed_ws = (1599 + 1000) / HOURS_36_MONTHS
    assert fp32["ws cuda:0"]["usd_per_mtok"] == pytest.approx((fixed_ws + 0.450 * 0.13) / (200 * 3600) * 1e6)
    assert fp32["ws cuda:0"]["energy"] == "catalog board power"
    assert bf16["ws cuda:0"]["usd_per_mtok"] == pytest.approx(fixed_ws / (250 * 3600) * 1e6 + 0.36 * 1e6 / 3.6e6 * 0.13)
    assert bf16["ws cuda:0"]["energy"] == "measured"
    # the H100 has no catalog purchase price: rented at the catalog's cheapest offer, power included
    assert d["costs"]["rented"]["kind"] == "rented" and "rented at $" in d["costs"]["rented"]["source"]
    rate_h = d["costs"]["rented"]["fixed_per_hour"]
    assert bf16["rented cuda:0"]["usd_per_mtok"] == pytest.approx(rate_h / (500 * 3600) * 1e6)
    assert fp32["laptop cpu"]["usd_per_mtok"] == pytest.approx(1800 / HOURS_36_MONTHS / (25 * 3600) * 1e6)
    half = team_data(runs, reference="laptop", prices={"laptop": 1800.0}, utilization=0.5)
    assert half["rows"][2]["cells"]["laptop cpu"]["usd_per_mtok"] == pytest.approx(2 * fp32["laptop cpu"]["usd_per_mtok"])
    bare = team_data(runs, rents={"ws": 1.0})
    assert bare["costs"]["laptop"]["fixed_per_hour"] is None and "--price laptop=" in bare["costs"]["laptop"]["source"]
    assert bare["rows"][2]["cells"]["ws cuda:0"]["usd_per_mtok"] == pytest.approx(1.0 / (200 * 3600) * 1e6)
    assert bare["reference"] == "laptop"  # default: the machine in most rows (2 of 3, as ws; first by name)
    for bad, match in (({"reference": "nobody"}, "matches no machine"), ({"prices": {"ghost": 1.0}}, "no machine 'ghost'"),
                       ({"prices": {"ws": float("nan")}}, "finite"), ({"utilization": 0.0}, "utilization")):
        with pytest.raises(AipcError, match=match):
            team_data(runs, **bad)


def test_results_compare_cli_and_bad_flags(tmp_path):
    db = tmp_path / "t.sqlite"
    _team_db(db)
    code, out, err = run_cli("results", "--db", str(db), "--compare", "--json", "--reference", "ws",
                             "--price", "laptop=1,800")
    assert code == 0, err
    team = json.loads(out)["team"]
    assert team["reference"] == "ws" and team["costs"]["laptop"]["source"].startswith("--price laptop=1800")
    code, out, err = run_cli("results", "--db", str(db), "--compare", "--reference", "laptop")
    assert code == 0 and "team: 3 machines, 4 devices" in out and "8.00x" in out and "R*" in out
    for args, match in ((["--reference", "zzz"], "matches no machine"), (["--price", "laptop=cheap"], "not a number"),
                        (["--rent", "nobody=2"], "no machine 'nobody'"), (["--utilization", "1.5"], "utilization")):
        code, _, err = run_cli("results", "--db", str(db), "--compare", *args)
        assert code == 2 and match in err and err.count("\n") == 1, (args, err)


def test_report_team_page_is_self_contained_and_escaped(tmp_path):
    db = _team_db(tmp_path / "t.sqlite")
    _add(db, "<script>alert(1)</script>", "cpu", 0.05, 20.0)
    out = tmp_path / "rep"
    code, text, err = run_cli("report", "--team", "--db", str(tmp_path / "t.sqlite"), "-o", str(out), "--json")
    assert code == 0, err
    paths = json.loads(text)
    page = (out / "team.html").read_text()
    assert paths["index"] == str(out / "team.html") and "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "default-src 'none'" in page
    assert 'data-chart="team-decode"' in page and "<svg" in page and "R*" in page
    data = json.loads((out / "team.json").read_text())
    assert data["schema"] == "aipc-team/1" and len(data["machines"]) == 4 and data["runs"] == 8
    assert not (out / "index.html").exists()  # --team measures nothing and writes only the team page
    code, _, err = run_cli("report", "--team", "--db", str(tmp_path / "none.sqlite"), "-o", str(out))
    assert code == 2 and "no results database" in err


def test_team_on_postgres_from_several_processes_and_redacted(pg_server, tmp_path):
    """Three 'machines' write one PostgreSQL database from their own processes; the team page and the CLI
    compare read them all; the password appears in no output and no file."""
    name = pg_server.new_database()
    url = pg_server.url(name)
    ResultsDB(url)
    code = ("import sys; sys.path.insert(0, sys.argv[3]); from test_team_compare import _add; "
            "from aipc.bench.store import ResultsDB; db = ResultsDB(sys.argv[1]); h = sys.argv[2]; "
            "_add(db, h, 'cpu', {'a': 0.04, 'b': 0.02, 'c': 0.01}[h], 1.0 / {'a': 0.04, 'b': 0.02, 'c': 0.01}[h])")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [subprocess.Popen([sys.executable, "-c", code, url, h, os.path.dirname(__file__)], env=env,
                              stderr=subprocess.PIPE, text=True) for h in "abc"]
    for p in procs:
        assert p.wait(120) == 0, p.stderr.read()
    secret = pg_server.parts.password
    code, out, err = run_cli("results", "--db", url, "--compare", "--json", "--reference", "a")
    assert code == 0, err
    team = json.loads(out)["team"]
    cells = team["rows"][0]["cells"]
    assert team["machines"] == ["a", "b", "c"] and cells["c cpu"]["r"] == pytest.approx(4.0) and secret not in out
    rep = tmp_path / "rep"
    code, text, err = run_cli("report", "--team", "--db", url, "-o", str(rep), "--reference", "b")
    assert code == 0, err
    assert secret not in text + err
    for f in rep.iterdir():
        assert secret not in f.read_text(), f
    assert json.loads((rep / "team.json").read_text())["db"] == pg_server.url(name, password="***")


def test_main_report_with_a_postgres_db_stores_no_password(pg_server, tmp_path):
    """aipc report --db URL: the reproduce command and report.json name the database with *** for the password."""
    from helpers import tiny_profile_home

    name = pg_server.new_database()
    url, secret = pg_server.url(name), pg_server.parts.password
    rep = tmp_path / "rep"
    with tiny_profile_home(tmp_path / "home"):
        code, out, err = run_cli("report", "--no-bench", "--db", url, "-o", str(rep), "--json")
    assert code == 0, err
    assert secret not in out + err
    files = {f.name: f.read_text() for f in rep.iterdir()}
    assert "index.html" in files and "report.json" in files
    for fname, text in files.items():
        assert secret not in text, fname
    assert json.loads(files["report.json"])["argv"][-2:] == ["--db", pg_server.url(name, password="***")]
    assert "***@127.0.0.1" in files["index.html"]
