"""aipc.models.gguf: the header of real GGUF files (written with the gguf library's writer, quantized by
llama.cpp's own quantizer), exact tensor bytes, and one-line errors for files that are not GGUF models."""

import subprocess
import sys

import numpy as np
import pytest
from gguf_helpers import quantize, write_llama
from helpers import run_cli

from aipc.errors import AipcError
from aipc.models import gguf as G
from aipc.models.load import resolve

# ggml block sizes, written out by hand (elements per block, bytes per block) — ggml-common.h
Q4_K, Q6_K, Q8_0 = (256, 144), (256, 210), (32, 34)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("gguf")
    f32 = write_llama(d / "tiny-f32.gguf")
    return {"f32": f32, "q4_k_m": quantize(f32, d / "tiny-q4_k_m.gguf", "q4_k_m"),
            "q8_0": quantize(f32, d / "tiny-q8_0.gguf", "q8_0")}


def _q(block, n):
    return n // block[0] * block[1]


def test_header_gives_the_architecture(files):
    h = G.read_header(files["f32"])
    assert h.architecture == "llama" and h.file_type == "f32"
    assert (h.get("block_count"), h.get("embedding_length"), h.get("attention.head_count"),
            h.get("attention.head_count_kv"), h.get("feed_forward_length"), h.get("context_length")) == (8, 256, 4, 2, 512, 256)
    assert h.get("rope.freq_base") == 500000.0
    # every f32 tensor: 4 bytes per element, exactly
    assert all(t.n_bytes == 4 * t.n_elements and t.type == "F32" for t in h.tensors)
    n = 2 * 512 * 256 + 256 + 8 * (2 * 256 + 256 * 256 * 2 + 2 * 128 * 256 + 3 * 256 * 512)
    assert h.tensor_bytes == 4 * n and h.elements_by_type == {"F32": n}


def test_quantized_file_bytes_per_tensor_and_type_are_exact(files):
    h = G.read_header(files["q4_k_m"])
    assert h.file_type == "q4_k_m"
    types = {t.name: t.type for t in h.tensors}
    # llama.cpp's Q4_K_M on 8 layers: attn_v and ffn_down of layers 0, 3, 6, 7 at Q6_K, output Q6_K
    assert types["output.weight"] == "Q6_K" and types["token_embd.weight"] == "Q4_K"
    assert [i for i in range(8) if types[f"blk.{i}.ffn_down.weight"] == "Q6_K"] == [0, 3, 6, 7]
    by_hand = {"F32": 4 * (256 + 8 * 2 * 256),
               "Q6_K": _q(Q6_K, 512 * 256) + 4 * (_q(Q6_K, 128 * 256) + _q(Q6_K, 512 * 256)),
               "Q4_K": _q(Q4_K, 512 * 256) + 8 * 2 * _q(Q4_K, 256 * 256) + 8 * 2 * _q(Q4_K, 512 * 256)
               + 8 * _q(Q4_K, 128 * 256) + 4 * (_q(Q4_K, 128 * 256) + _q(Q4_K, 512 * 256))}
    assert h.bytes_by_type == by_hand
    assert all(t.n_bytes == _q({"Q4_K": Q4_K, "Q6_K": Q6_K}[t.type], t.n_elements)
               for t in h.tensors if t.type != "F32")
    q8 = G.read_header(files["q8_0"])
    assert q8.file_type == "q8_0" and q8.bytes_by_type["Q8_0"] == _q(Q8_0, q8.elements_by_type["Q8_0"])


def test_resolve_gives_a_spec_with_the_files_bytes(files):
    m = resolve(str(files["q4_k_m"]))
    h = G.read_header(files["q4_k_m"])
    assert (m.model_type, m.num_layers, m.hidden_size, m.num_heads, m.num_kv_heads, m.head_dim) == ("llama", 8, 256, 4, 2, 64)
    assert (m.intermediate_size, m.vocab_size, m.max_position, m.tie_embeddings) == (512, 512, 256, False)
    assert m.weight_format == "q4_k_m" and m.weight_bytes == h.tensor_bytes
    assert m.param_count() == sum(t.n_elements for t in h.tensors)
    assert m.weight_parts["output"] == _q(Q6_K, 512 * 256) and m.weight_parts["token_embd"] == _q(Q4_K, 512 * 256)
    assert sum(m.weight_parts.values()) == h.tensor_bytes


def test_tied_qwen2_with_biases(tmp_path):
    f = write_llama(tmp_path / "qwen.gguf", arch="qwen2", tied=True, qkv_bias=True, layers=2)
    m = resolve(str(f))
    assert m.model_type == "qwen2" and m.tie_embeddings and m.qkv_bias
    assert m.param_count() == sum(t.n_elements for t in G.read_header(f).tensors)


def test_found_by_magic_without_the_suffix(files, tmp_path):
    plain = tmp_path / "model.bin"
    plain.write_bytes(files["q8_0"].read_bytes())
    assert resolve(str(plain)).weight_format == "q8_0"


def _cli_error(*args):
    code, out, err = run_cli(*args)
    assert code == 2 and err.startswith("error:") and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and not out.strip()
    return err


def test_bad_files_are_one_line_errors(files, tmp_path):
    data = files["q4_k_m"].read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[: len(data) // 2])
    assert "truncated" in _cli_error("estimate", str(cut))
    head = tmp_path / "head.gguf"
    head.write_bytes(data[:100])
    assert "corrupt or truncated" in _cli_error("estimate", str(head))
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF" + bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8)))
    assert "GGUF" in _cli_error("estimate", str(junk))
    not_gguf = tmp_path / "config.gguf"
    not_gguf.write_text('{"model_type": "llama"}')
    assert "not a GGUF file" in _cli_error("estimate", str(not_gguf))
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    assert "not a GGUF file" in _cli_error("estimate", str(empty))
    assert "no such file" in _cli_error("estimate", str(tmp_path / "missing.gguf"))


def test_unsupported_architecture_is_named(tmp_path):
    f = write_llama(tmp_path / "mamba.gguf", arch="mamba", layers=1)
    with pytest.raises(AipcError, match="architecture 'mamba' is not supported"):
        resolve(str(f))


def test_estimate_of_a_gguf_uses_its_engine_format_and_bytes_without_torch(files):
    code = ("import json, sys, io, contextlib; from aipc.cli import main\n"
            "buf = io.StringIO()\n"
            f"with contextlib.redirect_stdout(buf): rc = main(['estimate', {str(files['q4_k_m'])!r}, '--json', '-d', 'rtx-4090'])\n"
            "assert rc in (0, None), rc\n"
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'heavy import'\n"
            "print(buf.getvalue())")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    import json

    d = json.loads(r.stdout)
    assert d["workload"]["engine"] == "llamacpp" and d["workload"]["weight_dtype"] == "q4_k_m"
    e = d["estimates"][0]
    assert e["memory"]["weights_only_bytes"] == G.read_header(files["q4_k_m"]).tensor_bytes


def test_vocabulary_arrays_are_stepped_over_and_numeric_arrays_read_whole(tmp_path):
    import gguf

    p = tmp_path / "vocab.gguf"
    w = gguf.GGUFWriter(str(p), "llama")
    for k, v in (("block_count", 2), ("context_length", 64), ("embedding_length", 64), ("feed_forward_length", 128),
                 ("attention.head_count", 4)):
        w.add_uint32(f"llama.{k}", v)
    w.add_array("llama.attention.head_count_kv", [2, 2])  # per-layer values, all equal
    w.add_tokenizer_model("gpt2")
    w.add_token_list([f"tok{i}" for i in range(20000)])
    w.add_token_merges([f"a{i} b{i}" for i in range(20000)])
    w.add_token_types([1] * 20000)
    w.add_string("general.name", "after the vocabulary")
    w.add_tensor("token_embd.weight", np.zeros((20000, 64), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    h = G.read_header(p)
    assert h.meta["general.name"] == "after the vocabulary"  # keys after the arrays are read in place
    assert h.get("attention.head_count_kv") == [2, 2]
    m = resolve(str(p))
    assert m.num_kv_heads == 2 and m.vocab_size == 20000 and m.tie_embeddings
