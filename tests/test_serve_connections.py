"""The real ``aipc serve`` (uvicorn on a free loopback port, tiny Llama) against slow, idle, vanishing
and hostile clients driven with raw sockets: header and body read timeouts, the connection limit
(idle connections evicted, a clear 503 when all are busy), a client that disconnects mid-body logged
as one line, and a flood of idle / slow connections and malformed HTTP while /health keeps answering
within 1 s and the log stays small. Plus the serve options refused at parse time."""

from __future__ import annotations

import os
import socket
import sys
import threading
import time

import httpx
import psutil
import pytest
from fuzz_book import record, scale
from helpers import free_port, run_cli, serving

from aipc.serve.connections import open_files_needed

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
MAX_CONNECTIONS = 256
LOG_GROWTH_LIMIT = 1 << 20


@pytest.fixture(scope="module")
def server(tiny_llama_dir, tmp_path_factory):
    port = free_port()
    home = tmp_path_factory.mktemp("conn-home")
    log = home / "server.log"
    env = {**os.environ, "AIPC_HOME": str(home), "OMP_NUM_THREADS": "1"}
    env.pop("AIPC_API_KEY", None)
    cmd = [sys.executable, "-m", "aipc", "serve", str(tiny_llama_dir), "--port", str(port), "--threads", "1",
           "--max-batch", "4", "--max-len", "128", "--served-name", "tiny", "--header-timeout", str(HEADER_TIMEOUT),
           "--body-timeout", str(BODY_TIMEOUT), "--max-connections", str(MAX_CONNECTIONS)]
    with serving(cmd, env, log, port, start_timeout=180) as (url, proc):
        yield {"url": url, "port": port, "proc": proc, "log": log}


def _connect(port: int, data: bytes = b"") -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    if data:
        s.sendall(data)
    return s


def _until_closed(s: socket.socket, limit_s: float = 10.0) -> tuple[bytes, float]:
    """(everything the server sent, seconds until it closed the connection)."""
    t0, out = time.perf_counter(), b""
    s.settimeout(limit_s)
    try:
        while chunk := s.recv(65536):
            out += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return out, time.perf_counter() - t0


def _log_since(server, offset: int) -> str:
    return server["log"].read_bytes()[offset:].decode("utf-8", "replace")


def test_stalled_headers_are_cut_off_after_the_header_timeout(server):
    s = _connect(server["port"], b"GET /health HTTP/1.1\r\nHost: x\r\n")
    t0 = time.perf_counter()
    for ch in b"X-Slow: 1234567":  # slow-loris: a byte every 0.2 s, never finishing the headers
        try:
            s.send(bytes([ch]))
        except OSError:
            break
        time.sleep(0.2)
        if time.perf_counter() - t0 > HEADER_TIMEOUT + 3:
            break
    got, _ = _until_closed(s)
    took = time.perf_counter() - t0
    assert got.startswith(b"HTTP/1.1 408 ") and b'"code": "request_timeout"' in got, got
    assert HEADER_TIMEOUT - 0.1 <= took <= HEADER_TIMEOUT + 3


def test_stalled_body_is_cut_off_after_the_body_timeout(server):
    offset = server["log"].stat().st_size
    s = _connect(server["port"], b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: 200\r\n\r\n{\"model\": \"tiny\", ")
    got, took = _until_closed(s)
    assert got.startswith(b"HTTP/1.1 408 ") and b"request body did not arrive within 1 s" in got, got
    assert BODY_TIMEOUT - 0.1 <= took <= BODY_TIMEOUT + 3
    time.sleep(0.3)
    log = _log_since(server, offset)
    assert log.count("request body not received within 1 s") == 1 and "Traceback" not in log, log


def test_client_gone_mid_body_is_one_log_line(server):
    """Issue 14.11: not an internal error with two tracebacks, one line saying what happened."""
    offset = server["log"].stat().st_size
    s = _connect(server["port"], b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: 500\r\n\r\n{\"model\": \"tiny\", \"prompt\": \"ab")
    time.sleep(0.3)
    s.close()
    time.sleep(0.5)
    assert httpx.get(server["url"] + "/health", timeout=5).status_code == 200
    lines = [ln for ln in _log_since(server, offset).splitlines() if "GET /health" not in ln]
    assert len(lines) == 1 and "client disconnected" in lines[0] and "31 bytes received" in lines[0], lines


@pytest.fixture(scope="module")
def small_server(tiny_llama_dir, tmp_path_factory):
    """A server with room for 16 connections and long timeouts: busy ones stay busy while the test looks."""
    port = free_port()
    home = tmp_path_factory.mktemp("small-home")
    env = {**os.environ, "AIPC_HOME": str(home), "OMP_NUM_THREADS": "1"}
    env.pop("AIPC_API_KEY", None)
    cmd = [sys.executable, "-m", "aipc", "serve", str(tiny_llama_dir), "--port", str(port), "--threads", "1",
           "--max-batch", "2", "--max-len", "64", "--served-name", "tiny", "--max-connections", "16",
           "--header-timeout", "30", "--body-timeout", "30"]
    with serving(cmd, env, home / "server.log", port, start_timeout=180) as (url, proc):
        yield {"url": url, "port": port}


def _health_status(url: str, want: int, within_s: float = 10.0) -> int:
    deadline, status = time.perf_counter() + within_s, None
    while time.perf_counter() < deadline and status != want:
        status = httpx.get(url + "/health", timeout=5).status_code
        if status != want:
            time.sleep(0.2)
    return status


def test_connection_limit_refuses_clearly_when_all_are_busy_and_evicts_idle_ones(small_server):
    port, url = small_server["port"], small_server["url"]
    busy = [_connect(port, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
            for _ in range(16)]  # every slot holds a request whose body is still coming
    time.sleep(1.0)
    r = httpx.get(url + "/health", timeout=5)
    assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1, r.text
    assert r.json()["error"]["code"] == "too_many_connections" and "16 connections" in r.json()["error"]["message"]
    for s in busy[:4]:  # clients that give up free their slots
        s.close()
    assert _health_status(url, 200) == 200
    for s in busy[4:]:
        s.close()
    idle = [_connect(port) for _ in range(16 + 10)]  # more idle connections than the limit
    t0 = time.perf_counter()
    assert httpx.get(url + "/health", timeout=1).status_code == 200
    assert time.perf_counter() - t0 < 1.0
    evicted = sum(1 for s in idle[:10] if _until_closed(s, 5)[0].startswith(b"HTTP/1.1 503 "))
    assert evicted == 10  # the oldest idle ones made room, each told why
    for s in idle:
        s.close()


# ------------------------------------------------------------------ the flood (issue 14.12's numbers)

HOSTILE = {
    "garbage request line": b"GARBAGE \x00\xff HTTP/1.1\r\n\r\n",
    "binary noise": bytes(range(256)) * 2,
    "TLS hello on plain HTTP": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64),
    "HTTP/2 preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    "bad version": b"GET /health HTTP/9.9\r\nHost: x\r\n\r\n",
    "URL over 16 KiB": b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "header over 16 KiB": b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: " + b"b" * 20000 + b"\r\n\r\n",
    "header without colon": b"GET /health HTTP/1.1\r\nHost: x\r\nX-Bad\r\n\r\n",
    "CR inside a header": b"GET /health HTTP/1.1\r\nHost: x\r\nX-I: a\rb\r\n\r\n",
    "negative Content-Length": b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    "two Content-Lengths": b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
    "bad chunk size": b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    "chunked + Content-Length": b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                                b"Content-Length: 3\r\n\r\n0\r\n\r\n",
    "Content-Length 10^20": b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n{",
    "100-continue for 50 MB": b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                              b"Content-Length: 50000000\r\n\r\n",
    "broken JSON": b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   b"Content-Length: 7\r\n\r\n{\"a\":[}",
    "deep JSON nesting": b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 40000\r\n\r\n"
                         + b"[" * 20000 + b"]" * 20000,
    "path traversal": b"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
    "unknown method": b"BREW /v1/models HTTP/1.1\r\nHost: x\r\n\r\n",
    "websocket upgrade": b"GET /health HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    "10 pipelined requests": b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n" * 10,
}


def _hostile(port: int, payload: bytes) -> str:
    """Send one hostile request; 'status NNN', 'closed' (no answer) or 'hung' (nothing within 5 s)."""
    try:
        s = _connect(port)
        s.settimeout(5)
        try:
            s.sendall(payload)
        except OSError:
            pass  # the server may answer (400) and close before reading it all
        got = b""
        while b"\r\n" not in got:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
        s.close()
    except TimeoutError:
        return "hung"
    except OSError:
        return "closed"
    return f"status {got.split(b' ', 2)[1].decode()}" if got.startswith(b"HTTP/1.1 ") else "closed"


HEALTH_POLLER = r"""
import json, os, sys, time
import httpx, psutil
url, pid, out, stop = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
server = psutil.Process(pid)
with open(out, "w") as f:
    while not os.path.exists(stop):
        t0 = time.perf_counter()
        try:
            status = httpx.get(url + "/health", timeout=1.0).status_code
        except httpx.HTTPError as e:
            status = type(e).__name__
        f.write(json.dumps([time.perf_counter() - t0, status, server.num_fds()]) + "\n")
        f.flush()
        time.sleep(0.1)
"""


class Health:
    """Polls /health on a fresh connection every 0.1 s with a 1 s limit, from its own process (so the
    flood's threads in this one cannot delay it), and samples the server's descriptors."""

    def __init__(self, url: str, pid: int, folder):
        import subprocess

        self.out, self.stop = folder / "health.jsonl", folder / "health.stop"
        self.proc = subprocess.Popen([sys.executable, "-c", HEALTH_POLLER, url, str(pid), str(self.out), str(self.stop)])
        while not (self.out.exists() and self.out.read_text().strip()):  # polling before the flood starts
            time.sleep(0.05)

    def finish(self) -> None:
        import json

        self.stop.touch()
        self.proc.wait(30)
        rows = [json.loads(ln) for ln in self.out.read_text().splitlines()]
        self.latencies = [t for t, _, _ in rows]
        self.failures = [f"{st} after {t:.2f} s" for t, st, _ in rows if st != 200 or t >= 1.0]
        self.peak_fds = max(n for _, _, n in rows)


class SlowClients(threading.Thread):
    """Opens ``idle`` connections that send nothing, ``loris`` that trickle header bytes and ``bodies``
    that trickle a body, then keeps trickling until the server has closed every one of them."""

    LORIS = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: "
    BODY = b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n{"

    def __init__(self, port: int, idle: int, loris: int, bodies: int, deadline_s: float):
        super().__init__(daemon=True)
        self.port, self.plan, self.deadline_s = port, ["idle"] * idle + ["loris"] * loris + ["body"] * bodies, deadline_s
        self.ended: dict[str, list] = {"idle": [], "loris": [], "body": []}  # (answer, seconds open)
        self.left_open = 0

    def run(self):
        open_ = []
        for i, kind in enumerate(self.plan):
            s = _connect(self.port, {"idle": b"", "loris": self.LORIS, "body": self.BODY}[kind])
            s.setblocking(False)
            open_.append((kind, s, time.perf_counter(), bytearray()))
            if i % 100 == 99:  # 2,000 in about 2 s: a flood, not one burst through the accept queue
                time.sleep(0.1)
        t_end = time.perf_counter() + self.deadline_s
        while open_ and time.perf_counter() < t_end:
            open_ = [c for c in open_ if not self._step(*c)]
            time.sleep(0.4)
        self.left_open = len(open_)
        for _, s, _, _ in open_:
            s.close()

    def _step(self, kind, s, t0, got) -> bool:
        """Trickle one byte and read; True once the server closed the connection."""
        try:
            if kind != "idle":
                s.send(b"a")
            while chunk := s.recv(4096):
                got += chunk
        except BlockingIOError:
            return False
        except OSError:
            pass
        answer = got.split(b" ", 2)[1].decode() if got.startswith(b"HTTP/1.1 ") else "closed"
        self.ended[kind].append((answer, time.perf_counter() - t0))
        s.close()
        return True


def _raise_fd_limit(need: int) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))


def test_flood_of_idle_slow_and_hostile_connections(server, tmp_path):
    n_conn, n_hostile = 2000, scale(400, 1200)
    _raise_fd_limit(n_conn + 512)
    port, log0 = server["port"], server["log"].stat().st_size
    slow = SlowClients(port, idle=1450, loris=400, bodies=150, deadline_s=20)
    statuses: dict[str, dict[str, int]] = {}
    kinds = list(HOSTILE)

    def hostile(worker: int):
        for i in range(worker, n_hostile, 2):
            kind = kinds[i % len(kinds)]
            out = _hostile(port, HOSTILE[kind])
            statuses.setdefault(kind, {}).setdefault(out, 0)
            statuses[kind][out] += 1

    health = Health(server["url"], server["proc"].pid, tmp_path)
    t0 = time.perf_counter()
    slow.start()
    workers = [threading.Thread(target=hostile, args=(w,)) for w in range(2)]
    [w.start() for w in workers]
    [w.join(120) for w in workers]
    slow.join(60)
    time.sleep(0.5)
    health.finish()
    seconds = time.perf_counter() - t0
    growth = server["log"].stat().st_size - log0
    log = _log_since(server, log0)
    outcomes = [o for per in statuses.values() for o in per]
    timed = {k: [t for a, t in v if a == "408"] for k, v in slow.ended.items()}
    out = {"connections": len(slow.plan), "hostile_requests": n_hostile, "seconds": round(seconds, 1),
           "health_polls": len(health.latencies), "health_failures": health.failures[:10],
           "health_max_s": round(max(health.latencies), 3), "log_growth_bytes": growth,
           "server_peak_fds": health.peak_fds, "left_open": slow.left_open,
           "slow_outcomes": {k: _tally(a for a, _ in v) for k, v in slow.ended.items()},
           "cut_after_s_max": {k: round(max(v), 2) if v else None for k, v in timed.items()},
           "hostile_outcomes": statuses, "max_connections": MAX_CONNECTIONS, "header_timeout_s": HEADER_TIMEOUT,
           "body_timeout_s": BODY_TIMEOUT, "load_avg": [round(x, 2) for x in os.getloadavg()]}
    record("faults: server connections (aipc serve)", **out)
    assert server["proc"].poll() is None and not health.failures, out
    assert max(health.latencies) < 1.0 and len(health.latencies) >= 10, out
    assert growth <= LOG_GROWTH_LIMIT and "Traceback" not in log, (growth, log[-3000:])
    assert slow.left_open == 0, out  # every idle or slow connection was closed by the server
    for kind, limit in (("loris", HEADER_TIMEOUT), ("body", BODY_TIMEOUT)):
        assert all(limit - 0.1 <= t <= limit + 3 for t in timed[kind]), out  # cut off at the timeout
    assert timed["body"], out  # the busy slow bodies were not evicted: they met the body timeout
    assert not any(o == "hung" or o.startswith("status 5") for o in outcomes), out
    assert health.peak_fds <= open_files_needed(MAX_CONNECTIONS), out


def _tally(items) -> dict[str, int]:
    out: dict[str, int] = {}
    for x in items:
        out[x] = out.get(x, 0) + 1
    return out


# ------------------------------------------------------------------ options and start-up errors


def _loaded(*a, **k):  # reaching the model load means the option (or the port) got through
    raise AssertionError("the model was loaded")


@pytest.mark.parametrize("args, msg", [
    (["--rate-limit-rpm", "nan"], "--rate-limit-rpm"),
    (["--rate-limit-rpm", "-1"], "--rate-limit-rpm"),
    (["--rate-limit-tpm", "inf"], "--rate-limit-tpm"),
    (["--rate-limit-tpm", "0"], "--rate-limit-tpm"),
    (["--graceful-timeout", "nan"], "--graceful-timeout"),
    (["--graceful-timeout", "-3"], "--graceful-timeout"),
    (["--header-timeout", "0"], "--header-timeout"),
    (["--body-timeout", "nan"], "--body-timeout"),
    (["--max-connections", "0"], "--max-connections"),
    (["--max-connections", "100000000"], "--max-connections"),
    (["--port", "70000"], "--port"),
    (["--max-body-bytes", "0"], "--max-body-bytes"),
    (["--max-batch", "999999"], "--max-batch"),
    (["--host", "not-a-host.invalid"], "--host"),
    (["--host", ""], "--host"),
    (["--served-name", " "], "--served-name"),
    (["--audit-log", "{tmp}"], "is a folder"),
    (["--max-queue", "0"], "--max-queue"),
    (["--audit-log", "{tmp}/no/such/dir/audit.jsonl"], "does not exist"),
    (["--api-key-file", "{tmp}"], "--api-key-file"),
])
def test_bad_serve_options_are_refused_before_anything_loads(tiny_llama_dir, tmp_path, monkeypatch, args, msg):
    monkeypatch.setattr("aipc.serve.server.build", _loaded)
    code, out, err = run_cli("serve", str(tiny_llama_dir), *[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert code == 2 and err.startswith("error: ") and msg in err and err.count("\n") == 1, err
    assert "Traceback" not in err and out == ""


@pytest.mark.parametrize("field, value, msg", [
    ("requests_per_min", float("nan"), "--rate-limit-rpm"), ("tokens_per_min", -1.0, "--rate-limit-tpm"),
    ("graceful_timeout_s", float("inf"), "--graceful-timeout"), ("header_timeout_s", 0.0, "--header-timeout"),
    ("max_connections", 0, "--max-connections"), ("port", 70000, "--port"), ("host", "example.com", "--host"),
])
def test_library_callers_get_the_same_checks(tiny_llama_dir, field, value, msg):
    from aipc.errors import AipcError
    from aipc.serve.server import ServeOptions, check

    with pytest.raises(AipcError, match=msg):
        check(ServeOptions(model=str(tiny_llama_dir), **{field: value}))


def test_port_in_use_and_foreign_address_fail_before_the_model_loads(tiny_llama_dir, monkeypatch):
    monkeypatch.setattr("aipc.serve.server.build", _loaded)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out, err = run_cli("serve", str(tiny_llama_dir), "--port", str(port))
        assert code == 2 and f"port {port} on 127.0.0.1 is already in use" in err and err.count("\n") == 1, err
    code, out, err = run_cli("serve", str(tiny_llama_dir), "--host", "192.0.2.1", "--api-key", "k" * 20)
    assert code == 2 and "not an address of this machine" in err and err.count("\n") == 1, err


@pytest.mark.parametrize("args, msg", [(["--host", "not-a-host.invalid"], "is not an IP address"),
                                       (["--port", "{taken}"], "already in use")])
def test_start_up_errors_of_the_real_command_are_one_line(tiny_llama_dir, args, msg):
    """Issue 14.4: these printed a CancelledError traceback / uvicorn's multi-line log with exit 3."""
    import subprocess

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        argv = [a.replace("{taken}", str(taken.getsockname()[1])) for a in args]
        r = subprocess.run([sys.executable, "-m", "aipc", "serve", str(tiny_llama_dir), *argv], capture_output=True,
                           text=True, timeout=120)
    assert r.returncode == 2 and r.stdout == "", (r.stdout, r.stderr)
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1 and msg in r.stderr, r.stderr


# ------------------------------------------------------------------ out of file descriptors

EMFILE_CHILD = r'''
import logging, resource, socket, sys
import uvicorn
from aipc.serve.connections import ACCEPT_BATCH, ConnectionLimits, Server, install_log_limits, protocol_class

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

async def app(scope, receive, send):  # a trivial ASGI app: the protocol and the event loop are under test
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        return await send({"type": "lifespan.shutdown.complete"})
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})

sock = socket.socket()
sock.bind(("127.0.0.1", 0))
print(sock.getsockname()[1], flush=True)
resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
config = uvicorn.Config(app, log_level="info", backlog=ACCEPT_BATCH,
                        http=protocol_class(ConnectionLimits(header_timeout_s=60, body_timeout_s=60, max_connections=1000)))
install_log_limits(burst=1, period_s=3.0)
Server(config).run(sockets=[sock])
'''


def test_accept_errors_when_out_of_descriptors_are_rate_limited_one_line_each(tmp_path):
    """The server process may open 64 files and allows 1,000 connections (a misconfiguration the
    parse-time check refuses for ``aipc serve``): 150 idle connections exhaust its descriptors and
    accept() fails with EMFILE about once a second. The log gets one line per 3 s window, not a
    traceback per failure, and the server serves again once connections close."""
    import subprocess

    log = tmp_path / "child.log"
    with log.open("w") as f:
        proc = subprocess.Popen([sys.executable, "-c", EMFILE_CHILD], stdout=subprocess.PIPE, stderr=f, text=True)
    try:
        port = int(proc.stdout.readline())
        url = f"http://127.0.0.1:{port}/"
        for _ in range(100):
            try:
                httpx.get(url, timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        held = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(150)]
        time.sleep(7.5)
        for s in held:
            s.close()
        time.sleep(1.5)  # asyncio retries accept() a second after EMFILE
        status = httpx.get(url, timeout=5).status_code
    finally:
        proc.terminate()
        proc.wait(10)
    text = log.read_text()
    accept = [ln for ln in text.splitlines() if "socket.accept() out of system resource" in ln]
    assert status == 200 and "Traceback" not in text, text[-3000:]
    import re

    left_out = sum(int(n) for n in re.findall(r"\((\d+) more like this", text))
    record("faults: server out of descriptors", held=len(held), seconds=7.5, accept_error_lines=len(accept),
           accept_errors_not_logged=left_out, log_bytes=len(text.encode()))
    assert 2 <= len(accept) <= 4 and all("Too many open files" in ln for ln in accept), text[-3000:]
    assert any("more like this in the previous 3 s not logged" in ln for ln in accept), accept


def test_rate_limited_log_and_short_access_lines():
    import logging

    from aipc.serve.connections import RateLimitedLog, ShortArgs, limited

    now = [0.0]
    f = RateLimitedLog(burst=2, period_s=10, clock=lambda: now[0])

    def rec(msg, extra=None):
        r = logging.LogRecord("aipc.serve", logging.WARNING, __file__, 1, msg, (), None)
        r.__dict__.update(extra or {})
        return r

    passed = [f.filter(rec("refused a connection", limited)) for _ in range(5)]
    assert passed == [True, True, False, False, False]
    assert all(f.filter(rec("POST /v1/completions status=200")) for _ in range(5))  # not marked: never limited
    now[0] = 11.0
    r = rec("refused a connection", limited)
    assert f.filter(r) and r.msg.endswith("(3 more like this in the previous 10 s not logged)")
    r = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                          ("127.0.0.1:5", "GET", "/" + "a" * 5000, "1.1", 404), None)
    assert ShortArgs(100).filter(r) and len(r.getMessage()) < 200 and "(5001 characters)" in r.getMessage()
