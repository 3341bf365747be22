"""Sealed files: round trips, the documented format, and every kind of damage detected."""

from __future__ import annotations

import base64
import os
import stat
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aipc.errors import AipcError
from aipc.privacy import seal as S
from aipc.privacy.keys import load_key, new_key_file, parse_key, read_key_file

KEY = bytes(range(32))
OTHER = bytes(range(1, 33))
CHUNK = 64  # small chunks so a few hundred bytes span several of them


def sealed(data: bytes, key: bytes = KEY, chunk: int = CHUNK) -> bytes:
    return S.seal_bytes(data, key, chunk_bytes=chunk)


@pytest.mark.parametrize("n", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 5])
def test_round_trip_sizes_and_layout(n):
    data = os.urandom(n)
    blob = sealed(data)
    chunks = n // CHUNK + 1  # full chunks, then a final chunk of 0..CHUNK-1 bytes (empty for exact multiples)
    assert len(blob) == S.HEADER_BYTES + n + chunks * S.TAG_BYTES
    assert blob.startswith(S.MAGIC)
    assert S.unseal_bytes(blob, KEY) == data


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=2000), chunk=st.integers(min_value=1, max_value=300))
def test_round_trip_property(data, chunk):
    assert S.unseal_bytes(S.seal_bytes(data, KEY, chunk_bytes=chunk), KEY) == data


def test_same_plaintext_seals_differently_each_time():
    a, b = sealed(b"same data"), sealed(b"same data")
    assert a != b and a[14:30] != b[14:30]  # fresh salt per file -> fresh file key


def test_format_matches_the_documentation():
    """Decrypt by hand from the format in seal.py's docstring, with cryptography directly."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    data = b"A" * CHUNK + b"tail"
    blob = sealed(data)
    header = blob[:53]
    magic, version, reserved, chunk, salt, prefix, check = struct.unpack(">8sBBI16s7s16s", header)
    assert (magic, version, reserved, chunk) == (b"AIPCSEAL", 1, 0, CHUNK)
    okm = HKDF(algorithm=hashes.SHA256(), length=48, salt=salt, info=b"aipc-seal v1").derive(KEY)
    assert okm[32:] == check
    aead = AESGCM(okm[:32])
    c0, c1 = blob[53:53 + CHUNK + 16], blob[53 + CHUNK + 16:]
    assert aead.decrypt(prefix + struct.pack(">IB", 0, 0), c0, header) == b"A" * CHUNK
    assert aead.decrypt(prefix + struct.pack(">IB", 1, 1), c1, header) == b"tail"


def test_wrong_key_is_named_as_such():
    with pytest.raises(S.SealError, match="wrong key"):
        S.unseal_bytes(sealed(b"secret"), OTHER)


def test_every_single_bit_flip_is_detected():
    data = os.urandom(3 * CHUNK + 10)
    blob = sealed(data)
    for i in range(len(blob)):
        bad = bytearray(blob)
        bad[i] ^= 0x01
        with pytest.raises(S.SealError):
            S.unseal_bytes(bytes(bad), KEY)


def test_every_truncation_is_detected_and_boundary_cuts_say_truncated():
    blob = sealed(os.urandom(3 * CHUNK + 10))
    for n in range(len(blob)):
        with pytest.raises(S.SealError):
            S.unseal_bytes(blob[:n], KEY)
    cut = S.HEADER_BYTES + 2 * (CHUNK + S.TAG_BYTES)  # drop the last chunk exactly
    with pytest.raises(S.SealError, match="truncated .*not the final chunk"):
        S.unseal_bytes(blob[:cut], KEY)


def test_reordered_and_appended_chunks_are_detected():
    blob = sealed(os.urandom(3 * CHUNK))
    h, size = S.HEADER_BYTES, CHUNK + S.TAG_BYTES
    c = [blob[h + i * size: h + (i + 1) * size] for i in range(3)]
    with pytest.raises(S.SealError, match="chunk 0 failed authentication"):
        S.unseal_bytes(blob[:h] + c[1] + c[0] + c[2], KEY)
    with pytest.raises(S.SealError):
        S.unseal_bytes(blob + c[0], KEY)  # data appended after the final chunk
    other = sealed(os.urandom(3 * CHUNK))  # a chunk spliced in from another file under the same key
    with pytest.raises(S.SealError):
        S.unseal_bytes(blob[:h + size] + other[h + size: h + 2 * size] + c[2], KEY)


def test_not_sealed_and_bad_headers():
    with pytest.raises(S.SealError, match="not an aipc sealed file"):
        S.unseal_bytes(b'{"text": "plain"}\n', KEY)
    blob = bytearray(sealed(b"x"))
    blob[8] = 9
    with pytest.raises(S.SealError, match="version 9 is not supported"):
        S.unseal_bytes(bytes(blob), KEY)
    blob = bytearray(sealed(b"x"))
    blob[10:14] = struct.pack(">I", 2**31)
    with pytest.raises(S.SealError, match="header is damaged"):
        S.unseal_bytes(bytes(blob), KEY)


def test_streaming_yields_before_the_input_is_exhausted():
    pulled = []

    def source():
        for i in range(5):
            pulled.append(i)
            yield bytes([i]) * (1 << 20)

    stream = S.seal_stream(source(), KEY)
    next(stream)  # header
    first = next(stream)
    assert len(first) == (1 << 20) + S.TAG_BYTES
    assert len(pulled) <= 2  # only one piece of look-ahead, never the whole input


def test_files_round_trip_and_helpers(tmp_path):
    src = tmp_path / "data.jsonl"
    src.write_bytes(os.urandom(3 * (1 << 20) + 123))  # spans 4 chunks of 1 MiB
    out = tmp_path / "data.jsonl.sealed"
    n = S.seal_file(src, out, KEY)
    assert n == out.stat().st_size and S.is_sealed(out) and not S.is_sealed(src)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert S.open_sealed(out, KEY) == src.read_bytes()
    assert b"".join(S.iter_sealed(out, KEY)) == src.read_bytes()
    assert S.read_maybe_sealed(out, KEY) == S.read_maybe_sealed(src) == src.read_bytes()
    with pytest.raises(AipcError, match="already sealed"):
        S.seal_file(out, tmp_path / "twice", KEY)


def test_write_sealed_atomic_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "ckpt.safetensors.sealed"
    S.write_sealed_atomic(target, b"good checkpoint", KEY)

    def failing():
        yield b"x" * 1000
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        S.write_sealed_atomic(target, failing(), KEY, chunk_bytes=100)
    assert S.open_sealed(target, KEY) == b"good checkpoint"
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]  # no temp file left


def test_unseal_of_damaged_file_leaves_no_plaintext(tmp_path):
    src = tmp_path / "secret.txt.sealed"
    blob = bytearray(sealed(b"p" * (5 * CHUNK + 10)))
    blob[-3] ^= 0x80  # damage the last chunk: earlier chunks decrypt fine before the fault is found
    src.write_bytes(bytes(blob))
    dst = tmp_path / "secret.txt"
    with pytest.raises(S.SealError, match="chunk 5 failed"):
        S.unseal_file(src, dst, KEY)
    assert sorted(p.name for p in tmp_path.iterdir()) == [src.name]


# --- keys ---------------------------------------------------------------------------------------

def test_parse_key_encodings():
    assert parse_key(KEY.hex()) == KEY
    assert parse_key(KEY.hex().upper() + "\n") == KEY
    assert parse_key(base64.b64encode(KEY).decode()) == KEY
    assert parse_key(base64.urlsafe_b64encode(OTHER).decode().rstrip("=")) == OTHER
    for bad in ("", "abc", KEY.hex()[:-2], base64.b64encode(b"short").decode()):
        with pytest.raises(AipcError, match="not a 32-byte key"):
            parse_key(bad)


def test_new_key_file_is_private_random_and_never_overwritten(tmp_path):
    p = new_key_file(tmp_path / "k.key")
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    key = read_key_file(p)
    assert len(key) == 32 and key != read_key_file(new_key_file(tmp_path / "k2.key"))
    before = p.read_bytes()
    with pytest.raises(AipcError, match="already exists"):
        new_key_file(p)
    assert p.read_bytes() == before


def test_key_file_readable_by_others_is_refused(tmp_path):
    p = new_key_file(tmp_path / "k.key")
    os.chmod(p, 0o644)
    with pytest.raises(AipcError, match="chmod 600"):
        read_key_file(p)


def test_load_key_sources(tmp_path, monkeypatch):
    monkeypatch.delenv("AIPC_SEAL_KEY", raising=False)
    with pytest.raises(AipcError, match="no seal key given; pass --key-file"):
        load_key(None)
    monkeypatch.setenv("AIPC_SEAL_KEY", KEY.hex())
    assert load_key(None) == KEY
    p = new_key_file(tmp_path / "k.key")
    assert load_key(p) == read_key_file(p) != KEY  # a key file wins over the environment
    with pytest.raises(AipcError, match="not found"):
        load_key(tmp_path / "missing.key")


def test_sealed_safetensors_checkpoint_round_trip(tmp_path):
    """The path train takes: state dict -> safetensors bytes -> sealed file -> verified bytes -> tensors."""
    torch = pytest.importorskip("torch")
    from safetensors.torch import load, save

    state = {"w": torch.randn(64, 32), "b": torch.arange(10, dtype=torch.int64)}
    path = tmp_path / "model.safetensors.sealed"
    S.write_sealed_atomic(path, save(state), KEY)
    assert b"dtype" in save(state) and b"dtype" not in path.read_bytes() and S.is_sealed(path)
    back = load(S.open_sealed(path, KEY))
    assert back.keys() == state.keys() and all(torch.equal(back[k], state[k]) for k in state)
