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
    """The local row that meets the need (fastest), else fits (fastest), else comes closest to fitting."""
    local = [r for r in rows if r.get("local") and r.get("available")]
    if not local:
        return None
    for group in ([r for r in local if r["fits"] and r.get("meets", True)], [r for r in local if r["fits"]]):
        if group:
            return max(group, key=lambda r: (r.get("decode_tokens_per_s") or r.get("train_tokens_per_s") or 0))
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


def _setup_speed(r: dict, task: str) -> str:
    """'llama.cpp Q4_K_M: 6.0 tokens/s' (serving) or 'PyTorch bf16: 850 tokens/s trained'."""
    v = r.get("decode_tokens_per_s") if task == "infer" else r.get("train_tokens_per_s")
    return f"{r.get('setup', '-')}: {tok_s(v)}" + ("" if task == "infer" else " trained")


def _beside(r: dict, task: str) -> str:
    """The torch figure beside a chosen non-torch setup."""
    t = r.get("torch")
    if not t:
        return ""
    if not t.get("fits"):
        return f"; {t['setup']} would not fit ({gb(t.get('peak_bytes'))})"
    return f"; {_setup_speed(t, task)} for comparison"


CATEGORY_ORDER = {"ai-pc": 0, "workstation": 1, "datacenter": 2}


def remedies(w: dict, limit: int = 2) -> str:
    """What would make a workload run as needed: catalog devices where the best setup meets the need,
    AI PCs first, then workstations, then datacenter GPUs (cheapest first within a category)."""
    ok = [r for r in w["rows"] if not r.get("local") and r.get("available") and r.get("fits") and r.get("meets")]
    if not ok:
        return "no single catalog device meets it (see the table below for multi-device options)"
    ok.sort(key=lambda r: (CATEGORY_ORDER.get(r.get("category"), 3), r.get("price_usd") or float("inf")))
    return "; ".join(f"{r['label']} with {_setup_speed(r, w['task'])}" for r in ok[:limit])


def _need_text(w: dict) -> str:
    n = w.get("need") or {}
    if w["task"] == "infer":
        return f"TTFT <= {seconds(n.get('ttft_s'))}, TPOT <= {seconds(n.get('tpot_s'))}"
    if n.get("deadline_s"):
        return f"{n.get('train_tokens'):,} tokens within {n['deadline_s'] / 3600:g} h"
    return "no deadline given"


def _line(w: dict, r: dict) -> str:
    head = f"{w['name']} ({w['model']})"
    mem = f"needs {gb(r['peak_bytes'])} of {gb(r['capacity_bytes'])}"
    if not r["fits"]:
        hint = f"; {r['suggestions'][0]}" if r.get("suggestions") else ""
        return (f"{head}: does not fit here — {r.get('setup', '')} needs {gb(r['peak_bytes'])}, {r['label']} has "
                f"{gb(r['capacity_bytes'])} usable{hint}. To run it: {remedies(w)}")
    if r.get("meets", True):
        speed = speed_text(r, w["task"]).removeprefix("about ")
        return (f"{head}: runs here on {r['label']} — {r.get('setup', '-')}: {speed}; {mem} (estimated)"
                f"{_beside(r, w['task'])}")
    return (f"{head}: fits here ({mem}) but does not meet the need ({_need_text(w)}): best here "
            f"{_setup_speed(r, w['task'])}, {'; '.join(r.get('misses') or [])}{_beside(r, w['task'])}. "
            f"To meet it: {remedies(w)}")


def runs_here(data: dict) -> list[str]:
    """One line per workload: runs here (with the engine and precision that make it run), fits but misses
    its need (and what would meet it), or does not fit (and what would run it). A workload is never
    called runnable here when its own estimate misses the need (a token every few seconds, a job days
    past its deadline)."""
    est = data.get("estimates") or {}
    if not est.get("available"):
        return [f"estimates not available: {est.get('why', 'unknown')}"]
    out = []
    for w in est["workloads"]:
        r = _best_local(w["rows"])
        out.append(f"{w['name']} ({w['model']}): no estimate for this machine" if r is None else _line(w, r))
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
    return out + engine_measured(data)


def engine_measured(data: dict) -> list[str]:
    """The bench model through each quantized engine, per weight format (measured)."""
    from aipc.estimate.choose import ENGINE_NAMES

    eb = data.get("engine_bench") or {}
    if not eb.get("available"):
        return [f"quantized engines not measured: {eb.get('why', 'unknown')}"] if eb else []
    by_fmt: dict[tuple, list[dict]] = {}
    for r in eb["results"]:
        by_fmt.setdefault((r.get("engine") or eb.get("engine"), r.get("weight_format") or "-"), []).append(r)
    out = []
    for (engine, fmt), rs in by_fmt.items():
        parts = [f"{r['scenario']} {tok_s(r.get('tokens_per_s'))}" + (f" (MBU {pct(r['mbu_measured'], 1)})"
                 if r.get("mbu_measured") is not None else "") for r in rs]
        shown = fmt.upper() if engine == "llamacpp" else fmt
        out.append(f"{eb['model']} through {ENGINE_NAMES.get(engine, engine)} {shown} on {rs[0]['device']} "
                   "(measured): " + "; ".join(parts))
    if eb.get("not_used"):
        out.append(f"quantized engines {eb['not_used']}")
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
