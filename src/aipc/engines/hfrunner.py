"""Fallback runner for decoder architectures :class:`~aipc.engines.fastlm.FastLM` does not cover.

Same interface as FastLM (``prefill``, ``decode1``, ``decode``), built on the model's own forward
with one HF ``DynamicCache`` per slot. Correct for any ``*ForCausalLM``; ``decode`` runs the slots
one after another (no batching gain), so serving throughput does not grow with concurrency here.
"""

from __future__ import annotations

import torch

from aipc.engines.torch_runner import TorchRunner


class HFRunner(TorchRunner):
    fast = False

    def __init__(self, model, *, max_batch: int = 1, max_len: int | None = None):
        super().__init__(model, max_batch=max_batch, max_len=max_len)
        self.model = model
        self.caches: list = [None] * self.max_batch

    def weight_bytes_per_step(self) -> int:
        """All parameters except the input embedding table (one row of it is read per token)."""
        n = sum(p.numel() * p.element_size() for p in self.model.parameters())
        emb = self.model.get_input_embeddings().weight
        out = self.model.get_output_embeddings()
        if out is None or out.weight.data_ptr() != emb.data_ptr():
            n -= emb.numel() * emb.element_size() - emb.shape[1] * emb.element_size()
        return n

    def kv_bytes_per_token(self) -> int:
        """2·layers·kv_heads·head_dim·bytes (from the config; an estimate for unusual layouts)."""
        c = self.model.config
        heads = getattr(c, "num_attention_heads", None) or getattr(c, "n_head", 1)
        kv = getattr(c, "num_key_value_heads", None) or heads
        hidden = getattr(c, "hidden_size", None) or getattr(c, "n_embd", 0)
        hd = getattr(c, "head_dim", None) or hidden // heads
        layers = getattr(c, "num_hidden_layers", None) or getattr(c, "n_layer", 0)
        return 2 * layers * kv * hd * self.dtype.itemsize

    def _forward(self, slot: int, ids: torch.Tensor, start: int) -> torch.Tensor:
        from transformers import DynamicCache

        if start == 0:
            self.caches[slot] = DynamicCache(config=self.model.config)
        T = ids.shape[-1]
        out = self.model(input_ids=ids.view(1, T).to(self.device), cache=self.caches[slot], use_cache=True,
                         position_ids=torch.arange(start, start + T, device=self.device)[None], logits_to_keep=1)
        return out.logits[0, -1]

    @torch.inference_mode()
    def prefill(self, slot: int, ids: torch.Tensor) -> torch.Tensor:
        if ids.shape[-1] > self.max_len:
            raise ValueError(f"prompt of {ids.shape[-1]} tokens does not fit the cache of {self.max_len}")
        return self._forward(slot, ids, 0)

    @torch.inference_mode()
    def decode1(self, token, pos: int, slot: int = 0) -> torch.Tensor:
        tok = token.view(1) if isinstance(token, torch.Tensor) else torch.tensor([token])
        return self._forward(slot, tok, pos)

    @torch.inference_mode()
    def decode(self, tokens: torch.Tensor, pos: torch.Tensor, active: list[int] | None = None) -> torch.Tensor:
        n = tokens.shape[0]
        out = torch.zeros(n, self.vocab_size, dtype=self.dtype, device=self.device)
        for i in (active if active is not None else range(n)):
            if self.caches[i] is not None:
                out[i] = self._forward(i, tokens[i:i + 1], int(pos[i]))
        return out

    def free(self, slot: int) -> None:
        self.caches[slot] = None


def make_runner(model, *, max_batch: int = 1, max_len: int | None = None, fast: bool = True):
    """FastLM when the architecture is supported (and ``fast``), else HFRunner."""
    from aipc.engines.fastlm import FastLM, supports

    if fast and supports(model):
        return FastLM(model, max_batch=max_batch, max_len=max_len)
    return HFRunner(model, max_batch=max_batch, max_len=max_len)
