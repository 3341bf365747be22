"""Atomic file and folder writes: a temporary sibling that replaces the target only when complete.

A crash or an error leaves either the old target or the new one, never a half-written file, and the
temporary file is removed on error. New files are created with mode 0600 (they may hold plaintext).

Temporary names are ``.<target>.aipc-tmp-<pid>-<random>``. Each one is also recorded in aipc's home
(``pending/``) while it exists, so one left behind by a process that was killed outright (SIGKILL, a
power cut) is found and removed by the next aipc write (:func:`sweep_stale`). :func:`terminate_cleanly`
turns SIGTERM into an exception, so the ``finally`` blocks here remove the temporary file first.
A write that fails (a full disk, a read-only folder) is one :class:`AipcError` line.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from aipc.errors import AipcError


class Terminated(AipcError):
    """SIGTERM arrived while aipc was writing; the partial output was removed."""

    exit_code = 143  # 128 + SIGTERM, as a shell reports a process the signal ended


@contextlib.contextmanager
def terminate_cleanly() -> Iterator[None]:
    """Inside the block SIGTERM raises :class:`Terminated` (once), so cleanup code runs before exit."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the cleanup short
        raise Terminated("stopped by SIGTERM; the partial output was removed and the inputs are untouched")

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _pending_dir() -> Path | None:
    try:
        from aipc.paths import home

        d = home() / "pending"
        d.mkdir(exist_ok=True)
        return d
    except OSError:
        return None  # no writable home: temporary files are still removed on errors and SIGTERM


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale() -> list[str]:
    """Remove temporary files and folders of aipc processes that no longer run; returns their paths."""
    d = _pending_dir()
    removed: list[str] = []
    if d is None:
        return removed
    for rec in d.iterdir():
        pid = rec.name.split("-", 1)[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        with contextlib.suppress(OSError, UnicodeDecodeError):
            p = Path(rec.read_text().strip())
            if ".aipc-tmp-" in p.name:  # only names aipc makes, never anything else
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)
                removed.append(str(p))
        rec.unlink(missing_ok=True)
    return removed


@contextlib.contextmanager
def _recorded(path: Path) -> Iterator[None]:
    """Record ``path`` in pending/ while the block runs (so a SIGKILL leaves a trace to clean up)."""
    d = _pending_dir()
    rec = None
    if d is not None:
        rec = d / f"{os.getpid()}-{secrets.token_hex(6)}"
        with contextlib.suppress(OSError):
            rec.write_text(str(path.absolute()))
    try:
        yield
    finally:
        if rec is not None:
            rec.unlink(missing_ok=True)


def temp_sibling(target: Path, what: str = "tmp") -> Path:
    """``.<name>.aipc-<what>-<pid>-<random>`` beside ``target``."""
    return target.parent / f".{target.name}.aipc-{what}-{os.getpid()}-{secrets.token_hex(4)}"


def write_error(target: Path, e: OSError) -> AipcError:
    """One line for a failed write: what, why, and what to do."""
    return AipcError(f"cannot write {target}: {e.strerror or e}; free space or choose another output "
                     "(nothing was written there)")


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _folder_of(target: Path) -> Path:
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise AipcError(f"cannot write {target}: folder {folder} does not exist; create it first")
    return folder


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike, mode: int = 0o600) -> Iterator[BinaryIO]:
    """A binary file object whose contents replace ``path`` atomically when the block succeeds."""
    target = Path(path)
    folder = _folder_of(target)
    sweep_stale()
    tmp = temp_sibling(target)
    with _recorded(tmp):
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        except OSError as e:
            raise AipcError(f"cannot write {target}: {e.strerror}; choose a writable output path") from None
        ok = False
        try:
            with os.fdopen(fd, "wb") as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
            ok = True
            _fsync_dir(folder)
        except OSError as e:  # reads raise AipcError in the callers, so this is the write side
            raise write_error(target, e) from None
        finally:
            if not ok:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, *, replace: bool = False) -> Iterator[Path]:
    """A temporary folder that takes the place of ``path`` when the block succeeds.

    ``path`` must not exist unless ``replace``; then the old folder (or file) is removed only after
    the new one is complete. On error the temporary folder and everything in it are removed.
    """
    target = Path(path)
    folder = _folder_of(target)
    if target.exists() and not replace:
        raise AipcError(f"{target} already exists; choose another output or pass --force")
    sweep_stale()
    tmp = temp_sibling(target)
    with _recorded(tmp):
        try:
            os.mkdir(tmp, 0o700)
        except OSError as e:
            raise write_error(target, e) from None
        ok = False
        try:
            yield tmp
            _swap_in(folder, tmp, target)
            ok = True
        except OSError as e:
            raise write_error(target, e) from None
        finally:
            if not ok:
                shutil.rmtree(tmp, ignore_errors=True)


def _swap_in(folder: Path, tmp: Path, target: Path) -> None:
    """Put ``tmp`` at ``target``; what was there is removed only once the new folder is in place."""
    old = None
    if target.exists() or target.is_symlink():
        old = temp_sibling(target, "old")  # not recorded for the sweep: it is the user's previous output
        os.rename(target, old)
    try:
        os.rename(tmp, target)
    except BaseException:
        if old is not None:
            os.rename(old, target)
        raise
    _fsync_dir(folder)
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink()
