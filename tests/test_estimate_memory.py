"""Estimator memory: exact hand-computed components, phases, GQA/sliding/MLA KV caches, methods."""

import pytest

from aipc.errors import AipcError
from aipc.estimate import estimate, resolve_model
from aipc.estimate.memory import kv_cache_bytes, memory_breakdown, optimizer_state_bytes, weights_bytes
from aipc.hardware.spec import DeviceSpec
from aipc.spec import Workload, workload_from_dict

GPU = DeviceSpec(name="test-gpu", label="Test GPU 24 GB", vendor="nvidia", kind="gpu", category="workstation",
                 memory_bytes=24 * 2**30, usable_memory_bytes=24 * 2**30, bandwidth_bytes_s=1e12,
                 peak_flops={"fp32": 80e12, "bf16": 160e12})
CPU = DeviceSpec(name="test-cpu", label="Test CPU", vendor="x", kind="cpu", category="this-machine",
                 memory_bytes=64 * 2**30, usable_memory_bytes=64 * 2**30, bandwidth_bytes_s=50e9,
                 peak_flops={"fp32": 1e12})


def W(**kw):
    return workload_from_dict({"model": "llama-3.1-8b", **kw})


def test_components_sum_to_peak_and_peak_is_max_phase():
    for w in (W(task="infer", prompt_tokens=4000, gen_tokens=96), W(task="train", method="lora"),
              W(task="train", precision="fp32", model="qwen2.5-0.5b", batch_size=4, seq_len=1024)):
        mem = memory_breakdown(resolve_model(w.model), w, GPU)
        assert sum(mem.components.values()) == mem.peak_bytes
        assert mem.peak_bytes == max(mem.phases.values())
        assert mem.phases[mem.peak_phase] == mem.peak_bytes


def test_kv_cache_gqa_exact():
    # Llama-3.1-8B: 32 layers, 8 KV heads of 128 dims: 2 * 32 * 8 * 128 * 2 B = 131072 B per token (bf16)
    m = resolve_model("llama-3.1-8b")
    w = W(task="infer", prompt_tokens=8192 - 256, gen_tokens=256)
    assert kv_cache_bytes(m, w, 8192) == 2 * 32 * 8 * 128 * 2 * 8192
    # MHA would be 4x larger (32 heads): the GQA ratio must show
    assert m.num_kv_heads * 4 == m.num_heads


def test_kv_cache_sliding_window_layers_hold_at_most_the_window():
    m = resolve_model("gemma-2-9b")  # half the layers use a 4096-token window
    assert m.sliding_window and m.sliding_layers
    w = W(model="gemma-2-9b", task="infer", prompt_tokens=8000, gen_tokens=192)
    full_per_token = m.kv_bytes_per_token(2)
    expected = full_per_token * ((m.num_layers - m.sliding_layers) * 8192 + m.sliding_layers * m.sliding_window) / m.num_layers
    assert kv_cache_bytes(m, w, 8192) == pytest.approx(expected)
    assert kv_cache_bytes(m, w, 8192) < full_per_token * 8192  # naive formula overcounts


def test_kv_cache_mla_is_latent_sized():
    m = resolve_model("deepseek-v2-lite")
    per_tok = m.kv_bytes_per_token(2)
    assert per_tok == m.num_layers * (m.kv_lora_rank + m.qk_rope_head_dim) * 2


def test_full_finetune_bytes_per_param():
    m = resolve_model("llama-3.1-8b")
    p = m.param_count()
    mixed = W(task="train", precision="mixed-bf16")
    comps = memory_breakdown(m, mixed, GPU).phases  # noqa: F841
    # mixed precision AdamW: 2 (bf16 w) + 2 (grads) + 4 (master) + 8 (fp32 m, v) = 16 B/param
    mem = memory_breakdown(m, mixed, GPU)
    opt = memory_breakdown(m, mixed, GPU)
    assert weights_bytes(m, mixed) == 2 * p
    assert optimizer_state_bytes(m, mixed) == 8 * p
    assert opt.phases["optimizer"] >= 16 * p
    # pure fp32 AdamW: 4 + 4 + 8 = 16 B/param; pure bf16 (torch keeps states in param dtype): 2 + 2 + 4
    assert optimizer_state_bytes(m, W(task="train", precision="fp32")) == 8 * p
    assert optimizer_state_bytes(m, W(task="train", precision="bf16")) == 4 * p
    assert mem.peak_bytes > 16 * p


def test_lora_cuts_optimizer_not_activations():
    m = resolve_model("llama-3.1-8b")
    full = memory_breakdown(m, W(task="train", precision="bf16", seq_len=1024), GPU)
    lora = memory_breakdown(m, W(task="train", method="lora", precision="bf16", seq_len=1024), GPU)
    fwd_f = memory_breakdown(m, W(task="train", precision="bf16", seq_len=1024), GPU)
    assert lora.peak_bytes < full.peak_bytes / 2
    # activations of the peak phase are the same order: LoRA does not cut them (peft PR 2468)
    a_full = fwd_f.components.get("activations") or 0
    a_lora = lora.components["activations"]
    assert a_lora == pytest.approx(a_full, rel=0.01) or a_full == 0


def test_qlora_weights_about_half_a_byte_per_param():
    m = resolve_model("llama-3.1-70b")
    w = W(model="llama-3.1-70b", task="train", method="qlora")
    wb = weights_bytes(m, w)
    assert 0.5 * m.param_count() < wb < 0.7 * m.param_count()


def test_checkpointing_reduces_activations():
    from aipc.estimate.memory import activation_bytes

    m = resolve_model("qwen2.5-0.5b")
    a = activation_bytes(m, W(model="qwen2.5-0.5b", task="train", seq_len=2048))
    b = activation_bytes(m, W(model="qwen2.5-0.5b", task="train", seq_len=2048, grad_ckpt=True))
    # 24 layers: checkpointing keeps each block's input (2*h bytes/token at bf16) plus one block's activations
    assert b < a / 5


def test_large_vocab_logits_are_the_peak_component_for_small_models():
    est = estimate(W(model="qwen2.5-0.5b", task="train", precision="bf16", batch_size=8, seq_len=2048), GPU)
    comps = est.memory.components
    assert comps["logits_loss"] > comps["weights"]


def test_sharding_divides_states():
    m = resolve_model("llama-3.1-8b")
    one = memory_breakdown(m, W(task="train", precision="mixed-bf16"), GPU)
    z3 = memory_breakdown(m, W(task="train", precision="mixed-bf16", num_devices=8, sharding="zero3"), GPU)
    assert z3.components["optimizer_states"] * 8 == pytest.approx(one.components["optimizer_states"], rel=1e-6) \
        or z3.components.get("optimizer_states", 0) < one.components.get("optimizer_states", 1)
    assert z3.peak_bytes < one.peak_bytes / 3


def test_absurd_size_does_not_overflow_and_fits_nowhere(tmp_path):
    import json

    cfg = {"model_type": "llama", "hidden_size": 1_000_000, "intermediate_size": 4_000_000, "num_hidden_layers": 1000,
           "num_attention_heads": 1000, "num_key_value_heads": 1000, "vocab_size": 32000, "max_position_embeddings": 4096}
    p = tmp_path / "config.json"
    p.write_text(json.dumps(cfg))
    w = workload_from_dict({"model": str(p), "task": "infer"})
    m = resolve_model(str(p))
    assert m.param_count() > 1e15
    est = estimate(w, GPU, model=m)
    assert not est.fits and est.devices_needed is None
    assert est.memory.peak_bytes > 1e15


@pytest.mark.parametrize("bad, msg", [
    ({"batch_size": 0}, "batch_size"), ({"seq_len": -5}, "seq_len"), ({"method": "dora", "task": "train"}, "method"),
    ({"precision": "fp12"}, "precision"), ({"task": "serve"}, "task"), ({"optimizer": "lion"}, "optimizer"),
])
def test_bad_workload_fields(bad, msg):
    with pytest.raises(AipcError, match=msg):
        W(**bad)


def test_lora_target_missing_and_rank_too_large():
    with pytest.raises(AipcError, match="not in"):
        estimate(W(task="train", method="lora", lora_targets=["c_attn"]), GPU)
    with pytest.raises(AipcError, match="rank"):
        estimate(W(task="train", method="lora", lora_rank=5000), GPU)


def test_tensor_parallel_over_more_devices_than_heads():
    with pytest.raises(AipcError, match="heads"):
        estimate(W(task="infer", num_devices=64, sharding="tp"), GPU)


def test_context_beyond_max_warns():
    est = estimate(W(model="gpt2", task="infer", prompt_tokens=4000, gen_tokens=100), GPU)
    assert any("exceeds" in w for w in est.warnings)


def test_suggestions_when_it_does_not_fit():
    est = estimate(W(task="train", precision="mixed-bf16"), GPU)
    assert not est.fits and est.headroom_bytes < 0
    assert any("qlora" in s and "(fits)" in s for s in est.suggestions)
    assert est.devices_needed and est.devices_needed > 1


@pytest.mark.parametrize("model,attention,precision,grows", [
    ("gemma-2-9b", "sdpa", "bf16", True),        # transformers runs Gemma-2 attention eagerly whatever is asked
    ("llama-3.1-8b", "eager", "bf16", True), ("llama-3.1-8b", "eager", "fp16", True),
    ("llama-3.1-8b", "sdpa", "bf16", False), ("llama-3.1-8b", "eager", "fp32", False)])
def test_eager_16_bit_generation_on_a_cpu_grows_with_each_new_token(model, attention, precision, grows):
    from aipc.estimate.memory import CPU_EAGER_DECODE_GROWTH, CPU_EAGER_DECODE_GROWTH_CAP

    w = W(model=model, task="infer", prompt_tokens=64, gen_tokens=500, attention=attention, precision=precision)
    mem = memory_breakdown(resolve_model(model), w, CPU)
    assert mem.phases["decode"] >= mem.phases["prefill"] or not grows
    got = mem.components.get("eager_kernels", 0) if mem.peak_phase == "decode" else None
    if grows:
        assert got == pytest.approx(min(500 * CPU_EAGER_DECODE_GROWTH, CPU_EAGER_DECODE_GROWTH_CAP))
        long = memory_breakdown(resolve_model(model), W(**{**w.__dict__, "gen_tokens": 4000}), CPU)
        assert long.components.get("eager_kernels") == pytest.approx(CPU_EAGER_DECODE_GROWTH_CAP)  # levels off
        assert any("kernel for every new sequence length" in n for n in mem.notes)
    else:
        assert not got and not any("new sequence length" in n for n in mem.notes)
    assert "eager_kernels" not in memory_breakdown(resolve_model(model), w, GPU).components  # a CPU runtime effect
