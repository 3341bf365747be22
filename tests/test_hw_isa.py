"""CPU dtype support from injected ISA flags and ISA caps (no /proc/cpuinfo in the logic)."""

from __future__ import annotations

from aipc.hardware.isa import cpu_dtype_support, native

AMX = {"avx2": True, "fma": True, "avx512f": True, "avx512_bf16": True, "amx_tile": True, "amx_bf16": True,
       "avx512_fp16": True, "avx_vnni": True}
AVX512_BF16 = {"avx2": True, "fma": True, "avx512f": True, "avx512_bf16": True, "amx_bf16": False}
AVX2 = {"avx2": True, "fma": True, "avx512f": False, "avx512_bf16": False, "amx_bf16": False, "avx_vnni": True}


def test_native_by_flags():
    assert native(cpu_dtype_support(AMX, "x86_64")) == ["fp32", "bf16", "fp16"]
    assert cpu_dtype_support(AMX, "x86_64")["bf16"] == "native (amx_bf16)"
    assert native(cpu_dtype_support(AVX512_BF16, "x86_64")) == ["fp32", "bf16"]
    s = cpu_dtype_support(AVX2, "x86_64")
    assert native(s) == ["fp32"] and "no avx512_bf16" in s["bf16"] and "no avx512_fp16" in s["fp16"]
    # amx_bf16 without tiles is not usable
    assert native(cpu_dtype_support({"amx_bf16": True}, "x86_64")) == ["fp32"]


def test_isa_caps_emulate_an_avx2_machine():
    env = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
    s = cpu_dtype_support(AMX, "x86_64", env)
    assert native(s) == ["fp32"] and "ONEDNN_MAX_CPU_ISA=AVX2" in s["bf16"]
    # capping oneDNN below AVX512_CORE_BF16 alone is enough for bf16; ATen alone too
    assert native(cpu_dtype_support(AMX, "x86_64", {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_VNNI"})) == ["fp32"]
    assert native(cpu_dtype_support(AMX, "x86_64", {"ATEN_CPU_CAPABILITY": "avx2"})) == ["fp32"]
    assert native(cpu_dtype_support(AMX, "x86_64", {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"})) == ["fp32", "bf16"]
    assert native(cpu_dtype_support(AMX, "x86_64", {"ONEDNN_MAX_CPU_ISA": "ALL"})) == ["fp32", "bf16", "fp16"]


def test_arm():
    assert native(cpu_dtype_support({"bf16": True, "neon_fp16": True, "neon": True}, "arm64")) == ["fp32", "bf16", "fp16"]
    assert native(cpu_dtype_support({"neon": True}, "arm64")) == ["fp32"]
