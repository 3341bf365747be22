"""Calibrated efficiency factors per device, fitted by ``aipc calibrate`` from measured runs.

The estimator calls :func:`lookup` for every estimate, so it is cheap: one ``os.stat`` of
``aipc.paths.home()/calibration.json`` per call (a missing file costs only that), the parsed file
cached until its mtime or size changes. Import-light: no torch, and never imports ``aipc.bench``.

A factor is what the estimator multiplies a peak by (its roofline: time = work / (peak x factor)):
- train and prefill: MFU = (model FLOPs of the step, by the estimator's formulas) / (peak FLOP/s x t);
- decode: MBU = (bytes read per decode step) / (bandwidth x t),
with the peak and bandwidth of the DeviceSpec the estimator uses for that device (``aipc hw``'s
measured profile for this machine).

Efficiency depends on the model's size and on how many tokens one forward carries (a GEMM with 32
rows reaches less of the peak than one with 512; decode at batch 4 is not decode at batch 1). So the
factors are kept per device and scenario in buckets of model size (FLOPs per token: points within a
factor of 1.5 share a bucket) and, inside a bucket, per tokens per forward (train b x s, prefill
b x p, decode b; the median where several runs share a value). A lookup interpolates linearly in
log(tokens) inside a bucket (nearest value outside the measured range), then linearly in
log(FLOPs per token) between buckets (nearest bucket outside). Without ``tokens`` a bucket answers
with the median of all its runs.

Decode is fitted differently: a decode step at small batch costs the bytes it reads AND a fixed time
per layer (operator dispatch, kernel launches), which no single MBU can describe (two models that
read nearly the same bytes per step decode at different speeds when their layer counts differ;
measured in docs/estimate.md "Compute and time").
So per device and decode batch, t = (bytes / bandwidth) / MBU + layers x layer_s is fitted by least
squares on relative error over all runs of that batch (layer_s >= 0; where the runs cannot separate
the two terms, e.g. one model only, layer_s = 0 and MBU is the median factor). A lookup interpolates
MBU and layer_s linearly in log(batch), nearest batch outside the measured range.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import statistics
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any

FORMAT = "aipc-calibration"
VERSION = 5  # 4: train factors against the linear forward+backward peak; fitted time models (calibrate_linear)
# 5: prefill FLOPs with the output head for the last prompt token only; time models with a per-layer-per-token
# (train / prefill) and a context (decode) term; torch inference on the HF forward fitted apart. An older
# table is not used: estimates say so and take the defaults until 'aipc calibrate' refits it
# llama.cpp prefill entries fitted against the FLOP/s of each file's kernel types (aipc.estimate.kernels);
# an entry without this mark was fitted against the fp32 peak and is not used (aipc calibrate refits it)
KERNELS = "llamacpp-kernels-per-type"
# llama.cpp decode fitted against the decode bandwidth aipc hw --kernels measured for each run's own weight
# types (aipc.estimate.kernels.decode_read_mix) rather than the copy bandwidth: its MBU is relative to that
READS = "llamacpp-decode-reads-per-type"
# OpenVINO prefill entries fitted against the prefill FLOP/s aipc hw --kernels measured per weight format on this
# CPU (aipc.estimate.kernels.openvino_prefill); used only while those figures are there, and an entry without
# the mark only while they are not (the two are factors against different peaks)
OV_KERNELS = "openvino-prefill-per-format"
# llama.cpp decode fitted on times less the attention over the KV cache at the FLOP/s aipc hw --kernels
# measured (aipc.estimate.roofline adds it back per workload, so the fit carries to other contexts); an entry
# without this mark holds the attention inside its MBU and per-layer time, and the estimate adds none
ATTENTION = "llamacpp-decode-attention-apart"
FILE_NAME = "calibration.json"
SCENARIOS = ("train", "prefill", "decode")
BUCKET_RATIO = 1.5
MAX_MBU = 1.0  # a decode fit above it is per-layer time read as bandwidth (small models only): capped

_cache: dict[str, Any] = {"key": None, "data": None, "old_version": None}
_override: list[dict | None] = []


def path() -> Path:
    from aipc.paths import home

    return home() / FILE_NAME


def peak_dtypes(compute_dtype: str) -> tuple[str, str, str]:
    """The dtypes whose peak the roofline takes for ``compute_dtype``, in order: that dtype, the other
    16-bit type, then fp32."""
    return (compute_dtype, "bf16" if compute_dtype == "fp16" else "fp16", "fp32")


def peak_for(spec, compute_dtype: str, train: bool = False) -> float | None:
    """The peak FLOP/s the estimator's roofline uses for a compute dtype: that dtype, then the other
    16-bit type, then fp32 (``aipc.estimate.roofline``); ``train``: the measured linear
    forward+backward peak of that dtype where there is one (``DeviceSpec.train_peak``)."""
    if spec is None:
        return None
    for dt in peak_dtypes(compute_dtype):
        p = spec.train_peak(dt) if train else spec.peak(dt)
        if p:
            return p
    return None


def openvino_cpu_precision(spec) -> str:
    """The precision OpenVINO's CPU plugin computes in by default (its INFERENCE_PRECISION_HINT; int8 /
    int4 weights are dequantised into it, an fp16 IR converted to it): bf16 on x86 CPUs that run bf16
    natively (AVX512_BF16 or AMX: ``DeviceSpec.native_dtypes``, from the ISA flags ``aipc hw`` read),
    fp16 on Arm CPUs with native fp16, fp32 elsewhere and where the flags are not known (docs.openvino.ai,
    "CPU Device", floating-point data types; bf16 read from the plugin on this project's AMX machine,
    2026-12-06)."""
    native = getattr(spec, "native_dtypes", ()) or ()
    if getattr(spec, "vendor", "") in ("apple", "arm", "qualcomm"):
        return "fp16" if "fp16" in native else "fp32"
    return "bf16" if "bf16" in native else "fp32"


def workload_peak(spec, w, train: bool = False, compute=None) -> float | None:
    """The peak FLOP/s a workload's compute is measured against (the roofline's and the calibration's):
    llama.cpp on a CPU runs ggml's own kernel per weight type: the FLOP/s of the model's type mix
    (``compute.prefill_mix``) at its prompt length and layer width (``compute.prefill_width``), measured
    by aipc hw or a default share of the fp32 GEMM peak (aipc.estimate.kernels); OpenVINO on a CPU against
    its prefill FLOP/s for the weight format where aipc hw --kernels measured it
    (aipc.estimate.kernels.openvino_prefill), else the peak of the precision its plugin computes in
    (:func:`openvino_cpu_precision`); everything else its compute dtype's peak (:func:`peak_for`)."""
    if spec is None:
        return None
    engine = getattr(w, "engine", "torch")
    if engine == "llamacpp" and spec.kind == "cpu":
        from aipc.estimate.kernels import mix_flops

        mix = compute.prefill_mix if compute is not None else ()
        flops = mix_flops(spec, mix, w.prompt_tokens, compute.prefill_width) if mix else None
        return flops or spec.peak("fp32") or peak_for(spec, w.compute)
    if engine == "openvino" and spec.kind == "cpu":
        from aipc.estimate.kernels import openvino_prefill

        got = openvino_prefill(spec, w.weight_dtype, w.prompt_tokens, compute.prefill_width if compute else None)
        return got or spec.peak(openvino_cpu_precision(spec)) or spec.peak("fp32") or peak_for(spec, w.compute)
    return peak_for(spec, w.compute, train=train)


# ---- reading -------------------------------------------------------------------------------------
def load(p: Path | None = None) -> dict | None:
    """The calibration table (None when there is none or it is unreadable), cached by mtime and size."""
    p = p or path()
    try:
        st = os.stat(p)
    except OSError:
        return None
    key = (str(p), st.st_mtime_ns, st.st_size)
    if _cache["key"] != key:
        old = None
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            data = None
        elif data.get("version") != VERSION:
            old, data = data.get("version"), None  # another aipc's table: not used, and estimates say so
        elif not isinstance(data.get("devices"), dict):
            data = None
        _cache.update(key=key, data=data, old_version=old)
    return _cache["data"]


def outdated_note() -> str | None:
    """A line for estimates when the saved table was written by another aipc version (and is not used)."""
    if _override or load() is not None or _cache["old_version"] is None:
        return None
    return (f"the saved calibration ({path()}) is from another aipc version ({_cache['old_version']}, this one "
            f"reads {VERSION}) and is not used: run 'aipc calibrate' to refit it from the stored runs")


def interpolate(points: list[list[float]], at: float | None) -> float:
    """Factor at ``at`` from [x, factor, n] points sorted by x: linear in log(x) between neighbours,
    the nearest point outside their range; the median of all points when ``at`` is unknown."""
    if at is None or at <= 0 or len(points) == 1:
        return points[0][1] if len(points) == 1 else statistics.median(p[1] for p in points)
    x = math.log(at)
    xs = [math.log(p[0]) for p in points]
    if x <= xs[0]:
        return points[0][1]
    if x >= xs[-1]:
        return points[-1][1]
    for i in range(1, len(points)):
        if x <= xs[i]:
            t = (x - xs[i - 1]) / (xs[i] - xs[i - 1])
            return points[i - 1][1] + t * (points[i][1] - points[i - 1][1])
    return points[-1][1]  # pragma: no cover


def tokens_for(workload) -> dict[str, int]:
    """Tokens one forward carries per device, by scenario: train b x s, prefill b x p, decode b."""
    b = workload.batch_size
    return {"train": b * workload.seq_len, "prefill": b * workload.prompt_tokens, "decode": b}


def _bucket_factor(bucket: dict, tokens: float | None) -> float:
    pts = bucket.get("by_tokens") or []
    return interpolate(pts, tokens) if tokens and pts else bucket["factor"]


def scenario_key(scenario: str, engine: str = "torch") -> str:
    """Where a scenario's entry lives in a device's table: 'decode' for torch, 'decode@llamacpp' for
    another engine (whose entry holds one sub-entry per weight format and one over all of them)."""
    return scenario if engine == "torch" else f"{scenario}@{engine}"


def format_family(fmt: str | None) -> str | None:
    """Weight formats whose kernels behave alike: GGUF floats, legacy 32-blocks (q4_0, q8_0, ...) and
    k-quants (q4_k_m, q6_k, ...); other formats are their own family."""
    if fmt is None:
        return None
    if fmt in ("f32", "f16", "bf16", "fp16", "fp32"):
        return "float"
    if "_k" in fmt:
        return "k-quant"
    if fmt.startswith("q") and fmt[1:2].isdigit():
        return "legacy"
    return fmt


HF_RUNNER = "@hf"  # torch inference through the model's HF forward (ModelSpec.torch_runner 'hf'): fitted apart


def _torch_runs(scenario: str, pts: list[dict]) -> dict[str, list[dict]]:
    """Torch points by the key suffix they calibrate: train all together; inference on aipc's FastLM
    ('') apart from the HF-forward runner ('@hf'), whose per-layer overheads differ (the '' entry takes
    every run where no FastLM model was measured)."""
    if scenario == "train":
        return {"": pts}
    hf = [p for p in pts if p.get("runner") == "hf"]
    return {"": [p for p in pts if p.get("runner") != "hf"] or pts, **({HF_RUNNER: hf} if hf else {})}


def _entry(device_name: str, scenario: str, engine: str = "torch", weight_format: str | None = None,
           defaults: dict[str, tuple[float, ...]] | None = None, runner: str | None = None):
    """(the table's entry for a device, scenario, engine and weight format — the ``using`` override
    first —, how it matched, the per-term scale to apply to its factors) or (None, "", None). Another
    engine's runs never answer for torch and vice versa. Inside an engine: the format's own entry;
    else, where ``defaults`` (weight format -> its default factor per term) has this format and a
    measured one, the measured format whose first default is nearest, scaled by the defaults' ratios;
    else the nearest format of the same family; else the entry fitted over all its formats."""
    table = _device_table(device_name)
    entry = table.get(scenario_key(scenario, engine))
    hf = table.get(scenario_key(scenario) + HF_RUNNER) if engine == "torch" and runner == "hf" else None
    if hf:
        return hf, " (HF-forward runner)", None
    if not entry or engine == "torch":
        return entry, "", None
    if engine == "llamacpp" and scenario == "prefill" and entry.get("against") != KERNELS:
        return None, "", None  # fitted against the fp32 peak before llama.cpp's kernels were measured: refit
    by_fmt = entry.get("by_format") or {}
    if weight_format in by_fmt:
        return by_fmt[weight_format], "", None
    against = entry.get("against")
    seen = [f for f in sorted(by_fmt) if f in (defaults or {}) and defaults[f][0] > 0 and against != READS]
    if seen and weight_format in defaults and defaults[weight_format][0] > 0:
        want = defaults[weight_format]
        base = min(seen, key=lambda f: abs(math.log(want[0] / defaults[f][0])))
        scale = tuple(w / b if b > 0 else (1.0 if w == 0 else None) for w, b in zip(want, defaults[base]))
        return by_fmt[base], (f" (from {base}, scaled by the default {weight_format}/{base} ratio "
                              f"{scale[0]:.2f}; {weight_format} not measured)"), (scale, want)
    # factors against the kernels of each file's own weight types (aipc.estimate.kernels) already tell
    # formats apart: an unmeasured format takes the fit over all of them, not a family member's
    fam = [f for f in sorted(by_fmt) if format_family(f) == format_family(weight_format)
           and against not in (KERNELS, READS, OV_KERNELS)]
    if fam:
        return by_fmt[fam[0]], f" (from {fam[0]}, the same kernel family as {weight_format})", None
    return entry.get("all"), f" (over {', '.join(sorted(by_fmt))}; {weight_format} not measured)", None


def _scaled(values: tuple[float, ...], how: tuple | None) -> tuple[float, ...]:
    """A measured format's factors carried to another format: each term times the ratio of the two
    formats' defaults; a term whose default is 0 for the measured format takes the other's default (and
    stays as fitted where both are 0)."""
    if how is None:
        return values
    scale, want = how
    return tuple(v * r if r is not None else d for v, r, d in zip(values, scale, want))


def lookup(device_name: str, scenario: str, flops_per_token: float | None,
           tokens: float | None = None, *, ideal_s: float | None = None,
           layers: int | None = None, engine: str = "torch",
           weight_format: str | None = None, runner: str | None = None) -> tuple[float, str] | None:
    """(factor, one-line source) for a device and scenario ('train', 'prefill', 'decode'), or None.
    ``tokens``: tokens per forward (see :func:`tokens_for`); without it, each size bucket's median.
    With the step's ideal compute time ``ideal_s`` (FLOPs / peak) and ``layers`` too, an entry's
    fitted time model answers (``aipc.estimate.calibrate_linear``); the size buckets otherwise.
    ``engine`` / ``weight_format``: runs of that engine only (formats as :func:`_entry` matches them)."""
    entry, how, _ = _entry(device_name, scenario, engine, weight_format, runner=runner)
    if not entry or not entry.get("buckets"):
        return None
    src = entry.get("source", "calibrated") + how
    if ideal_s and tokens and layers:
        from aipc.estimate import calibrate_linear

        model, scale, note = entry.get("linear"), 1.0, ""
        whole = _engine_all(device_name, scenario, engine)
        if not model and whole and whole.get("linear") and whole is not entry:
            # too few runs of this format for a time model of its own: the engine's model over all its
            # formats, scaled by this format's measured factor against theirs at this size
            model, note = whole["linear"], f"; time model over all {engine} formats"
            scale = _bucket_lookup(entry, flops_per_token, tokens) / _bucket_lookup(whole, flops_per_token, tokens)
        f = calibrate_linear.factor(model, ideal_s, tokens, layers) if model else None
        if f:
            return f * scale, src + note
    return _bucket_lookup(entry, flops_per_token, tokens), src


def _bucket_lookup(entry: dict, flops_per_token: float | None, tokens: float | None) -> float:
    """An entry's factor from its size buckets: interpolated by FLOPs per token (and tokens per forward)."""
    per_size = [[b["fpt"], _bucket_factor(b, tokens), b["n"]] for b in entry["buckets"]]
    return interpolate(per_size, flops_per_token)


def _device_table(device_name: str) -> dict:
    """The calibration table's entries for a device (the ``using`` override first); {} without any."""
    data = _override[-1] if _override else load()
    return data.get("devices", {}).get(device_name, {}) if data else {}


def _engine_all(device_name: str, scenario: str, engine: str) -> dict | None:
    """The entry an engine's runs fitted over all its weight formats (None for torch, or none stored)."""
    entry = _device_table(device_name).get(scenario_key(scenario, engine))
    return entry.get("all") if entry and engine != "torch" else None


def _engine_entry(device_name: str, engine: str, scenario: str = "decode") -> dict:
    """A device's fitted entry of a scenario for an engine other than torch ({} where none)."""
    return (_device_table(device_name).get(scenario_key(scenario, engine)) or {}) if engine != "torch" else {}


def prefill_against(device_name: str, engine: str) -> str | None:
    """What a device's fitted prefill factors of an engine other than torch are relative to: KERNELS,
    OV_KERNELS, or None (the dtype's peak)."""
    return _engine_entry(device_name, engine, "prefill").get("against")


def decode_against(device_name: str, engine: str) -> str | None:
    """What a device's fitted decode MBU of an engine is relative to: READS, or None (the copy bandwidth)."""
    return _engine_entry(device_name, engine).get("against")


def attention_apart(device_name: str, engine: str) -> bool:
    """True when a device's fitted decode of an engine left the attention over the KV cache out (ATTENTION)."""
    return _engine_entry(device_name, engine).get("attention") == ATTENTION


def lookup_decode(device_name: str, batch: float | None = None, engine: str = "torch",
                  weight_format: str | None = None, *, context: float | None = None, runner: str | None = None,
                  defaults: dict[str, tuple[float, float]] | None = None) -> tuple[float, float, str] | None:
    """(MBU, seconds per layer per decode step, one-line source) for a device's decode, or None.
    ``defaults``: the engine's default (MBU, seconds per layer) per weight format on this device class
    (``efficiency_defaults.DECODE_BY_FORMAT``): a format not measured is scaled from a measured one."""
    entry, how, scale = _entry(device_name, "decode", engine, weight_format, defaults, runner=runner)
    if not entry or not entry.get("by_batch"):
        return None
    src = entry.get("source", "calibrated") + how
    if entry.get("joint"):  # one model over every batch size (aipc.estimate.calibrate_linear.fit_decode)
        from aipc.estimate import calibrate_linear

        mbu, layer_s = _scaled(calibrate_linear.decode_terms(entry["joint"], batch, context), scale)
        return mbu, layer_s, src
    rows = entry["by_batch"]
    mbu = interpolate([[r[0], r[1], r[3]] for r in rows], batch)
    layer_s = interpolate([[r[0], r[2], r[3]] for r in rows], batch)
    mbu, layer_s = _scaled((mbu, layer_s), scale)
    return mbu, layer_s, src


def snapshot() -> dict:
    """The table lookups answer from right now (a ``using`` override, else the file; {} for none)."""
    return (_override[-1] if _override else load()) or {}


def stored_with(extra: dict | None) -> dict:
    """The stored table with ``extra``'s entries (a fitted table) added where the stored one has none:
    what is stored wins, ``extra`` fills the gaps."""
    stored = load() or {"format": FORMAT, "version": VERSION, "devices": {}}
    if not extra:
        return stored
    devices = {d: dict(e) for d, e in stored.get("devices", {}).items()}
    for dev, entries in extra.get("devices", {}).items():
        for key, entry in entries.items():
            devices.setdefault(dev, {}).setdefault(key, entry)
    return {**stored, "devices": devices}


@contextmanager
def using(table: dict | None):
    """Make :func:`lookup` answer from ``table`` (``{}`` or None: no calibration) inside the block."""
    _override.append(table or {})
    try:
        yield
    finally:
        _override.pop()


# ---- fitting -------------------------------------------------------------------------------------
def _bucket(group: list[tuple[float, float]]) -> list[float]:
    centre = math.exp(sum(math.log(g[0]) for g in group) / len(group))
    return [centre, statistics.median(g[1] for g in group), len(group)]


def fit(points: list[dict], source: str = "") -> dict:
    """A calibration table from points {device, scenario, flops_per_token, factor, tokens (optional),
    engine (default torch), weight_format}. Runs of another engine are fitted apart from torch's: per
    weight format and over all formats of the engine (``scenario@engine`` entries)."""
    by: dict[tuple[str, str, str], list[dict]] = {}
    for p in points:
        f, fpt = p.get("factor"), p.get("flops_per_token")
        if p["scenario"] in SCENARIOS and f and fpt and f > 0 and fpt > 0 and math.isfinite(f):
            by.setdefault((p["device"], p["scenario"], p.get("engine") or "torch"), []).append(p)
    devices: dict[str, dict] = {}
    for (dev, scen, engine), pts in by.items():
        key = scenario_key(scen, engine)
        # a decode whose bytes fit in the CPU's last-level cache is not bound by memory: it calibrates
        # the memory-bound decode model only where no larger model was measured (Compute notes)
        pts = [p for p in pts if not p.get("cache_resident")] or pts
        if engine == "torch":
            for suffix, group in _torch_runs(scen, pts).items():
                devices.setdefault(dev, {})[key + suffix] = _fit_entry(scen, group, source)
            continue
        formats: dict[str, list[dict]] = {}
        for p in pts:
            formats.setdefault(str(p.get("weight_format")), []).append(p)
        devices.setdefault(dev, {})[key] = {
            "by_format": {f: _fit_entry(scen, group, source) for f, group in sorted(formats.items())},
            "all": _fit_entry(scen, pts, source), "n_runs": len(pts), "source": source}
        if engine == "llamacpp" and scen == "prefill":
            devices[dev][key]["against"] = KERNELS
        if engine == "openvino" and scen == "prefill" and all(p.get("against") == OV_KERNELS for p in pts):
            devices[dev][key]["against"] = OV_KERNELS
        if engine == "llamacpp" and scen == "decode" and all(p.get("against") == READS for p in pts):
            devices[dev][key]["against"] = READS
        if engine == "llamacpp" and scen == "decode" and all(p.get("attention_apart") for p in pts):
            devices[dev][key]["attention"] = ATTENTION
    return {"format": FORMAT, "version": VERSION, "devices": devices}


def _fit_entry(scen: str, pts: list[dict], source: str) -> dict:
    """One scenario's entry: decode by batch (two terms, and one joint model over batches); train /
    prefill by size bucket and tokens, with a fitted time model (aipc.estimate.calibrate_linear)."""
    from aipc.estimate import calibrate_linear

    if scen == "decode":
        return {"by_batch": _fit_decode(pts), "n_runs": len(pts), "source": source,
                "joint": calibrate_linear.fit_decode(pts)}
    out = []
    for centre, _, n, members in _size_groups(pts):
        by_tok: dict[float, list[float]] = {}
        for m in members:
            if m.get("tokens"):
                by_tok.setdefault(float(m["tokens"]), []).append(m["factor"])
        out.append({"fpt": centre, "factor": statistics.median(m["factor"] for m in members), "n": n,
                    "by_tokens": [[t, statistics.median(v), len(v)] for t, v in sorted(by_tok.items())]})
    return {"buckets": out, "n_runs": len(pts), "source": source, "linear": calibrate_linear.fit(pts)}


def _fit_decode(pts: list[dict]) -> list[list[float]]:
    """[[batch, MBU, layer_s, n], ...] by batch: t = ideal / MBU + layers x layer_s (module docstring).
    A point's ``factor`` is ideal / t (its MBU with no layer term); ``layers`` its layer count."""
    by_batch: dict[float, list[dict]] = {}
    for p in pts:
        by_batch.setdefault(float(p.get("tokens") or 1), []).append(p)
    return [[b, *_two_term(group), len(group)] for b, group in sorted(by_batch.items())]


def _two_term(group: list[dict]) -> tuple[float, float]:
    """(MBU, layer_s) minimising sum((ideal/MBU + layers*layer_s) / t - 1)^2 over the group; each point's
    t = ideal / factor, so in units of t: 1 = u*a + v*layer_s with u = factor (ideal/t), v = layers / t."""
    median_mbu = statistics.median(p["factor"] for p in group)
    rows = [(p["factor"], p["layers"] * p["factor"] / p["ideal_s"]) for p in group
            if p.get("layers") and p.get("ideal_s")]
    if len(rows) < 2 or len(rows) < len(group):
        return median_mbu, 0.0
    ratios = [v / u for u, v in rows]  # layers per second of ideal time: must differ to tell the terms apart
    if max(ratios) < 1.1 * min(ratios):
        return median_mbu, 0.0
    suu = sum(u * u for u, _ in rows)
    svv = sum(v * v for _, v in rows)
    suv = sum(u * v for u, v in rows)
    su, sv = sum(u for u, _ in rows), sum(v for _, v in rows)
    det = suu * svv - suv * suv
    a = (su * svv - sv * suv) / det
    layer_s = (sv * suu - su * suv) / det
    if layer_s < 0 or a <= 0:
        return median_mbu, 0.0
    if 1.0 / a > MAX_MBU:  # reading faster than memory allows: the runs cannot tell the terms apart
        layer_s = max(sum(v * (1 - u / MAX_MBU) for u, v in rows) / svv, 0.0)
        return MAX_MBU, layer_s
    return 1.0 / a, layer_s


def _size_groups(pts: list[dict]):
    """Points grouped by FLOPs per token (consecutive within BUCKET_RATIO of the group's smallest):
    (geometric-mean centre, median factor, count, members) per group."""
    pts = sorted(pts, key=lambda p: p["flops_per_token"])
    group: list[dict] = []
    for p in pts:
        if group and p["flops_per_token"] > group[0]["flops_per_token"] * BUCKET_RATIO:
            yield _group(group)
            group = []
        group.append(p)
    if group:
        yield _group(group)


def _group(group: list[dict]):
    c, f, n = _bucket([(g["flops_per_token"], g["factor"]) for g in group])
    return c, f, n, group


def today() -> str:
    return _dt.date.today().isoformat()


def save(table: dict, p: Path | None = None) -> Path:
    """Write the table atomically (temporary file + rename), merging with devices already calibrated."""
    p = p or path()
    old = load(p) or {}
    merged = {**old.get("devices", {}), **table.get("devices", {})}
    data = {**table, "devices": merged, "fitted_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    fd, tmp = tempfile.mkstemp(prefix=".calibration.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _cache["key"] = None
    return p


def reset(devices: list[str] | None = None, p: Path | None = None) -> list[str]:
    """Remove calibration for ``devices`` (all when None); returns the names removed."""
    p = p or path()
    data = load(p)
    if not data:
        return []
    names = list(data["devices"]) if devices is None else [d for d in devices if d in data["devices"]]
    if devices is None:
        p.unlink()
    else:
        for d in names:
            data["devices"].pop(d)
        fd, tmp = tempfile.mkstemp(prefix=".calibration.", suffix=".tmp", dir=p.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
        os.replace(tmp, p)
    _cache["key"] = None
    return names
