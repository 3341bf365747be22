"""From timed samples to the numbers a run stores: statistics, throughput, MFU/MBU, estimate error.

FLOPs and bytes of a sample come from the estimator's formulas for the same workload (so measured
MFU and the estimator's efficiency are the same quantity):
- train: model FLOPs of the step (``Compute.model_flops_per_step``: 6N + attention per token, LoRA
  4N + adapters, without checkpointing's recompute, as ``aipc train`` counts them) for b x s tokens;
- prefill: ``prefill_flops`` (2N + causal attention per prompt token);
- decode: ``decode_flops_per_step`` and ``decode_bytes_per_step`` (weights + KV cache read per step);
- generate: prefill + (g - 1) decode steps.
MFU = achieved FLOP/s / peak FLOP/s of the compute dtype (16-bit falls back to the other 16-bit
type, then fp32, as the estimator does; llama.cpp on a CPU: the fp32 GEMM peak, as the estimator does); MBU = achieved bytes/s / memory bandwidth. Each against
the measured peak of this device (aipc hw) and, where the catalog knows the device, its spec peak.
"""

from __future__ import annotations

from aipc.bench.stats import Series, summarize
from aipc.estimate.calibrate import workload_peak


def _work(scenario: str, est, gen: int) -> tuple[float | None, float | None]:
    """(FLOPs, bytes) of one sample by the estimator's formulas."""
    if est is None:
        return None, None
    c = est.compute
    if scenario == "train":
        return c.model_flops_per_step, None
    if scenario == "prefill":
        return c.prefill_flops, None
    if scenario == "decode":
        return c.decode_flops_per_step, c.decode_bytes_per_step
    return c.prefill_flops + (gen - 1) * c.decode_flops_per_step, (gen - 1) * c.decode_bytes_per_step


def _estimated_s(scenario: str, est) -> float | None:
    if est is None:
        return None
    t = est.time
    return {"train": t.step_s, "prefill": t.prefill_s, "decode": t.tpot_s, "generate": t.request_s}[scenario]


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def scenario_metrics(scenario: str, *, series: Series, tokens_per_sample: int, est, spec, catalog, workload,
                     precision: str, extra: dict[str, list[float]], joules: float | None) -> dict:
    """Every scalar metric of one (device, scenario) run; units in the names."""
    s = summarize(series.samples)
    m: dict = {
        "precision": precision, "n": s.n, "median_s": s.median, "p10_s": s.p10, "p90_s": s.p90,
        "mean_s": s.mean, "stdev_s": s.stdev, "min_s": s.min, "max_s": s.max,
        "ci95_low_s": s.ci95_low, "ci95_high_s": s.ci95_high, "ci_coverage": s.ci_coverage,
        "warmup_n": len(series.warmup), "tokens_per_sample": tokens_per_sample,
        "tokens_per_s": tokens_per_sample / s.median,
    }
    flops, nbytes = _work(scenario, est, workload.gen_tokens)
    m["flops_per_sample"] = flops
    m["achieved_flops_s"] = _ratio(flops, s.median)
    comp = est.compute if est is not None else None
    pk = workload_peak(spec, workload, compute=comp)  # the estimator's peak (llama.cpp on a CPU: its kernels')
    m["peak_flops_measured"] = pk if spec is not None and spec.measured else None
    m["mfu_measured"] = _ratio(m["achieved_flops_s"], m["peak_flops_measured"])
    spk = workload_peak(catalog, workload, compute=comp)
    m["peak_flops_spec"] = spk
    m["mfu_spec"] = _ratio(m["achieved_flops_s"], spk)
    if nbytes is not None:
        m["bytes_per_sample"] = nbytes
        m["achieved_bytes_s"] = nbytes / s.median
        bw = spec.bandwidth_bytes_s if spec is not None and spec.measured and spec.bandwidth_bytes_s else None
        m["bandwidth_measured_bytes_s"] = bw
        m["mbu_measured"] = _ratio(m["achieved_bytes_s"], bw)
        m["bandwidth_spec_bytes_s"] = catalog.bandwidth_bytes_s if catalog is not None else None
        m["mbu_spec"] = _ratio(m["achieved_bytes_s"], m["bandwidth_spec_bytes_s"])
    if scenario == "generate" and extra.get("ttft_s"):
        tt = summarize(extra["ttft_s"])
        g = workload.gen_tokens
        tpots = [(e2e - t) / (g - 1) for e2e, t in zip(series.samples, extra["ttft_s"])]
        tp = summarize(tpots)
        m.update({"ttft_median_s": tt.median, "ttft_p10_s": tt.p10, "ttft_p90_s": tt.p90,
                  "tpot_median_s": tp.median, "tpot_p10_s": tp.p10, "tpot_p90_s": tp.p90,
                  "decode_tokens_per_s": workload.batch_size / tp.median})
    if scenario == "decode":
        m["tpot_median_s"] = s.median
        m["decode_tokens_per_s"] = workload.batch_size / s.median
    # the names the estimator's Timing uses (aipc decide reads measured runs by them)
    if scenario == "train":
        m["step_s"], m["train_tokens_per_s"] = s.median, m["tokens_per_s"]
    elif scenario == "prefill":
        m["prefill_s"] = s.median
    elif scenario == "decode":
        m["tpot_s"] = s.median
    elif "ttft_median_s" in m:
        m["ttft_s"], m["tpot_s"], m["request_s"] = m["ttft_median_s"], m["tpot_median_s"], s.median
    m["energy_j"] = joules
    m["energy_per_token_j"] = joules / (tokens_per_sample * s.n) if joules is not None else None
    est_s = _estimated_s(scenario, est)
    m["est_s"] = est_s
    m["est_error"] = (est_s / s.median - 1) if est_s else None
    if scenario == "generate" and est is not None:
        m["est_ttft_s"] = est.time.ttft_s
        m["est_tpot_s"] = est.time.tpot_s
    m["est_flops_per_token"] = est.compute.flops_per_token if est is not None else None
    m["est_efficiency_source"] = est.efficiency.source if est is not None else None
    return m


def memory_metrics(device: str, peak: int | None, base_rss: int, mem, est) -> dict:
    """Peak memory of the scenario, how it was read, and the estimator's peak beside it."""
    out = {"peak_mem_bytes": peak, "peak_mem_method": mem.method,
           "est_peak_mem_bytes": est.memory.peak_bytes if est is not None else None}
    if device == "cpu" and peak is not None:
        out["peak_rss_above_base_bytes"] = peak - base_rss
    if mem.extra:
        out.update(mem.extra)
    return out
