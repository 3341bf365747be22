"""The results database: real SQLite files, two real writer processes, export/import, bad paths."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import pytest

from aipc.bench.store import ResultsDB
from aipc.errors import AipcError
from helpers import run_cli


def _add(db, i=0, **kw):
    base = dict(kind="bench", scenario="decode", device="cpu", model="tiny", workload={"batch_size": 1, "prompt_tokens": 8},
                metrics={"median_s": 0.01 * (i + 1), "tokens_per_s": 100.0 / (i + 1)}, samples=[0.01, 0.02],
                context={"machine": {"fingerprint": "abc123", "host": "box"}})
    base.update(kw)
    return db.add_run(**base)


def test_add_and_filter_roundtrip(tmp_path):
    db = ResultsDB(tmp_path / "r.sqlite")
    a = _add(db, 0)
    b = _add(db, 1, device="cuda:0", scenario="train")
    c = db.add_run(kind="loadtest", scenario="chat", model="tiny", workload={}, metrics={"rps": 3.0}, samples={"lat": [1, 2]})
    assert len({a, b, c}) == 3
    assert [r["id"] for r in db.runs()] == [a, b, c]
    assert [r["id"] for r in db.runs(kind="bench", device="cuda:0")] == [b]
    r = db.runs(scenario="decode")[0]
    assert r["metrics"]["median_s"] == 0.01 and r["samples"] == [0.01, 0.02]
    assert r["machine"] == "abc123" and r["host"] == "box"
    assert db.runs(kind="loadtest")[0]["samples"] == {"lat": [1, 2]}
    assert [x["id"] for x in db.runs(machine="abc")] == [a, b]
    assert db.runs(ids=[b[:6]])[0]["id"] == b
    con = sqlite3.connect(tmp_path / "r.sqlite")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_default_path_is_in_aipc_home(_aipc_home):
    db = ResultsDB(None)
    assert db.path == _aipc_home / "results.sqlite"
    _add(db)
    assert ResultsDB().count() == 1


def test_non_finite_metric_is_refused_and_nothing_stored(tmp_path):
    db = ResultsDB(tmp_path / "r.sqlite")
    with pytest.raises(AipcError, match="metrics must be a dict"):
        _add(db, metrics=[1, 2])
    with pytest.raises(AipcError, match="samples must be a list"):
        _add(db, samples=3.0)
    _add(db, metrics={"x": float("nan")})  # NaN becomes null (JSON-safe), as the renderer does
    assert db.count() == 1 and db.runs()[0]["metrics"]["x"] is None


_WRITER = """
import sys
from aipc.bench.store import ResultsDB
db = ResultsDB(sys.argv[1])
for i in range(int(sys.argv[3])):
    db.add_run(kind="bench", scenario="decode", device=sys.argv[2], model="m", workload={"i": i},
               metrics={"median_s": 0.001}, samples=list(range(50)))
"""


def test_two_processes_writing_lose_no_row(tmp_path):
    path = tmp_path / "shared.sqlite"
    ResultsDB(path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(path), dev, "60"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for dev in ("p1", "p2")]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    db = ResultsDB(path)
    assert db.count() == 120
    for dev in ("p1", "p2"):
        assert sorted(r["workload"]["i"] for r in db.runs(device=dev)) == list(range(60))


_OPENER = """
import sys, time
from pathlib import Path
from aipc.bench.store import ResultsDB
folder, n, go = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
while not go.exists():
    time.sleep(0.001)
for i in range(n):
    ResultsDB(folder / f"new{i}.sqlite").add_run(kind="bench", model=sys.argv[4])
"""


def test_processes_creating_the_same_new_database_at_once(tmp_path):
    """Several processes opening one not-yet-existing file at the same moment: one creates the schema and
    none mistakes the half-created file for a foreign database (this raced before: CI found it)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    go, n = tmp_path / "go", 40
    procs = [subprocess.Popen([sys.executable, "-c", _OPENER, str(tmp_path), str(n), str(go), f"w{k}"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for k in range(4)]
    import time

    time.sleep(1.0)
    go.touch()
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()[-2000:]
    for i in range(n):
        runs = ResultsDB(tmp_path / f"new{i}.sqlite").runs()
        assert sorted(r["model"] for r in runs) == ["w0", "w1", "w2", "w3"]


def test_not_an_aipc_file_is_refused_untouched(tmp_path):
    text = tmp_path / "notes.db"
    text.write_text("my notes\n")
    with pytest.raises(AipcError, match="not an aipc results database"):
        ResultsDB(text)
    assert text.read_text() == "my notes\n"
    other = tmp_path / "other.sqlite"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE t (x)")
    con.execute("INSERT INTO t VALUES (1)")
    con.commit()
    con.close()
    before = other.read_bytes()
    with pytest.raises(AipcError, match="not an aipc results database"):
        ResultsDB(other)
    assert other.read_bytes() == before
    with pytest.raises(AipcError, match="is a folder"):
        ResultsDB(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_unwritable_path(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(AipcError, match="cannot"):
            ResultsDB(ro / "r.sqlite")
    finally:
        ro.chmod(0o700)


def test_unwritable_path_under_a_file(tmp_path):
    f = tmp_path / "plain"
    f.write_text("x")
    with pytest.raises(AipcError, match="cannot"):
        ResultsDB(f / "sub" / "r.sqlite")


def test_failed_transaction_leaves_db_unchanged(tmp_path):
    db = ResultsDB(tmp_path / "r.sqlite")
    rid = _add(db)
    with pytest.raises(AipcError, match="nothing was stored"):  # same id twice: the transaction fails whole
        with db._tx() as con:
            db._insert(con, {"id": "new1", "created_at": "t", "kind": "bench", "scenario": None, "device": None,
                             "model": None, "machine": None, "host": None, "workload": "{}", "metrics": "{}",
                             "samples": "[]", "context": "{}"}, ignore=False)
            con.execute("INSERT INTO runs (id, created_at, kind, workload, metrics, samples, context) "
                        "VALUES (?, 't', 'bench', '{}', '{}', '[]', '{}')", (rid,))
    assert [r["id"] for r in db.runs()] == [rid]


def test_export_import_json_jsonl_csv(tmp_path):
    src = ResultsDB(tmp_path / "a.sqlite")
    ids = [_add(src, i) for i in range(3)]
    for fmt in ("json", "jsonl"):
        out = tmp_path / f"runs.{fmt}"
        assert src.export(out) == 3
        dst = ResultsDB(tmp_path / f"b-{fmt}.sqlite")
        assert dst.import_runs(out) == (3, 0)
        assert dst.import_runs(out) == (0, 3)  # idempotent
        got = dst.runs()
        assert [r["id"] for r in got] == ids
        assert got[1]["metrics"] == src.runs()[1]["metrics"] and got[1]["context"] == src.runs()[1]["context"]
    src.export(tmp_path / "runs.csv")
    lines = (tmp_path / "runs.csv").read_text().splitlines()
    header = lines[0].split(",")
    assert len(lines) == 4 and "median_s" in header and "prompt_tokens" in header
    assert lines[2].split(",")[header.index("median_s")] == "0.02"


def test_bad_import_is_all_or_nothing(tmp_path):
    src = ResultsDB(tmp_path / "a.sqlite")
    for i in range(2):
        _add(src, i)
    out = tmp_path / "runs.jsonl"
    src.export(out)
    lines = out.read_text().splitlines()
    out.write_text(lines[0] + "\n" + json.dumps({"id": "x", "kind": "bench"}) + "\n" + lines[1] + "\n")
    dst = ResultsDB(tmp_path / "b.sqlite")
    with pytest.raises(AipcError, match="created_at"):
        dst.import_runs(out)
    assert dst.count() == 0
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(AipcError, match="not valid JSON"):
        dst.import_runs(tmp_path / "junk.json")
    assert dst.count() == 0


def test_results_cli_list_json_csv_compare_export_import(tmp_path):
    db = tmp_path / "r.sqlite"
    rdb = ResultsDB(db)
    _add(rdb, 0, device="cpu", metrics={"median_s": 0.4, "precision": "fp32"})
    _add(rdb, 1, device="cuda:0", metrics={"median_s": 0.1, "precision": "bf16"})
    code, out, err = run_cli("results", "--db", str(db), "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["count"] == 2 and {r["device"] for r in data["runs"]} == {"cpu", "cuda:0"}
    code, out, _ = run_cli("results", "--db", str(db), "--device", "cuda:0", "--json")
    assert [r["device"] for r in json.loads(out)["runs"]] == ["cuda:0"]
    code, out, _ = run_cli("results", "--db", str(db), "--csv")
    assert code == 0 and out.count("\n") == 3 and out.startswith("id,")
    code, out, _ = run_cli("results", "--db", str(db), "--compare", "--json")
    cmp = json.loads(out)
    assert code == 0 and cmp["speedup"][0]["reference"] == "cpu"
    assert cmp["speedup"][0]["r"]["cuda:0"] == pytest.approx(4.0)
    code, out, _ = run_cli("results", "--db", str(db), "--compare")
    assert code == 0 and "4.00x" in out
    code, out, _ = run_cli("results", "--db", str(db))
    assert code == 0 and "cuda:0" in out
    exp = tmp_path / "x.json"
    assert run_cli("results", "--db", str(db), "--export", str(exp))[0] == 0
    code, out, _ = run_cli("results", "--db", str(tmp_path / "new.sqlite"), "--import", str(exp), "--json")
    assert code == 0 and json.loads(out)["imported"] == 2


def test_results_cli_bad_input_exit_2(tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_text("hello")
    code, _, err = run_cli("results", "--db", str(bad))
    assert code == 2 and "not an aipc results database" in err and bad.read_text() == "hello"
    code, _, err = run_cli("results", "--db", str(tmp_path / "missing.sqlite"))
    assert code == 2 and "no results database" in err
    assert not (tmp_path / "missing.sqlite").exists()
    code, _, err = run_cli("results", "--db", str(tmp_path / "n.sqlite"), "--import", str(tmp_path / "none.json"))
    assert code == 2 and "not found" in err


def test_speedup_r_groups_by_machine_model_and_shape():
    from aipc.bench.compare import speedups

    def row(machine, dev, scen, t, **w):
        return {"machine": machine, "device": dev, "scenario": scen, "model": "m", "median_s": t, "precision": "x",
                "workload": {"batch_size": 1, "seq_len": 64, "prompt_tokens": 32, "gen_tokens": 8, "method": "full", **w}}

    rows = [row("A", "cpu", "decode", 0.30), row("A", "cuda:0", "decode", 0.03), row("A", "mps", "decode", 0.06),
            row("A", "cpu", "train", 2.0), row("A", "cuda:0", "train", 0.5, seq_len=128),  # other shape: no pair
            row("B", "cuda:0", "decode", 0.01),                                             # other machine: alone
            row("A", "cpu", "prefill", 1.0), row("A", "cuda:0", "prefill", 0.1), row("A", "cuda:0", "prefill", 0.2)]
    sp = speedups(rows)
    assert len(sp) == 2
    dec = next(s for s in sp if s["scenario"] == "decode")
    assert dec["reference"] == "cpu" and dec["r"] == {"cuda:0": pytest.approx(10.0), "mps": pytest.approx(5.0)}
    pre = next(s for s in sp if s["scenario"] == "prefill")
    assert pre["r"] == {"cuda:0": pytest.approx(5.0)}  # the latest run per device counts
    assert speedups([row("A", "cuda:0", "decode", 0.1), row("A", "mps", "decode", 0.2)])[0]["reference"] == "cuda:0"
