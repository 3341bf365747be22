"""The estimator against measured llama.cpp runs on this machine — one command, for a quiet machine.

    .venv/bin/python scripts/llamacpp_validation.py [--quick] [--write] [--skip-8b] [--smoke] [--gguf-8b FILE]
                                                    [--from-db FILE] [--passes N]

0. Measures llama.cpp's prefill FLOP/s per weight type on this machine (`aipc hw --kernels`), which the
   estimator's llama.cpp prefill starts from.

1. Converts small catalog models to GGUF with random weights (aipc's cache; llama.cpp's converter and
   quantizer) and measures prefill and decode through `aipc bench --engine llamacpp` for every
   (model, quant type, shape) below, stored in a results DB of its own.
2. Fits the calibration on a subset (CALIB_* below) and predicts every other run — other quant types,
   other shapes, another model — with it ("held-out"); also predicts every run uncalibrated (the
   published / default factors). Error = estimate / measured - 1; median and max |error| per scenario.
   Targets: held-out median <= 10%, max <= 20%; uncalibrated <= 30%.
3. Llama-3.1-8B at Q4_K_M (random weights, converted here): the report's estimate for the 8B chat
   workload on this machine (with the calibration of step 2 in effect, as `aipc report` would use it)
   against a measured llama.cpp decode of the same GGUF. Target: within 25%.

Every shape is measured twice (--passes N), a whole sweep apart, and the faster of its runs is kept for
the fit and for the errors alike (a busy spell on a shared machine only slows a run).
--from-db FILE re-evaluates the runs of an earlier run's results DB (printed at its start) with this
checkout's estimator, without measuring them again (never written).
--write puts the tables in docs/validation.md ("## llama.cpp: estimates against measured runs") with
the command, the CPU's ISA flags and the load average. The machine must be quiet: the script says the
load average before and after, and refuses to --write when the 1-minute load was above 1.0 at the start.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

MODELS = ("smollm2-135m", "qwen2.5-0.5b", "llama-3.2-1b")
QUANTS = ("q4_k_m", "q8_0", "q4_0", "q5_k_m", "q6_k")
SHAPES = ((128, 32), (512, 32))  # (prompt tokens, generated tokens)
CALIB_MODELS = ("smollm2-135m", "llama-3.2-1b")
CALIB_QUANTS = ("q4_k_m", "q8_0")
CALIB_SHAPES = ((128, 32),)
THREADS = os.cpu_count() or 1  # every run (and the aipc hw profile its factors are against) at all CPUs
DOC = Path(__file__).resolve().parents[1] / "docs" / "validation.md"
TITLE = "## llama.cpp: estimates against measured runs"


def bad_args(argv: list[str], flags: set[str], valued: set[str], doc: str) -> int | None:
    """None when every option is known (``flags`` alone, ``valued`` with a value after it); else prints the
    help (--help, -h: 0) or one line naming the unknown option (2) and returns that exit code, so a typo
    never starts a run of half an hour."""
    if "--help" in argv or "-h" in argv:
        print(doc)
        return 0
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in valued and i + 1 < len(argv):
            i += 2
            continue
        if a not in flags:
            known = ", ".join(sorted(flags | valued))
            what = "needs a value" if a in valued else "is not an option"
            print(f"error: {a} {what}; the options are {known} (--help shows what they do)", file=sys.stderr)
            return 2
        i += 1
    return None


def _arg(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv and argv.index(name) + 1 < len(argv) else None


def bench(model: str, quant: str, prompt: int, gen: int, db: Path, quick: bool, engine: str = "llamacpp") -> list[dict]:
    from aipc.bench.runner import BenchOptions, run_bench
    from aipc.bench.stats import LoopConfig

    loop = LoopConfig(warmup=1, min_reps=3, min_s=0.5, max_s=5.0) if quick else LoopConfig(warmup=2, min_reps=5,
                                                                                          min_s=2.0, max_s=20.0)
    o = BenchOptions(model=model, engine=engine, precision=quant, scenarios=("prefill", "decode"),
                     prompt=prompt, gen=gen, loop=loop, db=db, devices="cpu", threads=THREADS)
    return run_bench(o)["results"]


def measure_kernels(quick: bool) -> None:
    """Step 0: llama.cpp's prefill FLOP/s per weight type on this machine (what `aipc hw --kernels` does),
    stored with the hardware profile; the estimator's prefill (calibrated or not) starts from it."""
    from aipc.bench.llamacpp_kernels import measure_and_save
    from aipc.hardware.profile import load_or_measure

    from aipc.hardware import kernels as K

    prof = load_or_measure(quick=True)
    if quick and K.load(prof.fingerprint).get("llamacpp"):
        return  # --quick / --smoke keep the full measurement there is
    kw = {"types": ("Q4_K", "Q8_0"), "tokens": (128,), "reps": 1} if quick else {}
    measure_and_save(prof.fingerprint, threads=THREADS, progress=lambda s: print("  kernels " + s, flush=True), **kw)


def passes(argv: list[str], quick: bool) -> int:
    """--passes N (default 2, 1 with --quick): how many times every shape is measured, a whole sweep apart."""
    n = _arg(argv, "--passes")
    return max(1, int(n)) if n and n.isdigit() else (1 if quick else 2)


def collect_runs(db: Path, quick: bool, n_passes: int = 1, engine: str = "llamacpp",
                 grid: tuple = (MODELS, QUANTS, SHAPES)) -> None:
    """Measure every (model, format, shape) of ``grid``, the whole sweep ``n_passes`` times over: a busy
    spell on this shared machine then slows one pass of a shape, not both (:func:`fastest_of_passes`)."""
    for k in range(n_passes):
        for model in grid[0]:
            for quant in grid[1]:
                for prompt, gen in grid[2]:
                    t0 = time.perf_counter()
                    rows = bench(model, quant, prompt, gen, db, quick, engine=engine)
                    print(f"  pass {k + 1}: {model} {quant} p={prompt}: " + ", ".join(
                        f"{r['scenario']} {r['median_s'] * 1e3:.1f} ms" for r in rows)
                        + f" ({time.perf_counter() - t0:.0f} s)", flush=True)


def fastest_of_passes(runs: list[dict]) -> list[dict]:
    """Per (model, engine, format, scenario, shape, threads) the run with the lowest median time: other
    work on the machine only slows a run down, so the faster pass is the one closer to what the
    engine does (decided before any error is looked at; the same for calibration and held-out runs)."""
    best: dict[tuple, dict] = {}
    for r in runs:
        w = r.get("workload") or {}
        key = (r["model"], w.get("engine"), w.get("weight_dtype"), r["scenario"], w.get("prompt_tokens"),
               w.get("gen_tokens"), (r.get("context") or {}).get("cpu_threads"))
        if key not in best or r["metrics"]["median_s"] < best[key]["metrics"]["median_s"]:
            best[key] = r
    return list(best.values())


def _in_calibration(run: dict, calib: tuple) -> bool:
    models, quants, shapes = calib
    w = run["workload"]
    return (run["model"] in models and w["weight_dtype"] in quants
            and (w["prompt_tokens"], w["gen_tokens"]) in shapes)


def evaluate(db: Path, calib: tuple = (CALIB_MODELS, CALIB_QUANTS, CALIB_SHAPES)) -> dict:
    """Fit on the calibration subset (models, weight formats, shapes), predict the rest; uncalibrated
    errors of every run."""
    from aipc.bench.calibration import _predict, calibrate_runs, prepare_points
    from aipc.bench.context import machine_context
    from aipc.bench.store import ResultsDB

    specs = machine_context(measure=False).specs
    runs = fastest_of_passes([r for r in ResultsDB(db, create=False).runs(kind="bench")
                              if r["scenario"] in ("prefill", "decode")])
    fitted = calibrate_runs([r for r in runs if _in_calibration(r, calib)], specs)
    points, skipped = prepare_points([r for r in runs if not _in_calibration(r, calib)], specs)
    rows = []
    for p in points:
        after = _predict(p, fitted["table"])
        rows.append({"scenario": p["scenario"], "model": p["model"], "quant": p["weight_format"],
                     "shape": p["shape"][3], "measured_s": p["measured_s"], "cache": bool(p.get("cache_resident")),
                     "uncal_err": p["est_uncalibrated_s"] / p["measured_s"] - 1, "cal_err": after / p["measured_s"] - 1})
    return {"table": fitted["table"], "rows": rows, "skipped": skipped, "n_calib": fitted["runs_used"]}


def summary(rows: list[dict], key: str) -> str:
    """Median and max |error| per scenario; decode apart for runs whose bytes per step fit in the CPU's
    last-level cache (not memory-bound: the estimate says so, and they calibrate nothing)."""
    out = []
    for scen, cache, label in (("prefill", None, "prefill"), ("decode", False, "decode"),
                               ("decode", True, "decode of models that fit in the last-level cache")):
        errs = [abs(r[key]) for r in rows if r["scenario"] == scen and (cache is None or r.get("cache", False) == cache)]
        if errs:
            out.append(f"{label}: median {statistics.median(errs):.1%}, max {max(errs):.1%} (n={len(errs)})")
    return "; ".join(out)


def check_8b(table: dict, quick: bool, gguf: str | None = None) -> dict:
    """The report's 8B chat estimate here (calibration in effect) against a measured decode of that GGUF."""
    import importlib

    from aipc.estimate import calibrate as C
    from aipc.estimate import estimate
    from aipc.hardware.local import local_devices, resolve_device
    from aipc.report import defaults as D
    from aipc.spec import workload_from_dict

    collect = importlib.import_module("aipc.report.collect")
    chat = [w for w in D.workloads() if w["workload"]["task"] == "infer"][:1]
    with C.using(table):
        est = collect.estimates_section(chat, local_devices(), {}, D.needs())
    row = next(r for r in est["workloads"][0]["rows"] if r.get("local") and r.get("available"))
    wl = chat[0]["workload"]
    # the measured run is llama.cpp's, so its estimate is the report's llama.cpp figure for the same format,
    # whichever engine the report chose (OpenVINO, where installed, may be chosen on its default factors)
    fmt = "q4_k_m"
    with C.using(table):
        lc = estimate(workload_from_dict({**wl, "engine": "llamacpp", "weight_dtype": fmt}),
                      resolve_device(row["device"]))
    est_tps = 1 / lc.time.tpot_s
    ref = gguf or "llama-3.1-8b"  # a .gguf made earlier (aipc convert llama-3.1-8b --to gguf), else converted now
    results = bench(ref, "auto" if gguf else fmt, wl["prompt_tokens"], 8 if quick else 16,
                    Path(tempfile.mkdtemp()) / "8b.db", quick=True)
    dec = next(r for r in results if r["scenario"] == "decode")
    measured = 1 / dec["median_s"]
    return {"setup": f"llama.cpp {fmt.upper()} (the report's choice: {row['setup']}, "
                     f"{row['decode_tokens_per_s']:.2f} tokens/s)",
            "estimated_tokens_s": est_tps, "measured_tokens_s": measured, "ratio": est_tps / measured}


def environment() -> str:
    from aipc.hardware.detect import detect_cpu

    cpu = detect_cpu()
    flags = " ".join(k for k, v in cpu.features.items() if v)
    return f"{cpu.model}, {cpu.logical_cores} logical CPUs, ISA: {flags}"


def smoke() -> None:
    """--smoke: one small model, three types, one shape (checks the script runs; no numbers to keep)."""
    global MODELS, QUANTS, SHAPES, CALIB_MODELS, CALIB_SHAPES
    MODELS, QUANTS, SHAPES = ("smollm2-135m",), ("q4_k_m", "q8_0", "q4_0"), ((64, 8),)
    CALIB_MODELS, CALIB_SHAPES = MODELS, SHAPES


def shown_flags(argv: list[str]) -> str:
    """The options a run was given, as docs/validation.md shows them: a file given to --gguf-8b as FILE."""
    return " ".join("FILE" if i and argv[i - 1] == "--gguf-8b" else a for i, a in enumerate(argv))


def write_section(title: str, script: str, flags: str, load_at_start: float | None, lines: list[str],
                  rows: list[dict], format_word: str, command: str | None = None) -> int:
    """The summary lines and every row as ``title``'s section of docs/validation.md (llama.cpp and OpenVINO
    scripts alike); refused (1) when the 1-minute load was above 1.0 at the start (``load_at_start`` None:
    nothing was measured, e.g. stored runs re-evaluated). ``flags``: the run's options (shown_flags);
    ``command``: the command line shown, with its date (default: the measuring command with ``flags``, now)."""
    if load_at_start is not None and load_at_start > 1.0:
        print("not written: the machine was busy at the start (load > 1.0); rerun in a quiet period")
        return 1
    from aipc.mdsection import replace_section

    table = [f"| scenario | model | {format_word} | prompt | measured | uncalibrated error | held-out error |",
             "|---|---|---|---:|---:|---:|---:|"]
    table += [f"| {r['scenario']}{' (in cache)' if r.get('cache') else ''} | {r['model']} | {r['quant']} | {r['shape']} | {r['measured_s'] * 1e3:.1f} ms | "
              f"{r['uncal_err']:+.1%} | {r['cal_err']:+.1%} |" for r in rows]
    command = command or (f"`.venv/bin/python scripts/{script} {flags}` "
                          f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})")
    body = (f"Command: {command}.\n\n" + "\n".join(f"- {x}" for x in lines)
            + "\n\n" + "\n".join(table) + "\n")
    replace_section(DOC, title, body, new_file="# Validation: estimates against measurements\n")
    print(f"wrote {DOC}")
    return 0


def main(argv: list[str]) -> int:
    bad = bad_args(argv, {"--quick", "--write", "--skip-8b", "--smoke"}, {"--from-db", "--gguf-8b", "--passes"}, __doc__)
    if bad is not None:
        return bad
    import torch

    torch.set_num_threads(THREADS)
    quick, write, skip_8b = "--quick" in argv, "--write" in argv, "--skip-8b" in argv
    if "--smoke" in argv:
        smoke()
        quick, write, skip_8b = True, False, True
    load0 = os.getloadavg()
    print(f"load average at start: {load0[0]:.2f}", flush=True)
    from_db = _arg(argv, "--from-db")
    if from_db:  # re-evaluate stored runs with this checkout's estimator (nothing measured but the 8B run)
        db = Path(from_db)
        if not db.is_file():
            print(f"error: --from-db {from_db}: no such file; give the runs.db an earlier run printed", file=sys.stderr)
            return 2
    else:
        measure_kernels(quick)
        db = Path(tempfile.mkdtemp(prefix="aipc-llamacpp-validation-")) / "runs.db"
        print(f"runs stored in {db}", flush=True)
        collect_runs(db, quick, passes(argv, quick))
    ev = evaluate(db)
    lines = [f"held-out (calibrated on {ev['n_calib']} runs of {', '.join(CALIB_MODELS)} at "
             f"{', '.join(CALIB_QUANTS)}, prompt {CALIB_SHAPES[0][0]}): {summary(ev['rows'], 'cal_err')}",
             f"uncalibrated (default factors): {summary(ev['rows'], 'uncal_err')}"]
    eight = None if skip_8b else check_8b(ev["table"], quick, _arg(argv, "--gguf-8b"))
    if eight:
        lines.append(f"8B chat (llama-3.1-8b {eight['setup']}): report estimate {eight['estimated_tokens_s']:.2f} "
                     f"tokens/s, measured {eight['measured_tokens_s']:.2f} (ratio {eight['ratio']:.2f})")
    load1 = os.getloadavg()
    lines.append(f"load average: {load0[0]:.2f} at start, {load1[0]:.2f} at the end; {environment()}")
    if from_db:
        lines.insert(0, f"runs measured {_measured_at(db)} by this script (the same command without --from-db), "
                        "re-evaluated now with the estimator and `aipc hw --kernels` figures of this checkout; "
                        "the 8B run measured now")
    print("\n".join(lines))
    if write:
        cmd = None if not from_db else (
            f"`.venv/bin/python scripts/llamacpp_validation.py --from-db {from_db} --write"
            f"{' --gguf-8b FILE' if _arg(argv, '--gguf-8b') else ''}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})")
        return write_section(TITLE, "llamacpp_validation.py", shown_flags(argv), load0[0], lines, ev["rows"], "quant",
                             command=cmd)
    return 0


def _measured_at(db: Path) -> str:
    """'YYYY-MM-DD HH:MM - HH:MM UTC' of the bench runs stored in ``db``."""
    from aipc.bench.store import ResultsDB

    times = sorted(r["created_at"] for r in ResultsDB(db, create=False).runs(kind="bench"))
    return f"{times[0][:16].replace('T', ' ')} - {times[-1][11:16]} UTC" if times else "at an unknown time"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
