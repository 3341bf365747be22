"""aipc.estimate.quant against llama.cpp itself: the type llama.cpp's quantizer gives every tensor and
the exact bytes, for several file types and shapes (fallbacks, tied embeddings, biases, 8 experts,
the 70B rule); and the catalog's Llama-3 8B against the sizes llama.cpp's quantize tool publishes."""

import numpy as np
import pytest
from gguf_helpers import quantize, write_llama

from aipc.estimate import quant as Q
from aipc.models import catalog
from aipc.models import gguf as G
from aipc.models.load import resolve


def _compare(src, tmp_path, ftype):
    """(mismatched tensors, predicted bytes, file's bytes) for llama.cpp's quantization of ``src``."""
    out = quantize(src, tmp_path / f"{src.stem}-{ftype}.gguf", ftype)
    h = G.read_header(out)
    m = resolve(str(src))
    types = Q.gguf_types(m, ftype)
    assert set(types) == {t.name for t in h.tensors}  # the same tensors
    bad = [(t.name, t.type, types[t.name]) for t in h.tensors if types[t.name] != t.type]
    return bad, sum(Q.gguf_parts(m, ftype).values()), h.tensor_bytes


@pytest.fixture(scope="module")
def llama8(tmp_path_factory):
    return write_llama(tmp_path_factory.mktemp("q") / "llama8.gguf", layers=8)


@pytest.mark.parametrize("ftype", ["q4_k_m", "q5_k_m", "q4_k_s", "q3_k_m", "q2_k", "q4_0", "q8_0", "q6_k", "f16"])
def test_types_and_bytes_match_llama_cpp(llama8, tmp_path, ftype):
    bad, predicted, actual = _compare(llama8, tmp_path, ftype)
    assert not bad and predicted == actual


def test_fallbacks_and_tied_output(tmp_path):
    # rows of 160 do not divide into 256-blocks (Q4_K -> Q5_0) and rows of 520 not into 32-blocks (-> F16);
    # the tied token table is the output matrix: Q8_0 when its rows do not fit Q6_K
    src = write_llama(tmp_path / "odd.gguf", layers=4, hidden=160, ffn=520, vocab=320, heads=5, kv_heads=1, tied=True)
    for ftype in ("q4_k_m", "q4_0"):
        bad, predicted, actual = _compare(src, tmp_path, ftype)
        assert not bad and predicted == actual
    types = Q.gguf_types(resolve(str(src)), "q4_k_m")
    assert types["token_embd.weight"] == "Q8_0" and types["blk.0.attn_q.weight"] == "Q5_0"
    assert types["blk.1.ffn_down.weight"] == "F16"


def test_qwen2_biases_and_sixteen_layers(tmp_path):
    src = write_llama(tmp_path / "qwen.gguf", arch="qwen2", layers=16, qkv_bias=True, tied=True)
    bad, predicted, actual = _compare(src, tmp_path, "q4_k_m")
    assert not bad and predicted == actual


def test_eight_experts_rules(tmp_path):
    # Mixtral-style: attn_k / attn_v at Q8_0, attn_output at Q5_K in Q4_K_M
    src = write_llama(tmp_path / "moe.gguf", layers=2, experts=8, ffn=256)
    bad, predicted, actual = _compare(src, tmp_path, "q4_k_m")
    assert not bad and predicted == actual
    types = Q.gguf_types(resolve(str(src)), "q4_k_m")
    assert types["blk.0.attn_v.weight"] == "Q8_0" and types["blk.1.attn_output.weight"] == "Q5_K"


def test_seventy_b_rule(tmp_path):
    # an 80-layer GQA Llama is llama.cpp's 70B type: its attn_v never drops below Q5_K
    src = write_llama(tmp_path / "l80.gguf", layers=80, hidden=256, ffn=32, vocab=256, heads=4, kv_heads=1,
                      dtype=np.float16)
    bad, predicted, actual = _compare(src, tmp_path, "q4_k_m")
    assert not bad and predicted == actual
    assert Q.gguf_types(resolve(str(src)), "q4_k_m")["blk.10.attn_v.weight"] == "Q5_K"


# llama.cpp's quantize tool lists each type's size of Llama-3-8B in GiB (tools/quantize/quantize.cpp,
# llama-cpp-python 0.3.36's vendored llama.cpp); Llama-3.1-8B has the same tensors (+ 64 rope factors)
PUBLISHED_GIB = {"q4_0": 4.34, "q4_1": 4.78, "q5_0": 5.21, "q5_1": 5.65, "q2_k": 2.96, "q3_k_s": 3.41, "q3_k_m": 3.74,
                 "q3_k_l": 4.03, "q4_k_s": 4.37, "q4_k_m": 4.58, "q5_k_s": 5.21, "q5_k_m": 5.33, "q6_k": 6.14,
                 "q8_0": 7.96}


def test_catalog_8b_matches_llama_cpp_published_sizes():
    m = catalog.get("llama-3.1-8b")
    for ftype, gib in PUBLISHED_GIB.items():
        got = sum(Q.gguf_parts(m, ftype).values()) / 2**30
        assert abs(got / gib - 1) < 0.005, (ftype, got, gib)
    # the nominal 4.5 bits of Q4_K would miss the Q6_K tensors by ~8%
    assert sum(Q.gguf_parts(m, "q4_k_m").values()) > 1.07 * m.param_count() * 4.5 / 8
