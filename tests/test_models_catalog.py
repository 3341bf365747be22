"""Every catalog model: the spec's formulas against the real transformers model built on the meta device,
and the formula count against the count its authors publish."""

from __future__ import annotations

import re
from datetime import date

import pytest

from aipc.models import catalog
from aipc.models.hf_config import count_tolerance
from aipc.models.params import module_key_map

ENTRIES = catalog.entries()
REQUIRED = [
    "llama-3.2-1b", "llama-3.2-3b", "llama-3.1-8b", "llama-3.1-70b", "llama-3.3-70b",
    "qwen2.5-0.5b", "qwen2.5-1.5b", "qwen2.5-3b", "qwen2.5-7b", "qwen2.5-14b", "qwen2.5-32b", "qwen2.5-72b",
    "qwen3-0.6b", "qwen3-1.7b", "qwen3-4b", "qwen3-8b", "qwen3-14b", "qwen3-32b", "qwen3-30b-a3b",
    "mistral-7b-v0.3", "mixtral-8x7b", "gemma-2-2b", "gemma-2-9b", "gemma-2-27b",
    "gemma-3-1b", "gemma-3-4b", "gemma-3-12b", "gemma-3-27b", "phi-3-mini-4k", "phi-4",
    "smollm2-135m", "smollm2-360m", "smollm2-1.7b", "gpt2", "deepseek-v2-lite", "bert-base-uncased",
]
# Published figures given to 2 significant digits, where the 1% band is narrower than the rounding:
# the count must round to the published figure instead (qwen3-1.7b: 1.72B formula = 1.72B built; "1.7B").
ROUNDED = {"qwen3-1.7b"}


def _part(name: str) -> str:
    """Which part a transformers parameter belongs to, judged from its name alone."""
    if name.startswith("lm_head"):
        return "lm_head"
    if any(k in name for k in ("embed_tokens", "wte.", "word_embeddings")):
        return "embedding"
    if any(k in name for k in ("wpe.", "position_embeddings", "token_type_embeddings")):
        return "position"
    if "pooler" in name:
        return "other"
    if ".experts." in name and "shared" not in name:
        return "experts"
    if name.endswith("mlp.gate.weight") or "shared_expert_gate" in name:
        return "router"
    if any(k in name for k in ("self_attn.", ".attn.", "attention.self.", "attention.output.dense")):
        return "attention"
    if "norm" in name.lower() or ".ln_" in name:
        return "norms"
    if any(k in name for k in (".mlp.", "intermediate.dense", "output.dense")):
        return "mlp"
    raise AssertionError(f"unclassified parameter {name}")


def _measure(model) -> dict:
    """Counts read off the built model: total, by part, linear modules, fused expert tensors."""
    import torch
    from transformers.pytorch_utils import Conv1D

    parts: dict[str, int] = {}
    experts: dict[str, list[int]] = {}
    for name, p in model.named_parameters():  # tied weights appear once
        parts[_part(name)] = parts.get(_part(name), 0) + p.numel()
        for key in ("experts.gate_up_proj", "experts.down_proj"):
            if name.endswith(key):
                E, out_f, in_f = p.shape  # transformers 5 fuses experts as (E, out, in)
                prev = experts.get(key, [in_f, out_f, 0])
                experts[key] = [in_f, out_f, prev[2] + E]
    lins = []
    for path, mod in model.named_modules():
        if isinstance(mod, (torch.nn.Linear, Conv1D)) and not path.endswith("lm_head"):
            m = re.search(r"\.(?:layers|h|layer)\.\d+\.(.+)$", path)
            i, o = (mod.weight.shape if isinstance(mod, Conv1D) else (mod.in_features, mod.out_features))
            lins.append((m.group(1) if m else path, int(i), int(o), 1))
    return {"total": sum(parts.values()), "parts": parts, "linears": module_key_map(lins),
            "experts": {k: tuple(v) for k, v in experts.items()}}


@pytest.fixture(scope="module")
def measured():
    """Each catalog model built once on the meta device (about 3 s for all of them)."""
    cache = {}

    def get(spec):
        if spec.name not in cache:
            cache[spec.name] = _measure(spec.build(dtype="bf16", device="meta"))
        return cache[spec.name]

    return get


def test_catalog_lists_at_least_30_including_the_required_ones():
    names = catalog.names()
    assert len(names) >= 30 and len(set(names)) == len(names)
    assert not set(REQUIRED) - set(names)
    assert len({e["hf_id"].lower() for e in ENTRIES}) == len(ENTRIES)


@pytest.mark.parametrize("e", ENTRIES, ids=[e["name"] for e in ENTRIES])
def test_entry_has_source_published_count_and_date(e):
    assert re.fullmatch(r"[a-z0-9][a-z0-9.\-]*", e["name"])
    assert catalog.config_url(e["hf_id"]) == f"https://huggingface.co/{e['hf_id']}/blob/main/config.json"
    assert e["published_source"].startswith("https://")
    date.fromisoformat(e["as_of"])
    assert e["config"]["model_type"]


@pytest.mark.parametrize("e", ENTRIES, ids=[e["name"] for e in ENTRIES])
def test_formula_equals_built_model_and_published_count(e, measured):
    spec = catalog.spec_from_entry(e)
    m = measured(spec)
    bd = spec.param_breakdown()
    assert spec.param_count() == m["total"]  # exact, tied weights once
    assert {k: v for k, v in bd.items() if k != "total" and v} == m["parts"]
    assert spec.linear_modules() == m["linears"]
    assert spec.expert_matrices() == m["experts"]
    pub = spec.published_params
    rel = abs(spec.param_count() - pub) / pub
    if e["name"] in ROUNDED:
        assert rel <= count_tolerance(e["published"]), (spec.param_count(), e["published"])
    else:
        assert rel <= 0.01, f"{e['name']}: formula {spec.param_count():,} vs published {e['published']}"


@pytest.mark.parametrize("e", [e for e in ENTRIES if e.get("published_active")],
                         ids=[e["name"] for e in ENTRIES if e.get("published_active")])
def test_moe_active_count(e, measured):
    spec = catalog.spec_from_entry(e)
    m = measured(spec)
    # from the built model: every routed expert tensor scaled by the share a token uses
    k, E = spec.experts_per_token, spec.num_experts
    assert spec.active_param_count() == m["total"] - m["parts"]["experts"] * (E - k) // E
    # Vendors differ on counting the input embedding as "active" (DeepSeek leaves it out) and round
    # loosely (DeepSeek-V2-Lite: 2.45B without the embedding, published "2.4B"): 3% band.
    pub = spec.published_active_params
    tol = max(0.03, count_tolerance(e["published_active"]))
    best = min(abs(spec.active_param_count() - pub), abs(spec.active_param_count() - spec.param_breakdown()["embedding"] - pub))
    assert best / pub <= tol, (spec.active_param_count(), pub)


def test_lookup_by_name_or_hf_id_case_insensitive():
    assert catalog.get("LLAMA-3.1-8B").hf_id == "meta-llama/Llama-3.1-8B"
    assert catalog.get("qwen/qwen3-30b-a3b").name == "qwen3-30b-a3b"
    assert catalog.get("Qwen/Qwen3-30B-A3B").is_moe


def test_unknown_name_suggests_closest():
    from aipc.errors import AipcError

    with pytest.raises(AipcError) as ei:
        catalog.get("lama-3.1-8b")
    msg = str(ei.value)
    assert msg.startswith("unknown model 'lama-3.1-8b'; did you mean llama-3.1-8b")
    assert "aipc models" in msg and "\n" not in msg
