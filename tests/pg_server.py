"""A throw-away PostgreSQL server for the tests, .ci/run and benchmarks/ (standard library only).

    python tests/pg_server.py start DIR   # initdb in DIR, start on a free port of 127.0.0.1,
                                          # print 'export AIPC_TEST_PG_URL=postgresql://...'
    python tests/pg_server.py stop DIR    # stop it (fast shutdown) and remove DIR

The server listens only on 127.0.0.1 (no Unix socket), with password (SCRAM) authentication for a
superuser ``aipc`` whose random password is in the URL. Binaries: ``$AIPC_PG_BINDIR`` (only there, when
set), else Debian's
``/usr/lib/postgresql/<newest>/bin``, else ``initdb`` on PATH. ``initdb`` refuses to run as root: as
root the server runs as the ``postgres`` user (Debian's package creates it) and DIR is given to it.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

SUPERUSER = "aipc"


def bindir() -> Path | None:
    """The folder holding initdb and pg_ctl, or None when PostgreSQL's server binaries are absent."""
    env = os.environ.get("AIPC_PG_BINDIR")
    if env:  # an explicit choice: that folder or nothing
        return Path(env) if (Path(env) / "initdb").is_file() and (Path(env) / "pg_ctl").is_file() else None
    cands = []
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
                      if Path(p).parent.name.isdigit() else 0, reverse=True)
    cands += [Path(p) for p in versions]
    on_path = shutil.which("initdb")
    if on_path:
        cands.append(Path(on_path).parent)
    return next((c for c in cands if (c / "initdb").is_file() and (c / "pg_ctl").is_file()), None)


def _as_user() -> list[str]:
    """Command prefix that runs PostgreSQL's tools as a non-root user (initdb refuses root)."""
    if os.geteuid() != 0:
        return []
    import pwd

    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise RuntimeError("running as root and there is no 'postgres' user to run the server as; "
                           "install Debian's postgresql package (it creates the user)") from None
    return ["runuser", "-u", "postgres", "--"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    datadir: Path
    port: int
    password: str
    user: str = SUPERUSER

    def url(self, dbname: str = "postgres", user: str | None = None, password: str | None = None) -> str:
        pw = self.password if password is None else password
        return f"postgresql://{user or self.user}:{pw}@127.0.0.1:{self.port}/{dbname}"


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def start(root: str | Path, *, fast: bool = True, attempts: int = 3) -> Server:
    """initdb in ``root``/data and start the server; ``fast`` turns fsync off (tests only)."""
    bins = bindir()
    if bins is None:
        raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) not found; install Debian's postgresql "
                           "package or set AIPC_PG_BINDIR")
    prefix = _as_user()
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    data, pwfile = root / "data", root / "pw"
    password = secrets.token_hex(16)
    pwfile.write_text(password + "\n")
    if prefix:
        shutil.chown(root, "postgres")
        shutil.chown(pwfile, "postgres")
    _run([*prefix, str(bins / "initdb"), "-D", str(data), "-U", SUPERUSER, f"--pwfile={pwfile}", "-A", "scram-sha-256",
          "-E", "UTF8", "--locale=C", "--no-sync"])
    pwfile.unlink()
    opts = ["-c listen_addresses=127.0.0.1", "-c unix_socket_directories=''", "-c max_connections=120"]
    if fast:
        opts += ["-c fsync=off", "-c full_page_writes=off"]
    for i in range(attempts):  # the port is free when chosen; another process may take it before the server does
        port = _free_port()
        r = subprocess.run([*prefix, str(bins / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-w",
                            "-t", "60", "-o", " ".join([*opts, f"-p {port}"]), "start"], capture_output=True, text=True)
        if r.returncode == 0:
            (root / "port").write_text(str(port))
            return Server(data, port, password)
        time.sleep(0.2)
    log = (root / "server.log").read_text() if (root / "server.log").exists() else ""
    raise RuntimeError(f"PostgreSQL did not start: {r.stderr.strip()} {log[-2000:]}")


def stop(root: str | Path, *, remove: bool = True, mode: str = "fast") -> None:
    """Stop the server under ``root`` (``mode`` fast, or immediate: no checkpoint, for a server about to
    be deleted; immediate if fast hangs) and remove the folder."""
    bins, root = bindir(), Path(root)
    data = root / "data"
    if bins is not None and (data / "postmaster.pid").exists():
        prefix = _as_user()
        r = subprocess.run([*prefix, str(bins / "pg_ctl"), "-D", str(data), "-m", mode, "-w", "-t", "30", "stop"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            subprocess.run([*prefix, str(bins / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                           capture_output=True, text=True)
    if remove:
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("start", "stop"):
        print("usage: pg_server.py start|stop DIR", file=sys.stderr)
        return 2
    if argv[0] == "stop":
        stop(argv[1])
        return 0
    try:
        s = start(argv[1])
    except (RuntimeError, subprocess.CalledProcessError) as e:
        detail = getattr(e, "stderr", "") or ""
        print(f"pg_server: {e} {detail}".strip(), file=sys.stderr)
        return 1
    print(f"export AIPC_TEST_PG_URL={s.url()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
