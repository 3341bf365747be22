"""The page's sections from the report data: verdict, this machine, roofline, measurements, workloads.

Cost, assumptions and reproduce live in :mod:`aipc.report.sections_cost`. Each function takes the
whole data dict, computes the numbers and texts the section shows, and renders them through the
section's template (``templates/sections/*.html``) as ``Markup``; a missing part renders as
"not available: <why>". No HTML is written here.
"""

from __future__ import annotations

from typing import Any

from markupsafe import Markup

from aipc.cost.fmt import pct
from aipc.estimate.calibrate import peak_dtypes
from aipc.render import gb, seconds, si
from aipc.report import charts as C
from aipc.report import defaults as D
from aipc.report.templating import figure, na, render, status
from aipc.report.verdict import tok_s, verdict

DTYPE_BYTES = {"fp32": 4, "tf32": 4, "bf16": 2, "fp16": 2, "fp8": 1}


def verdict_html(data: dict) -> Markup:
    return render("sections/verdict.html", verdict=verdict(data))


# ------------------------------------------------------------------------------ this machine

def _peak(peaks: dict, dtype: str) -> tuple[str, float | None]:
    """The estimator's fallback order (aipc.estimate.calibrate.peak_dtypes)."""
    for dt in peak_dtypes(dtype):
        if peaks.get(dt):
            return dt, peaks[dt]
    return dtype, None


def machine_facts(m: dict) -> list[tuple[str, Any]]:
    """(what, text) pairs: CPU, memory, GPUs, NPUs, software, profile, load, confidence, native dtypes."""
    cpu, sw = m["cpu"], m["software"]
    load = m.get("load_avg")
    pairs = [
        ("CPU", f"{cpu['model']} — {cpu.get('physical_cores') or '?'} physical / {cpu['logical_cores']} logical cores, "
                f"{cpu['arch']}, torch kernels {cpu.get('torch_capability') or '-'}"),
        ("Memory (RAM)", gb(m.get("ram_total_bytes"))),
        ("GPUs", "; ".join(f"{g['device']}: {g['name']} ({g['backend']}, {gb(g['memory_bytes'])})" for g in m["gpus"])
         or "none visible to torch"),
        ("NPUs", "; ".join(f"{n['name']} ({n.get('driver') or 'driver unknown'})" for n in m["npus"])
         or "none exposed by the OS"),
        ("Software", f"{sw.get('os')}; Python {sw.get('python')}; torch {sw.get('torch')} ({sw.get('torch_build')}); "
                     f"transformers {sw.get('transformers')}; BLAS {sw.get('blas') or '-'}; {sw.get('torch_threads')} threads"),
        ("Profile", f"{m['mode']} probe measured {m['measured_at']}" + (" (cached)" if m.get("cached") else "")
                    + f"; fingerprint {m['fingerprint']}"),
    ]
    if load:
        pairs.append(("Load average", f"{load[0]:.1f} before, {load[1]:.1f} after measuring "
                                      f"({cpu['logical_cores']} logical cores; higher means other work competed)"))
    for d in m["devices"]:
        if d.get("confidence"):
            pairs.append((f"Confidence ({d['name']})", d["confidence"]))
        if d.get("native_dtypes"):
            pairs.append((f"Native dtypes ({d['name']})", ", ".join(d["native_dtypes"])))
    return pairs


def peak_rows(m: dict) -> list[list[Any]]:
    """Per local device: training and dense peaks, bandwidth and memory, measured beside the catalog spec."""
    rows = []
    for d in m["devices"]:
        meas, spec = d["measured"], d.get("spec")
        for dt, v in (d.get("train_peak_flops") or {}).items():
            src = (meas["sources"].get(f"train_peak_flops.{dt}") or {}).get("source", "-")
            rows.append([d["label"], f"{dt} linear forward+backward (training)", si(v, "FLOP/s"), "-", "-", src])
        dts = list(dict.fromkeys([*meas["peak_flops"], *((spec or {}).get("peak_flops") or {})]))
        for dt in dts:
            mv = meas["peak_flops"].get(dt)
            sv = (spec or {}).get("peak_flops", {}).get(dt)
            src = (meas["sources"].get(f"peak_flops.{dt}") or {}).get("source", "-")
            rows.append([d["label"], f"dense {dt} peak", si(mv, "FLOP/s"), si(sv, "FLOP/s") if spec else "-",
                         pct(mv / sv) if mv and sv else "-", src])
        mb, sb = meas["bandwidth_bytes_s"], (spec or {}).get("bandwidth_bytes_s")
        rows.append([d["label"], "memory bandwidth", si(mb, "B/s"), si(sb, "B/s") if spec else "-",
                     pct(mb / sb) if mb and sb else "-",
                     (meas["sources"].get("bandwidth_bytes_s") or {}).get("source", "-")])
        rows.append([d["label"], "memory (usable)", gb(d["usable_memory_bytes"]), gb((spec or {}).get("memory_bytes")),
                     "-", "measured here" if not spec else f"spec: catalog {spec['device']}"])
    return rows


def machine_html(data: dict) -> Markup:
    m = data.get("machine") or {}
    if not m.get("available"):
        return na(m.get("why", "no profile"))
    why = [f"{d['label']}: {d['spec_why']}" for d in m["devices"] if d.get("spec_why")]
    return render("sections/machine.html", pairs=machine_facts(m), rows=peak_rows(m), spec_why="; ".join(why))


# ------------------------------------------------------------------------------ roofline

def _bench_by_device(data: dict) -> dict[str, list[dict]]:
    b = data.get("bench") or {}
    out: dict[str, list[dict]] = {}
    for r in b.get("results") or [] if b.get("available") else []:
        out.setdefault(r["device"], []).append(r)
    return out


def roofline_parts(data: dict) -> tuple[list[dict], list[dict]]:
    """(ceiling series, measured points). x: FLOPs per byte moved; y: FLOP/s."""
    m, b = data.get("machine") or {}, data.get("bench") or {}
    by_dev = _bench_by_device(data)
    params = b.get("params") or 0
    points: list[dict] = []
    devs = m.get("devices") or [] if m.get("available") else []
    for i, d in enumerate(devs):
        short = d["name"].split(":", 1)[1] if d["name"].startswith("this-machine:") else d["name"]
        for r in by_dev.get(short, []):
            f, y = r.get("flops_per_sample"), r.get("achieved_flops_s")
            nbytes = r.get("bytes_per_sample") or params * DTYPE_BYTES.get(r.get("precision") or "fp32", 4)
            if not f or not y or not nbytes:
                continue
            how = "bytes measured by the estimator's decode formula" if r.get("bytes_per_sample") else \
                "bytes taken as the weights read once (a lower bound: intensity is an upper bound)"
            points.append({"x": f / nbytes, "y": y, "label": f"{short} {r['scenario']}", "color": C.color(i),
                           "tip": f"{short} {r['scenario']}: {si(y, 'FLOP/s')} achieved at {f / nbytes:.3g} "
                                  f"FLOP/byte; {how}"})
    ceilings = []
    for i, d in enumerate(devs):
        short = d["name"].split(":", 1)[1] if d["name"].startswith("this-machine:") else d["name"]
        prec = (by_dev.get(short) or [{}])[0].get("precision") or ("fp32" if d["kind"] == "cpu" else "bf16")
        for kind, src, dashed in (("measured", d["measured"], False), ("spec", d.get("spec"), True)):
            if not src:
                continue
            dt, peak = _peak(src.get("peak_flops") or {}, prec)
            bw = src.get("bandwidth_bytes_s")
            if not peak or not bw:
                continue
            ceilings.append((f"{short} {kind} ceiling: {si(peak, 'FLOP/s')} {dt}, {si(bw, 'B/s')}", peak, bw, dashed, i))
    xs = [p["x"] for p in points] + [peak / bw for _, peak, bw, _, _ in ceilings]
    lo, hi = (min(xs) / 8, max(xs) * 8) if xs else (0.1, 100.0)
    series = [{"name": name, "points": [(lo, bw * lo), (peak / bw, peak), (hi, peak)], "dashed": dashed,
               "color": C.color(i)} for name, peak, bw, dashed, i in ceilings]
    return series, points


def roofline_html(data: dict) -> Markup:
    series, points = roofline_parts(data)
    if not series:
        m = data.get("machine") or {}
        return na(m.get("why") or "no measured peaks for this machine (run 'aipc hw')")
    svg = C.line_chart(series, points=points,
                       title="Roofline (log-log): attainable FLOP/s = min(peak, bandwidth × intensity)",
                       x_label="arithmetic intensity (FLOPs per byte moved)", y_label="FLOP/s",
                       x_fmt=lambda v: f"{v:g}", y_fmt=lambda v: si(v, ""), xlog=True, ylog=True,
                       note="solid: ceilings from peaks measured here; dashed: catalog spec; points: measured runs")
    b = data.get("bench") or {}
    cap = ("Points are the measured runs of the benchmark below (achieved FLOP/s = the estimator's FLOPs of one sample "
           "/ its median time). Decode bytes are weights + KV cache read per step; prefill and train bytes are taken as "
           "the weights read once, so their intensity is an upper bound.")
    if not points:
        cap = "No measured points: " + (b.get("why") or "the benchmark produced no FLOP counts") + ". " + cap
    return figure("roofline", svg, cap)


# ------------------------------------------------------------------------------ measurements

def bench_rows(res: list[dict]) -> list[list[Any]]:
    """The measurement table: one row per (device, scenario)."""
    rows = []
    for r in res:
        err = "" if r.get("est_error") is None else f" ({r['est_error'] * 100:+.0f}%)"
        mbu = pct(r.get("mbu_measured"), 1) if r.get("mbu_measured") is not None else "-"
        rows.append([f"{r['device']} {r.get('precision') or ''}", r["scenario"],
                     f"{seconds(r.get('median_s'))} ({seconds(r.get('p10_s'))} – {seconds(r.get('p90_s'))}, n={r.get('n')})",
                     tok_s(r.get("tokens_per_s")), si(r.get("achieved_flops_s"), "FLOP/s"),
                     f"{pct(r.get('mfu_measured'), 1)} | {pct(r.get('mfu_spec'), 1)}", mbu,
                     seconds(r.get("est_s")) + err, f"{gb(r.get('peak_mem_bytes'))} | {gb(r.get('est_peak_mem_bytes'))}"])
    return rows


def speedup_chart(sp: list[dict]) -> Markup:
    others = list(dict.fromkeys(d for s in sp for d in s["r"]))
    rows = [(f"{s['scenario']} (vs {s['reference']})", {d: s["r"].get(d) for d in others}) for s in sp]
    return C.hbar_chart(rows, others, fmt=lambda v: f"{v:.2f}x",
                        title="Speedup R per scenario" + (f" ({others[0]})" if len(others) == 1 else ""))


def bench_html(data: dict) -> Markup:
    b = data.get("bench") or {}
    if not b.get("available"):
        return na(b.get("why", "benchmark not run"))
    res = b["results"]
    devices = list(dict.fromkeys(r["device"] for r in res))
    scen = list(dict.fromkeys(r["scenario"] for r in res))
    rows = [(s, {d: next((r.get("tokens_per_s") for r in res if r["device"] == d and r["scenario"] == s), None)
                 for d in devices}) for s in scen]
    shape = b.get("shape") or {}
    peaks = "-" if b.get("peaks") is None else b["peaks"]
    intro = (f'{b["model"]} ({si(b.get("params"), "", 3)} parameters, random weights of the real architecture) '
             f'measured on every local device, quick: batch {shape.get("batch")}, prompt {shape.get("prompt")}, '
             f'{shape.get("gen")} generated, training sequence {shape.get("seq")}. Peaks: {peaks}.')
    title = "Measured tokens/s per device" + (f" ({devices[0]})" if len(devices) == 1 else "")
    tokens = C.hbar_chart(rows, devices, title=title, fmt=num, note="tokens/s = tokens per sample / median sample time")
    sp = b.get("speedup") or []
    return render("sections/bench.html", intro=intro, tokens_svg=tokens, rows=bench_rows(res),
                  definitions=" · ".join((b.get("definitions") or {}).values()), ci_method=b.get("ci_method"),
                  speedup_svg=speedup_chart(sp) if sp else None,
                  no_speedup=f"only one local device was measured ({', '.join(devices)}): R compares two devices of "
                             "the same machine, e.g. R = t_cpu / t_gpu")


# ------------------------------------------------------------------------------ workloads

def _local_or_first(rows: list[dict]) -> dict | None:
    ok = [r for r in rows if r.get("available")]
    return next((r for r in ok if r["local"]), ok[0] if ok else None)


def _speed(r: dict, task: str) -> float | None:
    return r.get("decode_tokens_per_s") if task == "infer" else r.get("train_tokens_per_s")


def fit_cell(r: dict, task: str) -> dict[str, Any]:
    """One device x workload cell: fits / too slow / does not fit, then memory and speed (a status cell)."""
    if not r.get("available"):
        return status("note", r.get("why"))
    setup = f'{r["setup"]} · ' if r.get("setup") else ""
    if r["fits"] and r.get("meets", True):
        return status("yes", "fits", f'{setup}{gb(r["peak_bytes"])} · {tok_s(_speed(r, task))}')
    if r["fits"]:
        return status("no", "too slow", f'{setup}{gb(r["peak_bytes"])} · {tok_s(_speed(r, task))} '
                                        f'({"; ".join(r.get("misses") or [])})')
    need = r.get("devices_needed")
    more = f"needs {need} devices" if need else "no device count fits"
    return status("no", "does not fit", f'{gb(r["peak_bytes"])} · {more}')


def memory_chart(ws: list[dict]) -> Markup | None:
    """Stacked peak memory per workload (this machine's first device), with device capacities marked."""
    mem_rows, marks = [], []
    for w in ws:
        r = _local_or_first(w["rows"])
        if r:
            mem_rows.append((w["name"], {k.replace("_bytes", "").replace("_", " "): v
                                         for k, v in r["components"].items() if v > 0}))
    for r in ws[0]["rows"]:
        if r.get("available") and (r["local"] or r["device"] in D.CAPACITY_MARKS):
            marks.append((("this machine " if r["local"] else "") + r["device"].replace("this-machine:", ""),
                          r["capacity_bytes"]))
    if not mem_rows:
        return None
    top = max(sum(d.values()) for _, d in mem_rows)
    limit = max(2 * top, min([v for _, v in marks if v >= top], default=0))
    shown = [mk for mk in marks if mk[1] <= limit]
    beyond = "; ".join(f"{n} {gb(v)}" for n, v in sorted(marks, key=lambda m: m[1]) if v > limit)
    return C.stacked_hbar(mem_rows, marks=shown, fmt=_gib, tick_unit=2**30,
                          title="Peak memory by component, with device capacities",
                          note=f"beyond the axis: {beyond}" if beyond else "")


def speed_chart(ws: list[dict]) -> Markup:
    """Estimated tokens/s of each workload on this machine and a pick of catalog devices (log bars)."""
    first = ws[0]["rows"]
    picks = [r for r in first if r["local"] or r["category"] in ("ai-pc", "workstation") or r["device"] in D.CAPACITY_MARKS]
    picks = picks[: D.SPEED_CHART_LIMIT + sum(1 for r in first if r["local"])]
    srows = []
    for r0 in picks:
        vals: dict[str, Any] = {}
        for w in ws:
            r = next(x for x in w["rows"] if x["device"] == r0["device"])
            if not r.get("available"):
                vals[w["name"]] = "no estimate"
            elif not r["fits"]:
                vals[w["name"]] = "does not fit on one"
            else:
                vals[w["name"]] = _speed(r, w["task"]) or "speed not known"
        srows.append((r0["label"] if not r0["local"] else "This machine: " + r0["label"], vals))
    return C.hbar_chart(srows, [w["name"] for w in ws], log=True, title="Estimated tokens/s per device (log scale)",
                        fmt=num, note="serving: generated tokens/s at batch 1; training: trained tokens/s")


def workloads_html(data: dict) -> Markup:
    est = data.get("estimates") or {}
    if not est.get("available"):
        return na(est.get("why", "no estimates"))
    ws = est["workloads"]
    rows = [[("This machine: " if r0["local"] else "") + r0["label"], r0["category"],
             gb(r0.get("capacity_bytes") or r0.get("memory_bytes")), *(fit_cell(w["rows"][i], w["task"]) for w in ws)]
            for i, r0 in enumerate(ws[0]["rows"])]
    return render("sections/workloads.html", described=[(w["name"], _describe(w)) for w in ws],
                  memory_svg=memory_chart(ws), speed_svg=speed_chart(ws), names=[w["name"] for w in ws], rows=rows)


def _gib(v: float) -> str:
    return gb(v, 0) if v >= 10 * 2**30 else gb(v)


def num(v: float) -> str:
    """Chart labels: three significant digits below 1000, whole numbers with separators above."""
    return f"{v:,.0f}" if v >= 1000 else f"{v:.3g}"


def _describe(w: dict) -> str:
    wl = w["workload"]
    if w["task"] == "infer":
        return (f"{w['model']} inference at the best engine x precision of each device (PyTorch at its native "
                f"16-bit type, llama.cpp Q8_0 or Q4_K_M), batch {wl['batch_size']}, "
                f"{wl['prompt_tokens']} prompt + {wl['gen_tokens']} generated tokens")
    ck = ", activation checkpointing" if wl.get("grad_ckpt") else ""
    return (f"{w['model']} {w['method']} training, {wl['weight_dtype']} weights, batch {wl['batch_size']} × "
            f"{wl['seq_len']} tokens, {wl['optimizer']}{ck}")
