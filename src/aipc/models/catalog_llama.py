"""Catalog data: Llama 3.x, TinyLlama, SmolLM2, Mistral, Mixtral.

One plain dict per model (litgpt style), the URL of its source config.json above it. ``config`` holds
the config.json fields that decide shapes (plus RoPE settings); ``published`` is the parameter count
as its authors state it, ``published_source`` where, ``as_of`` the model's release date.
"""

_LLAMA3_ROPE = dict(rope_theta=500000.0, rope_scaling=dict(rope_type="llama3", factor=32.0, low_freq_factor=1.0,
                                                          high_freq_factor=4.0, original_max_position_embeddings=8192))
_LLAMA31_ROPE = dict(rope_theta=500000.0, rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                                                           high_freq_factor=4.0, original_max_position_embeddings=8192))

MODELS = [
    # https://huggingface.co/meta-llama/Llama-3.2-1B/blob/main/config.json
    dict(name="llama-3.2-1b", hf_id="meta-llama/Llama-3.2-1B", as_of="2024-09-25", published="1.23B",
         published_source="https://huggingface.co/meta-llama/Llama-3.2-1B (model card, Params: 1.23B)",
         config=dict(model_type="llama", hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                     num_attention_heads=32, num_key_value_heads=8, head_dim=64, vocab_size=128256,
                     max_position_embeddings=131072, tie_word_embeddings=True, **_LLAMA3_ROPE)),
    # https://huggingface.co/meta-llama/Llama-3.2-3B/blob/main/config.json
    dict(name="llama-3.2-3b", hf_id="meta-llama/Llama-3.2-3B", as_of="2024-09-25", published="3.21B",
         published_source="https://huggingface.co/meta-llama/Llama-3.2-3B (model card, Params: 3.21B)",
         config=dict(model_type="llama", hidden_size=3072, intermediate_size=8192, num_hidden_layers=28,
                     num_attention_heads=24, num_key_value_heads=8, head_dim=128, vocab_size=128256,
                     max_position_embeddings=131072, tie_word_embeddings=True, **_LLAMA3_ROPE)),
    # https://huggingface.co/meta-llama/Llama-3.1-8B/blob/main/config.json
    dict(name="llama-3.1-8b", hf_id="meta-llama/Llama-3.1-8B", as_of="2024-07-23", published="8B",
         published_source="https://huggingface.co/meta-llama/Llama-3.1-8B (model card, Params: 8B)",
         config=dict(model_type="llama", hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                     num_attention_heads=32, num_key_value_heads=8, vocab_size=128256,
                     max_position_embeddings=131072, tie_word_embeddings=False, **_LLAMA31_ROPE)),
    # https://huggingface.co/meta-llama/Llama-3.1-70B/blob/main/config.json
    dict(name="llama-3.1-70b", hf_id="meta-llama/Llama-3.1-70B", as_of="2024-07-23", published="70B",
         published_source="https://huggingface.co/meta-llama/Llama-3.1-70B (model card, Params: 70B)",
         config=dict(model_type="llama", hidden_size=8192, intermediate_size=28672, num_hidden_layers=80,
                     num_attention_heads=64, num_key_value_heads=8, vocab_size=128256,
                     max_position_embeddings=131072, tie_word_embeddings=False, **_LLAMA31_ROPE)),
    # https://huggingface.co/meta-llama/Llama-3.3-70B-Instruct/blob/main/config.json
    dict(name="llama-3.3-70b", hf_id="meta-llama/Llama-3.3-70B-Instruct", as_of="2024-12-06", published="70B",
         published_source="https://huggingface.co/meta-llama/Llama-3.3-70B-Instruct (model card, Params: 70B)",
         config=dict(model_type="llama", hidden_size=8192, intermediate_size=28672, num_hidden_layers=80,
                     num_attention_heads=64, num_key_value_heads=8, vocab_size=128256,
                     max_position_embeddings=131072, tie_word_embeddings=False, **_LLAMA31_ROPE)),
    # https://huggingface.co/meta-llama/Llama-3.1-405B/blob/main/config.json
    dict(name="llama-3.1-405b", hf_id="meta-llama/Llama-3.1-405B", as_of="2024-07-23", published="405B",
         published_source="https://huggingface.co/meta-llama/Llama-3.1-405B (model card, Params: 405B)",
         config=dict(model_type="llama", hidden_size=16384, intermediate_size=53248, num_hidden_layers=126,
                     num_attention_heads=128, num_key_value_heads=8, vocab_size=128256,
                     max_position_embeddings=131072, tie_word_embeddings=False, **_LLAMA31_ROPE)),
    # LLaMA 65B (Touvron et al. 2023, arXiv 2302.13971, Table 2: dim 8192, 64 heads, 80 layers, 65.2B
    # params); intermediate_size 22016, vocab 32000, 2048 positions as transformers' LLaMA conversion
    # (convert_llama_weights_to_hf.py) writes them, e.g. https://huggingface.co/huggyllama/llama-65b/blob/main/config.json
    # The model of the QLoRA paper's 65B fine-tune (docs/estimate.md).
    dict(name="llama-65b", hf_id="huggyllama/llama-65b", as_of="2023-02-24", published="65.2B",
         published_source="https://arxiv.org/abs/2302.13971 (LLaMA paper, Table 2: 65.2B parameters)",
         config=dict(model_type="llama", hidden_size=8192, intermediate_size=22016, num_hidden_layers=80,
                     num_attention_heads=64, num_key_value_heads=64, vocab_size=32000,
                     max_position_embeddings=2048, tie_word_embeddings=False, rope_theta=10000.0)),
    # https://huggingface.co/TinyLlama/TinyLlama-1.1B-Chat-v1.0/blob/main/config.json
    dict(name="tinyllama-1.1b", hf_id="TinyLlama/TinyLlama-1.1B-Chat-v1.0", as_of="2023-12-30", published="1.1B",
         published_source="https://github.com/jzhang38/TinyLlama (README: 1.1B parameters)",
         config=dict(model_type="llama", hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                     num_attention_heads=32, num_key_value_heads=4, vocab_size=32000,
                     max_position_embeddings=2048, tie_word_embeddings=False, rope_theta=10000.0)),
    # https://huggingface.co/HuggingFaceTB/SmolLM2-135M/blob/main/config.json
    dict(name="smollm2-135m", hf_id="HuggingFaceTB/SmolLM2-135M", as_of="2024-11-01", published="135M",
         published_source="https://huggingface.co/HuggingFaceTB/SmolLM2-135M (model card: 135M parameters)",
         config=dict(model_type="llama", hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                     num_attention_heads=9, num_key_value_heads=3, vocab_size=49152,
                     max_position_embeddings=8192, tie_word_embeddings=True, rope_theta=100000.0)),
    # https://huggingface.co/HuggingFaceTB/SmolLM2-360M/blob/main/config.json
    dict(name="smollm2-360m", hf_id="HuggingFaceTB/SmolLM2-360M", as_of="2024-11-01", published="360M",
         published_source="https://huggingface.co/HuggingFaceTB/SmolLM2-360M (model card: 360M parameters)",
         config=dict(model_type="llama", hidden_size=960, intermediate_size=2560, num_hidden_layers=32,
                     num_attention_heads=15, num_key_value_heads=5, vocab_size=49152,
                     max_position_embeddings=8192, tie_word_embeddings=True, rope_theta=100000.0)),
    # https://huggingface.co/HuggingFaceTB/SmolLM2-1.7B/blob/main/config.json
    dict(name="smollm2-1.7b", hf_id="HuggingFaceTB/SmolLM2-1.7B", as_of="2024-11-01", published="1.7B",
         published_source="https://huggingface.co/HuggingFaceTB/SmolLM2-1.7B (model card: 1.7B parameters)",
         config=dict(model_type="llama", hidden_size=2048, intermediate_size=8192, num_hidden_layers=24,
                     num_attention_heads=32, num_key_value_heads=32, vocab_size=49152,
                     max_position_embeddings=8192, tie_word_embeddings=True, rope_theta=130000.0)),
    # https://huggingface.co/mistralai/Mistral-7B-v0.1/blob/main/config.json
    dict(name="mistral-7b-v0.1", hf_id="mistralai/Mistral-7B-v0.1", as_of="2023-09-27", published="7.3B",
         published_source="https://mistral.ai/news/announcing-mistral-7b (a 7.3B parameter model)",
         config=dict(model_type="mistral", hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                     num_attention_heads=32, num_key_value_heads=8, vocab_size=32000,
                     max_position_embeddings=32768, sliding_window=4096, tie_word_embeddings=False,
                     rope_theta=10000.0)),
    # https://huggingface.co/mistralai/Mistral-7B-v0.3/blob/main/config.json
    dict(name="mistral-7b-v0.3", hf_id="mistralai/Mistral-7B-v0.3", as_of="2024-05-22", published="7.3B",
         published_source="https://mistral.ai/news/announcing-mistral-7b (7.3B; v0.3 only extends the vocabulary to 32768)",
         config=dict(model_type="mistral", hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                     num_attention_heads=32, num_key_value_heads=8, vocab_size=32768,
                     max_position_embeddings=32768, sliding_window=None, tie_word_embeddings=False,
                     rope_theta=1000000.0)),
    # https://huggingface.co/mistralai/Mixtral-8x7B-v0.1/blob/main/config.json
    dict(name="mixtral-8x7b", hf_id="mistralai/Mixtral-8x7B-v0.1", as_of="2023-12-11", published="46.7B",
         published_active="12.9B",
         published_source="https://mistral.ai/news/mixtral-of-experts (46.7B total, 12.9B used per token)",
         config=dict(model_type="mixtral", hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                     num_attention_heads=32, num_key_value_heads=8, vocab_size=32000,
                     max_position_embeddings=32768, sliding_window=None, num_local_experts=8,
                     num_experts_per_tok=2, tie_word_embeddings=False, rope_theta=1000000.0)),
    # https://huggingface.co/mistralai/Mixtral-8x22B-v0.1/blob/main/config.json
    dict(name="mixtral-8x22b", hf_id="mistralai/Mixtral-8x22B-v0.1", as_of="2024-04-17", published="141B",
         published_active="39B",
         published_source="https://mistral.ai/news/mixtral-8x22b (39B active parameters out of 141B)",
         config=dict(model_type="mixtral", hidden_size=6144, intermediate_size=16384, num_hidden_layers=56,
                     num_attention_heads=48, num_key_value_heads=8, vocab_size=32768,
                     max_position_embeddings=65536, sliding_window=None, num_local_experts=8,
                     num_experts_per_tok=2, tie_word_embeddings=False, rope_theta=1000000.0)),
]
