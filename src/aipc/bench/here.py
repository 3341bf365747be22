""""What can I run here?": the estimator's table (:mod:`aipc.estimate.here`) with this machine's
measured runs laid over it.

A figure is ``measured`` where the results DB holds an ``aipc bench`` run of this machine (the
fingerprint of one of its cached ``aipc hw`` profiles), this device, model, engine and weight format at
batch 1 with a prompt within a factor of 2 of the table's speed shape (the newest such run answers).
The same payload feeds ``aipc models --here --json`` and the report's "What you can run here".
Import-light: no torch (SQLite and the estimator only).
"""

from __future__ import annotations

from aipc.errors import AipcError
from aipc.estimate import expected_errors as X
from aipc.estimate import here as H

FIGURE = {"prefill": ("prefill_tokens_per_s", "tokens_per_s"), "decode": ("decode_tokens_per_s", "decode_tokens_per_s")}


def formats(engines: list[str] | None = None) -> list[tuple[str, str]]:
    """(engine, weight format) for every installed engine (or those named) and its registered formats:
    the table's engines come from the registry, none is named here."""
    from aipc.engines import WEIGHT_FORMATS, available

    have = available()
    return [(e, f) for e in (engines or have) if e in have for f in WEIGHT_FORMATS.get(e, ())]


def run_device(spec_name: str) -> str | None:
    """The bench device name of a local DeviceSpec ('this-machine:cpu' -> 'cpu'); None for a catalog one."""
    return spec_name.split(":", 1)[1] if spec_name.startswith("this-machine:") else None


def this_machine() -> set[str]:
    """Fingerprints of this machine's cached ``aipc hw`` profiles (one per thread count and software
    state; the profile cache is this machine's own folder)."""
    from aipc.paths import profiles_dir

    return {p.stem.rsplit("-", 1)[0] for p in profiles_dir().glob("*.json")}


def usable_run(run: dict) -> bool:
    """A batch-1 run near the table's speed shape."""
    w = run.get("workload") or {}
    prompt = w.get("prompt_tokens") or 0
    return w.get("batch_size") == 1 and H.SPEED_PROMPT / 2 <= prompt <= H.SPEED_PROMPT * 2


def measured(db, device: str, machines: set[str]) -> dict[tuple[str, str, str, str], dict]:
    """(model, engine, weight format, scenario) -> the newest usable run of this machine and device."""
    from aipc.bench.store import ResultsDB

    if not machines:
        return {}
    try:
        runs = ResultsDB(db, create=False).runs(kind="bench", device=device, brief=True)
    except AipcError:
        return {}  # no results database yet: nothing measured
    out = {}
    for r in runs:  # oldest first: a newer run replaces an older one
        w = r.get("workload") or {}
        if r.get("machine") in machines and r.get("scenario") in FIGURE and usable_run(r):
            out[(r["model"], w.get("engine") or "torch", w.get("weight_dtype"), r["scenario"])] = r
    return out


def overlay(rows: list, runs: dict) -> int:
    """Replace estimated figures by measured ones; returns how many figures were replaced."""
    n = 0
    for r in rows:
        for scen, (attr, metric) in FIGURE.items():
            run = runs.get((r.model, r.engine, r.format, scen))
            value = ((run or {}).get("metrics") or {}).get(metric)
            if not value:
                continue
            setattr(r, attr, float(value))
            setattr(r, f"{scen}_kind", "measured")
            setattr(r, f"{scen}_expected_error", X.expected("measured", scen)["median_abs_error"])
            r.sources[scen] = f"run {run['id'][:8]} ({run.get('created_at') or run.get('timestamp') or ''})".strip()
            n += 1
    return n


def here_table(device: str = "this", *, db=None, engines: list[str] | None = None,
               kv_dtype: str | None = None) -> dict:
    """The ranked table for ``device`` ('this' or a catalog name) with measured figures laid over it."""
    from aipc.hardware.local import resolve_device

    spec = resolve_device(device)
    pairs = formats(engines)
    rows, skipped = H.table(spec, pairs, kv_dtype=kv_dtype)
    bench_dev = run_device(spec.name)
    n = overlay(rows, measured(db, bench_dev, this_machine())) if bench_dev else 0
    rows.sort(key=H.rank_key)
    return {"device": spec.name, "device_label": spec.label, "usable_memory_bytes": spec.usable_memory_bytes,
            "measured_peaks": bool(spec.bandwidth_bytes_s), "engines": sorted({e for e, _ in pairs}),
            "shape": {"prompt_tokens": H.SPEED_PROMPT, "gen_tokens": H.SPEED_GEN, "batch": 1,
                      "memory_context": H.MEMORY_CONTEXT},
            "measured_figures": n, "rows": [r.to_dict() for r in rows], "skipped": skipped,
            "expected_errors": X.table()}
