"""The results database on a real PostgreSQL server (tests/pg_fixtures.py): the same API and schema as
SQLite, concurrent writers, connections dropped mid-write, and bad URLs or passwords through the real CLI."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from aipc.bench.migrations import LATEST
from aipc.bench.store import ResultsDB
from aipc.errors import AipcError


def _add(db, i=0, **kw):
    base = dict(kind="bench", scenario="decode", device="cpu", model="tiny",
                workload={"batch_size": 1, "prompt_tokens": 8, "engine": "llamacpp", "weight_dtype": "q4_0"},
                metrics={"median_s": 0.01 * (i + 1)}, samples=[0.01, 0.02],
                context={"machine": {"fingerprint": "abc123", "host": "box",
                                     "profile": {"machine": {"cpu": {"model": "Test CPU 9000"}, "gpus": []}}}})
    base.update(kw)
    return db.add_run(**base)


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db(request, tmp_path):
    """The same tests on both dialects."""
    if request.param == "sqlite":
        return str(tmp_path / "r.sqlite")
    return request.getfixturevalue("pg_url")


def test_same_api_on_both_dialects(any_db, tmp_path):
    db = ResultsDB(any_db)
    a = _add(db, 0)
    b = _add(db, 1, device="cuda:0", scenario="train", workload={"weight_dtype": "bf16"})
    c = db.add_run(kind="loadtest", scenario="chat", model="tiny", workload={}, metrics={"rps": 3.0}, samples={"lat": [1]})
    assert [r["id"] for r in db.runs()] == [a, b, c]  # insertion order within the same second
    r = db.runs(scenario="decode")[0]
    assert (r["engine"], r["weight_format"], r["device_model"]) == ("llamacpp", "q4_0", "Test CPU 9000")
    assert db.runs(device="cuda:0")[0]["engine"] == "torch"  # the contract's default
    assert [x["id"] for x in db.runs(engine="llamacpp")] == [a]
    assert [x["id"] for x in db.runs(machine="ABC")] == [a, b]  # prefix, case-insensitive on both
    assert db.runs(ids=[b[:6]])[0]["id"] == b
    brief = db.runs(kind="bench", brief=True)
    assert "context" not in brief[0] and brief[0]["metrics"]["median_s"] == 0.01
    assert db.runs(kind="loadtest")[0]["samples"] == {"lat": [1]}
    with pytest.raises(AipcError, match="nothing was stored"):
        db.add_run(kind="bench", run_id=a)  # an id taken: refused, not silently dropped
    assert db.count() == 3 and db.schema_version() == LATEST
    out = tmp_path / "x.jsonl"
    db.export(out)
    other = ResultsDB(str(tmp_path / "other.sqlite"))
    assert other.import_runs(out) == (3, 0)
    assert ResultsDB(any_db).import_runs(out) == (0, 3)  # idempotent


def _columns_sqlite(path) -> dict:
    con = sqlite3.connect(path)
    cols = {t: [(r[1], r[2].upper(), bool(r[3])) for r in con.execute(f"PRAGMA table_info({t})")] for t in ("meta", "runs")}
    idx = sorted(r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='index' AND name NOT LIKE 'sqlite_%'"))
    return {"columns": cols, "indexes": idx}


def _columns_pg(server, dbname) -> dict:
    import psycopg

    with psycopg.connect(server.url(dbname)) as con:
        cols = {}
        for t in ("meta", "runs"):
            cols[t] = [(n, ty.upper(), nul == "NO") for n, ty, nul in con.execute(
                "SELECT column_name, data_type, is_nullable FROM information_schema.columns WHERE table_name = %s "
                "ORDER BY ordinal_position", (t,))]
        idx = sorted(r[0] for r in con.execute("SELECT indexname FROM pg_indexes WHERE tablename IN ('meta', 'runs') "
                                                "AND indexname NOT LIKE '%%_pkey'"))
    return {"columns": cols, "indexes": idx}


def test_schema_is_the_same_on_sqlite_and_postgresql(pg_server, tmp_path):
    name = pg_server.new_database()
    ResultsDB(pg_server.url(name))
    ResultsDB(tmp_path / "r.sqlite")
    lite, pg = _columns_sqlite(tmp_path / "r.sqlite"), _columns_pg(pg_server, name)
    pg_runs = pg["columns"]["runs"]
    assert pg_runs[-4][0] == "rowid" and pg_runs[-4][2]  # PostgreSQL's explicit insertion order
    pg["columns"]["runs"] = [c for c in pg_runs if c[0] != "rowid"]
    for t in ("meta", "runs"):  # same names, order, types and NOT NULL (SQLite reports a PRIMARY KEY as nullable)
        assert [(n, ty) for n, ty, _ in lite["columns"][t]] == [(n, ty) for n, ty, _ in pg["columns"][t]]
        assert [nn for n, _, nn in lite["columns"][t] if n not in ("id", "key")] == \
               [nn for n, _, nn in pg["columns"][t] if n not in ("id", "key")]
    assert [n for n, _, _ in lite["columns"]["runs"]][-3:] == ["engine", "weight_format", "device_model"]
    assert lite["indexes"] == pg["indexes"] == ["runs_by_device_model", "runs_by_engine", "runs_by_kind"]


def test_empty_or_foreign_postgres_database(pg_server):
    name = pg_server.new_database()
    with pytest.raises(AipcError, match="no aipc results"):
        ResultsDB(pg_server.url(name), create=False)
    assert pg_server.admin(f"SELECT count(*) FROM pg_database WHERE datname = '{name}'") == [(1,)]
    import psycopg

    with psycopg.connect(pg_server.url(name), autocommit=True) as con:
        assert con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema='public'").fetchone() == (0,)
        con.execute("CREATE TABLE runs (x int)")
        con.execute("INSERT INTO runs VALUES (7)")
    with pytest.raises(AipcError, match="not aipc's"):
        ResultsDB(pg_server.url(name))
    with psycopg.connect(pg_server.url(name), autocommit=True) as con:
        assert con.execute("SELECT * FROM runs").fetchall() == [(7,)]
        con.execute("CREATE TABLE meta (key text primary key, value text)")
        con.execute("INSERT INTO meta VALUES ('schema', 'someone-else')")
    with pytest.raises(AipcError, match="not an aipc results database"):
        ResultsDB(pg_server.url(name))


_WRITER = r"""
import json, sys, time
from pathlib import Path
from aipc.bench.store import ResultsDB
url, tag, n, go, pause = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]), float(sys.argv[5])
while not go.exists():
    time.sleep(0.001)
db = ResultsDB(url)
ids = []
for i in range(n):
    ids.append(db.add_run(kind="bench", scenario="decode", device="cpu", model=tag, workload={"i": i, "weight_dtype": "fp32"},
                          metrics={"median_s": 0.001 * (i + 1)}, samples=list(range(20))))
    time.sleep(pause)
print(json.dumps({"ids": ids, "reconnects": getattr(db, "reconnects", 0)}))
"""


def _writers(url, tags, n, tmp_path, pause=0.0):
    go = tmp_path / f"go-{time.monotonic_ns()}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = {t: subprocess.Popen([sys.executable, "-c", _WRITER, url, t, str(n), str(go), str(pause)], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for t in tags}
    return go, procs


def _collect(procs) -> dict:
    out = {}
    for t, p in procs.items():
        so, se = p.communicate(timeout=180)
        assert p.returncode == 0, f"{t}: {se[-3000:]}"
        out[t] = json.loads(so)
    return out


def _assert_each_run_once(db, got: dict, n: int) -> None:
    rows = db.runs(brief=True)
    assert len(rows) == len(got) * n
    by_id = {r["id"]: r for r in rows}
    for t, res in got.items():
        assert all(i in by_id for i in res["ids"]), f"{t}: rows lost"
        assert sorted(r["workload"]["i"] for r in rows if r["model"] == t) == list(range(n)), f"{t}: lost or doubled"


def test_processes_creating_and_writing_one_new_database_at_once(pg_url, tmp_path):
    """Four processes open a database without the schema at the same moment, then write 60 runs each."""
    go, procs = _writers(pg_url, [f"w{k}" for k in range(4)], 60, tmp_path)
    time.sleep(1.5)  # all four import and wait at the gate
    go.touch()
    got = _collect(procs)
    db = ResultsDB(pg_url)
    _assert_each_run_once(db, got, 60)
    assert db.schema_version() == LATEST


def _terminate_loop(server, dbname, stop, killed):
    import psycopg

    with psycopg.connect(server.admin_url, autocommit=True) as con:
        while not stop.is_set():
            rows = con.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND "
                               "application_name = 'aipc' AND pid <> pg_backend_pid()", (dbname,)).fetchall()
            killed[0] += sum(1 for (ok,) in rows if ok)
            stop.wait(0.1)


def test_backends_terminated_mid_write_lose_and_double_nothing(pg_server, tmp_path):
    """pg_terminate_backend on the writers' connections every 100 ms while two processes write: each run is
    stored exactly once, and the writers did reconnect (the retry path really ran)."""
    name = pg_server.new_database()
    url = pg_server.url(name)
    ResultsDB(url)
    go, procs = _writers(url, ["a", "b"], 120, tmp_path, pause=0.005)  # >= 0.6 s of writing, whatever the machine
    time.sleep(1.5)
    stop, killed = threading.Event(), [0]
    killer = threading.Thread(target=_terminate_loop, args=(pg_server, name, stop, killed))
    go.touch()
    killer.start()
    try:
        got = _collect(procs)
    finally:
        stop.set()
        killer.join()
    _assert_each_run_once(ResultsDB(url), got, 120)
    print("terminated", killed[0], "reconnects", {t: r["reconnects"] for t, r in got.items()})
    assert killed[0] >= 2 and sum(r["reconnects"] for r in got.values()) >= 2, (killed, got["a"]["reconnects"])


def test_commit_acknowledgement_lost_is_not_stored_twice(pg_server):
    """The server commits, the connection drops before the client hears it: the retry finds the run by its
    id (INSERT ... ON CONFLICT DO NOTHING) and the run is stored once."""
    from pg_proxy import Proxy

    name = pg_server.new_database()
    proxy = Proxy(pg_server.port)
    try:
        via = pg_server.url(name).replace(f":{pg_server.port}/", f":{proxy.port}/")
        db = ResultsDB(via)
        first = _add(db, 0)
        proxy.arm_commit_drop()
        rid = _add(db, 1, workload={"i": 1})
        assert proxy.dropped == 1 and db.reconnects >= 1
        direct = ResultsDB(pg_server.url(name))
        assert [r["id"] for r in direct.runs()] == [first, rid]
        proxy.refuse = True  # the server stays out of reach: a clear error after retry_s, not a hang
        db._drop()
        db.retry_s = 1.0
        with pytest.raises(AipcError, match="cannot connect"):
            _add(db, 2)
        assert direct.count() == 2
    finally:
        proxy.close()


def _cli(args, env_extra=None, home=None):
    env = {k: v for k, v in os.environ.items() if k not in ("AIPC_RESULTS_DB", "PGPASSWORD", "PGPASSFILE")}
    env.update({"PYTHONPATH": os.pathsep.join(sys.path), **(env_extra or {})})
    if home:
        env["HOME"] = str(home)
    p = subprocess.run([sys.executable, "-m", "aipc", *args], env=env, capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


def test_cli_bad_urls_and_passwords_one_line_exit_2(pg_server, tmp_path):
    name = pg_server.new_database()
    ResultsDB(pg_server.url(name))
    secret = pg_server.parts.password
    wrong = pg_server.url(name, password="Wr0ngSecret")
    cases = {
        "wrong password": (wrong, "password authentication failed"),
        "no such database": (pg_server.url("no_such_db"), "does not exist"),
        "bad port": (f"postgresql://u:{secret}@127.0.0.1:99999/x", "not a valid PostgreSQL URL"),
        "no database": (f"postgresql://u:{secret}@127.0.0.1:{pg_server.port}", "no database named"),
        "nothing listening": (f"postgresql://u:{secret}@127.0.0.1:1/x", "cannot connect"),
        "other scheme": ("mysql://u@127.0.0.1/x", "only file paths and PostgreSQL URLs"),
    }
    for what, (url, expect) in cases.items():
        code, out, err = _cli(["results", "--db", url])
        assert code == 2, (what, err)
        assert err.startswith("error: ") and err.count("\n") == 1 and expect in err, (what, err)
        assert "Traceback" not in err and secret not in err + out and "Wr0ngSecret" not in err + out, (what, err)
    code, _, err = _cli(["results"], {"AIPC_RESULTS_DB": wrong})  # the same through the environment
    assert code == 2 and "password authentication failed" in err and "Wr0ngSecret" not in err


def test_cli_credentials_from_pgpass_and_environment(pg_server, tmp_path):
    name = pg_server.new_database()
    db = ResultsDB(pg_server.url(name))
    rid = _add(db)
    bare = pg_server.url(name, with_password=False)
    secret = pg_server.parts.password
    code, out, err = _cli(["results", "--db", bare, "--json"], {"PGPASSWORD": secret})
    assert code == 0, err
    data = json.loads(out)
    assert [r["id"] for r in data["runs"]] == [rid] and secret not in out and data["db"] == bare
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"127.0.0.1:{pg_server.port}:{name}:{pg_server.parts.username}:{secret}\n")
    pgpass.chmod(0o600)
    code, out, err = _cli(["results", "--json"], {"PGPASSFILE": str(pgpass), "AIPC_RESULTS_DB": bare})
    assert code == 0, err
    assert json.loads(out)["count"] == 1
    code, out, err = _cli(["results", "--db", pg_server.url(name), "--json"])  # password in the URL: shown as ***
    assert code == 0 and secret not in out and json.loads(out)["db"] == pg_server.url(name, password="***")


def test_bench_and_validate_store_into_postgres(pg_url, tmp_path, one_torch_thread):
    """The real commands write to a PostgreSQL --db: a tiny bench and a tiny validation run."""
    from aipc.models.tiny import tiny_config
    from helpers import run_cli, tiny_profile_home

    folder = tmp_path / "tiny"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(tiny_config("llama")))
    with tiny_profile_home(tmp_path / "home"):
        code, out, err = run_cli("bench", str(folder / "config.json"), "--device", "cpu", "--scenario", "decode",
                                 "--quick", "--threads", "1", "--prompt-tokens", "8", "--gen-tokens", "2",
                                 "--max-time", "0.3", "--db", pg_url, "--json")
        assert code == 0, err
        bench = json.loads(out)
        code, out, err = run_cli("validate", str(folder), "--task", "infer", "--prompt-tokens", "8", "--gen-tokens", "2",
                                 "--db", pg_url, "--json")
        assert code == 0, err
        val = json.loads(out)
    secret = urlsplit_password(pg_url)
    assert bench["db"] == val["db"] and secret not in bench["db"] and "***" in bench["db"]
    db = ResultsDB(pg_url)
    b = db.runs(kind="bench")
    assert [r["id"] for r in b] == [bench["results"][0]["run_id"]]
    assert b[0]["engine"] == "torch" and b[0]["weight_format"] == "fp32" and b[0]["device_model"]
    v = db.runs(kind="validate")
    assert [r["id"] for r in v] == val["stored"] and v[0]["metrics"]["measured_peak_bytes"] > 0
    assert v[0]["machine"] == b[0]["machine"]


def urlsplit_password(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).password


def test_commands_refuse_a_bad_db_before_measuring(pg_server, tmp_path):
    """A wrong password fails at once (exit 2), before any load is sent, anything measured or decided."""
    wrong = pg_server.url(pg_server.new_database(), password="Wr0ngSecret")
    code, out, err = _cli(["loadtest", "http://127.0.0.1:9/", "-c", "1", "-n", "1", "--db", wrong])
    assert code == 2 and "password authentication failed" in err and "Wr0ngSecret" not in out + err, err
    code, out, err = _cli(["bench", "smollm2-135m", "--device", "cpu", "--db", wrong])
    assert code == 2 and "password authentication failed" in err and "Wr0ngSecret" not in out + err, err
    code, out, err = _cli(["report", "--db", wrong, "-o", str(tmp_path / "rep")])
    assert code == 2 and "password authentication failed" in err and not (tmp_path / "rep" / "index.html").exists()
    code, out, err = _cli(["decide", "--example"])
    (tmp_path / "needs.toml").write_text(out)
    code, out, err = _cli(["decide", str(tmp_path / "needs.toml"), "--db", wrong])
    assert code == 2 and "password authentication failed" in err and "Wr0ngSecret" not in out + err, err
