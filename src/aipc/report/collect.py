"""Gather the report's data from the other parts' Python APIs: hw profile, bench, estimate, decide.

``collect(options, progress)`` returns one JSON-ready dict (written as ``report.json`` beside the
page); the page is rendered from that dict alone. User input (model, workload file, needs file) is
checked before anything is measured: bad input is an AipcError (exit 2) and nothing is written. A
part that fails at run time does not sink the report: its section becomes
``{"available": False, "why": "..."}`` and the page says "not available: <why>".
"""

from __future__ import annotations

import datetime
import json
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aipc.errors import AipcError
from aipc.render import to_jsonable
from aipc.report import defaults as D

SCHEMA = "aipc-report/1"
Progress = Callable[[str, float], None]   # (what is happening, fraction of the report done)
# Share of the progress bar each step takes (bench dominates).
STEPS = {"profile": (0.0, 0.10), "bench": (0.10, 0.75), "estimate": (0.75, 0.85), "decide": (0.85, 0.97)}


@dataclass(kw_only=True)
class ReportOptions:
    model: str | None = None           # --model: bench and estimate this model instead of the defaults
    workload_file: str | None = None   # --workload FILE: estimate this workload instead of the defaults
    needs_file: str | None = None      # --needs FILE: decide for this needs file
    bench: bool = True                 # --no-bench: skip measuring
    argv: list[str] = field(default_factory=list)  # the command line, for "reproduce" (passwords redacted)
    db: str | None = None              # --db: results database the bench stores into and decide reads


@dataclass(kw_only=True)
class Inputs:
    """Validated inputs: workloads to estimate, the raw needs dict, the bench model."""

    workloads: list[dict[str, Any]]
    needs: dict[str, Any]
    bench_model: str
    used_defaults: list[str]


def unavailable(why: str) -> dict[str, Any]:
    return {"available": False, "why": " ".join(str(why).split())}


def _why(e: BaseException) -> str:
    return str(e) if isinstance(e, AipcError) else f"{type(e).__name__}: {e}"


def check_inputs(o: ReportOptions) -> Inputs:
    """Resolve and validate every user input before any measurement (one-line AipcError on bad input)."""
    from aipc.cost.needs import load_needs, read_raw
    from aipc.estimate import resolve_model
    from aipc.spec import load_workload_file, workload_from_dict

    used = []
    if o.model:
        resolve_model(o.model)  # unknown model: AipcError naming the closest
        workloads, needs = D.with_model(o.model)
    else:
        workloads, needs = D.workloads(), D.needs()
        used.append("default workloads")
    if o.workload_file:
        w = load_workload_file(o.workload_file)
        workloads = [{"name": f"{Path(o.workload_file).name}: {w.task} {w.model}", "workload": w.to_dict()}]
    if o.needs_file:
        needs = read_raw(o.needs_file)
    else:
        used.append("default needs")
    load_needs(dict(needs))  # validate now: a bad needs file fails before minutes of measuring
    for item in workloads:
        w = workload_from_dict(dict(item["workload"]), where=item["name"])
        resolve_model(w.model)
    bench_model = o.model or D.BENCH_MODEL
    if not o.model:
        used.append(f"default bench model {D.BENCH_MODEL}")
    return Inputs(workloads=workloads, needs=needs, bench_model=bench_model, used_defaults=used)


# ------------------------------------------------------------------------------ this machine

def machine_section(prof, catalog: dict) -> dict[str, Any]:
    """Detection facts and, per local device, measured peaks beside the catalog's spec peaks."""
    from aipc.hardware.local import profile_catalog_specs

    m, sw = prof.machine, prof.machine.software
    matched = profile_catalog_specs(prof, catalog)
    devices = []
    for spec in prof.device_specs():
        cat = matched.get(spec.name)
        devices.append({
            "name": spec.name, "label": spec.label, "kind": spec.kind, "memory_bytes": spec.memory_bytes,
            "usable_memory_bytes": spec.usable_memory_bytes,
            "measured": {"peak_flops": dict(spec.peak_flops), "bandwidth_bytes_s": spec.bandwidth_bytes_s,
                         "sources": {k: to_jsonable(v) for k, v in spec.sources.items()}},
            "spec": None if cat is None else {
                "device": cat.name, "label": cat.label, "peak_flops": dict(cat.peak_flops),
                "bandwidth_bytes_s": cat.bandwidth_bytes_s, "memory_bytes": cat.memory_bytes,
                "sources": {k: to_jsonable(v) for k, v in cat.sources.items()}},
            "spec_why": None if cat is not None else (
                "the catalog lists no CPUs: spec peaks of this CPU are not available" if spec.kind == "cpu"
                else "no catalog entry matches this device's name"),
            "notes": spec.notes,
            "confidence": spec.confidence,           # "" or why a figure may be low and how to refresh
            "native_dtypes": list(spec.native_dtypes),
            "train_peak_flops": dict(spec.train_peak_flops),
        })
    return {
        "available": True, "fingerprint": prof.fingerprint, "mode": prof.mode, "measured_at": prof.measured_at,
        "cached": prof.cached, "measure_wall_s": prof.measure_wall_s, "load_avg": prof.load_avg,
        "cpu": {"model": m.cpu.model, "arch": m.cpu.arch, "physical_cores": m.cpu.physical_cores,
                "logical_cores": m.cpu.logical_cores, "torch_capability": m.cpu.torch_capability,
                "features": [k for k, v in m.cpu.features.items() if v]},
        "ram_total_bytes": m.ram_total_bytes,
        "gpus": [{"device": g.device, "name": g.name, "backend": g.backend, "memory_bytes": g.memory_bytes}
                 for g in m.gpus],
        "npus": [{"name": n.name, "driver": n.driver} for n in m.npus],
        "software": {"os": sw.os, "python": sw.python, "torch": sw.torch, "torch_build": sw.torch_build,
                     "transformers": sw.transformers, "blas": sw.blas, "torch_threads": sw.torch_threads},
        "devices": devices,
    }


# ------------------------------------------------------------------------------ bench

BENCH_KEYS = ("device", "scenario", "precision", "n", "median_s", "p10_s", "p90_s", "ci95_low_s", "ci95_high_s",
              "tokens_per_sample", "tokens_per_s", "flops_per_sample", "achieved_flops_s", "bytes_per_sample",
              "achieved_bytes_s", "peak_flops_measured", "mfu_measured", "peak_flops_spec", "mfu_spec",
              "bandwidth_measured_bytes_s", "mbu_measured", "bandwidth_spec_bytes_s", "mbu_spec", "est_s",
              "est_error", "peak_mem_bytes", "est_peak_mem_bytes", "peak_mem_method", "definition")


def bench_section(model: str, progress: Progress, db: str | None = None) -> dict[str, Any]:
    """Run the model quick on every local device (aipc.bench.runner.run_bench) and keep the numbers."""
    from aipc.bench.runner import BenchOptions, run_bench
    from aipc.bench.stats import LoopConfig

    lo, hi = STEPS["bench"]
    plan = len(D.BENCH_SCENARIOS) * (D.BENCH_LOOP["warmup"] + D.BENCH_LOOP["min_reps"])
    seen: dict[str, int] = {}

    def on_sample(label: str, n: int, t: float) -> None:
        seen[label] = n
        done = min(sum(seen.values()) / max(plan, 1), 1.0)
        progress(f"bench {model}: {label} sample {n}", lo + (hi - lo) * 0.9 * done)

    s = D.BENCH_SHAPE
    opts = BenchOptions(model=model, quick=True, scenarios=D.BENCH_SCENARIOS, batch=s["batch"], prompt=s["prompt"],
                        gen=s["gen"], seq=s["seq"], method=s["method"], loop=LoopConfig(**D.BENCH_LOOP), db=db)
    r = run_bench(opts, on_progress=on_sample)
    return {
        "available": True, "model": r["model"], "params": r.get("params"), "devices": r.get("devices", []),
        "scenarios": r.get("scenarios", []), "shape": dict(s), "loop": r.get("loop"), "wall_s": r.get("wall_s"),
        "definitions": r.get("definitions", {}), "ci_method": r.get("ci_method"), "db": r.get("db"),
        "peaks": (r.get("machine") or {}).get("peaks"),
        "results": [{k: to_jsonable(x.get(k)) for k in BENCH_KEYS} for x in r.get("results", [])],
        "speedup": to_jsonable(r.get("speedup", [])),
    }


def engine_bench_section(model: str, progress: Progress, db=None) -> dict[str, Any]:
    """The bench model through each installed quantized engine (llama.cpp, OpenVINO) at its formats in
    D.ENGINE_BENCH, and the factors fitted on those runs (aipc.bench.calibration), which the local
    estimates of those engines then use."""
    from aipc.engines import available

    engines = [e for e in D.ENGINE_BENCH if e in available()]
    if not engines:
        return unavailable("no quantized engine is installed here (llama-cpp-python, OpenVINO); ./setup.sh installs them")
    from aipc.bench.calibration import calibrate_results
    from aipc.bench.runner import BenchOptions, run_bench
    from aipc.bench.stats import LoopConfig
    from aipc.estimate.choose import ENGINE_NAMES

    s, rows, busy = D.ENGINE_BENCH_SHAPE, [], []
    for engine in engines:
        for fmt in D.ENGINE_BENCH[engine]:
            progress(f"bench {model} through {ENGINE_NAMES[engine]} {fmt}", STEPS["bench"][1])
            o = BenchOptions(model=model, engine=engine, precision=fmt, quick=True, scenarios=("prefill", "decode"),
                             batch=s["batch"], prompt=s["prompt"], gen=s["gen"], loop=LoopConfig(**D.BENCH_LOOP),
                             db=db)
            rep = run_bench(o)
            rows += rep["results"]
            busy += rep.get("warnings") or []
    out = {"available": True, "model": model, "engine": engines[0], "engines": engines, "shape": dict(s),
           "results": [{k: to_jsonable(r.get(k)) for k in (*BENCH_KEYS, "engine", "weight_format")} for r in rows]}
    if busy:  # a busy moment must not rewrite the machine: measured, shown, not used for the estimates
        return {**out, "calibration": None, "not_used": f"measured under load ({busy[0]}): not used for the estimates"}
    return {**out, "calibration": calibrate_results(rows)["table"]}


# ------------------------------------------------------------------------------ estimates

def _timing_fields(e) -> dict[str, Any]:
    t = e.time
    return {"decode_tokens_per_s": t.decode_tokens_per_s, "ttft_s": t.ttft_s, "tpot_s": t.tpot_s,
            "train_tokens_per_s": t.train_tokens_per_s, "step_s": t.step_s, "bound": t.bound}


def _estimate_row(w, d, mspec, local: bool, need, cpu_bf16_native: bool | None = None) -> dict[str, Any]:
    """One device's row: the best engine x precision there (aipc.estimate.choose), whether it meets the
    need and what it misses, with the torch figure beside it."""
    from aipc.estimate.choose import best_setup, setup_name

    base = {"device": d.name, "label": d.label, "category": d.category, "kind": d.kind, "local": local,
            "memory_bytes": d.memory_bytes, "price_usd": d.price_usd}
    try:
        ch = best_setup(w, d, mspec, need, cpu_bf16_native=cpu_bf16_native if local else None)
    except (AipcError, ZeroDivisionError, ValueError) as ex:
        return {**base, "available": False, "why": _why(ex)}
    if ch is None:
        return {**base, "available": False, "why": f"no setup of {w.model} can be estimated on {d.name}"}
    e, cw = ch.estimate, ch.workload
    torch_e = ch.torch()
    torch_w = next((c for c, _ in ch.tried if c.engine == "torch"), None)
    return {**base, "available": True, "fits": e.fits, "devices_needed": e.devices_needed,
            "setup": setup_name(cw), "engine": cw.engine, "weight_dtype": cw.weight_dtype,
            "meets": ch.meets, "misses": list(ch.misses),
            "peak_bytes": e.memory.peak_bytes, "capacity_bytes": e.capacity_bytes, "peak_phase": e.memory.peak_phase,
            "components": dict(e.memory.components), "weights_only_bytes": e.memory.weights_only_bytes,
            **_timing_fields(e), "efficiency_source": e.efficiency.source, "verdict": e.verdict,
            "suggestions": list(e.suggestions[:3]), "warnings": list(e.warnings[:3]),
            "torch": None if torch_e is None or torch_w == cw else {
                "setup": setup_name(torch_w), "fits": torch_e.fits, "peak_bytes": torch_e.memory.peak_bytes,
                **_timing_fields(torch_e)}}


def estimates_section(workloads: list[dict], local: list, catalog: dict, needs: dict | None = None,
                      cpu_bf16_native: bool | None = None, measured: dict | None = None) -> dict[str, Any]:
    """Each workload on this machine's devices and on every catalog device, at the best engine x
    precision of each (judged against the workload's need). ``measured``: factors fitted on this
    report's own llama.cpp runs (engine_bench_section), used where no stored calibration answers."""
    from aipc.cost.targets import need_for
    from aipc.estimate import calibrate as C
    from aipc.estimate import resolve_model
    from aipc.spec import workload_from_dict

    out = []
    for item in workloads:
        w = workload_from_dict(dict(item["workload"]), where=item["name"])
        m = resolve_model(w.model)
        need = need_for(item["name"], w, needs or {})
        with C.using(C.stored_with(measured)):
            rows = [_estimate_row(w, d, m, True, need, cpu_bf16_native) for d in local]
        rows += [_estimate_row(w, d, m, False, need) for d in catalog.values()]
        out.append({"name": item["name"], "model": m.name, "task": w.task, "method": w.method,
                    "workload": w.to_dict(), "params": m.param_count(), "rows": rows,
                    "need": {"ttft_s": need.ttft_s, "tpot_s": need.tpot_s, "train_tokens": need.train_tokens,
                             "deadline_s": need.deadline_s}})
    return {"available": True, "workloads": out}


# ------------------------------------------------------------------------------ decide

def decision_section(needs: dict, local: list, catalog: dict, db: str | None = None) -> dict[str, Any]:
    from aipc.cost import decide
    from aipc.cost.throughput import load_index

    d = decide(dict(needs), catalog=catalog, local=local, measured=load_index(db) if db else None)
    return {"available": True, **to_jsonable(d.to_dict())}


# ------------------------------------------------------------------------------ orchestration

def versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"python": platform.python_version(), "os": platform.platform()}
    for pkg in ("aipc", "torch", "transformers", "peft"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def _run(name: str, fn: Callable[[], dict], timings: dict) -> dict:
    t0 = time.perf_counter()
    try:
        return fn()
    except AipcError as e:
        return unavailable(str(e))
    except Exception as e:  # noqa: BLE001 - a failing part becomes a "not available" section, never a lost report
        return unavailable(_why(e))
    finally:
        timings[name] = time.perf_counter() - t0


def collect(o: ReportOptions, progress: Progress | None = None) -> dict[str, Any]:
    """Everything the page shows, as one JSON-ready dict."""
    progress = progress or (lambda what, frac: None)
    t_start = time.perf_counter()
    inputs = check_inputs(o)
    timings: dict[str, float] = {}
    from aipc.hardware.catalog import load_catalog

    catalog = load_catalog()
    progress("profiling this machine (aipc hw --quick; cached after the first run)", STEPS["profile"][0])
    holder: dict[str, Any] = {}

    def profile() -> dict:
        from aipc.hardware.profile import load_or_measure

        holder["prof"] = load_or_measure(quick=True)
        return machine_section(holder["prof"], catalog)

    machine = _run("profile", profile, timings)
    local = holder["prof"].device_specs() if "prof" in holder else []
    if not local:
        from aipc.hardware.local import local_devices

        local = local_devices()
    progress("profile done", STEPS["profile"][1])
    if o.bench:
        bench = _run("bench", lambda: bench_section(inputs.bench_model, progress, o.db), timings)
        engine_bench = _run("engine_bench", lambda: engine_bench_section(inputs.bench_model, progress, o.db), timings)
    else:
        bench = engine_bench = unavailable("skipped (--no-bench)")
    progress("estimating workloads on this machine and the catalog devices", STEPS["estimate"][0])
    from aipc.hardware.local import cpu_bf16_native

    native = cpu_bf16_native(holder.get("prof"))
    measured = engine_bench.get("calibration") if engine_bench.get("available") else None
    est = _run("estimate", lambda: estimates_section(inputs.workloads, local, catalog, inputs.needs, native, measured),
               timings)
    progress("deciding buy versus rent", STEPS["decide"][0])
    decision = _run("decide", lambda: decision_section(inputs.needs, local, catalog, o.db), timings)
    from aipc.report.sections_here import here_section  # "What you can run here" (aipc models --here's table)

    here = _run("here", lambda: here_section(o.db), timings)
    progress("rendering", STEPS["decide"][1])
    return {
        "schema": SCHEMA,
        "generated_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "inputs": {"model": o.model, "workload_file": o.workload_file, "needs_file": o.needs_file, "bench": o.bench,
                   "bench_model": inputs.bench_model, "defaults_used": inputs.used_defaults,
                   "workloads": inputs.workloads, "needs": inputs.needs},
        "argv": list(o.argv), "versions": versions(), "machine": machine, "bench": bench,
        "engine_bench": engine_bench, "estimates": est,
        "decision": decision, "here": here, "timings_s": {**timings, "total": time.perf_counter() - t_start},
    }


def write_inputs(data: dict, out: Path) -> list[str]:
    """The needs and workloads the report used, as files the reproduce commands read."""
    written = []
    needs = out / "needs.json"
    needs.write_text(json.dumps(data["inputs"]["needs"], indent=2) + "\n", encoding="utf-8")
    written.append(needs.name)
    for i, item in enumerate(data["inputs"]["workloads"], 1):
        p = out / f"workload-{i}.json"
        p.write_text(json.dumps(item["workload"], indent=2) + "\n", encoding="utf-8")
        written.append(p.name)
    return written
