"""The page's cost, assumptions and reproduce sections, from the report data.

Cost curves are drawn from the decision's own numbers with the same formulas (aipc.cost.tco):
cumulative cost over months (capex up front + running cost per month, versus rent per month) and
cost of one busy device-hour against utilization, each with the decision's break-even points.
Each ``*_html`` function renders its template (``templates/sections/*.html``) as ``Markup``.
"""

from __future__ import annotations

import shlex

from markupsafe import Markup

from aipc.cost import tco
from aipc.cost.fmt import money, pct
from aipc.report import charts as C
from aipc.report.templating import na, render, table

MAX_ROWS = 12


def _assumption(d: dict, field: str, default: float) -> float:
    for a in d.get("assumptions") or []:
        if a.get("field") == field and isinstance(a.get("value"), (int, float)):
            return float(a["value"])
    return default


def curve_candidates(d: dict) -> tuple[list[dict], dict | None]:
    """(owned/bought candidates to draw, the cloud offer to compare with): the picks, this machine,
    and the cheapest feasible cloud offer."""
    cands = [c for c in d.get("candidates") or [] if c.get("feasible")]
    cloud = next((c for c in cands if c["kind"] == "cloud"), None)
    ids = [p["id"] for p in (d.get("picks") or {}).values()]
    ids += [c["id"] for c in cands if c["kind"] == "owned"]
    ids += [c["id"] for c in cands if c["kind"] == "buy"][:2]
    by_id = {c["id"]: c for c in cands}
    owned = [by_id[i] for i in dict.fromkeys(ids) if i in by_id and by_id[i]["kind"] != "cloud"]
    return owned[:4], cloud


def months_chart(d: dict) -> Markup | None:
    owned, cloud = curve_candidates(d)
    if not owned and not cloud:
        return None
    cur = d.get("currency", "USD")
    horizon = _assumption(d, "horizon_months", 36.0)
    ms = [horizon * i / 24 for i in range(25)]
    series, points = [], []
    for i, c in enumerate(owned):
        running = (c.get("energy_per_month") or 0) + (c.get("ops_per_month") or 0)
        series.append({"name": f"{c['label']}: {money(c['capex'], cur)} up front + {money(running, cur)}/month",
                       "points": [(m, c["capex"] + running * m) for m in ms], "color": C.color(i)})
        be = next((b for b in c.get("break_even") or [] if cloud and b["vs"] == cloud["id"]), None)
        if be and be.get("months") is not None and be["months"] <= horizon:
            points.append({"x": be["months"], "y": be["cloud_per_month"] * be["months"], "color": C.color(i),
                           "shape": "diamond", "label": f"break-even {be['months']:.1f} months",
                           "tip": f"{c['label']} pays back against {cloud['label']} after {be['months']:.1f} months"})
    if cloud:
        series.append({"name": f"{cloud['label']}: {money(cloud['cost_per_month'], cur)}/month", "dashed": True,
                       "points": [(m, cloud["cost_per_month"] * m) for m in ms], "color": "#B00020"})
    return C.line_chart(series, points=points, title=f"Cumulative cost over {horizon:g} months ({cur})",
                        x_label="months", y_label=f"cumulative cost ({cur})", x_fmt=lambda v: f"{v:g}",
                        y_fmt=lambda v: money(v, cur, 0), note="diamonds: payback (break-even) month against the cloud offer")


def utilization_chart(d: dict) -> Markup | None:
    owned, cloud = curve_candidates(d)
    owned = [c for c in owned if c.get("busy_device_hours_per_month")]
    if not owned:
        return None
    cur = d.get("currency", "USD")
    r = _assumption(d, "residual_fraction", 0.0)
    horizon = _assumption(d, "horizon_months", 36.0)
    ops = _assumption(d, "ops_per_month", 0.0)
    us = [0.02 + 0.98 * i / 48 for i in range(49)]
    series, points = [], []
    for i, c in enumerate(owned):
        e = c["energy_per_month"] / c["busy_device_hours_per_month"]
        capex1 = c["capex"] / max(c["devices"], 1)
        o = ops if c["kind"] == "buy" else 0.0

        def cost(u: float, capex1=capex1, e=e, o=o) -> float:
            return tco.amortized_per_hour(capex1, r, horizon, u, e, o)

        series.append({"name": c["label"], "points": [(u, cost(u)) for u in us], "color": C.color(i)})
        if c.get("utilization"):
            points.append({"x": c["utilization"], "y": cost(c["utilization"]), "color": C.color(i),
                           "label": f"needs today: {pct(c['utilization'])}",
                           "tip": f"{c['label']}: busy {pct(c['utilization'])} for this demand, "
                                  f"{money(cost(c['utilization']), cur)} per busy device-hour"})
        be = next((b for b in c.get("break_even") or [] if cloud and b["vs"] == cloud["id"]), None)
        if be and be.get("utilization"):
            y = cost(be["utilization"])
            points.append({"x": be["utilization"], "y": y, "color": "#B00020", "shape": "diamond",
                           "label": f"break-even {pct(be['utilization'])}",
                           "tip": f"above {pct(be['utilization'])} utilization {c['label']} beats {cloud['label']} "
                                  f"for the same work ({money(y, cur)} per busy hour)"})
    return C.line_chart(series, points=points, title=f"Cost of one busy device-hour against utilization ({cur})",
                        x_label="utilization (fraction of the month the device does useful work)",
                        y_label=f"{cur} per busy device-hour", x_fmt=lambda v: pct(v), y_fmt=lambda v: money(v, cur),
                        ylog=True, note="capex·(1 − residual)/(months·730·u) + ops/(730·u) + kW·PUE·price per kWh; "
                                        "diamonds: break-even utilization against the cheapest cloud offer")


def cost_html(data: dict) -> Markup:
    d = data.get("decision") or {}
    if not d.get("available"):
        return na(d.get("why", "no decision"))
    cur = d.get("currency", "USD")
    feas = [c for c in d.get("candidates") or [] if c.get("feasible")][:MAX_ROWS]
    options = [[c["label"], c["kind"], c["devices"], money(c["cost_per_month"], cur), money(c.get("cost_per_mtok_infer"), cur),
                money(c.get("cost_per_mtok_train"), cur), pct(c.get("utilization")), c.get("throughput_source")]
               for c in feas]
    miss = d.get("closest_misses") or [c for c in d.get("candidates") or [] if not c.get("feasible")][:5]
    sens = [[s["parameter"], s.get("meaning", ""), runs(s["values"], s.get("cheapest_label") or [])]
            for s in d.get("sensitivity") or []]
    return render("sections/cost.html", recommendation=d.get("recommendation"), throughput=d.get("throughput"),
                  warnings=d.get("warnings") or [], months_svg=months_chart(d), utilization_svg=utilization_chart(d),
                  options=options, misses=[[c["label"], "; ".join(c.get("reasons") or [])] for c in miss[:5]],
                  per_workload=[w.get("text") for w in d.get("per_workload") or []], sensitivity=sens)


def runs(values: list[float], labels: list[str | None]) -> str:
    """'0.1–2: A · 4–10: B': consecutive values with the same cheapest option grouped."""
    out: list[list] = []
    for v, lab in zip(values, labels):
        lab = lab or "nothing feasible"
        if out and out[-1][2] == lab:
            out[-1][1] = v
        else:
            out.append([v, v, lab])
    return " · ".join(f"{a:g}{'' if a == b else f'–{b:g}'}: {lab}" for a, b, lab in out)


# ------------------------------------------------------------------------------ assumptions

def assumption_rows(data: dict) -> list[list]:
    rows: list[list] = []
    d = data.get("decision") or {}
    for a in d.get("assumptions") or []:
        rows.append(["cost", f"{a['field']}: {a.get('meaning', '')}", a["value"], a.get("source", ""), a.get("as_of", "")])
    est = data.get("estimates") or {}
    seen = set()
    for w in est.get("workloads") or []:
        for r in w["rows"]:
            src = r.get("efficiency_source")
            key = (r["kind"], src)
            if src and key not in seen:
                seen.add(key)
                rows.append(["estimate", f"efficiency on {r['kind']}s: fraction of peak reached (MFU, MBU)", "", src, ""])
    m = data.get("machine") or {}
    for dev in m.get("devices") or [] if m.get("available") else []:
        for k, s in dev["measured"]["sources"].items():
            rows.append(["this machine", f"{dev['name']} {k} (measured)", "", s.get("source"), s.get("as_of")])
        for k, s in ((dev.get("spec") or {}).get("sources") or {}).items():
            rows.append(["catalog", f"{dev['spec']['device']} {k} (spec)", "", s.get("source"), s.get("as_of")])
    for c in [c for c in d.get("candidates") or [] if c.get("feasible")][:MAX_ROWS]:
        rows.append(["price", c["label"], money(c.get("per_hour") or (c["capex"] / max(c["devices"], 1)), d.get("currency", "USD"))
                     + ("/h" if c["kind"] == "cloud" else " each"), c.get("price_source"), ""])
    b = data.get("bench") or {}
    if b.get("available"):
        rows.append(["bench", "statistics: confidence interval of the median", "", b.get("ci_method"), ""])
        for s, text in (b.get("definitions") or {}).items():
            rows.append(["bench", f"definition of {s}", "", text, ""])
    return rows


def assumptions_html(data: dict) -> Markup:
    rows = assumption_rows(data)
    if not rows:
        return na("no part of the report answered, so no assumption was used")
    return table(["part", "what", "value", "source", "as of"], rows, wrap={3}, cls="assume")


# ------------------------------------------------------------------------------ reproduce

def commands(data: dict) -> list[str]:
    """The exact commands that produce this page and each of its parts (run from the report folder)."""
    inp = data.get("inputs") or {}
    argv = data.get("argv") or []
    out = ["aipc report " + " ".join(shlex.quote(a) for a in argv) if argv else "aipc report"]
    out.append("aipc hw --quick")
    b = data.get("bench") or {}
    if b.get("available"):
        s = b.get("shape") or {}
        lp = b.get("loop") or {}
        out.append(f"aipc bench {shlex.quote(b['model'])} --quick --scenario {','.join(b.get('scenarios') or [])} "
                   f"--batch {s.get('batch')} --prompt-tokens {s.get('prompt')} --gen-tokens {s.get('gen')} "
                   f"--seq-len {s.get('seq')} --method {s.get('method', 'full')} --warmup {lp.get('warmup')} "
                   f"--min-reps {lp.get('min_reps')} --min-time {lp.get('min_s')} --max-time {lp.get('max_s')}")
    for i, _ in enumerate(inp.get("workloads") or [], 1):
        out.append(f"aipc estimate workload-{i}.json --devices")
    out.append("aipc decide needs.json")
    return out


def reproduce_html(data: dict) -> Markup:
    t = data.get("timings_s") or {}
    timing = ", ".join(f"{k} {val:.1f} s" for k, val in t.items() if isinstance(val, (int, float)))
    return render("sections/reproduce.html", versions=list((data.get("versions") or {}).items()),
                  commands=commands(data), timing=timing)
