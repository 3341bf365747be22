"""ModelSpec: the architecture facts that decide memory and compute.

Built from an HF ``config.json`` dict (catalog entry, file, or local folder). Import-light: no torch
or transformers at module level; ``build()`` imports them.

INTERFACE CONTRACT (the estimator relies on these names; keep them stable):
  fields below; ``param_count()``; ``param_breakdown()``; ``active_param_count()``;
  ``linear_modules()``; ``kv_bytes_per_token(bytes_per_value)``; ``build(dtype, device)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    name: str                       # catalog short name or folder/file name
    hf_id: str | None = None        # e.g. "meta-llama/Llama-3.1-8B"
    model_type: str                 # HF config model_type: llama, qwen2, gemma2, gpt2, bert, ...
    source: str | None = None       # URL of the config.json this came from
    published_params: int | None = None  # the parameter count its authors publish
    # transformer body
    num_layers: int
    hidden_size: int
    num_heads: int
    num_kv_heads: int               # == num_heads for MHA, 1 for MQA
    head_dim: int
    intermediate_size: int          # dense FFN width
    ffn_gated: bool                 # SwiGLU/GeGLU (3 matrices) vs plain MLP (2)
    vocab_size: int
    tie_embeddings: bool
    max_position: int
    position: str = "rope"          # rope | learned | alibi | none
    is_decoder: bool = True         # False for encoders (BERT): no generation, no KV cache
    # attention variants
    sliding_window: int | None = None
    sliding_layers: int = 0         # how many of num_layers use the sliding window
    # MLA (DeepSeek-V2/V3); None when the model uses ordinary K/V heads
    kv_lora_rank: int | None = None
    q_lora_rank: int | None = None
    qk_rope_head_dim: int | None = None
    qk_nope_head_dim: int | None = None
    v_head_dim: int | None = None
    # mixture of experts
    num_experts: int = 0            # routed experts per MoE layer (0 = dense)
    experts_per_token: int = 0
    moe_intermediate_size: int | None = None
    shared_experts: int = 0
    dense_layers: int = 0           # leading layers with a dense FFN in a MoE model (DeepSeek first_k_dense_replace)
    # norms and biases
    norm: str = "rms"               # rms | layer
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    # from a local folder: exact weights from the safetensors headers
    weight_bytes: int | None = None
    weight_dtypes: dict[str, int] = field(default_factory=dict)  # dtype -> element count
    config: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)  # the HF config

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0
