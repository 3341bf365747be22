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


def openvino_prefill(spec: DeviceSpec, weight_format: str | None, tokens: float | None,
                     width: float | None = None) -> float | None:
    """FLOP/s of OpenVINO's prefill of a ``weight_format`` IR on this CPU at ``tokens`` and layer ``width``,
    where aipc hw --kernels timed it on its probes (``prefill:<format>@<width>``,
    aipc.bench.openvino_kernels); None where not measured."""
    table = (spec.kernel_flops or {}).get("openvino") or {}
    return _measured(table, f"prefill:{weight_format}", tokens, width) if weight_format and spec.kind == "cpu" else None


def decode_mix_flops(spec: DeviceSpec, mix: tuple, width: float | None = None) -> float | None:
    """FLOP/s of a decode step's matrix-vector products over ``mix`` where aipc hw --kernels measured
    every type's decode on weights in cache (``decode:<type>@<width>``); None where any type was not."""
    table = (spec.kernel_flops or {}).get("llamacpp") or {}
    return _harmonic(mix, lambda t: _measured(table, f"decode:{t}", 1, width))


def _reads(spec: DeviceSpec) -> dict[str, dict[float, float]]:
    """{type: {probe width: bytes/s}} of the decode steps aipc hw --kernels timed on weights from memory."""
    out: dict[str, dict[float, float]] = {}
    for k, pts in ((spec.kernel_flops or {}).get("llamacpp") or {}).items():
        kt, w = split_key(k)
        if kt.startswith("read:") and w:
            out.setdefault(kt[len("read:"):], {})[w] = at_tokens(pts, 1)
    return out


def _width_factors(reads: dict[str, dict[float, float]], top: float) -> dict[float, float]:
    """{probe width: bytes/s there over bytes/s at the widest probe}, the median over the types measured at
    both (narrow layers add a fixed cost per layer, so they read slower)."""
    import statistics

    out = {top: 1.0}
    for w in {w for r in reads.values() for w in r} - {top}:
        ratios = [r[w] / r[top] for r in reads.values() if w in r and top in r]
        if ratios:
            out[w] = statistics.median(ratios)
    return out


def _read_table(spec: DeviceSpec):
    """(reads, widest probe width, width factors) of :func:`_reads`, or None where none was measured."""
    reads = _reads(spec)
    if not reads:
        return None
    top = max(w for r in reads.values() for w in r)
    return reads, top, _width_factors(reads, top)


def _read_at(got: tuple, ggml_type: str, width: float | None) -> tuple[float, str]:
    """:func:`decode_read` over a :func:`_read_table`."""
    import statistics

    reads, _, factor = got

    def at_top(t: str) -> float:
        w = max(reads[t])
        return reads[t][w] / factor.get(w, 1.0)

    base, what = ((at_top(ggml_type), f"{ggml_type}'s") if ggml_type in reads else
                  (statistics.median(at_top(t) for t in reads), "the median measured type's"))
    scale = at_width(factor, width) if width else 1.0
    return base * scale, what


def decode_read(spec: DeviceSpec, ggml_type: str, width: float | None = None) -> tuple[float, str] | None:
    """(bytes/s, what it is) llama.cpp's decode reads weights of ``ggml_type`` from memory at on this CPU in
    layers of ``width`` (aipc hw --kernels: ``read:<type>@<width>``): the type's figure at the widest
    probe (the median over the measured types for a type not measured) times how the measured types' figures
    change with the layer width (interpolated in log(width), never extrapolated); None where none was
    measured."""
    got = _read_table(spec)
    return _read_at(got, ggml_type, width) if got else None


def decode_read_mix(spec: DeviceSpec, mix: tuple, width: float | None = None) -> tuple[float, str] | None:
    """(bytes/s, what it is) of a decode step over ``mix`` ((ggml type, share of the step's FLOPs, i.e. of
    its matrix elements), ...: aipc.estimate.types.Compute.decode_mix): each type's bytes at its own
    measured figure (:func:`decode_read`), so a q4_k_m file whose rows fall back to Q5_0 reads at Q5_0's
    speed; None where nothing was measured."""
    from aipc.estimate.quant import block_size

    got = _read_table(spec)
    if not got:
        return None
    nbytes = seconds = 0.0
    for t, share in mix:
        n, b = block_size(t)
        nbytes += share * b / n
        seconds += share * b / n / _read_at(got, t, width)[0]
    if seconds <= 0:
        return None
    return nbytes / seconds, "the model's weight types'"


def reads_measured(spec: DeviceSpec) -> bool:
    """True when aipc hw --kernels measured llama.cpp's decode bandwidth on this device (``read:`` keys)."""
    return bool(_reads(spec))


def measured(spec: DeviceSpec) -> bool:
    """True when this device's llama.cpp kernels were measured (not default shares)."""
    return bool((spec.kernel_flops or {}).get("llamacpp"))


def attention_at(table: dict, heads: float | None) -> float | None:
    """FLOP/s of llama.cpp's decode attention at ``heads`` query heads from a kernels table's
    ``attn:F16@<heads>`` figures (over an f16 KV cache) (linear in log(heads) between the probes, the nearest outside); None where
    none was measured."""
    by_heads = {h: at_tokens(pts, 1) for k, pts in table.items() for kt, h in [split_key(k)] if kt == "attn:F16" and h}
    return at_width(by_heads, heads) if by_heads else None


def decode_attention_flops(spec: DeviceSpec, heads: float | None) -> float | None:
    """FLOP/s llama.cpp's decode attention over an f16 KV cache runs at on this CPU for a model of ``heads``
    query heads (aipc hw --kernels: decode timed at two contexts); None where not measured."""
    return attention_at((spec.kernel_flops or {}).get("llamacpp") or {}, heads)
