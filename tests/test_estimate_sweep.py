"""aipc.estimate.sweep and estimate() are one code path: equal answers on a calibrated device for
workloads of different shapes, and the same rejections."""

from __future__ import annotations

import pytest

from aipc.errors import AipcError
from aipc.estimate import calibrate as C
from aipc.estimate import estimate
from aipc.estimate.sweep import sweep
from aipc.hardware.spec import DeviceSpec
from aipc.spec import Workload

DEV = DeviceSpec(name="lab:cpu", label="lab CPU", vendor="x", kind="cpu", category="this-machine",
                 memory_bytes=64 << 30, usable_memory_bytes=64 << 30, bandwidth_bytes_s=50e9,
                 peak_flops={"fp32": 4e11, "bf16": 8e11}, measured=True)


def _table():
    """Factors that depend strongly on tokens per forward and model size, as real ones do."""
    pts = []
    for fpt, scale in ((1e9, 1.0), (5e9, 0.6)):
        for scen in ("train", "prefill"):
            for tokens, f in ((32, 0.1), (128, 0.3), (512, 0.6)):
                pts.append({"device": DEV.name, "scenario": scen, "flops_per_token": fpt, "factor": f * scale,
                            "tokens": tokens})
    for b, layers, f in ((1, 12, 0.5), (1, 30, 0.3), (4, 12, 0.2)):
        pts.append({"device": DEV.name, "scenario": "decode", "flops_per_token": 1e9, "factor": f, "tokens": b,
                    "layers": layers, "ideal_s": 0.002 * layers / 12})
    return C.fit(pts, "test")


WORKLOADS = [
    Workload(model="smollm2-135m", task="train", batch_size=1, seq_len=32, weight_dtype="fp32"),
    Workload(model="smollm2-135m", task="train", batch_size=4, seq_len=512, weight_dtype="fp32", grad_ckpt=True),
    Workload(model="gpt2", task="train", method="lora", batch_size=2, seq_len=128, weight_dtype="bf16"),
    Workload(model="smollm2-360m", task="infer", batch_size=1, prompt_tokens=64, gen_tokens=16, weight_dtype="fp32"),
    Workload(model="smollm2-360m", task="infer", batch_size=4, prompt_tokens=1024, gen_tokens=64),
    Workload(model="qwen2.5-0.5b", task="infer", batch_size=2, prompt_tokens=300, gen_tokens=30),
]


def test_sweep_equals_estimate_on_a_calibrated_device():
    with C.using(_table()):
        points = sweep(WORKLOADS, DEV)
        for w, p in zip(WORKLOADS, points):
            e = estimate(w, DEV)
            assert "calibrated" in e.efficiency.source
            assert p.peak_bytes == e.memory.peak_bytes and p.fits == e.fits
            want = e.time.step_s if w.is_train else e.time.request_s
            assert p.seconds == want
            assert p.tokens_per_s == (e.time.train_tokens_per_s if w.is_train else e.time.decode_tokens_per_s)
        # the shapes really get different factors (the old sweep took the first workload's efficiency)
        t1 = estimate(WORKLOADS[0], DEV).efficiency.mfu_train
        t2 = estimate(WORKLOADS[1], DEV).efficiency.mfu_train
        assert t1 != pytest.approx(t2)


def test_sweep_rejects_what_estimate_rejects():
    bad = Workload(model="smollm2-135m", task="infer", num_devices=64, sharding="tp")
    with pytest.raises(AipcError, match="tensor parallel"):
        estimate(bad, DEV)
    with pytest.raises(AipcError, match="tensor parallel"):
        sweep([bad], DEV)
    wrong = Workload(model="smollm2-135m", task="infer", method="lora")  # never validated by its maker
    with pytest.raises(AipcError):
        sweep([wrong], DEV)
