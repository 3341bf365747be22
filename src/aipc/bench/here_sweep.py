"""``aipc bench --sweep``: measure a few representative models per installed engine on this machine,
smallest first, within a time budget, then refit this machine's calibration from every stored run.

The plan: per engine, the ``SWEEP_MODELS`` smallest catalog decoders the estimator models (distinct
architectures first: the decode fit separates bytes from per-layer time only across layer counts),
each at one weight format per kernel family (:func:`aipc.estimate.calibrate.format_family`: what a
calibration lookup falls back on for an unmeasured format), the engine's preferred ones first. Every
item is one ``aipc bench`` of prefill and decode at the table's speed shape
(:mod:`aipc.estimate.here`), stored in the results DB as it finishes — so an interrupted sweep
resumes by skipping items the DB already holds for this machine.

Budget: before an item starts, its time is predicted from the items measured so far (seconds per
weight byte, never less than the last item took); an item predicted to overrun is not started, and
each measuring loop is capped by the time left.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aipc.errors import AipcError

SWEEP_MODELS = 3
# the sweep also measures the smallest model whose weights reach this many bytes in the engine's first
# format: small models' decode time is mostly per-layer work, so without one step dominated by reading
# weights the fit cannot tell bandwidth from per-layer time (docs/validation.md, "What you can run here")
ANCHOR_BYTES = 512 * 2**20
PREFERRED = {"llamacpp": ("q4_k_m", "q8_0", "f16"), "torch": ("fp32",)}  # within a family, these first
SCENARIOS = ("prefill", "decode")


@dataclass(frozen=True)
class Item:
    model: str
    engine: str
    fmt: str
    weight_bytes: float

    @property
    def label(self) -> str:
        return f"{self.model} {self.engine} {self.fmt}"


@dataclass(kw_only=True)
class SweepOptions:
    engines: list[str] | None = None        # default: every installed engine
    models: list[str] | None = None         # default: representative catalog models
    budget_s: float = 600.0
    db: object = None
    threads: int | None = None              # default: every CPU this process may use
    formats: dict[str, tuple[str, ...]] | None = None  # engine -> formats (default: one per family)
    calibrate: bool = True
    kernels: bool = False                   # first measure llama.cpp's kernels per weight type where missing
    log: list[str] = field(default_factory=list)


def sweep_formats(engine: str) -> tuple[str, ...]:
    """One registered format per kernel family, the preferred ones first."""
    from aipc.engines import WEIGHT_FORMATS
    from aipc.estimate.calibrate import format_family

    fams: dict[str, str] = {}
    for f in (*PREFERRED.get(engine, ()), *WEIGHT_FORMATS[engine]):
        if f in WEIGHT_FORMATS[engine]:
            fams.setdefault(format_family(f) or f, f)
    return tuple(fams.values())


def _representative(engine: str, n: int) -> list:
    """The ``n`` smallest catalog decoders this engine's estimate models, distinct architectures first, and
    the smallest of at least ANCHOR_BYTES of weights when none of them is that big."""
    from aipc.estimate.here import workload
    from aipc.estimate.memory import weights_bytes
    from aipc.models import catalog

    ok = []
    for m in sorted(catalog.all_specs(), key=lambda s: s.param_count()):
        try:
            weights_bytes(m, workload(m, engine, sweep_formats(engine)[0]))
        except AipcError:
            continue
        if m.is_decoder and not m.is_moe:
            ok.append(m)
    firsts = list({m.model_type: m for m in reversed(ok)}.values())[::-1]  # the smallest of each architecture
    picked = sorted(firsts, key=lambda s: s.param_count())[:n]
    picked += [m for m in ok if m not in picked][: n - len(picked)]
    size = {m.name: weights_bytes(m, workload(m, engine, sweep_formats(engine)[0])) for m in ok}
    if max(size[m.name] for m in picked) < ANCHOR_BYTES:
        picked += [m for m in ok if size[m.name] >= ANCHOR_BYTES][:1]
    return picked


def plan(o: SweepOptions) -> list[Item]:
    """Every (model, engine, format) to measure, smallest weights first."""
    from aipc.engines import available, check_engine, check_weight_format
    from aipc.estimate import resolve_model
    from aipc.estimate.here import workload
    from aipc.estimate.memory import weights_bytes

    engines = [check_engine(e) for e in o.engines] if o.engines else available()
    items = []
    for engine in engines:
        fmts = [check_weight_format(engine, f) for f in (o.formats or {}).get(engine, sweep_formats(engine))]
        models = [resolve_model(r) for r in o.models] if o.models else _representative(engine, SWEEP_MODELS)
        for m in models:
            for f in fmts:
                try:
                    size = weights_bytes(m, workload(m, engine, f))
                except AipcError:
                    continue
                items.append(Item(model=m.name if not o.models else o.models[models.index(m)],
                                  engine=engine, fmt=f, weight_bytes=float(size)))
    return sorted(items, key=lambda i: (i.weight_bytes, i.engine, i.fmt))


def _done(db, machines: set[str], name: str, it: Item) -> bool:
    """True when the DB holds this item's prefill and decode for one of this machine's profiles."""
    from aipc.bench.here import usable_run
    from aipc.bench.store import ResultsDB

    try:
        runs = ResultsDB(db, create=False).runs(kind="bench", model=name, brief=True)
    except AipcError:
        return False
    got = {r["scenario"] for r in runs if r.get("machine") in machines and usable_run(r)
           and (r["workload"].get("engine") or "torch") == it.engine and r["workload"].get("weight_dtype") == it.fmt}
    return set(SCENARIOS) <= got


def predict(history: list[tuple[float, float]], it: Item) -> float:
    """Seconds the item should take: the last item's seconds per weight byte (the first item also paid
    for one-time work: the machine's profile, the engine's start) times this item's bytes, at least
    the last item's time; 0 with no history (the first item always starts)."""
    if not history:
        return 0.0
    b, s = history[-1]
    return max(s / max(b, 1.0) * it.weight_bytes, s)


def _measure(o: SweepOptions, it: Item, left_s: float, threads: int) -> str:
    """One bench of the item (prefill + decode at the table's shape); returns the model's stored name."""
    from aipc.bench.runner import BenchOptions, run_bench
    from aipc.bench.stats import LoopConfig
    from aipc.estimate.here import SPEED_GEN, SPEED_PROMPT

    loop = LoopConfig(warmup=1, min_reps=3, min_s=0.3, max_s=max(min(4.0, left_s / 4), 0.5), max_reps=1000)
    rep = run_bench(BenchOptions(model=it.model, devices="cpu", scenarios=SCENARIOS, precision=it.fmt,
                                 engine=it.engine, prompt=SPEED_PROMPT, gen=SPEED_GEN, quick=True, loop=loop,
                                 db=o.db, threads=threads))
    return rep["model"]


def _cpus() -> int:
    from aipc.bench.engine_run import _cpus as cpus

    return cpus()


def recalibrate(db, threads: int) -> str:
    """Refit this machine's calibration from every stored bench run of its profile (as ``aipc
    calibrate``) and save it; returns what happened, in words."""
    import torch

    from aipc.bench.calibration import calibrate_runs
    from aipc.bench.context import machine_context
    from aipc.bench.store import ResultsDB
    from aipc.estimate import calibrate as C

    before = torch.get_num_threads()
    torch.set_num_threads(threads)  # the profile (and the runs' fingerprint) is per thread count
    try:
        mctx = machine_context(measure=False)
        runs = [r for r in ResultsDB(db, create=False).runs(kind="bench") if r.get("machine") == mctx.fingerprint]
        res = calibrate_runs(runs, mctx.specs)
    except AipcError as e:
        return f"calibration not refitted: {e}"
    finally:
        torch.set_num_threads(before)
    return f"calibration refitted from {res['runs_used']} runs, saved to {C.save(res['table'])}"


def _kernels_step(items: list, threads: int, on_progress, want: bool) -> str:
    """Before the first llama.cpp item, where ``want``: this machine's llama.cpp kernel FLOP/s per weight
    type, once (aipc hw --kernels), what every llama.cpp prefill estimate here starts from; in words."""
    from aipc.hardware import kernels as K
    from aipc.hardware.profile import cached_profile, load_or_measure

    if not any(it.engine == "llamacpp" for it in items):
        return "no llama.cpp items"
    prof = cached_profile(quick=True)
    if prof is not None and K.load(prof.fingerprint).get("llamacpp"):
        return "already measured (aipc hw --kernels measures again)"
    if not want:
        return ("not measured: llama.cpp prefill estimates here use default shares of the fp32 peak until "
                "'aipc hw --kernels' (or --sweep --kernels) measures them")
    from aipc.bench.llamacpp_kernels import measure_and_save

    if on_progress:
        on_progress(0, len(items), "llama.cpp kernels per weight type")
    t0 = time.perf_counter()
    measure_and_save(load_or_measure(quick=True).fingerprint, threads=threads)
    return f"measured in {time.perf_counter() - t0:.0f} s (not counted in the budget)"


def run_sweep(o: SweepOptions, on_progress: Callable[[int, int, str], None] | None = None) -> dict:
    """Measure the plan within the budget (skipping what the DB holds), then refit the calibration."""
    from aipc.bench.here import this_machine
    from aipc.estimate import resolve_model

    if not o.budget_s > 0:
        raise AipcError(f"--budget must be a positive number of seconds (got {o.budget_s!r})")
    items = plan(o)
    threads = o.threads or _cpus()
    kernels = _kernels_step(items, threads, on_progress, o.kernels)
    t0 = time.perf_counter()
    history: list[tuple[float, float]] = []
    measured, skipped, failed, stopped = [], [], [], None
    for i, it in enumerate(items):
        if on_progress:
            on_progress(i, len(items), it.label)
        if _done(o.db, this_machine(), resolve_model(it.model).name, it):
            skipped.append(it.label)
            continue
        left = o.budget_s - (time.perf_counter() - t0)
        need = predict(history, it)
        if left <= 0 or need > left:
            stopped = f"budget: {it.label} would take about {need:.0f} s, {max(left, 0):.0f} s left"
            break
        start = time.perf_counter()
        try:
            _measure(o, it, left, threads)
        except KeyboardInterrupt:
            stopped = f"interrupted during {it.label}: run the sweep again to resume"
            break
        except AipcError as e:  # one model the engine cannot take (converter, loader): the others still run
            failed.append({"item": it.label, "error": str(e)})
            continue
        history.append((it.weight_bytes, time.perf_counter() - start))
        measured.append({"item": it.label, "seconds": history[-1][1]})
    if on_progress:
        on_progress(len(items), len(items), "calibrating")
    calib = recalibrate(o.db, threads) if o.calibrate and (measured or skipped) else "nothing measured"
    return {"planned": [i.label for i in items], "measured": measured, "already_stored": skipped,
            "not_started": [i.label for i in items[len(measured) + len(skipped) + len(failed):]] if stopped else [],
            "failed": failed, "stopped": stopped, "calibration": calib, "kernels": kernels, "threads": threads,
            "budget_s": o.budget_s,
            "wall_s": time.perf_counter() - t0}
