"""Atomic checkpoints: a kill at any moment leaves the previous checkpoint intact and usable.

Layout of a run folder::

    checkpoints/step-00000010/  model.safetensors  trainable weights (safetensors)
                                optimizer.pt       optimizer state (torch.save, loads weights_only)
                                rng.pt             python, numpy, torch (+cuda) RNG of every rank
                                state.json         step, data position, scheduler, scaler, settings
    checkpoints/latest          the name of the newest complete checkpoint

A checkpoint is written into ``.tmp-*`` beside its final name, every file fsynced, then renamed into
place (one atomic rename), then ``latest`` is replaced atomically. Older checkpoints beyond ``keep``
are renamed to ``.trash-*`` before removal, so no half-deleted folder ever looks complete.
"""

from __future__ import annotations

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
    import torch
    from safetensors.torch import save as st_save

    root = ckpt_root(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / step_name(step)
    if final.exists():  # the same step again (resumed at the end): already complete on disk
        _point_latest(root, final.name)
        return final
    _clean_stale(root)
    tmp = root / f".tmp-{final.name}-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        _write_bytes(tmp / "model.safetensors",
                     st_save({k: v.detach().contiguous().cpu() for k, v in weights.items()}))
        torch.save(optimizer, tmp / "optimizer.pt")
        torch.save(rngs, tmp / "rng.pt")
        for name in ("optimizer.pt", "rng.pt"):
            _fsync_path(tmp / name)
        _write_bytes(tmp / "state.json", json.dumps({"format": FORMAT, **state}, indent=1).encode())
        _fsync_path(tmp)
        if before_rename is not None:  # test hook: simulate a crash just before the commit
            before_rename(tmp)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_path(root)
    _point_latest(root, final.name)
    _prune(root, keep, protect=final.name)
    return final


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
    done = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX))
    for p in done[:-keep] if keep > 0 else []:
        if p.name == protect:
            continue
        trash = root / f".trash-{p.name}-{secrets.token_hex(4)}"
        os.rename(p, trash)
        shutil.rmtree(trash, ignore_errors=True)


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    root = ckpt_root(run_dir)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX)
                  and (p / "state.json").is_file())


def find(ref: str | Path) -> Path:
    """The checkpoint folder for a run folder (its ``latest``) or a checkpoint folder itself."""
    p = Path(ref)
    if (p / "state.json").is_file():
        return p
    root = ckpt_root(p)
    latest = root / "latest"
    if latest.is_file():
        cand = root / latest.read_text().strip()
        if (cand / "state.json").is_file():
            return cand
    found = list_checkpoints(p)
    if found:
        return found[-1]
    raise AipcError(f"no checkpoint in {p}; run without --resume to start, or pass --resume-from CHECKPOINT")


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
    except Exception as e:  # safetensors / pickle errors for damaged files
        raise AipcError(f"checkpoint {ckpt} is damaged ({str(e).splitlines()[0]}); "
                        "resume from an earlier one with --resume-from") from None
    return weights, optim, rngs
