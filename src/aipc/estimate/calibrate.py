"""Calibrated efficiency factors per device, fitted by ``aipc calibrate`` from measured runs.

The estimator calls :func:`lookup` for every estimate, so it is cheap: one ``os.stat`` of
``aipc.paths.home()/calibration.json`` per call (a missing file costs only that), the parsed file
cached until its mtime or size changes. Import-light: no torch, and never imports ``aipc.bench``.

A factor is what the estimator multiplies a peak by (its roofline: time = work / (peak x factor)):
- train and prefill: MFU = (model FLOPs of the step, by the estimator's formulas) / (peak FLOP/s x t);
- decode: MBU = (bytes read per decode step) / (bandwidth x t),
with the peak and bandwidth of the DeviceSpec the estimator uses for that device (``aipc hw``'s
measured profile for this machine). Factors are kept per device and scenario in buckets of model size
(FLOPs per token: points within a factor of 1.5 share a bucket, factor = median of the bucket); a
lookup interpolates linearly in log(FLOPs per token) between bucket centres and takes the nearest
bucket outside them.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import statistics
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any

FORMAT = "aipc-calibration"
VERSION = 1
FILE_NAME = "calibration.json"
SCENARIOS = ("train", "prefill", "decode")
BUCKET_RATIO = 1.5

_cache: dict[str, Any] = {"key": None, "data": None}
_override: list[dict | None] = []


def path() -> Path:
    from aipc.paths import home

    return home() / FILE_NAME


def peak_for(spec, compute_dtype: str) -> float | None:
    """The peak FLOP/s the estimator's roofline uses for a compute dtype: that dtype, then the other
    16-bit type, then fp32 (``aipc.estimate.roofline``)."""
    if spec is None:
        return None
    for dt in (compute_dtype, "bf16" if compute_dtype == "fp16" else "fp16", "fp32"):
        p = spec.peak(dt)
        if p:
            return p
    return None


# ---- reading -------------------------------------------------------------------------------------
def load(p: Path | None = None) -> dict | None:
    """The calibration table (None when there is none or it is unreadable), cached by mtime and size."""
    p = p or path()
    try:
        st = os.stat(p)
    except OSError:
        return None
    key = (str(p), st.st_mtime_ns, st.st_size)
    if _cache["key"] != key:
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("devices"), dict):
                data = None
        except (OSError, ValueError):
            data = None
        _cache.update(key=key, data=data)
    return _cache["data"]


def interpolate(points: list[list[float]], fpt: float | None) -> float:
    """Factor at ``fpt`` from sorted [fpt, factor, n] bucket points: linear in log(fpt) between
    neighbours, the nearest point outside; the median of all points when fpt is unknown."""
    if fpt is None or fpt <= 0 or len(points) == 1:
        return points[0][1] if len(points) == 1 else statistics.median(p[1] for p in points)
    x = math.log(fpt)
    xs = [math.log(p[0]) for p in points]
    if x <= xs[0]:
        return points[0][1]
    if x >= xs[-1]:
        return points[-1][1]
    for i in range(1, len(points)):
        if x <= xs[i]:
            t = (x - xs[i - 1]) / (xs[i] - xs[i - 1])
            return points[i - 1][1] + t * (points[i][1] - points[i - 1][1])
    return points[-1][1]  # pragma: no cover


def lookup(device_name: str, scenario: str, flops_per_token: float | None) -> tuple[float, str] | None:
    """(factor, one-line source) for a device and scenario ('train', 'prefill', 'decode'), or None."""
    data = _override[-1] if _override else load()
    if not data:
        return None
    entry = data.get("devices", {}).get(device_name, {}).get(scenario)
    if not entry or not entry.get("points"):
        return None
    return interpolate(entry["points"], flops_per_token), entry.get("source", "calibrated")


@contextmanager
def using(table: dict | None):
    """Make :func:`lookup` answer from ``table`` (``{}`` or None: no calibration) inside the block."""
    _override.append(table or {})
    try:
        yield
    finally:
        _override.pop()


# ---- fitting -------------------------------------------------------------------------------------
def buckets(points: list[tuple[float, float]]) -> list[list[float]]:
    """[(fpt, factor)] -> sorted [[centre fpt (geometric mean), median factor, n]]: consecutive points
    (by fpt) within BUCKET_RATIO of the bucket's smallest share it."""
    pts = sorted(p for p in points if p[0] and p[0] > 0 and p[1] and p[1] > 0 and math.isfinite(p[1]))
    out: list[list[float]] = []
    group: list[tuple[float, float]] = []
    for p in pts:
        if group and p[0] > group[0][0] * BUCKET_RATIO:
            out.append(_bucket(group))
            group = []
        group.append(p)
    if group:
        out.append(_bucket(group))
    return out


def _bucket(group: list[tuple[float, float]]) -> list[float]:
    centre = math.exp(sum(math.log(g[0]) for g in group) / len(group))
    return [centre, statistics.median(g[1] for g in group), len(group)]


def fit(points: list[dict], source: str = "") -> dict:
    """A calibration table from points {device, scenario, flops_per_token, factor}."""
    by: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for p in points:
        if p["scenario"] in SCENARIOS:
            by.setdefault((p["device"], p["scenario"]), []).append((p["flops_per_token"], p["factor"]))
    devices: dict[str, dict] = {}
    for (dev, scen), pts in by.items():
        b = buckets(pts)
        if b:
            devices.setdefault(dev, {})[scen] = {"points": b, "n_runs": sum(x[2] for x in b), "source": source}
    return {"format": FORMAT, "version": VERSION, "devices": devices}


def today() -> str:
    return _dt.date.today().isoformat()


def save(table: dict, p: Path | None = None) -> Path:
    """Write the table atomically (temporary file + rename), merging with devices already calibrated."""
    p = p or path()
    old = load(p) or {}
    merged = {**old.get("devices", {}), **table.get("devices", {})}
    data = {**table, "devices": merged, "fitted_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    fd, tmp = tempfile.mkstemp(prefix=".calibration.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _cache["key"] = None
    return p


def reset(devices: list[str] | None = None, p: Path | None = None) -> list[str]:
    """Remove calibration for ``devices`` (all when None); returns the names removed."""
    p = p or path()
    data = load(p)
    if not data:
        return []
    names = list(data["devices"]) if devices is None else [d for d in devices if d in data["devices"]]
    if devices is None:
        p.unlink()
    else:
        for d in names:
            data["devices"].pop(d)
        fd, tmp = tempfile.mkstemp(prefix=".calibration.", suffix=".tmp", dir=p.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
        os.replace(tmp, p)
    _cache["key"] = None
    return names
