"""The page: one self-contained ``index.html`` (inline CSS, inline SVG, no script, no fetch) plus
``report.json`` with the data it was rendered from.

The page is the jinja2 template ``templates/page.html`` (autoescaped; environment and shared macros
in :mod:`aipc.report.templating`). A Content-Security-Policy meta tag (``templates/head.html``)
forbids every fetch (``default-src 'none'``), so even a stray URL could not load anything; the print
stylesheet (``templates/report.css``) keeps charts and tables whole on paper.

Adding a section: write ``sections_<name>.py`` with a function ``data -> Markup`` that renders its own
template ``templates/sections/<name>.html`` (``{% import "macros.html" as m %}`` gives ``m.table``,
``m.facts``, ``m.figure``, ``m.na``) through :func:`aipc.report.templating.render`, or returns
``templating.na(why)`` when its part could not answer; then add one ``(id, title, function)`` entry to
:data:`SECTIONS` where it should appear. The id is the section's anchor (``#id``); the title's text
before a colon is its entry in the table of contents. Nothing else changes: the page template loops
over the parts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from markupsafe import Markup

from aipc.render import to_jsonable
from aipc.report import sections as S
from aipc.report import sections_cost as SC
from aipc.report import sections_here as SH
from aipc.report.templating import render

MAX_PAGE_BYTES = 5 * 2**20

# (id, title, body from the report data), in page order.
SECTIONS: list[tuple[str, str, Callable[[dict], Markup]]] = [
    ("verdict", "Verdict", S.verdict_html),
    ("machine", "This machine: measured versus spec peaks", S.machine_html),
    ("roofline", "Roofline: measured runs against this machine's ceilings", S.roofline_html),
    ("measured", "Measured here: tokens/s per device and speedup R", S.bench_html),
    ("workloads", "Workloads: memory and fit on this machine and catalog devices", S.workloads_html),
    ("here", "What you can run here: every catalog model, engine and format", SH.here_html),
    ("cost", "Cost: buy, use this machine, or rent", SC.cost_html),
    ("assumptions", "Assumptions, with sources and dates", SC.assumptions_html),
    ("reproduce", "Versions and exact commands to reproduce", SC.reproduce_html),
]


@dataclass(frozen=True)
class Part:
    id: str
    title: str
    body: Markup


def parts(data: dict[str, Any]) -> list[Part]:
    """Every section of the page, rendered from the report data."""
    return [Part(sid, title, fn(data)) for sid, title, fn in SECTIONS
            if sid != "here" or "here" in data]  # report data from before the section has none


def render_page(data: dict[str, Any]) -> str:
    """The whole page from the report data (nothing is measured or looked up here)."""
    m = data.get("machine") or {}
    where = (m.get("cpu") or {}).get("model") if m.get("available") else "this machine"
    return str(render("page.html", where=where, generated_at=data.get("generated_at"),
                      version=(data.get("versions") or {}).get("aipc"), parts=parts(data)))


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to a temporary name beside ``path``, then rename it over ``path``."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_report(data: dict[str, Any], out_dir: str | Path) -> dict[str, Any]:
    """Write index.html and report.json into ``out_dir`` (created); returns paths and the page size."""
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    page = render_page(data)
    size = len(page.encode("utf-8"))
    if size > MAX_PAGE_BYTES:  # a report must stay small enough to mail; never expected with the built-in charts
        raise RuntimeError(f"the page would weigh {size / 2**20:.1f} MiB, over the 5 MiB limit")
    atomic_write(out / "report.json", json.dumps(to_jsonable(data), indent=1) + "\n")
    atomic_write(out / "index.html", page)
    return {"dir": str(out), "index": str(out / "index.html"), "json": str(out / "report.json"), "page_bytes": size}
