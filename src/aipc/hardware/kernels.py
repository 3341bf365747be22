"""Measured engine kernel throughput on this machine, kept beside the hardware profile.

llama.cpp's prefill on a CPU runs one kernel per ggml weight type (Q4_K, Q5_0, Q8_0, F16, ...), and
their speeds differ by several times on the same CPU (integer dot products where the CPU has VNNI,
dequantising loops elsewhere). ``aipc.bench.llamacpp_kernels`` measures each type's prefill FLOP/s at
a few prompt lengths; this module stores the result per machine fingerprint
(``AIPC_HOME/profiles/<fingerprint>-kernels.json``) and reads it back for the machine's DeviceSpec.

File: {"engines": {"llamacpp": {"version": "0.3.36", "measured_at": ISO, "load_avg": [before, after],
"threads": n, "method": "...", "types": {"Q4_K@22016": [[tokens, flops_s], ...], ...}}}}. A type key
carries the probe's layer width after "@" (a block's matrix elements over its hidden size,
aipc.estimate.compute.layer_width): llama.cpp's kernels run faster on wider layers, so each type is
measured at three widths and a model's width is interpolated between them. A key without a width (older
records, catalog entries) holds for every width.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path


def path(fingerprint: str) -> Path:
    from aipc.paths import profiles_dir

    return profiles_dir() / f"{fingerprint}-kernels.json"


def load(fingerprint: str) -> dict:
    """{engine: record} measured on the machine with this fingerprint ({} when none or unreadable)."""
    try:
        d = json.loads(path(fingerprint).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    engines = d.get("engines") if isinstance(d, dict) else None
    if not isinstance(engines, dict):
        return {}
    return {k: v for k, v in engines.items() if valid_record(v)}


def valid_record(rec) -> bool:
    """A record whose every type holds [tokens, FLOP/s] pairs of finite positive numbers (this file's and a
    device catalog's ``kernel_flops`` entries alike)."""
    if not isinstance(rec, dict) or not isinstance(rec.get("types"), dict) or not rec["types"]:
        return False
    for pts in rec["types"].values():
        if not isinstance(pts, list) or not pts:
            return False
        for p in pts:
            if (not isinstance(p, list) or len(p) != 2 or not all(
                    isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0 for x in p)):
                return False
    return True


def save(fingerprint: str, engine: str, record: dict, *, replace: bool = False) -> Path:
    """Store ``record`` for ``engine`` (other engines' records stay), atomically. Figures of the same
    engine version keep the best of this and the stored measurement per type and prompt length (peaks
    are maxima: a busy moment only lowers them), unless ``replace``."""
    if not valid_record(record):
        raise ValueError("kernel record needs 'types': {type: [[tokens, flops_s], ...]} with positive numbers")
    p = path(fingerprint)
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
        engines = d.get("engines") if isinstance(d, dict) and isinstance(d.get("engines"), dict) else {}
    except (OSError, ValueError):
        engines = {}
    old = engines.get(engine)
    if not replace and valid_record(old) and old.get("version") == record.get("version"):
        record = {**record, "types": best_points(old["types"], record["types"])}
    engines[engine] = record
    tmp = p.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps({"engines": engines}, indent=1), encoding="utf-8")
    os.replace(tmp, p)
    return p


def best_points(old: dict, new: dict) -> dict:
    """Per type and prompt length, the higher FLOP/s of the two records."""
    out = {t: {a: b for a, b in pts} for t, pts in old.items()}
    for t, pts in new.items():
        row = out.setdefault(t, {})
        for a, b in pts:
            row[a] = max(b, row.get(a, 0.0))
    return {t: [[a, b] for a, b in sorted(row.items())] for t, row in out.items()}


def spec_table(record: dict) -> dict[str, tuple[tuple[float, float], ...]]:
    """{type: ((tokens, flops_s), ...)} sorted by tokens: what DeviceSpec.kernel_flops holds per engine."""
    return {t: tuple(sorted((float(a), float(b)) for a, b in pts)) for t, pts in record["types"].items()}


def at_tokens(points: tuple[tuple[float, float], ...], tokens: float | None) -> float:
    """FLOP/s at ``tokens``: linear in log(tokens) between measured points, the nearest one outside."""
    if tokens is None or tokens <= 0 or len(points) == 1:
        return points[0][1] if len(points) == 1 else max(p[1] for p in points)
    if tokens <= points[0][0]:
        return points[0][1]
    if tokens >= points[-1][0]:
        return points[-1][1]
    x = math.log(tokens)
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x0 <= tokens <= x1:
            f = (x - math.log(x0)) / (math.log(x1) - math.log(x0))
            return y0 + f * (y1 - y0)
    return points[-1][1]


def split_key(key: str) -> tuple[str, float | None]:
    """'Q4_K@22016' -> ('Q4_K', 22016.0); 'Q4_K' -> ('Q4_K', None)."""
    t, _, w = key.partition("@")
    try:
        return t, (float(w) if w else None)
    except ValueError:
        return t, None


def at_width(by_width: dict[float, float], width: float | None) -> float:
    """FLOP/s at layer ``width`` from {probe width: FLOP/s}: linear in log(width) between the probes, the
    nearest one outside (never extrapolated) — :func:`at_tokens`' rule; the narrowest probe where the
    width is not known."""
    if width is None:
        return by_width[min(by_width)]
    return at_tokens(tuple(sorted(by_width.items())), width)
