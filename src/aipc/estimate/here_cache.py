"""A disk cache of GGUF weight bytes per (model, file type) for the catalog-wide table.

llama.cpp's per-tensor type mix (:mod:`aipc.estimate.quant`) is exact but walks every tensor of a
model for each file type: over the whole catalog and every GGUF type that is most of the table's
time. The result is a pure function of the model's config and of the quant module, so it is kept in
``aipc.paths.home()/cache/gguf-parts.json``, keyed by a hash of both (a changed config or a changed
quant.py is recomputed), and fed to the estimator's per-spec memo before the table is built.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from aipc.models.spec import ModelSpec

FILE = "gguf-parts.json"


def _path() -> Path:
    from aipc.paths import home

    d = home() / "cache"
    d.mkdir(exist_ok=True)
    return d / FILE


def _version() -> str:
    from aipc.estimate import quant

    st = os.stat(quant.__file__)
    return f"{st.st_size}-{st.st_mtime_ns}"


def model_key(m: ModelSpec) -> str:
    facts = json.dumps([m.name, m.config, m.weight_format, _version()], sort_keys=True, default=str)
    return hashlib.sha256(facts.encode()).hexdigest()[:20]


def _read() -> dict:
    try:
        data = json.loads(_path().read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def seed(models: list[ModelSpec]) -> dict:
    """Put cached parts into the estimator's memo; returns the cache (model key -> {ftype: parts})."""
    from aipc.estimate.params import _memo

    data = _read()
    for m in models:
        if m.weight_parts:  # a .gguf file's own bytes: never from the cache
            continue
        for ftype, parts in data.get(model_key(m), {}).items():
            _memo(m, ("gguf_parts", ftype), lambda p=parts: dict(p))
    return data


def store(models: list[ModelSpec], ftypes: list[str], before: dict) -> None:
    """Write the parts the table computed (atomically), when there are new ones."""
    from aipc.estimate.params import _CACHE

    data, changed = dict(before), False
    for m in models:
        memo = (_CACHE.get(id(m)) or (None, {}))[1]
        got = {f: memo[("gguf_parts", f)] for f in ftypes if ("gguf_parts", f) in memo}
        key = model_key(m)
        if got and not m.weight_parts and got != data.get(key):
            data[key], changed = got, True
    if not changed:
        return
    p = _path()
    fd, tmp = tempfile.mkstemp(prefix=".gguf-parts.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f)
        os.replace(tmp, p)
    except OSError:
        if os.path.exists(tmp):
            os.unlink(tmp)
