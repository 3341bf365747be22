"""Engine- and format-aware estimates: the bytes a decode step reads (gathered embedding rows, not the
table), workload rules for llama.cpp formats, and calibration kept apart per engine and weight format."""

import copy
import json
import re

import pytest
from helpers import run_cli

from aipc.errors import AipcError
from aipc.estimate import calibrate as C
from aipc.estimate import estimate, quant
from aipc.models import catalog
from aipc.spec import Workload, workload_from_dict


def _kv(m, tokens, b=2):
    return 2 * m.num_layers * m.num_kv_heads * m.head_dim * b * tokens


def test_decode_reads_the_gathered_embedding_row_not_the_table():
    m = catalog.get("llama-3.1-8b")
    w = Workload(model="llama-3.1-8b", prompt_tokens=512, gen_tokens=256, weight_dtype="bf16")
    e = estimate(w, "rtx-4090")
    V, H = m.vocab_size, m.hidden_size
    by_hand = m.param_count() * 2 - (V - 1) * H * 2 + _kv(m, 512 + 128)
    assert e.compute.decode_bytes_per_step == pytest.approx(by_hand, rel=1e-9)
    # the table is ~6% of the weights: counting it whole would be that pessimistic
    assert (V - 1) * H * 2 / (m.param_count() * 2) == pytest.approx(0.0655, abs=0.001)


def test_gguf_decode_bytes_use_the_files_exact_parts():
    m = catalog.get("llama-3.1-8b")
    w = workload_from_dict({"model": "llama-3.1-8b", "precision": "q4_k_m", "prompt_tokens": 100, "gen_tokens": 100})
    assert w.engine == "llamacpp"
    parts = quant.gguf_parts(m, "q4_k_m")
    e = estimate(w, "m4-max-40c")
    tok = parts["token_embd"]
    assert e.memory.weights_only_bytes == sum(parts.values())
    assert e.compute.decode_bytes_per_step == pytest.approx(sum(parts.values()) - tok + tok / m.vocab_size
                                                            + _kv(m, 150), rel=1e-9)


def test_tied_tables_are_read_whole_and_learned_positions_gathered():
    q = catalog.get("qwen2.5-0.5b")
    assert q.tie_embeddings
    e = estimate(Workload(model="qwen2.5-0.5b", prompt_tokens=10, gen_tokens=2, weight_dtype="bf16"), "rtx-4090")
    assert e.compute.decode_bytes_per_step == pytest.approx(q.param_count() * 2 + _kv(q, 11), rel=1e-9)
    g = catalog.get("gpt2")
    e = estimate(Workload(model="gpt2", prompt_tokens=10, gen_tokens=2, weight_dtype="fp32", batch_size=2), "rtx-4090")
    pos = g.max_position * g.hidden_size * 4
    assert e.compute.decode_bytes_per_step == pytest.approx(
        g.param_count() * 4 - pos + 2 * g.hidden_size * 4 + 2 * _kv(g, 11, 4), rel=1e-9)


def test_workload_engine_and_format_rules():
    assert workload_from_dict({"model": "gpt2", "precision": "q8_0"}).engine == "llamacpp"
    w = workload_from_dict({"model": "gpt2", "engine": "llamacpp", "precision": "fp16"})
    assert w.weight_dtype == "f16"
    with pytest.raises(AipcError, match="llama.cpp runs GGUF types"):
        workload_from_dict({"model": "gpt2", "engine": "llamacpp", "precision": "int4"})
    with pytest.raises(AipcError, match="not training"):
        workload_from_dict({"model": "gpt2", "task": "train", "method": "lora", "precision": "q4_k_m"})


def test_cli_engine_llamacpp_defaults_to_q4_k_m():
    code, out, err = run_cli("estimate", "llama-3.1-8b", "--engine", "llamacpp", "-d", "rtx-4090", "--json")
    assert code == 0, err
    d = json.loads(out)
    assert d["workload"]["weight_dtype"] == "q4_k_m"
    assert d["estimates"][0]["memory"]["weights_only_bytes"] == sum(quant.gguf_parts(catalog.get("llama-3.1-8b"),
                                                                                     "q4_k_m").values())
    code, _, err = run_cli("estimate", "llama-3.1-8b", "--engine", "llamacpp", "--precision", "nf4")
    assert code == 2 and "llama.cpp runs GGUF types" in err


def _point(scen, fmt, factor, engine="llamacpp", fpt=1e9, tokens=64):
    return {"device": "dev", "scenario": scen, "flops_per_token": fpt, "factor": factor, "tokens": tokens,
            "engine": engine, "weight_format": fmt}


def test_calibration_is_kept_per_engine_and_format():
    table = C.fit([_point("prefill", "q4_k_m", 0.4), _point("prefill", "q8_0", 0.6),
                   _point("prefill", None, 0.9, engine="torch")])
    with C.using(table):
        assert C.lookup("dev", "prefill", 1e9, tokens=64)[0] == 0.9  # torch: its own runs only
        assert C.lookup("dev", "prefill", 1e9, tokens=64, engine="llamacpp", weight_format="q4_k_m")[0] == 0.4
        # llama.cpp prefill factors are against each file's own kernel types: an unmeasured format takes
        # the fit over all of the engine's formats, whatever its family
        for fmt in ("q5_k_m", "q4_0", "f16"):
            f, src = C.lookup("dev", "prefill", 1e9, tokens=64, engine="llamacpp", weight_format=fmt)
            assert f == pytest.approx(0.5) and "not measured" in src
        assert C.lookup("dev", "prefill", 1e9, engine="openvino", weight_format="int8") is None
    decode = C.fit([{**_point("decode", "q4_k_m", 0.4), "tokens": 1}, {**_point("decode", "q8_0", 0.6), "tokens": 1}])
    with C.using(decode):  # decode: the same kernel family first (k-quants)
        mbu, _, src = C.lookup_decode("dev", 1, engine="llamacpp", weight_format="q5_k_m")
        assert mbu == pytest.approx(0.4) and "from q4_k_m" in src
        assert C.lookup_decode("dev", 1, engine="llamacpp", weight_format="q4_0")[0] == pytest.approx(0.6)
    only_llama = C.fit([_point("prefill", "q4_k_m", 0.4)])
    with C.using(only_llama):
        assert C.lookup("dev", "prefill", 1e9) is None  # llama.cpp runs never calibrate torch


@pytest.mark.parametrize("model,engine,precision,allowed", [
    ("qwen3-14b", "llamacpp", "q8_0", {"q4_k_m"}), ("qwen3-32b", "openvino", "int8", {"int4"}),
    ("qwen3-14b", "torch", "bf16", {"int8", "q4_k_m"})])
def test_what_would_fit_suggests_only_formats_the_engine_runs(model, engine, precision, allowed):
    code, out, err = run_cli("estimate", model, "--engine", engine, "--precision", precision,
                             "--prompt-tokens", "30000", "--device", "rtx-4090")
    assert code == 0, err
    suggested = set(re.findall(r"--precision (\S+?)[:\s]", out))
    assert suggested and suggested <= allowed, out


def test_a_llamacpp_prefill_fit_against_the_fp32_peak_is_not_used():
    """Tables fitted before llama.cpp's kernels were measured hold prefill factors against the fp32 peak
    (about 0.4 here, against ~1 for the kernels' FLOP/s): they would slow every estimate 2-3x; refit."""
    table = C.fit([_point("prefill", "q4_k_m", 0.4)])
    with C.using(table):
        assert C.lookup("dev", "prefill", 1e9, tokens=64, engine="llamacpp", weight_format="q4_k_m")[0] == 0.4
    old = copy.deepcopy(table)
    del old["devices"]["dev"]["prefill@llamacpp"]["against"]
    with C.using(old):
        assert C.lookup("dev", "prefill", 1e9, tokens=64, engine="llamacpp", weight_format="q4_k_m") is None
