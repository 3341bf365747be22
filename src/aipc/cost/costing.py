"""Monthly cost of one candidate for the team's demand: pure arithmetic over the per-device performance.

    cloud:  rent   = Σ paid device-hours · price per device-hour
    owned:  total  = (capex·(1 − r)/months + ops) · N · share + busy device-hours · kW · PUE · $/kWh

Paid device-hours (cloud): a training job rents ceil(n/k)·k devices for its duration (k devices per
instance); a service rents its replicas for the hours its requests keep them busy — requests per
month / capacity at the smallest batch that carries the average load — and with ``always_on`` at
least one replica every hour of the month. Replicas at peak: ceil(peak / capacity at the smallest
batch that carries the peak, or the largest batch within the latency targets). Owned devices (N): enough for the largest
job, for all serving replicas at peak, and for the busy hours (N ≥ busy / 730). ``share`` is 1 when
utilization is 'auto' (the devices serve only this demand), else busy / (N · 730 · utilization):
the demand's share of devices that also do other work. A :class:`Scenario` scales demand and prices
for the sensitivity table without re-running the estimator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from aipc.cost import tco
from aipc.cost.candidates import Candidate
from aipc.cost.defaults import HOURS_PER_MONTH
from aipc.cost.needs import Needs, TrainJob
from aipc.cost.perf import JobPerf, ServePerf, batch_for

INF = math.inf


@dataclass(frozen=True)
class Scenario:
    """Multipliers for the sensitivity table (1.0 = the needs file as written)."""

    demand: float = 1.0            # jobs per month and requests per day
    cloud_price: float = 1.0
    purchase_price: float = 1.0
    electricity: float = 1.0
    horizon_months: float | None = None  # None: the needs file's


@dataclass(kw_only=True)
class WorkloadCost:
    name: str
    task: str                       # train | infer
    model: str
    feasible: bool
    reason: str = ""
    source: str = "estimated"       # where the speed came from
    devices: int = 0                # train: devices per job; infer: devices per replica
    replicas: int = 0               # infer: replicas at peak
    batch: int = 0                  # infer: sequences per replica
    grad_ckpt: bool = False
    time_per_job_s: float | None = None
    tokens_per_s: float | None = None          # train: all devices of a job; infer: output tokens/s of a replica
    ttft_s: float | None = None
    tpot_s: float | None = None
    requests_per_s_per_replica: float | None = None
    busy_device_hours_per_month: float = 0.0   # device-hours of work
    paid_device_hours_per_month: float = 0.0   # cloud: billed (whole instances, always-on floor)
    tokens_per_month: float = 0.0              # train: trained tokens; infer: prompt + output tokens
    output_tokens_per_month: float = 0.0
    cost_per_month: float = 0.0
    cost_per_mtok: float | None = None
    kwh_per_month: float | None = None
    kwh_per_mtok: float | None = None


@dataclass(kw_only=True)
class Core:
    """The numbers one candidate costs; decide adds labels, break-evens and reasons."""

    feasible: bool
    reasons: list[str] = field(default_factory=list)
    miss: float = 1.0
    devices: int = 0
    capex: float = 0.0
    capex_per_month: float = 0.0
    ops_per_month: float = 0.0
    energy_per_month: float = 0.0
    rent_per_month: float = 0.0
    total_per_month: float = INF
    busy_hours: float = 0.0          # device-hours of work per month
    work_paid_hours: float = 0.0     # cloud: billed device-hours for the work alone (no always-on floor)
    utilization: float | None = None
    energy_per_hour: float = 0.0     # one busy device-hour
    horizon_months: float = 0.0
    workloads: list[WorkloadCost] = field(default_factory=list)


def _train_cost(job: TrainJob, p: JobPerf, c: Candidate, sc: Scenario) -> tuple[WorkloadCost, float, int]:
    jobs = job.jobs_per_month * sc.demand
    hours = jobs * p.job_s / 3600
    paid = tco.rented_device_hours(p.devices, c.devices_per_instance, hours) if c.kind == "cloud" else 0.0
    w = WorkloadCost(name=job.name, task="train", model=job.model, feasible=True, source=p.source, devices=p.devices,
                     grad_ckpt=p.grad_ckpt, time_per_job_s=p.job_s, tokens_per_s=p.tokens_per_s,
                     busy_device_hours_per_month=hours * p.devices, paid_device_hours_per_month=paid,
                     tokens_per_month=job.train_tokens * jobs)
    return w, paid, p.devices


def _serve_cost(inf, p: ServePerf, c: Candidate, sc: Scenario, always_on: bool) -> tuple[WorkloadCost, float, int]:
    reqs = inf.requests_per_month * sc.demand
    b_peak, rps_peak = batch_for(p.curve, inf.peak_requests_per_s * sc.demand)
    replicas = tco.replicas_needed(inf.peak_requests_per_s * sc.demand, rps_peak)
    # A replica with a queue is busy all the time (continuous batching grows the batch to meet the
    # load); below its batch-1 capacity it is busy load/capacity of the time. So busy replica-hours
    # = hours * min(replicas, average load / batch-1 capacity): monotone in demand, unlike timing
    # each average load at the smallest batch that carries it (which dips where the batch steps up).
    avg_rate = reqs / (HOURS_PER_MONTH * 3600)
    rps_1 = p.curve[0][1] if p.curve else 0.0
    replica_hours = HOURS_PER_MONTH * min(replicas, avg_rate / rps_1) if rps_1 > 0 else 0.0
    paid, work = 0.0, 0.0
    if c.kind == "cloud":
        per_replica = math.ceil(p.devices_per_replica / c.devices_per_instance) * c.devices_per_instance
        work = replica_hours * per_replica
        paid = max(replica_hours, HOURS_PER_MONTH if always_on else 0.0) * per_replica
    w = WorkloadCost(name=inf.name, task="infer", model=inf.model, feasible=True, source=p.source,
                     devices=p.devices_per_replica, replicas=replicas, batch=b_peak, ttft_s=p.ttft_s, tpot_s=p.tpot_s,
                     tokens_per_s=rps_peak * inf.output_tokens, requests_per_s_per_replica=rps_peak,
                     busy_device_hours_per_month=replica_hours * p.devices_per_replica, paid_device_hours_per_month=paid,
                     tokens_per_month=reqs * (inf.prompt_tokens + inf.output_tokens),
                     output_tokens_per_month=reqs * inf.output_tokens)
    return w, work, replicas * p.devices_per_replica


def cost_candidate(c: Candidate, perfs: list[JobPerf | ServePerf], needs: Needs, sc: Scenario = Scenario()) -> Core:
    """The monthly cost of meeting ``needs`` with candidate ``c`` (perfs: one per job, then per service)."""
    a = needs.assumptions
    horizon = sc.horizon_months or a.horizon_months
    core = Core(feasible=True, horizon_months=horizon)
    if c.kind == "cloud" and a.on_prem_required:
        core.feasible, core.miss = False, INF
        core.reasons.append("data must stay on premises (on_prem_required = true)")
    works = [*needs.jobs, *needs.inference]
    train_devices, serve_devices, work_paid = 0, 0, 0.0
    for wl, p in zip(works, perfs):
        is_train = isinstance(wl, TrainJob)
        if not p.feasible:
            core.feasible = False
            core.miss = max(core.miss, p.miss)
            core.reasons.append(f"{wl.name}: {p.reason}")
            core.workloads.append(WorkloadCost(name=wl.name, task="train" if is_train else "infer", model=wl.model,
                                               feasible=False, reason=p.reason, source=p.source))
            continue
        if is_train:
            w, wp, n = _train_cost(wl, p, c, sc)
            train_devices = max(train_devices, n)
        else:
            w, wp, n = _serve_cost(wl, p, c, sc, a.always_on)
            serve_devices += n
        work_paid += wp
        core.workloads.append(w)
    if not core.feasible:
        return core
    busy = sum(w.busy_device_hours_per_month for w in core.workloads)
    e_rate = tco.energy_per_hour(c.device.power_w, c.pue, a.electricity_per_kwh * sc.electricity)
    core.busy_hours, core.work_paid_hours, core.energy_per_hour = busy, work_paid, e_rate
    if c.kind == "cloud":
        rate = c.per_hour * sc.cloud_price
        for w in core.workloads:
            w.cost_per_month = w.paid_device_hours_per_month * rate
        core.devices = max(train_devices, serve_devices)
        core.rent_per_month = sum(w.cost_per_month for w in core.workloads)
        core.total_per_month = core.rent_per_month
    else:
        n = max(train_devices, serve_devices, math.ceil(busy / HOURS_PER_MONTH - 1e-9), 1)
        if c.max_devices is not None and n > c.max_devices:
            core.feasible, core.miss = False, n / c.max_devices
            core.reasons.append(f"needs {n} devices at once; this machine has {c.max_devices}")
            return core
        core.devices = n
        core.capex = n * c.capex_per_device * sc.purchase_price
        core.capex_per_month = tco.capex_per_month(core.capex, a.residual_fraction, horizon)
        core.ops_per_month = n * a.ops_per_month if c.kind == "buy" else 0.0
        u = busy / (n * HOURS_PER_MONTH)
        share = 1.0
        if a.utilization is not None and a.utilization > u:
            share, u = u / a.utilization, a.utilization
        core.utilization = u
        fixed = (core.capex_per_month + core.ops_per_month) * share
        core.energy_per_month = busy * e_rate
        for w in core.workloads:
            frac = w.busy_device_hours_per_month / busy if busy > 0 else 0.0
            w.cost_per_month = fixed * frac + w.busy_device_hours_per_month * e_rate
        core.capex_per_month *= share
        core.ops_per_month *= share
        core.total_per_month = fixed + core.energy_per_month
    for w in core.workloads:
        w.cost_per_mtok = tco.per_million(w.cost_per_month, w.tokens_per_month)
        w.kwh_per_month = tco.kwh(c.device.power_w, c.pue, w.busy_device_hours_per_month)
        w.kwh_per_mtok = None if w.kwh_per_month is None else tco.per_million(w.kwh_per_month, w.tokens_per_month)
    return core
