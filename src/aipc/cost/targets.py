"""The need one workload is judged against, from a needs file (raw dict) and decide's defaults.

    need = need_for("Serve an 8B chat model", workload, needs)   # -> aipc.estimate.choose.Need

Its needs-file entry (same name, else same model, in ``inference`` for serving and ``jobs`` for
training) gives TTFT / TPOT targets or the tokens and deadline of a job; fields it leaves out take
:mod:`aipc.cost.defaults` (serving: TTFT 2 s, TPOT 0.1 s; training: no deadline). Import-light.
"""

from __future__ import annotations

from typing import Any

from aipc.cost import defaults as D
from aipc.estimate.choose import Need
from aipc.spec import Workload


def need_for(name: str, w: Workload, needs: dict[str, Any]) -> Need:
    """The need of workload ``w`` (called ``name``) under the raw needs dict ``needs``."""
    key = "inference" if w.task == "infer" else "jobs"
    entries = [e for e in (needs.get(key) or []) if isinstance(e, dict)]
    entry = next((e for e in entries if e.get("name") == name), None) or next(
        (e for e in entries if e.get("model") == w.model), None) or {}
    if w.task == "infer":
        return Need(ttft_s=float(entry.get("ttft_s", D.INFERENCE["ttft_s"].value)),
                    tpot_s=float(entry.get("tpot_s", D.INFERENCE["tpot_s"].value)))
    hours = entry.get("deadline_hours")
    return Need(ttft_s=None, tpot_s=None, train_tokens=entry.get("train_tokens") or w.train_tokens or None,
                deadline_s=float(hours) * 3600 if hours else None)
