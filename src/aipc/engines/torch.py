"""The torch engine: transformers models (local folder, or a config with random weights) run by
:class:`aipc.serve.fastlm.FastLM` (Llama-family) or :class:`aipc.serve.hfrunner.HFRunner`.

Weight formats fp32 | bf16 | fp16 (default fp32 on a CPU: bf16/fp16 matmuls are emulated or slower
there, bf16 on a GPU).
"""

from __future__ import annotations

from pathlib import Path

from aipc.engines import DEFAULT_CONTEXT_CAP, Loaded


def _load_model(ref, *, dtype, device, seed):
    """The one place this engine loads weights (becomes aipc.models.live.load_or_build)."""
    from aipc.serve.loader import load

    return load(ref, dtype=dtype, device=device, seed=seed)


def load(ref, *, weight_format=None, device=None, max_batch=1, max_len=None, threads=None, seed=0,
         fast: bool = True) -> Loaded:
    import torch

    if threads:
        torch.set_num_threads(int(threads))
    hf = _load_model(ref, dtype=weight_format, device=device, seed=seed)
    cfg = hf.model.config
    context = int(getattr(cfg, "max_position_embeddings", 0) or 0) or 2048

    def make_runner(n: int, length: int | None):
        from aipc.serve.hfrunner import make_runner as build

        return build(hf.model, max_batch=n, max_len=int(length or min(context, DEFAULT_CONTEXT_CAP)), fast=fast)

    path = Path(str(ref)).expanduser()
    return Loaded(tokenizer=hf.tokenizer, name=hf.name, engine="torch", weight_format=hf.dtype, device=hf.device,
                  random_weights=hf.random_weights, model=hf.model, context=context,
                  path=path if path.exists() else None, max_batch=max_batch, max_len=max_len,
                  make_runner=make_runner)
