"""Versioned migrations: a schema-1 SQLite file written by aipc before migrations existed
(tests/data/results-v1.sqlite) migrates in place and loses nothing; so does a schema-1 PostgreSQL database."""

from __future__ import annotations

import dataclasses
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aipc.bench import migrations as MG
from aipc.bench.store import RUN_FIELDS, ResultsDB
from aipc.errors import AipcError

V1 = Path(__file__).parent / "data" / "results-v1.sqlite"
EXPECTED = {  # id suffix -> (engine, weight_format, device_model) backfilled from each run's JSON
    "1": ("torch", "fp32", "Intel(R) Core(TM) Ultra 7 155H"),
    "2": ("torch", "bf16", "NVIDIA GeForce RTX 4090"),
    "3": ("llamacpp", "q4_k_m", None),
    "4": ("torch", None, None),
    "5": ("torch", None, None),
}


def _raw(path) -> tuple[list, dict]:
    con = sqlite3.connect(path)
    try:
        rows = con.execute(f"SELECT rowid, {', '.join(RUN_FIELDS)} FROM runs ORDER BY rowid").fetchall()
        return rows, dict(con.execute("SELECT key, value FROM meta").fetchall())
    finally:
        con.close()


def _copy_v1(tmp_path) -> Path:
    dst = tmp_path / "old.sqlite"
    shutil.copyfile(V1, dst)
    return dst


def test_v1_file_migrates_in_place_losslessly(tmp_path):
    path = _copy_v1(tmp_path)
    rows_before, meta_before = _raw(path)
    assert meta_before["version"] == "1" and len(rows_before) == 5
    db = ResultsDB(path, create=False)
    assert db.schema_version() == MG.LATEST == 2
    rows_after, meta_after = _raw(path)
    assert rows_after == rows_before  # every original column of every run, byte for byte, same rowids
    assert meta_after["created_at"] == meta_before["created_at"] and meta_after["schema"] == "aipc-results"
    assert meta_after["migration_2"].endswith(MG.MIGRATIONS[1].name)
    got = {r["id"][-1]: (r["engine"], r["weight_format"], r["device_model"]) for r in db.runs()}
    assert got == EXPECTED
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert {r[1] for r in con.execute("PRAGMA index_list(runs)")} >= {"runs_by_engine", "runs_by_device_model"}
    con.close()
    first = db.runs()[0]
    assert first["metrics"]["nan_became"] is None and first["samples"]["samples_s"] == [0.02, 0.021, 0.022]
    assert db.runs(engine="llamacpp")[0]["metrics"]["note"] == "ünïcode ✓"
    ResultsDB(path)  # a second open migrates nothing
    assert _raw(path)[1]["migration_2"] == meta_after["migration_2"]
    new = db.add_run(kind="bench", device="cpu", workload={"engine": "openvino", "weight_dtype": "int8"})
    assert db.runs(ids=[new])[0]["engine"] == "openvino"


def test_failed_migration_leaves_the_file_as_it_was(tmp_path, monkeypatch):
    path = _copy_v1(tmp_path)
    before = _raw(path)

    def boom(q):
        raise sqlite3.OperationalError("disk I/O error (injected)")

    broken = tuple(dataclasses.replace(m, backfill=boom) if m.version == 2 else m for m in MG.MIGRATIONS)
    monkeypatch.setattr(MG, "MIGRATIONS", broken)
    with pytest.raises(AipcError, match="injected"):
        ResultsDB(path)
    assert _raw(path) == before
    con = sqlite3.connect(path)
    assert "engine" not in {r[1] for r in con.execute("PRAGMA table_info(runs)")}  # the DDL rolled back too
    con.close()


def test_newer_schema_is_refused_untouched(tmp_path):
    path = _copy_v1(tmp_path)
    con = sqlite3.connect(path)
    con.execute("UPDATE meta SET value = '99' WHERE key = 'version'")
    con.commit()
    con.close()
    before = _raw(path)
    with pytest.raises(AipcError, match="newer aipc"):
        ResultsDB(path)
    assert _raw(path) == before


_OPEN = """
import sys, time
from pathlib import Path
from aipc.bench.store import ResultsDB
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.001)
db = ResultsDB(sys.argv[1])
db.add_run(kind="bench", model=sys.argv[3], workload={"weight_dtype": "fp16"})
"""


def test_processes_opening_a_v1_file_at_once_migrate_it_once(tmp_path):
    path = _copy_v1(tmp_path)
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [subprocess.Popen([sys.executable, "-c", _OPEN, str(path), str(go), f"p{k}"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for k in range(4)]
    time.sleep(1.0)
    go.touch()
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-2000:]
    db = ResultsDB(path)
    runs = db.runs()
    assert len(runs) == 9 and sorted(r["model"] for r in runs[5:]) == ["p0", "p1", "p2", "p3"]
    assert {r["weight_format"] for r in runs[5:]} == {"fp16"}
    assert {r["id"][-1]: (r["engine"], r["weight_format"], r["device_model"]) for r in runs[:5]} == EXPECTED


def test_v1_postgres_database_migrates(pg_server):
    """A PostgreSQL database at schema 1 (made with migration 1 alone, rows in the v1 layout) migrates."""
    import json

    import psycopg

    name = pg_server.new_database()
    rows, _ = _raw(V1)
    with psycopg.connect(pg_server.url(name)) as con:
        q = MG.Q(con, "postgresql")
        MG.migrate(q, 0, upto=1)
        q.many(f"INSERT INTO runs ({', '.join(RUN_FIELDS)}) VALUES ({', '.join('?' * len(RUN_FIELDS))})",
               [r[1:] for r in rows])
    db = ResultsDB(pg_server.url(name), create=False)
    assert db.schema_version() == 2
    got = db.runs()
    assert {r["id"][-1]: (r["engine"], r["weight_format"], r["device_model"]) for r in got} == EXPECTED
    assert [(r["id"], r["created_at"], json.dumps(r["metrics"])) for r in got] == \
           [(r[1], r[2], json.dumps(json.loads(r[10]))) for r in rows]
