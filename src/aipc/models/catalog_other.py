"""Catalog data: Gemma 2, Gemma 3 (text), Phi-3/4, GPT-2, BERT, DeepSeek MoE (MLA).

One plain dict per model, the URL of its source config.json above it (see catalog_llama for the keys).
Gemma 3 4B/12B/27B are multimodal on the Hub: their entries are the ``text_config`` (model_type
gemma3_text) and the published count is the report's embedding + non-embedding (vision excluded).
"""

_G2 = "https://arxiv.org/abs/2408.00118 (Gemma 2 report, Table 2: embedding + non-embedding parameters)"
_G3 = "https://arxiv.org/abs/2503.19786 (Gemma 3 report, Table 1: embedding + non-embedding, vision excluded)"


def _gemma2(size, hidden, inter, layers, heads, kv, head_dim, scalar, published, as_of):
    hf_id = f"google/gemma-2-{size}"
    return dict(name=f"gemma-2-{size}", hf_id=hf_id, as_of=as_of, published=published, published_source=_G2,
                config=dict(model_type="gemma2", hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
                            num_attention_heads=heads, num_key_value_heads=kv, head_dim=head_dim,
                            query_pre_attn_scalar=scalar, vocab_size=256000, max_position_embeddings=8192,
                            sliding_window=4096, attn_logit_softcapping=50.0, final_logit_softcapping=30.0,
                            tie_word_embeddings=True, rope_theta=10000.0))


def _gemma3(size, hidden, inter, layers, heads, kv, head_dim, scalar, vocab, window, ctx, published, source):
    hf_id = f"google/gemma-3-{size}-pt"
    return dict(name=f"gemma-3-{size}", hf_id=hf_id, as_of="2025-03-12" if size != "270m" else "2025-08-14",
                published=published, published_source=source,
                config=dict(model_type="gemma3_text", hidden_size=hidden, intermediate_size=inter,
                            num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv,
                            head_dim=head_dim, query_pre_attn_scalar=scalar, vocab_size=vocab,
                            max_position_embeddings=ctx, sliding_window=window, sliding_window_pattern=6,
                            tie_word_embeddings=True, rope_theta=1000000.0))


def _gpt2(hf_id, hidden, layers, heads, published, as_of):
    return dict(name=hf_id, hf_id=f"openai-community/{hf_id}", as_of=as_of, published=published,
                published_source="https://github.com/openai/gpt-2 (README / DOWNLOAD_MODEL.md: 124M, 355M, 774M, 1558M)",
                config=dict(model_type="gpt2", n_embd=hidden, n_layer=layers, n_head=heads, n_inner=None,
                            n_positions=1024, vocab_size=50257, tie_word_embeddings=True))


MODELS = [
    # https://huggingface.co/google/gemma-2-2b/blob/main/config.json
    _gemma2("2b", 2304, 9216, 26, 8, 4, 256, 256, "2,614,636,800", "2024-07-31"),
    # https://huggingface.co/google/gemma-2-9b/blob/main/config.json
    _gemma2("9b", 3584, 14336, 42, 16, 8, 256, 256, "9,242,164,736", "2024-06-27"),
    # https://huggingface.co/google/gemma-2-27b/blob/main/config.json
    _gemma2("27b", 4608, 36864, 46, 32, 16, 128, 144, "27,227,718,144", "2024-06-27"),
    # https://huggingface.co/google/gemma-3-270m/blob/main/config.json
    dict(_gemma3("270m", 640, 2048, 18, 4, 1, 256, 256, 262144, 512, 32768, "270M",
                 "https://huggingface.co/google/gemma-3-270m (model card: 270M parameters)"),
         hf_id="google/gemma-3-270m"),
    # https://huggingface.co/google/gemma-3-1b-pt/blob/main/config.json
    _gemma3("1b", 1152, 6912, 26, 4, 1, 256, 256, 262144, 512, 32768, "1000M", _G3 + ": 302M + 698M"),
    # https://huggingface.co/google/gemma-3-4b-pt/blob/main/config.json (text_config)
    _gemma3("4b", 2560, 10240, 34, 8, 4, 256, 256, 262208, 1024, 131072, "3884M", _G3 + ": 675M + 3,209M"),
    # https://huggingface.co/google/gemma-3-12b-pt/blob/main/config.json (text_config)
    _gemma3("12b", 3840, 15360, 48, 16, 8, 256, 256, 262208, 1024, 131072, "11771M", _G3 + ": 1,012M + 10,759M"),
    # https://huggingface.co/google/gemma-3-27b-pt/blob/main/config.json (text_config)
    _gemma3("27b", 5376, 21504, 62, 32, 16, 128, 168, 262208, 1024, 131072, "27016M", _G3 + ": 1,416M + 25,600M"),
    # https://huggingface.co/microsoft/Phi-3-mini-4k-instruct/blob/main/config.json
    dict(name="phi-3-mini-4k", hf_id="microsoft/Phi-3-mini-4k-instruct", as_of="2024-04-23", published="3.8B",
         published_source="https://huggingface.co/microsoft/Phi-3-mini-4k-instruct (model card: 3.8B parameters)",
         config=dict(model_type="phi3", hidden_size=3072, intermediate_size=8192, num_hidden_layers=32,
                     num_attention_heads=32, num_key_value_heads=32, vocab_size=32064, max_position_embeddings=4096,
                     original_max_position_embeddings=4096, sliding_window=2047, pad_token_id=32000,
                     tie_word_embeddings=False, rope_theta=10000.0)),
    # https://huggingface.co/microsoft/Phi-4-mini-instruct/blob/main/config.json (longrope factors omitted)
    dict(name="phi-4-mini", hf_id="microsoft/Phi-4-mini-instruct", as_of="2025-02-26", published="3.8B",
         published_source="https://huggingface.co/microsoft/Phi-4-mini-instruct (model card: 3.8B parameters)",
         config=dict(model_type="phi3", hidden_size=3072, intermediate_size=8192, num_hidden_layers=32,
                     num_attention_heads=24, num_key_value_heads=8, vocab_size=200064, max_position_embeddings=131072,
                     original_max_position_embeddings=4096, partial_rotary_factor=0.75, sliding_window=None,
                     pad_token_id=199999, tie_word_embeddings=True, rope_theta=10000.0)),
    # https://huggingface.co/microsoft/phi-4/blob/main/config.json
    dict(name="phi-4", hf_id="microsoft/phi-4", as_of="2024-12-12", published="14.7B",
         published_source="https://huggingface.co/microsoft/phi-4 (Hub model size 14.7B params; the card rounds to 14B)",
         config=dict(model_type="phi3", hidden_size=5120, intermediate_size=17920, num_hidden_layers=40,
                     num_attention_heads=40, num_key_value_heads=10, vocab_size=100352, max_position_embeddings=16384,
                     original_max_position_embeddings=16384, sliding_window=None, pad_token_id=100349,
                     tie_word_embeddings=False, rope_theta=250000.0)),
    # https://huggingface.co/openai-community/gpt2/blob/main/config.json
    _gpt2("gpt2", 768, 12, 12, "124M", "2019-02-14"),
    # https://huggingface.co/openai-community/gpt2-medium/blob/main/config.json
    _gpt2("gpt2-medium", 1024, 24, 16, "355M", "2019-05-03"),
    # https://huggingface.co/openai-community/gpt2-large/blob/main/config.json
    _gpt2("gpt2-large", 1280, 36, 20, "774M", "2019-08-20"),
    # https://huggingface.co/openai-community/gpt2-xl/blob/main/config.json
    _gpt2("gpt2-xl", 1600, 48, 25, "1558M", "2019-11-05"),
    # https://huggingface.co/google-bert/bert-base-uncased/blob/main/config.json
    dict(name="bert-base-uncased", hf_id="google-bert/bert-base-uncased", as_of="2018-10-31", published="110M",
         published_source="https://huggingface.co/google-bert/bert-base-uncased (model card: 110M parameters)",
         config=dict(model_type="bert", hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                     num_attention_heads=12, vocab_size=30522, max_position_embeddings=512, type_vocab_size=2)),
    # https://huggingface.co/deepseek-ai/DeepSeek-V2-Lite/blob/main/config.json
    dict(name="deepseek-v2-lite", hf_id="deepseek-ai/DeepSeek-V2-Lite", as_of="2024-05-16", published="15.7B",
         published_active="2.4B",
         published_source="https://huggingface.co/deepseek-ai/DeepSeek-V2-Lite (model card: 15.7B total, 2.4B activated)",
         config=dict(model_type="deepseek_v2", hidden_size=2048, intermediate_size=10944, moe_intermediate_size=1408,
                     num_hidden_layers=27, num_attention_heads=16, num_key_value_heads=16, n_routed_experts=64,
                     n_shared_experts=2, num_experts_per_tok=6, first_k_dense_replace=1, moe_layer_freq=1,
                     n_group=1, topk_group=1, topk_method="greedy", kv_lora_rank=512, q_lora_rank=None,
                     qk_rope_head_dim=64, qk_nope_head_dim=128, v_head_dim=128, vocab_size=102400,
                     max_position_embeddings=163840, tie_word_embeddings=False, rope_theta=10000.0)),
    # https://huggingface.co/deepseek-ai/DeepSeek-V3/blob/main/config.json (fp8 quantization_config omitted)
    dict(name="deepseek-v3", hf_id="deepseek-ai/DeepSeek-V3", as_of="2024-12-26", published="671B",
         published_active="37B",
         published_source="https://huggingface.co/deepseek-ai/DeepSeek-V3 (model card: 671B total, 37B activated; "
                          "+14B multi-token-prediction module, which transformers does not build)",
         config=dict(model_type="deepseek_v3", hidden_size=7168, intermediate_size=18432, moe_intermediate_size=2048,
                     num_hidden_layers=61, num_attention_heads=128, num_key_value_heads=128, n_routed_experts=256,
                     n_shared_experts=1, num_experts_per_tok=8, first_k_dense_replace=3, n_group=8, topk_group=4,
                     kv_lora_rank=512, q_lora_rank=1536, qk_rope_head_dim=64, qk_nope_head_dim=128,
                     v_head_dim=128, vocab_size=129280, max_position_embeddings=163840,
                     tie_word_embeddings=False, rope_theta=10000.0)),
]
