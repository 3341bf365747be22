"""The team page: every machine of a team's results database side by side, as one self-contained
``team.html`` (the report's CSS, no script, no fetch) plus ``team.json`` with the data it shows.

    data = collect_team("postgresql://ann@db.lan/team", reference="workstation")
    write_team(data, "aipc-report")     # -> team.html, team.json

Measured tokens/s per model, scenario, engine, precision and shape on every machine's devices
(:mod:`aipc.bench.team`), the speedup R against the reference machine, and $ per 1M tokens from
decide's cost formulas (:mod:`aipc.cost.team`). Rendered with a jinja2 template (autoescaped).
The database is named with its password redacted. Import-light (no torch).
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

from aipc.render import to_jsonable

SCHEMA = "aipc-team/1"
MAX_CHART_UNITS = 40


def team_data(runs: list[dict], *, reference: str | None = None, prices: dict | None = None,
              rents: dict | None = None, utilization: float = 1.0) -> dict[str, Any]:
    """Stored bench runs -> every machine side by side (aipc.bench.team) with $ per 1M tokens (aipc.cost.team)."""
    from aipc.bench.team import team_table
    from aipc.cost.team import add_costs

    return add_costs(team_table(runs, reference), prices=prices, rents=rents, utilization=utilization)


def collect_team(db: str | Path | None, *, model: str | None = None, **kw: Any) -> dict[str, Any]:
    """The team comparison from the stored bench runs of ``db`` (every machine that wrote to it);
    ``kw``: as :func:`team_data`."""
    from aipc.bench.store import ResultsDB

    rdb = ResultsDB(db, create=False)
    data = team_data(rdb.runs(kind="bench", model=model, brief=True), **kw)
    return {"schema": SCHEMA, "db": str(rdb.path),
            "generated_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), **data}


# ------------------------------------------------------------------------------ formatting

def rate(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def money(x: float | None) -> str:
    if x is None:
        return "-"
    return f"${x:,.2f}" if x >= 1 else f"${x:.3f}" if x >= 0.01 else f"${x:.2g}"


def ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}x"


def r_text(cell: dict) -> str:
    """R like for like; where the reference did not run the row's engine and precision, R* against its fastest."""
    if cell.get("r") is not None:
        return ratio(cell["r"])
    return "-" if cell.get("r_vs_best") is None else f"{ratio(cell['r_vs_best'])}*"


def charts(data: dict) -> list[dict]:
    """Per scenario, the row measured by the most units: tokens/s of each unit (log bars, inline SVG)."""
    from aipc.report import charts as C

    out = []
    for scen in sorted({r["scenario"] for r in data["rows"]}):
        rows = [r for r in data["rows"] if r["scenario"] == scen]
        best = max(rows, key=lambda r: len(r["cells"]))
        if len(best["cells"]) < 2:
            continue
        order = [u["unit"] for u in data["units"] if u["unit"] in best["cells"]][:MAX_CHART_UNITS]
        bars = [(u, {"tokens/s": best["cells"][u].get("tokens_per_s")}) for u in order]
        title = f"{scen}: {best['model']} {best['engine']} {best['precision']} {best['shape']} — tokens/s (log scale)"
        out.append({"id": f"team-{scen}", "svg": C.hbar_chart(bars, ["tokens/s"], title=title, fmt=rate, log=True),
                    "caption": f"Measured tokens/s of every unit that ran this row; reference machine "
                               f"{data['reference']}."})
    return out


def render_team(data: dict) -> str:
    """The page from the team data (nothing is measured or looked up here)."""
    from aipc.report.templating import environment, render

    environment().filters.update(rate=rate, money=money, ratio=ratio, r_text=r_text)
    return render("team.html", d=data, charts=charts(data))  # each chart's SVG is Markup, its text escaped there


def write_team(data: dict, out_dir: str | Path) -> dict[str, Any]:
    """Write team.html and team.json into ``out_dir`` (each via a temporary file and a rename)."""
    from aipc.report.html import atomic_write

    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    page = render_team(data)
    atomic_write(out / "team.json", json.dumps(to_jsonable(data), indent=1) + "\n")
    atomic_write(out / "team.html", page)
    return {"dir": str(out), "index": str(out / "team.html"), "json": str(out / "team.json"),
            "page_bytes": len(page.encode("utf-8"))}
