"""The validation set: workloads that span inference and training, full and LoRA, checkpointing on
and off, GQA and MHA, small and 150k-262k vocabularies, fp32 and bf16, from small to ~0.6B params.

``FULL`` uses catalog models (random weights, real architectures); ``SMALL`` uses small configs of the
same architectures written to a temporary folder, for CI (a couple of minutes on 2 cores); :func:`small`
fits it to the CPU at hand.
``UNSEEN``: runs of four architectures the estimator's constants were never fitted or checked on
(Mistral, Phi-3, Gemma-2, Qwen3-MoE; configs of their real families at shapes chosen for a 2-core
CPU), covering full, LoRA, checkpointing, bf16 and generation — the held-out check of the memory
model (docs/validation.md)."""

from __future__ import annotations

from typing import Any

T = "train"
I = "infer"


def _w(model: str, task: str, **kw: Any) -> dict[str, Any]:
    return {"model": model, "task": task, **kw}


FULL: list[dict[str, Any]] = [
    _w("gpt2", I, precision="fp32", batch_size=1, prompt_tokens=512, gen_tokens=64),
    _w("gpt2", T, precision="fp32", batch_size=4, seq_len=512),
    _w("gpt2", T, precision="fp32", batch_size=4, seq_len=512, grad_ckpt=True),
    _w("gpt2", T, precision="fp32", batch_size=4, seq_len=512, method="lora", lora_targets=["c_attn", "c_proj"]),
    _w("gpt2-medium", T, precision="bf16", batch_size=4, seq_len=512),
    _w("smollm2-135m", I, precision="bf16", batch_size=4, prompt_tokens=1024, gen_tokens=64),
    _w("smollm2-135m", T, precision="fp32", batch_size=4, seq_len=512),
    _w("smollm2-135m", T, precision="bf16", batch_size=4, seq_len=512),
    _w("smollm2-135m", T, precision="bf16", batch_size=4, seq_len=512, method="lora", grad_ckpt=True),
    _w("smollm2-135m", T, precision="fp32", batch_size=2, seq_len=512, attention="eager"),
    _w("smollm2-360m", T, precision="fp32", batch_size=2, seq_len=512, grad_ckpt=True),
    _w("smollm2-360m", I, precision="fp32", batch_size=8, prompt_tokens=512, gen_tokens=32),
    _w("qwen2.5-0.5b", I, precision="bf16", batch_size=1, prompt_tokens=512, gen_tokens=32),
    _w("qwen2.5-0.5b", I, precision="fp32", batch_size=4, prompt_tokens=1024, gen_tokens=32),
    _w("qwen2.5-0.5b", T, precision="bf16", batch_size=2, seq_len=512),
    _w("qwen2.5-0.5b", T, precision="bf16", batch_size=2, seq_len=512, method="lora"),
    _w("qwen2.5-0.5b", T, precision="fp32", batch_size=2, seq_len=512, method="lora", grad_ckpt=True),
    _w("qwen3-0.6b", T, precision="bf16", batch_size=1, seq_len=512, grad_ckpt=True),
    _w("qwen3-0.6b", I, precision="bf16", batch_size=2, prompt_tokens=512, gen_tokens=32),
    _w("gemma-3-270m", T, precision="fp32", batch_size=2, seq_len=512),
    _w("gemma-3-270m", I, precision="bf16", batch_size=4, prompt_tokens=1024, gen_tokens=32),
    _w("bert-base-uncased", I, precision="fp32", batch_size=8, prompt_tokens=512, gen_tokens=1),
]

# Small configs of real architectures: big enough that tensors dominate the process's own noise.
SMALL_MODELS: dict[str, dict[str, Any]] = {
    "small-llama-gqa": dict(model_type="llama", hidden_size=256, intermediate_size=688, num_hidden_layers=4,
                            num_attention_heads=8, num_key_value_heads=2, vocab_size=32000,
                            max_position_embeddings=2048, tie_word_embeddings=False),
    "small-qwen2-150k": dict(model_type="qwen2", hidden_size=256, intermediate_size=704, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, vocab_size=151936,
                             max_position_embeddings=2048, tie_word_embeddings=True),
    "small-gpt2-mha": dict(model_type="gpt2", n_embd=256, n_layer=4, n_head=8, vocab_size=50257, n_positions=1024),
}

SMALL: list[dict[str, Any]] = [
    _w("small-llama-gqa", T, precision="fp32", batch_size=4, seq_len=256),
    _w("small-llama-gqa", T, precision="bf16", batch_size=4, seq_len=256, grad_ckpt=True),
    _w("small-llama-gqa", T, precision="fp32", batch_size=4, seq_len=256, method="lora"),
    _w("small-llama-gqa", T, precision="bf16", batch_size=4, seq_len=256, method="lora"),
    _w("small-llama-gqa", I, precision="fp32", batch_size=4, prompt_tokens=256, gen_tokens=16),
    _w("small-qwen2-150k", T, precision="fp32", batch_size=2, seq_len=256),
    _w("small-qwen2-150k", I, precision="bf16", batch_size=2, prompt_tokens=256, gen_tokens=16),
    _w("small-gpt2-mha", T, precision="fp32", batch_size=4, seq_len=256),
    _w("small-gpt2-mha", T, precision="fp32", batch_size=4, seq_len=256, attention="eager"),
]


def small(bf16_native: bool) -> list[dict[str, Any]]:
    """SMALL for a CPU. Where bf16 is only emulated (x86 without AVX512_BF16 / AMX: many times slower
    than fp32, each bf16 training row then takes minutes), the bf16 training rows run in fp32 at the same
    shapes and a row that would then repeat another is left out; the bf16 inference row stays (seconds
    even emulated), so bf16 weights and KV cache are still checked on every CPU."""
    if bf16_native:
        return list(SMALL)
    out: list[dict[str, Any]] = []
    for w in SMALL:
        w = {**w, "precision": "fp32"} if w["task"] == T and w.get("precision") == "bf16" else w
        if w not in out:
            out.append(w)
    return out


# Architectures outside FULL and SMALL (and outside the machine where the constants were measured).
UNSEEN_MODELS: dict[str, dict[str, Any]] = {
    "unseen-mistral": dict(model_type="mistral", hidden_size=512, intermediate_size=1408, num_hidden_layers=6,
                           num_attention_heads=8, num_key_value_heads=2, vocab_size=32768,
                           max_position_embeddings=4096, sliding_window=None, tie_word_embeddings=False),
    "unseen-phi3": dict(model_type="phi3", hidden_size=768, intermediate_size=2048, num_hidden_layers=6,
                        num_attention_heads=12, num_key_value_heads=12, vocab_size=32064,
                        max_position_embeddings=4096, tie_word_embeddings=False),
    "unseen-gemma2": dict(model_type="gemma2", hidden_size=576, intermediate_size=1536, num_hidden_layers=6,
                          num_attention_heads=4, num_key_value_heads=2, head_dim=128, vocab_size=256000,
                          max_position_embeddings=8192, sliding_window=4096, tie_word_embeddings=True),
    "unseen-qwen3moe": dict(model_type="qwen3_moe", hidden_size=384, intermediate_size=1024, moe_intermediate_size=256,
                            num_experts=8, num_experts_per_tok=2, num_hidden_layers=4, num_attention_heads=6,
                            num_key_value_heads=2, head_dim=64, vocab_size=32000, max_position_embeddings=4096,
                            tie_word_embeddings=False, decoder_sparse_step=1, mlp_only_layers=[]),
}
_PHI3_LORA = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]
_ATTN = ["q_proj", "k_proj", "v_proj", "o_proj"]

UNSEEN: list[dict[str, Any]] = [
    _w("unseen-mistral", T, precision="fp32", batch_size=4, seq_len=256),
    _w("unseen-mistral", T, precision="bf16", batch_size=4, seq_len=512, method="lora", grad_ckpt=True),
    _w("unseen-mistral", I, precision="bf16", batch_size=1, prompt_tokens=256, gen_tokens=64),
    _w("unseen-phi3", T, precision="bf16", batch_size=2, seq_len=512),
    _w("unseen-phi3", T, precision="fp32", batch_size=4, seq_len=256, method="lora", lora_targets=_PHI3_LORA),
    _w("unseen-phi3", I, precision="fp32", batch_size=2, prompt_tokens=512, gen_tokens=32),
    _w("unseen-gemma2", T, precision="fp32", batch_size=2, seq_len=256, grad_ckpt=True),
    _w("unseen-gemma2", T, precision="bf16", batch_size=2, seq_len=256, method="lora"),
    _w("unseen-gemma2", I, precision="bf16", batch_size=1, prompt_tokens=128, gen_tokens=64),
    _w("unseen-qwen3moe", T, precision="fp32", batch_size=4, seq_len=256),
    _w("unseen-qwen3moe", T, precision="fp32", batch_size=2, seq_len=512, method="lora", lora_targets=_ATTN,
       grad_ckpt=True),
    _w("unseen-qwen3moe", I, precision="fp32", batch_size=1, prompt_tokens=256, gen_tokens=64),
]
SETS = ("small", "full", "unseen")
