"""Twenty ways a checkpoint folder gets damaged (no tests here): used by tests/test_train_checkpoint_digests.py
and scripts/reliability.py. Each takes the checkpoint folder and a random.Random and damages it in place."""

from __future__ import annotations

import json
import random
import shutil
import struct
from pathlib import Path
from typing import Callable

DATA_FILES = ("model.safetensors", "optimizer.pt", "rng.pt", "state.json", "manifest.json")


def flip_bit(path: Path, rng: random.Random, offset: int | None = None) -> int:
    """Flip one bit at ``offset`` (random when None); returns the offset."""
    data = bytearray(path.read_bytes())
    at = rng.randrange(len(data)) if offset is None else offset
    data[at] ^= 1 << rng.randrange(8)
    path.write_bytes(bytes(data))
    return at


def truncate(path: Path, rng: random.Random) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: rng.randrange(len(data))])


def exponent_flip(ckpt: Path, rng: random.Random) -> None:
    """The issue's case: one exponent bit of one fp32 weight in model.safetensors' tensor data."""
    path = ckpt / "model.safetensors"
    data = path.read_bytes()
    header = struct.unpack("<Q", data[:8])[0]
    start = 8 + header
    n = (len(data) - start) // 4
    at = start + 4 * rng.randrange(n) + 3  # little-endian fp32: byte 3 holds the sign and 7 exponent bits
    flip_bit(path, rng, at)


def foreign(ckpt: Path, rng: random.Random) -> None:
    """Someone else's folder under our name: files with the right names but other contents."""
    shutil.rmtree(ckpt)
    ckpt.mkdir()
    for name in DATA_FILES[:-1]:
        (ckpt / name).write_bytes(rng.randbytes(64))
    (ckpt / "state.json").write_text(json.dumps({"format": 1, "step": int(ckpt.name.split("-")[1])}))


def emptied(ckpt: Path, rng: random.Random) -> None:
    shutil.rmtree(ckpt)
    ckpt.mkdir()


def _per_file(action: Callable[[Path, random.Random], None], name: str) -> Callable[[Path, random.Random], None]:
    return lambda ckpt, rng: action(ckpt / name, rng)


def _delete(path: Path, rng: random.Random) -> None:
    path.unlink()


def _empty(path: Path, rng: random.Random) -> None:
    path.write_bytes(b"")


def _flip(path: Path, rng: random.Random) -> None:
    flip_bit(path, rng)


CORRUPTIONS: dict[str, Callable[[Path, random.Random], None]] = {
    **{f"bit flip in {n}": _per_file(_flip, n) for n in DATA_FILES},
    **{f"truncated {n}": _per_file(truncate, n) for n in DATA_FILES},
    **{f"deleted {n}": _per_file(_delete, n) for n in DATA_FILES},
    "empty rng.pt": _per_file(_empty, "rng.pt"),
    "exponent bit of a weight in model.safetensors": exponent_flip,
    "foreign folder under the checkpoint's name": foreign,
    "empty folder under the checkpoint's name": emptied,
}
assert len(CORRUPTIONS) == 19  # + "a checkpoint of another model" (needs the training loop) = 20
