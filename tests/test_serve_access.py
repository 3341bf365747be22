"""Access control of ``aipc serve``: named keys from a file (revocable live), per-key rate limits,
the audit log, and refusing an open non-loopback bind. The server runs in-process (real uvicorn on a
free loopback port, in a thread) to save a second interpreter start."""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import pytest

from helpers import run_cli

ALICE, BOB = "alice-key-0123456789abcdef", "bob-key-0123456789abcdefgh"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tiny_llama_dir, tmp_path_factory):
    import torch
    import uvicorn

    from aipc.serve.server import ServeOptions, build, check

    d = tmp_path_factory.mktemp("access")
    keys = d / "keys.txt"
    keys.write_text(f"alice:{ALICE}\nbob:{BOB}\n")
    threads = torch.get_num_threads()
    opts = ServeOptions(model=str(tiny_llama_dir), port=_free_port(), api_key_file=str(keys), requests_per_min=3,
                        audit_log=str(d / "audit.jsonl"), audit_content=True, max_batch=2, max_len=128, threads=1)
    access = check(opts)
    app, engine, cfg, _ = build(opts, access)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=opts.port, log_level="warning"))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    url = f"http://127.0.0.1:{opts.port}"
    for _ in range(200):
        try:
            httpx.get(url + "/health", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.05)
    yield {"url": url, "keys": keys, "audit": d / "audit.jsonl", "model": cfg.model_name}
    server.should_exit = True
    th.join(30)
    torch.set_num_threads(threads)


def _complete(s, key, prompt="hi"):
    return httpx.post(s["url"] + "/v1/completions", headers={"Authorization": f"Bearer {key}"}, timeout=30,
                      json={"model": s["model"], "prompt": prompt, "max_tokens": 2, "temperature": 0})


def test_keys_from_file_rate_limits_and_revocation(served):
    assert _complete(served, ALICE, "alice's words").status_code == 200
    assert _complete(served, BOB).status_code == 200
    assert _complete(served, ALICE).status_code == 200
    assert _complete(served, ALICE).status_code == 200
    r = _complete(served, ALICE)  # 4th request within a minute: over the 3/min limit
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limit_exceeded"
    assert int(r.headers["Retry-After"]) >= 1
    assert _complete(served, BOB).status_code == 200  # limits are per key
    served["keys"].write_text(f"alice:{ALICE}\n")  # revoke bob without a restart
    time.sleep(1.2)  # the key store re-reads the file at most once a second
    r = _complete(served, BOB)
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"


def test_audit_records_who_and_tokens_and_content_only_when_opted_in(served):
    recs = [json.loads(ln) for ln in served["audit"].read_text().splitlines()]
    alice = [r for r in recs if r["key_name"] == "alice"]
    assert {r["status"] for r in alice} == {200, 429}
    ok = [r for r in alice if r["status"] == 200]
    assert all(r["completion_tokens"] == 2 and r["prompt_tokens"] > 0 for r in ok)
    assert any(r.get("prompt") == "alice's words" for r in ok)  # --audit-content was given
    assert ALICE not in served["audit"].read_text()


def test_open_bind_without_key_is_refused(tiny_llama_dir, monkeypatch):
    monkeypatch.delenv("AIPC_API_KEY", raising=False)
    code, out, err = run_cli("serve", str(tiny_llama_dir), "--host", "0.0.0.0")
    assert code == 2 and "API key is required" in err and "Traceback" not in err


def test_short_key_refused(tiny_llama_dir):
    code, out, err = run_cli("serve", str(tiny_llama_dir), "--api-key", "abc")
    assert code == 2 and "too short" in err
