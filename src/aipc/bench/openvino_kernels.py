"""Measure OpenVINO's prefill and decode per weight format on this CPU (``aipc hw --kernels``): the decode
MBU and time per layer that the estimator's uncalibrated OpenVINO decode uses, with the ratios a calibration
carries a measured format's fit to another format by (aipc.estimate.efficiency), and the prefill FLOP/s
that its OpenVINO prefill runs at (aipc.estimate.kernels.openvino_prefill; timed on the same probes at
PREFILL_TOKENS and stored as ``prefill:<format>@<layer width>``).

A decode step of OpenVINO's CPU plugin costs the bytes of its weights at some share of the memory
bandwidth plus a fixed time per layer, and both terms depend on the format and the CPU: on the 2-core
AMD EPYC without AVX512-FP16 an fp16 IR paid per layer about what int8 did (its weights converted to f32
in the kernel), on the Intel Xeon with AVX512-FP16 and AMX almost nothing (docs/validation.md, OpenVINO
notes). Two probes of Llama layers with random weights tell the terms apart: a wide one (a 1B-class
layer, few layers: mostly bytes) and a narrow one (a 135M-class layer, many layers: more per-layer
time per byte). Each is exported once per format by ``aipc convert --to openvino`` (optimum-intel and
NNCF; cached in aipc's home) and a decode step after DECODE_CONTEXT tokens is timed through aipc's own
runner (the best of ``reps`` medians of DECODE_STEPS steps, every probe of every format taking turns,
after a warm-up round, in each of three fresh processes: on this project's AMD VM a process decodes at
one of two speeds for its whole life). With B the
estimator's decode bytes of the probe in that format (aipc.estimate.openvino_weights, plus the KV cache)
and L its layers, the two steps solve t = B / (bandwidth x MBU) + L x per-layer for the format's MBU and
per-layer time, against ``aipc hw``'s measured bandwidth.

Only a probe whose bytes are READ_CACHE_MULTIPLE times the last-level cache reads from memory; a format
whose narrow probe cannot be that large within MAX_LAYERS (a CPU with hundreds of MiB of L3) has only its
prefill measured (on probes of at most MAX_LAYERS), and its decode keeps the published default
(aipc.estimate.efficiency_defaults). Stored in
aipc.hardware.kernels under the engine "openvino" as ``mbu:<format>`` and ``layer_us:<format>`` (the fit)
and ``read:<format>@<layer width>`` (each probe's bytes per second), at one token.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path

from aipc.bench.llamacpp_kernels import DECODE_CONTEXT, DECODE_STEPS, decode_median

FORMATS = ("fp16", "int8", "int4")
# (hidden, FFN, query heads, KV heads): Llama-3.2-1B's layer and a SmolLM2-135M-like one (layer widths 29696, 5888)
WIDE, NARROW = (2048, 8192, 32, 8), (512, 1536, 8, 2)
MIN_LAYERS = {WIDE: 6, NARROW: 16}
MAX_LAYERS = {WIDE: 24, NARROW: 96}
READ_CACHE_MULTIPLE = 2.2  # a probe this many times the last-level cache decodes from memory
PREFILL_TOKENS, PREFILL_REPS = (128, 512), 2  # prefill timed at these prompt lengths, best of PREFILL_REPS
LAYER_FLOOR_S = 1e-9  # a fitted per-layer time of 0 is stored as this (a record holds positive numbers)
METHOD = ("decode after {ctx} tokens of Llama layers with random weights exported by aipc convert --to openvino "
          "({probes}), the best of {reps} medians of {steps} steps (every probe taking turns) after a warm-up in "
          "each of {procs} processes, {threads} threads; per format t = bytes / (bandwidth x MBU) + layers x "
          "per-layer, solved over the two probes against aipc hw's {bw:.1f} GB/s")


def _model(shape: tuple[int, int, int, int], layers: int):
    """The probe's ModelSpec (aipc's reading of its HF config)."""
    from aipc.bench.llamacpp_kernels import probe_config
    from aipc.models.spec import ModelSpec

    return ModelSpec.from_hf_config(probe_config(shape, layers), name="ov-kernel-probe")


def probe_bytes(shape: tuple[int, int, int, int], layers: int, fmt: str) -> float:
    """The estimator's bytes of one decode step at DECODE_CONTEXT of the probe in ``fmt`` (weights + KV cache)."""
    from aipc.estimate.compute import compute_for

    return compute_for(_model(shape, layers), _workload("probe", fmt)).decode_bytes_per_step


def _workload(ref: str, fmt: str):
    from aipc.spec import Workload

    return Workload(model=ref, task="infer", prompt_tokens=DECODE_CONTEXT, gen_tokens=1, engine="openvino",
                    weight_dtype=fmt)


def probe_layers(shape: tuple[int, int, int, int], cache_bytes: int, fmt: str = "int4") -> int | None:
    """Layers that put the probe's ``fmt`` decode bytes at READ_CACHE_MULTIPLE x the cache (at least
    MIN_LAYERS); None where that takes more than MAX_LAYERS."""
    per_layer = probe_bytes(shape, 2, fmt) - probe_bytes(shape, 1, fmt)
    base = probe_bytes(shape, 1, fmt) - per_layer
    n = max(MIN_LAYERS[shape], math.ceil((READ_CACHE_MULTIPLE * cache_bytes - base) / per_layer))
    return n if n <= MAX_LAYERS[shape] else None


def fit(steps: list[tuple[float, int, float]], bandwidth: float) -> tuple[float, float] | None:
    """(MBU, seconds per layer) from (bytes, layers, seconds) of two probes: the exact solution of
    t = bytes / (bandwidth x MBU) + layers x per-layer; where it gives a negative per-layer time (noise),
    per-layer 0 and the MBU of the probes' summed bytes over their summed time; None where the MBU
    comes out non-positive."""
    (b1, l1, t1), (b2, l2, t2) = steps[:2]
    det = b1 * l2 - b2 * l1
    inv_rate = (t1 * l2 - t2 * l1) / det if det else 0.0  # seconds per byte
    layer_s = (t1 - b1 * inv_rate) / l1 if det else -1.0
    if layer_s < 0 or inv_rate <= 0:
        inv_rate, layer_s = (t1 + t2) / (b1 + b2), 0.0
    mbu = 1.0 / (inv_rate * bandwidth)
    return (mbu, layer_s) if mbu > 0 and math.isfinite(mbu) else None


def time_decode(runners: list, rounds: int) -> list[float]:
    """Per runner (aipc's OpenVINO runners on the CPU), the best over ``rounds`` of the median seconds of
    DECODE_STEPS decode steps after DECODE_CONTEXT tokens; the runners take turns within each round (so a
    busy spell of the shared machine falls on every probe), after a warm-up round."""
    import torch

    ids = [torch.randint(3, r.vocab_size, (DECODE_CONTEXT,), generator=torch.Generator().manual_seed(1))
           for r in runners]
    best = [float("inf")] * len(runners)
    for r in range(rounds + 1):
        for k, runner in enumerate(runners):
            step = decode_median(runner, ids[k])
            runner.free(0)
            if r:  # round 0 warms up
                best[k] = min(best[k], step)
    return best


def time_prefill(runners: list, reps: int) -> list[list[float]]:
    """Per runner, the best of ``reps`` prefill times at each of PREFILL_TOKENS (the runners taking turns,
    after a warm-up at the shortest)."""
    import torch

    best = [[float("inf")] * len(PREFILL_TOKENS) for _ in runners]
    for r in range(reps + 1):
        for k, runner in enumerate(runners):
            for j, n in enumerate(PREFILL_TOKENS[:1] if not r else PREFILL_TOKENS):
                ids = torch.randint(3, runner.vocab_size, (n,), generator=torch.Generator().manual_seed(2))
                t0 = time.perf_counter()
                runner.prefill(0, ids)
                if r:  # round 0 warms up
                    best[k][j] = min(best[k][j], time.perf_counter() - t0)
                runner.free(0)
    return best


def _ir(shape: tuple[int, int, int, int], layers: int, fmt: str) -> Path:
    """The probe's IR in ``fmt`` (exported once by aipc convert --to openvino, cached in aipc's home)."""
    from aipc.bench.llamacpp_kernels import probe_folder
    from aipc.engines.openvino import ensure_ir

    folder = probe_folder(layers, shape)
    return ensure_ir(str(folder / "config.json"), fmt, progress=False)[0]


def _folders(plan: dict[str, list[tuple[tuple, int]]]) -> list[Path]:
    """The IR folder of each (format, probe) of the plan, in plan order (exported here where missing)."""
    return [_ir(shape, layers, fmt) for fmt, probes in plan.items() for shape, layers in probes]


def time_in_processes(folders: list[Path], reps: int, threads: int | None, processes: int) -> dict:
    """{"decode": per IR folder its best step time, "prefill": per folder its best time per PREFILL_TOKENS}
    over ``processes`` fresh processes (each :func:`time_decode` and :func:`time_prefill` over all folders):
    on the 2-core AMD EPYC VM a process decoded the same IR at one of two speeds for its whole
    life (Llama-3.2-1B fp16: 39-42 or 57-62 ms per step, every runner of a process alike, with or without
    CPU pinning), so one process can miss the faster; peaks are maxima."""
    import json
    import subprocess
    import sys

    from aipc.errors import AipcError

    best = {"decode": [float("inf")] * len(folders), "prefill": [[float("inf")] * len(PREFILL_TOKENS) for _ in folders]}
    cmd = [sys.executable, "-m", "aipc.bench.openvino_kernels", json.dumps([str(f) for f in folders]), str(reps),
           str(threads or 0)]
    for _ in range(processes):
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise AipcError(f"timing OpenVINO's decode probes failed: {tail}")
        got = json.loads(proc.stdout.strip().splitlines()[-1])
        best["decode"] = [min(a, b) for a, b in zip(best["decode"], got["decode"])]
        best["prefill"] = [[min(a, b) for a, b in zip(x, y)] for x, y in zip(best["prefill"], got["prefill"])]
    return best


def _child(argv: list[str]) -> int:
    """``python -m aipc.bench.openvino_kernels FOLDERS_JSON REPS THREADS``: prints the step seconds per folder."""
    import json

    from aipc.engines.openvino_runner import OVRunner

    folders, reps, threads = json.loads(argv[0]), int(argv[1]), int(argv[2]) or None
    length = max(DECODE_CONTEXT + DECODE_STEPS + 1, *PREFILL_TOKENS)
    runners = [OVRunner(f, device="CPU", max_len=length, threads=threads) for f in folders]
    out = {"decode": time_decode(runners, reps), "prefill": time_prefill(runners, PREFILL_REPS)}
    print(json.dumps(out), flush=True)
    return 0


def format_records(fmt: str, probes: list[tuple[tuple, int]], secs: list[float], bandwidth: float,
                   say, prefill: list[list[float]] | None = None, decode: bool = True) -> dict[str, list[list[float]]]:
    """One format's records from its probes' step times: each probe's read rate and the fitted MBU and
    per-layer time (only the rates where the fit failed; none without ``decode``: probes not read from
    memory); with ``prefill`` (per probe, seconds per PREFILL_TOKENS), each probe's prefill FLOP/s (the
    estimator's prefill FLOPs over the time)."""
    from aipc.estimate.compute import prefill_flops_decoder

    table, widths = {}, _by_width(probes)
    for k, (width, (*shape, layers)) in enumerate(widths.items()):
        shape, s = tuple(shape), secs[k]
        if prefill:
            table[f"prefill:{fmt}@{width}"] = [[n, prefill_flops_decoder(_model(shape, layers), n, 1) / t]
                                                for n, t in zip(PREFILL_TOKENS, prefill[k])]
            say(f"{fmt}, width {width} prefill: " + ", ".join(f"{f / 1e9:.0f} GFLOP/s at {n}"
                                                             for n, f in table[f"prefill:{fmt}@{width}"]))
        if decode:
            b = probe_bytes(shape, layers, fmt)
            table[f"read:{fmt}@{width}"] = [[1, b / s]]
            say(f"{fmt}, {layers} layers of width {width}: {s * 1e3:.2f} ms per step, {b / s / 1e9:.1f} GB/s")
    if decode:
        table.update(_fit_records(fmt, table, widths, bandwidth, say))
    return table


def _by_width(probes: list[tuple[tuple, int]]) -> dict[str, list[int]]:
    """{layer width: [hidden, FFN, query heads, KV heads, layers]} of the probes (the record's "probes")."""
    from aipc.estimate.compute import layer_width

    return {str(round(layer_width(_model(s, n)))): [*s, n] for s, n in probes}


def _fit_records(fmt: str, table: dict, probes: dict[str, list[int]], bandwidth: float, say) -> dict:
    """``mbu:<fmt>`` and ``layer_us:<fmt>`` fitted from the table's ``read:<fmt>@<width>`` rates of the probes
    ({} where the fit fails or a probe's rate is missing)."""
    steps = []
    for width, (*shape, layers) in probes.items():
        rate = table.get(f"read:{fmt}@{width}")
        if not rate:
            return {}
        b = probe_bytes(tuple(shape), layers, fmt)
        steps.append((b, layers, b / rate[0][1]))
    got = fit(steps, bandwidth) if len(steps) == 2 else None
    if not got:
        return {}
    say(f"{fmt}: MBU {got[0]:.2f} + {got[1] * 1e3:.3f} ms per layer")
    return {f"mbu:{fmt}": [[1, got[0]]], f"layer_us:{fmt}": [[1, max(got[1], LAYER_FLOOR_S) * 1e6]]}


def merged(new: dict, old: dict | None, bandwidth: float, say=lambda s: None) -> dict:
    """``new`` with each probe's best of the two records (the higher read rate and prefill FLOP/s per probe
    and format) and its MBU and per-layer time refitted from those, where ``old`` measured the same
    probes with the same OpenVINO version; else ``new`` as it is."""
    from aipc.hardware.kernels import best_points

    if not old or old.get("version") != new.get("version") or old.get("probes") != new.get("probes"):
        return new
    keep = {k: v for k, v in best_points(old["types"], new["types"]).items() if k.startswith(("read:", "prefill:"))}
    for fmt in {k.partition(":")[2].partition("@")[0] for k in keep if k.startswith("read:")}:
        keep.update(_fit_records(fmt, keep, new["probes"], bandwidth, say))
    since = old.get("best_since") or old.get("measured_at")
    return {**new, "types": keep, "best_since": since}


def measure(bandwidth: float, cache_bytes: int, formats: tuple[str, ...] = FORMATS, reps: int = 6,
            threads: int | None = None, progress: Callable[[str], None] | None = None, processes: int = 3,
            probes: dict[str, list[tuple[tuple, int]]] | None = None) -> dict | None:
    """The record aipc.hardware.kernels stores for "openvino" (None where nothing was measured; the decode
    only of formats whose probes reach READ_CACHE_MULTIPLE x ``cache_bytes``). Every format's probes take
    turns in each round: the ratios between formats, which a calibration carries a fit by, come from the same
    moments of a shared machine
    (whose memory bandwidth drifted by 1.4x within an hour here), in each of ``processes`` fresh processes
    (:func:`time_in_processes`). ``probes``: format -> [(shape, layers), (shape, layers)] instead of the
    sized WIDE and NARROW probes (tests: tiny ones)."""
    import openvino as ov

    say = progress or (lambda s: None)
    before = os.getloadavg()[0]
    plan, decode = (probes, set(probes)) if probes else _plan(formats, cache_bytes, say)
    if not plan:
        return None
    say(f"exporting {sum(map(len, plan.values()))} probes (once; cached in aipc's home)")
    folders = _folders(plan)
    say(f"timing them in {processes} processes")
    got = time_in_processes(folders, reps, threads, processes)
    secs, pre = iter(got["decode"]), iter(got["prefill"])
    table: dict[str, list[list[float]]] = {}
    for fmt, pr in plan.items():
        table.update(format_records(fmt, pr, [next(secs) for _ in pr], bandwidth, say, [next(pre) for _ in pr],
                                    decode=fmt in decode))
    if not table:
        return None
    names = "; ".join(sorted({f"{n} layers of hidden {s[0]}, FFN {s[1]}" for pr in plan.values() for s, n in pr}))
    return {"version": ov.__version__, "probes": _by_width(next(iter(plan.values()))),
            "threads": threads or os.cpu_count(),
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "load_avg": [before, os.getloadavg()[0]],
            "method": METHOD.format(ctx=DECODE_CONTEXT, probes=names, reps=reps, steps=DECODE_STEPS, procs=processes,
                                    threads=threads or "OpenVINO's default", bw=bandwidth / 1e9),
            "types": table}


def _plan(formats: tuple[str, ...], cache_bytes: int, say) -> tuple[dict[str, list[tuple[tuple, int]]], set[str]]:
    """(format -> its two probes (shape, layers), the formats whose decode is measured). Every format shares
    each probe's layer count, sized for the smallest format whose narrow probe can be read from memory within
    MAX_LAYERS; a format that cannot (a CPU with hundreds of MiB of cache) has its prefill measured on probes
    of at most MAX_LAYERS and its decode left to the default (and said)."""
    sizes = {f: {s: probe_layers(s, cache_bytes, f) for s in (WIDE, NARROW)} for f in formats}
    ok = {f for f in formats if all(sizes[f].values())}
    for f in formats:
        if f not in ok:
            say(f"{f}: decode not measured (its narrow probe would need more than {MAX_LAYERS[NARROW]} layers to "
                f"read {READ_CACHE_MULTIPLE:g}x the {cache_bytes / 2**20:.0f} MiB cache); its decode keeps the default")
    sized = [f for f in formats if f in ok] or list(formats)
    layers = {s: max(sizes[f][s] or MAX_LAYERS[s] for f in sized) for s in (WIDE, NARROW)}
    return {f: [(s, layers[s]) for s in (WIDE, NARROW)] for f in formats}, ok


def measure_and_save(fingerprint: str, bandwidth: float, cache_bytes: int, *, replace: bool = False,
                     **kw) -> dict | None:
    """Measure and store for this machine: each probe keeps the best of this and the stored measurement
    (:func:`merged`; peaks are maxima, and a process can run in the slower of two states) unless
    ``replace``; the stored record, or None where nothing could be measured."""
    from aipc.hardware import kernels as K

    rec = measure(bandwidth, cache_bytes, **kw)
    if rec is None:
        return None
    if not replace:
        rec = merged(rec, K.load(fingerprint).get("openvino"), bandwidth, kw.get("progress") or (lambda s: None))
    K.save(fingerprint, "openvino", rec, replace=True)
    return K.load(fingerprint).get("openvino")


if __name__ == "__main__":
    import sys

    sys.exit(_child(sys.argv[1:]))
