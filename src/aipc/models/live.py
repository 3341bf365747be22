"""The one model loader: every verb that runs a model (generate, serve, train, bench, validate) gets it
from :func:`load_or_build`, under the same rules.

- A local folder with ``config.json`` and weights loads those weights with ``from_pretrained`` (local
  files only). First its config and safetensors headers are checked (``aipc.models.load.resolve``) and
  every ``.safetensors`` file is checked complete, so a bad config or a truncated download is a
  one-line error. Pickle weights (``pytorch_model*.bin``: unpickling can run code) load only with
  ``allow_pickle`` (``aipc.privacy.supply.check_model_folder``).
- Anything else — a catalog name, an HF id, a ``config.json``, a folder with only a config — is
  resolved by ``resolve`` and built with random weights from ``seed``, directly on ``device``: the
  architecture and its speed are real, its text is noise, and :attr:`Live.random_weights` says so.

Decoders load as ``AutoModelForCausalLM``, encoders (BERT) as ``AutoModel``; ``need_decoder`` refuses
encoders for the verbs that generate or train. Denormals are flushed (``aipc.runtime.prepare_cpu``)
and transformers' progress bars are off while loading.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aipc.errors import AipcError
from aipc.models.dtypes import short_name, torch_dtype

WEIGHT_GLOBS = ("*.safetensors", "pytorch_model*.bin")


@dataclass
class Live:
    """A model ready to run, and what it is."""

    model: Any             # transformers *ForCausalLM (decoders) or *Model (encoders), eval mode, on ``device``
    tokenizer: Any         # the folder's tokenizer or the byte-level stand-in; None unless asked for
    name: str              # the folder's name, else the reference as given (what /v1/models reports)
    random_weights: bool   # True when built from a config (no trained weights)
    dtype: str             # fp32 | bf16 | fp16
    device: str
    spec: Any              # the ModelSpec the reference resolved to

    @property
    def weights(self) -> str:
        return "random weights" if self.random_weights else "local weights"


@contextlib.contextmanager
def quiet_hf():
    """Silence transformers' per-file progress bars and its loading report (aipc shows its own progress
    and says itself what is wrong with the weights)."""
    from transformers.utils import logging as hf_logging

    was, level = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if was:
            hf_logging.enable_progress_bar()


def with_lora(model, config):
    """``model`` wrapped by peft with the LoraConfig ``config`` (base frozen, adapters added): the one place
    aipc calls peft's get_peft_model (train, bench, validation). peft reads transformers' deprecated
    ``is_gradient_checkpointing`` there, whose FutureWarning says nothing to a user: silenced."""
    import warnings

    from peft import get_peft_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return get_peft_model(model, config)


def has_weights(ref: str | Path) -> bool:
    """True for a local folder with config.json and weight files (safetensors or pickle)."""
    p = Path(str(ref)).expanduser()
    return p.is_dir() and (p / "config.json").is_file() and any(any(p.glob(g)) for g in WEIGHT_GLOBS)


def default_device(device: str | None) -> str:
    """``device``, checked; None / '' / 'auto': the first CUDA GPU if there is one, else the CPU."""
    import torch

    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise AipcError(f"device '{device}' asked for but no CUDA GPU is visible; use --device cpu")
    if device != "cpu" and not device.startswith(("cuda", "mps", "xpu")):
        raise AipcError(f"unknown device '{device}'; use cpu, cuda, cuda:N or auto")
    return device


def default_dtype(dtype: str | None, device: str) -> str:
    """fp32 on CPU (bf16 matmuls at batch 1 were slower than fp32 on the CPUs measured), bf16 on GPUs."""
    if dtype in (None, "", "auto"):
        return "fp32" if device == "cpu" else "bf16"
    return short_name(dtype)  # validates


def load_or_build(ref: str | Path, *, dtype: str | None = None, device: str | None = None, seed: int = 0,
                  allow_pickle: bool = False, need_decoder: str | None = None, tokenizer: bool = False,
                  quantization_config: Any = None) -> Live:
    """The model ``ref`` names, in ``dtype`` on ``device`` (defaults: :func:`default_dtype`,
    :func:`default_device`), in eval mode (training callers switch it to train mode).

    ``need_decoder``: what the caller does ("generation", "training"); an encoder is then refused.
    ``tokenizer``: also load the tokenizer (the folder's, else the byte-level stand-in).
    ``quantization_config``: a transformers quantization config (QLoRA's NF4) for a folder's weights,
    which then load straight onto ``device``."""
    import torch

    from aipc.runtime import prepare_cpu

    prepare_cpu()  # flush denormals: random-weight activations otherwise slow x86 CPUs many-fold
    device = default_device(device)
    dtype = default_dtype(dtype, device)
    spec = check_ref(ref, allow_pickle=allow_pickle)
    if need_decoder and not spec.is_decoder:
        raise AipcError(f"model '{spec.name}' is an encoder ({spec.model_type}); {need_decoder} needs a decoder "
                        "(causal LM) model")
    path = Path(str(ref)).expanduser()
    random = not has_weights(path)
    if random and quantization_config is not None:
        raise AipcError(f"quantized loading needs pretrained weights; {ref} has none — pass a local model folder")
    with quiet_hf():
        if random:
            torch.manual_seed(seed)
            model = _build(spec, dtype, device)
        else:
            q = {} if quantization_config is None else {"quantization_config": quantization_config,
                                                        "device_map": {"": device}}
            model = _from_folder(path, spec, dtype, q)
    model = (model if quantization_config is not None else model.to(device)).eval()
    tok = None
    if tokenizer:
        from aipc.models.tokenizer import load_tokenizer

        tok, _ = load_tokenizer(path if path.is_dir() else None, None, int(model.config.vocab_size))
    return Live(model=model, tokenizer=tok, name=path.name if path.is_dir() else str(ref), random_weights=random,
                dtype=dtype, device=device, spec=spec)


def _build(spec, dtype: str, device: str):
    """The architecture with random weights (the caller seeds torch)."""
    try:
        return spec.build(dtype=dtype, device=device)
    except (ValueError, KeyError, TypeError, RuntimeError) as e:  # transformers' config checks; out of memory
        raise AipcError(f"cannot build model '{spec.name}': {_first_line(e)}; check its config") from e


def check_ref(ref: str | Path, *, allow_pickle: bool = False):
    """The ModelSpec of ``ref`` once everything the loader checks before loading holds: the config, and
    for a folder with weights the pickle rule and complete safetensors files. Cheap (headers only):
    verbs call it before any other work so that a bad model fails first."""
    from aipc.models.load import check_safetensors_complete, resolve, safetensors_files
    from aipc.privacy.supply import check_model_folder

    spec = resolve(ref)
    path = Path(str(ref)).expanduser()
    if has_weights(path):
        # Custom code is not refused here: aipc never passes trust_remote_code, so a folder's code never runs.
        check_model_folder(path, allow_pickle=allow_pickle, trust_remote_code=True)
        for f in safetensors_files(path):
            check_safetensors_complete(f)
    return spec


def _from_folder(path: Path, spec, dtype: str, extra: dict):
    """The folder's own weights (``check_ref`` has checked them)."""
    from transformers import AutoModel, AutoModelForCausalLM

    from aipc.models.load import safetensors_files

    cls = AutoModelForCausalLM if spec.is_decoder else AutoModel
    fix = "re-download the model or save it again with save_pretrained"
    try:
        model, info = cls.from_pretrained(path, dtype=torch_dtype(dtype), local_files_only=True,
                                          use_safetensors=bool(safetensors_files(path)), trust_remote_code=False,
                                          output_loading_info=True, **extra)
    except Exception as e:  # noqa: BLE001 - transformers, safetensors and torch.load raise many types
        raise AipcError(f"cannot load the weights in {path}: {_first_line(e)}; {fix}") from e
    missing = sorted(info.get("missing_keys") or ())
    if missing:  # transformers would fill them with random values: not the model the folder claims to hold
        raise AipcError(f"the weights in {path} lack {len(missing)} of the model's tensors ({', '.join(missing[:3])}"
                        f"{' ...' if len(missing) > 3 else ''}); {fix}")
    return model


def _first_line(e: BaseException) -> str:
    """'KeyError: 'x'' — the exception's type and the first line of its message."""
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__
