"""The OpenVINO engine from the command line, for real on the CPU: ``aipc convert --to openvino``
(bad input: one line, exit 2, nothing written), ``aipc generate --engine openvino`` and ``aipc serve
--engine openvino`` in a subprocess driven by the official ``openai`` client (streaming, chat,
continuous batching over the OpenVINO runner, /metrics)."""

from __future__ import annotations

import json
import os
import sys

import openai
import pytest

from helpers import concurrent_completions, free_port, mean_decode_batch, run_cli, serving

ov = pytest.importorskip("openvino", reason="OpenVINO is not installed (./setup.sh installs it)")
KEY = "test-key-openvino-0123456789"


def test_convert_cli_writes_an_ir_folder(tiny_qwen_dir, tmp_path):
    out = tmp_path / "q-int8"
    code, stdout, err = run_cli("convert", str(tiny_qwen_dir), "--to", "openvino", "--quant", "int8", "-o", str(out),
                                "--json")
    assert code == 0, err
    r = json.loads(stdout)
    assert (r["format"], r["quant"], r["output"], r["random_weights"]) == ("openvino", "int8", str(out), False)
    assert r["bytes"] == sum(f.stat().st_size for f in out.iterdir())
    assert (out / "openvino_model.xml").is_file() and (out / "openvino_tokenizer.xml").is_file()


@pytest.mark.parametrize("args, message", [
    (["--quant", "q4_k_m"], "unknown OpenVINO weight format 'q4_k_m'"),
    (["--quant", "int8", "--threads", "2"], "--threads applies to --to gguf"),
    (["--to", "onnx"], "--to must be one of gguf, openvino (got 'onnx')"),
])
def test_convert_cli_bad_input(tiny_qwen_dir, tmp_path, args, message):
    argv = ["convert", str(tiny_qwen_dir), "-o", str(tmp_path / "out")] + (
        args if "--to" in args else ["--to", "openvino", *args])
    code, out, err = run_cli(*argv)
    assert code == 2 and out == "" and err.startswith("error: ") and message in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_generate_cli_through_the_openvino_runner(ov_ir):
    code, out, err = run_cli("generate", str(ov_ir["int4"]), "--prompt", "hello", "--max-tokens", "8",
                             "--ignore-eos", "--json", "--no-mbu")
    assert code == 0, err
    r = json.loads(out)
    assert (r["engine"], r["weight_format"], r["runner"], r["device"]) == ("openvino", "int4", "OVRunner", "cpu")
    s = r["stats"]
    assert s["output_tokens"] == 8 and len(r["token_ids"]) == 8 and s["tpot_s"] > 0
    assert r["threads"] >= 1 and r["threads_note"]
    code, out, err = run_cli("generate", str(ov_ir["int4"]), "--engine", "torch", "--prompt", "x")
    assert code == 2 and "OpenVINO IR folder: run it with --engine openvino" in err


def test_generate_through_the_genai_pipeline_path(ov_ir):
    """The path 'aipc generate --device NPU' takes (GenAI's own pipeline, no runner), run on the CPU."""
    from aipc.commands import generate as G
    from aipc.engines.openvino import load
    from aipc.engines.openvino_genai import GenAIGenerator
    from aipc.engines.generate import encode_prompt
    from aipc.engines.sampling import SamplingParams

    loaded = load(str(ov_ir["int4"]))
    loaded.generator = GenAIGenerator(loaded.path, max_len=64)
    r = G._run_generator(loaded, encode_prompt(loaded.tokenizer, "hello"), SamplingParams(max_tokens=6, ignore_eos=True),
                         mbu=False, stream=False)
    assert (r["engine"], r["weight_format"], r["runner"], r["threads"]) == ("openvino", "int4", "GenAIGenerator", None)
    assert r["stats"]["output_tokens"] == 6 and len(r["token_ids"]) == 6 and r["stats"]["weight_bytes_per_step"] > 0
    runner_row = next(row for row in G._rows(r) if row[0] == "runner")
    assert runner_row[1] == "GenAIGenerator, int4 on cpu" and runner_row[2] == "the device's own"


@pytest.fixture(scope="module")
def server(ov_ir, tmp_path_factory):
    port = free_port()
    env = {**os.environ, "AIPC_API_KEY": KEY, "AIPC_HOME": str(tmp_path_factory.mktemp("home"))}
    cmd = [sys.executable, "-m", "aipc", "serve", str(ov_ir["int8"]), "--engine", "openvino", "--port", str(port),
           "--max-batch", "3", "--max-len", "128", "--served-name", "tiny-ov"]
    log = tmp_path_factory.mktemp("log") / "server.log"
    with serving(cmd, env, log, port, start_timeout=180) as (url, proc):
        yield {"url": url, "proc": proc, "log": log}


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server["url"] + "/v1", api_key=KEY, max_retries=0, timeout=60)


def test_serve_names_the_runner_and_streams(server, client, ov_ir):
    log = server["log"].read_text()
    assert "runner OVRunner" in log and "int8 on cpu" in log and "3 slots x 128 tokens" in log
    assert [m.id for m in client.models.list().data] == ["tiny-ov"]
    r = client.completions.create(model="tiny-ov", prompt="Hello there", max_tokens=12, temperature=0,
                                  extra_body={"ignore_eos": True})
    assert r.usage.completion_tokens == 12
    chunks = client.completions.create(model="tiny-ov", prompt="Hello there", max_tokens=12, temperature=0,
                                       stream=True, extra_body={"ignore_eos": True})
    assert "".join(c.choices[0].text for c in chunks if c.choices) == r.choices[0].text
    msgs = [{"role": "user", "content": "hi"}]
    chat = client.chat.completions.create(model="tiny-ov", messages=msgs, max_tokens=6, temperature=0)
    assert chat.choices[0].message.role == "assistant" and 1 <= chat.usage.completion_tokens <= 6


def test_serve_batches_concurrent_requests(server, client):
    prompts = ["one", "two two", "three three three", "four", "five five"]
    solo, out = concurrent_completions(client, "tiny-ov", prompts, max_tokens=10)
    assert all(out[p] == solo[p] for p in solo)  # batched with others: the same tokens as alone
    assert mean_decode_batch(server["url"], KEY) > 1.0  # some steps decoded several requests together


def test_validate_measures_an_openvino_workload(ov_ir):
    """aipc validate --engine openvino: the IR runs in a fresh child process; estimate beside measurement."""
    code, out, err = run_cli("validate", str(ov_ir["int8"]), "--engine", "openvino", "--precision", "int8",
                             "--batch", "2", "--prompt-tokens", "16", "--gen-tokens", "4", "--json")
    assert code == 0, err
    rows = json.loads(out)["rows"]
    assert len(rows) == 1
    r = rows[0]
    m = r["measurement"]
    assert m["engine"] == "openvino" and m["weight_format"] == "int8" and r["workload"]["engine"] == "openvino"
    assert r["measured_bytes"] > 0 and m["generate_s"] > 0 and r["estimated_bytes"] > 0
