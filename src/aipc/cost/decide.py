"""decide: buy, use what you own, or rent — for a team's actual jobs and traffic.

    from aipc.cost import decide, load_needs
    d = decide(load_needs("needs.toml"))
    d.recommendation, d.picks["cheapest"], d.candidates[0].cost_per_month

For every candidate (:mod:`aipc.cost.candidates`) the performance of every workload comes from
:mod:`aipc.cost.perf` (measured where the results database has it, else the estimator), the
monthly cost from :mod:`aipc.cost.costing`, break-evens from :mod:`aipc.cost.tco`, and what would
flip the answer from :mod:`aipc.cost.sensitivity`. Import-light: never imports torch.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

from aipc.cost import defaults as D
from aipc.cost import tco
from aipc.cost.candidates import Candidate, build_candidates
from aipc.cost.costing import Core, cost_candidate
from aipc.cost.needs import Needs, load_needs
from aipc.cost.perf import job_perf, serve_perf
from aipc.cost.result import Assumption, BreakEven, CandidateResult, Decision
from aipc.cost.throughput import MeasuredIndex, load_index
from aipc.errors import AipcError
from aipc.hardware.spec import DeviceSpec


def _perfs(needs: Needs, cands: list[Candidate], idx: MeasuredIndex) -> dict[str, list]:
    """Per device: one performance per workload (jobs, then services), shared by its candidates."""
    from aipc.estimate import resolve_model

    models = {w.model: resolve_model(w.model) for w in (*needs.jobs, *needs.inference)}
    a = needs.assumptions
    out: dict[str, list] = {}
    for c in cands:
        d = c.device
        if d.name in out:
            continue
        most = min(a.max_devices, c.max_devices) if c.max_devices else a.max_devices  # this machine: what it has
        out[d.name] = [job_perf(j, d, models[j.model], most, idx) for j in needs.jobs] + \
                      [serve_perf(i, d, models[i.model], most, a.max_batch, idx) for i in needs.inference]
    return out


def _source(core: Core) -> str:
    srcs = sorted({w.source for w in core.workloads if w.feasible})
    if not srcs:
        return "-"
    return srcs[0] if len(srcs) == 1 else "mixed: " + ", ".join(srcs)


def _sum_cost(core: Core, task: str) -> tuple[float, float, float | None]:
    ws = [w for w in core.workloads if w.task == task and w.feasible]
    kwh = [w.kwh_per_month for w in ws]
    return (sum(w.cost_per_month for w in ws), sum(w.tokens_per_month for w in ws),
            None if any(k is None for k in kwh) or not ws else sum(kwh))


def _result(c: Candidate, core: Core, needs: Needs) -> CandidateResult:
    a = needs.assumptions
    ct, tt, kt = _sum_cost(core, "train")
    ci, ti, ki = _sum_cost(core, "infer")
    amort = None
    if c.kind != "cloud" and core.feasible and core.utilization:
        ops = a.ops_per_month if c.kind == "buy" else 0.0
        amort = tco.amortized_per_hour(c.capex_per_device, a.residual_fraction, core.horizon_months,
                                       core.utilization, core.energy_per_hour, ops)
    kwh_total = None if kt is None and tt else (None if ki is None and ti else (kt or 0) + (ki or 0))
    return CandidateResult(
        id=c.id, kind=c.kind, device=c.device.name, label=c.label, provider=c.provider, feasible=core.feasible,
        reasons=core.reasons, miss=core.miss if math.isfinite(core.miss) else None, devices=core.devices,
        price_source=c.price_source, capex=core.capex, per_hour=c.per_hour if c.kind == "cloud" else None,
        capex_per_month=core.capex_per_month, ops_per_month=core.ops_per_month,
        energy_per_month=core.energy_per_month, rent_per_month=core.rent_per_month,
        cost_per_month=core.total_per_month if core.feasible else None, utilization=core.utilization,
        amortized_per_hour=amort, busy_device_hours_per_month=core.busy_hours,
        cost_per_mtok_train=tco.per_million(ct, tt) if core.feasible else None,
        cost_per_mtok_infer=tco.per_million(ci, ti) if core.feasible else None,
        kwh_per_month=kwh_total if core.feasible else None,
        kwh_per_mtok_train=None if kt is None else tco.per_million(kt, tt),
        kwh_per_mtok_infer=None if ki is None else tco.per_million(ki, ti),
        throughput_source=_source(core), workloads=core.workloads)


def _break_evens(c: Candidate, core: Core, clouds: list[tuple[Candidate, Core]], needs: Needs) -> list[BreakEven]:
    a = needs.assumptions
    out = []
    for cc, ccore in clouds:
        months = tco.payback_months(core.capex, ccore.total_per_month, core.energy_per_month + core.ops_per_month)
        k = ccore.work_paid_hours / core.busy_hours if core.busy_hours > 0 else 1.0
        u = tco.break_even_utilization(c.capex_per_device, a.residual_fraction, a.horizon_months, core.energy_per_hour,
                                       cc.per_hour, a.ops_per_month if c.kind == "buy" else 0.0, k)
        billed = sum(w.paid_device_hours_per_month for w in ccore.workloads)
        out.append(BreakEven(vs=cc.id, vs_label=cc.label, cloud_per_month=ccore.total_per_month,
                             cloud_billed_device_hours=billed, cloud_work_device_hours=ccore.work_paid_hours,
                             months=months if math.isfinite(months) else None,
                             utilization=u if u <= 1.0 else None))
    return sorted(out, key=lambda b: b.cloud_per_month)


def _speed_scores(results: list[CandidateResult], needs: Needs) -> dict[str, float]:
    """Geometric mean over workloads of (time / best time): job time for training, a lone request's
    latency (TTFT + (output − 1)·TPOT) for serving. 1.0 = fastest at everything."""
    outs = {i.name: i.output_tokens for i in needs.inference}

    def t(w) -> float:
        return w.time_per_job_s if w.task == "train" else w.ttft_s + max(outs[w.name] - 1, 0) * w.tpot_s

    feas = [r for r in results if r.feasible]
    if not feas:
        return {}
    n = len(feas[0].workloads)
    best = [min(t(r.workloads[i]) for r in feas) for i in range(n)]
    return {r.id: math.exp(sum(math.log(t(r.workloads[i]) / best[i]) for i in range(n)) / n) for r in feas}


def _assumptions(needs: Needs) -> list[Assumption]:
    a = needs.assumptions
    out = []
    for k, dflt in D.ASSUMPTIONS.items():
        v = getattr(a, k)
        if k == "utilization" and v is None:
            v = "auto"
        given = k in needs.given
        out.append(Assumption(field=k, value=v, given=given, meaning=dflt.meaning,
                              source="needs file or flag" if given else dflt.source,
                              as_of="-" if given else dflt.as_of))
    return out


def decide(needs: Needs | str | Path | dict, *, catalog: dict[str, DeviceSpec] | None = None,
           local: list[DeviceSpec] | None = None, measured: MeasuredIndex | None = None,
           sensitivity: bool = True) -> Decision:
    """The decision for ``needs`` over every candidate (catalog devices bought, this machine, cloud offers)."""
    if not isinstance(needs, Needs):
        needs = load_needs(needs)
    if catalog is None:
        from aipc.hardware.catalog import load_catalog

        catalog = load_catalog()
    if local is None:
        from aipc.hardware.local import local_devices  # torch-free: the newest cached aipc hw profile

        local = local_devices() if needs.owned else []
    idx = measured if measured is not None else load_index()
    cands = build_candidates(needs, catalog, local)
    if not cands:
        raise AipcError("no candidates to compare: [candidates] filters (devices, exclude, buy, owned, cloud) "
                        "leave nothing; widen them")
    perf = _perfs(needs, cands, idx)
    per_cand = [perf[c.device.name] for c in cands]
    cores = [cost_candidate(c, p, needs) for c, p in zip(cands, per_cand)]
    clouds = [(c, k) for c, k in zip(cands, cores) if c.kind == "cloud" and k.feasible]
    results = []
    for c, core in zip(cands, cores):
        r = _result(c, core, needs)
        if c.kind != "cloud" and core.feasible:
            r = replace(r, break_even=_break_evens(c, core, clouds, needs))
        results.append(r)
    feasible = sorted((r for r in results if r.feasible), key=lambda r: (r.cost_per_month, r.id))
    infeasible = sorted((r for r in results if not r.feasible),
                        key=lambda r: (r.miss is None, r.miss or 0.0, r.id))
    scores = _speed_scores(feasible, needs)
    from aipc.cost.recommend import per_workload, picks_for, recommendation, warnings_for

    picks = picks_for(feasible, scores, needs)
    rows, flips = [], []
    if sensitivity and feasible:
        from aipc.cost.sensitivity import scan

        rows, flips = scan(cands, per_cand, needs)
    n_meas = sum(1 for p in perf.values() for x in p if x.source.startswith("measured"))
    n_all = sum(len(p) for p in perf.values())
    tp = (f"measured for {n_meas} of {n_all} (device, workload) pairs, estimated for the rest"
          if n_meas else f"estimated for all {n_all} (device, workload) pairs (no matching measured runs"
                         f"{'' if not idx.source else '; ' + idx.source})")
    closest = infeasible[:3]
    split = per_workload(cands, per_cand, needs)
    return Decision(
        currency=needs.assumptions.currency, feasible=bool(feasible),
        recommendation=recommendation(feasible, closest, picks, flips, needs, split),
        picks=picks, candidates=feasible + infeasible, closest_misses=closest,
        per_workload=split, sensitivity=rows, flips=flips,
        assumptions=_assumptions(needs), throughput=tp, warnings=warnings_for(feasible, needs),
        needs=needs.to_dict())


__all__ = ["decide", "load_needs"]
