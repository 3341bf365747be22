"""The page: one self-contained ``index.html`` (inline CSS, inline SVG, no script, no fetch) plus
``report.json`` with the data it was rendered from.

A Content-Security-Policy meta tag forbids every fetch (``default-src 'none'``), so even a stray URL
could not load anything; the print stylesheet keeps charts and tables whole on paper.
"""

from __future__ import annotations

import json
import os
from html import escape
from pathlib import Path
from typing import Any

from aipc.render import to_jsonable

MAX_PAGE_BYTES = 5 * 2**20

CSS = """
:root{--fg:#1d1d1f;--muted:#5b5b60;--line:#d8d8dc;--accent:#0072B2;--bad:#B00020;--ok:#00734a;--bg2:#f5f6f8}
*{box-sizing:border-box}
body{margin:0;color:var(--fg);font:15px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',Arial,sans-serif;background:#fff}
main{max-width:980px;margin:0 auto;padding:24px 20px 60px}
h1{font-size:26px;margin:0 0 4px}h2{font-size:20px;margin:36px 0 8px;padding-top:8px;border-top:2px solid var(--line)}
h3{font-size:16px;margin:20px 0 6px}
.sub{color:var(--muted);margin:0 0 16px}
.verdict{background:var(--bg2);border-left:5px solid var(--accent);padding:12px 18px;margin:16px 0}
.verdict h3{margin:10px 0 4px}.verdict ul{margin:0 0 6px;padding-left:20px}
.na{color:var(--bad);background:#fff4f4;border:1px solid #f0c8c8;padding:8px 12px;border-radius:4px}
.note{color:var(--muted);font-size:13px}
table{border-collapse:collapse;width:100%;margin:8px 0 14px;font-size:13px}
th,td{border-bottom:1px solid var(--line);padding:4px 6px;text-align:left;vertical-align:top;overflow-wrap:break-word}
td.w{overflow-wrap:anywhere;min-width:14em}
table.assume td:last-child{white-space:nowrap}
th{background:var(--bg2);font-weight:600}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.tw{overflow-x:auto}
.yes{color:var(--ok);font-weight:600}.no{color:var(--bad);font-weight:600}
figure.chart{margin:12px 0 18px;padding:0;overflow-x:auto}
figure.chart svg{display:block;max-width:100%;height:auto}
figcaption{color:var(--muted);font-size:13px;margin-top:4px}
pre{background:var(--bg2);padding:10px 12px;overflow-x:auto;font-size:12.5px;white-space:pre-wrap;word-break:break-word}
code{font-size:12.5px}
dl.facts{display:grid;grid-template-columns:170px 1fr;gap:2px 12px;margin:8px 0}
dl.facts dt{color:var(--muted)}dl.facts dd{margin:0}
nav.toc{font-size:13px;margin:8px 0 0}nav.toc a{margin-right:12px;color:var(--accent)}
@media print{
  @page{size:A4;margin:14mm}
  body{font-size:11pt}
  main{max-width:none;padding:0}
  nav.toc{display:none}
  h2{break-after:avoid;page-break-after:avoid}
  figure.chart,table,.verdict,pre,dl.facts{break-inside:avoid;page-break-inside:avoid}
  figure.chart,.tw{overflow:visible}
  a{color:inherit;text-decoration:none}
}
"""

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"


def esc(x: Any) -> str:
    return escape("-" if x is None else str(x))


def na(why: str) -> str:
    """The 'not available' box every section shows when its part could not answer."""
    return f'<p class="na">not available: {esc(why)}</p>'


def table(headers: list[str], rows: list[list[Any]], numeric: set[int] | None = None, cls: str = "",
          wrap: set[int] | None = None) -> str:
    """A table; cells are escaped unless given as ('html', markup). ``numeric`` columns align right;
    ``wrap`` columns (URLs, long sources) may break anywhere."""
    numeric, wrap = numeric or set(), wrap or set()

    def cell(i: int, v: Any, tag: str) -> str:
        c = ' class="n"' if i in numeric else (' class="w"' if i in wrap and tag == "td" else "")
        body = v[1] if isinstance(v, tuple) and v and v[0] == "html" else esc(v)
        return f"<{tag}{c}>{body}</{tag}>"

    head = "".join(cell(i, h, "th") for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(cell(i, v, "td") for i, v in enumerate(r)) + "</tr>" for r in rows)
    return f'<div class="tw"><table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def figure(chart_id: str, svg: str, caption: str) -> str:
    return (f'<figure class="chart" id="chart-{chart_id}" data-chart="{chart_id}">{svg}'
            f'<figcaption>{esc(caption)}</figcaption></figure>')


def facts(pairs: list[tuple[str, Any]]) -> str:
    return '<dl class="facts">' + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in pairs) + "</dl>"


def section(sid: str, title: str, body: str) -> str:
    return f'<section id="{sid}"><h2>{esc(title)}</h2>{body}</section>'


def render_page(data: dict[str, Any]) -> str:
    """The whole page from the report data (nothing is measured or looked up here)."""
    from aipc.report import sections as S

    parts = [
        ("verdict", "Verdict", S.verdict_html(data)),
        ("machine", "This machine: measured versus spec peaks", S.machine_html(data)),
        ("roofline", "Roofline: measured runs against this machine's ceilings", S.roofline_html(data)),
        ("measured", "Measured here: tokens/s per device and speedup R", S.bench_html(data)),
        ("workloads", "Workloads: memory and fit on this machine and catalog devices", S.workloads_html(data)),
        *([("here", "What you can run here: every catalog model, engine and format", S.here_html(data))]
          if "here" in data else []),  # report data from before the section has none
        ("cost", "Cost: buy, use this machine, or rent", S.cost_html(data)),
        ("assumptions", "Assumptions, with sources and dates", S.assumptions_html(data)),
        ("reproduce", "Versions and exact commands to reproduce", S.reproduce_html(data)),
    ]
    toc = "".join(f'<a href="#{sid}">{esc(t.split(":")[0])}</a>' for sid, t, _ in parts)
    m = data.get("machine") or {}
    where = (m.get("cpu") or {}).get("model") if m.get("available") else "this machine"
    head = (f'<h1>aipc report — {esc(where)}</h1><p class="sub">Generated {esc(data.get("generated_at"))} by aipc '
            f'{esc((data.get("versions") or {}).get("aipc"))}. Measured numbers say "measured"; everything else is an '
            f'estimate from aipc\'s formulas. Data: <code>report.json</code> in this folder.</p>'
            f'<nav class="toc">{toc}</nav>')
    body = head + "".join(section(sid, t, b) for sid, t, b in parts)
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>aipc report — {esc(where)}</title><style>{CSS}</style></head>"
            f"<body><main>{body}</main></body></html>\n")


def _atomic_write(path: Path, text: str) -> None:
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
    _atomic_write(out / "report.json", json.dumps(to_jsonable(data), indent=1) + "\n")
    _atomic_write(out / "index.html", page)
    return {"dir": str(out), "index": str(out / "index.html"), "json": str(out / "report.json"), "page_bytes": size}
