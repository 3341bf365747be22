"""Monthly costing over fixed performance: properties (hypothesis) and the sensitivity scan's crossings."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aipc.cost.candidates import Candidate
from aipc.cost.costing import Scenario, cost_candidate
from aipc.cost.needs import needs_from_dict
from aipc.cost.perf import JobPerf, ServePerf, batch_for
from aipc.cost.sensitivity import scan
from aipc.hardware.spec import DeviceSpec

DEV = DeviceSpec(name="gpu", label="GPU", vendor="nvidia", kind="gpu", category="workstation", memory_bytes=2**35,
                 usable_memory_bytes=2**35, bandwidth_bytes_s=1e12, peak_flops={"bf16": 1e14}, power_w=400)


def needs(jobs_per_month=4.0, rpd=5000.0, **assumptions):
    return needs_from_dict({
        "jobs": [{"name": "j", "model": "llama-3.2-1b", "train_tokens": 10_000_000, "jobs_per_month": jobs_per_month}],
        "inference": [{"name": "s", "model": "llama-3.2-1b", "requests_per_day": rpd}],
        "assumptions": {"electricity_per_kwh": 0.2, **assumptions}})


JOB = JobPerf(feasible=True, miss=1.0, devices=2, tokens_per_s=2000.0, job_s=5000.0)
SERVE = ServePerf(feasible=True, miss=0.5, devices_per_replica=1, batch=1, ttft_s=0.1, tpot_s=0.02,
                  request_s=5.2, requests_per_s=1 / 5.2, curve=((1, 1 / 5.2), (2, 2 / 5.6), (4, 4 / 6.4)))
PERFS = [JOB, SERVE]


def buy(capex=3000.0):
    return Candidate(id="buy:gpu", kind="buy", device=DEV, label="Buy GPU", capex_per_device=capex, pue=1.0)


def rent(rate=1.0, k=1):
    return Candidate(id=f"cloud:gpu:{rate}", kind="cloud", device=DEV, label=f"Rent GPU at {rate}", per_hour=rate,
                     devices_per_instance=k, provider="P", pue=1.56)


def test_batch_for_picks_smallest_sufficient_batch():
    curve = ((1, 0.2), (2, 0.35), (4, 0.6))
    assert batch_for(curve, 0.1) == (1, 0.2)
    assert batch_for(curve, 0.3) == (2, 0.35)
    assert batch_for(curve, 5.0) == (4, 0.6)   # beyond one replica: the largest batch, more replicas


def test_costing_by_hand():
    n = needs()
    core = cost_candidate(rent(2.0), PERFS, n)
    jobs_h = 4 * 5000 / 3600 * 2                     # 4 jobs, 5000 s each, on 2 devices
    reqs = 5000 * 365 / 12
    busy_s = reqs * 5.2 / 3600                        # average 0.058/s fits batch 1
    assert core.workloads[0].paid_device_hours_per_month == pytest.approx(jobs_h)
    assert core.workloads[1].busy_device_hours_per_month == pytest.approx(busy_s)
    assert core.workloads[1].paid_device_hours_per_month == pytest.approx(730)      # always on
    assert core.total_per_month == pytest.approx(2.0 * (jobs_h + 730))
    owned = cost_candidate(buy(3000), PERFS, n)
    assert owned.devices == 2                         # the job spans 2 devices
    e = 0.4 * 1.0 * 0.2
    assert owned.total_per_month == pytest.approx(2 * 3000 / 36 + (jobs_h + busy_s) * e)
    assert owned.utilization == pytest.approx((jobs_h + busy_s) / (2 * 730))


@settings(max_examples=150, deadline=None)
@given(p1=st.floats(10, 1e5), p2=st.floats(10, 1e5), d=st.floats(0.05, 20))
def test_owned_cost_rises_with_purchase_price(p1, p2, d):
    lo, hi = sorted((p1, p2))
    n = needs()
    a = cost_candidate(buy(lo), PERFS, n, Scenario(demand=d)).total_per_month
    b = cost_candidate(buy(hi), PERFS, n, Scenario(demand=d)).total_per_month
    assert a <= b + 1e-9


@settings(max_examples=150, deadline=None)
@given(r1=st.floats(0.05, 50), r2=st.floats(0.05, 50), k=st.sampled_from([1, 8]), d=st.floats(0.05, 20))
def test_cloud_cost_rises_with_price(r1, r2, k, d):
    lo, hi = sorted((r1, r2))
    n = needs()
    a = cost_candidate(rent(lo, k), PERFS, n, Scenario(demand=d)).total_per_month
    b = cost_candidate(rent(hi, k), PERFS, n, Scenario(demand=d)).total_per_month
    assert a <= b + 1e-9


@settings(max_examples=150, deadline=None)
@given(d1=st.floats(0.01, 50), d2=st.floats(0.01, 50), always_on=st.booleans(),
       which=st.sampled_from(["buy", "rent", "rent8"]), electricity=st.floats(0.5, 4))
def test_cost_rises_with_demand(d1, d2, always_on, which, electricity):
    lo, hi = sorted((d1, d2))
    n = needs(always_on=always_on)
    c = {"buy": buy(), "rent": rent(1.5), "rent8": rent(1.5, 8)}[which]
    a = cost_candidate(c, PERFS, n, Scenario(demand=lo, electricity=electricity)).total_per_month
    b = cost_candidate(c, PERFS, n, Scenario(demand=hi, electricity=electricity)).total_per_month
    assert a <= b + 1e-9


def test_scan_finds_each_crossing_by_hand():
    # training only: owned = f*300/H + 0.08 h, cloud = x*1.0*h, h = busy hours (5.56 today)
    n = needs_from_dict({"jobs": [{"name": "j", "model": "llama-3.2-1b", "train_tokens": 10_000_000,
                                   "jobs_per_month": 4}], "assumptions": {"electricity_per_kwh": 0.2}})
    one = JobPerf(feasible=True, miss=1.0, devices=1, tokens_per_s=2000.0, job_s=5000.0)
    h0 = 4 * 5000 / 3600
    rows, flips = scan([buy(300), rent(1.0)], [[one], [one]], n)
    at = {f.parameter: f for f in flips}
    assert set(at) == {"demand", "cloud_price", "purchase_price", "horizon_months"}
    assert at["demand"].at == pytest.approx((300 / 36) / (1.0 - 0.08) / h0, rel=1e-6)
    assert (at["demand"].from_id, at["demand"].to_id) == ("cloud:gpu:1.0", "buy:gpu")
    assert at["cloud_price"].at == pytest.approx((300 / 36 + 0.08 * h0) / h0, rel=1e-6)
    assert at["purchase_price"].at == pytest.approx((1.0 - 0.08) * h0 * 36 / 300, rel=1e-6)
    assert at["horizon_months"].at == pytest.approx(300 / ((1.0 - 0.08) * h0), rel=1e-6)
    assert "would be cheapest" in at["demand"].sentence and "rose above" in at["demand"].sentence
    row = next(r for r in rows if r.parameter == "demand")
    assert row.cheapest[row.values.index(0.1)] == "cloud:gpu:1.0" and row.cheapest[-1] == "buy:gpu"
    assert row.cost_per_month[row.values.index(1.0)] == pytest.approx(h0)
