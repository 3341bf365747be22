"""The model a run starts from, and facts about it: context length, vocabulary rows, fingerprint, counts.

The model comes from the one loader, ``aipc.models.live.load_or_build``: a local folder's weights, or
the architecture built with random weights from ``seed`` — so the same reference and seed always give
the same start. Training keeps fp32 weights and builds on the CPU (the same numbers on every device).
"""

from __future__ import annotations

import hashlib
import json

_VOLATILE = ("_name_or_path", "transformers_version", "torch_dtype", "dtype", "architectures",
             "_attn_implementation_autoset", "use_cache")


def start_model(ref: str, *, seed: int, device: str, allow_pickle: bool = False):
    """The causal LM to train, in fp32 on ``device`` (weights from the folder or random from ``seed``)."""
    from aipc.models.live import load_or_build

    live = load_or_build(ref, dtype="fp32", device="cpu", seed=seed, allow_pickle=allow_pickle,
                         need_decoder="training")
    return live.model.to(device)


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
