"""Build and run ``aipc serve``: load the model, the batching engine, the app, then uvicorn."""

from __future__ import annotations

import logging
from dataclasses import dataclass

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
    engine: str | None = None   # torch | llamacpp (aipc.engines; default: by the model file and --dtype)
    device: str | None = None
    allow_pickle: bool = False              # load pickle weights (pytorch_model*.bin) from the folder
    max_batch: int = 16
    max_len: int | None = None
    max_tokens: int | None = None
    max_prompt_tokens: int | None = None
    max_body_bytes: int = 1 << 20
    max_queue: int = 256
    threads: int | None = None
    graceful_timeout_s: float = 30.0
    log_level: str = "info"
    access_log: bool = True


def check(o: ServeOptions):
    """Validate options before anything heavy happens; returns the Access object."""
    from aipc.serve.auth import build_access

    if not 0 <= o.port <= 65535:
        raise AipcError(f"--port {o.port} is out of range; use 1-65535 (0 picks a free port)")
    for name, v in (("--max-batch", o.max_batch), ("--max-queue", o.max_queue), ("--max-body-bytes", o.max_body_bytes)):
        if v < 1:
            raise AipcError(f"{name} must be at least 1, got {v}")
    for name, v in (("--max-len", o.max_len), ("--max-tokens", o.max_tokens), ("--max-prompt-tokens", o.max_prompt_tokens),
                    ("--threads", o.threads)):
        if v is not None and v < 1:
            raise AipcError(f"{name} must be at least 1, got {v}")
    return build_access(host=o.host, api_key=o.api_key, key_file=o.api_key_file, requests_per_min=o.requests_per_min,
                        tokens_per_min=o.tokens_per_min, audit_log=o.audit_log, audit_content=o.audit_content)


def build(o: ServeOptions, access):
    """(app, engine, config, loaded) ready for uvicorn; the model loads through aipc.engines."""
    from aipc.engines import load, thread_candidates
    from aipc.serve.app import ServerConfig, create_app
    from aipc.serve.engine import Engine
    from aipc.serve.generate import pick_threads
    from aipc.serve.metrics import ServerMetrics
    from aipc.serve.protocol import Limits

    loaded = load(o.model, engine=o.engine, weight_format=o.dtype, device=o.device,
                  max_batch=o.max_batch, threads=o.threads, allow_pickle=o.allow_pickle)
    ctx = int(o.max_len or min(loaded.context or 2048, 4096))
    loaded.resize(max_len=ctx)
    runner = loaded.runner
    threads_note = f"{thread_candidates(runner)[0]} threads" + (" (--threads)" if o.threads else "")
    if not o.threads and loaded.device == "cpu" and len(thread_candidates(runner)) > 1 and runner.max_len >= 16:
        best, med = pick_threads(runner, thread_candidates(runner), batch=runner.max_batch)
        threads_note = f"{best} threads (measured at batch {runner.max_batch}: " + ", ".join(
            f"{c} → {s * 1e3:.1f} ms/step" for c, s in med.items()) + ")"
    metrics = ServerMetrics()
    engine = Engine(runner, loaded.tokenizer, model=loaded.model, max_queue=o.max_queue, metrics=metrics)
    metrics.running.fn = lambda: engine.load()[0]
    metrics.waiting.fn = lambda: engine.load()[1]
    limits = Limits(max_prompt_tokens=min(o.max_prompt_tokens or ctx - 1, ctx - 1),
                    max_tokens=min(o.max_tokens or ctx - 1, ctx - 1), context=ctx)
    scfg = ServerConfig(model_name=o.served_name or loaded.name, limits=limits, max_body_bytes=o.max_body_bytes)
    app = create_app(engine, loaded.tokenizer, scfg, access, metrics)
    scfg.threads_note = threads_note
    return app, engine, scfg, loaded


def run(o: ServeOptions, access=None) -> None:
    """Serve until SIGINT/SIGTERM; then finish in-flight requests (up to the graceful timeout) and exit."""
    import uvicorn

    access = access if access is not None else check(o)
    app, engine, scfg, loaded = build(o, access)
    logging.basicConfig(level=getattr(logging, o.log_level.upper(), logging.INFO), format="%(levelname)s %(name)s: %(message)s")
    kind = type(engine.runner).__name__
    note = " (random weights: text is noise)" if loaded.random_weights else ""
    kv = engine.runner.kv_bytes_per_token() * engine.runner.max_batch * scfg.limits.context
    print(f"aipc serve: model '{scfg.model_name}'{note}, {loaded.dtype} on {loaded.device}, runner {kind}, "
          f"{engine.runner.max_batch} slots x {scfg.limits.context} tokens (KV cache {kv / 1e9:.2f} GB), "
          f"API key {'required' if access.required else 'not required (loopback only)'}", flush=True)
    print(f"aipc serve: threads: {scfg.threads_note}", flush=True)
    config = uvicorn.Config(app, host=o.host, port=o.port, log_level=o.log_level, access_log=o.access_log,
                            timeout_graceful_shutdown=o.graceful_timeout_s, server_header=False)
    server = uvicorn.Server(config)
    server.run()
