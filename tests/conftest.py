"""Shared test set-up: an isolated aipc home, no network, tiny real models."""

from __future__ import annotations

import os

import pytest
from pg_fixtures import pg_server, pg_url  # noqa: F401  (a real PostgreSQL server for the results-DB tests)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def _aipc_home(tmp_path_factory, monkeypatch):
    """Each test gets its own AIPC_HOME so the results DB and profile cache never leak between tests."""
    home = tmp_path_factory.mktemp("aipc-home")
    monkeypatch.setenv("AIPC_HOME", str(home))
    return home


@pytest.fixture(autouse=True)
def _normal_floats():
    """aipc.runtime.prepare_cpu() flushes denormals for the process (right for a CLI run); in the one
    pytest process that would leak into later tests (hypothesis refuses to draw floats then)."""
    yield
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_flush_denormal(False)


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory):
    """A complete local HF folder of a tiny Llama (weights + byte tokenizer + chat template)."""
    from aipc.models.tiny import make_tiny_folder

    return make_tiny_folder(tmp_path_factory.mktemp("tiny-llama"), "llama")


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module's tests: on a shared 2-core machine multi-threaded tiny ops mostly
    wait on each other (and aipc hw profiles are per thread count)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def tiny_qwen_dir(tmp_path_factory):
    """A complete local HF folder of a tiny Qwen2 (tied embeddings, q/k/v biases)."""
    from aipc.models.tiny import make_tiny_folder

    return make_tiny_folder(tmp_path_factory.mktemp("tiny-qwen2"), "qwen2")


@pytest.fixture(scope="session")
def ov_ir(tiny_qwen_dir, tmp_path_factory):
    """OpenVINO IR folders of the tiny Qwen2, one per weight format, exported by ``aipc convert --to
    openvino`` (optimum-intel + NNCF in a child process, ~10 s each on 2 cores)."""
    pytest.importorskip("openvino", reason="OpenVINO is not installed (./setup.sh installs it)")
    from aipc.engines.openvino_export import convert

    root = tmp_path_factory.mktemp("ov-ir")
    return {q: convert(str(tiny_qwen_dir), q, root / q) for q in ("fp16", "int8", "int4")}


@pytest.fixture(scope="session")
def tiny_ggufs(tiny_llama_dir, tmp_path_factory):
    """Tiny models converted once per session by llama.cpp's converter (two runs, side by side) and
    quantize API: 'f32'/'f16' of the tiny Llama (hidden 64, the weights of ``tiny_llama_dir``), and
    'qwen_f16'/'q8_0'/'q4_0'/'q4_k_m' of a tiny Qwen2 (``qwen_dir``) with hidden 256, wide enough for
    real K-quant blocks (256 values per row), tied embeddings."""
    from concurrent.futures import ThreadPoolExecutor

    from aipc.engines.gguf_convert import convert, quantize
    from aipc.models.tiny import make_tiny_folder

    d = tmp_path_factory.mktemp("gguf")
    qwen = make_tiny_folder(d / "tiny-qwen2", "qwen2", hidden_size=256, intermediate_size=512,
                            num_attention_heads=4, num_key_value_heads=2)
    with ThreadPoolExecutor(2) as pool:
        jobs = [pool.submit(convert, src, d / f"{name}-f32.gguf", quant="f32")
                for name, src in (("tiny-llama", tiny_llama_dir), ("tiny-qwen2", qwen))]
        llama32, qwen32 = (j.result() for j in jobs)
    out = {"f32": llama32, "f16": d / "tiny-llama-f16.gguf", "qwen_dir": qwen, "qwen_f16": d / "tiny-qwen2-f16.gguf"}
    quantize(llama32, out["f16"], "f16", progress=lambda *a: None)
    quantize(qwen32, out["qwen_f16"], "f16", progress=lambda *a: None)
    for q in ("q8_0", "q4_0", "q4_k_m"):
        out[q] = d / f"tiny-qwen2-{q}.gguf"
        quantize(qwen32, out[q], q, progress=lambda *a: None)
    return out
