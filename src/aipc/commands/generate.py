"""``aipc generate MODEL --prompt TEXT``: fast local generation, streamed to the terminal, with
tokens/s, TTFT, achieved bandwidth and MBU at the end. Nothing heavy is imported at module level.
"""

from __future__ import annotations

import sys
from typing import Optional

import typer

from aipc.commands import guard_opts


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
    threads = f", {r['threads']} threads" if r["threads"] else ""  # none: the device's own pipeline (NPU)
    return [
        ("tokens", f"{s['prompt_tokens']} prompt + {s['output_tokens']} generated ({s['finish_reason']})", ""),
        ("TTFT", seconds(s["ttft_s"]), "time to first token, includes prefill"),
        ("TPOT", seconds(s["tpot_s"]) if s["tpot_s"] else "n/a", "time per output token, excludes the first"),
        ("decode tokens/s", tps, "1 / TPOT"),
        ("bytes read per step", f"{gb(s['weight_bytes_per_step'])} weights + {gb(s['kv_bytes_per_step'])} KV", "mean over steps"),
        ("achieved bandwidth", bw, "bytes read per step / TPOT"),
        ("MBU", mbu + peak, s["bandwidth_source"]),
        ("runner", f"{r['runner']}, {r['dtype']} on {r['device']}{threads}", r["threads_note"]),
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
        engine: Optional[str] = typer.Option(None, "--engine", help="torch | llamacpp | openvino (default: llamacpp for a .gguf file or a GGUF quant type, openvino for an IR folder or int8/int4, else torch)."),
        dtype: Optional[str] = typer.Option(None, "--dtype", "--weight-format", help="torch: fp32 | bf16 | fp16 (default fp32 on CPU, bf16 on GPU); llamacpp: q4_k_m | q8_0 | f16 ... (a .gguf keeps its own); openvino: int8 (default) | int4 | fp16 (an IR folder keeps its own)."),
        device: Optional[str] = typer.Option(None, "--device", help="cpu | cuda | auto; openvino: CPU | GPU | NPU."),
        threads: str = typer.Option("auto", "--threads", help="CPU threads, or 'auto' (measure 1 vs all, keep the faster)."),
        compile_: bool = typer.Option(False, "--compile/--no-compile", help="torch.compile the decode step (30-80 s to compile on CPU for a ~1.1x faster step)."),
        fast: bool = typer.Option(True, "--fast/--hf-forward", help="Lean static-cache decoder (Llama-family) or the model's own forward."),
        mbu: bool = typer.Option(True, "--mbu/--no-mbu", help="Compare bandwidth with the measured peak (measures once if not cached)."),
        stream: bool = typer.Option(True, "--stream/--no-stream", help="Print tokens as they come."),
        json_out: bool = typer.Option(False, "--json", help="One JSON object: text and stats."),
        allow_network: bool = guard_opts.ALLOW_NETWORK,
        allow_pickle: bool = guard_opts.ALLOW_PICKLE,
    ) -> None:
        """Generate text from MODEL; prints TTFT, tokens/s, bandwidth and MBU (definitions included)."""
        from aipc.errors import AipcError
        from aipc.privacy.guard import offline_guard
        from aipc.engines.sampling import SamplingParams

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
            result = _run(model, prompt, chat, system, params, engine, dtype, device, n_threads, compile_, fast, mbu,
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


def _run(model, prompt, chat, system, params, engine, dtype, device, n_threads, compile_, fast, mbu, stream,
         allow_pickle=False) -> dict:
    from aipc.engines import load
    from aipc.errors import AipcError
    from aipc.engines.generate import encode_prompt, generate, measured_bandwidth

    loaded = load(model, engine=engine, weight_format=dtype, device=device, threads=n_threads,
                  allow_pickle=allow_pickle, **({} if fast else {"fast": False}))
    ids = encode_prompt(loaded.tokenizer, prompt, chat=chat, system=system)
    ctx = loaded.context or len(ids) + params.max_tokens
    if len(ids) >= ctx:
        raise AipcError(f"the prompt has {len(ids)} tokens; the model's context is {ctx}; shorten it")
    loaded.resize(max_len=min(ctx, len(ids) + params.max_tokens + 16))
    if loaded.generator is not None:  # OpenVINO on an NPU: GenAI's own pipeline, no runner
        return _run_generator(loaded, ids, params, mbu, stream)
    runner = loaded.runner
    if compile_:
        if not hasattr(runner, "compile"):
            raise AipcError("--compile needs the torch engine's fast runner (a Llama-family model); drop --compile")
        runner.compile()
    threads, note = _choose_threads(runner, loaded.device, n_threads)
    bandwidth = measured_bandwidth(loaded.device) if mbu else (None, "n/a (--no-mbu)")
    _note_random(loaded)
    try:
        res = generate(runner, loaded.tokenizer, ids, params, model=loaded.model, on_text=_show if stream else None,
                       bandwidth=bandwidth)
    except ValueError as e:
        raise AipcError(str(e)) from None
    if stream:
        sys.stdout.write("\n")
    return _result(loaded, res, type(runner).__name__, threads, note, compiled=bool(compile_))


def _show(s: str) -> None:
    if s:
        sys.stdout.write(s)
        sys.stdout.flush()


def _note_random(loaded) -> None:
    if loaded.random_weights:
        print("note: random weights (no trained weights on this machine): the text is noise, the speed is real",
              file=sys.stderr)


def _result(loaded, res, runner: str, threads, note: str, compiled: bool = False) -> dict:
    import dataclasses

    from aipc.engines.generate import DEFINITIONS

    return {"model": loaded.name, "random_weights": loaded.random_weights, "text": res.text,
            "token_ids": res.token_ids, "engine": loaded.engine, "runner": runner,
            "dtype": loaded.weight_format, "weight_format": loaded.weight_format, "device": loaded.device,
            "threads": threads, "threads_note": note, "compiled": compiled,
            "stats": dataclasses.asdict(res.stats), "definitions": DEFINITIONS}


def _run_generator(loaded, ids, params, mbu: bool, stream: bool) -> dict:
    """Generation through the engine's own pipeline (OpenVINO GenAI on an NPU): same result and stats."""
    from aipc.errors import AipcError
    from aipc.estimate.openvino_weights import weight_bytes
    from aipc.models.load import resolve
    from aipc.engines.generate import measured_bandwidth

    spec = resolve(str(loaded.path))
    bandwidth = measured_bandwidth(loaded.device) if mbu else (None, "n/a (--no-mbu)")
    _note_random(loaded)
    try:
        res = loaded.generator.generate(loaded.tokenizer, ids, params, on_text=_show if stream else None,
                                        bandwidth=bandwidth, weight_bytes=weight_bytes(spec, loaded.weight_format)[
                                            "per_step"], kv_bytes_per_token=int(spec.kv_bytes_per_token(2)))
    except ValueError as e:
        raise AipcError(str(e)) from None
    if stream:
        sys.stdout.write("\n")
    return _result(loaded, res, type(loaded.generator).__name__, None, "the device's own")


def _choose_threads(runner, device: str, n_threads: int | None) -> tuple[int, str]:
    """(threads, how chosen): --threads as given, else measured (1 vs all) on a CPU."""
    from aipc.engines import runner_threads, thread_candidates
    from aipc.engines.generate import pick_threads

    if n_threads is not None:
        return n_threads, "set with --threads"
    cands = thread_candidates(runner)
    if device != "cpu" or len(cands) < 2 or runner.max_len < 16:
        return runner_threads(runner), getattr(runner, "threads_note", "default")
    best, med = pick_threads(runner, cands)
    return best, "auto: " + ", ".join(f"{c} → {s * 1e3:.1f} ms/step" for c, s in med.items())
