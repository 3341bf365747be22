"""ModelSpec from HF configs: field mapping, defaults, errors, KV-cache bytes, module shapes, build()."""

from __future__ import annotations

import pytest

from aipc.errors import AipcError
from aipc.models import ModelSpec, catalog
from aipc.models.hf_config import DEFAULTS, SUPPORTED, count_tolerance, parse_count
from aipc.models.tiny import tiny_config

LLAMA = dict(model_type="llama", hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, vocab_size=384, max_position_embeddings=512)


def _err(cfg, source=None) -> str:
    with pytest.raises(AipcError) as ei:
        ModelSpec.from_hf_config(cfg, name="x", source=source)
    msg = str(ei.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize("value", ["big", 0, -3, 2.5, True, None])
def test_bad_field_names_file_and_field(value):
    msg = _err({**LLAMA, "hidden_size": value})
    assert msg.startswith("config.json: field 'hidden_size' must be a positive integer (got ")


def test_errors_name_the_file_given_as_source():
    assert _err({k: v for k, v in LLAMA.items() if k != "vocab_size"}, "/m/config.json") == (
        "/m/config.json: field 'vocab_size' is missing; fix the config or pass another model")
    assert "field 'model_type' is missing" in _err({k: v for k, v in LLAMA.items() if k != "model_type"})
    assert "model_type 'mamba' is not supported" in _err({**LLAMA, "model_type": "mamba"})
    assert "field 'num_key_value_heads' (3) must divide" in _err({**LLAMA, "num_key_value_heads": 3})
    assert "field 'tie_word_embeddings' must be true or false" in _err({**LLAMA, "tie_word_embeddings": "yes"})
    assert "field 'layer_types' must list one attention type per layer" in _err(
        {**tiny_config("gemma2"), "layer_types": ["sliding_attention"]})
    assert "field 'text_config' must be an object" in _err({"model_type": "gemma3"})
    assert "expected a JSON object" in _err(["not", "a", "dict"])


def test_config_values_map_to_fields():
    s = catalog.get("llama-3.1-8b")
    assert (s.num_layers, s.hidden_size, s.num_heads, s.num_kv_heads, s.head_dim) == (32, 4096, 32, 8, 128)
    assert (s.intermediate_size, s.vocab_size, s.max_position, s.tie_embeddings, s.ffn_gated) == (
        14336, 128256, 131072, False, True)
    q = catalog.get("qwen2.5-7b")
    assert q.qkv_bias and not q.o_bias
    g = catalog.get("gpt2")
    assert (g.position, g.norm, g.intermediate_size, g.ffn_gated, g.mlp_bias) == ("learned", "layer", 3072, False, True)
    d = catalog.get("deepseek-v2-lite")
    assert (d.kv_lora_rank, d.q_lora_rank, d.head_dim, d.dense_layers, d.shared_expert_intermediate_size) == (
        512, None, 192, 1, 2816)
    b = catalog.get("bert-base-uncased")
    assert not b.is_decoder and b.token_types == 2 and b.pooler


def test_sliding_layers_agree_with_transformers_layer_types():
    from transformers import AutoConfig

    for name, window in (("gemma-2-9b", 4096), ("gemma-3-27b", 1024), ("gemma-3-1b", 512)):
        s = catalog.get(name)
        types = AutoConfig.for_model(s.model_type, **s.hf_config_kwargs()).layer_types
        assert s.sliding_window == window and s.sliding_layers == types.count("sliding_attention"), name
    assert catalog.get("mistral-7b-v0.1").sliding_layers == 32 and catalog.get("phi-3-mini-4k").sliding_window == 2047
    for name in ("qwen2.5-7b", "mistral-7b-v0.3", "llama-3.1-8b"):
        assert catalog.get(name).sliding_window is None and catalog.get(name).sliding_layers == 0
    on = ModelSpec.from_hf_config({**tiny_config("qwen2", num_hidden_layers=4), "use_sliding_window": True,
                                   "sliding_window": 64, "max_window_layers": 1}, name="q")
    assert (on.sliding_window, on.sliding_layers) == (64, 3)


def test_gemma3_multimodal_config_uses_its_sparse_text_config_with_defaults():
    # the text_config of google/gemma-3-4b-pt lists only what differs from Gemma3TextConfig's defaults
    cfg = {"architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3",
           "text_config": {"hidden_size": 2560, "intermediate_size": 10240, "model_type": "gemma3_text",
                           "num_hidden_layers": 34, "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
                           "sliding_window": 1024},
           "vision_config": {"model_type": "siglip_vision_model"}}
    s = ModelSpec.from_hf_config(cfg, name="gemma-3-4b-file")
    ref = catalog.get("gemma-3-4b")
    assert s.model_type == "gemma3_text" and s.param_count() == ref.param_count()
    assert (s.sliding_layers, s.vocab_size, s.head_dim) == (ref.sliding_layers, 262208, 256)
    assert sum(p.numel() for p in s.build().parameters()) == s.param_count()  # the text model, on meta


def test_defaults_match_transformers_config_classes():
    from transformers import AutoConfig

    renamed = {("qwen3_moe", "num_experts"): "num_local_experts",
               ("gemma3_text", "sliding_window_pattern"): "_sliding_window_pattern"}
    for mt, defaults in DEFAULTS.items():
        for key, want in defaults.items():
            kwargs = {"use_sliding_window": True} if key == "sliding_window" and mt.startswith("qwen") else {}
            got = getattr(AutoConfig.for_model(mt, **kwargs), renamed.get((mt, key), key))
            assert got == want, (mt, key, got, want)
    assert set(DEFAULTS) == set(SUPPORTED)


def test_kv_bytes_per_token_formulas():
    assert catalog.get("llama-3.1-8b").kv_bytes_per_token(2) == 32 * 2 * 8 * 128 * 2  # 128 KiB, GQA 8 of 32
    d = catalog.get("deepseek-v2-lite")
    assert d.kv_bytes_per_token(2) == 27 * (512 + 64) * 2  # MLA latent + rope key
    assert d.kv_bytes_per_token(2, latent=False) == 27 * 16 * (192 + 128) * 2
    assert catalog.get("bert-base-uncased").kv_bytes_per_token(2) == 0


@pytest.mark.parametrize("mt", ["llama", "qwen3", "gemma2", "gpt2", "phi3", "deepseek_v2"])
def test_kv_bytes_per_token_matches_the_hf_cache(mt):
    import torch

    cfg = tiny_config(mt) if mt != "deepseek_v2" else dict(
        model_type="deepseek_v2", hidden_size=64, intermediate_size=128, moe_intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, vocab_size=384, n_routed_experts=4, n_shared_experts=1,
        num_experts_per_tok=2, kv_lora_rank=16, q_lora_rank=None, qk_rope_head_dim=8, qk_nope_head_dim=16,
        v_head_dim=16, first_k_dense_replace=1)
    spec = ModelSpec.from_hf_config(cfg, name=mt)
    torch.manual_seed(0)
    model = spec.build(dtype="fp32", device="cpu").eval()
    T = 7  # shorter than any sliding window
    with torch.no_grad():
        cache = model(torch.arange(T)[None] + 10, use_cache=True).past_key_values
    held = sum(layer.keys.numel() + layer.values.numel() for layer in cache.layers) * 4
    assert held == spec.kv_bytes_per_token(4) * T  # DeepSeek: transformers 5 caches the MLA latent


def test_linear_module_keys_disambiguate_shapes():
    b = catalog.get("bert-base-uncased").linear_modules()
    assert b["query"] == (768, 768, 12) and b["intermediate.dense"] == (768, 3072, 12)
    assert b["output.dense"] == (3072, 768, 12) and b["attention.output.dense"] == (768, 768, 12)
    assert b["pooler.dense"] == (768, 768, 1) and "dense" not in b
    g = catalog.get("gpt2").linear_modules()
    assert g == {"c_attn": (768, 2304, 12), "attn.c_proj": (768, 768, 12), "c_fc": (768, 3072, 12),
                 "mlp.c_proj": (3072, 768, 12)}
    ll = catalog.get("llama-3.1-8b").linear_modules()
    assert ll["k_proj"] == (4096, 1024, 32) and ll["down_proj"] == (14336, 4096, 32)
    mx = catalog.get("mixtral-8x7b")
    assert "gate_proj" not in mx.linear_modules()
    assert mx.expert_matrices() == {"experts.gate_up_proj": (4096, 28672, 256), "experts.down_proj": (14336, 4096, 256)}


def test_breakdown_parts_sum_and_tied_head():
    s = catalog.get("qwen2.5-0.5b")
    bd = s.param_breakdown()
    assert bd["lm_head"] == 0 and bd["embedding"] == 151936 * 896
    assert sum(v for k, v in bd.items() if k != "total") == bd["total"] == s.param_count()
    assert s.active_param_count() == s.param_count()  # dense


def test_build_materializes_real_weights_in_the_dtype():
    import torch

    spec = ModelSpec.from_hf_config(tiny_config("qwen3"), name="t")
    model = spec.build(dtype="bf16", device="cpu")
    ps = list(model.parameters())
    assert all(p.dtype == torch.bfloat16 and p.device.type == "cpu" for p in ps)
    assert sum(p.numel() for p in ps) == spec.param_count()
    assert float(ps[1].detach().float().abs().sum()) > 0  # random init, not empty
    with pytest.raises(AipcError, match="unknown dtype 'fp13'"):
        spec.build(dtype="fp13")


def test_parse_count_and_rounding():
    assert parse_count("1.23B") == 1_230_000_000 and parse_count("124M") == 124_000_000
    assert parse_count("2,614,636,800") == 2614636800
    assert count_tolerance("1.7B") == pytest.approx(0.05 / 1.7) and count_tolerance("2,614,636,800") == 0


def test_every_tiny_architecture_counts_exactly():
    from aipc.models.tiny import TINY_TYPES, build_tiny

    for mt in TINY_TYPES:
        spec = ModelSpec.from_hf_config(tiny_config(mt), name=f"tiny-{mt}")
        model = build_tiny(mt)
        assert spec.param_count() == sum(p.numel() for p in model.parameters()), mt
