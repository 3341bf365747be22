"""Fit the estimator's efficiency factors from stored bench runs and measure what that buys.

For each stored run of this machine (train, prefill, decode), the estimator is asked for the same
workload on the same DeviceSpec (this machine's aipc hw profile) with no calibration; its FLOPs and
bytes and the measured median give the run's factor (see ``aipc.estimate.calibrate``). Held-out
error: for every run, the factors are refitted WITHOUT any run of the same model, scenario and shape
(leave-one-shape-out), the estimator predicts that run's time with them, and the error
est / measured - 1 is compared with the uncalibrated estimate's. A stricter figure leaves out every
run of the model (leave-one-model-out), where two models or more were measured.
"""

from __future__ import annotations

import statistics
from collections import Counter

from aipc.errors import AipcError
from aipc.estimate import calibrate as C

TIME_FIELD = {"train": "step_s", "prefill": "prefill_s", "decode": "tpot_s"}


def _shape(run: dict) -> tuple:
    w = run["workload"]
    return (run["model"], run["scenario"], w.get("batch_size"), w.get("seq_len") if run["scenario"] == "train"
            else w.get("prompt_tokens"), w.get("gen_tokens") if run["scenario"] == "decode" else None,
            w.get("method"), w.get("weight_dtype"), w.get("compute_dtype"))


def _prefill_mark(spec, w, c, scen: str) -> dict:
    """{"against": C.OV_KERNELS} for an OpenVINO prefill timed against the FLOP/s aipc hw --kernels measured
    for its weight format on this CPU; {} otherwise."""
    from aipc.estimate.kernels import openvino_prefill

    if scen == "prefill" and w.engine == "openvino" and openvino_prefill(spec, w.weight_dtype, w.prompt_tokens,
                                                                        c.prefill_width):
        return {"against": C.OV_KERNELS}
    return {}


def _decode_bandwidth(spec, w, c) -> tuple[float | None, str | None]:
    """(bytes/s a decode's MBU is taken against, what it is): llama.cpp on a CPU where aipc hw --kernels
    measured decode bandwidths, those of the run's own weight types (C.READS); else the copy bandwidth."""
    if w.engine == "llamacpp" and spec.kind == "cpu" and c.decode_mix:
        from aipc.estimate.kernels import decode_read_mix

        got = decode_read_mix(spec, c.decode_mix, c.prefill_width)
        if got:
            return got[0], C.READS
    return spec.bandwidth_bytes_s, None


def _decode_remainder(est, t: float) -> float:
    """The seconds a decode's MBU and per-layer time are fitted on: its measured time, less the attention's
    work over the KV cache where the estimate timed it apart (llama.cpp on a CPU, aipc.estimate.roofline; at
    least half the time is kept)."""
    return max(t - est.time.decode_attention_s, t / 2)


def prepare_points(runs: list[dict], specs: dict) -> tuple[list[dict], list[str]]:
    """One point per usable run: factor, the estimator's FLOPs per token, the workload; and why others were skipped."""
    from aipc.estimate import estimate, resolve_model
    from aipc.estimate.compute import decode_context
    from aipc.estimate.roofline import cache_resident
    from aipc.spec import workload_from_dict

    points, skipped = [], []
    for run in runs:
        scen, dev = run.get("scenario"), run.get("device")
        if scen not in C.SCENARIOS:
            continue
        spec = specs.get(dev)
        t = (run.get("metrics") or {}).get("median_s")
        if spec is None or not t:
            skipped.append(f"{run['id'][:8]}: no measured spec for {dev}" if spec is None else f"{run['id'][:8]}: no median")
            continue
        try:
            w = workload_from_dict(run["workload"])
            ref = (run.get("context") or {}).get("model_ref") or w.model
            m = resolve_model(ref)
        except AipcError as e:
            skipped.append(f"{run['id'][:8]}: {e}")
            continue
        with C.using({}):
            est = estimate(w, spec, model=m)
        c = est.compute
        extra = {}
        if scen == "decode":
            bw, against = _decode_bandwidth(spec, w, c)
            factor = c.decode_bytes_per_step / (bw * _decode_remainder(est, t)) if bw else None
            if bw:  # the two-term decode fit needs the time at full bandwidth and the layer count
                extra = {"ideal_s": c.decode_bytes_per_step / bw, "layers": c.layers, "context": decode_context(w),
                         **({"against": against} if against else {}),
                         **({"attention_apart": True} if est.time.decode_attention_s else {})}
        else:
            peak = C.workload_peak(spec, w, train=scen == "train", compute=c)
            work = c.flops_per_step if scen == "train" else c.prefill_flops
            factor = work / (peak * t) if peak else None
            if peak:  # the fitted time model's inputs (aipc.estimate.calibrate_linear)
                extra = {"ideal_s": work / peak, "layers": c.layers, **_prefill_mark(spec, w, c, scen)}
        if not factor:
            skipped.append(f"{run['id'][:8]}: {spec.name} has no measured peak for {w.compute}")
            continue
        if scen == "decode" and w.engine != "torch" and cache_resident(spec, c):
            extra["cache_resident"] = True
        points.append({"run_id": run["id"], "device": spec.name, "bench_device": dev, "scenario": scen,
                       "model": run["model"], "flops_per_token": c.flops_per_token, "factor": factor,
                       "tokens": C.tokens_for(w)[scen], "engine": w.engine, "runner": m.torch_runner,
                       "weight_format": w.weight_dtype if w.engine != "torch" else None,
                       "measured_s": t, "workload": w, "model_spec": m, "spec": spec, "shape": _shape(run),
                       "est_uncalibrated_s": getattr(est.time, TIME_FIELD[scen]), **extra})
    return points, skipped


def _predict(p: dict, table: dict) -> float | None:
    from aipc.estimate import estimate

    with C.using(table):
        est = estimate(p["workload"], p["spec"], model=p["model_spec"])
    return getattr(est.time, TIME_FIELD[p["scenario"]])


def held_out(points: list[dict]) -> list[dict]:
    """Leave-one-shape-out predictions: for each point, fit on the points of other shapes."""
    out = []
    for p in points:
        rest = [q for q in points if q["shape"] != p["shape"]]
        table = C.fit(rest)
        after = _predict(p, table)
        before = p["est_uncalibrated_s"]
        out.append({"run_id": p["run_id"], "device": p["device"], "scenario": p["scenario"], "model": p["model"],
                    "engine": p["engine"], "weight_format": p["weight_format"],
                    "shape": list(p["shape"][2:5]), "measured_s": p["measured_s"],
                    "est_before_s": before, "est_after_s": after,
                    "error_before": before / p["measured_s"] - 1 if before else None,
                    "error_after": after / p["measured_s"] - 1 if after else None,
                    "factor": p["factor"], "flops_per_token": p["flops_per_token"], "tokens": p["tokens"],
                    "trained_on": len(rest)})
    return out


def held_out_models(points: list[dict]) -> dict[str, dict]:
    """A stricter check: each model's runs predicted by factors fitted WITHOUT any run of that model
    (leave-one-model-out); median |error| per (device, scenario) and over all. Needs two models or more."""
    errs: dict[str, list[float]] = {}
    models = sorted({p["model"] for p in points})
    if len(models) < 2:
        return {}
    for model in models:
        table = C.fit([q for q in points if q["model"] != model])
        for p in points:
            if p["model"] == model:
                after = _predict(p, table)
                if after:
                    e = after / p["measured_s"] - 1
                    errs.setdefault("all", []).append(e)
                    errs.setdefault(f"{p['device']} {C.scenario_key(p['scenario'], p['engine'])}", []).append(e)
    return {k: {"n": len(v), "median_abs_error": _median_abs(v)} for k, v in errs.items()}


def _median_abs(xs: list[float | None]) -> float | None:
    vals = [abs(x) for x in xs if x is not None]
    return statistics.median(vals) if vals else None


def summarize_errors(rows: list[dict]) -> dict:
    """Median |error| before and after, overall and per (device, scenario)."""
    groups: dict[str, list[dict]] = {"all": rows}
    for r in rows:
        groups.setdefault(f"{r['device']} {C.scenario_key(r['scenario'], r.get('engine', 'torch'))}", []).append(r)
    return {k: {"n": len(v), "median_abs_error_before": _median_abs([r["error_before"] for r in v]),
                "median_abs_error_after": _median_abs([r["error_after"] for r in v])} for k, v in groups.items()}


def calibrate_runs(runs: list[dict], specs: dict, *, min_runs: int = 2) -> dict:
    """Fit, evaluate held-out, and return {table, held_out, errors, skipped, runs_used}."""
    points, skipped = prepare_points(runs, specs)
    if len(points) < min_runs:
        raise AipcError(f"need at least {min_runs} stored bench runs (train, prefill or decode) of this machine to "
                        f"calibrate, found {len(points)}; run 'aipc bench MODEL' with a few shapes first")
    rows = held_out(points)
    errs = summarize_errors(rows)
    model_out = held_out_models(points)
    date = C.today()
    counts = Counter((p["device"], C.scenario_key(p["scenario"], p["engine"])) for p in points)
    table = C.fit(points)
    for dev, scens in table["devices"].items():
        spec = next((p["spec"] for p in points if p["device"] == dev), None)
        for key, entry in scens.items():
            e = errs.get(f"{dev} {key}", {})
            after, before = e.get("median_abs_error_after"), e.get("median_abs_error_before")
            held = (f", held-out median error {after:.0%}" + (f" (uncalibrated {before:.0%})" if before is not None else "")
                    if after is not None else "")
            for sub in [entry, *(entry.get("by_format") or {}).values(), *([entry["all"]] if "all" in entry else [])]:
                sub["source"] = f"fitted from {sub.get('n_runs', counts[(dev, key)])} runs on {date}{held}"
                if spec is not None:  # the peaks these factors multiply: refit after 'aipc hw --refresh'
                    sub["fitted_against"] = {"peak_flops": dict(spec.peak_flops),
                                             "bandwidth_bytes_s": spec.bandwidth_bytes_s}
    return {"table": table, "held_out": rows, "errors": errs, "errors_model_out": model_out, "skipped": skipped,
            "runs_used": len(points)}


def calibrate_results(results: list[dict], *, min_runs: int = 2) -> dict:
    """:func:`calibrate_runs` on the results :func:`aipc.bench.runner.run_bench` just returned (stored
    or not), against this machine's cached ``aipc hw`` profile (never measured here)."""
    from aipc.bench.context import machine_context

    runs = [{"id": r.get("run_id") or f"result-{i}", "scenario": r["scenario"], "device": r["device"],
             "model": r["model"], "workload": r["workload"], "metrics": {"median_s": r["median_s"]},
             "context": {"model_ref": r["workload"]["model"]}} for i, r in enumerate(results)]
    return calibrate_runs(runs, machine_context(measure=False).specs, min_runs=min_runs)
