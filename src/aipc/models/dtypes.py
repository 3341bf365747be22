"""The one map from aipc's dtype names to torch dtypes (weights, builds, autocast).

Import-light: torch is imported only when a torch dtype is asked for.
"""

from __future__ import annotations

from typing import Any

from aipc.errors import AipcError

# every spelling aipc accepts -> the torch attribute name
NAMES = {"fp32": "float32", "float32": "float32", "fp16": "float16", "float16": "float16", "half": "float16",
         "bf16": "bfloat16", "bfloat16": "bfloat16"}
# torch attribute name -> aipc's short name
SHORT = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}


def torch_dtype(dtype: Any):
    """The torch dtype of ``dtype`` (fp32 | fp16 | bf16, their long names, or a torch dtype)."""
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    name = NAMES.get(str(dtype).lower().removeprefix("torch."))
    if name is None:
        raise AipcError(f"unknown dtype '{dtype}'; use one of fp32, fp16, bf16")
    return getattr(torch, name)


def short_name(dtype: Any) -> str:
    """'fp32' | 'fp16' | 'bf16' for any accepted spelling or torch dtype."""
    name = str(torch_dtype(dtype)).removeprefix("torch.")
    return SHORT.get(name, name)
