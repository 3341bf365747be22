"""aipc report's SVG charts and cost curves: ticks, scales, marks, and the curves' break-even points."""

from __future__ import annotations

import math
import re

from aipc.cost import tco
from aipc.report import charts as C
from aipc.report.sections_cost import months_chart, runs, utilization_chart


def test_ticks_are_round_and_cover_the_range():
    assert C.nice_ticks(0, 93) == [0, 20, 40, 60, 80, 100]
    assert C.nice_ticks(0, 1.2) == [0, 0.25, 0.5, 0.75, 1.0, 1.25]  # step 2.5 x 10^-1
    assert C.log_ticks(0.3, 4000) == [0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0]
    assert C.log_ticks(2, 30) == [1, 2, 5, 10, 20, 50, 100, 200, 500]  # few decades: 1-2-5


def test_scales_map_ends_and_midpoints():
    s = C.Scale(0, 10, 100, 200)
    assert (s(0), s(5), s(10)) == (100, 150, 200)
    lg = C.Scale(1, 1000, 0, 300, log=True)
    assert math.isclose(lg(10), 100) and math.isclose(lg(1000), 300)


def test_capacity_mark_stands_where_its_value_is():
    svg = C.stacked_hbar([("a", {"weights": 10.0, "kv": 5.0})], title="t", fmt=lambda v: f"{v:g}",
                         marks=[("card", 20.0)], width=900, label_w=230)
    # plot spans x 230..830 for 0..max(15, 20)*1.05 = 21: the mark at 20 sits at 230 + 600*20/21
    xs = [float(x) for x in re.findall(r'<line x1="([\d.]+)" y1="[\d.]+" x2="\1"[^>]*stroke="#B00020"', svg)]
    assert len(xs) == 1 and abs(xs[0] - (230 + 600 * 20 / 21)) < 0.1
    assert ">card 20<" in svg and ">15<" in svg  # mark label and the bar's total


def test_hbar_prints_the_reason_instead_of_a_bar():
    svg = C.hbar_chart([("dev", {"s1": 12.0, "s2": "does not fit"})], ["s1", "s2"], title="t", fmt=lambda v: f"{v:g}")
    assert svg.count("<rect x=\"230\"") == 1 and "s2: does not fit" in svg


def _decision():
    buy = {"id": "buy:x", "kind": "buy", "label": "Buy X", "feasible": True, "capex": 3000.0, "devices": 1,
           "energy_per_month": 20.0, "ops_per_month": 0.0, "busy_device_hours_per_month": 200.0, "utilization": 200 / 730,
           "cost_per_month": 103.3,
           "break_even": [{"vs": "cloud:y", "cloud_per_month": 500.0, "months": 3000 / (500 - 20), "utilization": 0.1}]}
    cloud = {"id": "cloud:y", "kind": "cloud", "label": "Rent Y", "feasible": True, "cost_per_month": 500.0}
    return {"currency": "USD", "candidates": [buy, cloud], "picks": {"cheapest": {"id": "buy:x"}},
            "assumptions": [{"field": "horizon_months", "value": 36}, {"field": "residual_fraction", "value": 0.0}]}


def test_months_chart_marks_payback_where_the_lines_cross():
    svg = months_chart(_decision())
    assert "break-even 6.2 months" in svg  # 3000 / (500 - 20) = 6.25 -> "6.2"
    assert "$3,000 up front + $20.00/month" in svg and "Rent Y: $500/month" in svg


def test_utilization_chart_uses_the_tco_formula():
    svg = utilization_chart(_decision())
    u = 200 / 730
    expect = tco.amortized_per_hour(3000.0, 0.0, 36, u, 20.0 / 200.0, 0.0)
    assert f"needs today: {u * 100:.0f}%" in svg and "break-even 10%" in svg
    assert f"${expect:.2f} per busy device-hour" in svg


def test_sensitivity_runs_group_equal_neighbours():
    assert runs([0.1, 0.5, 1, 2, 4], ["A", "A", "B", "B", None]) == "0.1–0.5: A · 1–2: B · 4: nothing feasible"
