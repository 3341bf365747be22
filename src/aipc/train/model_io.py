"""Loading the model to train: a local HF folder with weights, or an architecture with random weights.

A folder with weights loads with ``from_pretrained``. Anything else (catalog name, HF id,
config.json, a folder with only a config) is resolved by ``aipc.models.load.resolve`` and built with
random weights from ``seed`` — so the same reference and seed always give the same start.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path

from aipc.errors import AipcError

WEIGHT_GLOBS = ("*.safetensors", "pytorch_model*.bin")
_VOLATILE = ("_name_or_path", "transformers_version", "torch_dtype", "dtype", "architectures",
             "_attn_implementation_autoset", "use_cache")


@contextlib.contextmanager
def quiet_hf():
    """Silence transformers' per-file progress bars (aipc shows its own progress)."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


def has_weights(ref: str) -> bool:
    p = Path(ref)
    return p.is_dir() and (p / "config.json").is_file() and any(any(p.glob(g)) for g in WEIGHT_GLOBS)


def load_model(ref: str, *, seed: int, device: str):
    """The causal LM in fp32 on ``device`` (weights from the folder or random from ``seed``)."""
    import torch

    from aipc.runtime import prepare_cpu

    prepare_cpu()  # flush denormals: random-weight activations otherwise slow x86 CPUs many-fold

    if has_weights(ref):
        from transformers import AutoModelForCausalLM

        try:
            with quiet_hf():
                model = AutoModelForCausalLM.from_pretrained(ref, dtype=torch.float32)
        except ValueError as e:  # unknown architecture or not a causal LM
            raise AipcError(f"cannot load {ref} as a causal language model: {str(e).splitlines()[0]}; "
                            "aipc trains decoder (causal LM) models") from None
    else:
        torch.manual_seed(seed)
        model = _build_random(ref)
    if not getattr(model.config, "is_decoder", True) and model.config.model_type in ("bert", "roberta"):
        raise AipcError(f"{ref} is an encoder ({model.config.model_type}); aipc trains causal LMs")
    return model.to(device)


def _build_random(ref: str):
    """Random weights for a catalog name / HF id / config.json / config-only folder."""
    import torch

    try:
        from aipc.models.load import resolve
    except ImportError:
        resolve = None
    if resolve is not None:
        spec = resolve(ref)
        if not spec.is_decoder:
            raise AipcError(f"{ref} is an encoder ({spec.model_type}); aipc trains causal LMs")
        return spec.build(dtype=torch.float32, device="cpu")
    # before aipc.models.load exists: a config.json or a folder with one
    p = Path(ref)
    cfg_path = p / "config.json" if p.is_dir() else p
    if not cfg_path.is_file():
        raise AipcError(f"model {ref} not found: pass a local folder, a config.json or a catalog name")
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = json.loads(cfg_path.read_text())
    config = AutoConfig.for_model(cfg.pop("model_type"), **cfg)
    return AutoModelForCausalLM.from_config(config, dtype=torch.float32)


def context_length(config) -> int | None:
    """The longest sequence the model was built for (None when the config does not say)."""
    for k in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        v = getattr(config, k, None)
        if isinstance(v, int) and v > 0:
            return v
    return None


def vocab_rows(model) -> int:
    """Rows of the input embedding: the largest token id + 1 the model accepts."""
    return int(model.get_input_embeddings().weight.shape[0])


def fingerprint(model) -> str:
    """Identity of the starting model: its config and a sample of every weight tensor (sha256).

    Hashes names, shapes, dtypes and the first 4096 values of each tensor: cheap for 70B models,
    and any retrained or different model differs in them."""
    cfg = {k: v for k, v in model.config.to_dict().items() if k not in _VOLATILE}
    h = hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode())
    for name, t in sorted(model.state_dict().items()):
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        if t.device.type != "meta" and t.numel():
            h.update(t.detach().reshape(-1)[:4096].float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def count_params(model) -> tuple[int, int]:
    """(all parameters, trainable parameters)."""
    total = sum(p.numel() for p in model.parameters())
    train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, train


def matmul_params(model) -> int:
    """Parameters used in matmuls: all but the input embedding table (a lookup), unless tied."""
    total = sum(p.numel() for p in model.parameters())
    emb = model.get_input_embeddings().weight
    head = model.get_output_embeddings()
    tied = head is not None and head.weight is emb
    return total if tied else total - emb.numel()
