"""The results database on a team's PostgreSQL server (psycopg 3): the schema and methods of the SQLite one.

    db = ResultsDB("postgresql://ann@db.lan:5432/team")   # password: in the URL, ~/.pgpass or PGPASSWORD

Many machines write at once and lose nothing: each run is one transaction under its random UUID.
When the connection drops (server restart, network, ``pg_terminate_backend``) aipc reconnects and
retries for up to ``retry_s`` seconds with ``INSERT ... ON CONFLICT (id) DO NOTHING``: a commit whose
acknowledgement was lost is found by its id and not stored twice. Creating and migrating the schema
happen under a transaction-scoped advisory lock, so first users arriving together serialize. The URL
is shown redacted (``.path``: password ***) and every driver message is scrubbed of the password.
"""

from __future__ import annotations

import time
from typing import Any

from aipc.bench import dburl
from aipc.bench.migrations import Q
from aipc.bench.store import ResultsDB
from aipc.errors import AipcError

LOCK_KEY = 0x61697063  # 'aipc': the advisory lock taken while the schema is checked, created or migrated
_TRANSIENT = ("connection refused", "timeout expired", "could not connect", "server closed the connection",
              "terminating connection", "starting up", "shutting down", "too many clients", "connection reset",
              "could not receive data", "could not send data", "consuming input failed", "connection is lost",
              "the connection is closed", "ssl syscall", "sending query failed")
_RETRY_STATES = ("57P01", "57P02", "57P03", "40001", "40P01", "53300")


def _driver():
    try:
        import psycopg
    except ImportError:
        raise AipcError("a PostgreSQL --db needs psycopg 3: install it with pip install 'aipc[team]' "
                        "(or 'psycopg[binary]')") from None
    return psycopg


class _ConnectFailed(Exception):
    def __init__(self, msg: str, transient: bool):
        super().__init__(msg)
        self.transient = transient


def _hint(msg: str) -> str:
    m = msg.lower()
    if "password" in m:
        return "check the password (in the URL, a ~/.pgpass file or PGPASSWORD)"
    if "database" in m and "does not exist" in m:
        return "create the database first (createdb NAME) or name another one in the URL"
    if "role" in m and "does not exist" in m:
        return "check the user name in the URL (or PGUSER)"
    return "check the host and port in the URL, and that the server runs and accepts TCP connections"


class PgResultsDB(ResultsDB):
    """A results database on PostgreSQL; one connection per object, reopened when it drops."""

    dialect = "postgresql"
    _ORDER = 'created_at COLLATE "C", rowid'

    def __init__(self, path: str | None = None, *, create: bool = True, retry_s: float = 30.0,
                 connect_timeout: int = 10):
        url = str(dburl.target(path))
        dburl.check(url)
        self._pg = _driver()
        self._url, self._secret = url, dburl.password(url)
        self.path = dburl.redact(url)            # what messages and reports show
        self.retry_s, self.connect_timeout = retry_s, connect_timeout
        self._con: Any = None
        self.reconnects = 0                      # connections lost and reopened (tests and logs read it)
        try:
            self._con = self._connect()
        except _ConnectFailed as e:
            raise AipcError(f"cannot connect to {self.path}: {e}; {_hint(str(e))}") from None
        self._write(lambda q, attempt: self._check(q, create), "check the schema")

    # ---- connection ------------------------------------------------------------------------------
    def _scrub(self, e: BaseException | str) -> str:
        text = str(e)
        if self._secret:
            text = text.replace(self._secret, "***")
        text = " ".join(text.split())
        return dburl.redact(text[len("connection failed: "):] if text.startswith("connection failed: ") else text)

    def _connect(self):
        pg = self._pg
        try:
            return pg.connect(self._url, autocommit=True, connect_timeout=self.connect_timeout,
                              application_name="aipc")
        except pg.Error as e:
            msg = self._scrub(e)
            raise _ConnectFailed(msg, any(t in msg.lower() for t in _TRANSIENT)) from None

    def _lost(self, e: BaseException) -> bool:
        """Whether ``e`` means the connection (not the request) failed, so a retry may succeed: a
        connection-class or shutdown SQLSTATE, or a client-side failure (no SQLSTATE: sending or
        receiving failed, which libpq may not have marked on the connection yet)."""
        state = getattr(e, "sqlstate", None)
        if state in _RETRY_STATES or (state or "").startswith("08"):
            return True
        con = self._con
        return isinstance(e, self._pg.OperationalError) and (
            state is None or con is None or con.closed or con.broken
            or any(t in str(e).lower() for t in _TRANSIENT))

    def _drop(self) -> None:
        con, self._con = self._con, None
        if con is not None:
            try:
                con.close()
            except Exception:  # noqa: BLE001 - a broken connection may fail to close; it is gone either way
                pass

    def close(self) -> None:
        self._drop()

    def _attempt(self, fn, what: str, write: bool):
        """``fn(q, attempt)`` in one transaction, retried on a lost connection until ``retry_s`` passes."""
        deadline, attempt = time.monotonic() + self.retry_s, 0
        while True:
            try:
                if self._con is None or self._con.closed:
                    self._con = self._connect()
                with self._con.transaction():
                    return fn(Q(self._con, self.dialect), attempt)
            except _ConnectFailed as e:
                if not e.transient or time.monotonic() > deadline:
                    raise AipcError(f"cannot connect to {self.path} to {what}: {e}; {_hint(str(e))}") from None
            except self._pg.Error as e:
                if not self._lost(e) or time.monotonic() > deadline:
                    raise self._failed(e, what, write, attempt) from None
            self._drop()
            attempt += 1
            self.reconnects += 1
            time.sleep(0.0 if attempt == 1 else min(0.05 * 2 ** attempt, 1.0))  # reconnect at once first

    def _failed(self, e: BaseException, what: str, write: bool, attempt: int) -> AipcError:
        msg = self._scrub(e)
        if write and self._lost(e):
            return AipcError(f"lost the connection to {self.path} and could not {what} within {self.retry_s:g} s "
                             f"({msg}); it may or may not be stored: check with 'aipc results --db URL' and retry")
        tail = "; nothing was stored" if write else ""
        return AipcError(f"cannot {what} in {self.path}: {msg}{tail}")

    def _write(self, fn, what: str = "write"):
        return self._attempt(fn, what, write=True)

    def _read(self, fn):
        return self._attempt(lambda q, attempt: fn(q), "read the runs", write=False)

    # ---- schema ----------------------------------------------------------------------------------
    def _check(self, q: Q, create: bool) -> list[int]:
        q("SELECT pg_advisory_xact_lock(?)", (LOCK_KEY,))
        tables = {r[0] for r in q("SELECT table_name FROM information_schema.tables WHERE table_schema = "
                                  "current_schema() AND table_name IN ('meta', 'runs')").fetchall()}
        if tables == {"runs"}:
            raise AipcError(f"{self.path} has a table 'runs' that is not aipc's; use another database or "
                            "schema (?options=-csearch_path%3DNAME)")
        return self._ensure_schema(q, tables, create=create)
