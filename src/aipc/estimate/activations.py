"""Saved activations of a training step, per architecture.

Bytes per token come from coefficients derived on the real transformers implementations
(``scripts/derive_activations.py``: saved-tensor hooks on tiny real models, least-squares over
shapes; table in ``data/activations.json``)::

    act/token = L*(c_h*h + c_q*a*d + c_kv*k*d + c_i*i_eff + c_a*a + c_s*a*s) + c_out*h + c_v*V

The ``c_v*V`` term (the fp32 log-softmax output the loss keeps) is reported with the logits, not here.
Rationale: Korthikanti et al. 2022's s*b*h*(34 + 5*a*s/h) is for GPT-3-style blocks at 16 bit;
gated MLPs, GQA, fp32 norms and fused attention change the constants, so they are derived per
architecture rather than reused (FIELD-NOTES).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from aipc.models.spec import ModelSpec

_TABLE = Path(__file__).with_name("data") / "activations.json"

# Families whose blocks match a derived one (same saved tensors per token).
_ALIASES = {
    "qwen2_moe": "qwen3_moe", "olmo2": "llama", "granite": "llama", "smollm3": "llama",
    "gemma": "gemma2", "gemma3": "gemma3_text", "deepseek_v2": "qwen3_moe", "deepseek_v3": "qwen3_moe",
    "phimoe": "mixtral", "starcoder2": "gpt2", "gpt_neox": "gpt2", "falcon": "gpt2", "bert": "gpt2",
    "cohere": "llama", "internlm2": "llama", "exaone": "llama", "olmo": "llama", "stablelm": "llama",
}


@lru_cache(maxsize=1)
def table() -> dict:
    return json.loads(_TABLE.read_text())


def coefficients(model: ModelSpec, compute_dtype: str, attention: str) -> tuple[dict[str, float], str]:
    """The coefficient set for this model and kernel, and a note on where it came from."""
    t = table()
    fam = model.model_type if model.model_type in t else _ALIASES.get(model.model_type)
    note = ""
    if fam not in t:
        fam = "llama" if model.ffn_gated else "gpt2"
        note = f"no derived activation table for {model.model_type}; used {fam}'s"
    dt = "fp32" if compute_dtype == "fp32" else "bf16"
    attn = "eager" if attention == "eager" else "sdpa"
    return t[fam][f"{dt}/{attn}"]["coef"], note


def ffn_width_per_token(model: ModelSpec) -> float:
    """FFN width a token passes through: dense i, or experts_per_token * moe_i (+ shared experts)."""
    if model.is_moe:
        moe_i = model.moe_intermediate_size or model.intermediate_size
        return model.experts_per_token * moe_i + model.shared_experts * moe_i
    return model.intermediate_size


def per_layer_bytes_per_token(model: ModelSpec, compute_dtype: str, attention: str, seq_len: int) -> float:
    """Saved bytes per token of one block: c_h*h + c_q*a*d + c_kv*k*d + c_i*i_eff + c_a*a + c_s*a*s."""
    c, _ = coefficients(model, compute_dtype, attention)
    h, a, k, d = model.hidden_size, model.num_heads, model.num_kv_heads, model.head_dim
    v = (c["L*h"] * h + c["L*q"] * a * d + c["L*kv"] * k * d + c["L*i"] * ffn_width_per_token(model)
         + c["L*a"] * a + c["L*a*s"] * a * seq_len)
    return max(v, 0.0)


def outside_bytes_per_token(model: ModelSpec, compute_dtype: str, attention: str) -> float:
    """Saved bytes per token outside the blocks (final norm, lm_head input): c_out*h."""
    c, _ = coefficients(model, compute_dtype, attention)
    return max(c["h"] * model.hidden_size, 0.0)


def loss_saved_bytes_per_token(model: ModelSpec, compute_dtype: str, attention: str) -> float:
    """Bytes per token the loss keeps for backward (fp32 log-softmax output): c_v*V (~4V)."""
    c, _ = coefficients(model, compute_dtype, attention)
    return max(c["V"] * model.vocab_size, 0.0)
