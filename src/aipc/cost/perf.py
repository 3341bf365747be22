"""Performance of each workload on each device kind: fit, devices needed, time per job, serving capacity.

The estimator (``aipc.estimate.estimate``) gives memory and time; a measured run of the same device,
model and shape (results database, :mod:`aipc.cost.throughput`) replaces the estimated speed, and
the result says which it used. Independent of prices: computed once per (device, workload) and
shared by every candidate of that device (buying it and each cloud offer of it).

Training job: fits on one device (with activation checkpointing if ``grad_ckpt = "auto"`` and it
would not fit without), else the fewest devices with ZeRO-3; then, if the job misses its deadline,
twice the devices (data parallel) until it meets it or reaches ``max_devices``.

Serving: TTFT and TPOT of a lone request (batch 1) must meet the targets; then the batch doubles
while the targets still hold and one replica cannot yet carry the peak, up to ``max_batch``. The
replica's capacity is batch / request time (Little's law); decide sizes replicas from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from aipc.cost.needs import InferenceDemand, TrainJob
from aipc.cost.throughput import MeasuredIndex
from aipc.estimate import estimate
from aipc.estimate.types import Estimate
from aipc.hardware.spec import DeviceSpec
from aipc.models.spec import ModelSpec
from aipc.render import gb, seconds

INF = math.inf


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


def _source(e: Estimate, measured: int) -> str:
    if measured:
        return f"measured ({measured} run{'s' if measured != 1 else ''})"
    return "estimated (calibrated)" if e.efficiency.source.startswith("calibrated") else "estimated"


def _why_no_speed(e: Estimate, d: DeviceSpec) -> str:
    for w in e.warnings:
        if "unknown" in w or "not estimated" in w:
            return f"no speed figure for {d.label}: {w}"
    return f"no speed figure for {d.label} (run 'aipc hw' on it, or 'aipc bench')"


def _misfit(e: Estimate, d: DeviceSpec, max_devices: int) -> str:
    n = e.devices_needed
    more = f"even {max_devices} devices are not enough" if n is None else f"needs {n} devices, more than max_devices = {max_devices}"
    return f"does not fit: needs {gb(e.memory.peak_bytes)} on one {d.label} ({gb(e.capacity_bytes)} usable); {more}"


def job_perf(job: TrainJob, d: DeviceSpec, m: ModelSpec, max_devices: int, idx: MeasuredIndex) -> JobPerf:
    """Fit, devices and time per job for one training job on one device kind."""
    options = [False, True] if job.grad_ckpt is None else [job.grad_ckpt]
    e = None
    for gc in options:
        e = estimate(job.workload(grad_ckpt=gc), d, model=m)
        if e.fits:
            break
    assert e is not None
    gc = bool(e.workload.get("grad_ckpt"))
    n = 1
    if not e.fits:
        n = e.devices_needed or 0
        if not n or n > max_devices:
            return JobPerf(feasible=False, reason=_misfit(e, d, max_devices), peak_bytes=e.memory.peak_bytes,
                           miss=(n / max_devices) if n else INF)
        e = estimate(job.workload(grad_ckpt=gc, num_devices=n, sharding="zero3"), d, model=m)
    shape = {k: e.workload.get(k) for k in ("method", "batch_size", "seq_len", "weight_dtype")}
    meas = idx.lookup(d.name, m.name, "train", shape) if n == 1 else None
    tps = meas.value if meas else e.time.train_tokens_per_s
    if not tps:
        return JobPerf(feasible=False, reason=_why_no_speed(e, d), miss=INF, devices=n, grad_ckpt=gc)
    job_s = job.train_tokens / tps
    deadline_s = None if job.deadline_hours is None else job.deadline_hours * 3600
    sharding = "zero3" if n > 1 else "ddp"
    while deadline_s is not None and job_s > deadline_s and n * 2 <= max_devices:
        e2 = estimate(job.workload(grad_ckpt=gc, num_devices=n * 2, sharding=sharding), d, model=m)
        if not e2.fits or not e2.time.train_tokens_per_s:
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


def _serve_est(inf: InferenceDemand, d: DeviceSpec, m: ModelSpec, b: int, n: int) -> Estimate:
    kw = {"num_devices": n, "sharding": "tp"} if n > 1 else {}
    return estimate(inf.workload(batch_size=b, **kw), d, model=m)


def serve_perf(inf: InferenceDemand, d: DeviceSpec, m: ModelSpec, max_devices: int, max_batch: int,
               idx: MeasuredIndex) -> ServePerf:
    """Latency at batch 1, then the serving batch and the capacity of one replica."""
    e = _serve_est(inf, d, m, 1, 1)
    n = 1
    if not e.fits:
        n = e.devices_needed or 0
        if not n or n > max_devices:
            return ServePerf(feasible=False, reason=_misfit(e, d, max_devices), peak_bytes=e.memory.peak_bytes,
                             miss=(n / max_devices) if n else INF)
        e = _serve_est(inf, d, m, 1, n)
    t = e.time
    if not t.ttft_s or not t.tpot_s:
        return ServePerf(feasible=False, reason=_why_no_speed(e, d), miss=INF, devices_per_replica=n)
    # measured latency at batch 1 (same device, model, shape) replaces the estimate; larger batches
    # keep the measured/estimated ratio
    wl = e.workload
    f_ttft = f_tpot = 1.0
    runs = 0
    if n == 1:
        mp = idx.lookup(d.name, m.name, "prefill", {"batch_size": 1, "prompt_tokens": wl.get("prompt_tokens"),
                                                    "weight_dtype": wl.get("weight_dtype")})
        md = idx.lookup(d.name, m.name, "decode", {"batch_size": 1, "weight_dtype": wl.get("weight_dtype")})
        if mp:
            f_ttft, runs = mp.value / t.ttft_s, runs + mp.runs
        if md:
            f_tpot, runs = md.value / t.tpot_s, runs + md.runs
    ttft, tpot = t.ttft_s * f_ttft, t.tpot_s * f_tpot
    src = _source(e, runs)
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

    b, best, best_req = 1, e, req_s(t)
    while b / best_req < inf.peak_requests_per_s and b * 2 <= max_batch:
        e2 = _serve_est(inf, d, m, b * 2, n)
        t2 = e2.time
        if (not e2.fits or not t2.ttft_s or not t2.tpot_s or t2.ttft_s * f_ttft > inf.ttft_s
                or t2.tpot_s * f_tpot > inf.tpot_s):
            break
        b, best, best_req = b * 2, e2, req_s(t2)
    return ServePerf(feasible=True, miss=worst[0], devices_per_replica=n, batch=b, ttft_s=ttft, tpot_s=tpot,
                     request_s=best_req, requests_per_s=b / best_req, peak_bytes=best.memory.peak_bytes, source=src)
