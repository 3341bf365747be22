"""Catalog data: Qwen2.5, Qwen3 (dense and MoE), Qwen1.5-MoE.

One plain dict per model, the URL of its source config.json above it (see catalog_llama for the keys).
Published counts are the model cards' "Number of Parameters".
"""


def _qwen25(size, hidden, inter, layers, heads, kv, tie, vocab, ctx, published):
    hf_id = f"Qwen/Qwen2.5-{size}"
    return dict(name=f"qwen2.5-{size.lower()}", hf_id=hf_id, as_of="2024-09-19", published=published,
                published_source=f"https://huggingface.co/{hf_id} (model card, Number of Parameters: {published})",
                config=dict(model_type="qwen2", hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
                            num_attention_heads=heads, num_key_value_heads=kv, vocab_size=vocab,
                            max_position_embeddings=ctx, tie_word_embeddings=tie, use_sliding_window=False,
                            rope_theta=1000000.0))


def _qwen3(size, hidden, inter, layers, heads, kv, tie, published):
    hf_id = f"Qwen/Qwen3-{size}"
    return dict(name=f"qwen3-{size.lower()}", hf_id=hf_id, as_of="2025-04-29", published=published,
                published_source=f"https://huggingface.co/{hf_id} (model card, Number of Parameters: {published})",
                config=dict(model_type="qwen3", hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
                            num_attention_heads=heads, num_key_value_heads=kv, head_dim=128, vocab_size=151936,
                            max_position_embeddings=40960, tie_word_embeddings=tie, use_sliding_window=False,
                            rope_theta=1000000.0))


MODELS = [
    # https://huggingface.co/Qwen/Qwen2.5-0.5B/blob/main/config.json
    _qwen25("0.5B", 896, 4864, 24, 14, 2, True, 151936, 32768, "0.49B"),
    # https://huggingface.co/Qwen/Qwen2.5-1.5B/blob/main/config.json
    _qwen25("1.5B", 1536, 8960, 28, 12, 2, True, 151936, 131072, "1.54B"),
    # https://huggingface.co/Qwen/Qwen2.5-3B/blob/main/config.json
    _qwen25("3B", 2048, 11008, 36, 16, 2, True, 151936, 32768, "3.09B"),
    # https://huggingface.co/Qwen/Qwen2.5-7B/blob/main/config.json
    _qwen25("7B", 3584, 18944, 28, 28, 4, False, 152064, 131072, "7.61B"),
    # https://huggingface.co/Qwen/Qwen2.5-14B/blob/main/config.json
    _qwen25("14B", 5120, 13824, 48, 40, 8, False, 152064, 131072, "14.7B"),
    # https://huggingface.co/Qwen/Qwen2.5-32B/blob/main/config.json
    _qwen25("32B", 5120, 27648, 64, 40, 8, False, 152064, 131072, "32.5B"),
    # https://huggingface.co/Qwen/Qwen2.5-72B/blob/main/config.json
    _qwen25("72B", 8192, 29568, 80, 64, 8, False, 152064, 131072, "72.7B"),
    # https://huggingface.co/Qwen/Qwen3-0.6B/blob/main/config.json
    _qwen3("0.6B", 1024, 3072, 28, 16, 8, True, "0.6B"),
    # https://huggingface.co/Qwen/Qwen3-1.7B/blob/main/config.json
    _qwen3("1.7B", 2048, 6144, 28, 16, 8, True, "1.7B"),
    # https://huggingface.co/Qwen/Qwen3-4B/blob/main/config.json
    _qwen3("4B", 2560, 9728, 36, 32, 8, True, "4.0B"),
    # https://huggingface.co/Qwen/Qwen3-8B/blob/main/config.json
    _qwen3("8B", 4096, 12288, 36, 32, 8, False, "8.2B"),
    # https://huggingface.co/Qwen/Qwen3-14B/blob/main/config.json
    _qwen3("14B", 5120, 17408, 40, 40, 8, False, "14.8B"),
    # https://huggingface.co/Qwen/Qwen3-32B/blob/main/config.json
    _qwen3("32B", 5120, 25600, 64, 64, 8, False, "32.8B"),
    # https://huggingface.co/Qwen/Qwen3-30B-A3B/blob/main/config.json
    dict(name="qwen3-30b-a3b", hf_id="Qwen/Qwen3-30B-A3B", as_of="2025-04-29", published="30.5B",
         published_active="3.3B",
         published_source="https://huggingface.co/Qwen/Qwen3-30B-A3B (model card: 30.5B in total, 3.3B activated)",
         config=dict(model_type="qwen3_moe", hidden_size=2048, intermediate_size=6144, moe_intermediate_size=768,
                     num_hidden_layers=48, num_attention_heads=32, num_key_value_heads=4, head_dim=128,
                     num_experts=128, num_experts_per_tok=8, decoder_sparse_step=1, mlp_only_layers=[],
                     norm_topk_prob=True, vocab_size=151936, max_position_embeddings=40960,
                     tie_word_embeddings=False, use_sliding_window=False, rope_theta=1000000.0)),
    # https://huggingface.co/Qwen/Qwen3-235B-A22B/blob/main/config.json
    dict(name="qwen3-235b-a22b", hf_id="Qwen/Qwen3-235B-A22B", as_of="2025-04-29", published="235B",
         published_active="22B",
         published_source="https://huggingface.co/Qwen/Qwen3-235B-A22B (model card: 235B in total, 22B activated)",
         config=dict(model_type="qwen3_moe", hidden_size=4096, intermediate_size=12288, moe_intermediate_size=1536,
                     num_hidden_layers=94, num_attention_heads=64, num_key_value_heads=4, head_dim=128,
                     num_experts=128, num_experts_per_tok=8, decoder_sparse_step=1, mlp_only_layers=[],
                     norm_topk_prob=True, vocab_size=151936, max_position_embeddings=40960,
                     tie_word_embeddings=False, use_sliding_window=False, rope_theta=1000000.0)),
    # https://huggingface.co/Qwen/Qwen1.5-MoE-A2.7B/blob/main/config.json
    dict(name="qwen1.5-moe-a2.7b", hf_id="Qwen/Qwen1.5-MoE-A2.7B", as_of="2024-03-28", published="14.3B",
         published_active="2.7B",
         published_source="https://huggingface.co/Qwen/Qwen1.5-MoE-A2.7B (model card: 14.3B in total, 2.7B activated)",
         config=dict(model_type="qwen2_moe", hidden_size=2048, intermediate_size=5632, moe_intermediate_size=1408,
                     shared_expert_intermediate_size=5632, num_hidden_layers=24, num_attention_heads=16,
                     num_key_value_heads=16, num_experts=60, num_experts_per_tok=4, decoder_sparse_step=1,
                     mlp_only_layers=[], vocab_size=151936, max_position_embeddings=8192,
                     tie_word_embeddings=False, use_sliding_window=False, rope_theta=1000000.0)),
]
