"""Where the results database is: a SQLite file path or a ``postgresql://`` URL; passwords never shown.

    target(None)        # $AIPC_RESULTS_DB if set, else aipc.paths.default_db()
    is_postgres(x)      # True for postgresql://... and postgres://...
    redact(url)         # 'postgresql://ann:***@db:5432/team' (password in the URL or ?password= hidden)

A PostgreSQL URL is checked here before any connection: a port must be a whole number 1-65535 and
the database must be named. Credentials come from the URL, a ``.pgpass`` file or the environment
(PGPASSWORD, PGUSER, ...), all read by libpq. Import-light: standard library only.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from aipc.errors import AipcError

SCHEMES = ("postgresql", "postgres")
EXAMPLE = "postgresql://USER@HOST:PORT/DBNAME"
ENV = "AIPC_RESULTS_DB"
HELP = ("Results database: a SQLite file, or postgresql://USER@HOST:PORT/DBNAME for a team's shared one "
        "(password from the URL, ~/.pgpass or PGPASSWORD). Default: $AIPC_RESULTS_DB, else the user data dir.")


def target(db: str | Path | None) -> str | Path:
    """The database to use: ``db``; else $AIPC_RESULTS_DB; else the default SQLite file."""
    if db is None or (isinstance(db, str) and not db.strip()):
        env = os.environ.get(ENV, "").strip()
        if env:
            return env if is_url(env) else Path(env)
        from aipc.paths import default_db

        return default_db()
    if isinstance(db, Path) and re.match(r"(?i)postgres(ql)?:/[^/]", str(db)):
        return re.sub(r"(?i)^(postgres(ql)?:)/", r"\1//", str(db))  # a URL squeezed through Path lost a slash
    return db


def is_url(x: object) -> bool:
    return isinstance(x, str) and "://" in x


def is_postgres(x: object) -> bool:
    return isinstance(x, str) and x.split("://", 1)[0].lower() in SCHEMES and "://" in x


def redact(text: object) -> str:
    """``text`` with the password of any PostgreSQL URL in it replaced by ***."""
    s = str(text)
    return re.sub(r"postgres(?:ql)?://[^\s'\"]+", lambda m: _redact_url(m.group(0)), s, flags=re.I)


def _redact_url(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return re.sub(r"//[^@/]*@", "//***@", url)
    netloc = parts.netloc
    if "@" in netloc:
        user, host = netloc.rsplit("@", 1)
        if ":" in user:
            user = user.split(":", 1)[0] + ":***"
        netloc = f"{user}@{host}"
    query = parts.query
    if query:
        pairs = [(k, "***" if k.lower() == "password" else v) for k, v in parse_qsl(query, keep_blank_values=True)]
        query = urlencode(pairs, safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def password(url: str) -> str | None:
    """The password written in the URL (userinfo or ?password=), to scrub it from driver messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.password:
        return unquote(parts.password)
    return next((v for k, v in parse_qsl(parts.query) if k.lower() == "password"), None)


def check(url: str) -> None:
    """A PostgreSQL URL that names a database and a valid port, or a one-line AipcError (password hidden)."""
    shown = redact(url)
    if not is_postgres(url):
        raise AipcError(f"database URL {shown}: only file paths and PostgreSQL URLs ({EXAMPLE}) are supported")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise AipcError(f"database URL {shown}: not a valid PostgreSQL URL ({redact(e)}); write it as {EXAMPLE}") from None
    if port is not None and not 0 < port < 65536:
        raise AipcError(f"database URL {shown}: port must be 1-65535; write the URL as {EXAMPLE}")
    if not parts.path.strip("/"):
        raise AipcError(f"database URL {shown}: no database named; write the URL as {EXAMPLE}")
    if "/" in parts.path.strip("/"):
        raise AipcError(f"database URL {shown}: a database name cannot contain '/'; write the URL as {EXAMPLE}")


def dbname(url: str) -> str:
    return unquote(urlsplit(url).path.strip("/"))


def hosts(db: str | Path | None) -> list[str]:
    """The server host names a PostgreSQL target names (several for a multi-host URL, and any host=
    parameter); none for a SQLite file. The offline guard lets a verb reach exactly these."""
    t = target(db)
    if not is_postgres(t):
        return []
    parts = urlsplit(str(t))
    netloc = parts.netloc.rsplit("@", 1)[-1]
    names = [re.sub(r":\d*$", "", h.strip()).strip("[]") for h in netloc.split(",")]
    names += [h for k, v in parse_qsl(parts.query) if k == "host" for h in v.split(",")]
    return [unquote(h) for h in names if h and not h.startswith("/")]
