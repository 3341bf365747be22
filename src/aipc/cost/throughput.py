"""Measured throughput from the results database, behind one lookup that degrades gracefully.

decide prefers a measurement over an estimate for the same device, model and shape. Runs come from
``aipc.bench.store.ResultsDB.runs(kind="bench")`` — dicts with ``scenario``, ``device``, ``model``,
``workload`` and ``metrics``. What this module assumes of them (tell the bench owner if it changes):

* ``device`` is the DeviceSpec name (a catalog id, or ``this-machine:<x>``) or, for this machine,
  the part after ``this-machine:`` (``cpu``, ``cuda:0``); ``model`` is the catalog short name.
* ``scenario`` is ``train``, ``prefill`` or ``decode``; ``metrics`` holds (plain numbers or
  ``{"median": x, ...}`` dicts): train ``tokens_per_s`` (or ``train_tokens_per_s``); prefill
  ``ttft_s`` (or ``prefill_s``); decode ``tpot_s`` (or ``decode_tokens_per_s`` with the batch).
* A run counts for a workload when the shape keys both sides state agree: train: method,
  batch_size, seq_len, weight_dtype; prefill: batch_size, prompt_tokens, weight_dtype; decode:
  batch_size, weight_dtype.

No database, another schema, or no matching run: the lookup returns None and decide estimates.
The database is opened read-only in spirit: it is never created here.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SHAPE_KEYS = {
    "train": ("method", "batch_size", "seq_len", "weight_dtype"),
    "prefill": ("batch_size", "prompt_tokens", "weight_dtype"),
    "decode": ("batch_size", "weight_dtype"),
}
METRIC_KEYS = {
    "train": (("tokens_per_s", "train_tokens_per_s"), "tokens_per_s"),
    "prefill": (("ttft_s", "prefill_s"), "ttft_s"),
    "decode": (("tpot_s",), "tpot_s"),
}


@dataclass(frozen=True)
class Measured:
    value: float          # tokens_per_s (train), ttft_s (prefill) or tpot_s (decode): the median over runs
    runs: int


def _number(v: Any) -> float | None:
    if isinstance(v, dict):
        v = v.get("median", v.get("mean"))
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
        return None
    return float(v)


def _metric(scenario: str, metrics: dict, workload: dict) -> float | None:
    names, _ = METRIC_KEYS[scenario]
    for n in names:
        x = _number(metrics.get(n))
        if x is not None:
            return x
    if scenario == "decode":  # tokens/s of the whole batch -> seconds per token of each sequence
        tps = _number(metrics.get("decode_tokens_per_s"))
        if tps:
            return max(int(workload.get("batch_size", 1) or 1), 1) / tps
    return None


class MeasuredIndex:
    """Bench runs grouped by (device, model, scenario)."""

    def __init__(self, runs: list[dict] | None = None, source: str = ""):
        self.source = source
        self._by: dict[tuple[str, str, str], list[dict]] = {}
        for r in runs or []:
            try:
                key = (str(r["device"]).lower(), str(r["model"]).lower(), str(r["scenario"]).lower())
            except (KeyError, TypeError):
                continue
            self._by.setdefault(key, []).append(r)

    def __len__(self) -> int:
        return sum(len(v) for v in self._by.values())

    def lookup(self, device_name: str, model: str, scenario: str, shape: dict) -> Measured | None:
        """The median measured value for this device, model, scenario and shape, or None."""
        if not self._by or scenario not in SHAPE_KEYS:
            return None
        names = {device_name.lower()}
        if device_name.lower().startswith("this-machine:"):
            names.add(device_name.split(":", 1)[1].lower())
        values = []
        for name in names:
            for r in self._by.get((name, model.lower(), scenario), []):
                w = r.get("workload") if isinstance(r.get("workload"), dict) else {}
                if any(k in w and k in shape and w[k] != shape[k] for k in SHAPE_KEYS[scenario]):
                    continue
                m = r.get("metrics") if isinstance(r.get("metrics"), dict) else {}
                x = _metric(scenario, m, w)
                if x is not None:
                    values.append(x)
        return Measured(statistics.median(values), len(values)) if values else None


def load_index(db_path: str | Path | None = None) -> MeasuredIndex:
    """All bench runs of the results database (default: $AIPC_RESULTS_DB, else aipc.paths.default_db());
    empty if there is none or it cannot be read — decide then uses estimates and says so. A database the
    user named explicitly must exist and be readable (AipcError otherwise)."""
    from aipc.bench.store import ResultsDB

    if db_path is not None:
        rdb = ResultsDB(db_path, create=False)
        return MeasuredIndex(list(rdb.runs(kind="bench")), str(rdb.path))
    try:
        from aipc.bench.dburl import is_postgres, target

        path = target(None)
        if not is_postgres(path) and not Path(path).expanduser().is_file():
            return MeasuredIndex([], "no results database")
        rdb = ResultsDB(path, create=False)
        return MeasuredIndex(list(rdb.runs(kind="bench")), str(rdb.path))
    except Exception as e:  # noqa: BLE001 - any store problem means "no measurements", never a failed decision
        return MeasuredIndex([], f"results database not read: {type(e).__name__}")
