"""A team's shared PostgreSQL results database: concurrent writers and the side-by-side comparison.

1. Writers: 8 processes store 200 runs each into one PostgreSQL database at once through
   ``ResultsDB.add_run`` (one transaction per run, retried idempotently on a lost connection); the
   runs carry a real bench run's size (workload, ~40 metrics, samples, a machine profile in the
   context). Timed from the moment all 8 (imported, waiting at a gate) are released until the last
   exits, connection opening included. Checked after: 1,600 rows, every (writer, i) exactly once.
   Peer beside it: the same 8 x 200 rows through plain psycopg (one INSERT per transaction, no
   checks, no retry), the floor for the same work on the same server.
2. Compare: 10,000 stored runs of 20 machines (imported in one transaction), then
   ``aipc results --db URL --compare`` end to end in a fresh process (median of 3), beside the peer
   floor: one psql-like fetch of the same columns through psycopg.

The server is a throw-away one started here (tests/pg_server.py: initdb in a temporary folder,
127.0.0.1 only, fsync ON as in production), or ``--url`` (a superuser URL; a database is created).

    .venv/bin/python benchmarks/bench_team_db.py [--writers 8] [--runs 200] [--compare-runs 10000] [--write]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

WRITER = r"""
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[5])
from bench_team_db import run_payload
mode, url, tag, n, go = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), Path(sys.argv[6])
payloads = [run_payload(tag, i) for i in range(n)]
import psycopg  # imported before the gate by both (aipc imports it on its first PostgreSQL URL)
if mode == "aipc":
    from aipc.bench.store import ResultsDB
else:
    from aipc.bench.store import encode_run, _STORED
while not go.exists():
    time.sleep(0.001)
if mode == "aipc":
    db = ResultsDB(url)
    ids = [db.add_run(**p) for p in payloads]
else:  # the floor: the same rows, one INSERT per transaction, plain psycopg
    con = psycopg.connect(url, autocommit=True)
    sql = f"INSERT INTO runs ({', '.join(_STORED)}) VALUES ({', '.join(['%s'] * len(_STORED))})"
    ids = []
    for p in payloads:
        row = encode_run(**p)
        with con.transaction():
            con.execute(sql, tuple(row[f] for f in _STORED))
        ids.append(row["id"])
print(json.dumps(ids))
"""


def run_payload(tag: str, i: int, host: str | None = None, scenario: str = "decode", device: str = "cpu") -> dict:
    """A run the size of a real ``aipc bench`` run."""
    metrics = {f"metric_{k}": 0.001 * k * (i + 1) for k in range(36)}
    metrics.update({"median_s": 0.01 * (1 + (i % 7)), "tokens_per_s": 100.0 / (1 + (i % 7)), "precision": "fp32",
                    "cpu_threads": 2})
    profile = {"machine": {"cpu": {"model": f"CPU of {host or tag}", "features": {f"f{k}": True for k in range(40)}},
                           "gpus": [{"device": "cuda:0", "name": "NVIDIA GeForce RTX 4090"}] if device != "cpu" else []},
               "devices": [{"device": "cpu", "peaks": {f"p{k}": 1e12 for k in range(20)}}]}
    return {"kind": "bench", "scenario": scenario, "device": device, "model": f"model-{i % 3}",
            "workload": {"model": f"model-{i % 3}", "task": "infer", "batch_size": 1 + i % 4, "prompt_tokens": 128,
                         "gen_tokens": 32, "engine": "torch", "weight_dtype": "fp32", "writer": tag, "i": i},
            "metrics": metrics, "samples": {"samples_s": [0.01 + k * 1e-5 for k in range(50)]},
            "context": {"machine": {"fingerprint": f"fp-{host or tag}", "host": host or tag, "profile": profile}}}


def _writers(mode: str, url: str, k: int, n: int) -> tuple[float, dict]:
    go = Path(tempfile.gettempdir()) / f"aipc-bench-go-{uuid.uuid4().hex}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")])}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, mode, url, f"w{j}", str(n), str(ROOT / "benchmarks"),
                               str(go)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for j in range(k)]
    time.sleep(3.0 + 0.5 * k)  # every writer imported and waiting at the gate
    t0 = time.perf_counter()
    go.touch()
    outs = {f"w{j}": p.communicate(timeout=600) for j, p in enumerate(procs)}
    wall = time.perf_counter() - t0
    go.unlink()
    for j, p in enumerate(procs):
        if p.returncode != 0:
            raise SystemExit(f"writer w{j} failed: {outs[f'w{j}'][1][-2000:]}")
    return wall, {t: json.loads(o) for t, (o, _) in outs.items()}


def _check(url: str, ids: dict, n: int) -> str:
    from aipc.bench.store import ResultsDB

    rows = ResultsDB(url).runs(brief=True)
    expect = len(ids) * n
    per = {}
    for r in rows:
        per.setdefault(r["workload"]["writer"], []).append(r["workload"]["i"])
    ok = len(rows) == expect and all(sorted(per.get(t, [])) == list(range(n)) for t in ids) and \
        {r["id"] for r in rows} == {i for v in ids.values() for i in v}
    return f"{len(rows)} rows of {expect}, {'none lost or duplicated' if ok else 'MISMATCH'}"


def _new_db(admin_url: str) -> str:
    import psycopg

    name = "bench_" + uuid.uuid4().hex[:10]
    with psycopg.connect(admin_url, autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + "/" + name


def _store_team(url: str, total: int, machines: int) -> None:
    """``total`` runs of ``machines`` hosts (half with a GPU) stored through an aipc export/import."""
    from aipc.bench.export import write_export
    from aipc.bench.store import RUN_FIELDS, ResultsDB, encode_run

    runs = []
    for i in range(total):
        m = i % machines
        dev = "cuda:0" if m % 2 and i % 3 == 0 else "cpu"
        row = encode_run(**run_payload(f"m{m}", i, host=f"machine-{m:02d}", scenario=("decode", "prefill")[i % 2],
                                       device=dev), created_at=f"2026-12-01T00:{i // 600 % 60:02d}:{i // 10 % 60:02d}+00:00")
        runs.append({k: (json.loads(row[k]) if k in ("workload", "metrics", "samples", "context") else row[k])
                     for k in RUN_FIELDS})
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "team.jsonl"
        write_export(path, runs)
        ResultsDB(url).import_runs(path)


def _compare_cli(url: str, reps: int) -> tuple[list[float], list[float], str]:
    """Wall times and CPU times (user + system, of the aipc process alone) of the CLI compare."""
    import resource

    times, cpu, out = [], [], ""
    for _ in range(reps):
        r0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "aipc", "results", "--db", url, "--compare", "--json"],
                           capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
        times.append(time.perf_counter() - t0)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
        if p.returncode != 0:
            raise SystemExit(f"aipc results --compare failed: {p.stderr[-2000:]}")
        out = p.stdout
    return times, cpu, out


def _peer_fetch(url: str) -> float:
    """The floor: fetching the same columns of the same runs with plain psycopg, no processing."""
    import psycopg

    t0 = time.perf_counter()
    with psycopg.connect(url) as con:
        con.execute("SELECT id, created_at, kind, scenario, device, model, machine, host, workload, metrics, engine, "
                    "weight_format, device_model FROM runs WHERE kind = 'bench' ORDER BY created_at, rowid").fetchall()
    return time.perf_counter() - t0


def cpu_flags() -> str:
    try:
        flags = next(ln for ln in open("/proc/cpuinfo") if ln.startswith("flags")).split(":", 1)[1].split()
    except (OSError, StopIteration):
        return "unknown"
    keep = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if f in flags]
    return ", ".join(keep) or "none of avx2/avx512/amx"


def run(url: str, a) -> list[str]:
    import psycopg

    from aipc.bench.store import ResultsDB

    load0 = os.getloadavg()
    lines = []
    for mode in ("aipc", "peer"):
        db = _new_db(url)
        ResultsDB(db)  # the schema, as a team's first 'aipc bench' creates it
        wall, ids = _writers(mode, db, a.writers, a.runs)
        lines.append(f"{a.writers} writers x {a.runs} runs, {mode:4}: {wall:5.2f} s wall, "
                     f"{a.writers * a.runs / wall:6.0f} runs/s; {_check(db, ids, a.runs)}")
    t_aipc, t_peer = (float(ln.split(": ")[1].split(" s")[0]) for ln in lines[-2:])
    lines.append(f"writers: aipc / plain psycopg = {t_aipc / t_peer:.2f}x (target: aipc <= 30 s)")
    db = _new_db(url)
    t0 = time.perf_counter()
    _store_team(db, a.compare_runs, 20)
    lines.append(f"stored {a.compare_runs} runs of 20 machines (one import transaction): {time.perf_counter() - t0:.1f} s")
    times, cpu, out = _compare_cli(db, 3)
    team = json.loads(out)["team"]
    peer = statistics.median(_peer_fetch(db) for _ in range(3))
    lines.append(f"aipc results --compare --json over {team['runs']} runs of {len(team['machines'])} machines, "
                 f"{len(team['rows'])} rows x {len(team['units'])} devices: median {statistics.median(times):.2f} s "
                 f"(runs: {', '.join(f'{t:.2f}' for t in times)}; target <= 2 s)")
    t_imp = _import_time()
    lines.append(f"  CPU time of the aipc process: median {statistics.median(cpu):.2f} s; python + aipc import alone: "
                 f"{t_imp:.2f} s wall; plain psycopg fetch of the same rows: {peer:.2f} s")
    with psycopg.connect(url) as con:
        ver = con.execute("SHOW server_version").fetchone()[0]
    load1 = os.getloadavg()
    lines.append(f"machine: {platform.machine()}, {os.cpu_count()} CPUs ({cpu_flags()}), Python "
                 f"{platform.python_version()}, PostgreSQL {ver}, psycopg {psycopg.__version__}; 1-min load average "
                 f"{load0[0]:.1f} before, {load1[0]:.1f} after")
    return lines


def _import_time() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import aipc.cli"], env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
                   check=True)
    return time.perf_counter() - t0


def write_section(lines: list[str], argv: list[str]) -> None:
    from aipc.mdsection import replace_section

    body = ("A team's shared PostgreSQL results database: concurrent writers (each run one transaction, retried "
            "idempotently on a lost connection) beside plain psycopg inserts of the same rows, and "
            "`aipc results --compare` end to end over many machines' runs beside a plain fetch of the same rows. "
            "Throw-away server from `tests/pg_server.py` (fsync on), on the same machine. Wall times grow with "
            "the machine's load (last line); the CPU time of the aipc process much less.\n\n"
            f"Command: `.venv/bin/python benchmarks/bench_team_db.py {' '.join(argv)}`\n\n```\n" + "\n".join(lines)
            + "\n```\n")
    replace_section(ROOT / "docs" / "benchmarks.md", "## Team results database", body)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--writers", type=int, default=8)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--compare-runs", type=int, default=10_000)
    ap.add_argument("--url", help="superuser URL of a server to use instead of starting one")
    ap.add_argument("--write", action="store_true", help="write the result into docs/benchmarks.md")
    a = ap.parse_args()
    if a.url:
        lines = run(a.url, a)
    else:
        import pg_server

        root = tempfile.mkdtemp(prefix="aipc-bench-pg-")
        try:
            lines = run(pg_server.start(root, fast=False).url(), a)
        finally:
            pg_server.stop(root)
    print("\n".join(lines))
    if a.write:
        write_section(lines, [x for x in sys.argv[1:] if x != "--write"] + ["--write"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
