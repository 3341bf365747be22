"""What can run on one device: every catalog model x every installed engine x its weight formats.

Each row holds the memory at a 4k context, the largest context that fits (KV cache at the row's KV
precision), and prefill / decode tokens/s at one speed shape (``SPEED_PROMPT`` prompt tokens,
``SPEED_GEN`` generated, batch 1) with the kind of each figure — ``calibrated`` where ``aipc
calibrate`` fitted this device's factors for that engine and format, else ``default``. Measured runs
are laid over these rows by :mod:`aipc.bench.here` (the results DB is the bench layer's).

The (engine, format) pairs come from the caller — :func:`aipc.bench.here.formats` reads them from the
engine registry (engines installed here, formats registered in ``aipc.engines.WEIGHT_FORMATS``), so
an engine whose formats are registered appears with no change here. Import-light (no torch): the
whole catalog takes well under a second.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from aipc.errors import AipcError
from aipc.estimate import expected_errors as X
from aipc.hardware.spec import DeviceSpec
from aipc.models.spec import ModelSpec
from aipc.spec import Workload

MEMORY_CONTEXT = 4096       # the "memory at 4k context" column, and what counts as a useful context
SPEED_PROMPT = 256          # the speed shape: prompt tokens of a request ...
SPEED_GEN = 64              # ... and tokens generated after it (batch 1)
TASKS = ("chat", "code", "embedding")
KV_DTYPES = ("fp32", "fp16", "bf16", "fp8", "q8_0", "q4_0")  # what --kv-dtype accepts
CONTEXT_STEP = 256          # the largest context is reported to this many tokens (rounded down)


@dataclass
class Row:
    model: str
    task: str
    params: int
    engine: str
    format: str
    kv_dtype: str
    weights_bytes: int
    memory_4k_bytes: int
    fits_4k: bool
    max_context: int | None          # largest context that fits (None: not even a short one)
    model_context: int               # the model's trained maximum
    prefill_tokens_per_s: float | None
    decode_tokens_per_s: float | None
    prefill_kind: str                # measured | calibrated | default
    decode_kind: str
    prefill_expected_error: float | None = None
    decode_expected_error: float | None = None
    sources: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def task_of(m: ModelSpec) -> str:
    """embedding for an encoder, code for a code model (by name), chat for every other decoder."""
    if not m.is_decoder:
        return "embedding"
    return "code" if "code" in m.name.lower() or "coder" in (m.hf_id or "").lower() else "chat"


def workload(m: ModelSpec, engine: str, fmt: str, kv_dtype: str | None = None) -> Workload:
    """The speed shape of ``m`` on ``engine`` at ``fmt`` (an encoder: the prompt's forward only; the
    estimator counts no generation for it)."""
    gen = SPEED_GEN if m.is_decoder else 1
    return Workload(model=m.name, task="infer", engine=engine, weight_dtype=fmt, kv_dtype=kv_dtype,
                    prompt_tokens=SPEED_PROMPT, gen_tokens=gen, batch_size=1).validate()


def _peak(m: ModelSpec, w: Workload, d: DeviceSpec, context: int) -> int:
    from aipc.estimate.memory import memory_breakdown

    return memory_breakdown(m, w.replace(prompt_tokens=max(context - w.gen_tokens, 1)), d).peak_bytes


def largest_context(m: ModelSpec, w: Workload, d: DeviceSpec, at_4k: int) -> int | None:
    """Largest context (prompt + generated, a multiple of CONTEXT_STEP or the model's maximum) whose
    peak fits: a linear guess from the peaks at 4k and 8k (the KV cache grows with context), then
    bisection between a context known to fit and one known not to."""
    cap, top = d.usable_memory_bytes, m.max_position
    if _peak(m, w, d, top) <= cap:
        return top
    lo, hi = 0, top
    if at_4k <= cap:
        lo = min(MEMORY_CONTEXT, top)
        slope = (_peak(m, w, d, 2 * MEMORY_CONTEXT) - at_4k) / MEMORY_CONTEXT
        if slope > 0:
            guess = min(int(MEMORY_CONTEXT + (cap - at_4k) / slope) // CONTEXT_STEP * CONTEXT_STEP, top)
            if guess > lo and _peak(m, w, d, guess) <= cap:
                lo = guess
                nxt = min(guess + CONTEXT_STEP, top)
                hi = nxt if _peak(m, w, d, nxt) > cap else hi
            elif guess > lo:
                hi = guess
    while hi - lo > CONTEXT_STEP:
        mid = (lo + hi) // 2 // CONTEXT_STEP * CONTEXT_STEP or (lo + hi) // 2
        lo, hi = (mid, hi) if _peak(m, w, d, mid) <= cap else (lo, mid)
    if lo == 0:
        return CONTEXT_STEP if _peak(m, w, d, CONTEXT_STEP) <= cap else None
    return lo


def _kind(eff_source: str, scenario: str) -> str:
    """'calibrated' when the efficiency's source says this scenario's factor was fitted here."""
    if not eff_source.startswith("calibrated:"):
        return "default"
    calibrated = eff_source.split("; others", 1)[0]
    return "calibrated" if f"{scenario}: " in calibrated else "default"


def row(m: ModelSpec, engine: str, fmt: str, d: DeviceSpec, *, this_machine: bool,
        kv_dtype: str | None = None) -> Row:
    """One row (AipcError when the estimator does not model this model on this engine)."""
    from aipc.estimate.core import evaluate

    w = workload(m, engine, fmt, kv_dtype)
    ev = evaluate(m, w, d)
    at_4k = _peak(m, w, d, min(MEMORY_CONTEXT, m.max_position))
    t = ev.time
    prefill = SPEED_PROMPT / t.prefill_s if t.prefill_s else None
    decode = t.decode_tokens_per_s if m.is_decoder else None
    kinds = {s: _kind(ev.efficiency.source, s) for s in ("prefill", "decode")}
    errs = {s: X.expected(k, s, this_machine, engine)["median_abs_error"] for s, k in kinds.items()}
    return Row(model=m.name, task=task_of(m), params=m.param_count(), engine=engine, format=fmt,
               kv_dtype=w.kv, weights_bytes=int(ev.memory.weights_only_bytes), memory_4k_bytes=int(at_4k),
               fits_4k=at_4k <= d.usable_memory_bytes, max_context=largest_context(m, w, d, at_4k),
               model_context=m.max_position, prefill_tokens_per_s=prefill, decode_tokens_per_s=decode,
               prefill_kind=kinds["prefill"], decode_kind=kinds["decode"],
               prefill_expected_error=errs["prefill"], decode_expected_error=errs["decode"] if decode else None,
               sources={"efficiency": ev.efficiency.source})


def rank_key(r: Row) -> tuple:
    """Fits with room for a useful context first (4k tokens or more),
    then the fastest decode (prefill for an encoder), then the smallest."""
    useful = r.max_context is not None and r.max_context >= MEMORY_CONTEXT
    speed = r.decode_tokens_per_s if r.decode_tokens_per_s is not None else (r.prefill_tokens_per_s or 0.0)
    return (not useful, r.max_context is None, -speed, r.memory_4k_bytes)


def table(device: DeviceSpec, pairs: list[tuple[str, str]], *, kv_dtype: str | None = None,
          models: list[ModelSpec] | None = None) -> tuple[list[Row], list[str]]:
    """(rows ranked by :func:`rank_key`, what was skipped and why) for every catalog model (or
    ``models``) x (engine, weight format) of ``pairs`` on ``device`` (the engine registry's pairs:
    :func:`aipc.bench.here.formats`). Calibration is read once for the whole table."""
    from aipc.estimate import calibrate, here_cache
    from aipc.models import catalog

    this_machine = device.category == "this-machine"
    rows, skipped = [], []
    models = models if models is not None else catalog.all_specs()
    cached = here_cache.seed(models)
    with calibrate.using(calibrate.snapshot()):
        for m in models:
            for engine, fmt in pairs:
                try:
                    rows.append(row(m, engine, fmt, device, this_machine=this_machine, kv_dtype=kv_dtype))
                except (AipcError, ZeroDivisionError, ValueError) as e:
                    skipped.append(f"{m.name} {engine} {fmt}: {str(e).splitlines()[0]}")
    here_cache.store(models, sorted({f for _, f in pairs}), cached)
    return sorted(rows, key=rank_key), skipped


def keep(r: Row, *, task: str | None = None, min_tps: float | None = None, min_context: int | None = None) -> bool:
    """The filters of ``aipc models --here``: a task, a minimum decode tokens/s (prefill for an
    encoder), a minimum largest context."""
    if task and r.task != task:
        return False
    speed = r.decode_tokens_per_s if r.decode_tokens_per_s is not None else r.prefill_tokens_per_s
    if min_tps is not None and (speed is None or speed < min_tps):
        return False
    return not (min_context is not None and (r.max_context is None or r.max_context < min_context))
