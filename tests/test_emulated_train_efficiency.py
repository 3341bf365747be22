"""A torch training step on a CPU whose bf16 / fp16 is emulated (no native kernels per aipc hw) is nearly
all GEMM, so its default MFU against the (emulated) measured peak is EMULATED_TRAIN_MFU, not the CPU
class's; native dtypes, fp32 and inference keep the class default. The CPUs are DeviceSpecs built here,
so the tests hold whatever CPU runs them."""

from __future__ import annotations

import pytest

from aipc.estimate import calibrate as C
from aipc.estimate import estimate
from aipc.estimate.efficiency_defaults import DEFAULTS, EMULATED_TRAIN_MFU
from aipc.hardware.spec import DeviceSpec
from aipc.models import catalog
from aipc.spec import Workload

MODEL = catalog.get("smollm2-135m")
PEAKS = {"fp32": 0.3e12, "bf16": 0.01e12, "fp16": 0.01e12}


def _cpu(native: tuple[str, ...]) -> DeviceSpec:
    return DeviceSpec(name="test-cpu", label="test-cpu", vendor="intel", kind="cpu", category="this-machine",
                      memory_bytes=64 << 30, usable_memory_bytes=64 << 30, bandwidth_bytes_s=25e9,
                      peak_flops=PEAKS, train_peak_flops=PEAKS, native_dtypes=native)


def _train(dtype: str, task: str = "train") -> Workload:
    return Workload(model=MODEL.name, task=task, weight_dtype=dtype, batch_size=1, seq_len=128,
                    prompt_tokens=128, gen_tokens=8)


def _eff(w: Workload, spec: DeviceSpec):
    with C.using({}):
        return estimate(w, spec, model=MODEL).efficiency


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_emulated_16_bit_training_takes_the_emulated_mfu(dtype):
    eff = _eff(_train(dtype), _cpu(("fp32",)))
    assert eff.mfu_train == EMULATED_TRAIN_MFU[0]
    assert f"emulated {dtype}" in eff.source


@pytest.mark.parametrize("native,dtype", [(("fp32", "bf16", "fp16"), "bf16"), (("fp32",), "fp32"), ((), "bf16")])
def test_native_or_unknown_keeps_the_class_default(native, dtype):
    eff = _eff(_train(dtype), _cpu(native))
    assert eff.mfu_train == DEFAULTS[("cpu", "torch")].mfu_train
    assert "emulated" not in eff.source


def test_the_step_time_follows_the_emulated_mfu():
    w = _train("bf16")
    with C.using({}):
        emulated = estimate(w, _cpu(("fp32",)), model=MODEL).time.step_s
        native = estimate(w, _cpu(("fp32", "bf16")), model=MODEL).time.step_s
    assert emulated == pytest.approx(native * DEFAULTS[("cpu", "torch")].mfu_train / EMULATED_TRAIN_MFU[0], rel=1e-6)
