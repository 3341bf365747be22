"""The model catalog: popular open models as plain data, looked up by short name or HF id.

The data lives in ``catalog_llama``, ``catalog_qwen`` and ``catalog_other`` (one dict per model, its
config.json URL above it). Import-light: no torch, no transformers.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from aipc.errors import unknown
from aipc.models import catalog_llama, catalog_other, catalog_qwen
from aipc.models.hf_config import parse_count
from aipc.models.spec import ModelSpec

UNKNOWN_FIX = "run 'aipc models' to list them, or pass a config.json or a model folder"


def entries() -> list[dict[str, Any]]:
    """All catalog entries (plain dicts), in catalog order."""
    return [*catalog_llama.MODELS, *catalog_qwen.MODELS, *catalog_other.MODELS]


def config_url(hf_id: str) -> str:
    """Where an HF model's config.json lives."""
    return f"https://huggingface.co/{hf_id}/blob/main/config.json"


@lru_cache(maxsize=1)
def _index() -> dict[str, dict[str, Any]]:
    idx: dict[str, dict[str, Any]] = {}
    for e in entries():
        for key in (e["name"], e["hf_id"]):
            if key.lower() in idx:
                raise ValueError(f"duplicate catalog key {key!r}")  # a catalog bug, caught by the tests
            idx[key.lower()] = e
    return idx


def names() -> list[str]:
    """Short names, in catalog order."""
    return [e["name"] for e in entries()]


def find_entry(ref: str) -> dict[str, Any] | None:
    """The entry whose short name or HF id equals ``ref`` (case-insensitive), else None."""
    return _index().get(ref.strip().lower())


def entry(ref: str) -> dict[str, Any]:
    """Like find_entry, but an unknown name raises AipcError naming the closest matches."""
    e = find_entry(ref)
    if e is None:
        raise unknown("model", ref, names() + [x["hf_id"] for x in entries()], UNKNOWN_FIX)
    return e


def spec_from_entry(e: dict[str, Any]) -> ModelSpec:
    """The ModelSpec of a catalog entry."""
    active = e.get("published_active")
    return ModelSpec.from_hf_config(
        e["config"], name=e["name"], hf_id=e["hf_id"], source=config_url(e["hf_id"]),
        published_params=parse_count(e["published"]),
        published_active_params=parse_count(active) if active else None,
    )


def get(ref: str) -> ModelSpec:
    """A catalog model by short name or HF id (case-insensitive); unknown -> AipcError with suggestions."""
    return spec_from_entry(entry(ref))


def all_specs() -> list[ModelSpec]:
    """Every catalog model as a ModelSpec."""
    return [spec_from_entry(e) for e in entries()]
