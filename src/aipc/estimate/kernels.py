"""The FLOP/s llama.cpp's prefill runs at on a CPU, from the types of a model's tensors.

Each ggml weight type has its own kernel, and their speeds differ by several times on one CPU. Where
``aipc hw`` measured them on this machine (DeviceSpec.kernel_flops["llamacpp"], per type at a few prompt
lengths and three layer widths; aipc.bench.llamacpp_kernels), a model's prefill runs at the harmonic mean of
its types' FLOP/s — each read at the model's own layer width, interpolated in log(width) between the
probes — weighted by each type's share of the matrix elements (aipc.estimate.quant.matmul_mix): the
time is the sum over types. Elsewhere (a catalog CPU, or llama.cpp not measured here) each type runs at a default
share of the CPU's fp32 GEMM peak (DEFAULT_SHARE).
"""

from __future__ import annotations

from aipc.hardware.kernels import at_tokens, at_width, split_key
from aipc.hardware.spec import DeviceSpec

# Prefill FLOP/s per ggml type as a share of the fp32 GEMM peak (torch F.linear) on the same CPU, at
# 512 prompt tokens, 2 threads: measured by `aipc hw --kernels` (aipc.bench.llamacpp_kernels,
# llama-cpp-python 0.3.36) on a 2-core Intel Xeon with AVX-512, AVX512-VNNI, AVX512_BF16 and AMX,
# 2026-12-06 22:10 UTC, against its fp32 peak of 431 GFLOP/s (Q4_K 276, Q6_K 366, Q8_0 171, Q4_0 229,
# Q5_K 402, Q5_0 140, Q5_1 80, F16 194 GFLOP/s). Not measured there: Q3_K and Q2_K take Q4_K's share,
# Q4_1 Q4_0's, BF16 F16's. A CPU without VNNI runs the integer dot products in AVX2 and may reach less.
DEFAULT_SHARE = {
    "F16": 0.45, "BF16": 0.45, "Q8_0": 0.40, "Q6_K": 0.85, "Q5_K": 0.93, "Q5_1": 0.19, "Q5_0": 0.32,
    "Q4_K": 0.64, "Q4_1": 0.53, "Q4_0": 0.53, "Q3_K": 0.64, "Q2_K": 0.64,
}


def _measured(table: dict, key_type: str, tokens: float | None, width: float | None) -> float | None:
    """FLOP/s of ``key_type`` ('Q4_K', 'decode:Q4_K') in a measured table at ``tokens`` and layer ``width``
    (interpolated between the probes' widths; a width-less key holds for every width); F32 and BF16 read
    as F16; None where not measured."""
    prefix, _, t = key_type.rpartition(":")
    for name in (t, "F16" if t in ("F32", "BF16") else None):
        want = f"{prefix}:{name}" if prefix else name
        by_width = {w: at_tokens(pts, tokens) for k, pts in table.items() for kt, w in [split_key(k)]
                    if kt == want and w is not None}
        if by_width:
            return at_width(by_width, width)
        if name and want in table:
            return at_tokens(table[want], tokens)
    return None


def type_flops(spec: DeviceSpec, ggml_type: str, tokens: float | None, width: float | None = None) -> float | None:
    """FLOP/s of one type's prefill kernel on ``spec`` at ``tokens`` prompt tokens and layer ``width``
    (aipc.estimate.compute.layer_width): measured here (interpolated between the probe's widths), else
    the default share of the fp32 peak; None without an fp32 peak."""
    got = _measured((spec.kernel_flops or {}).get("llamacpp") or {}, ggml_type, tokens, width)
    if got:
        return got
    fp32 = spec.peak("fp32")
    if not fp32:
        return None
    return fp32 * DEFAULT_SHARE.get(ggml_type, 1.0 if ggml_type == "F32" else DEFAULT_SHARE["F16"])


def _harmonic(mix: tuple, flops) -> float | None:
    """1 / sum(share / flops(type)) over ``mix`` ((type, share), ...); None where any type has no figure."""
    s = 0.0
    for t, share in mix:
        f = flops(t)
        if not f:
            return None
        s += share / f
    return 1.0 / s if s > 0 else None


def mix_flops(spec: DeviceSpec, mix: tuple, tokens: float | None, width: float | None = None) -> float | None:
    """FLOP/s of a prefill whose matrices are ``mix`` ((type, share), ...) in layers of ``width``:
    1 / sum(share / FLOP/s)."""
    return _harmonic(mix, lambda t: type_flops(spec, t, tokens, width))


def decode_mix_flops(spec: DeviceSpec, mix: tuple, width: float | None = None) -> float | None:
    """FLOP/s of a decode step's matrix-vector products over ``mix`` where aipc hw --kernels measured
    every type's decode on weights in cache (``decode:<type>@<width>``); None where any type was not."""
    table = (spec.kernel_flops or {}).get("llamacpp") or {}
    return _harmonic(mix, lambda t: _measured(table, f"decode:{t}", 1, width))


def measured(spec: DeviceSpec) -> bool:
    """True when this device's llama.cpp kernels were measured (not default shares)."""
    return bool((spec.kernel_flops or {}).get("llamacpp"))
