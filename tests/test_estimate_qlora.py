"""QLoRA as the paper runs it: adapter dtype, paged / 8-bit optimizers, and 'what would fit' advice
that changes the run, not only the number of devices."""

from __future__ import annotations

import json

import pytest
from helpers import run_cli

from aipc.estimate import estimate
from aipc.estimate.api import resolve_model
from aipc.estimate.memory import memory_breakdown
from aipc.hardware.catalog import get_device
from aipc.spec import Workload

# The QLoRA paper's 65B run (Dettmers et al. 2023; artidoro/qlora scripts/finetune_guanaco_65b.sh and
# qlora.py defaults): NF4 + double quant base, bf16 compute and bf16 adapters, LoRA r=64 on all linear
# layers, gradient checkpointing, paged AdamW (qlora.py's paged_adamw_32bit), batch 4 x accumulation 4,
# source 16 + target 512 tokens.
PAPER = dict(model="llama-65b", task="train", method="qlora", weight_dtype="nf4", compute_dtype="bf16",
             adapter_dtype="bf16", lora_rank=64, lora_targets=("all-linear",), grad_ckpt=True,
             optimizer="paged-adamw", batch_size=4, grad_accum=4, seq_len=528)


@pytest.mark.parametrize("changes", [{}, {"optimizer": "paged-adamw8bit"},
                                     {"batch_size": 1, "grad_accum": 16, "seq_len": 512}])
def test_65b_qlora_with_the_papers_settings_fits_a_48gb_gpu(changes):
    for dev in ("l40s", "rtx-6000-ada"):
        e = estimate(Workload(**{**PAPER, **changes}), dev)
        assert e.fits, e.verdict
        assert e.capacity_bytes == 48 * 2**30


def test_peft_defaults_do_not_fit_and_advice_changes_the_run():
    # peft's defaults: fp32 adapters, torch AdamW with states in the adapters' dtype
    w = Workload(**{**PAPER, "adapter_dtype": None, "optimizer": "adamw", "batch_size": 1, "seq_len": 512})
    e = estimate(w, "l40s")
    assert not e.fits
    text = " ".join(e.suggestions)
    assert "--adapter-dtype bf16" in text and "--lora-rank 32" in text and "paged-adamw8bit" in text
    fitting = [s for s in e.suggestions if s.endswith("(fits)")]
    assert len(fitting) >= 3


def test_combined_changes_when_no_single_one_fits():
    # a 24 GiB GPU: no single change fits a 34B QLoRA at 4k, a combination does
    w = Workload(model="qwen2.5-32b", task="train", method="qlora", seq_len=4096, batch_size=2, lora_rank=64)
    e = estimate(w, "rtx-4090")
    assert not e.fits
    combo = [s for s in e.suggestions if s.endswith("(fits)")]
    assert len(combo) == 1 and combo[0].count("--") >= 2, e.suggestions
    flags = combo[0].split(":")[0].split()
    # applying the suggested flags really fits
    from aipc.commands.workload_opts import build_workload

    opts = {"task": "train", "method": "qlora", "seq_len": 4096, "batch_size": 2, "lora_rank": 64}
    i = 0
    while i < len(flags):
        key = flags[i].lstrip("-").replace("-", "_")
        key = {"batch": "batch_size"}.get(key, key)
        if key == "grad_ckpt":
            opts[key] = True
            i += 1
            continue
        val = flags[i + 1]
        opts[key] = int(val) if val.isdigit() else val
        i += 2
    assert estimate(build_workload("qwen2.5-32b", opts), "rtx-4090").fits


def test_adapter_dtype_and_paged_states_in_the_breakdown():
    m = resolve_model("llama-3.1-8b")
    gpu = get_device("rtx-4090")
    base = Workload(model="llama-3.1-8b", task="train", method="qlora", lora_rank=16, seq_len=512)
    b32 = memory_breakdown(m, base, gpu)
    b16 = memory_breakdown(m, base.replace(adapter_dtype="bf16"), gpu)
    assert b16.phases["optimizer"] < b32.phases["optimizer"]
    fwd_paged = estimate(base.replace(optimizer="paged-adamw8bit"), gpu).memory
    assert "paged optimizer" in " ".join(fwd_paged.notes)
    # paged states leave the GPU's forward phase but come back for the step
    from aipc.estimate.memory import optimizer_state_bytes

    states8 = optimizer_state_bytes(m, base.replace(optimizer="paged-adamw8bit"))
    unpaged = memory_breakdown(m, base.replace(optimizer="adamw8bit"), gpu)
    paged = memory_breakdown(m, base.replace(optimizer="paged-adamw8bit"), gpu)
    # (the GPU's runtime term adds a 5% allocator margin on tensors)
    assert unpaged.phases["forward"] - paged.phases["forward"] == pytest.approx(states8 * 1.05, rel=1e-6)
    # on a CPU (one memory) paged states stay put
    from aipc.hardware.spec import DeviceSpec

    c = DeviceSpec(name="c", label="c", vendor="x", kind="cpu", category="this-machine", memory_bytes=1 << 40,
                   usable_memory_bytes=1 << 40, bandwidth_bytes_s=1e10, peak_flops={"fp32": 1e11})
    assert memory_breakdown(m, base.replace(optimizer="paged-adamw8bit"), c).phases["forward"] == \
        memory_breakdown(m, base.replace(optimizer="adamw8bit"), c).phases["forward"]


def test_cli_flags_and_bad_values():
    code, out, err = run_cli("estimate", "llama-65b", "--task", "train", "--method", "qlora", "--lora-rank", "64",
                             "--lora-targets", "all-linear", "--adapter-dtype", "bf16", "--optimizer",
                             "paged-adamw8bit", "--grad-ckpt", "--batch", "1", "--grad-accum", "16", "--seq-len",
                             "512", "--device", "l40s", "--json")
    assert code == 0, err
    e = json.loads(out)["estimates"][0]
    assert e["fits"] and e["workload"]["adapter_dtype"] == "bf16"
    code, out, err = run_cli("estimate", "llama-65b", "--task", "train", "--method", "qlora", "--adapter-dtype", "int3")
    assert code == 2 and err.startswith("error:") and "adapter dtype" in err and len(err.strip().splitlines()) == 1
