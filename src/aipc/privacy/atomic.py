"""Atomic file and folder writes: a temporary sibling that replaces the target only when complete.

A crash or an error leaves either the old target or the new one, never a half-written file, and the
temporary file is removed on error. New files are created with mode 0600 (they may hold plaintext).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from aipc.errors import AipcError


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


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike, mode: int = 0o600) -> Iterator[BinaryIO]:
    """A binary file object whose contents replace ``path`` atomically when the block succeeds."""
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise AipcError(f"cannot write {target}: folder {folder} does not exist; create it first")
    tmp = folder / f".{target.name}.aipc-tmp-{secrets.token_hex(4)}"
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
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise AipcError(f"cannot write {target}: folder {folder} does not exist; create it first")
    if target.exists() and not replace:
        raise AipcError(f"{target} already exists; choose another output or pass --force")
    tmp = folder / f".{target.name}.aipc-tmp-{secrets.token_hex(4)}"
    os.mkdir(tmp, 0o700)
    ok = False
    try:
        yield tmp
        old = None
        if target.exists() or target.is_symlink():
            old = folder / f".{target.name}.aipc-old-{secrets.token_hex(4)}"
            os.rename(target, old)
        os.rename(tmp, target)
        ok = True
        _fsync_dir(folder)
        if old is not None:
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink()
    finally:
        if not ok:
            shutil.rmtree(tmp, ignore_errors=True)
