"""The report's "What you can run here": the ``aipc models --here`` table (aipc.bench.here) for this
machine, its best rows, and one chart of decode tokens/s against model size — one series per engine
and weight format (the formats ``aipc bench --sweep`` measures, one per kernel family, plus any format
with a measured point), measured points marked."""

from __future__ import annotations

from typing import Any

from aipc.render import gb, si
from aipc.report import charts as C
from aipc.report.templating import na, render

TOP_ROWS = 20


def here_section(db=None, device: str = "this") -> dict[str, Any]:
    """The report data: the whole table (collected once, shown by :func:`here_html`)."""
    from aipc.bench.here import here_table

    return {"available": True, **here_table(device, db=db)}


def _series_pairs(h: dict) -> list[tuple[str, str]]:
    from aipc.bench.here_sweep import sweep_formats

    pairs = [(e, f) for e in h["engines"] for f in sweep_formats(e)]
    measured = [(r["engine"], r["format"]) for r in h["rows"] if r["decode_kind"] == "measured"]
    return list(dict.fromkeys(pairs + sorted(measured)))


def chart(h: dict) -> str:
    """Decode tokens/s against parameters (log-log), a line per engine and format over the models that
    fit with some context; measured figures as diamonds labelled with the model."""
    series, points = [], []
    for i, (e, f) in enumerate(_series_pairs(h)):
        rows = sorted((r for r in h["rows"] if (r["engine"], r["format"]) == (e, f) and r["decode_tokens_per_s"]
                       and r["max_context"]), key=lambda r: (r["params"], r["model"]))
        series.append({"name": f"{e} {f}", "points": [(r["params"], r["decode_tokens_per_s"]) for r in rows],
                       "color": C.color(i)})
        points += [{"x": r["params"], "y": r["decode_tokens_per_s"], "label": r["model"], "shape": "diamond",
                    "color": C.color(i), "tip": f"{r['model']} {e} {f}: measured {r['decode_tokens_per_s']:.3g} tokens/s"}
                   for r in rows if r["decode_kind"] == "measured"]
    return C.line_chart(series, points=points, title="Decode tokens/s against model size, this machine",
                        x_label="parameters", y_label="decode tokens/s (batch 1)", x_fmt=lambda v: si(v, "", 2),
                        y_fmt=lambda v: f"{v:.3g}", xlog=True, ylog=True,
                        note="lines: the table's figures (calibrated or default); diamonds: measured here")


def _tps(r: dict, scen: str) -> str:
    v = r[f"{scen}_tokens_per_s"]
    return "-" if v is None else f"{v:.3g} ({r[f'{scen}_kind']})"


def here_html(data: dict):
    h = data.get("here") or {}
    if not h.get("available"):
        return na(h.get("why", "not collected"))
    if not h["measured_peaks"]:
        return na("no measured peaks for this machine: run 'aipc hw', then 'aipc bench --sweep'")
    rows = [[r["model"], r["engine"], r["format"], gb(r["memory_4k_bytes"]),
             "-" if r["max_context"] is None else f"{r['max_context']:,}", _tps(r, "prefill"), _tps(r, "decode")]
            for r in h["rows"][:TOP_ROWS]]
    errs = "; ".join(f"{e.get('engine', 'torch') + ' ' if 'engine' in e else ''}{e['kind']} {e['scenario']}: "
                     f"{e['median_abs_error']:.0%} ({e['source']}, {e['date']})"
                     for e in h["expected_errors"] if e["scenario"] in ("decode", "prefill"))
    return render("sections/here.html", h=h, n_fit=sum(1 for r in h["rows"] if r["max_context"]),
                  shape=h["shape"], chart_svg=chart(h), rows=rows, shown=min(TOP_ROWS, len(h["rows"])), errs=errs)
