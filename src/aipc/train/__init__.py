"""Fine-tuning: data loading and packing, the loop, atomic checkpoints, torchrun launch, LoRA export.

Python API (what ``aipc train`` calls)::

    from aipc.train import TrainConfig, train
    result = train(TrainConfig(model="path/to/model", data=["data.jsonl"], method="lora", steps=100))

Import-light: torch and transformers load only when ``train`` runs.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TrainConfig", "train"]


def __getattr__(name: str) -> Any:
    if name == "TrainConfig":
        from aipc.train.config import TrainConfig

        return TrainConfig
    if name == "train":
        from aipc.train.loop import train

        return train
    raise AttributeError(name)
