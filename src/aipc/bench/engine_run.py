"""``aipc bench --engine llamacpp``: prefill, decode and generate through an inference engine's runner
(aipc.engines, contract 2), with the torch path's statistics (warm-up, distribution-free CIs, TTFT /
TPOT, peak memory, MBU against aipc hw's measured bandwidth) and the estimate beside each
measurement. Every run is stored with its workload — engine and weight format included — so
``aipc calibrate`` fits factors per engine and format.

A model that is not a .gguf file is converted once into aipc's GGUF cache (llama.cpp's converter and
quantizer, aipc.engines.gguf_convert.cached_gguf); the estimate then reads that file's exact bytes.
"""

from __future__ import annotations

import gc
import os
import time
from pathlib import Path

from aipc.bench import metrics as M
from aipc.bench.scenarios import DEFINITIONS
from aipc.bench.stats import CI_METHOD, time_loop
from aipc.errors import AipcError
from aipc.spec import Workload

ENGINE_SCENARIOS = ("prefill", "decode", "generate")
DEFAULT_FORMAT = {"llamacpp": "q4_k_m", "openvino": "int8"}


def engine_ref(o) -> tuple[str, str]:
    """(the file the engine loads, its weight format): a .gguf as given (its own format), else the
    model converted to ``o.precision`` (default q4_k_m) in aipc's GGUF cache; for OpenVINO an IR
    folder as given (its own format), else the model exported (default int8) into aipc's IR cache."""
    from aipc.models.gguf import is_gguf_path

    if o.engine == "llamacpp" and is_gguf_path(o.model):
        from aipc.models.gguf import read_header

        fmt = read_header(o.model).file_type
        if o.precision not in ("auto", fmt):
            raise AipcError(f"{o.model} is a {fmt} file; drop --precision {o.precision} or convert it "
                            f"('aipc convert MODEL --to gguf --quant {o.precision}')")
        return str(Path(o.model).expanduser()), fmt
    fmt = DEFAULT_FORMAT.get(o.engine) if o.precision == "auto" else o.precision
    if o.engine == "openvino":
        from aipc.engines.openvino import ensure_ir, weight_format_of

        folder, _ = ensure_ir(o.model, None if o.precision == "auto" else fmt, allow_pickle=o.allow_pickle)
        return str(folder), weight_format_of(folder)
    if o.engine == "llamacpp":
        from aipc.engines.gguf_convert import cached_gguf

        return str(cached_gguf(o.model, fmt)), fmt
    return o.model, fmt


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def pick_threads(runner, vocab: int, candidates: tuple[int, ...], steps: int = 4) -> tuple[int, dict[int, float]]:
    """The thread count whose decode step is fastest, measured (median of ``steps`` steps after one
    warm-up): with other work on the machine, all threads can be several times slower than fewer (a
    step waits for its slowest thread). Returns (threads, {threads: seconds per step})."""
    import statistics

    import torch

    times = {}
    for n in candidates:
        runner.set_threads(n)
        tok = int(runner.prefill(0, torch.tensor([5, 6, 7, 8])).argmax()) % max(vocab - 1, 1)
        samples = []
        for i in range(steps + 1):
            t0 = time.perf_counter()
            tok = int(runner.decode1(tok, 4 + i, slot=0).argmax())
            samples.append(time.perf_counter() - t0)
        times[n] = statistics.median(samples[1:])
        runner.free(0)
    best = min(times, key=times.get)
    runner.set_threads(best)
    return best, times


def run_engine_bench(o, *, on_progress=None) -> dict:
    """Measure ``o.scenarios`` of ``o.model`` through ``o.engine`` on this machine's CPU (or the device
    the engine offloads to); returns the report dict ``aipc bench`` renders."""
    t_start = time.perf_counter()
    from aipc.bench.scenarios import SCENARIOS

    if tuple(o.scenarios) == SCENARIOS:  # the default set: every scenario an engine measures (train is torch's)
        o.scenarios = ENGINE_SCENARIOS
    bad = [s for s in o.scenarios if s not in ENGINE_SCENARIOS]
    if bad:
        raise AipcError(f"--engine {o.engine} measures {', '.join(ENGINE_SCENARIOS)}, not {', '.join(bad)}; "
                        "train with --engine torch")
    import torch

    from aipc import engines
    from aipc.bench.context import machine_context, versions
    from aipc.bench.runner import load_warning
    from aipc.bench.store import ResultsDB
    from aipc.estimate import estimate, resolve_model
    from aipc.models.gguf import is_gguf_path

    db = ResultsDB(o.db) if o.store else None
    ref, fmt = engine_ref(o)
    mspec = resolve_model(ref)
    name = mspec.name if is_gguf_path(o.model) else resolve_model(o.model).name  # the catalog name, not the cache file's
    w = Workload(model=ref, task="infer", engine=o.engine, weight_dtype=fmt, batch_size=o.batch,
                 prompt_tokens=o.prompt, gen_tokens=o.gen).validate()
    threads = o.threads or _cpus()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)  # the profile (peaks, fingerprint) is per thread count
    try:
        mctx = machine_context(quick=True, measure=o.measure_peaks)
        dev = (o.devices or "cpu").split(",")[0].strip()
        spec = mctx.specs.get(dev)
        est = estimate(w, spec, model=mspec) if spec is not None else None
        if o.fit_check and est is not None and not est.fits:
            raise AipcError(f"{mspec.name} at {fmt} would not fit on {dev}: {est.verdict} "
                            "(pass --no-fit-check to try anyway)")
        loaded = engines.load(ref, engine=o.engine, weight_format=fmt, device=dev, max_batch=o.batch,
                              max_len=o.prompt + o.gen + 1, threads=threads)
        tried = {}
        if not o.threads and threads > 1 and hasattr(loaded.runner, "set_threads"):  # threads by measurement
            threads, tried = pick_threads(loaded.runner, int(loaded.runner.vocab_size), (threads, 1))
            torch.set_num_threads(threads)
            mctx = machine_context(quick=True, measure=o.measure_peaks)
            spec = mctx.specs.get(dev)
            est = estimate(w, spec, model=mspec) if spec is not None else None
        ctx = dict(mctx=mctx, spec=spec, est=est, w=w, dev=dev, db=db, vers=versions(), threads=threads, ref=ref)
        warning = load_warning()
        results = [_measure(o, scen, loaded, name, ctx, on_progress) for scen in o.scenarios]
    finally:
        torch.set_num_threads(before)
    return {
        "model": name, "model_ref": ref, "params": mspec.param_count(), "engine": o.engine,
        "weight_format": fmt, "machine": {"fingerprint": mctx.fingerprint, "host": mctx.host,
                                          "peaks": mctx.profile_source},
        "devices": [dev], "scenarios": list(o.scenarios), "quick": o.quick, "loop": o.loop_config().__dict__,
        "cpu_threads": threads, "threads_tried_s": {str(k): v for k, v in tried.items()},
        "load_avg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "warnings": [warning] if warning else [], "definitions": {s: DEFINITIONS[s] for s in o.scenarios},
        "ci_method": CI_METHOD, "results": results, "speedup": [],
        "db": str(db.path) if db is not None else None, "wall_s": time.perf_counter() - t_start,
        "versions": ctx["vers"],
    }


def _measure(o, scen: str, loaded, name: str, ctx: dict, on_progress) -> dict:
    """One scenario: time it, put the estimate beside it, store it."""
    from aipc.bench import runner_scenarios as RS
    from aipc.hardware.local import catalog_spec
    from aipc.bench.devices import PeakMemory, rss_bytes

    runner, w, est, dev = loaded.runner, ctx["w"], ctx["est"], ctx["dev"]
    cfg = o.loop_config()
    gc.collect()
    base_rss = rss_bytes()
    mem = PeakMemory("cpu")
    mem.start()
    prep = RS.prepare(scen, runner, shape={"batch": o.batch, "prompt": o.prompt, "gen": o.gen},
                      vocab=int(runner.vocab_size))
    label = f"{dev} {o.engine} {scen}"
    series = time_loop(prep.fn, cfg, before=prep.before,
                       on_sample=(lambda n, t: on_progress(label, n, t)) if on_progress else None)
    peak = mem.stop()
    prep.cleanup()
    extra = {k: v[len(series.warmup):] for k, v in prep.extra_samples.items()}
    metrics = M.scenario_metrics(scen, series=series, tokens_per_sample=prep.tokens_per_sample, est=est,
                                 spec=ctx["spec"], catalog=catalog_spec(dev), workload=w, precision=w.weight_dtype,
                                 extra=extra, joules=None)
    metrics.update(M.memory_metrics("cpu", peak, base_rss, mem, est))
    metrics.update(engine=o.engine, weight_format=w.weight_dtype, cpu_threads=ctx["threads"])
    row = {"device": dev, "scenario": scen, "model": name, "machine": ctx["mctx"].fingerprint,
           "precision": w.weight_dtype, "engine": o.engine, "workload": w.to_dict(), **metrics,
           "estimate_note": "" if est is not None else f"no estimate: no measured profile of {dev} (run 'aipc hw')",
           "definition": DEFINITIONS[scen], "note": f"{o.engine} {w.weight_dtype}, {ctx['threads']} threads"}
    if ctx["db"] is not None:
        row["run_id"] = ctx["db"].add_run(
            kind="bench", scenario=scen, device=dev, model=name, workload=w.to_dict(), metrics=metrics,
            samples={"samples_s": series.samples, "warmup_s": series.warmup, **extra},
            context={"machine": ctx["mctx"].to_dict(), "versions": ctx["vers"], "device_spec": ctx["spec"],
                     "weights": "random weights" if loaded.random_weights else "local weights",
                     "loop": cfg.__dict__, "stopped_by": series.stopped_by, "wall_s": series.wall_s,
                     "definition": DEFINITIONS[scen], "ci_method": CI_METHOD, "model_ref": ctx["ref"],
                     "engine": o.engine, "weight_format": w.weight_dtype, "cpu_threads": ctx["threads"],
                     "estimate": est.to_dict() if est is not None else None})
    return row
