"""Seal and unseal a file or a whole folder (a dataset, a checkpoint), all or nothing.

A folder is sealed file by file into a mirror folder whose files carry the ``.sealed`` suffix, so a
reader can open one file (``config.json.sealed``) without decrypting the rest. File names and sizes
stay visible; the contents do not. The output folder appears only when every file is done.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from aipc.errors import AipcError
from aipc.privacy.atomic import atomic_dir
from aipc.privacy.seal import SUFFIX, is_sealed, seal_file, unseal_file


@dataclass(frozen=True)
class SealResult:
    """What a seal or unseal did: paths, number of files, bytes in and out."""

    action: str
    input: str
    output: str
    files: int
    input_bytes: int
    output_bytes: int


_NOT_REGULAR = "is not a regular file (a device, pipe or socket); aipc seals only regular files and folders"


def _files(root: Path) -> list[Path]:
    """Every regular file under ``root`` (sorted); a symbolic link, pipe, device or socket is an error."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            if p.is_symlink():
                raise AipcError(f"{p} is a symbolic link; aipc seals only regular files — replace the link with the file")
        for name in filenames:
            p = Path(dirpath) / name
            if not stat.S_ISREG(p.lstat().st_mode):
                raise AipcError(f"{p} {_NOT_REGULAR}; move it out of the folder")
            out.append(p)
    return sorted(out)


def check_output(src: Path, dst: Path, force: bool, keep: tuple[Path, ...] = ()) -> None:
    """Refuse an output that would replace or hold anything the user started from (inputs, ``keep``)."""
    s, d = src.resolve(), dst.resolve()
    if d == s:
        raise AipcError(f"output {dst} is the input itself; choose another output with -o")
    if d.is_relative_to(s):
        raise AipcError(f"output {dst} is inside the input {src}; choose an output outside it")
    if s.is_relative_to(d):
        raise AipcError(f"output {dst} contains the input {src}; replacing it would delete the input — choose another output")
    for k in keep:
        if k.resolve().is_relative_to(d):
            raise AipcError(f"output {dst} holds {k}; replacing it would delete that file — choose another output")
    if not (dst.exists() or dst.is_symlink()):
        return
    if not force:
        raise AipcError(f"output {dst} already exists; choose another with -o or pass --force to replace it")
    mode = dst.lstat().st_mode
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise AipcError(f"output {dst} is not a regular file or folder; choose another with -o")
    if stat.S_ISDIR(mode) != src.is_dir():
        raise AipcError(f"output {dst} exists and is a {'folder' if dst.is_dir() else 'file'}; choose another with -o")


def _exists(src: Path) -> None:
    try:
        mode = src.stat().st_mode
    except FileNotFoundError:
        raise AipcError(f"{src} not found; check the path") from None
    if src.is_symlink() and stat.S_ISDIR(mode):
        raise AipcError(f"{src} is a symbolic link; pass the folder it points to")
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise AipcError(f"{src} {_NOT_REGULAR}; pass a file or a folder")


def seal_path(src: str | os.PathLike, dst: str | os.PathLike | None, key: bytes, *, force: bool = False,
              keep: tuple[Path, ...] = ()) -> SealResult:
    """Seal a file to ``dst`` (default ``SRC.sealed``) or a folder to a mirror folder of sealed files.

    ``keep``: other files the output must not replace (the key file)."""
    src = Path(src)
    _exists(src)
    dst = Path(dst) if dst else src.with_name(src.name + SUFFIX)
    check_output(src, dst, force, keep)
    if src.is_file():
        n_in = src.stat().st_size
        return SealResult("seal", str(src), str(dst), 1, n_in, seal_file(src, dst, key))
    files = _files(src)
    n_in = n_out = 0
    with atomic_dir(dst, replace=force) as tmp:
        for f in files:
            rel = f.relative_to(src)
            (tmp / rel.parent).mkdir(parents=True, exist_ok=True)
            n_in += f.stat().st_size
            n_out += seal_file(f, tmp / rel.parent / (rel.name + SUFFIX), key)
    return SealResult("seal", str(src), str(dst), len(files), n_in, n_out)


def _unsealed_name(p: Path) -> Path:
    if p.name.endswith(SUFFIX) and len(p.name) > len(SUFFIX):
        return p.with_name(p.name[: -len(SUFFIX)])
    raise AipcError(f"cannot name the output for {p} (it does not end in {SUFFIX}); pass -o OUT")


def unseal_path(src: str | os.PathLike, dst: str | os.PathLike | None, key: bytes, *, force: bool = False,
                keep: tuple[Path, ...] = ()) -> SealResult:
    """Unseal a sealed file or a folder of sealed files; on any fault no plaintext is left behind."""
    src = Path(src)
    _exists(src)
    dst = Path(dst) if dst else _unsealed_name(src)
    check_output(src, dst, force, keep)
    if src.is_file():
        return SealResult("unseal", str(src), str(dst), 1, src.stat().st_size, unseal_file(src, dst, key))
    files = _files(src)
    for f in files:  # check every file before writing any plaintext
        if not is_sealed(f):
            raise AipcError(f"{f} is not an aipc sealed file; a sealed folder holds only sealed files — move it out and retry")
    n_in = n_out = 0
    with atomic_dir(dst, replace=force) as tmp:
        for f in files:
            rel = f.relative_to(src)
            (tmp / rel.parent).mkdir(parents=True, exist_ok=True)
            name = rel.name[: -len(SUFFIX)] if rel.name.endswith(SUFFIX) and len(rel.name) > len(SUFFIX) else rel.name
            n_in += f.stat().st_size
            n_out += unseal_file(f, tmp / rel.parent / name, key)
    return SealResult("unseal", str(src), str(dst), len(files), n_in, n_out)
