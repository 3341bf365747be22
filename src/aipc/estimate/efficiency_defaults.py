"""Default efficiency factors per device class and engine, each from published measurements.

A factor is what the roofline multiplies a peak by: train / prefill MFU against the device's dense
16-bit peak (the CPU: aipc hw's measured GEMM peak), decode MBU against its memory bandwidth, plus a
fixed time per layer per decode step (kernel launches, dispatch, synchronisation), so that
t_token = bytes read / (bandwidth x MBU) + layers x layer_s. The two decode terms are fitted by hand
to the published runs named beside them (their tokens/s, the bytes the estimator counts for that
model and format, and the device's spec bandwidth); docs/validation.md lists every run with the
estimate / published ratio, and tests/test_estimate_published.py keeps them within +-20%.
``aipc calibrate`` replaces these with factors fitted on the user's own machine.

Sources were read on 2026-12-01 (the date in each entry is the measurement's). One row is not
published: OpenVINO on CPUs was measured on this project's own machine (OPENVINO_CPU_MEASURED), with
its decode factors per weight format (DECODE_BY_FORMAT).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Default:
    mfu_train: float
    mfu_prefill: float
    mbu_decode: float
    decode_layer_s: float
    source: str


GPT_FAST = ("gpt-fast README (pytorch-labs/gpt-fast, 2023-11/12): A100-80GB, batch 1, Llama-2-7B bf16 104.9 tok/s, "
            "int8 155.6, int4 g32 196.8, Llama-2-70B int8 19.1; MI250X one GCD Llama-2-7B bf16 76.3")
TORCHTITAN = ("torchtitan docs/performance.md: Llama-3-8B on 64xA100 56.8-58.2% MFU (2024); Llama-3.1-8B on "
              "8xH100 33-39% MFU without float8 (2024-12)")
LLAMACPP_CUDA = ("llama.cpp PR 4766 (2024-01-10): RTX 4090, 7B F16 tg128 61.0 t/s, Q8_0 98.1, pp512 F16 11,048; "
                 "PR 7676 (2024-06): RTX 4090 Llama-3-8B Q4_0 pp512 10,359 with int8 tensor cores")
LLAMACPP_METAL = ("llama.cpp PR 2891 / 2917 (2023-08-30): M2 Ultra, Llama-2-7B F16 tg64 40.5 t/s, Q8_0 61.4, "
                  "Q4_0 tg128 88.5, pp512 F16 666; checked against normiebench issues 3 and 40 (2026-03-08): "
                  "Mac mini M4 Llama-3.1-8B Q4_K_M tg128 20.9 (pp512 224.8), M1 Max 46.2 (pp512 499.6)")
LLAMACPP_STRIX = ("deseven/strixhalo-homelab issue 11 (2026-03-26): Ryzen AI Max 385 (256-bit LPDDR5X-8000), "
                  "Vulkan, Llama-3.1-8B Q4_K_M tg64 41.6 t/s, pp512 833")

OPENVINO_AIPC = ("aicrier.com/post/wmaaqcepcj8n0zy4ds5v (2026-04-12, a summary of OpenVINO 2026.0 results on Intel "
                 "Core Ultra, chip not named): 8B models at 6-12 tok/s on the NPU (~10 typical), ~20 tok/s on the iGPU; "
                 "against Lunar Lake's 136.5 GB/s and the 4.15 GB a Llama-3.1-8B int4 IR reads per step "
                 "(aipc.estimate.openvino_weights): iGPU 0.61, NPU 0.30")

OPENVINO_CPU_MEASURED = (
    "measured on this project's test machine (Intel Xeon with AMX, 2 vCPUs, OpenVINO 2026.4) on 2026-12-06 20:10 "
    "UTC by `scripts/openvino_validation.py --write` (docs/validation.md, OpenVINO): smollm2-135m, qwen2.5-0.5b and "
    "llama-3.2-1b at prompts 128 and 512, 6 runs per format; decode: bytes / (bandwidth x MBU) + layers x per-layer "
    "time fitted per format against aipc hw's copy bandwidth (an fp16 IR streams its weights at full read speed, "
    "int8 / int4 are held to ~0.6 by dequantisation on two cores)")

# (device class, engine) -> factors. Classes: aipc.estimate.efficiency.device_class.
DEFAULTS: dict[tuple[str, str], Default] = {
    ("nvidia-gpu", "torch"): Default(
        0.40, 0.50, 0.80, 0.06e-3,
        f"default (published): decode MBU 0.80 + 0.06 ms per layer fitted to {GPT_FAST}; train MFU 0.40 "
        f"({TORCHTITAN}; A100 and H100 have their own, below); prefill MFU 0.50 (assumption)"),
    ("nvidia-gpu", "llamacpp"): Default(
        0.0, 0.85, 0.80, 0.06e-3,
        f"default (published): decode MBU 0.80 + 0.06 ms per layer, prefill MFU 0.85 of the 16-bit peak "
        f"({LLAMACPP_CUDA})"),
    ("amd-gpu", "torch"): Default(
        0.35, 0.45, 0.72, 0.06e-3,
        f"default (published): decode MBU 0.72 + 0.06 ms per layer ({GPT_FAST}); train / prefill MFU "
        "assumptions below NVIDIA's"),
    ("apple-apu", "torch"): Default(
        0.30, 0.45, 0.60, 0.0,
        "default: assumption (no published torch MPS decode collected); train / prefill MFU assumptions"),
    ("apple-apu", "llamacpp"): Default(
        0.0, 0.50, 0.88, 0.19e-3,
        f"default (published): decode MBU 0.88 + 0.19 ms per layer ({LLAMACPP_METAL}); prefill MFU 0.50, between "
        "the M2 Ultra's 0.33 (2023 kernels) and the M1 Max's / M4's ~0.7 (2026 normiebench pp512 against Apple's "
        "approximate GPU peaks)"),
    ("amd-apu", "torch"): Default(0.25, 0.40, 0.40, 0.0, "default: assumption (no published torch ROCm APU run collected)"),
    ("amd-apu", "llamacpp"): Default(
        0.0, 0.28, 0.83, 0.06e-3,
        f"default (published): decode MBU 0.83 + 0.06 ms per layer, prefill MFU 0.28 ({LLAMACPP_STRIX})"),
    ("apu", "torch"): Default(0.30, 0.40, 0.50, 0.0, "default: assumption for unified-memory GPUs without published efficiency"),
    ("npu", "torch"): Default(0.0, 0.30, 0.40, 0.0, "default: NPUs run inference graphs only (no training); MBU 0.40, MFU 0.30 assumed"),
    ("cpu", "torch"): Default(
        0.50, 0.60, 0.60, 0.0,
        "default: against the measured GEMM peak and copy bandwidth of aipc hw; uncalibrated assumption — run "
        "'aipc bench' then 'aipc calibrate'"),
    # llama.cpp on a CPU: decode against aipc hw's measured copy bandwidth; prefill against the FLOP/s of
    # ggml's kernels for the file's weight types (aipc.estimate.kernels: aipc hw --kernels, else default
    # shares of the fp32 GEMM peak)
    ("cpu", "llamacpp"): Default(
        0.0, 0.90, 0.53, 0.0,
        "default (measured with llama.cpp's own llama-bench on a 2-core AVX-512 Xeon, 2026-12-06, "
        "docs/benchmarks.md 'llama.cpp decode': decode MBU 0.49-0.56 of aipc hw's copy bandwidth, per-layer "
        "time included; where aipc hw --kernels ran, the bandwidth its decode of a probe beyond the cache reached "
        "replaces it, aipc.estimate.efficiency; prefill 0.90 of its kernels' FLOP/s for the model's weight types (aipc hw --kernels: layers "
        "of three widths, 135M- to 1B-class, read at the model's own width; not measured: default shares of the "
        "fp32 peak, aipc.estimate.kernels); aipc bench --engine llamacpp then aipc calibrate replace it)"),
    # OpenVINO (Intel CPU, iGPU, NPU): decode against the device's bandwidth, prefill against its 16-bit peak
    # (the CPU: aipc hw's measured GEMM peak in the precision the CPU plugin computes in, see
    # aipc.estimate.calibrate.openvino_cpu_precision); the CPU's decode factors per weight format are below
    ("cpu", "openvino"): Default(
        0.0, 0.50, 0.60, 0.17e-3,
        f"default ({OPENVINO_CPU_MEASURED}): prefill MFU 0.50, the median of the prefill runs of 2026-12-06 22:41 "
        "and 2026-12-07 00:30 UTC (0.48 and 0.53; each 18 runs, 0.38-0.63), counting the output head for the last "
        "prompt token only (aipc's runner slices it), against the peak of the precision the CPU plugin computes in"),
    ("apu", "openvino"): Default(
        0.0, 0.40, 0.61, 0.0,
        f"default (published, weak source): decode MBU 0.61 ({OPENVINO_AIPC}); prefill MFU 0.40 (assumption)"),
    ("npu", "openvino"): Default(
        0.0, 0.30, 0.30, 0.0,
        f"default (published, weak source): decode MBU 0.30 ({OPENVINO_AIPC}); prefill MFU 0.30 (assumption)"),
}

# Training MFU by GPU generation where the published runs disagree with the class default by more than
# 20%: torchtitan's A100 runs reach 57%, its H100 runs (bf16, no float8) 33-39% of the H100 SXM peak.
TRAIN_MFU_BY_DEVICE: dict[str, tuple[float, str]] = {
    "a100": (0.55, "torchtitan docs/performance.md (2024): Llama-3-8B FSDP on 64xA100, 56.8-58.2% MFU"),
    "h100": (0.37, "torchtitan docs/performance.md (2024-12): Llama-3.1-8B FSDP on 8xH100 without float8, 33-39% MFU"),
    "h200": (0.37, "as H100 (same compute): torchtitan docs/performance.md (2024-12), 33-39% MFU"),
}


# Training on a CPU whose 16-bit dtype is emulated (no AVX512_BF16 / AMX for bf16): every product
# converts around fp32 kernels, so the step is almost all GEMM and runs close to the layer-shaped
# linear forward + backward peak aipc hw measures for that dtype (which is already emulated); the
# class default (0.50, set by the non-GEMM work of native steps) is too low for it.
EMULATED_TRAIN_MFU = (
    0.60, "measured on this project's test machine (Intel Xeon, 2 vCPUs) with AVX2 emulated "
    "(ONEDNN_MAX_CPU_ISA=AVX2, ATEN_CPU_CAPABILITY=avx2) by scripts/truth_bf16_avx2.py: bf16 train steps at "
    "1x64, 1x128, 2x128 ran at 0.68-0.73 of the emulated bf16 linear forward+backward peak for smollm2-135m "
    "(2026-12-06 22:57 UTC) and 0.50-0.52 for gpt2 (2026-12-07 00:31 UTC); 0.60 between the two "
    "(docs/validation.md, 'bf16 on a CPU without native bf16')")

# Decode factors per weight format where an engine's formats differ by more than its class default can
# cover: (device class, engine) -> weight format -> (decode MBU, seconds per layer per step). The
# estimator takes them over the class row's decode terms, and a calibration that has not seen a format
# scales a measured format's fitted terms by these ratios (aipc.estimate.calibrate.lookup_decode). On a CPU
# where aipc hw --kernels measured OpenVINO's decode per format (aipc.bench.openvino_kernels), those terms
# replace this row's (aipc.estimate.efficiency.by_format): the row below was fitted on an Intel Xeon with
# AVX512-FP16, and on a CPU without it fp16 pays per layer about what int8 does.
DECODE_BY_FORMAT: dict[tuple[str, str], dict[str, tuple[float, float]]] = {
    # fitted: fp16 1.00-1.19 against the copy bandwidth (which counts reads and writes: an fp16 IR only
    # reads its weights, and aipc hw measured read-only 30 GB/s against copy 27 GB/s here, x1.11), taken
    # as 1.10 + 0.012 ms per layer; int8 0.604 + 0.168 ms; int4 0.560 + 0.174 ms (OPENVINO_CPU_MEASURED)
    ("cpu", "openvino"): {"fp16": (1.10, 0.01e-3), "int8": (0.60, 0.17e-3), "int4": (0.56, 0.17e-3)},
}

# OpenVINO's prefill on a CPU where aipc hw --kernels timed it per weight format on its probes
# (aipc.bench.openvino_kernels): the share of the probes' FLOP/s a whole model's prefill reaches, read at the
# model's layer width and prompt length. 1.0: against the probes measured at 2026-12-07 15:20 UTC, the prefills of
# three validation runs on the 2-core AMD EPYC (smollm2-135m, qwen2.5-0.5b, llama-3.2-1b at fp16 / int8 / int4,
# 128 and 512 tokens; 10:08, 14:40 and 14:56 UTC) ran a median 6.8%, 4.4% and 2.2% faster than the
# estimate at 1.0 (each run 14 prefills, -18% to +20%), so no share was fitted (docs/validation.md).
OPENVINO_KERNEL_PREFILL_MFU = (1.0, "whole models ran at the probes' FLOP/s within a median of 2-7% in three runs "
                               "on the 2-core AMD EPYC, 2026-12-07 (docs/validation.md, OpenVINO notes)")
