"""``aipc convert MODEL --to gguf|openvino --quant ... [-o PATH]``: a model file for another engine.

Targets are dispatched by ``--to``; each target validates its own ``--quant`` and writes through its
engine's own tools (GGUF: llama.cpp's converter and quantizer; OpenVINO: optimum-intel's exporter,
NNCF and openvino-tokenizers). Nothing heavy is imported at module level.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from aipc.commands import guard_opts
from aipc.errors import AipcError


def _to_gguf(model: str, quant: str, out: Optional[Path], seed: int, threads: Optional[int], force: bool,
             quiet: bool, trust: dict) -> dict:
    from aipc.engines.gguf_convert import StageProgress, check_quant, convert, output_path, source

    quant = check_quant(quant)
    src = source(model, **trust)
    dest = output_path(out, src, quant)
    if dest.exists() and not force:
        raise AipcError(f"{dest} already exists; pass --force to replace it or choose another -o")
    with StageProgress(quiet) as report:
        path = convert(model, dest, quant=quant, seed=seed, threads=threads, progress=report, **trust)
    return {"output": str(path), "format": "gguf", "quant": quant, "bytes": path.stat().st_size,
            "random_weights": src.folder is None, "source": str(src.folder or src.spec.name)}


def _to_openvino(model: str, quant: str, out: Optional[Path], seed: int, threads: Optional[int], force: bool,
                 quiet: bool, trust: dict) -> dict:
    from aipc.engines.gguf_convert import StageProgress
    from aipc.engines.openvino_export import RANDOM_MARK, check_quant, convert

    quant = check_quant(quant)
    if threads is not None:
        raise AipcError("--threads applies to --to gguf (llama.cpp's quantizer); drop it for --to openvino")
    with StageProgress(quiet) as report:
        path = convert(model, quant, out, seed=seed, force=force, progress=report, allow_pickle=trust["allow_pickle"])
    size = sum(f.stat().st_size for f in path.iterdir() if f.is_file())
    return {"output": str(path), "format": "openvino", "quant": quant, "bytes": size,
            "random_weights": (path / RANDOM_MARK).exists(), "source": str(model)}


# --to NAME -> (function(model, quant, out, seed, threads, force, quiet, trust) -> dict, default --quant)
TARGETS = {"gguf": (_to_gguf, "q4_k_m"), "openvino": (_to_openvino, "int4")}


def register(app: typer.Typer) -> None:
    @app.command("convert")
    def convert_cmd(
        model: str = typer.Argument(..., help="Local HF folder, catalog model, HF id or config.json (random weights)."),
        to: str = typer.Option("gguf", "--to", help="Target format: " + ", ".join(TARGETS) + "."),
        quant: Optional[str] = typer.Option(None, "--quant", "-q", help="GGUF: f16, q8_0, q4_0, q4_k_m (default), q5_k_m, q6_k, f32, ...; OpenVINO: fp16, int8, int4 (default)."),
        out: Optional[Path] = typer.Option(None, "-o", "--output", help="Output file (default ./NAME-QUANT.gguf) or, for OpenVINO, folder (default ./NAME-openvino-QUANT)."),
        seed: int = typer.Option(0, "--seed", help="Seed of the random weights (models without weights here)."),
        threads: Optional[int] = typer.Option(None, "--threads", help="Threads for quantizing (default: all)."),
        force: bool = typer.Option(False, "--force", help="Replace an existing output file."),
        quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
        json_out: bool = typer.Option(False, "--json", help="One JSON object: output path, size, time."),
        allow_network: bool = guard_opts.ALLOW_NETWORK,
        allow_pickle: bool = typer.Option(False, "--allow-pickle", help="Convert pickle weights (pytorch_model*.bin); pickle can run code, so only for a source you trust."),
        trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="Convert a folder that ships its own Python code (llama.cpp's converter may import its tokenizer code)."),
    ) -> None:
        """Convert MODEL for another engine: --to gguf writes llama.cpp's format (quantized with llama.cpp);
        --to openvino an OpenVINO IR folder (optimum-intel's export, weights compressed by NNCF)."""
        from aipc.privacy.guard import offline_guard

        target, default_quant = TARGETS.get(to.lower(), (None, None))
        if target is None:
            from aipc.errors import unknown

            raise unknown("conversion target", to, TARGETS, "use --to " + " or --to ".join(TARGETS))
        if threads is not None and threads < 1:
            raise AipcError(f"--threads must be at least 1, got {threads}")
        if seed < 0:
            raise AipcError(f"--seed must be >= 0, got {seed}")
        t0 = time.perf_counter()
        with offline_guard(allow_network=allow_network):
            result = target(model, quant or default_quant, out, seed, threads, force, quiet or json_out,
                            {"allow_pickle": allow_pickle, "trust_remote_code": trust_remote_code})
        result["seconds"] = round(time.perf_counter() - t0, 2)
        if json_out:
            from aipc.render import print_json

            print_json(result)
            return
        from aipc.render import gb

        note = " (random weights: the text is noise, the speed is real)" if result.get("random_weights") else ""
        typer.echo(f"wrote {result['output']}: {result['quant']}, {gb(result['bytes'], 2)} in {result['seconds']:.1f} s{note}")
