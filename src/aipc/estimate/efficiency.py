"""Efficiency factors (fraction of peak reached) by device class and engine, each with its source.

Defaults come from published measurements (:mod:`aipc.estimate.efficiency_defaults`); they are
replaced by calibrated values where ``aipc calibrate`` fitted them for this device, engine and weight
format from measured runs (``aipc.estimate.calibrate``). The Estimate says which was used.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from aipc.estimate import calibrate
from aipc.estimate.compute import decode_context
from aipc.estimate.efficiency_defaults import (DECODE_BY_FORMAT, DEFAULTS, EMULATED_TRAIN_MFU, OPENVINO_KERNEL_PREFILL_MFU,
                                              TRAIN_MFU_BY_DEVICE)
from aipc.estimate.types import Efficiency
from aipc.hardware.spec import DeviceSpec


def device_class(device: DeviceSpec) -> str:
    """nvidia-gpu, amd-gpu, apple-apu, amd-apu, apu, npu or cpu."""
    if device.kind == "gpu":
        return "amd-gpu" if device.vendor == "amd" else "nvidia-gpu"
    if device.kind == "apu":
        return {"apple": "apple-apu", "amd": "amd-apu"}.get(device.vendor, "apu")
    return "npu" if device.kind == "npu" else "cpu"


def default_efficiency(device: DeviceSpec, engine: str = "torch", weight_format: str | None = None,
                       width: float | None = None, mix: tuple = ()) -> Efficiency:
    """The published default factors for a device's class and an engine (an engine without its own
    row for the class takes the torch row, and says so); the weight format's own decode terms where
    the engine has them for the class (:func:`by_format`: ``DECODE_BY_FORMAT``, or OpenVINO's terms that
    aipc hw --kernels measured on this CPU); llama.cpp on a measured CPU: the decode MBU
    its probes reached at the model's layer ``width`` over its weight types ``mix`` (Compute.decode_mix)."""
    cls = device_class(device)
    d = DEFAULTS.get((cls, engine))
    note = ""
    if d is None:
        d = DEFAULTS[(cls, "torch")]
        note = f" (no published {engine} measurement for {cls}: torch's factors)" if engine != "torch" else ""
    train, src = d.mfu_train, d.source
    ov_decode = openvino_measured(device) if engine == "openvino" else {}
    ov_prefill = engine == "openvino" and _ov_prefill_measured(device, weight_format)
    if weight_format in ov_decode and ov_prefill:
        src = "OpenVINO on this CPU"  # both its prefill and decode terms measured here: the class default's text is moot
    short = device.name.split("-")[0]
    if engine == "torch" and cls == "nvidia-gpu" and short in TRAIN_MFU_BY_DEVICE:
        train, tsrc = TRAIN_MFU_BY_DEVICE[short]
        src += f"; train MFU {train:.2f} for {device.name}: {tsrc}"
    mbu, layer_s = d.mbu_decode, d.decode_layer_s
    per_format = by_format(device, engine) or {}
    if weight_format in per_format:
        mbu, layer_s = per_format[weight_format]
        here = " (measured on this machine by aipc hw --kernels)" if weight_format in ov_decode else ""
        src += f"; {weight_format} decode MBU {mbu:.2f} + {layer_s * 1e3:.3g} ms per layer{here}"
    mfu_prefill = d.mfu_prefill
    if ov_prefill:
        mfu_prefill, psrc = OPENVINO_KERNEL_PREFILL_MFU
        src += f"; prefill MFU {mfu_prefill:.2f} of the {weight_format} prefill FLOP/s aipc hw --kernels measured: {psrc}"
    measured = _measured_read(device, engine, weight_format, width, mix) if cls == "cpu" else None
    if measured:
        mbu, msrc = measured
        src += f"; decode MBU {mbu:.2f}: {msrc}"
    return Efficiency(mfu_train=train, mfu_prefill=mfu_prefill, mbu_decode=mbu,
                      decode_layer_s=layer_s, source=src + note)


def _ov_prefill_measured(device: DeviceSpec, weight_format: str | None) -> bool:
    """True where aipc hw --kernels measured OpenVINO's prefill for this weight format on this CPU."""
    from aipc.estimate.kernels import openvino_prefill

    return openvino_prefill(device, weight_format, None) is not None


def openvino_measured(device: DeviceSpec) -> dict[str, tuple[float, float]]:
    """OpenVINO on this CPU: weight format -> (decode MBU, seconds per layer) that aipc hw --kernels fitted
    from its decode probes (aipc.bench.openvino_kernels); {} where not measured."""
    table = (device.kernel_flops or {}).get("openvino") or {} if device_class(device) == "cpu" else {}
    out = {}
    for key, pts in table.items():
        kind, _, fmt = key.partition(":")
        if kind == "mbu" and f"layer_us:{fmt}" in table:
            layer_s = table[f"layer_us:{fmt}"][0][1] * 1e-6
            out[fmt] = (pts[0][1], layer_s if layer_s >= 1e-8 else 0.0)  # the record's floor for 0
    return out


def by_format(device: DeviceSpec, engine: str) -> dict[str, tuple[float, float]] | None:
    """Weight format -> default (decode MBU, seconds per layer) of an engine on the device's class
    (DECODE_BY_FORMAT), OpenVINO's formats measured on this CPU over it; None where the engine has none."""
    table = DECODE_BY_FORMAT.get((device_class(device), engine))
    measured = openvino_measured(device) if engine == "openvino" else {}
    return {**(table or {}), **measured} if measured else table


def _measured_read(device: DeviceSpec, engine: str, weight_format: str | None, width: float | None,
                   mix: tuple = ()) -> tuple[float, str] | None:
    """llama.cpp on this CPU: (decode MBU, source) from the bandwidth its decode reached in aipc hw --kernels
    over aipc hw's measured bandwidth — over the model's weight types (``mix``: Compute.decode_mix) where
    given, else the file type's main type (aipc.estimate.kernels.decode_read); None where not measured."""
    from aipc.estimate.kernels import decode_read, decode_read_mix
    from aipc.estimate.quant import FTYPE_DEFAULT

    bw = device.bandwidth_bytes_s
    if engine != "llamacpp" or not bw or weight_format not in FTYPE_DEFAULT:
        return None
    got = decode_read_mix(device, mix, width) if mix else decode_read(device, FTYPE_DEFAULT[weight_format], width)
    if not got:
        return None
    mbu = min(1.0, got[0] / bw)
    at = f" at layer width {width:.0f}" if width else ""
    return mbu, (f"measured on this machine by aipc hw --kernels ({got[1]} decode on probes beyond the cache: "
                 f"{got[0] / 1e9:.1f} GB/s{at} of the measured {bw / 1e9:.1f})")


class _MeasuredFormats(Mapping):
    """Weight format -> (decode MBU, 0 s per layer) of llama.cpp on this CPU from aipc hw --kernels' decode
    bandwidths over the model's own tensor types in that format (``model``: its ModelSpec, so a q4_k_m
    whose rows fall back to Q5_0 reads at Q5_0's speed), computed on first use."""

    def __init__(self, device: DeviceSpec, width: float | None, model) -> None:
        from aipc.estimate.quant import FTYPE_DEFAULT

        self.device, self.width, self.model, self.formats, self.got = device, width, model, tuple(FTYPE_DEFAULT), {}

    def __getitem__(self, fmt: str) -> tuple[float, float]:
        if fmt not in self.formats:
            raise KeyError(fmt)
        if fmt not in self.got:
            from aipc.estimate.quant import matmul_mix

            mix = matmul_mix(self.model, fmt, head=True) if self.model is not None and self.model.is_decoder else ()
            got = _measured_read(self.device, "llamacpp", fmt, self.width, mix)
            self.got[fmt] = (got[0], 0.0) if got else (0.0, 0.0)
        return self.got[fmt]

    def __iter__(self):
        return iter(self.formats)

    def __len__(self) -> int:
        return len(self.formats)


def _format_defaults(device: DeviceSpec, engine: str, width: float | None, model=None) -> Mapping | None:
    """Weight format -> its default (decode MBU, seconds per layer), which a calibration scales a measured
    format's fit by for a format it has not seen: :func:`by_format`, else (llama.cpp on a CPU that aipc hw
    --kernels measured) the decode bandwidth measured for the model's types in each format."""
    from aipc.estimate.kernels import reads_measured

    table = by_format(device, engine)
    if (table or engine != "llamacpp" or device_class(device) != "cpu" or not device.bandwidth_bytes_s
            or not reads_measured(device)):
        return table
    return _MeasuredFormats(device, width, model)


def _prefill_entry_fits(device: DeviceSpec, engine: str, fmt: str | None) -> bool:
    """False where a stored OpenVINO prefill calibration was fitted against other peaks than this estimate
    uses: against aipc hw --kernels' prefill FLOP/s for the format while this CPU has none, or the reverse
    (the mark bench.calibration puts on each run)."""
    if engine != "openvino" or device_class(device) != "cpu":
        return True
    return (calibrate.prefill_against(device.name, engine) == calibrate.OV_KERNELS) == _ov_prefill_measured(device, fmt)


def _emulated_train(eff: Efficiency, device: DeviceSpec, workload) -> Efficiency:
    """A torch training step on a CPU whose compute dtype is emulated (aipc hw found no native kernels
    for it) is nearly all GEMM: its default MFU is EMULATED_TRAIN_MFU, not the class's."""
    dtype = getattr(workload, "compute", None)
    if (workload is None or _engine_of(workload)[0] != "torch" or device_class(device) != "cpu"
            or not device.native_dtypes or dtype in device.native_dtypes or dtype not in ("bf16", "fp16")):
        return eff
    mfu, src = EMULATED_TRAIN_MFU
    return dataclasses.replace(eff, mfu_train=mfu, source=f"{eff.source}; train MFU {mfu:.2f} for emulated {dtype}: {src}")


def _engine_of(workload) -> tuple[str, str | None]:
    if workload is None:
        return "torch", None
    engine = getattr(workload, "engine", "torch") or "torch"
    return engine, (workload.weight_dtype if engine != "torch" else None)


def efficiency_for(device: DeviceSpec, flops_per_token: float | None = None, workload=None, *,
                   ideal_s: dict[str, float] | None = None, layers: int | None = None,
                   runner: str | None = None, width: float | None = None, mix: tuple = (),
                   model=None) -> Efficiency:
    """Calibrated factors for this device (and the workload's engine and weight format) where ``aipc
    calibrate`` stored them, else the defaults. ``workload`` (optional) also gives the tokens per
    forward the calibration is keyed by; ``ideal_s`` (scenario -> FLOPs / peak of the step) and
    ``layers`` let a fitted time model answer; ``width``, ``mix`` and ``model`` (its ModelSpec): the model's
    layer width and decode type mix (llama.cpp's measured decode bandwidth depends on both)."""
    engine, fmt = _engine_of(workload)
    eff = _emulated_train(default_efficiency(device, engine, fmt, width, mix), device, workload)
    found = {}
    tokens = calibrate.tokens_for(workload) if workload is not None else {}  # tokens per forward, by scenario
    for scenario in ("train", "prefill"):
        if scenario == "prefill" and not _prefill_entry_fits(device, engine, fmt):
            continue
        hit = calibrate.lookup(device.name, scenario, flops_per_token, tokens=tokens.get(scenario),
                               ideal_s=(ideal_s or {}).get(scenario), layers=layers, engine=engine, weight_format=fmt,
                               runner=runner)
        if hit:
            found[scenario] = hit
    layer_s = eff.decode_layer_s
    dec = calibrate.lookup_decode(device.name, tokens.get("decode"), engine=engine, weight_format=fmt,
                                  context=decode_context(workload) if workload is not None else None, runner=runner,
                                  defaults=_format_defaults(device, engine, width, model))
    if dec and calibrate.decode_against(device.name, engine) == calibrate.READS:
        rel = _measured_read(device, engine, fmt, width, mix)  # fitted against this model's types' bandwidth
        dec = (min(1.0, dec[0] * rel[0]), dec[1], f"{dec[2]}; relative to the decode bandwidth {rel[1]}") if rel else None
    apart = True
    if dec:
        mbu, layer_s, dsrc = dec
        found["decode"] = (mbu, f"MBU {mbu:.2f} + {layer_s * 1e3:.3g} ms per layer per step, {dsrc}")
        apart = calibrate.attention_apart(device.name, engine)
    if not found:
        return eff
    src = "; ".join(f"{k}: {v[1]}" for k, v in found.items())
    return Efficiency(
        mfu_train=found.get("train", (eff.mfu_train,))[0],
        mfu_prefill=found.get("prefill", (eff.mfu_prefill,))[0],
        mbu_decode=found.get("decode", (eff.mbu_decode,))[0], decode_layer_s=layer_s, attention_apart=apart,
        source=f"calibrated: {src}" + ("" if len(found) == 3 else f"; others {eff.source}"),
    )
