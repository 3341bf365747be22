"""ModelSpec: the architecture facts that decide memory and compute.

Built from an HF ``config.json`` dict (catalog entry, file, or local folder). Import-light: no torch
or transformers at module level; ``build()`` imports them.

INTERFACE CONTRACT (the estimator relies on these names; keep them stable):
  fields below; ``param_count()``; ``param_breakdown()``; ``active_param_count()``;
  ``linear_modules()``; ``kv_bytes_per_token(bytes_per_value)``; ``build(dtype, device)``.
  Added: ``expert_matrices()``, ``from_hf_config(...)``; fields ``qk_norm``, ``norms_per_layer``,
  ``shared_expert_intermediate_size``, ``shared_expert_gate``, ``token_types``, ``pooler``,
  ``published_active_params``, ``weight_format`` and ``weight_parts`` (GGUF files).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aipc.models import params as P
from aipc.models.hf_config import parse as _parse


# model types aipc's own torch inference runner (aipc.engines.fastlm.FastLM) runs; others run through the
# model's HF forward (aipc.engines.hfrunner), whose per-layer overheads differ: calibrated apart
FASTLM_TYPES = ("llama", "mistral", "qwen2", "qwen3")


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    name: str                       # catalog short name or folder/file name
    hf_id: str | None = None        # e.g. "meta-llama/Llama-3.1-8B"
    model_type: str                 # HF config model_type: llama, qwen2, gemma2, gpt2, bert, ...
    source: str | None = None       # URL of the config.json this came from
    published_params: int | None = None  # the parameter count its authors publish
    published_active_params: int | None = None  # MoE: the active count its authors publish
    # transformer body
    num_layers: int
    hidden_size: int
    num_heads: int
    num_kv_heads: int               # == num_heads for MHA, 1 for MQA
    head_dim: int                   # q·k width per head (MLA: qk_nope_head_dim + qk_rope_head_dim)
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
    qk_norm: bool = False           # per-head RMSNorm on q and k (Qwen3, Gemma 3)
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
    shared_expert_intermediate_size: int | None = None  # width of the always-on shared-expert MLP
    shared_expert_gate: bool = False  # Qwen2-MoE: sigmoid gate H->1 on the shared expert
    dense_layers: int = 0           # layers with a dense FFN in a MoE model (DeepSeek first_k_dense_replace, Qwen mlp_only_layers)
    # norms and biases
    norm: str = "rms"               # rms | layer
    norms_per_layer: int = 2        # Gemma 2/3: 4 (pre/post attention and FFN)
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    # encoders (BERT)
    token_types: int = 0            # token-type (segment) embeddings
    pooler: bool = False            # pooler dense layer H->H on the first token
    # from a local folder: exact weights from the safetensors headers
    weight_bytes: int | None = None
    weight_dtypes: dict[str, int] = field(default_factory=dict)  # safetensors dtype (BF16, F32, ...) -> element count
    # from a .gguf file (aipc.models.gguf): its file type ("q4_k_m", "f16") and exact tensor bytes by part
    # ("token_embd", "position_embd", "output", "blocks", "other")
    weight_format: str | None = None
    weight_parts: dict[str, int] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)  # the HF config

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def torch_runner(self) -> str:
        """Which torch runner serves this model's inference: 'fastlm' or 'hf' (FASTLM_TYPES)."""
        return "fastlm" if self.model_type in FASTLM_TYPES else "hf"

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def from_hf_config(cls, cfg: dict[str, Any], *, name: str, hf_id: str | None = None, source: str | None = None,
                       published_params: int | None = None, **extra: Any) -> ModelSpec:
        """A spec from an HF config dict; malformed input raises AipcError naming ``source`` and the field.

        Multimodal wrappers (``gemma3``) are described by their ``text_config`` (vision tower not counted).
        ``extra`` sets further fields (``published_active_params``, ``weight_bytes``, ``weight_dtypes``).
        """
        fields, used = _parse(cfg, source or "config.json")
        return cls(name=name, hf_id=hf_id, source=source, published_params=published_params, config=dict(used),
                   **fields, **extra)

    # ---- parameter counts (formulas in aipc.models.params) --------------------------------------
    def param_breakdown(self) -> dict[str, int]:
        """Parameters by part: embedding, position, attention, mlp, experts, router, norms, lm_head,
        other, total. Tied output embeddings count once (in ``embedding``); see aipc.models.params."""
        return P.breakdown(self)

    def param_count(self) -> int:
        """All parameters, tied weights once: the count of the transformers model built from this spec."""
        return self.param_breakdown()["total"]

    def active_param_count(self) -> int:
        """Parameters one token touches: total − L_moe·(E − k)·3·H·Im (all of them for dense models).

        Embedding and lm_head are included (as Mixtral and Qwen count "active"; DeepSeek leaves the
        input embedding out of its published figure).
        """
        return self.param_count() - P.inactive_expert_params(self)

    def linear_modules(self) -> dict[str, tuple[int, int, int]]:
        """LoRA-targetable matrices (nn.Linear, GPT-2 Conv1D), lm_head excluded, as
        ``{key: (in_features, out_features, count in the whole model)}``.

        ``key`` is the HF module short name (``q_proj``, ``c_attn``, ``query``, ``dense``) when that name
        has a single shape in the model; otherwise the module path below the layer
        (``attention.output.dense``, ``intermediate.dense``, ``attn.c_proj``, ``mlp.shared_experts.gate_proj``).
        The peft ``target_modules`` name of an entry is always ``key.rsplit('.', 1)[-1]``.
        Routed experts are fused 3-D tensors in transformers 5, not modules: see ``expert_matrices``.
        """
        return P.module_key_map([(m.path, m.in_features, m.out_features, m.count) for m in P.layer_linears(self)])

    def expert_matrices(self) -> dict[str, tuple[int, int, int]]:
        """Routed-expert weights as transformers 5 fuses them (peft ``target_parameters``):
        ``{"experts.gate_up_proj": (H, 2·Im, L_moe·E), "experts.down_proj": (Im, H, L_moe·E)}``; {} if dense."""
        if not self.is_moe:
            return {}
        n, H, Im = P.moe_layers(self) * self.num_experts, self.hidden_size, self.moe_intermediate_size or 0
        return {"experts.gate_up_proj": (H, 2 * Im, n), "experts.down_proj": (Im, H, n)}

    # ---- KV cache -------------------------------------------------------------------------------
    def kv_bytes_per_token(self, bytes_per_value: float, *, latent: bool = True) -> float:
        """KV-cache bytes one sequence token adds, summed over all ``num_layers`` layers, as if every
        layer kept the whole sequence (the estimator caps the ``sliding_layers`` at ``sliding_window``
        tokens itself). Per layer it is the same, so per-layer = result / num_layers.

        standard / GQA / MQA: L · 2 · nkv · hd · bytes (K and V).
        MLA (DeepSeek), ``latent=True``: L · (kv_lora_rank + qk_rope_head_dim) · bytes — the compressed
        latent plus the shared RoPE key, what transformers 5 and MLA-aware engines cache (checked
        against the HF cache in the tests). ``latent=False``: engines that cache decompressed K and V:
        L · nh · (qk_nope + qk_rope + v_head_dim) · bytes.
        Encoders (BERT) keep no cache: 0.
        """
        if not self.is_decoder:
            return 0.0
        if self.kv_lora_rank:
            if latent:
                per_layer = self.kv_lora_rank + (self.qk_rope_head_dim or 0)
            else:
                per_layer = self.num_heads * (self.head_dim + (self.v_head_dim or 0))
        else:
            per_layer = 2 * self.num_kv_heads * self.head_dim
        return float(self.num_layers * per_layer * bytes_per_value)

    # ---- the real architecture ------------------------------------------------------------------
    def hf_config_kwargs(self) -> dict[str, Any]:
        """The config fields handed to ``AutoConfig.for_model(model_type, **kwargs)``."""
        drop = {"model_type", "architectures", "auto_map", "quantization_config", "torch_dtype", "dtype",
                "transformers_version", "_name_or_path", "text_config", "vision_config"}
        return {k: v for k, v in self.config.items() if k not in drop}

    def build(self, dtype: Any = "fp32", device: Any = "meta"):
        """The transformers model of this architecture with random weights.

        ``device="meta"`` (default) allocates nothing — for counting parameters and shapes; any other
        device materializes real tensors for measuring. ``dtype``: fp32 | fp16 | bf16 or a torch dtype.
        Decoders are built with AutoModelForCausalLM, encoders (BERT) with AutoModel.
        """
        import torch
        from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

        from aipc.models.dtypes import torch_dtype

        config = AutoConfig.for_model(self.model_type, **self.hf_config_kwargs())
        cls = AutoModelForCausalLM if self.is_decoder else AutoModel
        with torch.device(device):  # on meta, transformers skips weight init: building is cheap
            return cls.from_config(config, dtype=torch_dtype(dtype))

