"""The real server (``aipc serve`` in a subprocess, uvicorn on a free loopback port, tiny Llama)
driven by the official ``openai`` client and raw HTTP: auth, streaming, batching, bad input,
metrics, audit, load test, graceful shutdown."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

import httpx
import openai
import pytest

from helpers import free_port as _free_port
from helpers import run_cli, serving

KEY = "test-key-0123456789abcdef"
MAX_LEN = 192


@pytest.fixture(scope="module")
def server(tiny_llama_dir, tmp_path_factory):
    port = _free_port()
    audit = tmp_path_factory.mktemp("audit") / "audit.jsonl"
    env = {**os.environ, "AIPC_API_KEY": KEY, "AIPC_HOME": str(tmp_path_factory.mktemp("home"))}
    cmd = [sys.executable, "-m", "aipc", "serve", str(tiny_llama_dir), "--port", str(port), "--threads", "1",
           "--max-batch", "4", "--max-len", str(MAX_LEN), "--max-tokens", "150", "--max-body-bytes", "20000",
           "--audit-log", str(audit), "--served-name", "tiny"]
    log = tmp_path_factory.mktemp("log") / "server.log"
    with serving(cmd, env, log, port, start_timeout=120) as (url, proc):
        yield {"url": url, "proc": proc, "audit": audit, "log": log}


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server["url"] + "/v1", api_key=KEY, max_retries=0, timeout=60)


def _post(server, path, body=None, *, raw=None, key=KEY, headers=None):
    h = {"Authorization": f"Bearer {key}"} if key else {}
    h.update(headers or {})
    if raw is not None:
        h["Content-Type"] = "application/json"
        return httpx.post(server["url"] + path, content=raw, headers=h, timeout=60)
    return httpx.post(server["url"] + path, json=body, headers=h, timeout=60)


def _is_openai_error(r, status, code=None):
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert isinstance(err["message"], str) and err["message"] and "type" in err
    if code:
        assert err["code"] == code, err


def test_models_and_auth(server, client):
    assert [m.id for m in client.models.list().data] == ["tiny"]
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server["url"] + "/v1", api_key="wrong-key-xxxxxxxx", max_retries=0).models.list()
    _is_openai_error(httpx.get(server["url"] + "/v1/models"), 401, "invalid_api_key")
    _is_openai_error(_post(server, "/v1/completions", {"model": "tiny", "prompt": "x"}, key=None), 401)
    _is_openai_error(httpx.get(server["url"] + "/metrics"), 401)
    assert httpx.get(server["url"] + "/health").json()["status"] == "ok"


def test_completion_stream_and_non_stream_agree(client):
    r = client.completions.create(model="tiny", prompt="Hello there", max_tokens=24, temperature=0,
                                  extra_body={"ignore_eos": True})
    assert r.usage.completion_tokens == 24 and r.usage.prompt_tokens == len("Hello there".encode())
    assert r.usage.total_tokens == r.usage.prompt_tokens + 24 and r.choices[0].finish_reason == "length"
    chunks = list(client.completions.create(model="tiny", prompt="Hello there", max_tokens=24, temperature=0,
                                            stream=True, stream_options={"include_usage": True},
                                            extra_body={"ignore_eos": True}))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == r.choices[0].text
    assert chunks[-1].usage.completion_tokens == 24
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"


def test_greedy_output_equals_hf_generate(client, tiny_llama_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    hf = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    hf.generation_config.eos_token_id = None
    ids = tok("Hello there")["input_ids"]
    ref = hf.generate(torch.tensor([ids]), max_new_tokens=16, do_sample=False)[0, len(ids):].tolist()
    r = client.completions.create(model="tiny", prompt="Hello there", max_tokens=16, temperature=0,
                                  extra_body={"ignore_eos": True})
    assert r.choices[0].text == tok.decode(ref, skip_special_tokens=True)


def test_chat_stream_and_non_stream(client):
    msgs = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    r = client.chat.completions.create(model="tiny", messages=msgs, max_tokens=10, temperature=0, seed=1)
    assert r.object == "chat.completion" and r.choices[0].message.role == "assistant"
    assert 1 <= r.usage.completion_tokens <= 10
    s = list(client.chat.completions.create(model="tiny", messages=msgs, max_tokens=10, temperature=0, stream=True))
    assert s[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in s) == r.choices[0].message.content


def test_stop_string(client):
    full = client.completions.create(model="tiny", prompt="abc", max_tokens=40, temperature=0,
                                     extra_body={"ignore_eos": True}).choices[0].text
    visible = [ch for ch in full if ch.isprintable() and ch != "\ufffd"]
    if len(visible) < 3:
        pytest.skip("greedy text of the random model has too few printable characters")
    stop = visible[2]
    r = client.completions.create(model="tiny", prompt="abc", max_tokens=40, temperature=0, stop=[stop],
                                  extra_body={"ignore_eos": True})
    assert r.choices[0].text == full[:full.index(stop)] and r.choices[0].finish_reason == "stop"


def test_concurrent_requests_are_batched_and_correct(server, client):
    prompts = ["one", "two two", "three three three", "four", "five five", "six", "seven", "eight"]
    solo = {p: client.completions.create(model="tiny", prompt=p, max_tokens=20, temperature=0,
                                         extra_body={"ignore_eos": True}).choices[0].text for p in prompts[:3]}
    out, errors = {}, []

    def go(p):
        try:
            chunks = client.completions.create(model="tiny", prompt=p, max_tokens=20, temperature=0, stream=True,
                                               extra_body={"ignore_eos": True})
            out[p] = "".join(c.choices[0].text for c in chunks if c.choices)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=go, args=(p,)) for p in prompts]
    [t.start() for t in threads]
    [t.join(60) for t in threads]
    assert not errors and len(out) == len(prompts)
    for p in prompts[:3]:  # decoded in a batch with others at other positions: same tokens as alone
        assert out[p] == solo[p]
    metrics = httpx.get(server["url"] + "/metrics", headers={"Authorization": f"Bearer {KEY}"}).text
    batch_sum = float(next(ln.split()[1] for ln in metrics.splitlines() if ln.startswith("aipc_decode_batch_size_sum")))
    batch_n = float(next(ln.split()[1] for ln in metrics.splitlines() if ln.startswith("aipc_decode_batch_size_count")))
    assert batch_sum / batch_n > 1.0  # some steps decoded several requests together


@pytest.mark.parametrize("body, status, code", [
    ({"model": "tiny", "prompt": "x", "max_tokens": "ten"}, 400, "invalid_type"),
    ({"model": "tiny", "prompt": "x", "max_tokens": -1}, 400, "invalid_value"),
    ({"model": "tiny", "prompt": "x", "max_tokens": 10 ** 9}, 400, "invalid_value"),
    ({"model": "tiny", "prompt": "x", "temperature": "hot"}, 400, "invalid_type"),
    ({"model": "tiny", "prompt": "x", "n": 3}, 400, "unsupported"),
    ({"model": "tiny", "prompt": 42}, 400, "invalid_type"),
    ({"model": "tiny"}, 400, "missing_required_parameter"),
    ({"prompt": "x"}, 400, "missing_required_parameter"),
    ({"model": "gpt-9", "prompt": "x"}, 404, "model_not_found"),
    ({"model": "tiny", "prompt": "y" * (MAX_LEN + 5)}, 400, "context_length_exceeded"),
    ({"model": "tiny", "prompt": "y" * 100, "max_tokens": 120}, 400, "context_length_exceeded"),
    ({"model": "tiny", "prompt": [1, 2, 99999]}, 400, "invalid_value"),
    ([1, 2, 3], 400, "invalid_json"),
])
def test_bad_completion_requests(server, body, status, code):
    _is_openai_error(_post(server, "/v1/completions", body), status, code)


@pytest.mark.parametrize("body, code", [
    ({"model": "tiny", "messages": []}, "invalid_type"),
    ({"model": "tiny", "messages": [{"role": "wizard", "content": "x"}]}, "invalid_value"),
    ({"model": "tiny", "messages": [{"role": "user", "content": 5}]}, "invalid_type"),
])
def test_bad_chat_requests(server, body, code):
    _is_openai_error(_post(server, "/v1/chat/completions", body), 400, code)


def test_malformed_oversized_and_unknown(server):
    _is_openai_error(_post(server, "/v1/completions", raw=b'{"model": "tiny", "prompt": '), 400, "invalid_json")
    _is_openai_error(_post(server, "/v1/completions", {"model": "tiny", "prompt": "z" * 30000}), 413,
                     "request_too_large")
    _is_openai_error(_post(server, "/v1/completions", raw=b"[" * 15000), 400, "invalid_json")  # nesting
    _is_openai_error(_post(server, "/v1/completions", raw=b'{"model": "tiny", "prompt": "x", "max_tokens": '
                           + b"9" * 5000 + b"}"), 400, "invalid_json")
    _is_openai_error(_post(server, "/v1/completions", raw=b'{"model": "tiny", "prompt": "a\\ud800b"}'), 400,
                     "invalid_value")  # a lone surrogate cannot be tokenized
    _is_openai_error(_post(server, "/v1/chat/completions", raw=b'{"model": "tiny", "messages": '
                           b'[{"role": "user", "content": "\\udfff"}]}'), 400, "invalid_value")
    _is_openai_error(_post(server, "/v1/nothing", {}), 404)
    _is_openai_error(httpx.get(server["url"] + "/v1/completions", headers={"Authorization": f"Bearer {KEY}"}), 405)
    with pytest.raises(openai.BadRequestError):  # the official client sees a normal 4xx error
        openai.OpenAI(base_url=server["url"] + "/v1", api_key=KEY, max_retries=0).completions.create(
            model="tiny", prompt="x", max_tokens=-5)


def test_client_disconnect_mid_stream_does_not_hurt_others(server, client):
    with httpx.stream("POST", server["url"] + "/v1/completions", headers={"Authorization": f"Bearer {KEY}"},
                      json={"model": "tiny", "prompt": "bye", "max_tokens": 150, "stream": True, "ignore_eos": True},
                      timeout=30) as r:
        lines = r.iter_lines()
        got = [next(lines) for _ in range(6)]
    assert any(ln.startswith("data: {") for ln in got)
    r = client.completions.create(model="tiny", prompt="still here?", max_tokens=8, temperature=0,
                                  extra_body={"ignore_eos": True})
    assert r.usage.completion_tokens == 8
    deadline = time.time() + 20
    while time.time() < deadline:  # the dropped stream gives its slot back
        h = httpx.get(server["url"] + "/health").json()
        if h["running"] == 0:
            break
        time.sleep(0.2)
    assert h["running"] == 0 and h["waiting"] == 0


def test_metrics_counters(server, client):
    before = _metrics(server)
    r = client.completions.create(model="tiny", prompt="count me", max_tokens=5, temperature=0,
                                  extra_body={"ignore_eos": True})
    after = _metrics(server)
    key = 'aipc_requests_total{endpoint="/v1/completions",status="200"}'
    assert after[key] == before.get(key, 0) + 1
    assert after["aipc_generation_tokens_total"] == before["aipc_generation_tokens_total"] + 5
    assert after["aipc_prompt_tokens_total"] == before["aipc_prompt_tokens_total"] + r.usage.prompt_tokens
    assert after["aipc_time_to_first_token_seconds_count"] == before["aipc_time_to_first_token_seconds_count"] + 1
    assert after["aipc_e2e_request_latency_seconds_count"] == before["aipc_e2e_request_latency_seconds_count"] + 1
    assert after['aipc_requests_total{endpoint="/v1/models",status="401"}'] >= 1


def _metrics(server) -> dict:
    text = httpx.get(server["url"] + "/metrics", headers={"Authorization": f"Bearer {KEY}"}).text
    return {ln.rsplit(" ", 1)[0]: float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines() if ln and ln[0] != "#"}


def test_audit_log_has_no_content(server, client):
    client.completions.create(model="tiny", prompt="SECRET-PROMPT-TEXT", max_tokens=3, temperature=0)
    text = server["audit"].read_text()
    assert "SECRET-PROMPT-TEXT" not in text and KEY not in text
    recs = [json.loads(ln) for ln in text.splitlines()]
    ok = [r for r in recs if r["status"] == 200 and r["endpoint"] == "/v1/completions"]
    assert ok and all(r["key_name"] == "default" and r["prompt_tokens"] > 0 for r in ok)
    assert any(r["status"] == 404 for r in recs)


def test_loadtest_against_server_stores_results(server, tmp_path):
    db = tmp_path / "results.sqlite"
    code, out, err = run_cli("loadtest", server["url"], "-c", "1,3", "-n", "6", "--max-tokens", "8", "--ignore-eos",
                             "--api-key", KEY, "--slo-ttft", "30", "--db", str(db), "--json")
    assert code == 0, err
    res = json.loads(out)
    assert [r["scenario"] for r in res["runs"]] == ["concurrency=1", "concurrency=3"]
    for r in res["runs"]:
        m = r["metrics"]
        assert m["requests_ok"] == 6 and m["output_tokens"] == 48 and m["goodput_rps"] == m["request_throughput_rps"]
        assert m["ttft_s"]["p50"] > 0 and m["tpot_s"]["p50"] > 0 and m["e2e_s"]["p99"] >= m["ttft_s"]["p99"]
    from aipc.bench.store import ResultsDB

    runs = ResultsDB(db).runs(kind="loadtest")
    assert len(runs) == 2 and {r["id"] for r in runs} == set(res["stored"])
    assert runs[1]["workload"]["concurrency"] == 3 and len(runs[1]["samples"]) == 6
    assert all(s["output_tokens"] == 8 and len(s["itl_s"]) == 7 for s in runs[1]["samples"])


def test_loadtest_poisson_rate_on_chat(server):
    code, out, err = run_cli("loadtest", server["url"] + "/v1", "--rate", "40", "-n", "4", "--endpoint", "chat",
                             "--max-tokens", "6", "--ignore-eos", "--api-key", KEY, "--no-store", "--json")
    assert code == 0, err
    (run,) = json.loads(out)["runs"]
    m = run["metrics"]
    assert run["scenario"] == "rate=40/s" and m["requests_ok"] == 4 and m["output_tokens"] == 24
    assert m["tpot_s"]["max"] <= m["e2e_s"]["max"] and m["prompt_tokens"] > 0


def test_graceful_shutdown_finishes_in_flight(server):
    """SIGTERM while a stream is running: the stream completes, then the process exits cleanly."""
    proc = server["proc"]
    done = []
    body = {"model": "tiny", "prompt": "PROMPT-NOT-LOGGED", "max_tokens": 120, "stream": True, "ignore_eos": True}
    with httpx.stream("POST", server["url"] + "/v1/completions", headers={"Authorization": f"Bearer {KEY}"},
                      json=body, timeout=60) as r:
        for i, ln in enumerate(r.iter_lines()):
            if i == 4:
                proc.send_signal(signal.SIGTERM)
            if ln.startswith("data: {"):
                done.append(json.loads(ln[6:])["choices"][0]["finish_reason"])
            if ln == "data: [DONE]":
                break
    assert done[-1] == "length" and len(done) == 121
    # uvicorn re-raises the signal after its graceful shutdown, so the exit status is "terminated"
    assert proc.wait(30) in (0, -signal.SIGTERM)
    log = server["log"].read_text()
    assert "Application shutdown complete" in log and "Traceback" not in log
    assert "PROMPT-NOT-LOGGED" not in log and "SECRET-PROMPT-TEXT" not in log  # prompts are not logged
