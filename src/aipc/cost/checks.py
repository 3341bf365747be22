"""Field checks for the needs file: each returns the clean value or raises a one-line AipcError."""

from __future__ import annotations

import math
from typing import Any

from aipc.errors import AipcError, closest


def num(v: Any, where: str, *, lo: float | None = None, lo_open: bool = False, hi: float | None = None,
         hi_open: bool = False, whole: bool = False, fix: str = "") -> float:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    if ok and whole:
        ok = float(v).is_integer()
    if ok and lo is not None:
        ok = v > lo if lo_open else v >= lo
    if ok and hi is not None:
        ok = v < hi if hi_open else v <= hi
    if not ok:
        rng = []
        if lo is not None:
            rng.append(f"{'>' if lo_open else '>='} {lo:g}")
        if hi is not None:
            rng.append(f"{'<' if hi_open else '<='} {hi:g}")
        kind = "a whole number" if whole else "a number"
        what = f"{kind} {' and '.join(rng)}".strip()
        raise AipcError(f"{where} must be {what} (got {v!r}){'; ' + fix if fix else ''}")
    return int(v) if whole else float(v)


def bool_(v: Any, where: str) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.strip().lower() in ("true", "yes", "1", "on", "false", "no", "0", "off"):
        return v.strip().lower() in ("true", "yes", "1", "on")
    raise AipcError(f"{where} must be true or false (got {v!r})")


def text(v: Any, where: str) -> str:
    if not isinstance(v, str) or not v.strip():
        raise AipcError(f"{where} must be non-empty text (got {v!r})")
    return v.strip()


def names(v: Any, where: str) -> tuple[str, ...]:
    if isinstance(v, str):
        v = [s for s in v.split(",") if s.strip()]
    if not isinstance(v, list) or not all(isinstance(s, str) and s.strip() for s in v):
        raise AipcError(f"{where} must be a list of device ids, e.g. [\"rtx-4090\", \"h100-sxm\"]")
    return tuple(s.strip() for s in v)


def table(v: Any, where: str) -> dict:
    if not isinstance(v, dict):
        raise AipcError(f"{where} must be a table")
    return v


def unknown_key(key: str, allowed: set[str] | dict, where: str) -> AipcError:
    near = closest(key, list(allowed))
    hint = f"; did you mean {', '.join(near)}?" if near else f"; allowed: {', '.join(sorted(allowed))}"
    return AipcError(f"{where}: unknown field '{key}'{hint}")
