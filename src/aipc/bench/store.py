"""The results database: every measured run with its full context, in one SQLite file or a team's
PostgreSQL database.

    from aipc.bench.store import ResultsDB
    db = ResultsDB(None)                     # $AIPC_RESULTS_DB, else aipc.paths.default_db()
    db = ResultsDB("postgresql://ann@db.lan:5432/team")   # a shared database (aipc.bench.store_pg)
    run_id = db.add_run(kind="bench", scenario="decode", device="cpu", model="smollm2-135m",
                        workload={...}, metrics={...}, samples=[...], context={...})
    db.runs(kind="bench", device="cpu")      # -> list of dicts, oldest first

SQLite is safe with concurrent writers: WAL journal, a 30 s busy timeout, and every write in one
``BEGIN IMMEDIATE`` transaction, so a run is stored whole or not at all. Run ids are random UUIDs so
runs exported from one machine import on another without clashing (importing twice is a no-op).
A file that is not an aipc database, or a path that cannot be written, is an AipcError (exit 2)
and the file is left untouched. The schema is created and upgraded by the versioned migrations of
:mod:`aipc.bench.migrations` (the same on both dialects). Import-light: no torch.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aipc.bench import dburl
from aipc.bench.migrations import DERIVED_FIELDS, LATEST, SCHEMA_NAME, Q, derived, migrate
from aipc.bench.migrations import now as _now
from aipc.errors import AipcError

SCHEMA_VERSION = LATEST
RUN_FIELDS = ("id", "created_at", "kind", "scenario", "device", "model", "machine", "host",
              "workload", "metrics", "samples", "context")
_JSON_FIELDS = ("workload", "metrics", "samples", "context")
_BRIEF_FIELDS = tuple(f for f in RUN_FIELDS if f not in ("samples", "context"))
_STORED = RUN_FIELDS + DERIVED_FIELDS


def _dumps(value: Any, what: str) -> str:
    from aipc.render import to_jsonable

    try:
        return json.dumps(to_jsonable(value), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise AipcError(f"cannot store {what}: {e}; pass plain numbers, strings, lists and dicts") from None


def encode_run(*, kind: str, scenario=None, device=None, model=None, workload=None, metrics=None, samples=None,
               context=None, machine=None, host=None, run_id=None, created_at=None) -> dict:
    """One run as the row stored: checked, JSON fields encoded, indexed columns derived from them."""
    if not kind or not isinstance(kind, str):
        raise AipcError("a run needs a kind such as 'bench' or 'loadtest'")
    for name, val in (("workload", workload), ("metrics", metrics), ("context", context)):
        if val is not None and not isinstance(val, dict):
            raise AipcError(f"a run's {name} must be a dict (got {type(val).__name__}); nothing was stored")
    if samples is not None and not isinstance(samples, (list, dict)):
        raise AipcError(f"a run's samples must be a list or dict (got {type(samples).__name__}); nothing was stored")
    context = dict(context or {})
    mctx = context.get("machine") if isinstance(context.get("machine"), dict) else {}
    return {
        "id": run_id or uuid.uuid4().hex, "created_at": created_at or _now(), "kind": kind,
        "scenario": scenario, "device": device, "model": model,
        "machine": machine or mctx.get("fingerprint"), "host": host or mctx.get("host"),
        "workload": _dumps(workload or {}, "workload"), "metrics": _dumps(metrics or {}, "metrics"),
        "samples": _dumps(samples if samples is not None else [], "samples"), "context": _dumps(context, "context"),
        **derived(device, workload or {}, context),
    }


def _with_derived(row: dict) -> dict:
    """A stored row always carries its indexed columns (derived from its JSON when not given)."""
    if all(f in row for f in DERIVED_FIELDS):
        return row
    return {**derived(row.get("device"), json.loads(row["workload"]), json.loads(row["context"])), **row}


class ResultsDB:
    """One SQLite results file. Each call opens its own short connection (safe across processes).

    ``ResultsDB("postgresql://...")`` (or $AIPC_RESULTS_DB set to such a URL) returns a
    :class:`aipc.bench.store_pg.PgResultsDB` with the same methods."""

    dialect = "sqlite"
    _ORDER = "created_at, rowid"

    def __new__(cls, path: str | Path | None = None, *args, **kw):
        if cls is ResultsDB and dburl.is_postgres(dburl.target(path)):
            from aipc.bench.store_pg import PgResultsDB

            return super().__new__(PgResultsDB)
        return super().__new__(cls)

    def __init__(self, path: str | Path | None = None, *, create: bool = True):
        path = dburl.target(path)
        if dburl.is_url(path):
            dburl.check(str(path))  # not PostgreSQL: an error naming what is supported
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

    def _write(self, fn, what: str = "write"):
        """``fn(q)`` in one write transaction; its result."""
        with self._tx() as con:
            return fn(Q(con, self.dialect), 0)

    def _read(self, fn):
        con = self._connect()
        try:
            return fn(Q(con, self.dialect))
        except sqlite3.DatabaseError as e:
            raise AipcError(f"cannot read results database {self.path}: {e}") from None
        finally:
            con.close()

    def _init(self) -> None:
        """Create the schema in a new or empty file, migrate an older one; refuse any other file untouched.

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
        deadline = time.monotonic() + 30.0
        while True:
            try:
                return self._check_or_create(existed)
            except sqlite3.OperationalError as e:
                # switching a new file to WAL takes an exclusive lock, and SQLite answers "locked" at once
                # (no busy handler) when another process holds it at that instant: wait and try again
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise AipcError(f"cannot use results database {self.path}: {e}; "
                                    "pass a writable aipc database with --db") from None
                time.sleep(0.01)

    def _check_or_create(self, existed: bool) -> None:
        try:
            con = self._connect()
            try:
                if not existed:
                    con.execute("PRAGMA journal_mode=WAL")
                con.execute("BEGIN IMMEDIATE")
                try:
                    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
                    self._ensure_schema(Q(con, self.dialect), tables, create=True)
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

    def _ensure_schema(self, q: Q, tables: set[str], *, create: bool) -> list[int]:
        """With the aipc tables found (``tables``): create the schema, migrate it, or refuse the database."""
        not_ours = AipcError(f"{self.path} is {'an SQLite file' if self.dialect == 'sqlite' else 'a database'} "
                             "but not an aipc results database; pass another path with --db")
        if not tables:
            if not create:
                raise AipcError(f"no aipc results in {self.path}; run 'aipc bench --db {self.path}' first")
            return migrate(q, 0)
        if "meta" not in tables:
            raise not_ours
        row = q("SELECT value FROM meta WHERE key='schema'").fetchone()
        if not row or row[0] != SCHEMA_NAME:
            raise not_ours
        ver = q("SELECT value FROM meta WHERE key='version'").fetchone()
        version = int(ver[0]) if ver else 1
        if version > SCHEMA_VERSION:
            raise AipcError(f"{self.path} was written by a newer aipc (schema {version}); upgrade aipc")
        return migrate(q, version) if version < SCHEMA_VERSION else []

    # ---- writing ---------------------------------------------------------------------------------
    def add_run(self, *, kind: str, scenario: str | None = None, device: str | None = None, model: str | None = None,
                workload: dict | None = None, metrics: dict | None = None, samples: list | dict | None = None,
                context: dict | None = None, machine: str | None = None, host: str | None = None,
                run_id: str | None = None, created_at: str | None = None) -> str:
        """Store one run in one transaction; returns its id (a UUID string)."""
        row = encode_run(kind=kind, scenario=scenario, device=device, model=model, workload=workload, metrics=metrics,
                         samples=samples, context=context, machine=machine, host=host, run_id=run_id,
                         created_at=created_at)
        self._write(lambda q, attempt: self._store_once(q, row, attempt), "store the run")
        return row["id"]

    def _store_once(self, q: Q, row: dict, attempt: int) -> None:
        """Insert ``row``. On a retry (``attempt`` > 0, after a lost connection) the id may already be
        there, from the attempt whose commit was not acknowledged: then it must be this run, stored once."""
        if self._insert(q.con, row, ignore=attempt > 0):
            return
        got = q("SELECT created_at, kind, workload, metrics FROM runs WHERE id = ?", (row["id"],)).fetchone()
        if got is None or tuple(got) != (row["created_at"], row["kind"], row["workload"], row["metrics"]):
            raise AipcError(f"a different run with id {row['id']} is already stored; nothing was stored")

    def _insert(self, con: Any, row: dict, ignore: bool) -> bool:
        row = _with_derived(row)
        conflict = " ON CONFLICT (id) DO NOTHING" if ignore else ""
        sql = (f"INSERT INTO runs ({', '.join(_STORED)}) VALUES ({', '.join('?' * len(_STORED))}){conflict}")
        cur = Q(con, self.dialect)(sql, tuple(row[f] for f in _STORED))
        return cur.rowcount == 1

    # ---- reading ---------------------------------------------------------------------------------
    def runs(self, kind: str | None = None, device: str | None = None, model: str | None = None,
             scenario: str | None = None, machine: str | None = None, ids: list[str] | None = None, *,
             engine: str | None = None, weight_format: str | None = None, device_model: str | None = None,
             brief: bool = False) -> list[dict]:
        """Runs matching every given filter (exact match; ``machine`` and ``ids`` match a prefix), oldest
        first. ``brief``: without samples and context (much less to read for comparisons over many runs)."""
        where, args = [], []
        for col, val in (("kind", kind), ("device", device), ("model", model), ("scenario", scenario),
                         ("engine", engine), ("weight_format", weight_format), ("device_model", device_model)):
            if val is not None:
                where.append(f"{col} = ?")
                args.append(val)
        if machine is not None:
            where.append("(lower(machine) LIKE lower(?) OR host = ?)")
            args += [machine + "%", machine]
        if ids:
            where.append("(" + " OR ".join("lower(id) LIKE lower(?)" for _ in ids) + ")")
            args += [i + "%" for i in ids]
        fields = (_BRIEF_FIELDS if brief else RUN_FIELDS) + DERIVED_FIELDS
        sql = f"SELECT {', '.join(fields)} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY {self._ORDER}"
        rows = self._read(lambda q: q(sql, args).fetchall())
        return [self._decode(fields, r) for r in rows]

    @staticmethod
    def _decode(fields: tuple, r: tuple) -> dict:
        d = dict(zip(fields, r))
        for f in _JSON_FIELDS:
            if f in d:
                d[f] = json.loads(d[f])
        return d

    def count(self) -> int:
        return self._read(lambda q: q("SELECT COUNT(*) FROM runs").fetchone()[0])

    def schema_version(self) -> int:
        return int(self._read(lambda q: q("SELECT value FROM meta WHERE key='version'").fetchone()[0]))

    # ---- export / import -------------------------------------------------------------------------
    def export(self, path: str | Path, runs: list[dict] | None = None, fmt: str | None = None) -> int:
        """Write runs to ``path`` as JSON (one object), JSONL (one run per line) or CSV (summary
        columns); the format follows the suffix unless ``fmt`` says. Written to a temporary file and
        renamed, so an interrupted export leaves no partial file. Returns the number of runs."""
        from aipc.bench.export import write_export

        runs = self.runs() if runs is None else runs
        write_export(Path(path), [{k: r.get(k) for k in RUN_FIELDS} for r in runs], fmt)
        return len(runs)

    def import_runs(self, path: str | Path) -> tuple[int, int]:
        """Import runs exported by :meth:`export` (JSON or JSONL) in one transaction: all or nothing.
        Returns (imported, already present)."""
        from aipc.bench.export import read_export

        rows = read_export(Path(path))
        encoded = []
        for row in rows:
            enc = dict(row)
            for f in _JSON_FIELDS:
                enc[f] = _dumps(row.get(f) if row.get(f) is not None else ({} if f != "samples" else []), f)
            encoded.append(enc)
        added = self._write(lambda q, attempt: sum(self._insert(q.con, enc, ignore=True) for enc in encoded),
                            "import the runs")
        return added, len(rows) - added
