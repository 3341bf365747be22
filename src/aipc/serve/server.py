"""Build and run ``aipc serve``: check the options, bind the port, load the model, the batching
engine and the app, then serve with uvicorn (read timeouts and a connection limit on every socket).

The port is bound before the model loads, so an address in use or not of this machine is one
``error:`` line in a second, not a traceback after the load.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from aipc import rules as R
from aipc.errors import AipcError


@dataclass(kw_only=True)
class ServeOptions:
    model: str
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    api_key_file: str | None = None
    requests_per_min: float | None = None
    tokens_per_min: float | None = None
    audit_log: str | None = None
    audit_content: bool = False
    served_name: str | None = None
    dtype: str | None = None
    engine: str | None = None   # torch | llamacpp | openvino (aipc.engines; default: by the model file and --dtype)
    device: str | None = None
    allow_pickle: bool = False              # load pickle weights (pytorch_model*.bin) from the folder
    max_batch: int = 16
    max_len: int | None = None
    max_tokens: int | None = None
    max_prompt_tokens: int | None = None
    max_body_bytes: int = 1 << 20
    max_queue: int = 256
    max_connections: int = 512
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    threads: int | None = None
    graceful_timeout_s: float = 30.0
    log_level: str = "info"
    access_log: bool = True


# The serve-only rules; the CLI applies the same objects (aipc.commands.options, VERB_RULES["serve"]).
SERVE_RULES = {"--max-connections": R.Num(int, ge=1, le=1_000_000), "--header-timeout": R.Num(float, gt=0, le=3600),
               "--body-timeout": R.Num(float, gt=0, le=3600),
               "--max-queue": R.COUNT}  # 0 would answer every request beyond the running ones with 503
# Every checked option: flag, ServeOptions field, rule (the shared ones as the CLI has them for every verb).
OPTION_RULES = (("--port", "port", R.PORT), ("--max-batch", "max_batch", R.Num(int, ge=1, le=1 << 16)),
                ("--max-body-bytes", "max_body_bytes", R.Num(int, ge=1, le=1 << 40)), ("--max-len", "max_len", R.COUNT),
                ("--max-tokens", "max_tokens", R.COUNT), ("--max-prompt-tokens", "max_prompt_tokens", R.COUNT),
                ("--threads", "threads", R.THREADS), ("--rate-limit-rpm", "requests_per_min", R.RATE),
                ("--rate-limit-tpm", "tokens_per_min", R.RATE), ("--graceful-timeout", "graceful_timeout_s", R.SECONDS0),
                ("--api-key-file", "api_key_file", R.PathRule("file")), ("--audit-log", "audit_log", R.PathRule("out-file")),
                ("--max-queue", "max_queue", SERVE_RULES["--max-queue"]),
                ("--max-connections", "max_connections", SERVE_RULES["--max-connections"]),
                ("--header-timeout", "header_timeout_s", SERVE_RULES["--header-timeout"]),
                ("--body-timeout", "body_timeout_s", SERVE_RULES["--body-timeout"]))


def _check_host(host: str) -> None:
    """An IP address or a name that stays on this machine (no DNS query at start-up)."""
    from aipc.privacy.guard import is_local_name

    h = host.strip().strip("[]")
    try:
        ipaddress.ip_address(h.split("%", 1)[0])
        return
    except ValueError:
        pass
    if not h or not is_local_name(h):
        raise AipcError(f"--host {host!r} is not an IP address or 'localhost'; bind 127.0.0.1 (this machine only), "
                        "0.0.0.0 (every interface; needs an API key) or one of this machine's addresses")


def _check_paths(o: ServeOptions) -> None:
    """What the path rules leave to the server: the audit log's folder must exist (it is not made)."""
    if o.audit_log is not None and not Path(o.audit_log).expanduser().parent.is_dir():
        raise AipcError(f"--audit-log folder {Path(o.audit_log).expanduser().parent} does not exist; create it or "
                        "choose another --audit-log")
    if o.served_name is not None and not o.served_name.strip():
        raise AipcError("--served-name is empty; give the model id clients should use, or leave it out")


def check(o: ServeOptions):
    """Validate every option before anything heavy happens; returns the Access object."""
    from aipc.serve.auth import build_access
    from aipc.serve.connections import open_file_hard_limit, open_files_needed

    for flag, field, rule in OPTION_RULES:
        rule.check(flag, getattr(o, field))
    _check_host(o.host)
    _check_paths(o)
    need = open_files_needed(o.max_connections)
    if need > open_file_hard_limit():
        raise AipcError(f"--max-connections {o.max_connections} needs {need} open files but this process may open at "
                        f"most {open_file_hard_limit():.0f}; lower it or raise the limit (ulimit -Hn)")
    return build_access(host=o.host, api_key=o.api_key, key_file=o.api_key_file, requests_per_min=o.requests_per_min,
                        tokens_per_min=o.tokens_per_min, audit_log=o.audit_log, audit_content=o.audit_content)


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port (listening starts when serving); one error line if it cannot be."""
    try:
        infos = socket.getaddrinfo(host.strip().strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise AipcError(f"--host {host}: cannot resolve it ({e.strerror}); use an IP address such as 127.0.0.1") from None
    # 'localhost' may list ::1 first; clients of http://localhost:PORT try 127.0.0.1 as well, not always ::1
    family, kind, proto, _, addr = next((i for i in infos if i[0] == socket.AF_INET), infos[0])
    sock = socket.socket(family, kind, proto)
    if os.name != "nt":  # as uvicorn does: restart at once on a port left in TIME_WAIT
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
    except OSError as e:
        sock.close()
        why = {errno.EADDRINUSE: f"port {port} on {host} is already in use; stop the program using it or pick "
                                 "another --port (--port 0 picks a free one)",
               errno.EADDRNOTAVAIL: f"{host} is not an address of this machine; bind 127.0.0.1, 0.0.0.0 or one of "
                                    "this machine's addresses",
               errno.EACCES: f"binding port {port} needs privileges; use a port above 1023"}
        raise AipcError(why.get(e.errno, f"cannot bind {host}:{port} ({e.strerror})")) from None
    return sock


def _load(o: ServeOptions):
    """(loaded, runner, threads note): the model through aipc.engines, its runner sized to the
    context, the thread count (measured on a CPU unless --threads)."""
    from aipc.engines import load, thread_candidates
    from aipc.engines.generate import pick_threads

    loaded = load(o.model, engine=o.engine, weight_format=o.dtype, device=o.device,
                  max_batch=o.max_batch, threads=o.threads, allow_pickle=o.allow_pickle)
    ctx = int(o.max_len or min(loaded.context or 2048, 4096))
    loaded.resize(max_len=ctx)
    runner = loaded.runner
    note = f"{thread_candidates(runner)[0]} threads" + (" (--threads)" if o.threads else "")
    if not o.threads and getattr(runner, "threads_note", None):  # chosen when the runner was built
        note += f" ({runner.threads_note})"
    if not o.threads and loaded.device == "cpu" and len(thread_candidates(runner)) > 1 and runner.max_len >= 16:
        best, med = pick_threads(runner, thread_candidates(runner), batch=runner.max_batch)
        note = f"{best} threads (measured at batch {runner.max_batch}: " + ", ".join(
            f"{c} → {s * 1e3:.1f} ms/step" for c, s in med.items()) + ")"
    return loaded, runner, note


def build(o: ServeOptions, access):
    """(app, engine, config, loaded) ready for uvicorn."""
    from aipc.serve.app import ServerConfig, create_app
    from aipc.serve.engine import Engine
    from aipc.serve.metrics import ServerMetrics
    from aipc.serve.protocol import Limits

    loaded, runner, threads_note = _load(o)
    ctx = runner.max_len
    metrics = ServerMetrics()
    engine = Engine(runner, loaded.tokenizer, model=loaded.model, max_queue=o.max_queue, metrics=metrics)
    metrics.load_fn = engine.load
    limits = Limits(max_prompt_tokens=min(o.max_prompt_tokens or ctx - 1, ctx - 1),
                    max_tokens=min(o.max_tokens or ctx - 1, ctx - 1), context=ctx)
    scfg = ServerConfig(model_name=o.served_name or loaded.name, limits=limits, max_body_bytes=o.max_body_bytes,
                        threads_note=threads_note)
    return create_app(engine, loaded.tokenizer, scfg, access, metrics), engine, scfg, loaded


def serve(app, sock: socket.socket, o: ServeOptions) -> None:
    """Run uvicorn on ``sock`` until SIGINT/SIGTERM, with the read timeouts and connection limit of ``o``."""
    import uvicorn

    from aipc.serve.connections import (ACCEPT_BATCH, ConnectionLimits, Server, ensure_open_files, install_log_limits,
                                        protocol_class)

    ensure_open_files(o.max_connections)
    limits = ConnectionLimits(header_timeout_s=o.header_timeout_s, body_timeout_s=o.body_timeout_s,
                              max_connections=o.max_connections)
    config = uvicorn.Config(app, log_level=o.log_level, access_log=o.access_log, server_header=False,
                            timeout_graceful_shutdown=o.graceful_timeout_s, http=protocol_class(limits),
                            timeout_keep_alive=min(5.0, o.header_timeout_s), backlog=ACCEPT_BATCH)
    install_log_limits()
    Server(config).run(sockets=[sock])


def run(o: ServeOptions, access=None) -> None:
    """Serve until SIGINT/SIGTERM; then finish in-flight requests (up to the graceful timeout) and exit."""
    access = access if access is not None else check(o)
    sock = bind(o.host, o.port)
    try:
        app, engine, scfg, loaded = build(o, access)
        logging.basicConfig(level=getattr(logging, o.log_level.upper(), logging.INFO),
                            format="%(levelname)s %(name)s: %(message)s")
        _announce(o, sock, engine, scfg, loaded, access)
        serve(app, sock, o)
    finally:
        sock.close()


def _announce(o: ServeOptions, sock, engine, scfg, loaded, access) -> None:
    note = " (random weights: text is noise)" if loaded.random_weights else ""
    kv = engine.runner.kv_bytes_per_token() * engine.runner.max_batch * scfg.limits.context
    print(f"aipc serve: model '{scfg.model_name}'{note}, {loaded.dtype} on {loaded.device}, runner "
          f"{type(engine.runner).__name__}, {engine.runner.max_batch} slots x {scfg.limits.context} tokens "
          f"(KV cache {kv / 1e9:.2f} GB), API key {'required' if access.required else 'not required (loopback only)'}",
          flush=True)
    print(f"aipc serve: threads: {scfg.threads_note}", flush=True)
    host = o.host.strip().strip("[]")
    host = f"[{host}]" if ":" in host else host
    print(f"aipc serve: listening on http://{host}:{sock.getsockname()[1]} (at most {o.max_connections} connections; "
          f"headers within {o.header_timeout_s:g} s, bodies within {o.body_timeout_s:g} s)", flush=True)
