"""``aipc bench`` as a Python API: check the fit, build the model per device, time each scenario,
put the estimate beside the measurement, store every run, compute speedup R.

    from aipc.bench.runner import BenchOptions, run_bench
    report = run_bench(BenchOptions(model="smollm2-135m", devices="cpu", quick=True))
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aipc.bench import metrics as M
from aipc.bench.compare import speedups
from aipc.bench.scenarios import DEFINITIONS, INFER_SCENARIOS, SCENARIOS, check_applicable, prepare
from aipc.bench.stats import CI_METHOD, LoopConfig, time_loop
from aipc.errors import AipcError
from aipc.spec import Workload, precision_fields

DEFAULT_MODEL = "smollm2-135m"
BENCH_PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass(kw_only=True)
class BenchOptions:
    model: str = DEFAULT_MODEL
    devices: str | None = None              # "cpu,cuda:0"; None: every present device
    scenarios: tuple[str, ...] = SCENARIOS
    precision: str = "auto"                 # auto: fp32 on CPU, bf16 (else fp16) on CUDA, fp16 on MPS
    batch: int = 1
    seq: int = 128                          # training sequence length
    prompt: int = 128
    gen: int = 32
    method: str = "full"                    # train: full | lora
    lora_rank: int = 16
    lora_targets: tuple[str, ...] | None = None  # None: the Workload default (q/k/v/o/gate/up/down_proj)
    quick: bool = False
    loop: LoopConfig | None = None          # default: LoopConfig() or LoopConfig.quick()
    db: str | Path | None = None            # None: aipc.paths.default_db()
    store: bool = True
    measure_peaks: bool = True              # measure this machine's peaks now when no aipc hw profile is cached
    fit_check: bool = True
    threads: int | None = None              # CPU threads for torch (None: chosen by measurement on the CPU)
    allow_pickle: bool = False              # load pickle weights (pytorch_model*.bin) from a model folder

    def loop_config(self) -> LoopConfig:
        return self.loop or (LoopConfig.quick() if self.quick else LoopConfig())


def auto_precision(device: str) -> str:
    if device == "cpu":
        return "fp32"
    if device.startswith("cuda"):
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp16"


def _validate(o: BenchOptions) -> None:
    if o.threads is not None and (isinstance(o.threads, bool) or not isinstance(o.threads, int) or o.threads <= 0):
        raise AipcError(f"--threads must be a positive whole number (got {o.threads!r})")
    for name in ("batch", "seq", "prompt", "gen", "lora_rank"):
        v = getattr(o, name)
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise AipcError(f"--{name} must be a positive whole number (got {v!r})")
    if o.gen < 2 and any(s in o.scenarios for s in ("decode", "generate")):
        raise AipcError("--gen must be >= 2 for decode/generate (TPOT is measured after the first token)")
    if o.precision not in BENCH_PRECISIONS:
        raise AipcError(f"aipc bench measures --precision {', '.join(BENCH_PRECISIONS)} (got {o.precision!r}); "
                        "use 'aipc estimate' for quantized formats")
    if o.method not in ("full", "lora"):
        raise AipcError(f"aipc bench trains with --method full or lora (got {o.method!r})")
    for s in o.scenarios:
        if s not in SCENARIOS:
            raise AipcError(f"unknown scenario '{s}'; use one or more of {', '.join(SCENARIOS)}")


def workloads_for(o: BenchOptions, prec: str) -> dict[str, Workload]:
    """The estimator's workload for each scenario family (train; infer for prefill/decode/generate)."""
    pf = precision_fields(prec)
    infer = Workload(model=o.model, task="infer", batch_size=o.batch, prompt_tokens=o.prompt, gen_tokens=o.gen,
                     **pf).validate()
    extra = {"lora_targets": tuple(o.lora_targets)} if o.lora_targets else {}
    train = Workload(model=o.model, task="train", method=o.method, batch_size=o.batch, seq_len=o.seq,
                     lora_rank=o.lora_rank, optimizer="adamw", **extra, **pf).validate()
    return {"train": train, "infer": infer}


def _estimate(w: Workload, spec, mspec):
    """The estimator's answer, or (None, why) where it cannot answer for this device."""
    from aipc.estimate import estimate

    try:
        return estimate(w, spec, model=mspec), ""
    except ZeroDivisionError:
        return None, f"no estimate: {spec.name} has no measured peak/bandwidth (run 'aipc hw')"


def fit_check(ests: dict[str, object], device: str, label: str) -> None:
    """Refuse before building anything when the estimator says the workload cannot fit."""
    for fam, est in ests.items():
        if est is not None and not est.fits:
            sugg = "; ".join(est.suggestions[:3]) or "use a smaller model or shape"
            raise AipcError(f"{fam} on {device} ({label}) would not fit: {est.verdict}; try {sugg} "
                            "(or pass --no-fit-check to try anyway)")


def run_bench(o: BenchOptions, *, on_progress: Callable[[str, int, float], None] | None = None) -> dict:
    """Measure every (device, scenario); returns the report dict the CLI renders (and --json prints)."""
    t_start = time.perf_counter()
    _validate(o)
    from aipc.bench.devices import parse_devices
    from aipc.bench.store import ResultsDB
    from aipc.estimate import resolve_model
    from aipc.models.live import check_ref

    check_ref(o.model, allow_pickle=o.allow_pickle)  # pickle / truncated weights fail before any measuring
    mspec = resolve_model(o.model)
    for s in o.scenarios:
        check_applicable(s, mspec.is_decoder, mspec.name)
    devices = parse_devices(o.devices)
    db = ResultsDB(o.db) if o.store else None  # a bad --db fails here, before any measuring

    import torch

    threads_before = torch.get_num_threads()
    note = f"{o.threads} CPU threads (--threads)" if o.threads else f"{threads_before} CPU threads (torch default)"
    if o.threads:  # before the profile lookup: peaks are measured (and cached) per thread count
        torch.set_num_threads(o.threads)
    elif "cpu" in devices:
        note = choose_cpu_threads(o, mspec)
    try:
        report = _run(o, mspec, devices, db, on_progress, t_start)
        report["cpu_threads_note"] = note
        return report
    finally:
        torch.set_num_threads(threads_before)


def choose_cpu_threads(o: BenchOptions, mspec) -> str:
    """Pick the CPU thread count by timing a linear layer of this run's shape at each candidate now
    (``aipc.runtime.choose_threads``): with all threads a busy CPU runs a step 4-15x slower."""
    from aipc.estimate.activations import ffn_width_per_token
    from aipc.runtime import choose_threads

    train = "train" in o.scenarios
    rows = o.batch * (o.seq if train else o.prompt)
    prec = o.precision if o.precision != "auto" else auto_precision("cpu")
    _, _, note = choose_threads(rows, mspec.hidden_size, int(ffn_width_per_token(mspec)), prec, train)
    return note


def load_warning() -> str | None:
    """A warning when other processes keep the CPU busy (1-minute load average above half the cores)."""
    import os

    import torch

    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return None
    cores = os.cpu_count() or 1
    if load > cores / 2:
        msg = f"1-minute load average {load:.1f} on {cores} CPUs: other processes compete for the CPU, so timings are noisy"
        if torch.get_num_threads() > 1:
            msg += (f"; with {torch.get_num_threads()} threads a step waits for its slowest thread and can take several "
                    "times longer: consider --threads 1 (peaks are then measured for 1 thread)")
        return msg
    return None


def peak_warnings(results: list[dict], mctx) -> list[str]:
    """An MFU or MBU above 100% means the profile's peak is too low (measured on a busy machine):
    say so, and the profile's own low-confidence notes, with how to refresh."""
    out = []
    for r in results:
        for key, what in (("mfu_measured", "MFU"), ("mbu_measured", "MBU")):
            v = r.get(key)
            if v is not None and v > 1.0:
                out.append(f"{r['device']} {r['scenario']}: {what} {v:.0%} against the aipc hw profile: its peak is "
                           "too low (measured while the machine was busy?); refresh with 'aipc hw --refresh' when quiet")
    out += [f"{dev}: {spec.confidence}" for dev, spec in mctx.specs.items() if spec.confidence]
    return out


def _run(o: BenchOptions, mspec, devices, db, on_progress, t_start) -> dict:
    import torch

    from aipc.bench.context import machine_context, versions

    warning = load_warning()
    mctx = machine_context(quick=True, measure=o.measure_peaks)
    cfg = o.loop_config()
    vers = versions()
    plans = []
    for dev in devices:  # every fit check before any measurement
        prec = o.precision if o.precision != "auto" else auto_precision(dev)
        spec = mctx.specs.get(dev)
        if spec is None:
            from aipc.hardware.local import local_devices

            spec = next((s for s in local_devices() if s.name.endswith(":" + dev)), None)
        wls = workloads_for(o, prec)
        fams = {"train"} if "train" in o.scenarios else set()
        fams |= {"infer"} if any(s in INFER_SCENARIOS for s in o.scenarios) else set()
        ests, why = {}, {}
        for f in fams:
            ests[f], why[f] = _estimate(wls[f], spec, mspec) if spec is not None else (None, "no device spec")
        if o.fit_check:
            fit_check(ests, dev, spec.label if spec else dev)
        plans.append((dev, prec, spec, wls, ests, why))

    order = [s for s in ("prefill", "decode", "generate", "train") if s in o.scenarios]  # train last: it mutates
    results = _measure_all(o, plans, order, mspec, mctx, cfg, vers, db, on_progress)
    import os

    return {
        "model": mspec.name, "model_ref": o.model, "params": mspec.param_count(),
        "machine": {"fingerprint": mctx.fingerprint, "host": mctx.host, "peaks": mctx.profile_source},
        "devices": devices, "scenarios": order, "quick": o.quick, "loop": cfg.__dict__,
        "cpu_threads": torch.get_num_threads(),
        "load_avg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "warnings": ([warning] if warning else []) + peak_warnings(results, mctx),
        "definitions": {s: DEFINITIONS[s] for s in order}, "ci_method": CI_METHOD,
        "results": results, "speedup": speedups(results),
        "db": str(db.path) if db is not None else None, "wall_s": time.perf_counter() - t_start,
        "versions": vers,
    }


def _measure_all(o: BenchOptions, plans, order, mspec, mctx, cfg, vers, db, on_progress) -> list[dict]:
    import torch

    from aipc.bench.context import in_env_note
    from aipc.hardware.local import catalog_spec

    results: list[dict] = []
    for dev, prec, spec, wls, ests, why in plans:
        from aipc.bench.devices import PeakMemory, cuda_event_timer, rss_bytes
        from aipc.bench.energy import meter_for
        from aipc.measure import sync_fn
        from aipc.models.live import load_or_build

        sync = sync_fn(dev)
        timer = cuda_event_timer(dev) if dev.startswith("cuda") else None
        gc.collect()
        base_rss = rss_bytes()
        live = load_or_build(o.model, dtype=prec, device=dev, seed=0, allow_pickle=o.allow_pickle)
        model, weights = live.model, live.weights
        cat = catalog_spec(dev)
        vocab = int(getattr(model.config, "vocab_size", 0) or mspec.vocab_size)
        shape = {"batch": o.batch, "seq": o.seq, "prompt": o.prompt, "gen": o.gen, "method": o.method,
                 "lora_rank": o.lora_rank, "lora_targets": wls["train"].lora_targets}
        for scen in order:
            fam = "train" if scen == "train" else "infer"
            est, w = ests.get(fam), wls[fam]
            mem, meter = PeakMemory(dev), meter_for(dev)
            gc.collect()
            mem.start()
            prep = prepare(torch, scen, model, shape=shape, device=dev, is_decoder=mspec.is_decoder, vocab=vocab,
                           sync=sync)
            label = f"{dev} {scen}"
            series = time_loop(prep.fn, cfg, sync=sync, timer=timer, on_timed_start=meter.start, before=prep.before,
                               on_sample=(lambda n, t, lab=label: on_progress(lab, n, t)) if on_progress else None)
            joules = meter.joules()
            peak = mem.stop()
            prep.cleanup()
            extra = {k: v[len(series.warmup):] for k, v in prep.extra_samples.items()}
            metrics = M.scenario_metrics(
                scen, series=series, tokens_per_sample=prep.tokens_per_sample, est=est, spec=spec, catalog=cat,
                workload=w, precision=prec, extra=extra, joules=joules)
            metrics.update(M.memory_metrics(dev, peak, base_rss, mem, est))
            metrics["energy_source"] = meter.source or meter.why_not
            metrics["cpu_threads"] = torch.get_num_threads()
            row = {"device": dev, "scenario": scen, "model": mspec.name, "machine": mctx.fingerprint,
                   "precision": prec, "workload": w.to_dict(), **metrics,
                   "estimate_note": why.get(fam, ""), "definition": DEFINITIONS[scen], "note": prep.note}
            if db is not None:
                row["run_id"] = db.add_run(
                    kind="bench", scenario=scen, device=dev, model=mspec.name, workload=w.to_dict(),
                    metrics=metrics, samples={"samples_s": series.samples, "warmup_s": series.warmup, **extra},
                    context={"machine": mctx.to_dict(), "versions": vers, "device_spec": spec, "weights": weights,
                             "catalog_device": cat.name if cat else None, "loop": cfg.__dict__,
                             "stopped_by": series.stopped_by, "wall_s": series.wall_s, "definition": DEFINITIONS[scen],
                             "ci_method": CI_METHOD, "allocator": in_env_note() if dev == "cpu" else None,
                             "model_ref": o.model, "note": prep.note, "cpu_threads": torch.get_num_threads(),
                             "estimate": est.to_dict() if est is not None else None})
            results.append(row)
        del model
        gc.collect()
        if dev.startswith("cuda"):
            torch.cuda.empty_cache()

    return results
