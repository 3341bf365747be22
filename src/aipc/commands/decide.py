"""``aipc decide``: buy an AI PC, use this machine, or rent the cloud — for a needs file.

    aipc decide --example > needs.toml       the commented example (every field, default and source)
    aipc decide needs.toml [--json]          table + recommendation, or one JSON object
    aipc decide --example | aipc decide -    read the needs from standard input

Overrides: ``--set assumptions.horizon_months=24``, ``--price rtx-5090=2400``,
``--rate h100-sxm@Lambda=2.10`` (per device-hour; without @PROVIDER it adds an offer),
``--overrides FILE`` (a TOML/JSON fragment merged over the needs file). Import-light: no torch.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Optional

import typer

from aipc.bench.dburl import HELP as DB_HELP
from aipc.errors import AipcError


def _pair(text: str, flag: str, example: str) -> tuple[str, float]:
    if "=" not in text:
        raise AipcError(f"{flag} expects NAME=NUMBER, e.g. {flag} {example} (got {text!r})")
    name, val = text.rsplit("=", 1)
    try:
        num = float(val.replace(",", "").replace("_", ""))
    except ValueError:
        raise AipcError(f"{flag} {text!r}: {val!r} is not a number; e.g. {flag} {example}") from None
    if not name.strip():
        raise AipcError(f"{flag} {text!r}: the name before '=' is missing; e.g. {flag} {example}")
    return name.strip(), num


def flag_overrides(prices: list[str], rates: list[str]) -> dict:
    """--price and --rate flags as a needs-file fragment ([prices], [[cloud]])."""
    out: dict = {}
    for p in prices or []:
        dev, amount = _pair(p, "--price", "rtx-5090=2400")
        out.setdefault("prices", {})[dev] = amount
    for r in rates or []:
        dev, per_hour = _pair(r, "--rate", "h100-sxm@Lambda=2.10")
        dev, _, provider = dev.partition("@")
        out.setdefault("cloud", []).append({"device": dev.strip(), "provider": provider.strip() or "--rate",
                                            "per_hour": per_hour})
    return out


def _cell(x, f) -> str:
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f(x)


def _workload_cells(r) -> tuple[str, str]:
    from aipc.render import seconds

    job = [w for w in r.workloads if w.task == "train" and w.feasible]
    srv = [w for w in r.workloads if w.task == "infer" and w.feasible]
    jt = " / ".join(seconds(w.time_per_job_s) for w in job) if job else "-"
    lat = " / ".join(f"{seconds(w.ttft_s)}, {seconds(w.tpot_s)}" for w in srv) if srv else "-"
    return jt, lat


def render(d, show_all: bool = False) -> None:
    """The decision for people: candidates table, recommendation, sensitivity, assumptions."""
    from rich.table import Table

    from aipc.cost import fmt
    from aipc.render import console

    con = console()
    if not con.is_terminal:
        con.width = 220
    cur = d.currency
    money = lambda x: fmt.money(x, cur)  # noqa: E731
    feas = [r for r in d.candidates if r.feasible]
    shown = feas if show_all else feas[:12]
    t = Table(title=f"{len(feas)} of {len(d.candidates)} options meet every need (monthly cost in {cur}; "
                    f"{'all' if show_all else 'cheapest ' + str(len(shown))} shown; --all for every option)")
    for col, just in [("option", "left"), ("dev", "right"), ("per month", "right"), ("up front", "right"),
                      ("util", "right"), ("per 1M train tok", "right"), ("per 1M infer tok", "right"),
                      ("kWh/1M tok", "right"), ("time per job", "right"), ("TTFT, TPOT", "right"),
                      ("pays back vs cheapest cloud", "right"), ("speed", "left")]:
        t.add_column(col, justify=just, overflow="fold")
    for r in shown:
        jt, lat = _workload_cells(r)
        be = r.break_even[0] if r.break_even else None
        kwh = r.kwh_per_mtok_infer if r.kwh_per_mtok_infer is not None else r.kwh_per_mtok_train
        t.add_row(r.label, str(r.devices), money(r.cost_per_month), money(r.capex) if r.capex else "-",
                  _cell(r.utilization, fmt.pct), _cell(r.cost_per_mtok_train, money),
                  _cell(r.cost_per_mtok_infer, money), _cell(kwh, lambda x: f"{x:.2f}"), jt, lat,
                  "-" if be is None else f"{fmt.months(be.months)} (>{fmt.pct(be.utilization)} util)"
                  if be.utilization is not None else f"{fmt.months(be.months)}", r.throughput_source)
    if shown:
        con.print(t)
    miss = d.closest_misses if (not feas or not show_all) else [r for r in d.candidates if not r.feasible]
    if miss:
        m = Table(title="closest misses (options that fail a need)" if feas else "no option meets every need — closest misses")
        m.add_column("option")
        m.add_column("why not", overflow="fold")
        for r in miss:
            m.add_row(r.label, "; ".join(r.reasons))
        con.print(m)
    con.print()
    con.print(d.recommendation, markup=False)
    if d.per_workload and len(d.per_workload) > 1:
        con.print("\nEach workload alone (a split between machines may be cheaper):", markup=False)
        for w in d.per_workload:
            con.print(f"  - {w['text']}", markup=False)
    if d.sensitivity:
        s = Table(title="sensitivity: the cheapest option as one thing changes (others as in the needs file)")
        s.add_column("parameter")
        s.add_column("value")
        s.add_column("cheapest option")
        s.add_column("per month", justify="right")
        for row in d.sensitivity:
            for i, v in enumerate(row.values):
                val = f"{v:g} months" if row.parameter == "horizon_months" else f"x{v:g}"
                s.add_row(row.parameter if i == 0 else "", val, row.cheapest_label[i] or "nothing feasible",
                          money(row.cost_per_month[i]))
        con.print(s)
    con.print(f"\nspeeds: {d.throughput}", markup=False)
    given = [a for a in d.assumptions if a.given]
    con.print("assumptions: " + ", ".join(f"{a.field}={a.value}" for a in d.assumptions)
              + (f" (set by you: {', '.join(a.field for a in given)})" if given else " (all defaults)")
              + "; sources: aipc decide --example, or --json 'assumptions'", markup=False)
    for w in d.warnings:
        con.print(f"warning: {w}", markup=False)


def register(app: typer.Typer) -> None:
    @app.command("decide", help="Buy an AI PC, use this machine, or rent the cloud: cost per month and per 1M tokens, "
                                "break-even and a recommendation for a needs file.")
    def decide_cmd(
        needs: str = typer.Argument(None, help="Needs file (TOML or JSON), or '-' for standard input."),
        example: bool = typer.Option(False, "--example", help="Print the commented example needs file and exit."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object (the same Decision the Python API returns)."),
        sets: list[str] = typer.Option(None, "--set", help="Override a field: KEY=VALUE, e.g. assumptions.horizon_months=24; repeatable."),
        prices: list[str] = typer.Option(None, "--price", help="Purchase price: DEVICE=AMOUNT in the needs currency; repeatable."),
        rates: list[str] = typer.Option(None, "--rate", help="Cloud price per device-hour: DEVICE[@PROVIDER]=RATE; repeatable."),
        overrides: list[Path] = typer.Option(None, "--overrides", help="TOML/JSON fragment merged over the needs file; repeatable."),
        catalog: list[Path] = typer.Option(None, "--catalog", help="Extra device file (catalog schema); repeatable."),
        db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
        show_all: bool = typer.Option(False, "--all", help="List every option, not only the cheapest 12."),
        no_sensitivity: bool = typer.Option(False, "--no-sensitivity", help="Skip the sensitivity scan."),
    ) -> None:
        from aipc.cost.needs import example_text, load_needs, read_raw

        if example:
            sys.stdout.write(example_text())
            return
        if not needs:
            raise AipcError("pass a needs file (or '-' for standard input); write one with "
                            "'aipc decide --example > needs.toml'")
        extra = [read_raw(p) for p in overrides or []]
        fo = flag_overrides(prices, rates)
        if fo:
            extra.append(fo)
        stdin_text = sys.stdin.read() if needs == "-" else None
        n = load_needs(needs, overrides=extra, sets=sets or [], stdin_text=stdin_text)
        from aipc.cost import decide
        from aipc.cost.throughput import load_index
        from aipc.hardware.catalog import load_catalog

        result = decide(n, catalog=load_catalog(catalog or None), measured=load_index(db) if db else None,
                        sensitivity=not no_sensitivity)
        if as_json:
            from aipc.render import print_json

            print_json(result)
        else:
            render(result, show_all)

