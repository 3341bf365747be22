"""Speedup R between devices, from results of one bench or from stored runs. Import-light.

R = t_ref / t_dev for the same model, scenario and shape, where t is the median time of one sample
and the reference is the CPU of the same machine when it was measured (R = t_cpu / t_accel, so an
accelerator twice as fast has R = 2), else the first device listed.
"""

from __future__ import annotations

SHAPE_KEYS = ("batch_size", "seq_len", "prompt_tokens", "gen_tokens", "method")


def shape_key(scenario: str, workload: dict) -> tuple:
    """The part of a workload that must match for two runs to be compared."""
    keys = ("batch_size", "seq_len", "method") if scenario == "train" else ("batch_size", "prompt_tokens", "gen_tokens")
    return tuple(workload.get(k) for k in keys)


def speedups(rows: list[dict], reference: str | None = None) -> list[dict]:
    """One entry per (machine, model, scenario, shape, engine) measured on >= 2 devices.

    ``rows``: dicts with device, scenario, model, workload, median_s, and optionally machine and
    precision. Returns dicts: scenario, model, shape, reference, reference_median_s, and
    ``r`` = {device: t_ref / t_device}, ``precision`` = {device: precision}."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if not r.get("median_s"):
            continue
        w = r.get("workload") or {}
        key = (r.get("machine"), r.get("model"), r["scenario"], shape_key(r["scenario"], w),
               r.get("engine") or w.get("engine") or "torch")  # devices are compared within one engine
        groups.setdefault(key, []).append(r)
    out = []
    for (machine, model, scenario, shape, engine), rs in groups.items():
        latest: dict[str, dict] = {}
        for r in rs:  # the latest run per device
            latest[r["device"]] = r
        if len(latest) < 2:
            continue
        ref = reference if reference in latest else ("cpu" if "cpu" in latest else next(iter(latest)))
        t_ref = latest[ref]["median_s"]
        out.append({
            "machine": machine, "model": model, "scenario": scenario, "shape": list(shape), "engine": engine,
            "reference": ref,
            "reference_median_s": t_ref,
            "r": {d: t_ref / r["median_s"] for d, r in latest.items() if d != ref},
            "precision": {d: r.get("precision") for d, r in latest.items()},
        })
    return out


def rows_from_runs(runs: list[dict]) -> list[dict]:
    """Stored bench runs -> rows for :func:`speedups`."""
    rows = []
    for run in runs:
        m = run.get("metrics") or {}
        rows.append({"device": run.get("device"), "scenario": run.get("scenario"), "model": run.get("model"),
                     "engine": run.get("engine"),
                     "machine": run.get("machine"), "workload": run.get("workload") or {},
                     "median_s": m.get("median_s"), "precision": m.get("precision")})
    return rows
