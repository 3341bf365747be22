"""Tiny variants of real architectures (2 layers, hidden 64) for tests and quick trials.

Real transformers classes, random weights, a few hundred thousand parameters. ``make_tiny_folder``
writes a complete local HF model folder (config.json, safetensors weights, a byte-level tokenizer
with a chat template) without any network access.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Smallest sensible configs per HF model_type. Vocab 384 = 256 bytes + specials + headroom.
_BASE: dict[str, dict[str, Any]] = {
    "llama": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, vocab_size=384, max_position_embeddings=512, tie_word_embeddings=False),
    "qwen2": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, vocab_size=384, max_position_embeddings=512, tie_word_embeddings=True),
    "qwen3": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=16, vocab_size=384, max_position_embeddings=512,
                  tie_word_embeddings=True),
    "mistral": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=1, vocab_size=384, max_position_embeddings=512, sliding_window=None),
    "gemma2": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                   num_key_value_heads=2, head_dim=16, vocab_size=384, max_position_embeddings=512,
                   sliding_window=32),
    "phi3": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=4, vocab_size=384, max_position_embeddings=512,
                 original_max_position_embeddings=512, pad_token_id=0),
    "gpt2": dict(n_embd=64, n_layer=2, n_head=4, vocab_size=384, n_positions=512),
    "mixtral": dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2, vocab_size=384, max_position_embeddings=512,
                    num_local_experts=4, num_experts_per_tok=2),
    "qwen3_moe": dict(hidden_size=64, intermediate_size=128, moe_intermediate_size=32, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=16, vocab_size=384,
                      max_position_embeddings=512, num_experts=4, num_experts_per_tok=2,
                      decoder_sparse_step=1, mlp_only_layers=[], tie_word_embeddings=False),
    "bert": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 vocab_size=384, max_position_embeddings=512),
}

TINY_TYPES = tuple(_BASE)


def tiny_config(model_type: str = "llama", **overrides: Any) -> dict[str, Any]:
    """An HF config dict (with ``model_type``) for a tiny model of that architecture."""
    if model_type not in _BASE:
        raise ValueError(f"no tiny config for {model_type!r}; known: {', '.join(_BASE)}")
    cfg = {"model_type": model_type, **_BASE[model_type], **overrides}
    if model_type != "bert":
        cfg.setdefault("bos_token_id", 1)
        cfg.setdefault("eos_token_id", 2)
    return cfg


CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def byte_tokenizer(vocab_size: int = 384, pad: bool = False):
    """A byte-level tokenizer (256 byte tokens + specials) as a transformers fast tokenizer; with ``pad``
    the vocabulary is filled with never-produced ``<unused_N>`` tokens up to ``vocab_size`` (converters
    that size the embedding by the tokenizer, as llama.cpp's Gemma-3 one does, then keep every row)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    byte_map = pre_tokenizers.ByteLevel.alphabet()  # the 256 printable stand-ins for bytes
    specials = ["<pad>", "<s>", "</s>", "<unk>", "<|end|>", "<|user|>", "<|assistant|>", "<|system|>"]
    vocab = {tok: i for i, tok in enumerate(specials)}
    for ch in sorted(byte_map):
        vocab[ch] = len(vocab)
    if len(vocab) > vocab_size:
        raise ValueError(f"byte tokenizer needs vocab_size >= {len(vocab)}")
    # One merge that never fires (byte 0xFF, shown as "ÿ", never occurs in UTF-8 text): tokenization is
    # unchanged, and llama.cpp, which refuses a BPE vocabulary without merges, can load a GGUF of it.
    merges = []
    if vocab_size > len(vocab):
        vocab["ÿÿ"] = len(vocab)
        merges = [("ÿ", "ÿ")]
    if pad:
        vocab.update({f"<unused_{i}>": i for i in range(len(vocab), vocab_size)})
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>",
        additional_special_tokens=specials[4:],
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny(model_type: str = "llama", seed: int = 0, **overrides: Any):
    """The tiny model itself (random weights from ``seed``, fp32, CPU), built as ModelSpec.build builds
    every architecture."""
    import torch

    from aipc.models.spec import ModelSpec

    spec = ModelSpec.from_hf_config(tiny_config(model_type, **overrides), name=f"tiny-{model_type}")
    torch.manual_seed(seed)
    return spec.build("fp32", "cpu")


def make_tiny_folder(path: str | Path, model_type: str = "llama", *, seed: int = 0,
                     tokenizer: bool = True, **overrides: Any) -> Path:
    """Write a complete local model folder: config.json, model.safetensors, tokenizer files."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model = build_tiny(model_type, seed=seed, **overrides)
    model.save_pretrained(path)
    if tokenizer:
        byte_tokenizer(model.config.vocab_size).save_pretrained(path)
    return path
