"""``aipc serve --engine llamacpp``: the real server in a subprocess on a GGUF converted in this session,
driven by the official ``openai`` client: auth, completions and chat (streamed and not), continuous
batching, /metrics and the audit log — the same API as the torch server."""

from __future__ import annotations

import json
import os
import sys

import httpx
import openai
import pytest

from helpers import concurrent_completions, free_port, mean_decode_batch, serving

KEY = "test-key-llamacpp-0123456789"


@pytest.fixture(scope="module")
def server(tiny_ggufs, tmp_path_factory):
    port = free_port()
    audit = tmp_path_factory.mktemp("audit") / "audit.jsonl"
    env = {**os.environ, "AIPC_API_KEY": KEY, "AIPC_HOME": str(tmp_path_factory.mktemp("home"))}
    cmd = [sys.executable, "-m", "aipc", "serve", str(tiny_ggufs["f32"]), "--engine", "llamacpp", "--port", str(port),
           "--max-batch", "4", "--max-len", "128", "--audit-log", str(audit), "--served-name", "tiny-gguf"]
    log = tmp_path_factory.mktemp("log") / "server.log"
    with serving(cmd, env, log, port, start_timeout=180) as (url, proc):
        yield {"url": url, "proc": proc, "audit": audit, "log": log}


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server["url"] + "/v1", api_key=KEY, max_retries=0, timeout=60)


def test_startup_names_the_engine_and_auth_holds(server, client):
    log = server["log"].read_text()
    assert "runner LlamaCppRunner" in log and "f32 on cpu" in log and "4 slots x 128 tokens" in log
    assert "threads: " in log and "measured at batch 4" in log  # threads chosen by measurement
    assert [m.id for m in client.models.list().data] == ["tiny-gguf"]
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server["url"] + "/v1", api_key="wrong-key-xxxxxxxx", max_retries=0).models.list()
    assert httpx.get(server["url"] + "/metrics").status_code == 401


def test_completions_equal_the_torch_engine(client, tiny_llama_dir):
    """The f32 GGUF holds the tiny Llama's weights: the server's greedy text equals the torch engine's."""
    from aipc.engines import load
    from aipc.engines.generate import generate
    from aipc.engines.sampling import SamplingParams

    t = load(tiny_llama_dir, engine="torch", threads=1)
    ids = t.tokenizer("Hello there")["input_ids"]
    want = generate(t.runner, t.tokenizer, ids, SamplingParams(max_tokens=20, ignore_eos=True), model=t.model).text
    r = client.completions.create(model="tiny-gguf", prompt="Hello there", max_tokens=20, temperature=0,
                                  extra_body={"ignore_eos": True})
    assert r.choices[0].text == want and r.usage.completion_tokens == 20 and r.usage.prompt_tokens == len(ids)
    chunks = list(client.completions.create(model="tiny-gguf", prompt="Hello there", max_tokens=20, temperature=0,
                                            stream=True, extra_body={"ignore_eos": True}))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == want


def test_chat_uses_the_gguf_template(client):
    msgs = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    r = client.chat.completions.create(model="tiny-gguf", messages=msgs, max_tokens=10, temperature=0)
    assert r.choices[0].message.role == "assistant" and 1 <= r.usage.completion_tokens <= 10
    # <|system|>\nbe brief<|end|>\n<|user|>\nhi<|end|>\n<|assistant|>\n: 4 specials + 2+9+1+3+1+1 bytes
    assert r.usage.prompt_tokens == 5 + len("\nbe brief\n\nhi\n\n".encode())
    s = list(client.chat.completions.create(model="tiny-gguf", messages=msgs, max_tokens=10, temperature=0,
                                            stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in s) == r.choices[0].message.content


def test_concurrent_requests_batched_through_llamacpp(server, client):
    prompts = ["one", "two two", "three three three", "four", "five five", "six"]
    # 48 tokens each: long enough that the six requests overlap on a loaded 2-core machine (at 16, one CI run
    # served them one after another)
    solo, out = concurrent_completions(client, "tiny-gguf", prompts, max_tokens=48)
    assert all(out[p] == solo[p] for p in solo)  # batched with others: the same tokens as alone
    assert mean_decode_batch(server["url"], KEY) > 1.0  # some steps decoded several requests together


def test_audit_log_records_requests(server, client):
    client.completions.create(model="tiny-gguf", prompt="audit me", max_tokens=2, temperature=0)
    lines = [json.loads(ln) for ln in server["audit"].read_text().splitlines() if ln.strip()]
    assert lines and all("audit me" not in json.dumps(ln) for ln in lines)  # no content by default
