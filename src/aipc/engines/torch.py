"""The torch engine: transformers models (local folder, or a config with random weights) run by
:class:`aipc.engines.fastlm.FastLM` (Llama-family) or :class:`aipc.engines.hfrunner.HFRunner`.

Weight formats fp32 | bf16 | fp16 (default fp32 on a CPU: bf16/fp16 matmuls are emulated or slower
there, bf16 on a GPU).
"""

from __future__ import annotations

from pathlib import Path

from aipc.engines import DEFAULT_CONTEXT_CAP, Loaded

OPTIONS = ("fast",)  # fast=False: the model's own forward (HFRunner) instead of FastLM


def load(ref, *, weight_format=None, device=None, max_batch=1, max_len=None, threads=None, seed=0,
         allow_pickle=False, fast: bool = True) -> Loaded:
    import torch

    from aipc.models.live import load_or_build

    if threads:
        torch.set_num_threads(int(threads))
    hf = load_or_build(ref, dtype=weight_format, device=device, seed=seed, allow_pickle=allow_pickle,
                       need_decoder="generation", tokenizer=True)
    cfg = hf.model.config
    context = int(getattr(cfg, "max_position_embeddings", 0) or 0) or 2048

    def make_runner(n: int, length: int | None):
        from aipc.engines.hfrunner import make_runner as build

        return build(hf.model, max_batch=n, max_len=int(length or min(context, DEFAULT_CONTEXT_CAP)), fast=fast)

    path = Path(str(ref)).expanduser()
    return Loaded(tokenizer=hf.tokenizer, name=hf.name, engine="torch", weight_format=hf.dtype, device=hf.device,
                  random_weights=hf.random_weights, model=hf.model, context=context,
                  path=path if path.exists() else None, max_batch=max_batch, max_len=max_len,
                  make_runner=make_runner)
