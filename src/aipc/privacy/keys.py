"""Seal keys: 32 random bytes, kept in a key file (hex or base64) or in ``AIPC_SEAL_KEY``.

A key file is created with mode 0600 and never overwritten (losing a key loses the data sealed with
it). Loading refuses a key file that other users can read, as ssh does for private keys.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import secrets
import stat
from pathlib import Path

from aipc.errors import AipcError, stat_or_error

KEY_BYTES = 32  # AES-256
KEY_ENV = "AIPC_SEAL_KEY"
NO_KEY_FIX = f"pass --key-file KEYFILE or set {KEY_ENV}; make a key with 'aipc seal --new-key KEYFILE'"


def parse_key(text: str | bytes, where: str = "the key") -> bytes:
    """32 key bytes from 64 hex digits or base64 (standard or URL-safe) text; whitespace ignored."""
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            raise AipcError(f"{where} is not text; a seal key is 64 hex digits or base64 of 32 bytes ({NO_KEY_FIX})") from None
    s = "".join(text.split())
    if len(s) == 2 * KEY_BYTES:
        try:
            return bytes.fromhex(s)
        except ValueError:
            pass
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            raw = decode(s + "=" * (-len(s) % 4))
        except (binascii.Error, ValueError):
            continue
        if len(raw) == KEY_BYTES:
            return raw
    raise AipcError(
        f"{where} is not a 32-byte key (got {len(s)} characters); a seal key is 64 hex digits or "
        f"base64 of 32 random bytes; make one with 'aipc seal --new-key KEYFILE'"
    )


def new_key_file(path: str | os.PathLike) -> Path:
    """Write 32 random bytes as hex to a new file with mode 0600; refuse to overwrite an existing one.

    The key is written and fsynced under a temporary name, then hard-linked to ``path`` (which fails if
    ``path`` exists): the key file appears complete or not at all — a full disk leaves no empty key file.
    """
    from aipc.privacy.atomic import _recorded, temp_sibling

    p = Path(path).expanduser()
    if not p.parent.is_dir():
        raise AipcError(f"cannot create key file {p}: folder {p.parent} does not exist; create it first")
    if p.exists() or p.is_symlink():
        raise _exists_error(p)
    tmp = temp_sibling(p)
    with _recorded(tmp):
        try:
            _write_private(tmp, (secrets.token_bytes(KEY_BYTES).hex() + "\n").encode())
            os.link(tmp, p)
        except FileExistsError:
            raise _exists_error(p) from None
        except OSError as e:
            raise AipcError(f"cannot create key file {p}: {e.strerror}; free space or choose a writable path "
                            "(no key file was written)") from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    return p


def _exists_error(p: Path) -> AipcError:
    return AipcError(f"key file {p} already exists; refusing to overwrite a key (data sealed with it would be lost); "
                     "choose another path")


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # umask cannot widen it, but be explicit
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def read_key_file(path: str | os.PathLike) -> bytes:
    """The key in ``path``; refuses files that group or others may read (POSIX)."""
    p = Path(path).expanduser()
    st = stat_or_error(p, f"key file {p} not found or not readable; {NO_KEY_FIX}")
    if not stat.S_ISREG(st.st_mode):
        raise AipcError(f"key file {p} is not a regular file; {NO_KEY_FIX}")
    if os.name == "posix" and st.st_mode & 0o077:
        raise AipcError(
            f"key file {p} is readable by other users (mode {stat.S_IMODE(st.st_mode):04o}); run 'chmod 600 {p}'"
        )
    if st.st_size > 4096:
        raise AipcError(f"key file {p} is {st.st_size} bytes, too large for a key; {NO_KEY_FIX}")
    return parse_key(p.read_bytes(), where=f"key file {p}")


def load_key(key_file: str | os.PathLike | None = None, *, env: str = KEY_ENV) -> bytes:
    """The seal key: from ``key_file`` if given, else from the environment variable ``env``."""
    if key_file is not None and str(key_file) != "":
        return read_key_file(key_file)
    text = os.environ.get(env)
    if text:
        return parse_key(text, where=f"${env}")
    raise AipcError(f"no seal key given; {NO_KEY_FIX}")
