"""The app's own behaviour, with two real servers in one process (uvicorn on free loopback ports, in
threads, tiny Llama): overload answered 503 + Retry-After with the rate limit refunded, each app
counting into its own Prometheus registry, an engine the caller started, a crash inside a handler
answered with an OpenAI-style 500 and logged once, and validation errors as the official ``openai``
client sees them."""

from __future__ import annotations

import logging
import threading
import time

import httpx
import openai
import pytest
from helpers import free_port

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class _Served:
    def __init__(self, model_dir, **kw):
        import uvicorn

        from aipc.serve.server import ServeOptions, build, check

        self.opts = ServeOptions(model=str(model_dir), port=free_port(), max_len=96, threads=1, served_name="tiny", **kw)
        self.access = check(self.opts)
        self.app, self.engine, self.cfg, _ = build(self.opts, self.access)
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.opts.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{self.opts.port}"

    def __enter__(self):
        self.thread.start()
        for _ in range(300):
            try:
                httpx.get(self.url + "/health", timeout=1)
                return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("server did not start")

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(30)

    def post(self, body, path="/v1/completions", **kw):
        return httpx.post(self.url + path, json={"model": "tiny", **body}, timeout=60, **kw)


@pytest.fixture(scope="module")
def pair(tiny_llama_dir):
    """Two servers in one process: one slot and a queue of one (and a token limit); and a second one."""
    with _Served(tiny_llama_dir, max_batch=1, max_queue=1, tokens_per_min=100_000) as a, \
            _Served(tiny_llama_dir, max_batch=2) as b:
        a.access.limiter.clock = lambda: 0.0  # a stopped clock: the token bucket does not refill during the test
        yield a, b


def test_overload_is_503_with_retry_after_and_refunds_the_rate_limit(pair):
    a, _ = pair
    body = {"prompt": "slow", "max_tokens": 88, "ignore_eos": True}
    results = []
    threads = [threading.Thread(target=lambda: results.append(a.post(body))) for _ in range(4)]
    [t.start() for t in threads]
    [t.join(120) for t in threads]
    codes = sorted(r.status_code for r in results)
    busy = [r for r in results if r.status_code == 503]
    assert codes.count(200) >= 2 and busy, codes  # one decoding, one queued, the rest turned away
    assert all(r.headers["retry-after"] == "1" and r.json()["error"]["code"] == "overloaded" for r in busy)
    level = a.access.limiter._buckets[("anonymous", "tokens")].level
    used = sum(r.json()["usage"]["total_tokens"] for r in results if r.status_code == 200)
    assert level == 100_000 - used  # the 503s took nothing; the 200s paid what they used


def test_each_app_counts_into_its_own_registry(pair):
    a, b = pair
    ma, mb = a.engine.metrics, b.engine.metrics
    assert ma.registry is not mb.registry
    n_a = ma.value("aipc_requests_total", endpoint="/v1/completions", status="200")
    n_b = mb.value("aipc_requests_total", endpoint="/v1/completions", status="200")
    assert b.post({"prompt": "only b", "max_tokens": 3}).status_code == 200
    assert mb.value("aipc_requests_total", endpoint="/v1/completions", status="200") == n_b + 1
    assert ma.value("aipc_requests_total", endpoint="/v1/completions", status="200") == n_a
    text = httpx.get(b.url + "/metrics").text
    assert f'aipc_requests_total{{endpoint="/v1/completions",status="200"}} {n_b + 1:.1f}' in text
    assert "aipc_requests_running 0.0" in text and "_created" not in text


def test_engine_started_by_the_caller_is_not_started_twice(pair):
    _, b = pair
    assert b.engine.started
    thread = b.engine._thread
    b.engine.start()
    assert b.engine._thread is thread and thread.is_alive()


def test_a_crash_in_a_handler_is_one_traceback_and_an_openai_500(pair, monkeypatch, caplog):
    """A tokenizer that raises an unexpected error (injected: the real one does not fail this way)."""
    _, b = pair

    def broken(*a, **k):
        raise RuntimeError("tokenizer exploded")

    monkeypatch.setattr(type(b.engine.tokenizer), "__call__", broken)
    uvicorn_log = logging.getLogger("uvicorn.error")  # does not propagate to the root logger caplog watches
    uvicorn_log.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.ERROR):
            r = b.post({"prompt": "boom", "max_tokens": 2})
    finally:
        uvicorn_log.removeHandler(caplog.handler)
    assert r.status_code == 500 and r.json()["error"] == {"message": "internal server error", "type": "server_error",
                                                          "param": None, "code": "internal_error"}
    tracebacks = [rec for rec in caplog.records if rec.exc_info]
    assert len(tracebacks) == 1 and "internal error on /v1/completions" in tracebacks[0].getMessage()
    monkeypatch.undo()
    assert b.post({"prompt": "fine again", "max_tokens": 2}).status_code == 200


@pytest.mark.parametrize("kwargs, code, param", [
    ({"temperature": 7}, "invalid_value", "temperature"),
    ({"n": 2}, "unsupported", "n"),
    ({"max_tokens": 0}, "invalid_value", "max_tokens"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "invalid_value", "stop"),
    ({"extra_body": {"top_k": "ten"}}, "invalid_type", "top_k"),
])
def test_validation_errors_as_the_official_client_sees_them(pair, kwargs, code, param):
    _, b = pair
    client = openai.OpenAI(base_url=b.url + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model="tiny", prompt="x", **kwargs)
    assert e.value.code == code and e.value.param == param and e.value.status_code == 400
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="tiny", messages=[{"role": "wizard", "content": "x"}])
    assert e.value.code == "invalid_value" and e.value.param == "messages[0].role"


def test_stream_with_usage_through_the_official_client(pair):
    _, b = pair
    client = openai.OpenAI(base_url=b.url + "/v1", api_key="unused", max_retries=0)
    chunks = list(client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}],
                                                 max_completion_tokens=5, stream=True,
                                                 stream_options={"include_usage": True}, extra_body={"ignore_eos": True}))
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[0].usage is None
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 5
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
