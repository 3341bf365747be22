"""decide end to end with constructed devices: hand-computed costs, break-even, feasibility, picks.

Throughput is pinned by measured runs (a real ResultsDB-shaped index), so every money figure here
is computed by hand from the numbers in the test, independent of the estimator's tuning.
"""

from __future__ import annotations

import math

import pytest

from aipc.cost import decide
from aipc.cost.needs import needs_from_dict
from aipc.cost.throughput import MeasuredIndex
from aipc.hardware.spec import CloudOffer, DeviceSpec

GIB = 2**30


def server(name="srv", price=35000.0, power=1000.0, offers=((2.50, 1),), bf16=989e12, bw=3.35e12, mem_gib=80,
           category="datacenter"):
    return DeviceSpec(
        name=name, label=f"Test {name}", vendor="nvidia", kind="gpu", category=category,
        memory_bytes=mem_gib * GIB, usable_memory_bytes=mem_gib * GIB, bandwidth_bytes_s=bw,
        peak_flops={"bf16": bf16, "fp32": bf16 / 10}, power_w=power, price_usd=price,
        cloud=tuple(CloudOffer(provider=f"Cloud{i}", usd_per_hour=r, source="test", as_of="2026-11-25",
                               instance=f"{k}x", devices_per_instance=k) for i, (r, k) in enumerate(offers)))


def runs(device="srv", tokens_per_s=1000.0, ttft=0.2, tpot=0.02, model="llama-3.2-1b"):
    return MeasuredIndex(rows(device, tokens_per_s, ttft, tpot, model))


def rows(device="srv", tokens_per_s=1000.0, ttft=0.2, tpot=0.02, model="llama-3.2-1b"):
    return [
        {"device": device, "model": model, "scenario": "train", "workload": {"method": "lora", "batch_size": 1},
         "metrics": {"tokens_per_s": {"median": tokens_per_s}}},
        {"device": device, "model": model, "scenario": "prefill", "workload": {"batch_size": 1, "prompt_tokens": 512},
         "metrics": {"ttft_s": ttft}},
        {"device": device, "model": model, "scenario": "decode", "workload": {"batch_size": 1},
         "metrics": {"tpot_s": tpot}},
    ]


BASE = {"assumptions": {"electricity_per_kwh": 0.09, "pue_datacenter": 1.0, "horizon_months": 36},
        "candidates": {"owned": False}}
JOB = {"name": "ft", "model": "llama-3.2-1b", "method": "lora", "train_tokens": 36_000_000, "jobs_per_month": 10}


def run(extra: dict, devices=None, idx=None, local=()):
    raw = {**BASE, **extra}
    devs = devices or [server()]
    return decide(needs_from_dict(raw), catalog={d.name: d for d in devs}, local=list(local),
                  measured=idx if idx is not None else runs())


def by_id(d, cid):
    return next(c for c in d.candidates if c.id == cid)


def test_training_costs_by_hand():
    d = run({"jobs": [JOB]})
    buy, cloud = by_id(d, "buy:srv"), by_id(d, "cloud:srv:Cloud0:1x")
    # measured 1000 tokens/s: 36M tokens = 10 h a job, 10 jobs = 100 busy device-hours a month
    for c in (buy, cloud):
        assert c.feasible and c.devices == 1
        assert c.workloads[0].time_per_job_s == pytest.approx(36_000)
        assert c.busy_device_hours_per_month == pytest.approx(100)
        assert c.throughput_source == "measured (1 run)"
    assert cloud.cost_per_month == pytest.approx(250.0)                      # 100 h x $2.50
    assert buy.capex == 35000
    assert buy.capex_per_month == pytest.approx(35000 / 36)
    assert buy.energy_per_month == pytest.approx(100 * 1.0 * 1.0 * 0.09)    # h x kW x PUE x $/kWh
    assert buy.cost_per_month == pytest.approx(35000 / 36 + 9.0)
    assert buy.utilization == pytest.approx(100 / 730)
    # amortized $/busy hour (FIELD-NOTES formula) times busy hours is the monthly cost
    assert buy.amortized_per_hour == pytest.approx(35000 / (26280 * (100 / 730)) + 0.09)
    assert buy.amortized_per_hour * 100 == pytest.approx(buy.cost_per_month)
    assert buy.cost_per_mtok_train == pytest.approx((35000 / 36 + 9) / 360)
    assert cloud.cost_per_mtok_train == pytest.approx(250 / 360)
    assert buy.kwh_per_month == pytest.approx(100.0)
    assert buy.kwh_per_mtok_train == pytest.approx(100 / 360)
    # break-even against the offer: the case, exactly
    be = buy.break_even[0]
    assert be.vs == cloud.id
    assert be.utilization == pytest.approx(35000 / (26280 * 2.41), rel=1e-9)
    assert be.months == pytest.approx(35000 / (250 - 9))
    assert d.picks["cheapest"].id == cloud.id and d.picks["on_prem"].id == buy.id
    assert "Recommendation: Rent Test srv" in d.recommendation


def test_flip_points_by_hand():
    d = run({"jobs": [JOB]})
    flips = {f.parameter: f for f in d.flips}
    # owning wins when 35000/36 + 0.09 h = 2.50 h: h = 972.22/2.41 = 403.4 busy hours = 4.034x today's 100
    assert flips["demand"].at == pytest.approx((35000 / 36) / 2.41 / 100, rel=1e-4)
    assert flips["demand"].to_id == "buy:srv" and flips["demand"].at > 1
    assert set(flips) == {"demand"}  # price and horizon crossings lie outside the scanned ranges
    row = next(r for r in d.sensitivity if r.parameter == "demand")
    assert row.cheapest[row.values.index(1.0)] == "cloud:srv:Cloud0:1x"
    assert row.cheapest[row.values.index(10.0)] == "buy:srv"
    assert "If demand rose above 4x today's, Buy Test srv would be cheapest" in d.recommendation


def test_whole_instances_are_billed():
    d = run({"jobs": [JOB]}, devices=[server(offers=((2.50, 8),))])
    c = by_id(d, "cloud:srv:Cloud0:8x")
    assert c.workloads[0].paid_device_hours_per_month == pytest.approx(800)
    assert c.cost_per_month == pytest.approx(2000)


def test_serving_costs_by_hand():
    serve = {"name": "chat", "model": "llama-3.2-1b", "requests_per_day": 2880, "output_tokens": 100,
             "peak_requests_per_s": 0.1}
    d = run({"inference": [serve]})
    buy, cloud = by_id(d, "buy:srv"), by_id(d, "cloud:srv:Cloud0:1x")
    w = buy.workloads[0]
    assert (w.ttft_s, w.tpot_s) == (pytest.approx(0.2), pytest.approx(0.02))  # measured, not estimated
    req_s = 0.2 + 99 * 0.02                                     # one request at batch 1
    reqs = 2880 * 365 / 12
    busy = reqs * req_s / 3600                                  # average load fits batch 1
    assert w.busy_device_hours_per_month == pytest.approx(busy)
    assert w.replicas == 1 and w.batch == 1
    assert w.tokens_per_month == pytest.approx(reqs * 612)
    assert buy.cost_per_month == pytest.approx(35000 / 36 + busy * 0.09)
    # always on: the cloud bills a replica all 730 hours
    assert cloud.workloads[0].paid_device_hours_per_month == pytest.approx(730)
    assert cloud.cost_per_month == pytest.approx(730 * 2.5)
    assert cloud.cost_per_mtok_infer == pytest.approx(730 * 2.5 / (reqs * 612) * 1e6)
    off = run({"inference": [serve], "assumptions": {**BASE["assumptions"], "always_on": False}})
    assert by_id(off, "cloud:srv:Cloud0:1x").cost_per_month == pytest.approx(busy * 2.5)


def test_latency_target_no_device_meets_gives_closest_misses():
    serve = {"name": "chat", "model": "llama-3.2-1b", "requests_per_day": 1000, "tpot_s": 0.01}
    devs = [server("fast"), server("slow", bw=1e12)]
    idx = MeasuredIndex([r for r in rows("fast", tpot=0.02) + rows("slow", tpot=0.05) if r["scenario"] == "decode"])
    d = run({"inference": [serve]}, devices=devs, idx=idx)
    assert not d.feasible and d.picks == {}
    assert all(not c.feasible for c in d.candidates)
    first = d.closest_misses[0]
    assert first.device == "fast" and first.miss == pytest.approx(2.0)   # 20 ms vs a 10 ms target
    assert "TPOT 20.0 ms > target 10.0 ms" in first.reasons[0]
    misses = [c.miss for c in d.closest_misses]
    assert misses == sorted(misses) and d.closest_misses[-1].device == "slow"
    assert d.closest_misses[-1].miss > 2.0
    assert d.recommendation.startswith("No option meets every need.")
    assert "Closest misses:" in d.recommendation


def test_deadline_adds_devices_or_fails():
    job = {**JOB, "deadline_hours": 8}                       # 10 h on one device
    d = run({"jobs": [job]})
    buy = by_id(d, "buy:srv")
    assert buy.feasible and buy.workloads[0].devices == 2
    assert buy.workloads[0].time_per_job_s <= 8 * 3600
    assert buy.devices == 2 and buy.capex == 70000
    d1 = run({"jobs": [job], "assumptions": {**BASE["assumptions"], "max_devices": 1}})
    b1 = by_id(d1, "buy:srv")
    assert not b1.feasible and b1.miss == pytest.approx(10 / 8)
    assert "misses the deadline" in b1.reasons[0]


def test_on_prem_required_rules_out_cloud():
    d = run({"jobs": [JOB], "on_prem_required": True})
    cloud = by_id(d, "cloud:srv:Cloud0:1x")
    assert not cloud.feasible and "on premises" in cloud.reasons[0]
    assert d.picks["cheapest"].id == "buy:srv"
    assert "Data must stay on premises" in d.recommendation


def test_this_machine_is_owned_capex_zero():
    mine = server("this-machine:gpu", price=None, offers=(), category="this-machine", power=300)
    d = run({"jobs": [JOB], "candidates": {"owned": True}}, idx=runs("this-machine:gpu"), local=[mine])
    own = by_id(d, "owned:this-machine:gpu")
    assert own.feasible and own.capex == 0 and own.capex_per_month == 0
    assert own.cost_per_month == pytest.approx(100 * 0.3 * 0.09)       # energy only, PUE 1.0 (desk)
    assert d.picks["cheapest"].id == own.id
    assert own.break_even[0].months == 0.0
    # this machine has one such device: a deadline needing two is a miss on 1 device, not a plan for 8
    d2 = run({"jobs": [{**JOB, "deadline_hours": 8}], "candidates": {"owned": True}},
             idx=MeasuredIndex(rows("this-machine:gpu") + rows("srv")), local=[mine])
    own2 = by_id(d2, "owned:this-machine:gpu")
    assert not own2.feasible and "on 1 x" in own2.reasons[0] and own2.miss == pytest.approx(10 / 8)
    assert by_id(d2, "buy:srv").devices == 2


def test_given_utilization_shares_fixed_costs():
    d = run({"jobs": [JOB], "assumptions": {**BASE["assumptions"], "utilization": 0.5}})
    buy = by_id(d, "buy:srv")
    # the demand uses 100 of the 365 busy hours the device has at 50%: it carries 100/365 of the capex
    assert buy.cost_per_month == pytest.approx(35000 / 36 * (100 / 365) + 9.0)
    assert buy.utilization == 0.5


def test_unknown_device_and_model_name_closest():
    from aipc.errors import AipcError

    with pytest.raises(AipcError, match="unknown device 'srw'; did you mean srv"):
        run({"jobs": [JOB], "prices": {"srw": 1}})
    with pytest.raises(AipcError, match="unknown model 'llama-3.2-1c'; did you mean"):
        run({"jobs": [{**JOB, "model": "llama-3.2-1c"}]})


def test_estimated_when_no_measurement_and_says_so():
    d = run({"jobs": [JOB]}, idx=MeasuredIndex([]))
    buy = by_id(d, "buy:srv")
    assert buy.feasible and buy.throughput_source.startswith("estimated")
    assert "estimated for all" in d.throughput
    assert math.isfinite(buy.cost_per_month) and buy.workloads[0].tokens_per_s > 0
