"""Atomic checkpoints: a kill at any moment leaves the previous checkpoint intact and usable.

Layout of a run folder::

    checkpoints/step-00000010/  model.safetensors  trainable weights (safetensors)
                                optimizer.pt       optimizer state (torch.save, loads weights_only)
                                rng.pt             python, numpy, torch (+cuda) RNG of every rank
                                state.json         step, data position, scheduler, scaler, settings
                                manifest.json      size and SHA-256 of each of the four files above
    checkpoints/latest          the name of the newest complete checkpoint

A checkpoint is written into ``.tmp-*`` beside its final name, every file fsynced, then renamed into
place, then ``latest`` is replaced atomically. A folder already at the final name (a damaged one, one
of an earlier trajectory after ``--resume-from``, or a foreign one) is first renamed to ``.trash-*``,
so the name only ever holds a complete checkpoint. Older checkpoints beyond ``keep`` are renamed to
``.trash-*`` before removal, so no half-deleted folder ever looks complete.

Every resume verifies the manifest (canonical JSON) and each file's size and digest first: a damaged
checkpoint is refused, naming it and the newest intact one to resume from instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import secrets
import shutil
from pathlib import Path
from typing import Any

from aipc.errors import AipcError

FORMAT = 1
PREFIX = "step-"
MANIFEST = "manifest.json"
FILES = ("model.safetensors", "optimizer.pt", "rng.pt", "state.json")  # what the manifest vouches for


def ckpt_root(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def step_name(step: int) -> str:
    return f"{PREFIX}{step:08d}"


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on folders
        pass
    finally:
        os.close(fd)


def _write_bytes(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


class _Hashing:
    """A write-only file that hashes what passes through it (torch.save writes into it)."""

    def __init__(self, f) -> None:
        self.f, self.name, self.sha, self.size = f, f.name, hashlib.sha256(), 0

    def write(self, data) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self.f.write(data)

    def flush(self) -> None:
        self.f.flush()


def _torch_save(obj: Any, path: Path) -> tuple[int, str]:
    """torch.save into ``path`` (fsynced); returns (bytes, sha256) of what was written."""
    import torch

    with open(path, "wb") as f:
        h = _Hashing(f)
        torch.save(obj, h)
        f.flush()
        os.fsync(f.fileno())
    return h.size, h.sha.hexdigest()


def _digest(data: bytes) -> dict[str, Any]:
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def manifest_bytes(files: dict[str, dict[str, Any]]) -> bytes:
    """The canonical manifest: sorted keys, no spaces, one trailing newline (so any edit shows)."""
    return (json.dumps({"format": FORMAT, "files": files}, sort_keys=True, separators=(",", ":")) + "\n").encode()


def rng_state() -> dict[str, Any]:
    """This process's RNG states (python, numpy, torch CPU, every CUDA device)."""
    import numpy as np
    import torch

    st: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    st["numpy"] = {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                   "has_gauss": int(has_gauss), "gauss": float(gauss)}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: dict[str, Any]) -> None:
    import numpy as np
    import torch

    random.setstate(_tuplify(st["python"]))
    n = st["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def _tuplify(x):
    return tuple(_tuplify(v) for v in x) if isinstance(x, (list, tuple)) else x


def save(run_dir: str | Path, step: int, *, weights: dict, optimizer: dict, rngs: list[dict],
         state: dict[str, Any], keep: int, before_rename=None) -> Path:
    """Write checkpoint ``step`` atomically, point ``latest`` at it, drop checkpoints beyond ``keep``."""
    from safetensors.torch import save as st_save

    root = ckpt_root(run_dir)
    final = root / step_name(step)
    try:
        root.mkdir(parents=True, exist_ok=True)
        _clean_stale(root)
        tmp = root / f".tmp-{final.name}-{secrets.token_hex(4)}"
        tmp.mkdir()
    except OSError as e:
        raise _write_error(final, e) from None
    try:
        files = {}
        blob = st_save({k: v.detach().contiguous().cpu() for k, v in weights.items()})
        _write_bytes(tmp / "model.safetensors", blob)
        files["model.safetensors"] = _digest(blob)
        for name, obj in (("optimizer.pt", optimizer), ("rng.pt", rngs)):
            size, sha = _torch_save(obj, tmp / name)
            files[name] = {"bytes": size, "sha256": sha}
        blob = json.dumps({"format": FORMAT, **state}, indent=1).encode()
        _write_bytes(tmp / "state.json", blob)
        files["state.json"] = _digest(blob)
        _write_bytes(tmp / MANIFEST, manifest_bytes(files))
        _fsync_path(tmp)
        if before_rename is not None:  # test hook: simulate a crash just before the commit
            before_rename(tmp)
        _commit(root, tmp, final)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError):
            raise _write_error(final, e) from None
        raise
    _point_latest(root, final.name)
    _prune(root, keep, protect=final.name)
    return final


def _write_error(final: Path, e: OSError) -> AipcError:
    return AipcError(f"cannot write checkpoint {final}: {e.strerror or e}; free space or choose another --out "
                     "(earlier checkpoints are intact)")


def _commit(root: Path, tmp: Path, final: Path) -> None:
    """Rename ``tmp`` to ``final``; whatever held the name before (damaged, foreign, an earlier trajectory's)
    is moved aside first and removed after, so ``final`` never names anything but a complete checkpoint."""
    old = None
    if final.exists() or final.is_symlink():
        old = root / f".trash-{final.name}-{secrets.token_hex(4)}"
        os.rename(final, old)
    os.rename(tmp, final)
    _fsync_path(root)
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)


def _point_latest(root: Path, name: str) -> None:
    tmp = root / f".latest-{secrets.token_hex(4)}"
    _write_bytes(tmp, (name + "\n").encode())
    os.replace(tmp, root / "latest")
    _fsync_path(root)


def _clean_stale(root: Path) -> None:
    """Remove leftovers of interrupted writes and deletions (never a complete checkpoint)."""
    for p in root.iterdir():
        if p.name.startswith((".tmp-", ".trash-", ".latest-")):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)


def _prune(root: Path, keep: int, protect: str) -> None:
    done = _listed(root)
    for p in done[:-keep] if keep > 0 else []:
        if p.name == protect:
            continue
        trash = root / f".trash-{p.name}-{secrets.token_hex(4)}"
        os.rename(p, trash)
        shutil.rmtree(trash, ignore_errors=True)


def _listed(root: Path) -> list[Path]:
    """Checkpoint folders under ``root`` (oldest first): named step-*, holding a state.json."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX)
                  and (p / "state.json").is_file())


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    return _listed(ckpt_root(run_dir))


def damage(ckpt: Path) -> str | None:
    """What is wrong with checkpoint folder ``ckpt`` (None when every file matches its manifest)."""
    if not ckpt.is_dir():
        return "it is missing or not a folder"
    try:
        raw = (ckpt / MANIFEST).read_bytes()
    except FileNotFoundError:
        return f"no {MANIFEST}: not a complete aipc checkpoint"
    except OSError as e:
        return f"{MANIFEST} is unreadable ({e.strerror})"
    try:
        files = json.loads(raw)["files"]
        ok = raw == manifest_bytes(files) and sorted(files) == sorted(FILES)
    except (ValueError, KeyError, TypeError, AttributeError):
        ok = False
    if not ok:
        return f"{MANIFEST} is damaged"
    for name in FILES:
        bad = _file_damage(ckpt / name, files[name])
        if bad:
            return f"{name} {bad}"
    return None


def _file_damage(path: Path, want: dict[str, Any]) -> str | None:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "is missing"
    if size != want.get("bytes"):
        return f"is {size} bytes, the manifest says {want.get('bytes')} (truncated or changed)"
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while piece := f.read(1 << 20):
                h.update(piece)
    except OSError as e:
        return f"is unreadable ({e.strerror})"
    return None if h.hexdigest() == want.get("sha256") else "does not match its SHA-256 digest (the bytes changed)"


def _refuse(ckpt: Path, problem: str, root: Path) -> AipcError:
    """The one-line refusal: the damaged path, why, and the newest intact checkpoint to use instead."""
    good = next((p for p in reversed(_listed(root)) if p != ckpt and damage(p) is None), None)
    fix = (f"resume from the newest intact one with --resume-from {good}" if good is not None
           else "no intact checkpoint is left; start a new run with another --out")
    return AipcError(f"checkpoint {ckpt} is damaged ({problem}); {fix}")


def find(ref: str | Path) -> Path:
    """The verified checkpoint for a run folder (its ``latest``) or a checkpoint folder itself.

    A damaged checkpoint is refused (never silently skipped), naming the newest intact one."""
    p = Path(ref)
    if (p / "state.json").is_file() or (p / MANIFEST).is_file() or p.name.startswith(PREFIX):
        cand, root = p, p.parent
    else:
        root = ckpt_root(p)
        cand = _latest(root)
        if cand is None:
            raise AipcError(f"no checkpoint in {p}; run without --resume to start, or pass --resume-from CHECKPOINT")
    problem = damage(cand)
    if problem:
        raise _refuse(cand, problem, root)
    return cand


def _latest(root: Path) -> Path | None:
    """The folder ``latest`` names; when it names none (a save cut between its two renames), the newest listed."""
    try:
        name = (root / "latest").read_text().strip()
    except (OSError, UnicodeDecodeError):
        name = ""
    if name and "/" not in name and (root / name).is_dir():
        return root / name
    found = _listed(root)
    return found[-1] if found else None


def read_state(ckpt: Path) -> dict[str, Any]:
    try:
        state = json.loads((ckpt / "state.json").read_text())
    except (OSError, ValueError) as e:
        raise AipcError(f"checkpoint {ckpt} is unreadable ({e}); resume from an earlier one with --resume-from") from None
    if state.get("format") != FORMAT:
        raise AipcError(f"checkpoint {ckpt} has format {state.get('format')}, this aipc reads {FORMAT}")
    return state


def load_tensors(ckpt: Path, device: str) -> tuple[dict, dict, list[dict]]:
    """(weights, optimizer state, per-rank RNG states) of a checkpoint."""
    import torch
    from safetensors.torch import load_file

    try:
        weights = load_file(str(ckpt / "model.safetensors"), device=device)
        optim = torch.load(ckpt / "optimizer.pt", map_location=device, weights_only=True)
        rngs = torch.load(ckpt / "rng.pt", map_location="cpu", weights_only=True)
    except Exception as e:  # safetensors / pickle errors for damaged files (digests make this rare)
        why = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise _refuse(ckpt, why, ckpt.parent) from None
    return weights, optim, rngs
