"""Which floating-point dtypes a CPU runs natively, from its ISA flags (injected, never read here).

The logic takes the CPU feature flags (``aipc.hardware.detect`` reads them from /proc/cpuinfo or
sysctl) and the environment variables that cap what the kernels may use, so it can be tested for
any CPU by passing flags:

- x86 bf16 is native with AVX512_BF16 (``avx512_bf16``: VDPBF16PS dot products) or AMX
  (``amx_bf16`` + ``amx_tile``: tile matrix multiply); fp16 with AVX512_FP16 (``avx512_fp16``).
  Without them oneDNN and ATen convert to fp32 and back around every product: "emulated", and on
  such a CPU fp32 runs faster (measured by ``aipc hw``; docs/hw.md).
- ``ONEDNN_MAX_CPU_ISA`` caps oneDNN (AVX2 disables AVX-512 and AMX kernels even where present) and
  ``ATEN_CPU_CAPABILITY`` caps ATen's vectorized kernels; with either at AVX2 or below, bf16 and
  fp16 are emulated whatever the flags say (how aipc emulates an AVX2-only machine here).
- arm64: bf16 is native with FEAT_BF16 (``bf16``), fp16 with FEAT_FP16 (``neon_fp16`` / asimdhp).
- ``avx_vnni`` / ``avx512_vnni`` / ``amx_int8`` speed up int8 dot products (quantized engines), not
  bf16; they are recorded in the profile for the engines that use them.
"""

from __future__ import annotations

from collections.abc import Mapping

# oneDNN's ISA names in increasing order (ONEDNN_MAX_CPU_ISA values; oneDNN docs "CPU ISA hints")
_ONEDNN_ORDER = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI",
                 "AVX512_CORE_BF16", "AVX10_1_512", "AVX512_CORE_FP16", "AVX10_1_512_AMX",
                 "AVX512_CORE_AMX", "AVX10_1_512_AMX_FP16", "AVX512_CORE_AMX_FP16", "DEFAULT", "ALL")
_ATEN_ORDER = ("DEFAULT", "AVX2", "AVX512")  # ATEN_CPU_CAPABILITY values (x86); DEFAULT = no vectorization
DTYPES = ("fp32", "bf16", "fp16")


def _rank(order: tuple[str, ...], value: str | None) -> int:
    """Position of ``value`` in ``order`` (unset or unknown: no cap)."""
    v = (value or "").strip().upper()
    return order.index(v) if v in order else len(order)


def isa_caps(env: Mapping[str, str] | None) -> dict[str, str]:
    """The ISA caps in effect (only the variables that are set)."""
    env = env or {}
    return {k: env[k] for k in ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY") if env.get(k)}


def cpu_dtype_support(features: Mapping[str, bool], arch: str,
                      env: Mapping[str, str] | None = None) -> dict[str, str]:
    """{dtype: "native (<flag>)" | "emulated (<why>)"} for fp32, bf16, fp16 on a CPU with these
    feature flags, under the ISA caps in ``env`` (pass ``os.environ`` for this process)."""
    f = {k for k, v in features.items() if v}
    out = {"fp32": "native"}
    if arch == "arm64":
        out["bf16"] = "native (bf16)" if "bf16" in f else "emulated (no FEAT_BF16)"
        out["fp16"] = "native (neon_fp16)" if "neon_fp16" in f else "emulated (no FEAT_FP16)"
        return out
    env = env or {}
    dnn = _rank(_ONEDNN_ORDER, env.get("ONEDNN_MAX_CPU_ISA"))
    aten = _rank(_ATEN_ORDER, env.get("ATEN_CPU_CAPABILITY"))
    capped = None
    if dnn < _ONEDNN_ORDER.index("AVX512_CORE"):
        capped = f"ONEDNN_MAX_CPU_ISA={env['ONEDNN_MAX_CPU_ISA']}"
    elif aten < _ATEN_ORDER.index("AVX512"):
        capped = f"ATEN_CPU_CAPABILITY={env['ATEN_CPU_CAPABILITY']}"
    bf16 = [x for x in ("amx_bf16", "avx512_bf16") if x in f]
    if bf16 and "amx_bf16" in bf16 and "amx_tile" not in f:
        bf16.remove("amx_bf16")
    if capped and bf16:
        out["bf16"] = f"emulated ({capped} caps the kernels below {'/'.join(bf16)})"
    elif bf16 and dnn < _ONEDNN_ORDER.index("AVX512_CORE_BF16"):
        out["bf16"] = f"emulated (ONEDNN_MAX_CPU_ISA={env['ONEDNN_MAX_CPU_ISA']})"
    else:
        out["bf16"] = f"native ({bf16[0]})" if bf16 else "emulated (no avx512_bf16 or amx_bf16)"
    fp16 = "avx512_fp16" in f
    if fp16 and (capped or dnn < _ONEDNN_ORDER.index("AVX10_1_512")):
        out["fp16"] = f"emulated ({capped or 'ONEDNN_MAX_CPU_ISA=' + env['ONEDNN_MAX_CPU_ISA']} caps the kernels below avx512_fp16)"
    else:
        out["fp16"] = "native (avx512_fp16)" if fp16 else "emulated (no avx512_fp16)"
    return out


def native(support: Mapping[str, str]) -> list[str]:
    """The dtypes a support map marks native."""
    return [dt for dt in DTYPES if support.get(dt, "").startswith("native")]
