"""The verdict, in words, from the report's data: what runs here, how fast, what it would cost elsewhere.

Used at the top of the page and as the terminal summary, so both say the same thing.
"""

from __future__ import annotations

from typing import Any

from aipc.cost.fmt import money, pct
from aipc.render import gb, seconds


def tok_s(x: float | None) -> str:
    """'38.7 tokens/s' with three significant digits ('-' when unknown)."""
    if x is None:
        return "-"
    return f"{x:,.0f} tokens/s" if x >= 1000 else f"{x:.3g} tokens/s"


def _best_local(rows: list[dict]) -> dict | None:
    """The local row that fits and is fastest (accelerators first), else the one closest to fitting."""
    local = [r for r in rows if r.get("local") and r.get("available")]
    if not local:
        return None
    fits = [r for r in local if r["fits"]]
    if fits:
        return max(fits, key=lambda r: (r.get("decode_tokens_per_s") or r.get("train_tokens_per_s") or 0))
    return min(local, key=lambda r: r["peak_bytes"] - r["capacity_bytes"])


def speed_text(r: dict, task: str) -> str:
    if task == "infer":
        if r.get("decode_tokens_per_s") is None:
            return "speed not available (no measured peaks)"
        return (f"about {tok_s(r['decode_tokens_per_s'])} generated (TPOT {seconds(r.get('tpot_s'))}, "
                f"TTFT {seconds(r.get('ttft_s'))})")
    if r.get("train_tokens_per_s") is None:
        return "speed not available (no measured peaks)"
    return f"about {tok_s(r['train_tokens_per_s'])} trained (one step {seconds(r.get('step_s'))})"


def runs_here(data: dict) -> list[str]:
    est = data.get("estimates") or {}
    if not est.get("available"):
        return [f"estimates not available: {est.get('why', 'unknown')}"]
    out = []
    for w in est["workloads"]:
        r = _best_local(w["rows"])
        if r is None:
            out.append(f"{w['name']} ({w['model']}): no estimate for this machine")
        elif r["fits"]:
            out.append(f"{w['name']} ({w['model']}): runs here on {r['label']} — needs {gb(r['peak_bytes'])} of "
                       f"{gb(r['capacity_bytes'])}; {speed_text(r, w['task'])} (estimated)")
        else:
            hint = f"; {r['suggestions'][0]}" if r.get("suggestions") else ""
            out.append(f"{w['name']} ({w['model']}): does not fit here — needs {gb(r['peak_bytes'])}, "
                       f"{r['label']} has {gb(r['capacity_bytes'])} usable{hint}")
    return out


def measured_here(data: dict) -> list[str]:
    b = data.get("bench") or {}
    if not b.get("available"):
        return [f"measurements not available: {b.get('why', 'unknown')}"]
    out = []
    by_dev: dict[str, list[dict]] = {}
    for r in b["results"]:
        by_dev.setdefault(r["device"], []).append(r)
    for dev, rs in by_dev.items():
        parts = []
        for r in rs:
            s = f"{r['scenario']} {tok_s(r.get('tokens_per_s'))}"
            if r.get("mfu_measured") is not None and r["scenario"] != "decode":
                s += f" (MFU {pct(r['mfu_measured'], 1)})"
            if r.get("mbu_measured") is not None:
                s += f" (MBU {pct(r['mbu_measured'], 1)})"
            parts.append(s)
        prec = rs[0].get("precision") or "-"
        out.append(f"{b['model']} on {dev} ({prec}, measured): " + "; ".join(parts))
    for s in b.get("speedup") or []:
        rr = ", ".join(f"{d} R = {v:.2f}" for d, v in s["r"].items())
        out.append(f"speedup {s['scenario']} against {s['reference']}: {rr}")
    return out


def cost_elsewhere(data: dict) -> list[str]:
    d = data.get("decision") or {}
    if not d.get("available"):
        return [f"cost comparison not available: {d.get('why', 'unknown')}"]
    cur = d.get("currency", "USD")
    cands = d.get("candidates") or []
    out = []
    picks = d.get("picks") or {}
    by_id = {c["id"]: c for c in cands}
    if "cheapest" in picks:
        c = by_id.get(picks["cheapest"]["id"], {})
        out.append(f"Cheapest way to meet the needs: {picks['cheapest']['label']} — "
                   f"{money(picks['cheapest']['cost_per_month'], cur)}/month{_per_mtok(c, cur)}")
    else:
        out.append("No option meets every need (see the closest misses below)")
    cloud = next((c for c in cands if c["kind"] == "cloud" and c["feasible"]), None)
    if cloud:
        out.append(f"Cheapest cloud offer: {cloud['label']} — {money(cloud['cost_per_month'], cur)}/month"
                   f"{_per_mtok(cloud, cur)}")
    owned = next((c for c in cands if c["kind"] == "owned"), None)
    if owned:
        if owned["feasible"]:
            out.append(f"This machine (already owned): {money(owned['cost_per_month'], cur)}/month in electricity"
                       f"{_per_mtok(owned, cur)}")
        else:
            rs = owned.get("reasons") or []
            more = f" (and {len(rs) - 2} more)" if len(rs) > 2 else ""
            out.append(f"This machine cannot meet every need: {'; '.join(rs[:2])}{more}")
    if "on_prem" in picks and picks["on_prem"]["id"] != picks.get("cheapest", {}).get("id"):
        out.append(f"Best option that keeps data on premises: {picks['on_prem']['label']} — "
                   f"{money(picks['on_prem']['cost_per_month'], cur)}/month")
    return out


def _per_mtok(c: dict, cur: str) -> str:
    parts = []
    if c.get("cost_per_mtok_infer") is not None:
        parts.append(f"{money(c['cost_per_mtok_infer'], cur)} per 1M tokens served")
    if c.get("cost_per_mtok_train") is not None:
        parts.append(f"{money(c['cost_per_mtok_train'], cur)} per 1M tokens trained")
    return f" ({', '.join(parts)})" if parts else ""


def verdict(data: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """(heading, lines) in the page's order."""
    return [("What runs on this machine", runs_here(data)),
            ("How fast it runs here", measured_here(data)),
            ("What it would cost elsewhere", cost_elsewhere(data))]
