"""Inline SVG charts, drawn in Python: horizontal bars, stacked bars with markers, lines on linear or log axes.

Every chart is one ``<svg>`` string with a fixed width and height (so a page lays out before it
paints and a test can find each chart), text in the SVG itself, and no script, font or image from
anywhere. Values arrive in base units; ``fmt`` callables humanize them for labels.

Every text drawn (titles, labels, legends, tooltips) goes through ``escape`` here, and numbers and
colours come from code, so a chart is returned as ``Markup`` that the page templates insert as it is.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from html import escape

from markupsafe import Markup

# Okabe-Ito colour-blind-safe palette, then two greys.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000",
           "#999999", "#666666")
FONT = "font-family:system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',Arial,sans-serif"
Fmt = Callable[[float], str]


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _num(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


def _text(x: float, y: float, s: str, *, size: int = 12, anchor: str = "start", weight: str = "normal",
          fill: str = "#222", extra: str = "") -> str:
    return (f'<text x="{_num(x)}" y="{_num(y)}" font-size="{size}" text-anchor="{anchor}" font-weight="{weight}" '
            f'fill="{fill}"{extra}>{escape(s)}</text>')


def _short(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def _svg(width: int, height: int, title: str, body: list[str]) -> Markup:
    """The chart; every part of ``body`` was built with its text escaped (``_text``, ``escape``)."""
    return Markup(f'<svg xmlns="http://www.w3.org/2000/svg" class="chart-svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" style="{FONT}">'
            f'<title>{escape(title)}</title><rect x="0" y="0" width="{width}" height="{height}" fill="#fff"/>'
                  + "".join(body) + "</svg>")


# ------------------------------------------------------------------------------ scales and ticks

def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering [lo, hi] (steps of 1, 2, 2.5 or 5 x 10^k)."""
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / n
    step = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= step * m:
            step *= m
            break
    start = math.floor(lo / step) * step
    ticks, t = [], start
    while t <= hi + step * 0.5:
        ticks.append(round(t, 12))
        t += step
    return ticks


def log_ticks(lo: float, hi: float) -> list[float]:
    """Powers of ten covering [lo, hi] (lo > 0); with 1, 2 and 5 of each decade when it spans three or fewer."""
    a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    steps = (1, 2, 5) if b - a <= 3 else (1,)
    return [m * 10.0 ** k for k in range(a, max(b, a + 1) + 1) for m in steps]


class Scale:
    """Maps data to pixels on a linear or log axis."""

    def __init__(self, lo: float, hi: float, p0: float, p1: float, log: bool = False):
        self.log = log
        if log:
            lo, hi = max(lo, 1e-300), max(hi, lo * 10)
            self.lo, self.hi = math.log10(lo), math.log10(hi)
        else:
            self.lo, self.hi = lo, hi if hi > lo else lo + 1
        self.p0, self.p1 = p0, p1

    def __call__(self, v: float) -> float:
        x = math.log10(max(v, 1e-300)) if self.log else v
        return self.p0 + (x - self.lo) / (self.hi - self.lo) * (self.p1 - self.p0)


def _legend(items: Sequence[tuple[str, str, bool]], x0: float, y0: float, width: float) -> tuple[list[str], float]:
    """Swatches with names, wrapped to ``width``; returns (svg parts, height used)."""
    out, x, y = [], x0, y0
    for name, col, dashed in items:
        w = 28 + 6.6 * len(name)
        if x + w > x0 + width and x > x0:
            x, y = x0, y + 18
        dash = ' stroke-dasharray="5 3"' if dashed else ""
        out.append(f'<line x1="{_num(x)}" y1="{_num(y - 4)}" x2="{_num(x + 18)}" y2="{_num(y - 4)}" stroke="{col}" '
                   f'stroke-width="6"{dash}/>')
        out.append(_text(x + 22, y, name, size=11))
        x += w
    return out, (y - y0) + 18 if items else 0


def _finish(body: list[str], width: int, title: str, legend: Sequence[tuple[str, str, bool]], x0: float, y: float,
            legend_w: float, note: str) -> Markup:
    """The chart's foot and the chart: the legend from (``x0``, ``y``) wrapped to ``legend_w``, the note under it."""
    leg, h = _legend(legend, x0, y, legend_w)
    body += leg
    y += h
    if note:
        body.append(_text(8, y, note, size=10, fill="#555"))
        y += 14
    return _svg(width, int(y + 4), title, body)


# ------------------------------------------------------------------------------ horizontal bars

def hbar_chart(rows: Sequence[tuple[str, dict[str, float | str | None]]], series: Sequence[str], *, title: str,
               fmt: Fmt, log: bool = False, width: int = 900, label_w: int = 230, note: str = "") -> Markup:
    """Grouped horizontal bars: one group per row label, one bar per series (a string value is
    printed instead of a bar: why there is no number; None: 'not available')."""
    bar_h, gap, top = 14, 10, 34
    n = max(len(series), 1)
    group_h = n * bar_h + gap
    vals = [v for _, d in rows for v in d.values() if isinstance(v, (int, float)) and v > 0]
    lo, hi = (min(vals), max(vals)) if vals else (1.0, 10.0)
    x0, x1 = label_w, width - 90
    sx = Scale(lo / 2 if log else 0.0, hi * (1.6 if log else 1.08), x0, x1, log)
    plot_h = len(rows) * group_h
    body = [_text(8, 18, title, size=14, weight="bold")]
    ticks = log_ticks(lo / 2, hi * 1.6) if log else nice_ticks(0.0, hi * 1.08)
    for t in ticks:
        if sx.lo <= (math.log10(t) if log else t) <= sx.hi + 1e-12:
            x = sx(t)
            body.append(f'<line x1="{_num(x)}" y1="{top}" x2="{_num(x)}" y2="{top + plot_h}" stroke="#e3e3e3"/>')
            body.append(_text(x, top + plot_h + 14, fmt(t), size=10, anchor="middle", fill="#555"))
    for i, (label, d) in enumerate(rows):
        y = top + i * group_h
        body.append(_text(x0 - 8, y + n * bar_h / 2 + 4, _short(label, label_w // 7), anchor="end"))
        for j, s in enumerate(series):
            v = d.get(s)
            yy = y + j * bar_h
            if v is None or isinstance(v, str) or v <= 0:
                why = v if isinstance(v, str) else "not available"
                body.append(_text(x0 + 4, yy + bar_h - 3, f"{s}: {why}" if n > 1 else why, size=10, fill="#888"))
                continue
            w = max(sx(v) - x0, 1.0)
            body.append(f'<rect x="{x0}" y="{_num(yy + 1)}" width="{_num(w)}" height="{bar_h - 2}" fill="{color(j)}">'
                        f'<title>{escape(f"{label} — {s}: {fmt(v)}")}</title></rect>')
            body.append(_text(x0 + w + 4, yy + bar_h - 3, fmt(v), size=10))
    body.append(f'<line x1="{x0}" y1="{top}" x2="{x0}" y2="{top + plot_h}" stroke="#444"/>')
    legend = [(s, color(j), False) for j, s in enumerate(series)] if len(series) > 1 else []
    return _finish(body, width, title, legend, x0, top + plot_h + 32, x1 - x0, note)


# ------------------------------------------------------------------------------ stacked bars + marks

def stacked_hbar(rows: Sequence[tuple[str, dict[str, float]]], *, title: str, fmt: Fmt,
                 marks: Sequence[tuple[str, float]] = (), width: int = 900, label_w: int = 230, note: str = "",
                 tick_unit: float = 1.0) -> Markup:
    """One stacked bar per row (components in a shared order and colour), vertical lines at ``marks``;
    axis ticks are round numbers of ``tick_unit`` (e.g. 2**30 for GiB)."""
    comps: list[str] = []
    for _, d in rows:
        comps += [c for c in d if c not in comps and d[c] > 0]
    bar_h, gap = 22, 12
    mark_rows = min(len(marks), 4)
    top = 30 + 14 * mark_rows
    x0, x1 = label_w, width - 70
    totals = [sum(v for v in d.values() if v > 0) for _, d in rows]
    hi = max([*totals, *(v for _, v in marks), 1.0]) * 1.05
    sx = Scale(0.0, hi, x0, x1)
    plot_h = len(rows) * (bar_h + gap)
    body = [_text(8, 18, title, size=14, weight="bold")]
    for t in (u * tick_unit for u in nice_ticks(0.0, hi / tick_unit)):
        if t <= hi:
            x = sx(t)
            body.append(f'<line x1="{_num(x)}" y1="{top}" x2="{_num(x)}" y2="{top + plot_h}" stroke="#eee"/>')
            body.append(_text(x, top + plot_h + 14, fmt(t), size=10, anchor="middle", fill="#555"))
    for i, (label, d) in enumerate(rows):
        y = top + i * (bar_h + gap)
        body.append(_text(x0 - 8, y + bar_h / 2 + 4, _short(label, label_w // 7), anchor="end"))
        x = x0
        for c in comps:
            v = d.get(c, 0)
            if v <= 0:
                continue
            w = sx(v) - x0
            body.append(f'<rect x="{_num(x)}" y="{_num(y)}" width="{_num(max(w, 0.5))}" height="{bar_h}" '
                        f'fill="{color(comps.index(c))}"><title>{escape(f"{label} — {c}: {fmt(v)}")}</title></rect>')
            x += w
        body.append(_text(x + 4, y + bar_h / 2 + 4, fmt(totals[i]), size=11, weight="bold"))
    for k, (name, v) in enumerate(sorted(marks, key=lambda m: m[1])):
        x = sx(v)
        ly = 30 + 14 * (k % max(mark_rows, 1))
        body.append(f'<line x1="{_num(x)}" y1="{ly + 2}" x2="{_num(x)}" y2="{top + plot_h}" stroke="#B00020" '
                    f'stroke-width="1.5" stroke-dasharray="4 3"><title>{escape(f"{name}: {fmt(v)}")}</title></line>')
        anchor = "end" if x > (x0 + x1) / 2 else "start"
        body.append(_text(x + (-3 if anchor == "end" else 3), ly, f"{name} {fmt(v)}", size=10, anchor=anchor,
                          fill="#B00020"))
    body.append(f'<line x1="{x0}" y1="{top}" x2="{x0}" y2="{top + plot_h}" stroke="#444"/>')
    return _finish(body, width, title, [(c, color(i), False) for i, c in enumerate(comps)], x0, top + plot_h + 34,
                   x1 - x0, note)


# ------------------------------------------------------------------------------ lines and points

def line_chart(series: Sequence[dict], *, title: str, x_label: str, y_label: str, x_fmt: Fmt, y_fmt: Fmt,
               points: Sequence[dict] = (), xlog: bool = False, ylog: bool = False, width: int = 900,
               height: int = 380, note: str = "") -> Markup:
    """Polylines (``{"name", "points": [(x, y)], "dashed"?, "color"?}``) and labelled points
    (``{"x", "y", "label", "color"?, "shape"?: "circle"|"diamond"}``) on linear or log axes."""
    xs = [p[0] for s in series for p in s["points"]] + [p["x"] for p in points]
    ys = [p[1] for s in series for p in s["points"]] + [p["y"] for p in points]
    if xlog:
        xs = [x for x in xs if x > 0]
    if ylog:
        ys = [y for y in ys if y > 0]
    xlo, xhi = (min(xs), max(xs)) if xs else (1.0, 10.0)
    ylo, yhi = (min(ys), max(ys)) if ys else (1.0, 10.0)
    if not ylog:
        ylo, yhi = min(0.0, ylo), yhi * 1.08
    if not xlog:
        xlo = min(0.0, xlo)
    ml, mr, mt, mb = 78, 20, 34, 46
    ph = height - mt - mb
    sx = Scale(xlo, xhi, ml, width - mr, xlog)
    sy = Scale(ylo if not ylog else ylo / 1.5, yhi if not ylog else yhi * 1.5, mt + ph, mt, ylog)
    body = [_text(8, 18, title, size=14, weight="bold")]
    xt = log_ticks(xlo, xhi) if xlog else nice_ticks(xlo, xhi, 6)
    yt = log_ticks(ylo / 1.5, yhi * 1.5) if ylog else nice_ticks(ylo, yhi, 5)
    for t in xt:
        x = sx(t)
        if ml - 0.5 <= x <= width - mr + 0.5:
            body.append(f'<line x1="{_num(x)}" y1="{mt}" x2="{_num(x)}" y2="{mt + ph}" stroke="#eee"/>')
            body.append(_text(x, mt + ph + 14, x_fmt(t), size=10, anchor="middle", fill="#555"))
    for t in yt:
        y = sy(t)
        if mt - 0.5 <= y <= mt + ph + 0.5:
            body.append(f'<line x1="{ml}" y1="{_num(y)}" x2="{width - mr}" y2="{_num(y)}" stroke="#eee"/>')
            body.append(_text(ml - 6, y + 4, y_fmt(t), size=10, anchor="end", fill="#555"))
    body.append(f'<rect x="{ml}" y="{mt}" width="{width - ml - mr}" height="{ph}" fill="none" stroke="#444"/>')
    body.append(_text((ml + width - mr) / 2, mt + ph + 32, x_label, size=11, anchor="middle"))
    body.append(_text(14, mt + ph / 2, y_label, size=11, anchor="middle",
                      extra=f' transform="rotate(-90 14 {_num(mt + ph / 2)})"'))
    cid = "clip-" + re.sub(r"[^a-z0-9]+", "-", title.lower())[:48]
    body.append(f'<clipPath id="{cid}"><rect x="{ml}" y="{mt}" width="{width - ml - mr}" height="{ph}"/></clipPath>')
    clip = f'clip-path="url(#{cid})"'
    legend = []
    for i, s in enumerate(series):
        col = s.get("color") or color(i)
        pts = [(x, y) for x, y in s["points"] if (x > 0 or not xlog) and (y > 0 or not ylog)]
        if len(pts) < 2:
            continue
        d = " ".join(f"{_num(sx(x))},{_num(sy(y))}" for x, y in pts)
        dash = ' stroke-dasharray="6 4"' if s.get("dashed") else ""
        body.append(f'<polyline points="{d}" fill="none" stroke="{col}" stroke-width="2.2"{dash} {clip}>'
                    f'<title>{escape(s["name"])}</title></polyline>')
        legend.append((s["name"], col, bool(s.get("dashed"))))
    placed: list[tuple[float, float]] = []
    for p in points:
        if (xlog and p["x"] <= 0) or (ylog and p["y"] <= 0):
            continue
        x, y, col = sx(p["x"]), sy(p["y"]), p.get("color", "#000")
        tip = escape(p.get("tip", p.get("label", "")))
        if p.get("shape") == "diamond":
            body.append(f'<path d="M{_num(x)},{_num(y - 6)} l6,6 l-6,6 l-6,-6 z" fill="{col}" stroke="#000" '
                        f'stroke-width="0.8"><title>{tip}</title></path>')
        else:
            body.append(f'<circle cx="{_num(x)}" cy="{_num(y)}" r="5" fill="{col}" stroke="#000" stroke-width="0.8">'
                        f'<title>{tip}</title></circle>')
        if p.get("label"):
            right = x < width - 200
            ly = y - 8
            while any(abs(ly - py) < 12 and abs(x - px) < 140 for px, py in placed):
                ly += 12  # keep labels of nearby points apart
            placed.append((x, ly))
            body.append(_text(x + (8 if right else -8), ly, p["label"], size=10, anchor="start" if right else "end"))
    return _finish(body, width, title, legend, ml, mt + ph + 52, width - ml - mr, note)
