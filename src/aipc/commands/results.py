"""``aipc results``: list, filter, compare, export and import stored runs (any machine, any device)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from aipc.bench.dburl import HELP as DB_HELP
from aipc.commands import team_opts
from aipc.errors import AipcError


def _shape(run: dict) -> str:
    w = run.get("workload") or {}
    if run.get("scenario") == "train":
        return f"b{w.get('batch_size')} s{w.get('seq_len')}" + (f" {w.get('method')}" if w.get("method") != "full" else "")
    if run.get("kind") == "bench":
        return f"b{w.get('batch_size')} p{w.get('prompt_tokens')} g{w.get('gen_tokens')}"
    return ",".join(f"{k}={v}" for k, v in list(w.items())[:3])


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def render_list(runs: list[dict], db_path: str) -> None:
    from rich.table import Table

    from aipc.commands.bench import wide_console as console
    from aipc.render import seconds

    t = Table(title=f"{len(runs)} runs in {db_path}")
    for c in ("id", "date", "machine", "device", "model", "scenario", "shape", "prec", "median", "tokens/s", "MFU",
              "MBU", "est err"):
        t.add_column(c, justify="right" if c in ("median", "tokens/s", "MFU", "MBU", "est err") else "left")
    for r in runs:
        m = r.get("metrics") or {}
        t.add_row(r["id"][:8], r["created_at"][:16].replace("T", " "), (r.get("host") or "?") + ":" + (r.get("machine") or "?")[:6],
                  r.get("device") or "-", r.get("model") or "-", r.get("scenario") or r["kind"], _shape(r),
                  str(m.get("precision") or "-"), seconds(m.get("median_s")),
                  "-" if m.get("tokens_per_s") is None else f"{m['tokens_per_s']:.1f}", _pct(m.get("mfu_measured")),
                  _pct(m.get("mbu_measured")), "-" if m.get("est_error") is None else f"{m['est_error']:+.0%}")
    console().print(t)


def compare(runs: list[dict]) -> dict:
    """Pivot: one row per (model, scenario, shape), one column per machine:device with the latest median;
    plus speedup R per machine (t_cpu / t_device)."""
    from aipc.bench.compare import rows_from_runs, speedups

    cols: list[str] = []
    table: dict[tuple, dict[str, dict]] = {}
    for r in runs:
        if r.get("kind") != "bench" or not (r.get("metrics") or {}).get("median_s"):
            continue
        col = f"{r.get('host') or '?'}:{(r.get('machine') or '?')[:6]}:{r.get('device')}"
        if col not in cols:
            cols.append(col)
        key = (r.get("model"), r.get("scenario"), _shape(r))
        table.setdefault(key, {})[col] = {"median_s": r["metrics"]["median_s"], "tokens_per_s": r["metrics"].get("tokens_per_s"),
                                          "precision": r["metrics"].get("precision"), "id": r["id"]}
    rows = [{"model": k[0], "scenario": k[1], "shape": k[2], "cells": v} for k, v in table.items()]
    return {"columns": cols, "rows": rows, "speedup": speedups(rows_from_runs([r for r in runs if r.get("kind") == "bench"]))}


def render_compare(cmp: dict) -> None:
    from rich.table import Table

    from aipc.commands.bench import wide_console as console
    from aipc.render import seconds

    con = console()
    t = Table(title="median time per sample (x = speed relative to the first column that has the row)")
    for c in ("model", "scenario", "shape", *cmp["columns"]):
        t.add_column(c)
    for row in cmp["rows"]:
        base = next((row["cells"][c]["median_s"] for c in cmp["columns"] if c in row["cells"]), None)
        cells = []
        for c in cmp["columns"]:
            cell = row["cells"].get(c)
            cells.append("-" if cell is None else f"{seconds(cell['median_s'])} ({base / cell['median_s']:.2f}x)")
        t.add_row(row["model"], row["scenario"], row["shape"], *cells)
    con.print(t)
    for sp in cmp["speedup"]:
        con.print(f"R {sp['model']} {sp['scenario']} {sp['shape']} (vs {sp['reference']}): "
                  + ", ".join(f"{d} {v:.2f}x" for d, v in sp["r"].items()))
    if cmp.get("team"):
        render_team(cmp["team"])


def render_team(team: dict) -> None:
    """Every machine of the team: one line per (row, device), fastest first, with R and $ per 1M tokens."""
    from rich.table import Table

    from aipc.commands.bench import wide_console as console
    from rich.markup import escape

    from aipc.report.team import money, r_text, rate

    con = console()
    if not team["rows"]:
        con.print("team: no bench runs with a median time")
        return
    t = Table(title=f"team: {len(team['machines'])} machines, {len(team['units'])} devices; R against "
                    f"{team['reference']} (same model, scenario, engine, precision, shape); $ per 1M tokens at that speed")
    for c in ("model", "scenario", "engine", "prec", "shape", "machine", "device", "tokens/s", "R", "$/1M tok"):
        t.add_column(c, justify="right" if c in ("tokens/s", "R", "$/1M tok") else "left")
    units = {u["unit"]: u for u in team["units"]}
    for row in team["rows"]:
        cells = sorted(row["cells"].items(), key=lambda kv: kv[1]["median_s"])
        for i, (unit, c) in enumerate(cells):
            head = (row["model"], row["scenario"], row["engine"], row["precision"], row["shape"]) if i == 0 else ("",) * 5
            t.add_row(*(escape(str(x)) for x in head), escape(units[unit]["machine"]), escape(units[unit]["device"]),
                      rate(c.get("tokens_per_s")), r_text(c), money(c.get("usd_per_mtok")))
    con.print(t)
    con.print("R*: the reference did not run that engine and precision; against its fastest run of the same model, "
              "scenario and shape")
    for m, c in team["costs"].items():
        con.print(escape(f"{m}: {c['source']}"))


def team_compare(runs: list[dict], reference, prices, rents, utilization: float) -> dict:
    from aipc.report.team import team_data

    price, rent = team_opts.machine_prices(prices, rents)
    return team_data(runs, reference=reference, prices=price, rents=rent, utilization=utilization)


def register(app: typer.Typer) -> None:
    @app.command("results")
    def results(
        db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
        kind: Optional[str] = typer.Option(None, "--kind", help="bench, loadtest, ..."),
        device: Optional[str] = typer.Option(None, "--device", "-d", help="Only this device (cpu, cuda:0)."),
        model: Optional[str] = typer.Option(None, "--model", help="Only this model."),
        scenario: Optional[str] = typer.Option(None, "--scenario", "-s", help="Only this scenario."),
        machine: Optional[str] = typer.Option(None, "--machine", help="Only this machine (fingerprint prefix or host name)."),
        run_id: Optional[list[str]] = typer.Option(None, "--id", help="Only runs whose id starts with this (repeatable)."),
        compare_: bool = typer.Option(False, "--compare", help="Compare devices and machines side by side, with speedup R "
                                      "and $ per 1M tokens."),
        reference: Optional[str] = team_opts.REFERENCE,
        prices: Optional[list[str]] = team_opts.PRICE,
        rents: Optional[list[str]] = team_opts.RENT,
        utilization: float = team_opts.UTILIZATION,
        as_csv: bool = typer.Option(False, "--csv", help="Print CSV (one row per run, scalar metrics as columns)."),
        export: Optional[Path] = typer.Option(None, "--export", help="Write the selected runs to FILE (.json, .jsonl or .csv)."),
        import_: Optional[Path] = typer.Option(None, "--import", help="Import runs from an export FILE (.json or .jsonl)."),
        full: bool = typer.Option(False, "--full", help="With --json: include samples and context."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    ) -> None:
        """List, filter and compare stored runs; export them from one machine and import on another."""
        from aipc.bench.store import ResultsDB
        from aipc.render import print_json

        if sum(map(bool, (compare_, as_csv, import_ is not None))) > 1:
            raise AipcError("use one of --compare, --csv, --import at a time")
        if as_csv and as_json:
            raise AipcError("--csv and --json both choose the output format; use one")
        rdb = ResultsDB(db, create=import_ is not None)
        if import_ is not None:
            added, present = rdb.import_runs(import_)
            out = {"db": str(rdb.path), "imported": added, "already_present": present, "total": rdb.count()}
            if as_json:
                print_json(out)
            else:
                typer.echo(f"imported {added} runs into {rdb.path} ({present} already present; {out['total']} in all)")
            return
        runs = rdb.runs(kind=kind or ("bench" if compare_ else None), device=device, model=model, scenario=scenario,
                        machine=machine, ids=run_id, brief=compare_)  # a comparison reads no samples or context
        if export is not None:
            n = rdb.export(export, runs)
            if as_json:
                print_json({"db": str(rdb.path), "exported": n, "path": str(export)})
            else:
                typer.echo(f"exported {n} runs to {export}")
            return
        if as_csv:
            from aipc.bench.export import csv_text

            sys.stdout.write(csv_text(runs))
            return
        if compare_:
            cmp = compare(runs)
            cmp["team"] = team_compare(runs, reference, prices, rents, utilization)
            print_json({"db": str(rdb.path), **cmp}) if as_json else render_compare(cmp)
            return
        if as_json:
            keep = None if full else ("id", "created_at", "kind", "machine", "host", "device", "model", "scenario",
                                      "workload", "metrics")
            print_json({"db": str(rdb.path), "count": len(runs),
                        "runs": runs if keep is None else [{k: r.get(k) for k in keep} for r in runs]})
            return
        render_list(runs, str(rdb.path))
