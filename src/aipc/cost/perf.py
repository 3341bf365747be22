"""Performance of each workload on each device kind: fit, devices needed, time per job, serving capacity.

The estimator (``aipc.estimate.estimate``) gives memory and time; a measured run of the same device,
model and shape (results database, :mod:`aipc.cost.throughput`) replaces the estimated speed, and
the result says which it used. Independent of prices: computed once per (device, workload) and
shared by every candidate of that device (buying it and each cloud offer of it).

Training job: fits on one device (with activation checkpointing if ``grad_ckpt = "auto"`` and it
would not fit without), else the fewest devices with ZeRO-3; then, if the job misses its deadline,
twice the devices (data parallel) until it meets it or reaches ``max_devices``.

Serving: TTFT and TPOT of a lone request (batch 1) must meet the targets; then the batch doubles
while the targets still hold, up to ``max_batch`` or until one replica carries 10x the peak. Each
batch's capacity is batch / request time (Little's law); this curve is what costing sizes replicas
(at the peak) and busy hours (at the average load) from.

Speed: a shape that does not fit is rejected with the estimator's memory model alone
(``aipc.estimate.fit``: ``peak_bytes``, ``devices_needed``, ``spread``); the full ``estimate``
(times, efficiency) runs only for shapes that fit, so no time goes into fix suggestions decide does
not show.

What comes from ``aipc.estimate.fit`` and what stays here: the memory side — peak bytes per device,
the fewest devices that hold a workload, and how it is sharded over them — is fit's, called as it
is. The two doubling loops here are not fit's ``backward_search`` and stay: fit finds the largest
batch or context that *fits in memory* by bisection over every integer, and needs no times; these
loops stop on *time* (a job's deadline, the serving latency targets, capacity that stops growing),
run the full estimate at each step, keep powers of two only (the data-parallel replicas and serving
batches decide sizes and costs with), and record the capacity curve at every step for costing. The
deadline loop adds data-parallel devices ("ddp"; ZeRO-3 only where one device cannot hold the job),
which fit never counts: fit's devices exist to hold the memory, these to finish in time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from aipc.cost.needs import InferenceDemand, TrainJob
from aipc.cost.throughput import MeasuredIndex
from aipc.estimate import estimate
from aipc.estimate.fit import devices_needed, peak_bytes, spread
from aipc.estimate.types import Estimate
from aipc.hardware.spec import DeviceSpec
from aipc.models.spec import ModelSpec
from aipc.render import gb, seconds

INF = math.inf
HEADROOM = 10.0  # size the batch curve for up to 10x the peak (the sensitivity scan's largest demand)


@dataclass(frozen=True, kw_only=True)
class JobPerf:
    feasible: bool
    reason: str = ""              # why not, one line
    miss: float = INF             # how far from feasible (need / limit; 1 = just feasible)
    devices: int = 0              # devices one job spans
    grad_ckpt: bool = False
    tokens_per_s: float = 0.0     # all devices together
    job_s: float = INF
    peak_bytes: int = 0           # per device
    source: str = "estimated"     # "measured (3 runs)" | "estimated" | "estimated (calibrated)"


@dataclass(frozen=True, kw_only=True)
class ServePerf:
    feasible: bool
    reason: str = ""
    miss: float = INF
    devices_per_replica: int = 0
    batch: int = 0                # sequences served together per replica
    ttft_s: float = INF           # a lone request (batch 1)
    tpot_s: float = INF
    request_s: float = INF        # at the serving batch: prefill + all output tokens
    requests_per_s: float = 0.0   # one replica at the serving batch
    peak_bytes: int = 0
    source: str = "estimated"
    curve: tuple[tuple[int, float], ...] = ()  # (batch, requests/s of one replica) within the latency targets


def _source(e: Estimate, measured: int) -> str:
    if measured:
        return f"measured ({measured} run{'s' if measured != 1 else ''})"
    return "estimated (calibrated)" if e.efficiency.source.startswith("calibrated") else "estimated"


def _why_no_speed(e: Estimate, d: DeviceSpec) -> str:
    for w in e.warnings:
        if "unknown" in w or "not estimated" in w:
            return f"no speed figure for {d.label}: {w}"
    return f"no speed figure for {d.label} (run 'aipc hw' on it, or 'aipc bench')"


def _misfit(peak: int, n: int | None, d: DeviceSpec, max_devices: int) -> str:
    more = ("no number of them holds it (what does not shard stays too big)" if n is None
            else f"needs {n} devices, more than max_devices = {max_devices}")
    return f"does not fit: needs {gb(peak)} on one {d.label} ({gb(d.usable_memory_bytes)} usable); {more}"


def _spread_to_fit(m: ModelSpec, w, d: DeviceSpec, peak: int, max_devices: int):
    """(devices, workload spread over them, None) when the workload fits one device or the fewest
    devices that hold it (estimate.fit), else (0, w, {reason, miss}) for the infeasible answer."""
    if peak <= d.usable_memory_bytes:
        return 1, w, None
    n = devices_needed(m, w, d) or 0
    if not n or n > max_devices:
        return 0, w, {"reason": _misfit(peak, n or None, d, max_devices), "miss": (n / max_devices) if n else INF}
    return n, spread(w, n), None


def job_perf(job: TrainJob, d: DeviceSpec, m: ModelSpec, max_devices: int, idx: MeasuredIndex) -> JobPerf:
    """Fit, devices and time per job for one training job on one device kind."""
    cap = d.usable_memory_bytes
    options = [False, True] if job.grad_ckpt is None else [job.grad_ckpt]
    w = peak = None
    for gc in options:
        w = job.workload(grad_ckpt=gc)
        peak = peak_bytes(m, w, d)
        if peak <= cap:
            break
    n, w, misfit = _spread_to_fit(m, w, d, peak, max_devices)
    if misfit:
        return JobPerf(feasible=False, peak_bytes=peak, **misfit)
    gc = w.grad_ckpt
    e = estimate(w, d, model=m)
    shape = {k: e.workload.get(k) for k in ("method", "batch_size", "seq_len", "weight_dtype")}
    meas = idx.lookup(d.name, m.name, "train", shape) if n == 1 else None
    tps = meas.value if meas else e.time.train_tokens_per_s
    if not tps:
        return JobPerf(feasible=False, reason=_why_no_speed(e, d), miss=INF, devices=n, grad_ckpt=gc)
    job_s = job.train_tokens / tps
    deadline_s = None if job.deadline_hours is None else job.deadline_hours * 3600
    sharding = "zero3" if n > 1 else "ddp"
    while deadline_s is not None and job_s > deadline_s and n * 2 <= max_devices:
        w2 = w.replace(num_devices=n * 2, sharding=sharding)
        if peak_bytes(m, w2, d) > cap:
            break
        e2 = estimate(w2, d, model=m)
        if not e2.time.train_tokens_per_s:
            break
        scale = (meas.value / e.time.train_tokens_per_s) if meas and e.time.train_tokens_per_s else 1.0
        n, e = n * 2, e2
        tps = e2.time.train_tokens_per_s * scale
        job_s = job.train_tokens / tps
    src = _source(e, meas.runs if meas else 0)
    common = dict(devices=n, grad_ckpt=gc, tokens_per_s=tps, job_s=job_s, peak_bytes=e.memory.peak_bytes, source=src)
    if deadline_s is not None and job_s > deadline_s:
        return JobPerf(feasible=False, miss=job_s / deadline_s, **common,
                       reason=f"misses the deadline: a job takes {seconds(job_s)} on {n} x {d.label}, "
                              f"deadline {seconds(deadline_s)}")
    return JobPerf(feasible=True, miss=1.0 if deadline_s is None else job_s / deadline_s, **common)


def serve_perf(inf: InferenceDemand, d: DeviceSpec, m: ModelSpec, max_devices: int, max_batch: int,
               idx: MeasuredIndex) -> ServePerf:
    """Latency at batch 1, then the serving batch and the capacity of one replica."""
    cap = d.usable_memory_bytes
    w = inf.workload(batch_size=1)
    peak = peak_bytes(m, w, d)
    n, w, misfit = _spread_to_fit(m, w, d, peak, max_devices)
    if misfit:
        return ServePerf(feasible=False, peak_bytes=peak, **misfit)
    e = estimate(w, d, model=m)
    t = e.time
    # a measured lone request (same device, model, shape) replaces the estimate; larger batches keep
    # the measured/estimated ratio (without an estimate, only batch 1 is known)
    wl = e.workload
    mp = md = None
    if n == 1:
        mp = idx.lookup(d.name, m.name, "prefill", {"batch_size": 1, "prompt_tokens": wl.get("prompt_tokens"),
                                                    "weight_dtype": wl.get("weight_dtype")})
        md = idx.lookup(d.name, m.name, "decode", {"batch_size": 1, "weight_dtype": wl.get("weight_dtype")})
    ttft = mp.value if mp else t.ttft_s
    tpot = md.value if md else t.tpot_s
    if not ttft or not tpot:
        return ServePerf(feasible=False, reason=_why_no_speed(e, d), miss=INF, devices_per_replica=n)
    f_ttft = ttft / t.ttft_s if t.ttft_s else None
    f_tpot = tpot / t.tpot_s if t.tpot_s else None
    src = _source(e, (mp.runs if mp else 0) + (md.runs if md else 0))
    misses = [(ttft / inf.ttft_s, f"TTFT {seconds(ttft)} > target {seconds(inf.ttft_s)}"),
              (tpot / inf.tpot_s, f"TPOT {seconds(tpot)} > target {seconds(inf.tpot_s)}")]
    worst = max(misses)
    if worst[0] > 1.0:
        return ServePerf(feasible=False, miss=worst[0], devices_per_replica=n, batch=1, ttft_s=ttft, tpot_s=tpot,
                         peak_bytes=e.memory.peak_bytes, source=src,
                         reason=f"too slow for the latency targets on {n} x {d.label}: "
                                + "; ".join(msg for r, msg in misses if r > 1.0))

    def req_s(tm) -> float:
        return tm.ttft_s * f_ttft + max(inf.output_tokens - 1, 0) * tm.tpot_s * f_tpot

    b, best = 1, e
    curve = [(1, 1 / (ttft + max(inf.output_tokens - 1, 0) * tpot))]
    want = inf.peak_requests_per_s * HEADROOM
    while curve[-1][1] < want and b * 2 <= max_batch and f_ttft and f_tpot:
        w2 = w.replace(batch_size=b * 2)
        if peak_bytes(m, w2, d) > cap:
            break
        e2 = estimate(w2, d, model=m)
        t2 = e2.time
        if not t2.ttft_s or not t2.tpot_s or t2.ttft_s * f_ttft > inf.ttft_s or t2.tpot_s * f_tpot > inf.tpot_s:
            break
        b, best = b * 2, e2
        if b / req_s(t2) <= curve[-1][1]:
            break  # a larger batch no longer adds capacity
        curve.append((b, b / req_s(t2)))
    bp, rp = batch_for(tuple(curve), inf.peak_requests_per_s)
    return ServePerf(feasible=True, miss=worst[0], devices_per_replica=n, batch=bp, ttft_s=ttft, tpot_s=tpot,
                     request_s=bp / rp, requests_per_s=rp, peak_bytes=best.memory.peak_bytes, source=src,
                     curve=tuple(curve))


def batch_for(curve: tuple[tuple[int, float], ...], rate: float) -> tuple[int, float]:
    """(batch, requests/s of one replica) for a load of ``rate`` requests/s: the smallest batch whose
    capacity carries it, else the largest batch (more replicas then share the load)."""
    for b, rps in curve:
        if rps >= rate:
            return b, rps
    return curve[-1]
