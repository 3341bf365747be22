"""Resolve a model reference: catalog short name / HF id, a config.json file, a local model folder, or a
GGUF file (aipc.models.gguf).

A folder's weights are measured from the safetensors headers only (8-byte little-endian header
length, then the JSON header): exact bytes and element counts per dtype, without reading tensors.
Sharded folders are followed through ``model.safetensors.index.json``. Import-light.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

from aipc.datafile import read_data
from aipc.errors import AipcError
from aipc.models import catalog
from aipc.models.spec import ModelSpec

INDEX = "model.safetensors.index.json"
_MAX_HEADER = 100 * 1024 * 1024  # safetensors caps headers at 100 MB


def resolve(ref: str | Path) -> ModelSpec:
    """A ModelSpec from a catalog name or HF id (case-insensitive), a config.json path, a model folder, or a
    GGUF file (llama.cpp; its header gives the architecture and exact tensor bytes: aipc.models.gguf)."""
    text = str(ref).strip()
    path = Path(text).expanduser()
    if path.is_dir():
        return from_folder(path)
    from aipc.models import gguf

    if path.is_file() and gguf.is_gguf_path(path) or path.suffix.lower() == ".gguf":
        return gguf.spec_from_file(path)  # a missing .gguf: "no such file"
    if path.is_file():
        return from_config_file(path)
    if catalog.find_entry(text) is not None:
        return catalog.get(text)
    if text.endswith(".json") or text.startswith((".", "/", "~")) or "\\" in text:
        raise AipcError(f"no such file or folder: {text}; pass an existing config.json or model folder, "
                        "or a catalog name ('aipc models' lists them)")
    return catalog.get(text)  # raises: unknown model, with the closest names


def read_json(path: Path) -> Any:
    """A JSON file's content; unreadable or invalid JSON -> one-line AipcError naming the file."""
    return read_data(path, fmt="json")


def from_config_file(path: str | Path, **extra: Any) -> ModelSpec:
    """A spec from an HF config.json file (name: the parent folder, or the file's stem)."""
    path = Path(path)
    cfg = read_json(path)
    name = path.parent.name if path.name == "config.json" and path.parent.name else path.stem
    return ModelSpec.from_hf_config(cfg, name=name, source=str(path), **extra)


def from_folder(folder: str | Path) -> ModelSpec:
    """A spec from a local HF model folder: config.json plus exact weights from the safetensors headers."""
    folder = Path(folder)
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise AipcError(f"model folder {folder} has no config.json; pass a folder saved with save_pretrained "
                        "or a config.json file")
    files = safetensors_files(folder)
    weight_bytes, dtypes = None, {}
    if files:
        weight_bytes, dtypes = 0, {}
        for f in files:
            nbytes, counts = read_safetensors_header(f)
            weight_bytes += nbytes
            for dt, n in counts.items():
                dtypes[dt] = dtypes.get(dt, 0) + n
    return from_config_file(cfg_path, weight_bytes=weight_bytes, weight_dtypes=dtypes)


def safetensors_files(folder: Path) -> list[Path]:
    """The weight files of a folder: the shards its index names (each must exist), else *.safetensors."""
    index = folder / INDEX
    if index.is_file():
        data = read_json(index)
        wmap = data.get("weight_map") if isinstance(data, dict) else None
        if not isinstance(wmap, dict) or not all(isinstance(v, str) for v in wmap.values()):
            raise AipcError(f"{index}: field 'weight_map' must map tensor names to shard files; fix the index")
        shards = [folder / name for name in sorted(set(wmap.values()))]
        missing = [p.name for p in shards if not p.is_file()]
        if missing:
            raise AipcError(f"{index} names shard files that are missing: {', '.join(missing[:3])}"
                            f"{' ...' if len(missing) > 3 else ''}; download the whole model folder")
        return shards
    return sorted(folder.glob("*.safetensors"))


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _header(path: Path) -> tuple[int, dict[str, Any]]:
    """(header length N, header JSON object) of a .safetensors file; one-line errors for anything else."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise AipcError(f"{path}: too short for a safetensors file; re-download it")
            (n,) = struct.unpack("<Q", head)
            if n > _MAX_HEADER:
                raise AipcError(f"{path}: header length {n} is not plausible; the file is not safetensors or is corrupt")
            raw = fh.read(n)
    except OSError as e:
        raise AipcError(f"cannot read {path}: {e}; check the file and its permissions") from None
    if len(raw) < n:
        raise AipcError(f"{path}: truncated header; re-download the file")
    try:
        header = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise AipcError(f"{path}: header is not valid JSON; the file is corrupt") from None
    if not isinstance(header, dict):
        raise AipcError(f"{path}: header is not a JSON object; the file is not safetensors or is corrupt")
    return n, header


def _tensors(path: Path, header: dict[str, Any]) -> list[tuple[str, list[int], int, int]]:
    """(dtype, shape, begin, end) of every tensor of a header, each checked."""
    out = []
    for name, t in header.items():
        if name == "__metadata__":
            continue
        try:
            begin, end = t["data_offsets"]
            dtype, shape = str(t["dtype"]), t["shape"]
            ok = isinstance(shape, list) and all(_count(v) for v in (begin, end, *shape)) and begin <= end
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:  # offsets and dimensions are whole numbers >= 0, begin <= end (safetensors format)
            raise AipcError(f"{path}: tensor '{name}' has no valid dtype/shape/data_offsets; the file is corrupt")
        out.append((dtype, shape, begin, end))
    return out


def read_safetensors_header(path: Path) -> tuple[int, dict[str, int]]:
    """(tensor bytes, {dtype: element count}) from a .safetensors header, without reading the tensors.

    Format: u64 little-endian N, then N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}},
    plus an optional "__metadata__"; bytes = Σ (end − begin), dtypes as safetensors names them (BF16, F32...).
    """
    total, counts = 0, {}
    for dtype, shape, begin, end in _tensors(path, _header(path)[1]):
        total += end - begin
        counts[dtype] = counts.get(dtype, 0) + math.prod(shape)
    return total, counts


def check_safetensors_complete(path: Path) -> None:
    """Refuse a .safetensors file shorter than its header says (8 + N + the last tensor's end offset):
    a truncated download or copy, which would otherwise fail deep inside the loader."""
    n, header = _header(path)
    need = 8 + n + max((end for *_, end in _tensors(path, header)), default=0)
    have = path.stat().st_size
    if have < need:
        raise AipcError(f"{path}: truncated: the header describes {need} bytes but the file has {have}; "
                        "re-download the file")
