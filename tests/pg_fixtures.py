"""pytest fixtures for a real PostgreSQL server (imported by conftest.py).

``pg_server`` (session): the server .ci/run started (``$AIPC_TEST_PG_URL``, a superuser URL), else a
throw-away one started here with tests/pg_server.py and stopped when the session ends. Skipped, with
the reason, only where PostgreSQL's server binaries are absent. ``pg_url``: a fresh empty database on
it for one test (a URL with the superuser's password).
"""

from __future__ import annotations

import os
import tempfile
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import pytest


@dataclass
class PgServer:
    admin_url: str          # superuser, database 'postgres'

    @property
    def parts(self):
        return urlsplit(self.admin_url)

    @property
    def port(self) -> int:
        return self.parts.port

    def url(self, dbname: str, user: str | None = None, password: str | None = None, with_password: bool = True) -> str:
        p = self.parts
        user = user or p.username
        pw = p.password if password is None else password
        auth = f"{user}:{pw}@" if with_password and pw else f"{user}@"
        return urlunsplit((p.scheme, f"{auth}{p.hostname}:{p.port}", "/" + dbname, p.query, ""))

    def admin(self, sql: str, args: tuple = ()) -> list:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as con:
            cur = con.execute(sql, args)
            return cur.fetchall() if cur.description else []

    def new_database(self) -> str:
        name = "t_" + uuid.uuid4().hex[:12]
        self.admin(f'CREATE DATABASE "{name}"')
        return name


@pytest.fixture(scope="session")
def pg_server():
    url = os.environ.get("AIPC_TEST_PG_URL")
    if url:
        yield PgServer(url)
        return
    import pg_server as P

    if P.bindir() is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: install Debian's postgresql package "
                    "(or set AIPC_PG_BINDIR, or AIPC_TEST_PG_URL to a server's superuser URL)")
    root = tempfile.mkdtemp(prefix="aipc-pg-")
    try:
        server = P.start(root)
    except Exception:
        P.stop(root, mode="immediate")
        raise
    try:
        yield PgServer(server.url())
    finally:
        P.stop(root, mode="immediate")  # throw-away: no shutdown checkpoint


@pytest.fixture
def pg_url(pg_server) -> str:
    """A URL of a new, empty database on the test server."""
    return pg_server.url(pg_server.new_database())
