"""Timing loop and statistics: warm-up, repeat until a minimum count AND a minimum duration, summarize.

Import-light (no torch): the device synchronization is passed in as a callable, so this module times
anything. Statistics are computed on the recorded samples only (warm-up excluded).

The 95% confidence interval is for the MEDIAN and distribution-free: the order-statistic interval
from the binomial distribution (Conover, "Practical Nonparametric Statistics", 3rd ed., sec. 3.2).
It needs no normality assumption and no random resampling; with n < 6 samples no pair of order
statistics reaches 95%, so the interval is [min, max] and its actual coverage (1 - 2 * 0.5**n) is
reported alongside.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aipc.measure import percentile

CI_METHOD = "distribution-free order-statistic 95% CI of the median (binomial)"


@dataclass(frozen=True, kw_only=True)
class LoopConfig:
    """How long to measure: ``warmup`` untimed calls, then at least ``min_reps`` calls AND at least
    ``min_s`` seconds of samples; stop adding calls after ``max_s`` seconds (once ``min_reps`` hold)
    or at ``max_reps``."""

    warmup: int = 2
    min_reps: int = 10
    min_s: float = 2.0
    max_s: float = 30.0
    max_reps: int = 10_000

    @classmethod
    def quick(cls) -> LoopConfig:
        return cls(warmup=1, min_reps=3, min_s=0.3, max_s=4.0, max_reps=1000)


@dataclass(frozen=True, kw_only=True)
class Summary:
    """Statistics of one series of samples (seconds, or whatever unit the samples carry)."""

    n: int
    median: float
    p10: float
    p90: float
    mean: float
    stdev: float
    min: float
    max: float
    ci95_low: float
    ci95_high: float
    ci_coverage: float               # actual coverage of [ci95_low, ci95_high] (>= 0.95 when n >= 6)
    ci_method: str = CI_METHOD

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def median_ci(sorted_xs: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """(low, high, coverage) = (x_(j), x_(n+1-j), 1 - 2 * P(Binomial(n, 1/2) <= j - 1)) with the
    largest rank j whose coverage is >= level. When even j = 1 falls short (n < 6 at 95%), the
    interval is [min, max] with its coverage 1 - 2 / 2**n. Above 1000 samples the rank comes from the
    normal approximation j = floor(n/2 - 1.96 * sqrt(n) / 2)."""
    n = len(sorted_xs)
    if n == 0:
        raise ValueError("confidence interval of no samples")
    if n > 1000:
        j = max(1, int(math.floor(n / 2 - 1.959964 * math.sqrt(n) / 2)))
        return sorted_xs[j - 1], sorted_xs[n - j], level
    total = 2**n
    cdf = 0  # numerator of P(X <= j - 1), integers: exact
    j_best, cov_best = 1, 1 - 2 / total
    for j in range(1, n // 2 + 1):
        cdf += math.comb(n, j - 1)
        cov = 1 - 2 * cdf / total
        if cov < level:
            break
        j_best, cov_best = j, cov
    return sorted_xs[j_best - 1], sorted_xs[n - j_best], cov_best


def summarize(samples: list[float]) -> Summary:
    """Median, p10, p90, mean, sample standard deviation and the 95% CI of the median."""
    xs = sorted(float(x) for x in samples)
    if not xs:
        raise ValueError("no samples to summarize")
    n = len(xs)
    mean = sum(xs) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1)) if n > 1 else 0.0
    lo, hi, cov = median_ci(xs)
    return Summary(n=n, median=percentile(xs, 50), p10=percentile(xs, 10), p90=percentile(xs, 90), mean=mean,
                   stdev=sd, min=xs[0], max=xs[-1], ci95_low=lo, ci95_high=hi, ci_coverage=cov)


@dataclass(kw_only=True)
class Series:
    """The samples of one timed loop: per-call seconds, warm-up times, and total wall time."""

    samples: list[float] = field(default_factory=list)
    warmup: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    stopped_by: str = ""             # "min_reps+min_s" | "max_s" | "max_reps"


def time_loop(fn: Callable[[], object], cfg: LoopConfig, *, sync: Callable[[], None] = lambda: None,
              timer: Callable[[Callable[[], object], Callable[[], None]], float] | None = None,
              on_sample: Callable[[int, float], None] | None = None,
              on_timed_start: Callable[[], None] | None = None,
              before: Callable[[], None] | None = None) -> Series:
    """Call ``fn`` ``cfg.warmup`` times untimed, then time each call until both ``cfg.min_reps`` calls
    and ``cfg.min_s`` seconds of samples are collected (or ``cfg.max_s`` / ``cfg.max_reps`` stop it).

    Each sample is one call bracketed by ``sync()`` (device synchronization) on both sides, read with
    ``time.perf_counter``; ``timer(fn, sync) -> seconds`` replaces that (CUDA events).
    ``on_timed_start()`` runs after the warm-up, before the first timed call (energy counters);
    ``before()`` runs untimed before every call (warm-up included), e.g. to reset a KV cache."""
    if timer is None:
        def timer(f, s):
            s()
            t0 = time.perf_counter()
            f()
            s()
            return time.perf_counter() - t0
    series = Series()
    start = time.perf_counter()
    for _ in range(cfg.warmup):
        if before:
            before()
        series.warmup.append(timer(fn, sync))
    if on_timed_start:
        on_timed_start()
    t_begin = time.perf_counter()
    total = 0.0
    while True:
        if before:
            before()
        dt = timer(fn, sync)
        series.samples.append(dt)
        total += dt
        if on_sample:
            on_sample(len(series.samples), total)
        n = len(series.samples)
        elapsed = time.perf_counter() - t_begin
        if n >= cfg.max_reps:
            series.stopped_by = "max_reps"
            break
        if n >= cfg.min_reps and total >= cfg.min_s:
            series.stopped_by = "min_reps+min_s"
            break
        if n >= cfg.min_reps and elapsed >= cfg.max_s:
            series.stopped_by = "max_s"
            break
    series.wall_s = time.perf_counter() - start
    return series
