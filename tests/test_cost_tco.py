"""TCO formulas: hand-computed cases and properties (hypothesis)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aipc.cost import tco


def test_issue_case_35k_server_breaks_even_at_55_percent():
    # a $35,000 server, 3-year horizon, 0 residual, $0.09/h energy, vs $2.50/h on demand:
    # 35000 / (3*8760*u) + 0.09 = 2.50  =>  u = 35000 / (26280 * 2.41)
    expected = 35000 / (26280 * 2.41)
    assert expected == pytest.approx(0.55262, abs=1e-5)  # 0.552619...
    u = tco.break_even_utilization(35000, 0.0, 36, 0.09, 2.50)
    assert u == pytest.approx(expected, rel=1e-12)
    # at that utilization the amortized hour costs exactly the cloud hour
    assert tco.amortized_per_hour(35000, 0.0, 36, u, 0.09) == pytest.approx(2.50, rel=1e-12)


def test_amortized_per_hour_by_hand():
    # $2,000, 20% resale, 24 months, 50% busy, 450 W at PUE 1.0 and $0.20/kWh, $10/month ops
    h = 24 * 730
    expected = 2000 * 0.8 / (h * 0.5) + 0.45 * 1.0 * 0.20 + 10 / (730 * 0.5)
    assert tco.amortized_per_hour(2000, 0.2, 24, 0.5, tco.energy_per_hour(450, 1.0, 0.20), 10) == pytest.approx(expected)
    assert tco.horizon_hours(36) == pytest.approx(26280)


def test_energy_and_kwh():
    assert tco.energy_per_hour(700, 1.56, 0.13) == pytest.approx(0.7 * 1.56 * 0.13)
    assert tco.energy_per_hour(None, 1.56, 0.13) == 0.0
    assert tco.kwh(450, 1.0, 10) == pytest.approx(4.5)
    assert tco.kwh(None, 1.0, 10) is None


def test_break_even_speed_ratio_and_never():
    # the cloud device does the work in half the hours: owning must beat $2.50 * 0.5 per owned hour
    u = tco.break_even_utilization(35000, 0.0, 36, 0.09, 2.50, cloud_hours_per_owned_hour=0.5)
    assert u == pytest.approx(35000 / (26280 * (1.25 - 0.09)))
    # renting is cheaper than the electricity alone: never
    assert tco.break_even_utilization(35000, 0.0, 36, 3.0, 2.50) == math.inf
    # nothing to pay off: owning wins at any utilization
    assert tco.break_even_utilization(0, 0.0, 36, 0.09, 2.50) == 0.0


def test_payback_rounding_replicas():
    assert tco.payback_months(35000, 250.0, 9.0) == pytest.approx(35000 / 241)
    assert tco.payback_months(35000, 5.0, 9.0) == math.inf
    assert tco.payback_months(0, 5.0, 9.0) == 0.0
    assert tco.rented_device_hours(1, 8, 10) == 80       # one GPU of an 8-GPU instance: all 8 billed
    assert tco.rented_device_hours(9, 8, 10) == 160
    assert tco.rented_device_hours(3, 1, 10) == 30
    assert tco.replicas_needed(2.5, 1.0) == 3
    assert tco.replicas_needed(2.0, 1.0) == 2
    assert tco.replicas_needed(0.01, 1.0) == 1
    assert tco.per_million(5.0, 2_000_000) == pytest.approx(2.5)
    assert tco.per_million(5.0, 0) is None


money = st.floats(min_value=100, max_value=1e6, allow_nan=False)
rate = st.floats(min_value=0.1, max_value=50, allow_nan=False)
frac = st.floats(min_value=0.0, max_value=0.9)


@settings(max_examples=200, deadline=None)
@given(capex=money, r=frac, months=st.floats(min_value=1, max_value=120), e=st.floats(min_value=0, max_value=0.5),
       c1=rate, c2=rate)
def test_break_even_utilization_falls_as_cloud_price_rises(capex, r, months, e, c1, c2):
    lo, hi = sorted((c1, c2))
    u_lo = tco.break_even_utilization(capex, r, months, e, lo)
    u_hi = tco.break_even_utilization(capex, r, months, e, hi)
    assert u_hi <= u_lo


@settings(max_examples=200, deadline=None)
@given(p1=money, p2=money, u=st.floats(min_value=0.01, max_value=1.0), e=st.floats(min_value=0, max_value=0.5))
def test_amortized_cost_rises_with_purchase_price(p1, p2, u, e):
    lo, hi = sorted((p1, p2))
    assert tco.amortized_per_hour(lo, 0.1, 36, u, e) <= tco.amortized_per_hour(hi, 0.1, 36, u, e)


@settings(max_examples=200, deadline=None)
@given(capex=money, u1=st.floats(min_value=0.01, max_value=1.0), u2=st.floats(min_value=0.01, max_value=1.0))
def test_amortized_cost_falls_with_utilization(capex, u1, u2):
    lo, hi = sorted((u1, u2))
    assert tco.amortized_per_hour(capex, 0.0, 36, hi, 0.05) <= tco.amortized_per_hour(capex, 0.0, 36, lo, 0.05)
