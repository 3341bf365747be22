"""The reduced validation set, run for real: estimate beside measured peak memory on this CPU.

Bounds from the issue: median |error| <= 5%, max <= 10%. Each workload runs in a fresh subprocess
(real transformers architectures, random weights). The set fits the CPU (``configs.small``): where bf16
is only emulated, its training rows run in fp32."""

import pytest

from aipc.hardware.local import cpu_bf16_native
from aipc.validation import configs
from aipc.validation.runner import run_set, summary


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_small_validation_set_within_bounds():
    rows = run_set("small")
    s = summary(rows)
    detail = "\n".join(f"{r.name}: measured {r.measured_bytes/1e6:.1f} MB, est {r.estimated_bytes/1e6:.1f} MB, "
                       f"{r.error:+.1%}" for r in rows)
    want = configs.small(cpu_bf16_native())
    assert s["n"] == len(want) >= 8 and [r.workload["precision"] for r in rows] == [w["precision"] for w in want]
    assert {"train", "infer"} <= {r.workload["task"] for r in rows} and "bf16" in {r.workload["precision"] for r in rows}
    assert s["median_abs_error"] <= 0.05, detail
    assert s["max_abs_error"] <= 0.10, detail
    # the naive weights-only figure is far off on the same set: the test can tell good from bad
    assert s["weights_only_median_abs_error"] > 0.5


def test_the_set_follows_the_cpu(monkeypatch):
    """bf16 trains only where the CPU runs it natively; the emulated-bf16 set still covers the same kinds."""
    from aipc.hardware.detect import detect_cpu

    f = detect_cpu().features
    has_bf16 = bool(f.get("avx512_bf16") or f.get("amx_bf16") or f.get("bf16"))
    for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA"):
        monkeypatch.delenv(k, raising=False)
    assert cpu_bf16_native() == has_bf16
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")  # torch capped below the bf16 instructions
    assert cpu_bf16_native() is False
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX")
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    assert cpu_bf16_native() is False
    native, emulated = configs.small(True), configs.small(False)
    assert native == configs.SMALL and len(emulated) == len(native) - 1
    assert not [w for w in emulated if w["task"] == "train" and w["precision"] == "bf16"]
    kinds = lambda ws: {(w["model"], w["task"], w.get("method", "full"), bool(w.get("grad_ckpt")),  # noqa: E731
                         w.get("attention", "sdpa")) for w in ws}
    assert kinds(emulated) == kinds(native)  # every model, task, method, checkpointing and attention kept
    assert [w for w in emulated if w["precision"] == "bf16" and w["task"] == "infer"]
