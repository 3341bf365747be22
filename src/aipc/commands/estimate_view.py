"""Compute and render `aipc estimate` (kept apart from the flag parsing)."""

from __future__ import annotations

from typing import Any

from aipc.estimate import backward_search, estimate, resolve_model
from aipc.hardware.local import resolve_device
from aipc.render import console, gb, seconds, si
from aipc.spec import Workload


def run(w: Workload, names: list[str], *, all_devices: bool, search: bool, catalogs: list[str]) -> dict[str, Any]:
    """Estimates for the primary device(s) and a fit list over the catalog."""
    from pathlib import Path

    from aipc.hardware.catalog import load_catalog

    cat = load_catalog([Path(c) for c in catalogs]) if catalogs else load_catalog()
    m = resolve_model(w.model)
    primary = [resolve_device(n) if n.lower().startswith("this") or n.lower() == "local" else _get(cat, n) for n in names] \
        or [resolve_device("this")]
    main = [estimate(w, d, model=m) for d in primary]
    others = [estimate(w, d, model=m) for d in cat.values()] if (all_devices or not names) else []
    out: dict[str, Any] = {"model": m.name, "workload": w.to_dict(), "estimates": [e.to_dict() for e in main]}
    if others:
        out["catalog"] = [_row(e) for e in others]
        out["fits_on"] = [e.device for e in others if e.fits]
    if search:
        out["search"] = [backward_search(m, w, d).__dict__ for d in primary]
    return out


def _get(cat: dict, name: str):
    """A device by name from the catalog in effect (built-in + AIPC_DEVICES + --catalog files)."""
    from aipc.hardware.catalog import find_device

    return find_device(cat, name)


def _row(e) -> dict[str, Any]:
    t = e.time
    return {"device": e.device, "label": e.device_label, "fits": e.fits, "devices_needed": e.devices_needed,
            "peak_bytes": e.memory.peak_bytes, "capacity_bytes": e.capacity_bytes,
            "train_tokens_per_s": t.train_tokens_per_s, "decode_tokens_per_s": t.decode_tokens_per_s,
            "ttft_s": t.ttft_s, "train_s": t.train_s, "verdict": e.verdict}


def render(r: dict[str, Any]) -> None:
    from rich.table import Table

    c = console()
    w = r["workload"]
    for e in r["estimates"]:
        mem = e["memory"]
        c.print(f"[bold]{r['model']}[/] {w['task']} ({w['method'] if w['task'] == 'train' else 'inference'}, "
                f"weights {w['weight_dtype']}) on [bold]{e['device_label']}[/]")
        c.print(("[green]" if e["fits"] else "[red]") + e["verdict"] + "[/]")
        t = Table(title=f"memory at the {mem['peak_phase']} peak (per device)", show_header=True)
        t.add_column("component")
        t.add_column("bytes", justify="right")
        for k, v in sorted(mem["components"].items(), key=lambda kv: -kv[1]):
            t.add_row(k.replace("_", " "), gb(v, 2))
        t.add_row("[bold]peak[/]", f"[bold]{gb(mem['peak_bytes'], 2)}[/]")
        c.print(t)
        c.print("phases: " + ", ".join(f"{k} {gb(v)}" for k, v in mem["phases"].items())
                + f"   (weights-only figure: {gb(mem['weights_only_bytes'])})")
        if mem.get("allocator"):
            c.print(f"memory describes: {mem['allocator']}", style="dim")
        comp, tm = e["compute"], e["time"]
        if w["task"] == "train":
            c.print(f"compute: {si(comp['flops_per_token'], 'FLOP')} per token, {si(comp['flops_per_step'], 'FLOP')} per step; "
                    f"step {seconds(tm['step_s'])}, {si(tm['train_tokens_per_s'], 'tok/s')}"
                    + (f", {seconds(tm['train_s'])} for {si(w['train_tokens'], 'tokens')}" if tm.get("train_s") else ""))
        else:
            c.print(f"prefill (= TTFT) {seconds(tm['ttft_s'])}; TPOT {seconds(tm['tpot_s'])} (excludes the first token); "
                    f"decode {si(tm['decode_tokens_per_s'], 'tok/s')} for the batch; {tm['bound']}-bound")
        c.print(f"efficiency: {e['efficiency']['source']}", style="dim")
        for s in e["suggestions"]:
            c.print(f"  try {s}")
        for wmsg in e["warnings"]:
            c.print(f"  warning: {wmsg}", style="yellow")
        st = e["storage"]
        c.print(f"disk: model files {gb(st['model_files_bytes'])}"
                + (f", checkpoint {gb(st['checkpoint_bytes'])} x {st['checkpoints_kept']} kept, dataset {gb(st['dataset_bytes'])}"
                   if w["task"] == "train" else ""), style="dim")
    if r.get("catalog"):
        t = Table(title="catalog devices", show_header=True)
        for col in ("device", "memory needed / usable", "fits", "speed"):
            t.add_column(col)
        for row in sorted(r["catalog"], key=lambda x: (not x["fits"], x["peak_bytes"] / max(x["capacity_bytes"], 1))):
            speed = row["train_tokens_per_s"] if w["task"] == "train" else row["decode_tokens_per_s"]
            fits = "yes" if row["fits"] else (f"with {row['devices_needed']}" if row["devices_needed"] else "no")
            t.add_row(row["label"], f"{gb(row['peak_bytes'])} / {gb(row['capacity_bytes'])}", fits, si(speed, "tok/s"))
        c.print(t)
        c.print(f"fits on {len(r['fits_on'])} of {len(r['catalog'])} catalog devices")
    for s in r.get("search", []):
        c.print(f"search on {s['device']}: largest batch {s['max_batch']}, largest context {s['max_context']}, "
                f"fewest devices {s['min_devices']}")
