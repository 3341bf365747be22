"""aipc report and the team page: strings from data (model, device and machine names, reasons, sources)
come out escaped everywhere — table cells, facts, captions, the title, verdict lines and SVG chart
labels — so a hostile name can neither run script nor add an attribute. The page is rendered from
fixed data (no measuring)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from test_report_render import fixture_data

from aipc.report.html import SECTIONS, render_page

SCRIPT = "<script>alert(1)</script>"
ATTR = '"onmouseover=alert(2) x="'
HOSTILE = SCRIPT + ATTR


class _Page(HTMLParser):
    """Every tag and attribute the browser would build, the <title> text and every text node."""

    def __init__(self):
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.texts: list[str] = []
        self.in_title = False
        self.title = ""

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += attrs
        self.in_title = tag == "title" and not self.title

    def handle_endtag(self, tag):
        self.in_title = False

    def handle_data(self, data):
        self.texts.append(data)
        if self.in_title:
            self.title += data


def hostile_data() -> dict:
    d = fixture_data()
    d["machine"]["cpu"]["model"] = "CPU " + HOSTILE                        # title, h1, facts
    d["machine"]["gpus"][0]["name"] = "GPU " + HOSTILE                     # facts
    d["machine"]["devices"][1]["label"] = "dev " + HOSTILE                 # machine table cell
    d["bench"]["model"] = "bench " + HOSTILE                               # intro, verdict
    d["bench"]["results"][0]["device"] = "bdev " + HOSTILE                 # bench chart label, table cell
    d["bench"]["peaks"] = "peaks " + HOSTILE
    for i, w in enumerate(d["estimates"]["workloads"]):
        w["name"] = f"work {HOSTILE} {i}"                        # lists, chart series, table header
        w["model"] = "model " + HOSTILE
        w["rows"][2]["label"] = "cat " + HOSTILE                          # speed chart label, fit table
        w["rows"][3] = {**w["rows"][3], "available": False, "why": "why " + HOSTILE}  # status cell
    d["decision"]["candidates"][1]["label"] = "buy " + HOSTILE             # cost chart legend, options table
    d["decision"]["recommendation"] = "rec " + HOSTILE                     # <pre>
    d["decision"]["warnings"] = ["warn " + HOSTILE]
    d["decision"]["assumptions"][0]["source"] = "src " + HOSTILE           # assumptions table (wrap column)
    d["versions"]["torch"] = "ver " + HOSTILE                              # reproduce table
    return d


def _check(html: str, where: str) -> _Page:
    assert "<script" not in html.lower(), where
    assert not re.search(r'\s"?onmouseover=', html), where  # never an attribute, only escaped text
    p = _Page()
    p.feed(html)
    assert "script" not in p.tags, where
    assert not [a for a in p.attrs if a[0].startswith("on")], where  # no event-handler attribute was created
    return p


def test_hostile_names_are_escaped_everywhere_on_the_report_page():
    html = render_page(hostile_data())
    p = _check(html, "report page")
    text = "".join(p.texts)
    # the strings arrive intact as text: escaped, not dropped
    assert p.title.count(SCRIPT + ATTR) == 1, p.title
    for marker in ("CPU ", "GPU ", "dev ", "bench ", "bdev ", "peaks ", "work ", "model ", "cat ", "why ", "buy ",
                   "rec ", "warn ", "src ", "ver "):
        assert (marker + HOSTILE) in text, marker
    # inside the SVG charts (data labels, legends, tooltips) as well
    svgs = re.findall(r"<svg.*?</svg>", html, re.S)
    assert len(svgs) == 7
    in_svg = [s for s in svgs if "&lt;script&gt;alert(1)&lt;/script&gt;" in s]
    assert len(in_svg) >= 4, "hostile labels should appear (escaped) in the tokens, memory, speed and cost charts"
    # a status cell of the fit table: the coloured span, then the escaped reason
    assert '<span class="note">why &lt;script&gt;alert(1)&lt;/script&gt;&#34;onmouseover=alert(2) x=&#34;</span>' in html


def test_hostile_unavailable_reasons_are_escaped():
    d = fixture_data()
    for key in ("machine", "bench", "estimates", "decision"):
        d[key] = {"available": False, "why": f"{key} {HOSTILE}"}
    html = render_page(d)
    p = _check(html, "unavailable page")
    text = "".join(p.texts)
    for key in ("machine", "bench", "estimates", "decision"):
        assert f"not available: {key} {HOSTILE}" in text


def test_every_section_has_its_anchor_and_toc_entry():
    html = render_page(fixture_data())
    for sid, title, _ in SECTIONS:
        if sid == "here":  # only where the report data has the table (tests/test_report_here.py)
            continue
        assert f'<section id="{sid}">' in html and f'<a href="#{sid}">' in html
    assert html.startswith("<!doctype html>") and html.endswith("</html>\n")


def test_hostile_machine_names_are_escaped_on_the_team_page(tmp_path):
    from aipc.bench.store import ResultsDB
    from aipc.report.team import render_team, team_data

    db = ResultsDB(tmp_path / "t.sqlite")
    for host, med in (("pc " + HOSTILE, 0.04), ("ws", 0.02)):
        db.add_run(kind="bench", scenario="decode", device="cpu", model="m " + HOSTILE,
                   workload={"batch_size": 1, "prompt_tokens": 8, "gen_tokens": 4, "engine": "torch",
                             "weight_dtype": "fp32"},
                   metrics={"median_s": med, "tokens_per_s": 4 / med, "precision": "fp32"}, samples=[med],
                   context={"machine": {"fingerprint": f"fp-{med}", "host": host,
                                        "profile": {"machine": {"cpu": {"model": "cpu " + HOSTILE}, "gpus": []}}}})
    data = {"schema": "aipc-team/1", "db": "db " + HOSTILE, "generated_at": "2026-11-25",
            **team_data(db.runs(brief=True), reference="ws")}
    html = render_team(data)
    p = _check(html, "team page")
    text = "".join(p.texts)
    assert ("pc " + HOSTILE) in text and ("m " + HOSTILE) in text and ("db " + HOSTILE) in text
    svg = re.findall(r"<svg.*?</svg>", html, re.S)
    assert svg and "pc &lt;script&gt;" in svg[0]  # the chart's unit label, escaped inside the SVG
