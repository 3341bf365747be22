"""The results database: every measured run with its full context, in one SQLite file.

    from aipc.bench.store import ResultsDB
    db = ResultsDB(None)                     # aipc.paths.default_db()
    run_id = db.add_run(kind="bench", scenario="decode", device="cpu", model="smollm2-135m",
                        workload={...}, metrics={...}, samples=[...], context={...})
    db.runs(kind="bench", device="cpu")      # -> list of dicts, oldest first

Safe with concurrent writers: WAL journal, a 30 s busy timeout, and every write in one
``BEGIN IMMEDIATE`` transaction, so a run is stored whole or not at all. Run ids are random UUIDs so
runs exported from one machine import on another without clashing (importing twice is a no-op).
A file that is not an aipc database, or a path that cannot be written, is an AipcError (exit 2)
and the file is left untouched. Import-light: no torch.
"""

from __future__ import annotations

import datetime as _dt
import json
import sqlite3
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aipc.errors import AipcError

SCHEMA_NAME = "aipc-results"
SCHEMA_VERSION = 1
RUN_FIELDS = ("id", "created_at", "kind", "scenario", "device", "model", "machine", "host",
              "workload", "metrics", "samples", "context")
_JSON_FIELDS = ("workload", "metrics", "samples", "context")

_DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    kind TEXT NOT NULL,
    scenario TEXT,
    device TEXT,
    model TEXT,
    machine TEXT,
    host TEXT,
    workload TEXT NOT NULL,
    metrics TEXT NOT NULL,
    samples TEXT NOT NULL,
    context TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_kind ON runs (kind, device, model, scenario);
"""


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _dumps(value: Any, what: str) -> str:
    from aipc.render import to_jsonable

    try:
        return json.dumps(to_jsonable(value), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise AipcError(f"cannot store {what}: {e}; pass plain numbers, strings, lists and dicts") from None


class ResultsDB:
    """One SQLite results file. Each call opens its own short connection (safe across processes)."""

    def __init__(self, path: str | Path | None = None, *, create: bool = True):
        if path is None:
            from aipc.paths import default_db

            path = default_db()
        self.path = Path(path).expanduser()
        if self.path.is_dir():
            raise AipcError(f"{self.path} is a folder; pass a database file path such as {self.path / 'results.sqlite'}")
        if not self.path.exists() and not create:
            raise AipcError(f"no results database at {self.path}; run 'aipc bench' first or pass --db PATH")
        self._init()

    # ---- connection ------------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        try:
            if not self.path.parent.exists():
                self.path.parent.mkdir(parents=True, exist_ok=True)
            con = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        except (sqlite3.Error, OSError) as e:
            raise AipcError(f"cannot open results database {self.path}: {e}; pass a writable path with --db") from None
        con.execute("PRAGMA busy_timeout = 30000")
        return con

    @contextmanager
    def _tx(self, write: bool = True):
        con = self._connect()
        try:
            con.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            yield con
            con.execute("COMMIT")
        except BaseException as e:
            try:
                con.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            if isinstance(e, sqlite3.Error):
                raise AipcError(f"cannot write results database {self.path}: {e}; nothing was stored; "
                                "pass a writable path with --db") from None
            raise
        finally:
            con.close()

    def _init(self) -> None:
        """Create the schema in a new or empty file; refuse any other file without touching it.

        The check and the creation run in one ``BEGIN IMMEDIATE`` transaction, so processes that
        open a new file at the same moment serialize: one creates the schema, the others see it.
        """
        existed = self.path.exists() and self.path.stat().st_size > 0
        if existed:
            with open(self.path, "rb") as f:
                head = f.read(16)
            if head != b"SQLite format 3\x00":
                raise AipcError(f"{self.path} is not an aipc results database (not SQLite); "
                                "pass another path with --db")
        not_ours = AipcError(f"{self.path} is an SQLite file but not an aipc results database; "
                             "pass another path with --db")
        deadline = time.monotonic() + 30.0
        while True:
            try:
                return self._check_or_create(existed, not_ours)
            except sqlite3.OperationalError as e:
                # switching a new file to WAL takes an exclusive lock, and SQLite answers "locked" at once
                # (no busy handler) when another process holds it at that instant: wait and try again
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise AipcError(f"cannot use results database {self.path}: {e}; "
                                    "pass a writable aipc database with --db") from None
                time.sleep(0.01)

    def _check_or_create(self, existed: bool, not_ours: AipcError) -> None:
        try:
            con = self._connect()
            try:
                if not existed:
                    con.execute("PRAGMA journal_mode=WAL")
                con.execute("BEGIN IMMEDIATE")
                try:
                    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
                    if tables:
                        if "meta" not in tables:
                            raise not_ours
                        row = con.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
                        if not row or row[0] != SCHEMA_NAME:
                            raise not_ours
                        ver = con.execute("SELECT value FROM meta WHERE key='version'").fetchone()
                        if ver and int(ver[0]) > SCHEMA_VERSION:
                            raise AipcError(f"{self.path} was written by a newer aipc (schema {ver[0]}); upgrade aipc")
                    else:
                        for stmt in filter(None, (s.strip() for s in _DDL.split(";"))):
                            con.execute(stmt)
                        con.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (SCHEMA_NAME,))
                        con.execute("INSERT OR IGNORE INTO meta VALUES ('version', ?)", (str(SCHEMA_VERSION),))
                        con.execute("INSERT OR IGNORE INTO meta VALUES ('created_at', ?)", (_now(),))
                    con.execute("COMMIT")
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
                if con.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                    con.execute("PRAGMA journal_mode=WAL")
            finally:
                con.close()
        except sqlite3.OperationalError:
            raise
        except sqlite3.DatabaseError as e:
            raise AipcError(f"cannot use results database {self.path}: {e}; pass a writable aipc database with --db") from None

    # ---- writing ---------------------------------------------------------------------------------
    def add_run(self, *, kind: str, scenario: str | None = None, device: str | None = None, model: str | None = None,
                workload: dict | None = None, metrics: dict | None = None, samples: list | dict | None = None,
                context: dict | None = None, machine: str | None = None, host: str | None = None,
                run_id: str | None = None, created_at: str | None = None) -> str:
        """Store one run in one transaction; returns its id (a UUID string)."""
        if not kind or not isinstance(kind, str):
            raise AipcError("a run needs a kind such as 'bench' or 'loadtest'")
        for name, val in (("workload", workload), ("metrics", metrics), ("context", context)):
            if val is not None and not isinstance(val, dict):
                raise AipcError(f"a run's {name} must be a dict (got {type(val).__name__}); nothing was stored")
        if samples is not None and not isinstance(samples, (list, dict)):
            raise AipcError(f"a run's samples must be a list or dict (got {type(samples).__name__}); nothing was stored")
        context = dict(context or {})
        mctx = context.get("machine") if isinstance(context.get("machine"), dict) else {}
        row = {
            "id": run_id or uuid.uuid4().hex, "created_at": created_at or _now(), "kind": kind,
            "scenario": scenario, "device": device, "model": model,
            "machine": machine or mctx.get("fingerprint"), "host": host or mctx.get("host"),
            "workload": _dumps(workload or {}, "workload"), "metrics": _dumps(metrics or {}, "metrics"),
            "samples": _dumps(samples if samples is not None else [], "samples"), "context": _dumps(context, "context"),
        }
        with self._tx() as con:
            self._insert(con, row, ignore=False)
        return row["id"]

    @staticmethod
    def _insert(con: sqlite3.Connection, row: dict, ignore: bool) -> bool:
        verb = "INSERT OR IGNORE" if ignore else "INSERT"
        cur = con.execute(f"{verb} INTO runs ({', '.join(RUN_FIELDS)}) VALUES ({', '.join('?' * len(RUN_FIELDS))})",
                          tuple(row[f] for f in RUN_FIELDS))
        return cur.rowcount == 1

    # ---- reading ---------------------------------------------------------------------------------
    def runs(self, kind: str | None = None, device: str | None = None, model: str | None = None,
             scenario: str | None = None, machine: str | None = None, ids: list[str] | None = None) -> list[dict]:
        """Runs matching every given filter (exact match; ``machine`` and ``ids`` match a prefix), oldest first."""
        where, args = [], []
        for col, val in (("kind", kind), ("device", device), ("model", model), ("scenario", scenario)):
            if val is not None:
                where.append(f"{col} = ?")
                args.append(val)
        if machine is not None:
            where.append("(machine LIKE ? OR host = ?)")
            args += [machine + "%", machine]
        if ids:
            where.append("(" + " OR ".join("id LIKE ?" for _ in ids) + ")")
            args += [i + "%" for i in ids]
        sql = f"SELECT {', '.join(RUN_FIELDS)} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at, rowid"
        con = self._connect()
        try:
            rows = con.execute(sql, args).fetchall()
        except sqlite3.DatabaseError as e:
            raise AipcError(f"cannot read results database {self.path}: {e}") from None
        finally:
            con.close()
        return [self._decode(r) for r in rows]

    @staticmethod
    def _decode(r: tuple) -> dict:
        d = dict(zip(RUN_FIELDS, r))
        for f in _JSON_FIELDS:
            d[f] = json.loads(d[f])
        return d

    def count(self) -> int:
        con = self._connect()
        try:
            return con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        finally:
            con.close()

    # ---- export / import -------------------------------------------------------------------------
    def export(self, path: str | Path, runs: list[dict] | None = None, fmt: str | None = None) -> int:
        """Write runs to ``path`` as JSON (one object), JSONL (one run per line) or CSV (summary
        columns); the format follows the suffix unless ``fmt`` says. Written to a temporary file and
        renamed, so an interrupted export leaves no partial file. Returns the number of runs."""
        from aipc.bench.export import write_export

        runs = self.runs() if runs is None else runs
        write_export(Path(path), runs, fmt)
        return len(runs)

    def import_runs(self, path: str | Path) -> tuple[int, int]:
        """Import runs exported by :meth:`export` (JSON or JSONL) in one transaction: all or nothing.
        Returns (imported, already present)."""
        from aipc.bench.export import read_export

        rows = read_export(Path(path))
        added = 0
        with self._tx() as con:
            for row in rows:
                enc = dict(row)
                for f in _JSON_FIELDS:
                    enc[f] = _dumps(row.get(f) if row.get(f) is not None else ({} if f != "samples" else []), f)
                added += self._insert(con, enc, ignore=True)
        return added, len(rows) - added
