"""The recommendation in plain words: cheapest, fastest, best on premises, and what would flip it."""

from __future__ import annotations

import math
from dataclasses import replace

from aipc.cost import fmt
from aipc.cost.candidates import Candidate
from aipc.cost.costing import cost_candidate
from aipc.cost.needs import Needs
from aipc.cost.result import CandidateResult, Flip, Pick
from aipc.render import seconds


def _devices(r: CandidateResult) -> str:
    return f"{r.devices} device{'s' if r.devices != 1 else ''}"


def _best_cloud(r: CandidateResult):
    """The break-even against the cheapest feasible cloud offer (break_even is sorted by cloud cost)."""
    return r.break_even[0] if r.break_even else None


def _reasons(r: CandidateResult, feasible: list[CandidateResult], needs: Needs) -> list[str]:
    a, cur = needs.assumptions, needs.assumptions.currency
    out = []
    if r.kind == "buy":
        out.append(f"{_devices(r)} at {fmt.money(r.capex / max(r.devices, 1), cur)} each "
                   f"({fmt.money(r.capex, cur)} up front), written off over {a.horizon_months:g} months"
                   + (f" with {fmt.pct(a.residual_fraction)} resale value" if a.residual_fraction else "")
                   + f": {fmt.money(r.capex_per_month, cur)}/month; electricity {fmt.money(r.energy_per_month, cur)}/month")
    elif r.kind == "owned":
        out.append(f"already owned (no purchase); electricity {fmt.money(r.energy_per_month, cur)}/month")
    else:
        out.append(f"{fmt.money(r.per_hour, cur)} per device-hour ({r.price_source.split(';')[0][:80]}); "
                   f"{r.busy_device_hours_per_month:,.0f} busy device-hours a month")
    if r.utilization is not None:
        out.append(f"busy {fmt.pct(r.utilization)} of the time ({r.busy_device_hours_per_month:,.0f} device-hours "
                   f"a month); {fmt.money(r.amortized_per_hour, cur)} per busy device-hour")
    be = _best_cloud(r)
    if r.kind != "cloud" and be is not None:
        billed = ""
        if be.cloud_billed_device_hours > be.cloud_work_device_hours * 1.2:
            billed = (f" (it bills {be.cloud_billed_device_hours:,.0f} device-hours a month for "
                      f"{be.cloud_work_device_hours:,.0f} of work: the always-on endpoint)")
        by_hour = (f"by the hour, owning beats that offer above {fmt.pct(be.utilization)} utilization"
                   if be.utilization is not None else "by the hour, owning never beats that offer within the horizon")
        out.append(f"renting the cheapest cloud offer that meets the needs ({be.vs_label}) would cost "
                   f"{fmt.money(be.cloud_per_month, cur)}/month{billed}; buying pays back in "
                   f"{fmt.months(be.months)}; {by_hour}")
    if r.kind == "cloud":
        owned = [x for x in feasible if x.kind != "cloud"]
        if owned:
            o = owned[0]
            be = next((b for b in o.break_even if b.vs == r.id), None)
            extra = ""
            if be is not None:
                extra = (f"; it would need {fmt.pct(be.utilization)} utilization to beat this offer"
                         if be.utilization is not None else "; no utilization makes it beat this offer")
            out.append(f"the best on-premises option ({o.label}) costs {fmt.money(o.cost_per_month, cur)}/month "
                       f"at {fmt.pct(o.utilization)} utilization{extra}")
        else:
            out.append("no on-premises option meets every need")
    for w in r.workloads:
        if w.task == "train":
            out.append(f"{w.name}: {seconds(w.time_per_job_s)} per job on {w.devices} device(s), "
                       f"{fmt.money(w.cost_per_mtok, cur)} per 1M tokens ({w.source})")
        else:
            out.append(f"{w.name}: TTFT {seconds(w.ttft_s)}, TPOT {seconds(w.tpot_s)}, {w.replicas} replica(s) "
                       f"at peak, {fmt.money(w.cost_per_mtok, cur)} per 1M tokens ({w.source})")
    return out


def picks_for(feasible: list[CandidateResult], scores: dict[str, float], needs: Needs) -> dict[str, Pick]:
    """cheapest, fastest and on_prem picks among the feasible candidates (sorted by cost)."""
    cur = needs.assumptions.currency
    picks: dict[str, Pick] = {}
    if not feasible:
        return picks
    cheapest = feasible[0]
    n_ok = len(feasible)
    r = _reasons(cheapest, feasible, needs)
    r.insert(0, f"the lowest monthly cost of the {n_ok} option{'s' if n_ok != 1 else ''} that meet every need")
    picks["cheapest"] = Pick(role="cheapest", id=cheapest.id, label=cheapest.label,
                             cost_per_month=cheapest.cost_per_month, reasons=r)
    fastest = min(feasible, key=lambda x: (round(scores.get(x.id, math.inf), 9), x.cost_per_month))
    ratio = fastest.cost_per_month / cheapest.cost_per_month if cheapest.cost_per_month > 0 else math.inf
    fr = [f"shortest job times and request latency of the feasible options "
          f"(slowdown score 1.00 = fastest at everything; the cheapest scores {scores.get(cheapest.id, 1):.2f})",
          f"{fmt.money(fastest.cost_per_month, cur)}/month, "
          + (f"{ratio:.1f}x the cheapest" if math.isfinite(ratio) else "the cheapest costs nothing")]
    fr += [x for x in _reasons(fastest, feasible, needs) if ":" in x and x.split(":")[0] in
           {w.name for w in fastest.workloads}]
    picks["fastest"] = Pick(role="fastest", id=fastest.id, label=fastest.label,
                            cost_per_month=fastest.cost_per_month, reasons=fr)
    onprem = [x for x in feasible if x.kind != "cloud"]
    if onprem:
        o = onprem[0]
        orr = ["the cheapest option that keeps data on premises (bought or already owned)"]
        orr += ["it is also the cheapest overall"] if o.id == cheapest.id else \
            [f"{fmt.money(o.cost_per_month - cheapest.cost_per_month, cur)}/month more than the cheapest"]
        orr += _reasons(o, feasible, needs)[:3]
        picks["on_prem"] = Pick(role="on_prem", id=o.id, label=o.label, cost_per_month=o.cost_per_month, reasons=orr)
    return picks


def _split_line(split: list[dict], cheapest: Pick, cur: str) -> str | None:
    """A plan that runs each workload on its own cheapest option, when it beats one option for all by > 5%."""
    if len(split) < 2 or any(w["id"] is None for w in split) or len({w["id"] for w in split}) < 2:
        return None
    total = sum(w["cost_per_month"] for w in split)
    if total >= cheapest.cost_per_month * 0.95:
        return None
    parts = "; ".join(f"{w['workload']} on {w['label']} ({fmt.money(w['cost_per_month'], cur)})" for w in split)
    return (f"Split, cheaper still: {fmt.money(total, cur)}/month in total — {parts}. Each part is costed alone "
            f"(a bought device then carries only that workload).")


def recommendation(feasible: list[CandidateResult], closest: list[CandidateResult], picks: dict[str, Pick],
                   flips: list[Flip], needs: Needs, split: list[dict] | None = None) -> str:
    """Plain words: one paragraph per pick, then what would flip the answer."""
    cur = needs.assumptions.currency
    if not feasible:
        lines = ["No option meets every need."]
        if closest:
            lines.append("Closest misses:")
            for r in closest:
                lines.append(f"  - {r.label}: " + "; ".join(r.reasons[:2]))
        lines.append("Relax a target (deadline_hours, ttft_s, tpot_s), allow more devices (max_devices), a smaller "
                     "precision (precision = \"int8\" or \"q4_k_m\"), or add devices with --catalog.")
        return "\n".join(lines)
    c = picks["cheapest"]
    lines = [f"Recommendation: {c.label} — {fmt.money(c.cost_per_month, cur)}/month."]
    lines += [f"  - {x}" for x in c.reasons]
    f = picks["fastest"]
    lines.append(f"Fastest: {f.label}" + (" (the same)." if f.id == c.id else f" — {fmt.money(f.cost_per_month, cur)}/month."))
    if f.id != c.id:
        lines += [f"  - {x}" for x in f.reasons]
    o = picks.get("on_prem")
    if needs.assumptions.on_prem_required:
        lines.append("Data must stay on premises: cloud offers were ruled out.")
    elif o is None:
        lines.append("Keeping data on premises: no owned or purchasable device meets every need.")
    else:
        lines.append(f"Keeps data on premises: {o.label}" + (" (the same)." if o.id == c.id else
                                                             f" — {fmt.money(o.cost_per_month, cur)}/month."))
        if o.id != c.id:
            lines += [f"  - {x}" for x in o.reasons[:2]]
    sl = _split_line(split or [], c, cur)
    if sl:
        lines.append(sl)
    if flips:
        lines.append("What would flip the answer:")
        lines += [f"  - {x.sentence}" for x in flips]
    else:
        lines.append("What would flip the answer: nothing within the scanned ranges (demand x0.1-x10, cloud prices "
                     "x0.25-x2, purchase prices x0.5-x3, electricity x0.5-x4, horizon 6-60 months).")
    return "\n".join(lines)


def per_workload(cands: list[Candidate], perfs: list[list], needs: Needs) -> list[dict]:
    """For each workload alone: the cheapest feasible candidate (a split plan may beat one machine for all)."""
    cur = needs.assumptions.currency
    out = []
    works = [*needs.jobs, *needs.inference]
    for i, w in enumerate(works):
        alone = replace(needs, jobs=tuple(x for x in needs.jobs if x is w),
                        inference=tuple(x for x in needs.inference if x is w))
        best = None
        for c, p in zip(cands, perfs):
            core = cost_candidate(c, [p[i]], alone)
            if core.feasible and (best is None or core.total_per_month < best[1]):
                best = (c, core.total_per_month)
        out.append({"workload": w.name, "id": best[0].id if best else None, "label": best[0].label if best else None,
                    "cost_per_month": best[1] if best else None,
                    "text": f"{w.name}: {best[0].label} at {fmt.money(best[1], cur)}/month" if best
                    else f"{w.name}: no feasible option"})
    return out


def warnings_for(feasible: list[CandidateResult], needs: Needs) -> list[str]:
    a = needs.assumptions
    out = []
    if a.utilization is not None:
        over = [r.label for r in feasible if r.kind != "cloud" and r.utilization is not None
                and r.utilization > a.utilization + 1e-9]
        if over:
            out.append(f"utilization {a.utilization:g} is below what the demand alone needs on {len(over)} owned "
                       f"option(s) (e.g. {over[0]}); their derived utilization was used")
    return out
