"""Rendering helpers shared by the CLI verbs: JSON on stdout, rich tables, human units.

Internally everything is bytes, FLOPs, seconds and tokens; only this module humanizes.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from typing import Any


def to_jsonable(obj: Any) -> Any:
    """Dataclasses, tuples, sets, paths and non-finite floats made JSON-safe (inf -> null)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if hasattr(obj, "to_dict"):
        return to_jsonable(obj.to_dict())
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def print_json(obj: Any) -> None:
    """One JSON object on stdout."""
    sys.stdout.write(json.dumps(to_jsonable(obj), indent=2, sort_keys=False) + "\n")


def gb(n_bytes: float | None, digits: int = 1) -> str:
    """Bytes in binary units ('21.3 GiB'): memory capacities (a "24 GB" RTX 4090 has 24 GiB) are
    binary, so needs and capacities print in the same unit."""
    if n_bytes is None:
        return "-"
    for unit, factor in (("PiB", 2**50), ("TiB", 2**40), ("GiB", 2**30)):
        if abs(n_bytes) >= factor:
            return f"{n_bytes / factor:.{digits}f} {unit}"
    if n_bytes == 0:
        return "0 GiB"
    return f"{n_bytes / 2**20:.{digits}f} MiB"


def si(x: float | None, unit: str = "", digits: int = 3) -> str:
    """A number with an SI prefix: si(1.2e12, 'FLOP/s') -> '1.20 TFLOP/s'."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    for factor, prefix in ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= factor:
            return f"{x / factor:.{digits}g} {prefix}{unit}"
    return f"{x:.{digits}g} {unit}".strip()


def seconds(s: float | None) -> str:
    """Seconds in the largest sensible unit: '850 ms', '12.3 s', '4.2 h', '3.1 days'."""
    if s is None or not math.isfinite(s):
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.0f} µs"
    if s < 1:
        return f"{s * 1e3:.1f} ms"
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    if s < 172800:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} days"


def console():
    """A rich console on stdout (imported lazily: rich is light but not free)."""
    from rich.console import Console

    return Console(highlight=False)
