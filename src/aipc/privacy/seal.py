"""Sealed files: AES-256-GCM encryption at rest, streamed in chunks so large files never load whole.

File format (version 1), all integers big-endian::

    header (53 bytes) = magic b"AIPCSEAL" | version u8 = 1 | reserved u8 = 0 | chunk_bytes u32
                        | salt (16 random bytes) | nonce_prefix (7 random bytes) | key_check (16 bytes)
    chunk i           = AES-256-GCM(file_key, nonce_i, plaintext_i, aad=header) -> ciphertext_i | tag (16)
    nonce_i           = nonce_prefix (7) | i as u32 (4) | last flag u8 (1: final chunk, 0: not)

``file_key | key_check = HKDF-SHA256(master key, salt, info="aipc-seal v1", 48 bytes)``: every file
gets a fresh key, so nonces never repeat under one key. Each chunk but the last holds exactly
``chunk_bytes`` of plaintext; the last holds 0..chunk_bytes-1 and is the only one sealed with the
last flag set (an empty file, or one whose size is a multiple of chunk_bytes, ends in an empty final
chunk). Because the index and the last flag are in
the nonce and the header is the associated data, any change to the header, a chunk's bytes or the
chunk order, dropping chunks from the end, or appending data fails authentication. ``key_check``
tells a wrong key apart from a damaged file. The construction follows the STREAM scheme of Hoang,
Reyhanitabar, Rogaway and Vizár (CRYPTO 2015), as Tink's AES-GCM-HKDF streaming AEAD does.

Readers yield a chunk's plaintext only after its tag verified; a file cut short is detected when
the stream ends, so callers that stream must treat the data as unconfirmed until iteration
finishes (:func:`open_sealed` returns only after the whole file verified).
"""

from __future__ import annotations

import hmac
import os
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from aipc.errors import AipcError
from aipc.privacy.atomic import atomic_writer
from aipc.privacy.keys import KEY_BYTES, load_key

MAGIC = b"AIPCSEAL"
VERSION = 1
SALT_BYTES, PREFIX_BYTES, CHECK_BYTES, TAG_BYTES = 16, 7, 16, 16
_HEAD = struct.Struct(">8sBBI16s7s16s")
HEADER_BYTES = _HEAD.size  # 53
DEFAULT_CHUNK_BYTES = 1 << 20  # 1 MiB of plaintext per chunk
MAX_CHUNK_BYTES = 64 << 20  # refuse headers asking for more (a damaged header must not allocate GBs)
SUFFIX = ".sealed"
_INFO = b"aipc-seal v1"


class SealError(AipcError):
    """A sealed file could not be opened: wrong key, tampering, truncation, not a sealed file."""


def _derive(key: bytes, salt: bytes) -> tuple[bytes, bytes]:
    """(file_key, key_check) = HKDF-SHA256(key, salt, info='aipc-seal v1') split 32 | 16."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    if len(key) != KEY_BYTES:
        raise AipcError(f"a seal key is {KEY_BYTES} bytes, got {len(key)}; make one with 'aipc seal --new-key KEYFILE'")
    okm = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES + CHECK_BYTES, salt=salt, info=_INFO).derive(key)
    return okm[:KEY_BYTES], okm[KEY_BYTES:]


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    """nonce_i = prefix (7 bytes) | index u32 | last flag u8 — 12 bytes, unique per chunk of a file."""
    if index >= 1 << 32:
        raise AipcError("file too large to seal: more than 2^32 chunks; use a larger chunk size")
    return prefix + struct.pack(">IB", index, 1 if last else 0)


def _rechunk(data: Iterable[bytes], size: int) -> Iterator[bytes]:
    """Bytes from ``data`` regrouped into pieces of exactly ``size`` (the last may be shorter or empty)."""
    buf = bytearray()
    for piece in data:
        buf += piece
        while len(buf) >= size:
            yield bytes(buf[:size])
            del buf[:size]
    yield bytes(buf)


def seal_stream(data: Iterable[bytes], key: bytes, *, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> Iterator[bytes]:
    """Sealed bytes (header, then one sealed chunk at a time) for the plaintext pieces in ``data``."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if not 1 <= chunk_bytes <= MAX_CHUNK_BYTES:
        raise AipcError(f"chunk size must be 1..{MAX_CHUNK_BYTES} bytes, got {chunk_bytes}")
    salt, prefix = os.urandom(SALT_BYTES), os.urandom(PREFIX_BYTES)
    file_key, check = _derive(key, salt)
    header = _HEAD.pack(MAGIC, VERSION, 0, chunk_bytes, salt, prefix, check)
    aead = AESGCM(file_key)
    yield header
    pieces = _rechunk(data, chunk_bytes)
    current = next(pieces)  # _rechunk always yields at least one piece
    index = 0
    for following in pieces:  # look one piece ahead: only the true last piece gets the last flag
        yield aead.encrypt(_nonce(prefix, index, False), current, header)
        current, index = following, index + 1
    yield aead.encrypt(_nonce(prefix, index, True), current, header)


def _read_exact(f: BinaryIO, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        got = f.read(n - len(out))
        if not got:
            break
        out += got
    return bytes(out)


def unseal_stream(f: BinaryIO, key: bytes, *, name: str = "input") -> Iterator[bytes]:
    """Verified plaintext chunks from the sealed stream ``f``; raises :class:`SealError` on any fault."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    header = _read_exact(f, HEADER_BYTES)
    if len(header) < len(MAGIC) or header[: len(MAGIC)] != MAGIC:
        raise SealError(f"{name} is not an aipc sealed file (no {MAGIC.decode()} header); seal it with 'aipc seal'")
    if len(header) < HEADER_BYTES:
        raise SealError(f"cannot unseal {name}: the file is truncated inside its header; restore it from a good copy")
    magic, version, _reserved, chunk_bytes, salt, prefix, check = _HEAD.unpack(header)
    if version != VERSION:
        raise SealError(f"cannot unseal {name}: sealed-file version {version} is not supported (this aipc reads version {VERSION}); upgrade aipc")
    if not 1 <= chunk_bytes <= MAX_CHUNK_BYTES:
        raise SealError(f"cannot unseal {name}: its header is damaged (chunk size {chunk_bytes}); restore it from a good copy")
    file_key, expect = _derive(key, salt)
    if not hmac.compare_digest(check, expect):
        raise SealError(f"cannot unseal {name}: wrong key (it was sealed with a different key); pass the right --key-file or AIPC_SEAL_KEY")
    aead = AESGCM(file_key)
    size = chunk_bytes + TAG_BYTES
    current = _read_exact(f, size)
    index = 0
    while True:
        following = _read_exact(f, size) if len(current) == size else b""
        last = not following
        if len(current) < TAG_BYTES:
            raise SealError(f"cannot unseal {name}: the file is truncated (chunk {index} is cut short); restore it from a good copy")
        try:
            plain = aead.decrypt(_nonce(prefix, index, last), current, header)
        except InvalidTag:
            if last:
                try:  # a whole chunk sealed as "not last" at the end: chunks were dropped from the end
                    aead.decrypt(_nonce(prefix, index, False), current, header)
                except InvalidTag:
                    pass
                else:
                    raise SealError(f"cannot unseal {name}: the file is truncated (it ends after chunk {index}, which is not the final chunk); restore it from a good copy") from None
            raise SealError(f"cannot unseal {name}: chunk {index} failed authentication — the file was modified, reordered or truncated; restore it from a good copy") from None
        yield plain
        if last:
            return
        current, index = following, index + 1


def seal_bytes(data: bytes, key: bytes, *, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> bytes:
    """``data`` sealed in memory (same format as a sealed file)."""
    return b"".join(seal_stream([data], key, chunk_bytes=chunk_bytes))


def unseal_bytes(blob: bytes, key: bytes, *, name: str = "input") -> bytes:
    """The plaintext of a sealed blob, after every chunk verified."""
    import io

    return b"".join(unseal_stream(io.BytesIO(blob), key, name=name))


def is_sealed(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a file that starts with the aipc sealed-file magic."""
    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except (IsADirectoryError, FileNotFoundError, PermissionError):
        return False


def iter_sealed(path: str | os.PathLike, key: bytes) -> Iterator[bytes]:
    """Verified plaintext chunks of a sealed file (truncation raises when the iteration ends)."""
    p = Path(path)
    try:
        f = open(p, "rb")
    except FileNotFoundError:
        raise AipcError(f"sealed file {p} not found; check the path") from None
    except OSError as e:
        raise AipcError(f"cannot read {p}: {e.strerror}; check the file") from None
    with f:
        try:
            yield from unseal_stream(f, key, name=str(p))
        except OSError as e:
            raise AipcError(f"cannot read {p}: {e.strerror}; check the file") from None


def open_sealed(path: str | os.PathLike, key: bytes) -> bytes:
    """The whole plaintext of a sealed file, returned only after every chunk verified."""
    return b"".join(iter_sealed(path, key))


def read_maybe_sealed(path: str | os.PathLike, key: bytes | None = None, *, key_file: str | os.PathLike | None = None) -> bytes:
    """A file's bytes, decrypting it if it is sealed (key: ``key``, else ``key_file``, else AIPC_SEAL_KEY)."""
    if not is_sealed(path):
        return Path(path).read_bytes()
    return open_sealed(path, key if key is not None else load_key(key_file))


def write_sealed_atomic(path: str | os.PathLike, data: bytes | Iterable[bytes], key: bytes, *, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> int:
    """Seal ``data`` (bytes or an iterable of byte pieces) to ``path`` atomically; returns bytes written.

    The sealed bytes go to a temporary file beside ``path`` that replaces it only when complete, so a
    crash leaves either the old file or the new one, never half of one.
    """
    pieces = [data] if isinstance(data, (bytes, bytearray, memoryview)) else data
    with atomic_writer(path) as out:
        for blob in seal_stream((bytes(p) for p in pieces), key, chunk_bytes=chunk_bytes):
            out.write(blob)
        return out.tell()


def _file_chunks(path: Path, size: int = DEFAULT_CHUNK_BYTES) -> Iterator[bytes]:
    try:
        with open(path, "rb") as f:
            while piece := f.read(size):
                yield piece
    except OSError as e:  # a read error must not be reported as a write error
        raise AipcError(f"cannot read {path}: {e.strerror}; check the file") from None


def seal_file(src: str | os.PathLike, dst: str | os.PathLike, key: bytes, *, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> int:
    """Seal the file ``src`` to ``dst`` (atomic, streamed); returns the sealed size in bytes."""
    src = Path(src)
    if is_sealed(src):
        raise AipcError(f"{src} is already sealed; unseal it first or seal the plaintext file")
    return write_sealed_atomic(dst, _file_chunks(src, chunk_bytes), key, chunk_bytes=chunk_bytes)


def unseal_file(src: str | os.PathLike, dst: str | os.PathLike, key: bytes) -> int:
    """Unseal ``src`` to ``dst`` (mode 0600, atomic): on any fault nothing is left at ``dst``."""
    with atomic_writer(dst) as out:
        for piece in iter_sealed(src, key):
            out.write(piece)
        return out.tell()
