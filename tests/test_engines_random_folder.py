"""Random weights for GGUF conversion are written module by module: memory stays bounded by one
shard, whatever the model's size, and the folder is a complete HF model with the usual init."""

from __future__ import annotations

import json
import subprocess
import sys

CHILD = r"""
import json, re, sys
from pathlib import Path
import torch, transformers  # the baseline includes the libraries
from aipc.engines import random_folder
from aipc.models.spec import ModelSpec

def status(key):
    return int(re.search(key + r":\s+(\d+)", open("/proc/self/status").read()).group(1)) * 1024

random_folder.SHARD_BYTES = 8 << 20
spec = ModelSpec.from_hf_config(json.loads(sys.argv[2]), name="mid-llama")
spec.build(dtype="fp32", device="meta")  # warm the model classes before the baseline
base = status("VmRSS")
open("/proc/self/clear_refs", "w").write("5")
random_folder.write_random_folder(spec, Path(sys.argv[1]), dtype="fp16", seed=3)
print(json.dumps({"peak_over_baseline": status("VmHWM") - base}))
"""

CFG = dict(model_type="llama", hidden_size=768, intermediate_size=2048, num_hidden_layers=4, num_attention_heads=8,
           num_key_value_heads=2, vocab_size=8192, max_position_embeddings=512, tie_word_embeddings=False)


def test_memory_bounded_by_a_shard_and_folder_complete(tmp_path):
    from safetensors import safe_open

    from aipc.models.load import read_safetensors_header
    from aipc.models.spec import ModelSpec

    folder = tmp_path / "mid"
    r = subprocess.run([sys.executable, "-c", CHILD, str(folder), json.dumps(CFG)], capture_output=True, text=True,
                       env={**__import__("os").environ, "MALLOC_MMAP_THRESHOLD_": "65536"}, timeout=300)
    assert r.returncode == 0, r.stderr
    peak = json.loads(r.stdout.strip().splitlines()[-1])["peak_over_baseline"]
    n = ModelSpec.from_hf_config(CFG, name="mid-llama").param_count()
    assert n > 35e6
    assert peak < 0.5 * n * 4, (peak, n)  # far below the fp32 model (and below its fp16 copy)
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    counts = [read_safetensors_header(folder / s) for s in shards]
    assert len(shards) > 5 and sum(c.get("F16", 0) for _, c in counts) == n
    assert index["metadata"]["total_size"] == sum(b for b, _ in counts) == 2 * n
    with safe_open(folder / index["weight_map"]["model.layers.1.mlp.up_proj.weight"], "pt") as f:
        w = f.get_tensor("model.layers.1.mlp.up_proj.weight").float()
    assert abs(float(w.std()) - 0.02) < 0.002 and abs(float(w.mean())) < 1e-3  # normal(0, initializer_range)
    with safe_open(folder / index["weight_map"]["model.norm.weight"], "pt") as f:
        assert float(f.get_tensor("model.norm.weight").float().min()) == 1.0  # norms start at one
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and (folder / "tokenizer.json").is_file()


def test_a_gpt2_folder_converts_to_gguf_with_its_context(tmp_path):
    """transformers 5 saves GPT-2's context as n_positions only; llama.cpp's GPT-2 converter reads n_ctx
    (the published configs carry both), so the folder carries both and the GGUF gets the context."""
    from aipc.engines.gguf_convert import convert
    from aipc.models.gguf import read_header

    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(dict(model_type="gpt2", n_embd=64, n_layer=2, n_head=4, vocab_size=300, n_positions=96)))
    out = convert(str(cfg), tmp_path / "g.gguf", quant="f32", progress=lambda *a: None)
    assert read_header(out).meta["gpt2.context_length"] == 96


def test_a_gemma3_folder_keeps_every_embedding_row_and_loads_in_llama_cpp(tmp_path):
    """llama.cpp's Gemma-3 converter sizes the embedding by the tokenizer: the stand-in tokenizer is padded
    to the config's vocabulary, so the GGUF keeps every row and llama.cpp loads it."""
    from aipc.engines import load
    from aipc.engines.gguf_convert import convert
    from aipc.models.gguf import read_header

    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(dict(model_type="gemma3_text", hidden_size=64, intermediate_size=128,
                                   num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1, head_dim=16,
                                   vocab_size=320, max_position_embeddings=128)))
    out = convert(str(cfg), tmp_path / "g.gguf", quant="f32", progress=lambda *a: None)
    emb = next(t for t in read_header(out).tensors if t.name == "token_embd.weight")
    assert emb.shape == (64, 320)
    loaded = load(str(out), engine="llamacpp", max_batch=1, threads=1)
    loaded.resize(max_len=32)
    assert loaded.runner.max_len == 32
