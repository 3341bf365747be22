"""Write a model with random weights as a local HF folder, one module at a time, in bounded memory.

The model is built on the meta device (no memory); each module with parameters is materialised on
its own, initialised by the model's own ``_init_weights`` (the initialisation transformers gives a
fresh model: normal(0, initializer_range) matrices, unit norms, zero biases), written into the
current safetensors shard and sent back to the meta device. Memory stays near one shard
(``SHARD_BYTES``) plus one tensor whatever the model's size, so an 8B model writes on a 24 GB machine.
The folder gets aipc's byte-level stand-in tokenizer: the text is noise, the speed is real.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

SHARD_BYTES = 1 << 30
INDEX = "model.safetensors.index.json"


def write_random_folder(spec, folder: Path, *, dtype: str = "fp16", seed: int = 0,
                        progress: Callable[[int, int], None] | None = None) -> Path:
    """``folder`` filled with config.json, safetensors shards + index and tokenizer files for ``spec``
    (an aipc ModelSpec of a decoder); ``progress(done, total)`` after each module."""
    import torch
    from safetensors.torch import save_file

    from aipc.models.tiny import byte_tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = spec.build(dtype="fp32", device="meta")
    byte_tokenizer(int(model.config.vocab_size), pad=True).save_pretrained(folder)
    model.config.architectures = [type(model).__name__]  # the converter picks its model class by this
    if hasattr(model.config, "n_positions") and not hasattr(model.config, "n_ctx"):
        # GPT-2's original context key: transformers 5 saves n_positions only, llama.cpp's GPT-2 converter
        # reads n_ctx (published GPT-2 configs carry both)
        model.config.n_ctx = model.config.n_positions
    model.config.save_pretrained(folder)
    to = _dtype(dtype)
    modules, seen = [], set()
    for name, module in model.named_modules():  # tied parameters (input = output embedding) are written once
        own = [pn for pn, p in module.named_parameters(recurse=False) if id(p) not in seen]
        seen.update(id(p) for p in module.parameters(recurse=False))
        if own:
            modules.append((name, module, own))
    shard: dict = {}
    shard_bytes, total, shards, weight_map = 0, 0, [], {}
    for i, (name, module, own) in enumerate(modules):
        module.to_empty(device="cpu", recurse=False)
        model._init_weights(module)
        for pname in own:
            key = f"{name}.{pname}" if name else pname
            shard[key] = getattr(module, pname).detach().to(to).contiguous()
            shard_bytes += shard[key].nbytes
            total += shard[key].nbytes
        module.to("meta")
        if shard_bytes >= SHARD_BYTES or i == len(modules) - 1:
            fname = f"model-{len(shards) + 1:05d}.safetensors"
            save_file(shard, str(folder / fname), metadata={"format": "pt"})
            shards.append(fname)
            weight_map.update({k: fname for k in shard})
            shard, shard_bytes = {}, 0
        if progress is not None:
            progress(i + 1, len(modules))
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / INDEX).write_text(json.dumps(index, indent=1))
    return folder


def _dtype(name: str):
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]
