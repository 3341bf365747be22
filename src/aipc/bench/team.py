"""Every machine of a team side by side: measured tokens/s per model, scenario, engine, precision and shape,
and the speedup R of each machine's devices against a reference machine. Import-light (no torch).

A *machine* is the host name a run was stored from (its fingerprint prefix when the host is unknown);
a *unit* is one device of a machine ("laptop cpu", "ws cuda:0"). Each cell holds the unit's latest run
of that row (``n`` says how many there were). R = t_ref / t_unit, the median time of one sample on the
reference machine over the unit's, for the same model, scenario, engine, precision and shape (so an R of 2
is twice as fast); where the reference machine measured the row on several devices, its fastest counts.
Devices run different precisions (CPU fp32, CUDA bf16), so each cell also has ``r_vs_best``: against the
reference machine's fastest run of the same model, scenario and shape, whatever its engine and precision.
"""

from __future__ import annotations

from aipc.bench.compare import shape_key
from aipc.errors import AipcError


def machine_of(run: dict) -> str:
    return run.get("host") or (run.get("machine") or "?")[:8]


def precision_of(run: dict) -> str:
    return str(run.get("weight_format") or (run.get("metrics") or {}).get("precision") or "-")


def shape_text(scenario: str, workload: dict) -> str:
    if scenario == "train":
        b, s, m = (workload.get(k) for k in ("batch_size", "seq_len", "method"))
        return f"b{b} s{s}" + (f" {m}" if m and m != "full" else "")
    b, p, g = shape_key(scenario, workload)
    return f"b{b} p{p} g{g}"


def _cells(runs: list[dict]) -> tuple[dict, dict]:
    """(rows: row key -> unit -> cell, units: unit -> facts), latest run per cell."""
    rows: dict[tuple, dict[str, dict]] = {}
    units: dict[str, dict] = {}
    for r in runs:
        m = r.get("metrics") or {}
        if r.get("kind") != "bench" or not m.get("median_s") or not r.get("scenario"):
            continue
        w = r.get("workload") or {}
        key = (r.get("model") or "?", r["scenario"], r.get("engine") or w.get("engine") or "torch", precision_of(r),
               shape_text(r["scenario"], w))
        mach, dev = machine_of(r), r.get("device") or "?"
        unit = f"{mach} {dev}"
        u = units.setdefault(unit, {"unit": unit, "machine": mach, "device": dev, "device_model": None,
                                    "fingerprints": set(), "runs": 0})
        u["device_model"] = r.get("device_model") or u["device_model"]
        u["fingerprints"].add(r.get("machine"))
        u["runs"] += 1
        prev = rows.setdefault(key, {}).get(unit)
        rows[key][unit] = {"median_s": m["median_s"], "tokens_per_s": m.get("tokens_per_s"), "id": r["id"],
                           "created_at": r.get("created_at"), "n": (prev["n"] + 1) if prev else 1,
                           "energy_per_token_j": m.get("energy_per_token_j")}
    return rows, units


def pick_reference(units: dict, rows: dict, reference: str | None) -> str:
    """The reference machine: the one named (host name or fingerprint prefix), else the one with most rows."""
    machines = sorted({u["machine"] for u in units.values()})
    if reference is None:
        count = {m: sum(any(units[u]["machine"] == m for u in cells) for cells in rows.values()) for m in machines}
        return max(machines, key=lambda m: (count[m], -machines.index(m)))
    hits = {u["machine"] for u in units.values()
            if reference in (u["machine"], u["unit"]) or any(f and f.startswith(reference) for f in u["fingerprints"])}
    if len(hits) != 1:
        why = "matches no machine" if not hits else f"matches {len(hits)} machines ({', '.join(sorted(hits))})"
        raise AipcError(f"--reference {reference!r} {why}; name one of: {', '.join(machines)} (host name or "
                        "fingerprint prefix)")
    return hits.pop()


def team_table(runs: list[dict], reference: str | None = None) -> dict:
    """Units (columns), rows with one cell per unit that measured them, R against the reference machine."""
    rows, units = _cells(runs)
    if not rows:
        return {"units": [], "rows": [], "machines": [], "reference": None, "runs": 0}
    ref = pick_reference(units, rows, reference)
    order = sorted(units, key=lambda u: (units[u]["machine"] != ref, units[u]["machine"], units[u]["device"]))
    best: dict[tuple, float] = {}  # (model, scenario, shape) -> the reference machine's fastest time
    for (model, scen, _, _, shape), cells in rows.items():
        for u, c in cells.items():
            if units[u]["machine"] == ref:
                k = (model, scen, shape)
                best[k] = min(best.get(k, c["median_s"]), c["median_s"])
    out = []
    for (model, scen, eng, prec, shape), cells in sorted(rows.items()):
        t_ref = min((c["median_s"] for u, c in cells.items() if units[u]["machine"] == ref), default=None)
        t_best = best.get((model, scen, shape))
        for c in cells.values():
            c["r"] = None if t_ref is None else t_ref / c["median_s"]
            c["r_vs_best"] = None if t_best is None else t_best / c["median_s"]
        out.append({"model": model, "scenario": scen, "engine": eng, "precision": prec, "shape": shape,
                    "reference_median_s": t_ref, "reference_best_median_s": t_best, "cells": cells})
    unit_list = [{**units[u], "fingerprints": sorted(f for f in units[u]["fingerprints"] if f)} for u in order]
    return {"units": unit_list, "rows": out, "machines": sorted({u["machine"] for u in unit_list}),
            "reference": ref, "runs": sum(u["runs"] for u in unit_list)}


def same_model_runs(runs: list[dict], profile: dict, devices: list[str], threads: int | None = None) -> list[dict]:
    """Runs of every machine measured on a device of the same model as one of this machine's ``devices``
    (CPU model or GPU name, from this machine's aipc hw ``profile``), each mapped to that local device;
    CPU runs only at ``threads`` CPU threads where a run recorded its count (peaks are per thread count)."""
    from aipc.bench.migrations import device_model

    ctx = {"machine": {"profile": profile}}
    local: dict[str, str] = {}
    for d in devices:
        m = device_model(d, ctx)
        if m:
            local.setdefault(m, d)
    out = []
    for r in runs:
        dev = local.get(r.get("device_model") or "")
        if dev is None:
            continue
        t = (r.get("metrics") or {}).get("cpu_threads")
        if dev == "cpu" and threads is not None and t is not None and int(t) != int(threads):
            continue
        out.append(r if r.get("device") == dev else {**r, "device": dev})
    return out
