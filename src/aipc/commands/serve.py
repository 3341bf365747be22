"""``aipc serve MODEL``: an OpenAI-compatible server with continuous batching and access control.

Binds 127.0.0.1 by default. Binding any other address requires an API key (``--api-key`` or the
``AIPC_API_KEY`` environment variable, or ``--api-key-file`` with named, revocable keys).
Nothing heavy is imported at module level.
"""

from __future__ import annotations

from typing import Optional

import typer

from aipc.commands import guard_opts


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve_cmd(
        model: str = typer.Argument(..., help="Local HF folder, catalog model, HF id or config.json."),
        host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; non-loopback needs an API key."),
        port: int = typer.Option(8000, "--port"),
        api_key: Optional[str] = typer.Option(None, "--api-key", envvar="AIPC_API_KEY", show_envvar=True,
                                              help="Require 'Authorization: Bearer KEY'."),
        api_key_file: Optional[str] = typer.Option(None, "--api-key-file",
                                                   help="Named keys (name:key lines, .json or .toml); edits apply live."),
        rate_rpm: Optional[float] = typer.Option(None, "--rate-limit-rpm", help="Requests per minute per key."),
        rate_tpm: Optional[float] = typer.Option(None, "--rate-limit-tpm", help="Tokens per minute per key."),
        audit_log: Optional[str] = typer.Option(None, "--audit-log", help="Append one JSON line per request here."),
        audit_content: bool = typer.Option(False, "--audit-content", help="Also write prompts and completions to the audit log."),
        served_name: Optional[str] = typer.Option(None, "--served-name", help="Model id clients use (default: folder/ref name)."),
        engine: Optional[str] = typer.Option(None, "--engine", help="torch | llamacpp | openvino (default: llamacpp for a .gguf file or a GGUF quant type, openvino for an IR folder or int8/int4)."),
        dtype: Optional[str] = typer.Option(None, "--dtype", "--weight-format", help="torch: fp32 | bf16 | fp16 (default: fp32 on CPU, bf16 on GPU); llamacpp: q4_k_m | q8_0 | f16 ...; openvino: int8 | int4 | fp16"),
        device: Optional[str] = typer.Option(None, "--device", help="cpu | cuda | auto; openvino: CPU | GPU."),
        max_batch: int = typer.Option(16, "--max-batch", help="Sequences decoded together (KV-cache slots)."),
        max_len: Optional[int] = typer.Option(None, "--max-len", help="Context per slot (default: model's, at most 4096)."),
        max_tokens: Optional[int] = typer.Option(None, "--max-tokens", help="Largest max_tokens a request may ask for."),
        max_prompt_tokens: Optional[int] = typer.Option(None, "--max-prompt-tokens", help="Longest prompt accepted."),
        max_body_bytes: int = typer.Option(1 << 20, "--max-body-bytes", help="Largest request body."),
        max_queue: int = typer.Option(256, "--max-queue", help="Requests waiting for a slot before 503."),
        max_connections: int = typer.Option(512, "--max-connections",
                                            help="Open connections; at the limit the oldest idle one is closed, "
                                                 "and when all are busy a new one gets 503."),
        header_timeout: float = typer.Option(10.0, "--header-timeout",
                                             help="Seconds a client has to send its request headers."),
        body_timeout: float = typer.Option(30.0, "--body-timeout", help="Seconds a client has to send its request body."),
        threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for torch (default: measure 1 vs all at startup, keep the faster)."),
        graceful_timeout: float = typer.Option(30.0, "--graceful-timeout", help="Seconds to finish in-flight requests on shutdown."),
        allow_network: bool = guard_opts.ALLOW_NETWORK,
        allow_pickle: bool = guard_opts.ALLOW_PICKLE,
        quiet: bool = typer.Option(False, "--quiet", help="No per-request access log lines."),
    ) -> None:
        """Serve MODEL over an OpenAI-compatible HTTP API (completions, chat, streaming, /metrics)."""
        from aipc.privacy.guard import offline_guard
        from aipc.serve.server import ServeOptions, check, run

        opts = ServeOptions(model=model, host=host, port=port, api_key=api_key, api_key_file=api_key_file,
                            requests_per_min=rate_rpm, tokens_per_min=rate_tpm, audit_log=audit_log,
                            audit_content=audit_content, served_name=served_name, dtype=dtype, engine=engine, device=device,
                            max_batch=max_batch, max_len=max_len, max_tokens=max_tokens,
                            max_prompt_tokens=max_prompt_tokens, max_body_bytes=max_body_bytes, max_queue=max_queue,
                            max_connections=max_connections, header_timeout_s=header_timeout,
                            body_timeout_s=body_timeout,
                            threads=threads, graceful_timeout_s=graceful_timeout, access_log=not quiet,
                            allow_pickle=allow_pickle,
                            log_level="warning" if quiet else "info")
        access = check(opts)  # refuse bad flags (e.g. an open non-loopback bind) before loading anything
        with offline_guard(allow_network=allow_network):
            run(opts, access)
