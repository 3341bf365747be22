"""Time by roofline: max(FLOPs / (peak x MFU), bytes / (bandwidth x MBU)), plus exposed communication;
a decode step adds layers x a calibrated per-layer overhead."""

from __future__ import annotations

from aipc.estimate.types import Compute, Efficiency, Timing
from aipc.hardware.spec import DeviceSpec
from aipc.spec import Workload

# Interconnects: bytes/s per direction (spec) — sources: PCI-SIG PCIe 4.0/5.0 x16 (31.5 / 63 GB/s);
# NVIDIA H100 datasheet NVLink 900 GB/s total (450 per direction), A100 600 (300); IEEE 802.3 Ethernet;
# InfiniBand HDR 200 Gb/s, NDR 400 Gb/s; USB4/Thunderbolt 4 40 Gb/s. As of 2025-01.
LINKS_BYTES_S = {
    "pcie4": 31.5e9, "pcie5": 63e9, "nvlink3": 300e9, "nvlink4": 450e9, "nvlink5": 900e9,
    "10gbe": 1.25e9, "25gbe": 3.125e9, "100gbe": 12.5e9, "400gbe": 50e9,
    "ib-hdr": 25e9, "ib-ndr": 50e9, "tb4": 5e9, "usb4": 5e9,
}
LINK_EFFICIENCY = 0.80  # bus bandwidth reached by NCCL ring collectives at large messages (nccl-tests typical)


def default_link(device: DeviceSpec, w: Workload) -> str:
    """Multi-node: 100 GbE; one node: NVLink on datacenter GPUs, PCIe 4.0 elsewhere."""
    if w.link:
        return w.link
    if w.nodes > 1:
        return "100gbe"
    return "nvlink4" if device.category == "datacenter" and device.vendor == "nvidia" else "pcie4"


def _peak(device: DeviceSpec, w: Workload, c: Compute) -> float | None:
    """The FLOP/s a workload's matmuls run at: for training the measured linear forward+backward
    peak where ``aipc hw`` has one (``DeviceSpec.train_peak``), else the dense GEMM peak; llama.cpp on
    a CPU: its kernels' FLOP/s for the model's weight types (calibrate.workload_peak)."""
    from aipc.estimate.calibrate import workload_peak

    return workload_peak(device, w, train=w.is_train, compute=c)


def cache_resident(device: DeviceSpec, c: Compute) -> bool:
    """True when a decode step's bytes fit in the CPU's last-level cache: they stay there from step to
    step, so decode is not bound by memory bandwidth and runs faster than the memory-bound estimate
    (on the 2-core Xeon with 300 MiB of L3 here: smollm2-135m at 1.2-1.9x its memory-bound speed)."""
    return device.kind == "cpu" and 0 < c.decode_bytes_per_step < device.llc_bytes


def _decode_kernels(device: DeviceSpec, w: Workload, c: Compute) -> float | None:
    """llama.cpp on a CPU: the measured decode FLOP/s of the model's weight types (aipc hw --kernels,
    aipc.estimate.kernels.decode_mix_flops); None elsewhere or where not measured."""
    if w.engine != "llamacpp" or device.kind != "cpu" or not c.decode_mix:
        return None
    from aipc.estimate.kernels import decode_mix_flops

    return decode_mix_flops(device, c.decode_mix, c.prefill_width)


def _decode_attention(device: DeviceSpec, w: Workload, c: Compute, eff: Efficiency) -> float | None:
    """llama.cpp on a CPU where aipc hw --kernels measured its decode attention: the FLOP/s that the
    attention over the KV cache runs at (timed apart from the weights, since it grows with the context and
    not with the bytes of the model); None elsewhere."""
    if not eff.attention_apart or w.engine != "llamacpp" or device.kind != "cpu" or not c.decode_attention_flops:
        return None
    from aipc.estimate.kernels import decode_attention_flops

    return decode_attention_flops(device, c.heads)


def timing(device: DeviceSpec, w: Workload, c: Compute, eff: Efficiency) -> tuple[Timing, list[str]]:
    """Step / prefill / decode times for one workload on n devices of this kind."""
    warn: list[str] = []
    peak = _peak(device, w, c)
    bw = device.bandwidth_bytes_s
    if peak is None:
        warn.append(f"{device.name} has no {w.compute} or fp32 peak in the catalog: compute time unknown")
    if w.is_train:
        if device.kind == "npu" or not eff.mfu_train or peak is None:
            if device.kind == "npu":
                warn.append("NPUs run inference graphs; training time is not estimated")
            return Timing(), warn
        dp = w.num_devices
        compute_s = c.flops_per_step / dp / (peak * eff.mfu_train)
        comm_s = 0.0
        if dp > 1:
            link = default_link(device, w)
            if link not in LINKS_BYTES_S:
                from aipc.errors import AipcError
                raise AipcError(f"unknown link {link!r}; use one of {', '.join(LINKS_BYTES_S)}")
            comm_s = c.comm_bytes_per_step / (LINKS_BYTES_S[link] * LINK_EFFICIENCY)
        exposed = max(0.0, comm_s - compute_s * 2 / 3)  # overlapped with the backward pass (~2/3 of a step)
        step = compute_s + exposed
        tps = w.tokens_per_step / step
        return Timing(step_s=step, train_tokens_per_s=tps, train_s=(w.train_tokens / tps) if w.train_tokens else None,
                      bound="comm" if exposed > 0.25 * step else "compute", comm_s=comm_s), warn
    tp = w.num_devices if w.sharding == "tp" else 1
    if not bw or bw <= 0:
        warn.append(f"{device.name} has no memory bandwidth figure: inference time unknown (run 'aipc hw')")
        return Timing(), warn
    wbytes_read = c.decode_bytes_per_step  # per device
    prefill_compute = c.prefill_flops / tp / (peak * eff.mfu_prefill) if peak else 0.0
    prefill = max(prefill_compute, wbytes_read / (bw * eff.mbu_decode))
    attn = _decode_attention(device, w, c, eff)
    # the attention's work over the KV cache, where its speed was measured, on top of reading the cache with
    # the weights (2-core AMD EPYC, 2026-12-07: decode from 128 to 1152 tokens of context gained what the
    # attention probes' FLOP/s plus the KV bytes at the weights' bandwidth say, within 10%, docs/validation.md)
    attn_flops = c.decode_attention_flops if attn else 0.0
    attn_s = attn_flops / tp / attn if attn else 0.0
    tpot_mem = c.decode_bytes_per_step / (bw * eff.mbu_decode)
    tpot_cmp = c.decode_flops_per_step / tp / (peak * eff.mfu_prefill) if peak else 0.0
    vec = _decode_kernels(device, w, c)
    if vec:  # llama.cpp's measured matrix-vector kernels: a floor; the whole step where the bytes stay in cache
        tpot_cmp = (c.decode_flops_per_step - attn_flops) / tp / vec
        if cache_resident(device, c):
            tpot_mem = 0.0
    # per-layer operator overhead (kernel launches, framework dispatch): at small batch a decode step
    # costs a fixed time per layer on top of the bytes it reads; from published runs per device class
    # and engine (aipc.estimate.efficiency_defaults), or fitted by aipc calibrate
    tpot = max(tpot_mem, tpot_cmp) + attn_s + c.layers * eff.decode_layer_s
    if cache_resident(device, c):
        fits = (f"a decode step reads {c.decode_bytes_per_step / 2**20:.0f} MiB, which fits in {device.name}'s "
                f"{device.llc_bytes / 2**20:.0f} MiB last-level cache")
        warn.append(f"{fits}: decode is estimated at llama.cpp's measured matrix-vector speed on cached weights "
                    f"({vec / 1e9:.0f} GFLOP/s), a looser fit than a memory-bound decode's" if vec else
                    f"{fits}: decode may run faster than this memory-bound estimate")
    return Timing(
        prefill_s=prefill, ttft_s=prefill, tpot_s=tpot, decode_tokens_per_s=w.batch_size / tpot,
        request_s=prefill + max(w.gen_tokens - 1, 0) * tpot, bound="memory" if tpot_mem >= tpot_cmp else "compute",
        decode_attention_s=attn_s,
    ), warn
