"""Disk a team must plan: model files, checkpoints, dataset tokens."""

from __future__ import annotations

from aipc.estimate import params as P
from aipc.estimate.memory import master_weight_bytes, optimizer_state_bytes, weights_bytes
from aipc.estimate.types import Storage
from aipc.models.spec import ModelSpec
from aipc.spec import Workload, dtype_bytes

CHECKPOINTS_KEPT = 2


def storage_for(m: ModelSpec, w: Workload) -> Storage:
    """Model files: the folder's safetensors bytes when known, else weights at the weight dtype.
    A checkpoint: full/freeze — weights + optimizer states + master weights; LoRA/QLoRA — adapters
    (in their dtype, fp32 by default) + their optimizer states only. Dataset: train_tokens * 2 bytes (uint16 ids, vocab < 65,536)
    or 4 bytes (int32) — packed token ids as aipc train stores them."""
    files = m.weight_bytes or int(weights_bytes(m, w))
    if not w.is_train:
        return Storage(model_files_bytes=files, checkpoint_bytes=0, checkpoints_kept=0, dataset_bytes=0)
    if w.method in ("lora", "qlora"):
        ck = P.lora_params(m, w) * dtype_bytes(w.adapter) + optimizer_state_bytes(m, w)
    else:
        ck = weights_bytes(m, w) + optimizer_state_bytes(m, w) + master_weight_bytes(m, w)
    tok_bytes = 2 if m.vocab_size < 65536 else 4
    return Storage(model_files_bytes=files, checkpoint_bytes=int(ck), checkpoints_kept=CHECKPOINTS_KEPT,
                   dataset_bytes=int(w.train_tokens * tok_bytes))
