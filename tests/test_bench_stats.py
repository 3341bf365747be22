"""Statistics and the timing loop: real timings of small callables, exact order-statistic checks."""

from __future__ import annotations

import math
import random
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aipc.bench.stats import LoopConfig, median_ci, summarize, time_loop
from aipc.measure import percentile


def test_percentile_matches_linear_interpolation():
    xs = [1.0, 2.0, 3.0, 4.0, 10.0]
    assert percentile(xs, 50) == 3.0
    assert percentile(xs, 10) == pytest.approx(1.4)   # position 0.4 between 1 and 2
    assert percentile(xs, 90) == pytest.approx(7.6)   # position 3.6 between 4 and 10
    assert percentile([5.0], 90) == 5.0


def test_median_ci_order_statistics_known_table():
    # n = 10: [x(2), x(9)] with coverage 1 - 2*(1 + 10)/1024 = 0.9785 (Conover's table)
    xs = [float(i) for i in range(1, 11)]
    lo, hi, cov = median_ci(xs)
    assert (lo, hi) == (2.0, 9.0)
    assert cov == pytest.approx(1 - 2 * 11 / 1024)
    # n = 5 cannot reach 95%: [min, max] at 1 - 2/32
    lo, hi, cov = median_ci([1.0, 2.0, 3.0, 4.0, 5.0])
    assert (lo, hi, cov) == (1.0, 5.0, pytest.approx(0.9375))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=1e-6, max_value=10.0, allow_nan=False), min_size=1, max_size=300))
def test_summary_invariants(xs):
    s = summarize(xs)
    assert s.n == len(xs)
    assert s.min <= s.p10 <= s.median <= s.p90 <= s.max
    assert s.ci95_low <= s.median <= s.ci95_high
    if s.n >= 6:
        assert s.ci_coverage >= 0.95
    assert s.stdev >= 0


def test_ci_coverage_is_honest_by_simulation():
    """Over many samples of a skewed distribution, the CI holds the true median >= ~95% of the time."""
    rng = random.Random(1)
    true_median = math.log(2)  # exponential(1)
    hits = sum(
        (lambda s: s.ci95_low <= true_median <= s.ci95_high)(summarize([rng.expovariate(1.0) for _ in range(20)]))
        for _ in range(2000))
    assert hits / 2000 >= 0.94


def test_time_loop_counts_duration_and_warmup():
    calls = []

    def fn():
        calls.append(time.perf_counter())
        time.sleep(0.002)

    cfg = LoopConfig(warmup=3, min_reps=5, min_s=0.05, max_s=5.0)
    before_calls = []
    s = time_loop(fn, cfg, before=lambda: before_calls.append(1))
    assert len(s.warmup) == 3
    assert len(s.samples) >= 5 and sum(s.samples) >= 0.05
    assert len(calls) == 3 + len(s.samples)
    assert len(before_calls) == len(calls)
    assert all(x >= 0.002 for x in s.samples)
    assert s.stopped_by == "min_reps+min_s"


def test_time_loop_min_count_holds_past_max_time_and_sync_brackets_each_call():
    order = []
    s = time_loop(lambda: order.append("f"), LoopConfig(warmup=0, min_reps=7, min_s=0.0, max_s=0.0),
                  sync=lambda: order.append("s"))
    assert len(s.samples) == 7
    assert order[:3] == ["s", "f", "s"]
    assert order.count("f") == 7 and order.count("s") == 14


def test_empty_workload_overhead_is_small():
    """Timing an empty call measures far less than 1 ms (harness overhead; not a speed benchmark)."""
    s = time_loop(lambda: None, LoopConfig(warmup=5, min_reps=200, min_s=0.0, max_s=1.0))
    assert summarize(s.samples).median < 1e-3
