"""The real ``aipc serve`` (uvicorn on a free loopback port, tiny Llama) under a flood of malformed and
oversized requests mixed with valid ones, from 8 client threads: every bad request gets a 4xx, every
good one succeeds with a well-formed answer, the process stays up, and its RSS (psutil) stays within a
stated bound. Then two ``aipc bench`` processes and an ``aipc loadtest`` (against this server) write
one results database at once — and a stress round of the same write paths — with no row lost.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import random
import socket
import subprocess
import sys
import time

import httpx
import psutil
import pytest
from helpers import free_port as _free_port
from helpers import serving, tiny_profile_home
from fuzz_book import record, scale

KEY = "fault-test-key-0123456789"
MAX_BODY = 65536
MAX_PROMPT = 128
MAX_TOKENS = 32
MIB = 2**20
# RSS bound: after a warm-up of valid requests, the whole flood may add at most this much, and the second
# half of the flood at most RSS_HALF (a leak proportional to requests would break the second bound first).
RSS_TOTAL_MARGIN = 64 * MIB
RSS_HALF_MARGIN = 32 * MIB


@pytest.fixture(scope="module")
def server(tiny_llama_dir, tmp_path_factory):
    port = _free_port()
    home = tmp_path_factory.mktemp("serve-home")
    log = home / "server.log"
    env = {**os.environ, "AIPC_API_KEY": KEY, "AIPC_HOME": str(home), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "aipc", "serve", str(tiny_llama_dir), "--port", str(port), "--threads", "1",
           "--max-batch", "4", "--max-len", "192", "--max-tokens", str(MAX_TOKENS), "--max-prompt-tokens",
           str(MAX_PROMPT), "--max-body-bytes", str(MAX_BODY), "--served-name", "tiny", "--quiet"]
    with serving(cmd, env, log, port, start_timeout=180) as (url, proc):
        yield {"url": url, "port": port, "proc": proc, "log": log}


# ------------------------------------------------------------------ requests

AUTH = {"Authorization": f"Bearer {KEY}"}
JSON_H = {**AUTH, "Content-Type": "application/json"}


def _completion(rnd: random.Random) -> dict:
    return {"model": "tiny", "prompt": rnd.choice(["Hello", "The quick brown fox", "1 2 3", "héllo wörld ✓"]),
            "max_tokens": rnd.randint(1, 8), "temperature": rnd.choice([0, 0.7]), "seed": rnd.randint(0, 99)}


def _chat(rnd: random.Random) -> dict:
    return {"model": "tiny", "messages": [{"role": "user", "content": rnd.choice(["hi", "what is 2+2?"])}],
            "max_tokens": rnd.randint(1, 8), "temperature": 0}


def good_requests(rnd: random.Random):
    """(label, method, path, kwargs, check) of requests that must succeed."""
    def tokens_ok(d, body):  # a sampled end-of-sequence first token ends a request with 0 tokens, "stop"
        n, reason = d["usage"]["completion_tokens"], d["choices"][0]["finish_reason"]
        assert 0 <= n <= body["max_tokens"] and reason in ("stop", "length") and (n or reason == "stop")

    def completion_ok(r, body):
        d = r.json()
        assert d["object"] == "text_completion" and isinstance(d["choices"][0]["text"], str)
        tokens_ok(d, body)

    def chat_ok(r, body):
        d = r.json()
        assert d["choices"][0]["message"]["role"] == "assistant"
        tokens_ok(d, body)

    def stream_ok(r, body):
        lines = [x for x in r.text.splitlines() if x.startswith("data: ")]
        assert lines[-1] == "data: [DONE]" and all(json.loads(x[6:]) for x in lines[:-1])

    kinds = []
    b = _completion(rnd)
    kinds.append(("completion", "POST", "/v1/completions", {"json": b}, lambda r, b=b: completion_ok(r, b)))
    b = _chat(rnd)
    kinds.append(("chat", "POST", "/v1/chat/completions", {"json": b}, lambda r, b=b: chat_ok(r, b)))
    b = {**_completion(rnd), "stream": True}
    kinds.append(("completion stream", "POST", "/v1/completions", {"json": b}, lambda r, b=b: stream_ok(r, b)))
    b = {**_completion(rnd), "prompt": [rnd.randint(3, 300) for _ in range(rnd.randint(1, 20))]}
    kinds.append(("token-id prompt", "POST", "/v1/completions", {"json": b}, lambda r, b=b: completion_ok(r, b)))
    kinds.append(("models", "GET", "/v1/models", {}, lambda r: r.json()["data"][0]["id"] == "tiny" or 1 / 0))
    kinds.append(("health", "GET", "/health", {}, lambda r: r.json()["status"] == "ok" or 1 / 0))
    label, method, path, kw, check = rnd.choice(kinds)
    return label, method, path, {**kw, "headers": AUTH}, check


def _chunks(data: bytes, size: int = 16384):
    for i in range(0, len(data), size):
        yield data[i:i + size]


def bad_requests(rnd: random.Random):
    """(label, method, path, kwargs, None) of requests that must get a 4xx."""
    valid = json.dumps(_completion(rnd)).encode()
    big_prompt = "x" * rnd.randint(MAX_BODY, 2 * MIB)
    huge = json.dumps({"model": "tiny", "prompt": big_prompt}).encode()
    c = _completion(rnd)
    cases = [
        ("truncated JSON", {"content": valid[: rnd.randint(1, len(valid) - 1)], "headers": JSON_H}),
        ("not UTF-8", {"content": b"\xff\xfe{\"model\": \"tiny\"}", "headers": JSON_H}),
        ("empty body", {"content": b"", "headers": JSON_H}),
        ("JSON not an object", {"content": rnd.choice([b"[1, 2]", b"\"tiny\"", b"42", b"null"]), "headers": JSON_H}),
        ("missing prompt", {"json": {"model": "tiny"}}),
        ("missing model", {"json": {"prompt": "hi"}}),
        ("wrong types", {"json": {**c, rnd.choice(["max_tokens", "temperature", "top_p", "stream", "seed", "stop"]):
                                  rnd.choice([[1], {"a": 1}, -5.5])}}),
        ("out of range", {"json": {**c, **rnd.choice([{"temperature": 9}, {"top_p": 0}, {"max_tokens": 0},
                                                       {"max_tokens": 10**6}, {"n": 3}, {"logprobs": 5},
                                                       {"echo": True}, {"stop": ["a"] * 9}, {"top_k": -7}])}}),
        ("unknown model", {"json": {**c, "model": "gpt-9"}}),
        ("oversized body", {"content": huge, "headers": JSON_H}),
        ("oversized chunked body", {"content": _chunks(huge), "headers": JSON_H}),
        ("prompt over the token limit", {"json": {**c, "prompt": "y" * (MAX_PROMPT + rnd.randint(1, 500))}}),
        ("deep nesting", {"content": b"[" * 100_000 + b"]" * 100_000, "headers": JSON_H}),
        ("absurd number", {"content": valid.replace(b"\"max_tokens\": ", b"\"max_tokens\": 1e400, \"x\": "),
                           "headers": JSON_H}),
        ("token ids out of range", {"json": {**c, "prompt": [rnd.choice([-1, 10**9, 2**70])]}}),
        ("bad chat", {"json": {"model": "tiny", "max_tokens": 4, "messages": rnd.choice(
            [[], [{"role": "robot", "content": "x"}], [{"role": "user", "content": 5}], "hi",
             [{"role": "user", "content": [{"type": "image_url", "image_url": "x"}]}]])}}),
        ("no API key", {"json": c, "headers": {}}),
        ("wrong API key", {"json": c, "headers": {"Authorization": "Bearer wrong-key-0123456789"}}),
    ]
    label, kw = rnd.choice(cases)
    path = "/v1/chat/completions" if label == "bad chat" else "/v1/completions"
    kw = {"headers": AUTH, **kw}
    extra = rnd.choice([None] * 12 + ["unknown endpoint", "wrong method", "garbage request line", "huge length"])
    if extra == "unknown endpoint":
        return ("unknown endpoint", "POST", "/v1/embeddings", {"json": c, "headers": AUTH}, None)
    if extra == "wrong method":
        return ("wrong method", "GET", "/v1/completions", {"headers": AUTH}, None)
    if extra == "garbage request line":
        return ("garbage request line", "RAW", b"GARBAGE \x00\xff HTTP/1.1\r\n\r\n", {}, None)
    if extra == "huge length":
        return ("Content-Length 10^12", "RAW", (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                                                + KEY.encode() + b"\r\nContent-Length: 1000000000000\r\n\r\n{}"), {}, None)
    return (label, "POST", path, kw, None)


def _raw(port: int, data: bytes) -> int:
    """Send raw bytes; the status code of the answer (0 when the server just closed the connection)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(data)
        head = b""
        while b"\r\n" not in head:
            chunk = s.recv(4096)
            if not chunk:
                return 0
            head += chunk
    return int(head.split(b" ", 2)[1])


def flood(url: str, port: int, pid: int, n: int, seed: int, threads: int = 8) -> dict:
    rnd = random.Random(seed)
    plan = [("good", *good_requests(rnd)) if rnd.random() < 0.4 else ("bad", *bad_requests(rnd)) for _ in range(n)]
    proc = psutil.Process(pid)
    client = httpx.Client(base_url=url, timeout=120, limits=httpx.Limits(max_connections=threads * 2))
    for _ in range(20):  # warm-up: the first requests allocate caches that stay
        assert client.post("/v1/completions", json=_completion(rnd), headers=AUTH).status_code == 200
    rss = {"warm": proc.memory_info().rss}
    failures, statuses = [], {}

    def one(item):
        want, label, method, path, kw, check = item
        try:
            if method == "RAW":
                status = _raw(port, path)
                r = None
            else:
                r = client.request(method, path, **kw)
                status = r.status_code
        except httpx.HTTPError as e:
            return want, label, f"client error {type(e).__name__}: {e}"
        ok = status == 200 if want == "good" else 400 <= status < 500
        if ok and check is not None:
            try:
                check(r)
            except Exception as e:  # a malformed answer to a good request
                return want, label, f"bad answer: {type(e).__name__} {e}: {r.text[:200]}"
        if ok and want == "bad" and r is not None:
            err = r.json().get("error", {})
            ok = isinstance(err.get("message"), str) and err["message"]
        return want, label, None if ok else f"status {status}: {'' if r is None else r.text[:200]}"

    t0 = time.perf_counter()
    half = n // 2
    with cf.ThreadPoolExecutor(threads) as pool:
        for i, (want, label, err) in enumerate(pool.map(one, plan)):
            statuses.setdefault(f"{want}: {label}", 0)
            statuses[f"{want}: {label}"] += 1
            if err:
                failures.append(f"{want} {label}: {err}")
            if i == half:
                rss["half"] = proc.memory_info().rss
    rss["end"] = proc.memory_info().rss
    alive = proc.is_running() and client.get("/health").status_code == 200
    client.close()
    return {"requests": n, "good": sum(1 for p in plan if p[0] == "good"), "bad": sum(1 for p in plan if p[0] == "bad"),
            "failures": failures, "by_kind": dict(sorted(statuses.items())), "alive": alive,
            "rss_mib": {k: round(v / MIB, 1) for k, v in rss.items()}, "seconds": round(time.perf_counter() - t0, 1),
            "rss_bound": f"end <= warm + {RSS_TOTAL_MARGIN // MIB} MiB and end <= half + {RSS_HALF_MARGIN // MIB} MiB"}


def test_server_survives_malformed_and_oversized_requests(server):
    n = scale(200, 1000)
    out = flood(server["url"], server["port"], server["proc"].pid, n, seed=random.randrange(2**31) if n > 200 else 7)
    record("faults: server flood (aipc serve)", **{k: v for k, v in out.items() if k != "failures"},
           failures=out["failures"][:20], failed=len(out["failures"]))
    assert not out["failures"], "\n".join(out["failures"][:20])
    assert out["alive"] and server["proc"].poll() is None
    assert "Traceback" not in server["log"].read_text(), server["log"].read_text()[-3000:]
    warm, half, end = (out["rss_mib"][k] * MIB for k in ("warm", "half", "end"))
    assert end <= warm + RSS_TOTAL_MARGIN and end <= half + RSS_HALF_MARGIN, out["rss_mib"]
    assert out["bad"] > n // 3 and out["good"] > n // 5


# ------------------------------------------------------------------ concurrent writers of the results DB

STRESS_WRITER = r'''
import json, os, sys, time
from pathlib import Path
kind, n, db, go = sys.argv[1], int(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
while not go.exists():
    time.sleep(0.001)
ids = []
if kind == "loadtest":
    from aipc.serve.loadtest import store
    for i in range(n):  # exactly what `aipc loadtest` stores, one level at a time
        ids += store([{"scenario": f"concurrency={i}", "target": "http://127.0.0.1:1", "model": "tiny",
                       "workload": {"i": i}, "metrics": {"requests": i}, "samples": [{"ttft_s": 0.1}]}], db)
else:
    from aipc.bench.store import ResultsDB
    rdb = ResultsDB(db)
    for i in range(n):  # the call `aipc bench` makes per measured scenario
        ids.append(rdb.add_run(kind="bench", scenario="decode", device="cpu", model=kind, workload={"i": i},
                               metrics={"median_s": 0.01 * (i + 1)}, samples=[0.01] * 8, context={"writer": kind}))
print(json.dumps(ids))
'''


def test_two_benches_and_a_loadtest_write_one_database_at_once(server, tmp_path):
    from aipc.bench.store import ResultsDB
    from aipc.models.tiny import tiny_config

    home = tmp_path / "home"
    with tiny_profile_home(home):  # the benches read it
        pass
    cfg = tmp_path / "llama.json"
    cfg.write_text(json.dumps(tiny_config("llama")))
    db = tmp_path / "results.sqlite"
    env = {**os.environ, "AIPC_HOME": str(home), "AIPC_API_KEY": KEY, "OMP_NUM_THREADS": "1"}
    bench = [sys.executable, "-m", "aipc", "bench", str(cfg), "--device", "cpu", "--scenario",
             "train,prefill,decode,generate", "--quick", "--threads", "1", "--prompt-tokens", "8", "--gen-tokens", "4",
             "--seq-len", "16", "--max-time", "0.5", "--db", str(db), "--json"]
    load = [sys.executable, "-m", "aipc", "loadtest", server["url"], "-c", "1,2,3,4", "-n", "6", "--max-tokens", "4",
            "--db", str(db), "--json"]
    procs = {name: subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name, cmd in (("bench 1", bench), ("bench 2", bench), ("loadtest", load))}
    outs = {name: p.communicate(timeout=300) for name, p in procs.items()}
    for name, p in procs.items():
        assert p.returncode == 0, f"{name}: {outs[name][1][-3000:]}"
    wrote = {name: [r["run_id"] for r in json.loads(outs[name][0])["results"]] for name in ("bench 1", "bench 2")}
    wrote["loadtest"] = json.loads(outs["loadtest"][0])["stored"]
    rows = {r["id"]: r for r in ResultsDB(db).runs()}
    for name, ids in wrote.items():
        assert ids and all(i in rows for i in ids), f"{name}: rows lost"
    assert len(rows) == sum(map(len, wrote.values())) == 12  # 4 scenarios x 2 benches + 4 load levels
    assert sorted(r["kind"] for r in rows.values()).count("loadtest") == 4

    # stress: the same write paths, three processes released at once, many rows each
    n = scale(150, 1000)
    go = tmp_path / "go"
    sdb = tmp_path / "stress.sqlite"
    writers = {kind: subprocess.Popen([sys.executable, "-c", STRESS_WRITER, kind, str(n), str(sdb), str(go)],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for kind in ("bench-a", "bench-b", "loadtest")}
    time.sleep(2.0)  # let all three import and wait at the gate
    t0 = time.perf_counter()
    go.touch()
    souts = {k: p.communicate(timeout=300) for k, p in writers.items()}
    seconds = time.perf_counter() - t0
    for k, p in writers.items():
        assert p.returncode == 0, f"{k}: {souts[k][1][-3000:]}"
    ids = {k: json.loads(souts[k][0]) for k in writers}
    srows = ResultsDB(sdb).runs()
    per_writer = {k: sum(1 for r in srows if r["id"] in set(v)) for k, v in ids.items()}
    assert per_writer == {k: n for k in writers}, per_writer
    assert len(srows) == 3 * n
    counted = {"bench-a": sum(r["model"] == "bench-a" for r in srows), "bench-b": sum(r["model"] == "bench-b" for r in srows),
               "loadtest": sum(r["kind"] == "loadtest" for r in srows)}
    assert counted == {k: n for k in writers}, counted
    record("faults: concurrent results-DB writers", real_commands={k: len(v) for k, v in wrote.items()},
           real_rows=len(rows), stress_rows_per_writer=per_writer, stress_total=len(srows),
           stress_seconds=round(seconds, 1))
