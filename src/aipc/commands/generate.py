"""``aipc generate MODEL --prompt TEXT``: fast local generation, streamed to the terminal, with
tokens/s, TTFT, achieved bandwidth and MBU at the end. Nothing heavy is imported at module level.
"""

from __future__ import annotations

import sys
from typing import Optional

import typer


def _threads(value: str) -> int | None:
    from aipc.errors import AipcError

    if value == "auto":
        return None
    if not value.isdigit() or int(value) < 1:
        raise AipcError(f"--threads {value!r}: use a positive integer or 'auto'")
    return int(value)


def _rows(r: dict) -> list[tuple[str, str, str]]:
    from aipc.render import gb, seconds

    s = r["stats"]
    bw = f"{s['bandwidth_bytes_per_s'] / 1e9:.2f} GB/s" if s["bandwidth_bytes_per_s"] else "n/a"
    mbu = f"{s['mbu'] * 100:.1f}%" if s["mbu"] is not None else "n/a"
    peak = f" of {s['peak_bandwidth_bytes_per_s'] / 1e9:.1f} GB/s" if s["peak_bandwidth_bytes_per_s"] else ""
    tps = f"{s['decode_tokens_per_s']:.1f}" if s["decode_tokens_per_s"] else "n/a"
    return [
        ("tokens", f"{s['prompt_tokens']} prompt + {s['output_tokens']} generated ({s['finish_reason']})", ""),
        ("TTFT", seconds(s["ttft_s"]), "time to first token, includes prefill"),
        ("TPOT", seconds(s["tpot_s"]) if s["tpot_s"] else "n/a", "time per output token, excludes the first"),
        ("decode tokens/s", tps, "1 / TPOT"),
        ("bytes read per step", f"{gb(s['weight_bytes_per_step'])} weights + {gb(s['kv_bytes_per_step'])} KV", "mean over steps"),
        ("achieved bandwidth", bw, "bytes read per step / TPOT"),
        ("MBU", mbu + peak, s["bandwidth_source"]),
        ("runner", f"{r['runner']}, {r['dtype']} on {r['device']}, {r['threads']} threads", r["threads_note"]),
    ]


def register(app: typer.Typer) -> None:
    @app.command("generate")
    def generate_cmd(
        model: str = typer.Argument(..., help="Local HF folder, catalog model, HF id or config.json."),
        prompt: str = typer.Option(..., "--prompt", "-p", help="The prompt text."),
        chat: bool = typer.Option(False, "--chat", help="Wrap the prompt with the tokenizer's chat template."),
        system: Optional[str] = typer.Option(None, "--system", help="System message (with --chat)."),
        max_tokens: int = typer.Option(128, "--max-tokens", help="Most tokens to generate."),
        temperature: float = typer.Option(0.0, "--temperature", help="0 = greedy."),
        top_p: float = typer.Option(1.0, "--top-p"),
        top_k: int = typer.Option(0, "--top-k", help="0 = off."),
        seed: Optional[int] = typer.Option(None, "--seed", help="Makes sampling repeatable."),
        stop: list[str] = typer.Option([], "--stop", help="Stop string (repeatable); not included in the output."),
        ignore_eos: bool = typer.Option(False, "--ignore-eos", help="Keep generating past the end-of-sequence token."),
        dtype: Optional[str] = typer.Option(None, "--dtype", help="fp32 | bf16 | fp16 (default: fp32 on CPU, bf16 on GPU)."),
        device: Optional[str] = typer.Option(None, "--device", help="cpu | cuda | auto."),
        threads: str = typer.Option("auto", "--threads", help="CPU threads, or 'auto' (measure 1 vs all, keep the faster)."),
        compile_: bool = typer.Option(False, "--compile/--no-compile", help="torch.compile the decode step (30-80 s to compile on CPU for a ~1.1x faster step)."),
        fast: bool = typer.Option(True, "--fast/--hf-forward", help="Lean static-cache decoder (Llama-family) or the model's own forward."),
        mbu: bool = typer.Option(True, "--mbu/--no-mbu", help="Compare bandwidth with the measured peak (measures once if not cached)."),
        stream: bool = typer.Option(True, "--stream/--no-stream", help="Print tokens as they come."),
        json_out: bool = typer.Option(False, "--json", help="One JSON object: text and stats."),
        allow_network: bool = typer.Option(False, "--allow-network", help="Turn off the offline guard."),
        allow_pickle: bool = typer.Option(False, "--allow-pickle", help="Load pickle weights (pytorch_model*.bin) when a folder has no safetensors; pickle can run code, so only for a source you trust."),
    ) -> None:
        """Generate text from MODEL; prints TTFT, tokens/s, bandwidth and MBU (definitions included)."""
        from aipc.errors import AipcError
        from aipc.privacy.guard import offline_guard
        from aipc.serve.sampling import SamplingParams

        n_threads = _threads(threads)
        if max_tokens < 1:
            raise AipcError(f"--max-tokens must be at least 1, got {max_tokens}")
        try:
            params = SamplingParams(max_tokens=max_tokens, temperature=temperature, top_p=top_p, top_k=top_k, seed=seed,
                                    stop=tuple(stop), ignore_eos=ignore_eos)
        except ValueError as e:
            raise AipcError(f"{e}; fix the sampling flags") from None
        if not prompt:
            raise AipcError("--prompt is empty; give some text")
        with offline_guard(allow_network=allow_network):
            result = _run(model, prompt, chat, system, params, dtype, device, n_threads, compile_, fast, mbu,
                          stream and not json_out, allow_pickle)
        if json_out:
            from aipc.render import print_json

            print_json(result)
            return
        from rich.table import Table

        from aipc.render import console

        t = Table(title="generation (definitions in the last column)", show_header=False)
        for row in _rows(result):
            t.add_row(*row)
        console().print(t)


def _run(model, prompt, chat, system, params, dtype, device, n_threads, compile_, fast, mbu, stream,
         allow_pickle=False) -> dict:
    import dataclasses

    import torch

    from aipc.errors import AipcError
    from aipc.models.live import load_or_build
    from aipc.serve.generate import DEFINITIONS, encode_prompt, generate, measured_bandwidth, pick_threads
    from aipc.serve.hfrunner import make_runner

    if n_threads:
        torch.set_num_threads(n_threads)
    loaded = load_or_build(model, dtype=dtype, device=device, allow_pickle=allow_pickle, need_decoder="generation",
                           tokenizer=True)
    ids = encode_prompt(loaded.tokenizer, prompt, chat=chat, system=system)
    cfg = loaded.model.config
    ctx = int(getattr(cfg, "max_position_embeddings", 0) or 0) or len(ids) + params.max_tokens
    if len(ids) >= ctx:
        raise AipcError(f"the prompt has {len(ids)} tokens; the model's context is {ctx}; shorten it")
    runner = make_runner(loaded.model, max_len=min(ctx, len(ids) + params.max_tokens + 16), fast=fast)
    if compile_:
        if not hasattr(runner, "compile"):
            raise AipcError("--compile needs the fast runner (a Llama-family model); drop --compile")
        runner.compile()
    note = "set with --threads"
    if n_threads is None and loaded.device == "cpu" and torch.get_num_threads() > 1 and runner.max_len >= 16:
        best, med = pick_threads(runner, sorted({torch.get_num_threads(), 1}, reverse=True))
        note = "auto: " + ", ".join(f"{c} → {s * 1e3:.1f} ms/step" for c, s in med.items())
    bandwidth = measured_bandwidth(loaded.device) if mbu else (None, "n/a (--no-mbu)")
    if loaded.random_weights:
        print("note: random weights (no trained weights on this machine): the text is noise, the speed is real",
              file=sys.stderr)

    def show(s: str) -> None:
        if s:
            sys.stdout.write(s)
            sys.stdout.flush()

    try:
        res = generate(runner, loaded.tokenizer, ids, params, model=loaded.model, on_text=show if stream else None,
                       bandwidth=bandwidth)
    except ValueError as e:
        raise AipcError(str(e)) from None
    if stream:
        sys.stdout.write("\n")
    return {"model": loaded.name, "random_weights": loaded.random_weights, "text": res.text,
            "token_ids": res.token_ids, "runner": type(runner).__name__, "dtype": loaded.dtype, "device": loaded.device,
            "threads": torch.get_num_threads(), "threads_note": note, "compiled": bool(compile_),
            "stats": dataclasses.asdict(res.stats), "definitions": DEFINITIONS}
