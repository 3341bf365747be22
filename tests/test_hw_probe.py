"""aipc hw probes: the measured fp32 GEMM and copy bandwidth agree with plain timings taken here.

The machine is shared, so each comparison interleaves the probe with the plain timing over several
rounds and compares medians; when another process's burst got in the way it adds rounds (up to 3x)
and compares the medians of all rounds. A systematic error (wrong FLOP or byte count, wrong units,
a broken timing loop) survives the pooling, so the tests can still fail.
"""

from __future__ import annotations

import statistics
import time

import pytest

from aipc.hardware import probe
from aipc.hardware.probe import ProbeSettings

torch = pytest.importorskip("torch")


def _plain_seconds(fn, reps: int = 7, sync=lambda: None) -> float:
    """Median of ``reps`` perf_counter timings of fn() after two warm-up calls."""
    fn(), fn()
    sync()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _agree(probe_value, plain_value, rounds: int, tol: float, batches: int = 3) -> tuple[float, float]:
    """Interleave probe and plain measurements in batches of ``rounds``; after each batch compare the
    medians over all rounds so far and stop once they agree within ``tol``. Pooling (rather than
    independent retries) lets noise average out while a systematic error stays visible."""
    ours, plain = [], []
    for _ in range(batches):
        for _ in range(rounds):
            ours.append(probe_value())
            plain.append(plain_value())
        p, q = statistics.median(ours), statistics.median(plain)
        if abs(p / q - 1) <= tol:
            break
    return p, q


def test_fp32_gemm_agrees_with_plain_matmul_within_15_percent():
    settings = ProbeSettings.quick()  # what `aipc hw --quick` measures
    n, _ = probe.choose_gemm_size(torch, "cpu", "fp32", settings, mem_limit_bytes=1e9)
    assert n in settings.gemm_sizes
    a, b = torch.randn(n, n), torch.randn(n, n)
    ours, plain = _agree(
        lambda: probe.measure_gemm(torch, "cpu", "fp32", settings, n=n).flops_s.median,
        lambda: 2 * n**3 / _plain_seconds(lambda: torch.matmul(a, b)),
        rounds=4, tol=0.15)
    assert abs(ours / plain - 1) <= 0.15, f"probe {ours / 1e9:.1f} GFLOP/s vs plain torch.matmul {plain / 1e9:.1f} at n={n}"


def test_copy_bandwidth_plausible_and_agrees_with_plain_copy():
    settings = ProbeSettings.quick()
    nbytes = 64 * 2**20  # 2 x 64 MiB: beyond most last-level caches, quick enough for a unit test
    src, dst = torch.ones(nbytes // 4), torch.zeros(nbytes // 4)
    ours, plain = _agree(
        lambda: probe.measure_bandwidth(torch, "cpu", nbytes, settings)["copy"].bytes_s.median,
        # as many samples as the probe takes in its 0.3 s (~250): bandwidth climbs over the first
        # hundred copies here (huge pages, clocks), so a 7-sample median reads ~20% low
        lambda: 2 * nbytes / _plain_seconds(lambda: dst.copy_(src), reps=250),
        rounds=3, tol=0.25)
    assert 0.5e9 < ours < 5e12, f"copy bandwidth {ours / 1e9:.2f} GB/s is implausible for host memory"
    assert abs(ours / plain - 1) <= 0.25, f"probe {ours / 1e9:.1f} GB/s vs plain copy_ {plain / 1e9:.1f} GB/s"
    read = probe.measure_bandwidth(torch, "cpu", nbytes, settings)["read"]
    assert read.bytes_per_call == read.buffer_bytes == nbytes and read.bytes_s.median > 0.5e9


def test_onednn_gemm_agrees_with_a_plain_timing_of_the_same_call():
    from aipc import cpu_gemm

    if not cpu_gemm.available():
        pytest.skip("no oneDNN linear in this torch build")
    settings = ProbeSettings.quick()
    n = 512
    a, b = torch.randn(n, n), torch.randn(n, n)
    ours, plain = _agree(
        lambda: probe.measure_gemm(torch, "cpu", "fp32", settings, n=n, backend="onednn").flops_s.median,
        lambda: 2 * n**3 / _plain_seconds(lambda: torch.ops.mkldnn._linear_pointwise(a, b.t(), None, "none", [], "")),
        rounds=3, tol=0.15)
    assert abs(ours / plain - 1) <= 0.15, f"probe {ours / 1e9:.1f} vs plain {plain / 1e9:.1f} GFLOP/s"


def test_cpu_fp32_peak_is_the_faster_backend_and_says_which(monkeypatch):
    from aipc import cpu_gemm

    monkeypatch.setattr(cpu_gemm, "available", lambda: True)
    for mkl, dnn, winner in ((200e9, 500e9, "onednn"), (300e9, 250e9, "torch")):
        def fake(torch, device, dtype, settings, n=None, mem_limit_bytes=4e9, backend="torch", _v={"torch": mkl, "onednn": dnn}):
            v = _v[backend]
            return probe.GemmResult(dtype=dtype, n=64, flops_per_call=1.0,
                                    flops_s=probe.Stats(median=v, p10=v, p90=v, samples=3, seconds_per_call=1 / v))
        monkeypatch.setattr(probe, "measure_gemm", fake)
        monkeypatch.setattr(probe, "measure_bandwidth", lambda *a, **k: {})
        m = probe.measure_device(torch, "cpu", ["fp32"], 1 << 20, ProbeSettings.quick(), mem_limit_bytes=1e9)
        assert m.gemm["fp32"].flops_s.median == max(mkl, dnn)
        note = m.gemm["fp32"].note
        assert ("oneDNN GEMM" in note and "torch.matmul (MKL) reached 200 GFLOP/s (40% of it)" in note) \
            if winner == "onednn" else note == "torch.matmul (MKL); oneDNN reached 250 GFLOP/s"


def test_percentile_and_stats():
    assert probe.percentile([5, 1, 3, 2, 4], 50) == 3
    assert probe.percentile([1, 2, 3, 4, 5], 10) == pytest.approx(1.4)
    assert probe.percentile([1, 2, 3, 4, 5], 90) == pytest.approx(4.6)
    s = probe.throughput_stats([1.0, 2.0, 4.0], work=8.0)  # rates 8, 4, 2
    assert (s.median, s.samples, s.seconds_per_call) == (4.0, 3, 2.0)
    assert s.p10 == pytest.approx(2.4) and s.p90 == pytest.approx(7.2)


def test_time_calls_needs_both_min_reps_and_min_time():
    settings = ProbeSettings(warmup=1, min_reps=5, min_time_s=0.05, max_time_s=5.0)
    calls = []
    samples = probe.time_calls(lambda: (calls.append(1), time.sleep(0.001)), lambda: None, settings)
    assert len(samples) >= 5 and sum(samples) >= 0.045
    assert len(calls) == len(samples) + 1  # one warm-up call
    assert all(s >= 0.001 for s in samples)
    few = probe.time_calls(lambda: time.sleep(0.03), lambda: None,
                           ProbeSettings(warmup=0, min_reps=100, min_time_s=0.01, max_time_s=0.1))
    assert 3 <= len(few) < 10  # max_time_s caps a slow loop


@pytest.mark.parametrize("model,expect", [
    (lambda n: 2 * n**3 / 1e11, 1024),           # 100 GFLOP/s: 1024 is 21 ms, 2048 would be ~170 ms
    (lambda n: max(0.03, 2 * n**3 / 1e12), 1024),  # busy machine: 30 ms floor, grow to min_gemm_n
    (lambda n: 0.5, 128),                        # every call slow: stop at the first size
    (lambda n: n**3 * 3.7e-10, 512),             # 512: 50 ms, 1024: 0.4 s > 2 x max_call: keep 512
])
def test_choose_gemm_size_picks_largest_size_within_budget(monkeypatch, model, expect):
    monkeypatch.setattr(probe, "_gemm_fn", lambda torch, device, dtype, n, backend="torch": n)
    monkeypatch.setattr(probe, "_once", lambda fn, sync, limit_s=0: model(fn))
    settings = ProbeSettings(max_call_s=0.1, min_gemm_n=1024 if expect != 512 else 2048)
    n, t = probe.choose_gemm_size(torch, "cpu", "fp32", settings, mem_limit_bytes=1e12)
    assert n == expect and t == model(n)


def test_choose_gemm_size_respects_memory_limit(monkeypatch):
    monkeypatch.setattr(probe, "_gemm_fn", lambda torch, device, dtype, n, backend="torch": n)
    monkeypatch.setattr(probe, "_once", lambda fn, sync, limit_s=0: 1e-6)
    n, _ = probe.choose_gemm_size(torch, "cpu", "fp32", ProbeSettings(), mem_limit_bytes=3 * 1024 * 1024 * 4)
    assert n == 1024


def test_cpu_copy_bytes_beyond_last_level_cache():
    s = ProbeSettings.full()
    assert probe.cpu_copy_bytes(32 * 2**20, 64 * 2**30, s) == 256 * 2**20
    assert probe.cpu_copy_bytes(128 * 2**20, 64 * 2**30, s) == 8 * 128 * 2**20
    assert probe.cpu_copy_bytes(128 * 2**20, 2 * 2**30, s) == 2**30 // 4  # at most 1/8 of free RAM each


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_gemm_agrees_with_plain_matmul():
    settings = ProbeSettings.quick()
    dev = "cuda:0"
    sync = lambda: torch.cuda.synchronize(dev)  # noqa: E731
    for dt, tdt in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        r = probe.measure_gemm(torch, dev, dt, settings)
        a = torch.randn(r.n, r.n, device=dev, dtype=tdt)
        b = torch.randn(r.n, r.n, device=dev, dtype=tdt)
        reps = max(1, int(0.01 / r.flops_s.seconds_per_call))

        def batch():
            for _ in range(reps):
                torch.matmul(a, b)

        ours, plain = _agree(lambda: probe.measure_gemm(torch, dev, dt, settings, n=r.n).flops_s.median,
                             lambda: reps * 2 * r.n**3 / _plain_seconds(batch, sync=sync), rounds=3, tol=0.15)
        assert abs(ours / plain - 1) <= 0.15, (dt, ours, plain)
    bw = probe.measure_bandwidth(torch, dev, 256 * 2**20, settings)["copy"].bytes_s.median
    assert 50e9 < bw < 20e12
