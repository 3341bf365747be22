"""Small real GGUF files for tests: written with the gguf library's own writer (random weights) and
quantized with llama.cpp's own quantizer (llama_cpp.llama_model_quantize) — no hand-written encoder."""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

# llama.cpp's llama_ftype values (llama.h) for the file types the tests quantize to
FTYPES = {"f16": 1, "q4_0": 2, "q8_0": 7, "q2_k": 10, "q3_k_m": 12, "q4_k_s": 14, "q4_k_m": 15, "q5_k_m": 17,
          "q6_k": 18}


def write_llama(path: Path, *, layers: int = 8, hidden: int = 256, ffn: int = 512, vocab: int = 512, heads: int = 4,
                kv_heads: int = 2, tied: bool = False, context: int = 256, arch: str = "llama", qkv_bias: bool = False,
                experts: int = 0, dtype=np.float32, seed: int = 0) -> Path:
    """A llama-architecture GGUF with random weights, tensors named and shaped as llama.cpp names them."""
    import gguf

    w = gguf.GGUFWriter(str(path), arch)
    w.add_name("tiny test model")
    w.add_block_count(layers)
    w.add_context_length(context)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(ffn)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(500000.0)
    w.add_vocab_size(vocab)
    w.add_file_type(gguf.LlamaFileType.ALL_F32 if dtype == np.float32 else gguf.LlamaFileType.MOSTLY_F16)
    if experts:
        w.add_expert_count(experts)
        w.add_expert_used_count(2)
    hd = hidden // heads
    rng = np.random.default_rng(seed)

    def t(name: str, *shape: int, keep32: bool = False) -> None:  # numpy shape = ggml shape reversed
        a = (rng.standard_normal(shape) * 0.02).astype(np.float32 if keep32 or len(shape) == 1 else dtype)
        w.add_tensor(name, a)

    t("token_embd.weight", vocab, hidden)
    t("output_norm.weight", hidden)
    if not tied:
        t("output.weight", vocab, hidden)
    for i in range(layers):
        b = f"blk.{i}."
        t(b + "attn_norm.weight", hidden)
        t(b + "attn_q.weight", heads * hd, hidden)
        t(b + "attn_k.weight", kv_heads * hd, hidden)
        t(b + "attn_v.weight", kv_heads * hd, hidden)
        if qkv_bias:
            for n, c in (("attn_q", heads * hd), ("attn_k", kv_heads * hd), ("attn_v", kv_heads * hd)):
                t(b + n + ".bias", c)
        t(b + "attn_output.weight", hidden, heads * hd)
        t(b + "ffn_norm.weight", hidden)
        if experts:
            t(b + "ffn_gate_inp.weight", experts, hidden, keep32=True)
            t(b + "ffn_gate_exps.weight", experts, ffn, hidden)
            t(b + "ffn_up_exps.weight", experts, ffn, hidden)
            t(b + "ffn_down_exps.weight", experts, hidden, ffn)
        else:
            t(b + "ffn_gate.weight", ffn, hidden)
            t(b + "ffn_up.weight", ffn, hidden)
            t(b + "ffn_down.weight", hidden, ffn)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def quantize(src: Path, dst: Path, ftype: str) -> Path:
    """llama.cpp's own quantizer (the llama-quantize tool's API), one thread."""
    import llama_cpp

    p = llama_cpp.llama_model_quantize_default_params()
    p.ftype = FTYPES[ftype]
    p.nthread = 1
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(p))
    assert rc == 0, f"llama_model_quantize failed ({rc})"
    return dst
