"""The report's "What you can run here": built from the models --here table (a catalog device's, with
one figure marked measured as a results DB would), one deterministic chart, the best rows in order."""

from __future__ import annotations

import copy
import html as html_lib
import re

import pytest
from test_report_render import fixture_data

from aipc.bench.here_sweep import sweep_formats
from aipc.report.collect import unavailable
from aipc.report.html import render_page
from aipc.report.sections_here import TOP_ROWS, here_html, here_section


@pytest.fixture(scope="module")
def here():
    h = here_section(device="rtx-4090")
    r = next(r for r in h["rows"] if (r["model"], r["engine"], r["format"]) == ("qwen2.5-0.5b", "llamacpp", "q4_k_m"))
    r.update(decode_kind="measured", decode_tokens_per_s=123.0)  # as a stored run would set it
    h["measured_figures"] = 1
    return h


def test_section_chart_and_rows(here):
    html = here_html({"here": here})
    svg = re.search(r"<svg.*?</svg>", html, re.S).group(0)
    names = re.findall(r"<polyline [^>]*><title>([^<]+)</title>", svg)
    assert names == [f"{e} {f}" for e in here["engines"] for f in sweep_formats(e)]
    diamonds = re.findall(r'<path d="M[^"]+"[^>]*><title>([^<]+)</title>', svg)
    assert diamonds == ["qwen2.5-0.5b llamacpp q4_k_m: measured 123 tokens/s"]
    cells = re.findall(r"<tr><td>([^<]+)</td><td>([^<]+)</td><td>([^<]+)</td>", html)
    assert cells == [(r["model"], r["engine"], r["format"]) for r in here["rows"][:TOP_ROWS]]
    assert "1 figures measured here" in html and "calibrated decode: 17%" in html
    assert here_html({"here": copy.deepcopy(here)}) == html  # deterministic


def test_on_the_page_and_not_available(here):
    page = render_page({**fixture_data(), "here": here})
    assert '<section id="here"><h2>What you can run here' in page and 'href="#here"' in page
    assert "not available: no profile" in here_html({"here": unavailable("no profile")})
    no_peaks = {**here, "measured_peaks": False}
    assert "run 'aipc hw'" in html_lib.unescape(here_html({"here": no_peaks})) and "<svg" not in here_html({"here": no_peaks})
