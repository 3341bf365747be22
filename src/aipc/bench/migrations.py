"""Versioned migrations of the results database: one schema, the same on SQLite and PostgreSQL.

Version 1 is the schema aipc wrote before migrations existed (tables ``meta`` and ``runs``); its
files say ``version = 1`` in ``meta`` and are migrated in place when opened. Each migration runs in
the caller's transaction (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: under an advisory lock), so of
several processes opening an old database at once one migrates and the others find it done; DDL is
transactional in both, so a migration that fails leaves the database as it was.

The one dialect difference: PostgreSQL's ``runs`` has an explicit ``rowid`` identity column, the
insertion order that SQLite keeps in its implicit ``rowid``. Import-light: no driver imported here.

| version | what |
|---|---|
| 1 | meta (schema name, version, created_at); runs (id, created_at, kind, scenario, device, model, machine, host, workload, metrics, samples, context as JSON text) |
| 2 | runs.engine (``workload["engine"]``, default "torch"), runs.weight_format (``workload["weight_dtype"]``), runs.device_model (the CPU or GPU model the run was measured on, from its machine profile); indexed; backfilled from each run's JSON |
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SCHEMA_NAME = "aipc-results"
DERIVED_FIELDS = ("engine", "weight_format", "device_model")
DEFAULT_ENGINE = "torch"


class Q:
    """One connection inside a transaction, with ``?`` placeholders on both dialects."""

    def __init__(self, con: Any, dialect: str):
        self.con, self.dialect = con, dialect

    def sql(self, text: str) -> str:
        return text.replace("?", "%s") if self.dialect == "postgresql" else text

    def __call__(self, text: str, args: tuple | list = ()):
        return self.con.execute(self.sql(text), args)

    def many(self, text: str, rows: list[tuple]) -> None:
        if self.dialect == "postgresql":
            with self.con.cursor() as cur:
                cur.executemany(self.sql(text), rows)
        else:
            self.con.executemany(text, rows)


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def device_model(device: str | None, context: dict) -> str | None:
    """The CPU or GPU model a run was measured on, from the machine profile stored in its context."""
    mach = context.get("machine") if isinstance(context.get("machine"), dict) else {}
    prof = mach.get("profile") if isinstance(mach.get("profile"), dict) else {}
    info = prof.get("machine") if isinstance(prof.get("machine"), dict) else {}
    if device == "cpu":
        cpu = info.get("cpu") if isinstance(info.get("cpu"), dict) else {}
        return cpu.get("model") if isinstance(cpu.get("model"), str) else None
    for g in info.get("gpus") or []:
        if isinstance(g, dict) and g.get("device") == device and isinstance(g.get("name"), str):
            return g["name"]
    return None


def derived(device: str | None, workload: dict, context: dict) -> dict[str, str | None]:
    """The indexed columns of a run, from its JSON: engine (default torch), weight format, device model."""
    eng = workload.get("engine")
    wf = workload.get("weight_dtype")
    return {"engine": eng if isinstance(eng, str) and eng else DEFAULT_ENGINE,
            "weight_format": None if wf is None else str(wf), "device_model": device_model(device, context)}


def _loads(text: str | None) -> dict:
    try:
        v = json.loads(text) if text else {}
    except ValueError:
        return {}
    return v if isinstance(v, dict) else {}


def _backfill_v2(q: Q) -> None:
    rows = q("SELECT id, device, workload, context FROM runs").fetchall()
    updates = []
    for rid, device, workload, context in rows:
        d = derived(device, _loads(workload), _loads(context))
        updates.append((d["engine"], d["weight_format"], d["device_model"], rid))
    if updates:
        q.many("UPDATE runs SET engine = ?, weight_format = ?, device_model = ? WHERE id = ?", updates)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    steps: tuple[str | dict[str, str], ...]   # SQL; a dict gives the text per dialect
    backfill: Callable[[Q], None] | None = None


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "tables meta and runs", (
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        {"sqlite": "", "postgresql": ", rowid BIGINT GENERATED ALWAYS AS IDENTITY"},  # spliced into runs below
        "CREATE TABLE runs (id TEXT PRIMARY KEY, created_at TEXT NOT NULL, kind TEXT NOT NULL, scenario TEXT, "
        "device TEXT, model TEXT, machine TEXT, host TEXT, workload TEXT NOT NULL, metrics TEXT NOT NULL, "
        "samples TEXT NOT NULL, context TEXT NOT NULL{rowid})",
        "CREATE INDEX runs_by_kind ON runs (kind, device, model, scenario)",
    )),
    Migration(2, "indexed engine, weight_format and device_model, backfilled from each run's JSON", (
        "ALTER TABLE runs ADD COLUMN engine TEXT NOT NULL DEFAULT 'torch'",
        "ALTER TABLE runs ADD COLUMN weight_format TEXT",
        "ALTER TABLE runs ADD COLUMN device_model TEXT",
        "CREATE INDEX runs_by_engine ON runs (engine, weight_format)",
        "CREATE INDEX runs_by_device_model ON runs (device_model)",
    ), _backfill_v2),
)
LATEST = MIGRATIONS[-1].version


def _statements(m: Migration, dialect: str) -> list[str]:
    out, splice = [], ""
    for step in m.steps:
        if isinstance(step, dict):  # a per-dialect fragment for the next statement
            splice = step[dialect]
            continue
        out.append(step.replace("{rowid}", splice) if "{rowid}" in step else step)
    return out


def _set_meta(q: Q, key: str, value: str) -> None:
    q("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
      (key, value))


def migrate(q: Q, current: int, upto: int | None = None) -> list[int]:
    """Apply every migration above ``current`` (0: an empty database) up to ``upto`` (default: the
    latest), in order; returns the versions applied."""
    done = []
    for m in MIGRATIONS:
        if m.version <= current or (upto is not None and m.version > upto):
            continue
        for stmt in _statements(m, q.dialect):
            q(stmt)
        if m.backfill is not None:
            m.backfill(q)
        if m.version == 1:
            _set_meta(q, "schema", SCHEMA_NAME)
            _set_meta(q, "created_at", now())
        _set_meta(q, "version", str(m.version))
        _set_meta(q, f"migration_{m.version}", f"{now()} {m.name}")
        done.append(m.version)
    return done
