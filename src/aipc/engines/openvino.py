"""The OpenVINO engine: load a model for aipc's generate loop, batching engine and benchmarks.

``load(ref, weight_format=..., device="CPU"|"GPU"|"NPU")`` accepts an OpenVINO IR folder (from
``aipc convert --to openvino`` or ``optimum-cli export openvino``) or anything ``aipc convert``
accepts (HF folder, catalog name, config.json), which is exported once into aipc's cache
(``$AIPC_HOME/openvino/``) and reused. On CPU and GPU the model runs through :class:`OVRunner`
(aipc's own loop); on the NPU, whose compiler needs static shapes, through OpenVINO GenAI's
pipeline (:class:`GenAIGenerator`, one request at a time).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

from aipc.engines import Loaded
from aipc.engines.openvino_export import QUANTS, RANDOM_MARK, check_quant, is_ir_folder
from aipc.errors import AipcError

DEVICES = ("CPU", "GPU", "NPU")
OPTIONS = {"config": "OpenVINO compile properties", "progress": "a progress bar for on-the-fly exports"}
_WEIGHT_TYPES = {"u4": "int4", "i4": "int4", "nf4": "int4", "u8": "int8", "i8": "int8", "f16": "fp16",
                 "bf16": "fp16", "f32": "fp16"}


def check_device(device: str | None) -> str:
    """CPU | GPU | GPU.N | NPU (case-insensitive; 'cpu'/'auto'/None mean CPU)."""
    d = (device or "CPU").upper()
    if d in ("AUTO", ""):
        d = "CPU"
    if d.split(".")[0] not in DEVICES:
        raise AipcError(f"unknown OpenVINO device '{device}'; use CPU, GPU (GPU.0, GPU.1, ...) or NPU")
    import openvino as ov

    have = ov.Core().available_devices
    if d not in have and not (d == "GPU" and any(h.startswith("GPU") for h in have)):
        raise AipcError(f"OpenVINO device {d} is not available here (found: {', '.join(have)}); "
                        "install its driver or pick another --device")
    return d


def weight_format_of(folder: Path) -> str:
    """int4 | int8 | fp16: the element type holding most of the IR's weight bytes."""
    import openvino as ov

    model = ov.Core().read_model(str(folder / "openvino_model.xml"))
    sizes: Counter = Counter()
    for op in model.get_ordered_ops():
        if op.get_type_name() == "Constant" and op.get_byte_size() >= 1024:
            sizes[op.get_element_type().get_type_name()] += op.get_byte_size()
    top = sizes.most_common(1)[0][0] if sizes else "f16"
    return _WEIGHT_TYPES.get(top, "fp16")


def cache_folder(ref: str, quant: str, seed: int) -> Path:
    """Where an on-the-fly export of ``ref`` lives: keyed by the source (path + mtime, or name), format, seed."""
    from aipc.paths import home

    p = Path(str(ref)).expanduser()
    key = f"{p.resolve()}:{p.stat().st_mtime_ns}" if p.exists() else str(ref).lower()
    digest = hashlib.sha256(f"{key}:{quant}:{seed}".encode()).hexdigest()[:16]
    return home() / "openvino" / f"{p.name or 'model'}-{quant}-{digest}"


def ensure_ir(ref: str, weight_format: str | None, seed: int = 0, progress: bool = True,
              allow_pickle: bool = False) -> tuple[Path, bool]:
    """(IR folder, converted here) for ``ref``; HF folders and catalog models are exported once and cached
    (a folder's pickle weights only with ``allow_pickle``)."""
    if is_ir_folder(ref):
        folder = Path(str(ref)).expanduser()
        have = weight_format_of(folder)
        if weight_format and check_quant(weight_format) != have:
            raise AipcError(f"{folder} holds {have} weights, not {weight_format}; drop --weight-format or "
                            f"convert again with 'aipc convert MODEL --to openvino --quant {weight_format}'")
        return folder, False
    quant = check_quant(weight_format or "int8")
    folder = cache_folder(ref, quant, seed)
    if not is_ir_folder(folder):
        from aipc.engines.openvino_export import convert

        from aipc.engines.gguf_convert import StageProgress

        folder.parent.mkdir(parents=True, exist_ok=True)
        with StageProgress(quiet=not progress) as report:
            convert(ref, quant, folder, seed=seed, force=folder.exists(), progress=report, allow_pickle=allow_pickle)
    return folder, True


def _tokenizer(folder: Path, vocab: int):
    if any((folder / f).exists() for f in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")):
        from transformers import AutoTokenizer

        try:
            return AutoTokenizer.from_pretrained(folder)
        except (OSError, ValueError) as e:
            raise AipcError(f"cannot load the tokenizer in {folder}: {str(e).splitlines()[0]}") from None
    from aipc.models.tiny import byte_tokenizer

    try:
        return byte_tokenizer(vocab)
    except ValueError:
        raise AipcError(f"{folder} has no tokenizer files; export it with its tokenizer") from None


def _generation_config(folder: Path) -> SimpleNamespace:
    try:
        gc = json.loads((folder / "generation_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        gc = {}
    return SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=gc.get("eos_token_id")))


def load(ref: str, *, weight_format: str | None = None, device: str | None = None, max_batch: int = 1,
         max_len: int | None = None, threads: int | None = None, seed: int = 0, allow_pickle: bool = False,
         progress: bool = True, config: dict | None = None) -> Loaded:
    """The model behind ``ref`` ready to run on OpenVINO ``device`` (the seam's engine entry point)."""
    from aipc.engines.openvino_export import check_toolchain

    dev = check_device(device)
    if not is_ir_folder(ref):
        check_toolchain()
    folder, _ = ensure_ir(ref, weight_format, seed, progress, allow_pickle=allow_pickle)
    hf = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    ctx = int(hf.get("max_position_embeddings") or 2048)
    generator = None
    if dev == "NPU":
        from aipc.engines.openvino_genai import GenAIGenerator

        generator = GenAIGenerator(folder, device=dev, threads=threads, config=config, max_len=min(max_len or ctx, ctx))

    def make(n: int, length: int | None):
        if generator is not None:
            raise AipcError("on the NPU the model runs through OpenVINO GenAI's pipeline (one request at a time, "
                            "no per-token logits): use 'aipc generate', or --device CPU / GPU here")
        return _runner(folder, dev, n, length or min(ctx, 4096), threads, config)

    name = Path(str(ref)).expanduser().name if os.path.exists(os.path.expanduser(str(ref))) else str(ref)
    return Loaded(tokenizer=_tokenizer(folder, int(hf.get("vocab_size") or 0)), name=name, engine="openvino",
                  weight_format=weight_format_of(folder), device=dev.lower(),
                  random_weights=(folder / RANDOM_MARK).exists(), model=_generation_config(folder), context=ctx,
                  path=folder, max_batch=max_batch, max_len=max_len, make_runner=make, generator=generator)


def _runner(folder: Path, dev: str, n: int, length: int, threads: int | None, config: dict | None):
    """OVRunner; on a multi-core CPU without ``threads``, the thread count whose decode step is fastest
    (1 or all cores, measured now: on a busy machine one thread can win)."""
    from aipc.engines.openvino_runner import OVRunner, pick_threads

    def make(t):
        return OVRunner(folder, device=dev, max_batch=n, max_len=length, threads=t, config=config)

    cores = os.cpu_count() or 1
    if threads or dev != "CPU" or cores < 2 or length < 24:
        return make(threads)
    runner, med = pick_threads(make, [cores, 1])
    runner.threads_note = "auto: " + ", ".join(f"{c} → {s * 1e3:.1f} ms/step" for c, s in med.items())
    return runner


__all__ = ["DEVICES", "QUANTS", "Loaded", "load", "ensure_ir", "weight_format_of", "check_device"]
