"""Load a model and its tokenizer for generation and serving.

A local folder with weights is loaded with ``from_pretrained``; a catalog name, HF id or config.json
(no weights on this machine, no network) is built with random weights through
``aipc.models.load.resolve(ref).build(dtype, device)`` and gets a byte-level stand-in tokenizer —
its text is noise, its speed is real, and :attr:`Loaded.random_weights` says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aipc.errors import AipcError

DTYPES = {"fp32": "float32", "float32": "float32", "bf16": "bfloat16", "bfloat16": "bfloat16",
          "fp16": "float16", "float16": "float16"}
WEIGHT_GLOBS = ("*.safetensors", "pytorch_model*.bin")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json", "vocab.json")


@dataclass
class Loaded:
    model: object          # a transformers *ForCausalLM in eval mode
    tokenizer: object
    name: str              # what /v1/models reports
    random_weights: bool   # True when built from a config (no trained weights)
    dtype: str             # fp32 | bf16 | fp16
    device: str


def torch_dtype(name: str):
    import torch

    key = DTYPES.get(str(name).lower())
    if key is None:
        raise AipcError(f"unknown dtype '{name}'; use fp32, bf16 or fp16")
    return getattr(torch, key)


def short_dtype(dtype) -> str:
    return {"torch.float32": "fp32", "torch.bfloat16": "bf16", "torch.float16": "fp16"}.get(str(dtype), str(dtype))


def default_device(device: str | None) -> str:
    import torch

    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise AipcError(f"device '{device}' asked for but no CUDA GPU is visible; use --device cpu")
    if device not in ("cpu",) and not device.startswith(("cuda", "mps")):
        raise AipcError(f"unknown device '{device}'; use cpu, cuda, cuda:N or auto")
    return device


def default_dtype(dtype: str | None, device: str) -> str:
    """fp32 on CPU (bf16 matmuls at batch 1 were slower than fp32 on the CPUs measured), bf16 on GPUs."""
    if dtype in (None, "", "auto"):
        return "fp32" if device == "cpu" else "bf16"
    torch_dtype(dtype)  # validates
    return short_dtype(torch_dtype(dtype))


def _has_weights(folder: Path) -> bool:
    return any(any(folder.glob(g)) for g in WEIGHT_GLOBS)


def load(ref: str, *, dtype: str | None = None, device: str | None = None, seed: int = 0) -> Loaded:
    """Model + tokenizer for ``ref`` (folder, config.json, catalog name or HF id)."""
    import torch

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no "Loading weights" bars on the terminal or in server logs
    from aipc.runtime import prepare_cpu

    prepare_cpu()  # flush denormals: random-weight activations otherwise slow x86 CPUs many-fold
    device = default_device(device)
    dtype = default_dtype(dtype, device)
    tdt = torch_dtype(dtype)
    path = Path(str(ref)).expanduser()
    if path.is_dir() and _has_weights(path):
        from transformers import AutoModelForCausalLM

        try:
            model = AutoModelForCausalLM.from_pretrained(path, dtype=tdt)
        except (OSError, ValueError, KeyError) as e:
            raise AipcError(f"cannot load the model in {path}: {str(e).splitlines()[0]}; "
                            "pass a folder saved with save_pretrained") from None
        random = False
    else:
        from aipc.models.load import resolve

        spec = resolve(str(ref))
        if not spec.is_decoder:
            raise AipcError(f"model '{spec.name}' is an encoder ({spec.model_type}); generation needs a decoder model")
        torch.manual_seed(seed)
        try:
            model = spec.build(dtype=tdt, device=device)
        except (ValueError, KeyError, TypeError) as e:
            raise AipcError(f"cannot build model '{spec.name}': {e}") from None
        random = True
    model = model.to(device).eval()
    tokenizer = _tokenizer(path if path.is_dir() else None, model)
    name = path.name if path.is_dir() else str(ref)
    return Loaded(model=model, tokenizer=tokenizer, name=name, random_weights=random, dtype=dtype, device=device)


def _tokenizer(folder: Path | None, model):
    """The folder's tokenizer, else a byte-level stand-in (needs a vocabulary of at least 264)."""
    if folder is not None and any((folder / f).exists() for f in TOKENIZER_FILES):
        from transformers import AutoTokenizer

        try:
            return AutoTokenizer.from_pretrained(folder)
        except (OSError, ValueError) as e:
            raise AipcError(f"cannot load the tokenizer in {folder}: {str(e).splitlines()[0]}") from None
    from aipc.models.tiny import byte_tokenizer

    vocab = int(model.config.vocab_size)
    try:
        return byte_tokenizer(vocab)
    except ValueError:
        raise AipcError(f"model has no tokenizer and its vocabulary ({vocab}) is too small for the byte-level "
                        "stand-in; use a folder with tokenizer files") from None
