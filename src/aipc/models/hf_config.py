"""Map an HF ``config.json`` dict to ModelSpec fields, with one-line errors for malformed input.

Import-light (no transformers). Fields a config.json may omit take the default of the matching
transformers 5 config class (``DEFAULTS``; a test checks them against transformers).
"""

from __future__ import annotations

from typing import Any

from aipc.errors import AipcError

DECODERS = ("llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gemma2", "gemma3_text",
            "phi3", "deepseek_v2", "deepseek_v3", "gpt2")
ENCODERS = ("bert",)
SUPPORTED = DECODERS + ENCODERS
# multimodal wrappers whose language model we describe (the vision tower is not counted)
TEXT_OF = {"gemma3": "gemma3_text"}

_LLAMA = dict(tie_word_embeddings=False, attention_bias=False, mlp_bias=False, max_position_embeddings=2048)
DEFAULTS: dict[str, dict[str, Any]] = {
    "llama": _LLAMA,
    "mistral": dict(tie_word_embeddings=False, max_position_embeddings=131072, sliding_window=4096),
    "mixtral": dict(tie_word_embeddings=False, max_position_embeddings=131072, sliding_window=None,
                    num_local_experts=8, num_experts_per_tok=2),
    "qwen2": dict(tie_word_embeddings=False, max_position_embeddings=32768, use_sliding_window=False,
                  sliding_window=4096, max_window_layers=28),
    "qwen2_moe": dict(tie_word_embeddings=False, max_position_embeddings=32768, use_sliding_window=False,
                      max_window_layers=28, num_experts=60, num_experts_per_tok=4, moe_intermediate_size=1408,
                      shared_expert_intermediate_size=5632, decoder_sparse_step=1, mlp_only_layers=[], qkv_bias=True),
    "qwen3": dict(tie_word_embeddings=False, attention_bias=False, max_position_embeddings=32768, head_dim=128,
                  use_sliding_window=False, max_window_layers=28),
    "qwen3_moe": dict(tie_word_embeddings=False, attention_bias=False, max_position_embeddings=32768,
                      use_sliding_window=False, num_experts=128, num_experts_per_tok=8,
                      moe_intermediate_size=768, decoder_sparse_step=1, mlp_only_layers=[]),
    "gemma2": dict(tie_word_embeddings=True, attention_bias=False, max_position_embeddings=8192, head_dim=256,
                   sliding_window=4096, vocab_size=256000, num_attention_heads=8, num_key_value_heads=4),
    "gemma3_text": dict(tie_word_embeddings=True, attention_bias=False, max_position_embeddings=131072, head_dim=256,
                        sliding_window=4096, sliding_window_pattern=6, vocab_size=262208,
                        num_attention_heads=8, num_key_value_heads=4),
    "phi3": dict(tie_word_embeddings=False, max_position_embeddings=4096, sliding_window=None),
    "deepseek_v2": dict(tie_word_embeddings=False, attention_bias=False, mlp_bias=False, max_position_embeddings=2048,
                        n_routed_experts=64, n_shared_experts=2, first_k_dense_replace=0, kv_lora_rank=512,
                        q_lora_rank=1536, qk_rope_head_dim=64, qk_nope_head_dim=128, v_head_dim=128),
    "deepseek_v3": dict(tie_word_embeddings=False, attention_bias=False, max_position_embeddings=4096,
                        num_experts_per_tok=8, n_routed_experts=256, n_shared_experts=1, first_k_dense_replace=3,
                        kv_lora_rank=512, q_lora_rank=1536, qk_rope_head_dim=64, qk_nope_head_dim=128,
                        v_head_dim=128),
    "gpt2": dict(tie_word_embeddings=True, vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12,
                 n_inner=None),
    "bert": dict(tie_word_embeddings=True, vocab_size=30522, max_position_embeddings=512, type_vocab_size=2),
}
_MISSING = object()


class _Reader:
    """Reads fields from a config dict (falling back to DEFAULTS) and validates them."""

    def __init__(self, cfg: dict[str, Any], model_type: str, origin: str):
        self.cfg, self.mt, self.origin = cfg, model_type, origin

    def raw(self, key: str, default: Any = _MISSING) -> Any:
        """The value of ``key``: explicit null -> None; omitted -> the transformers default, else ``default``."""
        if key in self.cfg:
            return self.cfg[key]
        if key in DEFAULTS.get(self.mt, {}):
            return DEFAULTS[self.mt][key]
        if default is _MISSING:
            raise self.error(key, "is missing")
        return default

    def error(self, key: str, what: str) -> AipcError:
        return AipcError(f"{self.origin}: field '{key}' {what}; fix the config or pass another model")

    def pos_int(self, key: str, default: Any = _MISSING) -> Any:
        v = self.raw(key, default)
        if v is None and default is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise self.error(key, f"must be a positive integer (got {v!r})")
        return v

    def count(self, key: str, default: int = 0) -> int:
        """A non-negative integer (0 allowed), e.g. experts or dense layers."""
        v = self.raw(key, default)
        v = default if v is None else v
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise self.error(key, f"must be a non-negative integer (got {v!r})")
        return v

    def flag(self, key: str, default: bool = False) -> bool:
        v = self.raw(key, default)
        v = default if v is None else v
        if not isinstance(v, bool):
            raise self.error(key, f"must be true or false (got {v!r})")
        return v


def text_part(cfg: dict[str, Any], origin: str) -> dict[str, Any]:
    """The config of the language model: ``cfg`` itself, or the ``text_config`` of a multimodal wrapper."""
    if not isinstance(cfg, dict):
        raise AipcError(f"{origin}: expected a JSON object, got {type(cfg).__name__}; pass an HF config.json")
    mt = cfg.get("model_type")
    if isinstance(mt, str) and mt in TEXT_OF:
        text = cfg.get("text_config")
        if not isinstance(text, dict):
            raise AipcError(f"{origin}: field 'text_config' must be an object for model_type '{mt}'; "
                            "fix the config or pass the text model's config.json")
        return {**text, "model_type": text.get("model_type") or TEXT_OF[mt]}
    return cfg


def parse(cfg: dict[str, Any], origin: str = "config.json") -> tuple[dict[str, Any], dict[str, Any]]:
    """(ModelSpec field values, the language-model config used) from an HF config dict."""
    cfg = text_part(cfg, origin)
    mt = cfg.get("model_type")
    if mt is None:
        raise AipcError(f"{origin}: field 'model_type' is missing; pass an HF config.json (it names the architecture)")
    if not isinstance(mt, str):
        raise AipcError(f"{origin}: field 'model_type' must be a string (got {type(mt).__name__}); pass an HF config.json")
    if mt not in SUPPORTED:
        raise AipcError(f"{origin}: model_type '{mt}' is not supported; supported: {', '.join(SUPPORTED)} "
                        "(and gemma3 multimodal, whose text model is used)")
    r = _Reader(cfg, mt, origin)
    f = _gpt2(r) if mt == "gpt2" else _bert(r) if mt == "bert" else _decoder(r)
    if f["num_heads"] % f["num_kv_heads"]:
        key = "num_key_value_heads"
        raise r.error(key, f"({f['num_kv_heads']}) must divide the number of attention heads ({f['num_heads']})")
    if f.get("num_experts") and f.get("experts_per_token", 0) > f["num_experts"]:
        raise r.error("num_experts_per_tok", f"({f['experts_per_token']}) must not exceed the number of experts "
                                             f"({f['num_experts']})")
    return {"model_type": mt, **f}, cfg


def _head_dim(r: _Reader, hidden: int, heads: int, key: str = "hidden_size") -> int:
    hd = r.pos_int("head_dim", None)
    if hd is None:
        if hidden % heads:
            raise r.error(key, f"({hidden}) is not divisible by the number of heads ({heads}) and no head_dim is given")
        hd = hidden // heads
    return hd


def _decoder(r: _Reader) -> dict[str, Any]:
    mt = r.mt
    L, H = r.pos_int("num_hidden_layers"), r.pos_int("hidden_size")
    nh = r.pos_int("num_attention_heads")
    nkv = r.pos_int("num_key_value_heads", None) or nh
    f: dict[str, Any] = dict(
        num_layers=L, hidden_size=H, num_heads=nh, num_kv_heads=nkv, head_dim=_head_dim(r, H, nh),
        intermediate_size=r.pos_int("intermediate_size"), ffn_gated=True, vocab_size=r.pos_int("vocab_size"),
        tie_embeddings=r.flag("tie_word_embeddings"), max_position=r.pos_int("max_position_embeddings"),
        position="rope", norm="rms",
    )
    if mt == "qwen2":
        f.update(qkv_bias=True, o_bias=False)
    elif mt == "qwen2_moe":
        f.update(qkv_bias=r.flag("qkv_bias", True), o_bias=False)
    elif mt in ("mistral", "mixtral", "phi3"):
        f.update(qkv_bias=False, o_bias=False)
    else:
        bias = r.flag("attention_bias")
        f.update(qkv_bias=bias, o_bias=bias)
    f["mlp_bias"] = r.flag("mlp_bias") if mt in ("llama", "deepseek_v2") else False
    f["qk_norm"] = mt in ("qwen3", "qwen3_moe", "gemma3_text")
    f["norms_per_layer"] = 4 if mt in ("gemma2", "gemma3_text") else 2
    f.update(_sliding(r, L))
    f.update(_moe(r, L, f["intermediate_size"]))
    if mt.startswith("deepseek"):
        f.update(_mla(r))
        f["head_dim"] = f["qk_nope_head_dim"] + f["qk_rope_head_dim"]
    return f


def _sliding(r: _Reader, L: int) -> dict[str, Any]:
    """sliding_window and how many layers use it (from layer_types when present)."""
    mt, qwen = r.mt, r.mt in ("qwen2", "qwen2_moe", "qwen3", "qwen3_moe")
    if mt not in ("mistral", "mixtral", "phi3", "gemma2", "gemma3_text") and not qwen:
        return {"sliding_window": None, "sliding_layers": 0}
    if qwen and not r.flag("use_sliding_window"):  # Qwen configs carry a window they do not use
        return {"sliding_window": None, "sliding_layers": 0}
    window = r.pos_int("sliding_window", None)
    if window is None:
        return {"sliding_window": None, "sliding_layers": 0}
    types = r.cfg.get("layer_types")
    if isinstance(types, list) and types:
        if len(types) != L or not all(isinstance(t, str) for t in types):
            raise r.error("layer_types", f"must list one attention type per layer ({L})")
        n = sum(t == "sliding_attention" for t in types)
    elif qwen:
        n = max(0, L - r.count("max_window_layers", L))  # layers from max_window_layers on slide
    elif mt == "gemma2":
        n = (L + 1) // 2  # layers 0, 2, 4, ... slide
    elif mt == "gemma3_text":
        p = r.pos_int("sliding_window_pattern", r.cfg.get("_sliding_window_pattern") or 6)
        n = L - L // p  # every p-th layer is global
    else:
        n = L
    return {"sliding_window": window if n else None, "sliding_layers": n}


def _moe(r: _Reader, L: int, intermediate: int) -> dict[str, Any]:
    mt = r.mt
    if mt == "mixtral":
        return dict(num_experts=r.pos_int("num_local_experts"), experts_per_token=r.pos_int("num_experts_per_tok"),
                    moe_intermediate_size=intermediate)
    if mt in ("qwen2_moe", "qwen3_moe"):
        # config.json says num_experts; transformers 5 may save it as num_local_experts
        E = r.count("num_local_experts" if "num_local_experts" in r.cfg else "num_experts", 0)
        if not E:
            return {}
        step = r.pos_int("decoder_sparse_step")
        only = r.raw("mlp_only_layers", [])
        if not isinstance(only, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in only):
            raise r.error("mlp_only_layers", "must be a list of layer indices")
        n_moe = sum(1 for i in range(L) if i not in only and (i + 1) % step == 0)
        f = dict(num_experts=E, experts_per_token=r.pos_int("num_experts_per_tok"),
                 moe_intermediate_size=r.pos_int("moe_intermediate_size"), dense_layers=L - n_moe)
        if mt == "qwen2_moe":
            S = r.count("shared_expert_intermediate_size", 0)
            f.update(shared_experts=1 if S else 0, shared_expert_intermediate_size=S or None, shared_expert_gate=bool(S))
        return f
    if mt.startswith("deepseek"):
        E = r.count("n_routed_experts", 0)
        if not E:
            return {}
        Im, ns = r.pos_int("moe_intermediate_size"), r.count("n_shared_experts", 0)
        return dict(num_experts=E, experts_per_token=r.pos_int("num_experts_per_tok"), moe_intermediate_size=Im,
                    shared_experts=ns, shared_expert_intermediate_size=Im * ns or None,
                    dense_layers=min(L, r.count("first_k_dense_replace", 0)))
    return {}


def _mla(r: _Reader) -> dict[str, Any]:
    return dict(kv_lora_rank=r.pos_int("kv_lora_rank"), q_lora_rank=r.pos_int("q_lora_rank", None),
                qk_rope_head_dim=r.pos_int("qk_rope_head_dim"), qk_nope_head_dim=r.pos_int("qk_nope_head_dim"),
                v_head_dim=r.pos_int("v_head_dim"))


def _gpt2(r: _Reader) -> dict[str, Any]:
    L, H, nh = r.pos_int("n_layer"), r.pos_int("n_embd"), r.pos_int("n_head")
    return dict(num_layers=L, hidden_size=H, num_heads=nh, num_kv_heads=nh, head_dim=_head_dim(r, H, nh, "n_embd"),
                intermediate_size=r.pos_int("n_inner", None) or 4 * H, ffn_gated=False,
                vocab_size=r.pos_int("vocab_size"), tie_embeddings=r.flag("tie_word_embeddings", True),
                max_position=r.pos_int("n_positions"), position="learned", norm="layer",
                qkv_bias=True, o_bias=True, mlp_bias=True)


def _bert(r: _Reader) -> dict[str, Any]:
    L, H, nh = r.pos_int("num_hidden_layers"), r.pos_int("hidden_size"), r.pos_int("num_attention_heads")
    return dict(num_layers=L, hidden_size=H, num_heads=nh, num_kv_heads=nh, head_dim=_head_dim(r, H, nh),
                intermediate_size=r.pos_int("intermediate_size"), ffn_gated=False, vocab_size=r.pos_int("vocab_size"),
                tie_embeddings=r.flag("tie_word_embeddings", True), max_position=r.pos_int("max_position_embeddings"),
                position="learned", norm="layer", is_decoder=False, qkv_bias=True, o_bias=True, mlp_bias=True,
                token_types=r.count("type_vocab_size", 2), pooler=True)


def parse_count(text: str | int) -> int:
    """'1.23B' -> 1_230_000_000, '124M' -> 124_000_000, '2,614,636,800' -> 2614636800."""
    if isinstance(text, int):
        return text
    t = text.strip().replace(",", "").replace("_", "")
    mult = {"K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}.get(t[-1:].upper())
    value = float(t[:-1]) * mult if mult else float(t)
    return int(round(value))


def count_tolerance(text: str | int) -> float:
    """Relative rounding half-width of a published count: '1.7B' -> 0.05/1.7; exact integers -> 0."""
    if isinstance(text, int) or text[-1:].upper() not in "KMBT":
        return 0.0
    digits = text.strip()[:-1]
    decimals = len(digits.split(".", 1)[1]) if "." in digits else 0
    return 0.5 * 10 ** -decimals / float(digits)

