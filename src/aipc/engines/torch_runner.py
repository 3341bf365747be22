"""The part of the runner interface every torch runner (FastLM, HFRunner) takes from its model the same way:
``device``, ``dtype``, ``max_batch``, ``max_len`` (default: the model's ``max_position_embeddings``, else
2048) and ``vocab_size``."""

from __future__ import annotations


class TorchRunner:
    def __init__(self, model, *, max_batch: int = 1, max_len: int | None = None):
        cfg = model.config
        p0 = next(model.parameters())
        self.device, self.dtype = p0.device, p0.dtype
        self.max_batch = int(max_batch)
        self.max_len = int(max_len or getattr(cfg, "max_position_embeddings", 2048))
        self.vocab_size = int(cfg.vocab_size)
