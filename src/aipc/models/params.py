"""Parameter-count formulas from a ModelSpec's fields (no model is built).

Notation: L layers, H hidden size, nh query heads, nkv key/value heads, hd head dim, I dense FFN
width, V vocab, E routed experts, k experts per token, Im expert FFN width, S shared-expert FFN width,
P learned positions. ``L_moe`` = layers whose FFN is a mixture of experts, ``L_dense = L - L_moe``.

Every matrix is listed once by :func:`layer_linears` as ``(path, in, out, count, bias)``, where
``path`` is the module path below the layer (``self_attn.q_proj``, ``mlp.c_fc``) as transformers 5
names it; the per-part counts below are sums over that list plus the non-matrix parameters
(norms, embeddings, fused expert tensors, routers). Import-light: pure Python.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # pragma: no cover
    from aipc.models.spec import ModelSpec


class Linear(NamedTuple):
    path: str        # module path below the layer index, e.g. "self_attn.q_proj"
    in_features: int
    out_features: int
    count: int       # how many such modules in the whole model
    bias: bool
    part: str        # attention | mlp | router | other


def moe_layers(s: ModelSpec) -> int:
    """L_moe = L - dense_layers for a MoE model, else 0."""
    return s.num_layers - s.dense_layers if s.num_experts else 0


def dense_ffn_layers(s: ModelSpec) -> int:
    """L_dense = L - L_moe: layers with an ordinary (dense) FFN."""
    return s.num_layers - moe_layers(s)


def attention_linears(s: ModelSpec) -> list[Linear]:
    """Attention matrices, per the family's layout (count = L each).

    standard: q H→nh·hd, k,v H→nkv·hd, o nh·hd→H (phi3 fuses q,k,v into qkv_proj H→(nh+2·nkv)·hd;
    GPT-2 c_attn H→3H; BERT query/key/value/attention.output.dense).
    MLA (DeepSeek): q H→nh·(d_nope+d_rope) or q_a H→r_q then q_b r_q→nh·(d_nope+d_rope);
    kv_a_proj_with_mqa H→r_kv+d_rope; kv_b r_kv→nh·(d_nope+d_v); o nh·d_v→H.
    """
    L, H, qb, ob = s.num_layers, s.hidden_size, s.qkv_bias, s.o_bias
    q_out, kv_out = s.num_heads * s.head_dim, s.num_kv_heads * s.head_dim
    if s.kv_lora_rank:  # MLA
        qk = (s.qk_nope_head_dim or 0) + (s.qk_rope_head_dim or 0)
        out = []
        if s.q_lora_rank:
            out += [Linear("self_attn.q_a_proj", H, s.q_lora_rank, L, qb, "attention"),
                    Linear("self_attn.q_b_proj", s.q_lora_rank, s.num_heads * qk, L, False, "attention")]
        else:
            out.append(Linear("self_attn.q_proj", H, s.num_heads * qk, L, False, "attention"))
        out += [
            Linear("self_attn.kv_a_proj_with_mqa", H, s.kv_lora_rank + (s.qk_rope_head_dim or 0), L, qb, "attention"),
            Linear("self_attn.kv_b_proj", s.kv_lora_rank, s.num_heads * ((s.qk_nope_head_dim or 0) + (s.v_head_dim or 0)),
                   L, False, "attention"),
            Linear("self_attn.o_proj", s.num_heads * (s.v_head_dim or 0), H, L, ob, "attention"),
        ]
        return out
    if s.model_type == "gpt2":
        return [Linear("attn.c_attn", H, 3 * H, L, qb, "attention"), Linear("attn.c_proj", H, H, L, ob, "attention")]
    if s.model_type == "bert":
        return [Linear(f"attention.self.{n}", H, H, L, qb, "attention") for n in ("query", "key", "value")] + [
            Linear("attention.output.dense", H, H, L, ob, "attention")]
    if s.model_type == "phi3":
        return [Linear("self_attn.qkv_proj", H, q_out + 2 * kv_out, L, qb, "attention"),
                Linear("self_attn.o_proj", q_out, H, L, ob, "attention")]
    return [Linear("self_attn.q_proj", H, q_out, L, qb, "attention"),
            Linear("self_attn.k_proj", H, kv_out, L, qb, "attention"),
            Linear("self_attn.v_proj", H, kv_out, L, qb, "attention"),
            Linear("self_attn.o_proj", q_out, H, L, ob, "attention")]


def mlp_linears(s: ModelSpec) -> list[Linear]:
    """Dense-FFN and shared-expert matrices (routed experts are fused tensors: see expert_params).

    gated (SwiGLU/GeGLU): gate,up H→I and down I→H in each of L_dense layers (phi3 fuses
    gate_up H→2I); plain: up H→I, down I→H (GPT-2 c_fc/c_proj, BERT intermediate/output.dense).
    Shared experts, in each of L_moe layers: gate,up H→S, down S→H (Qwen2-MoE adds a gate H→1).
    """
    H, I, mb, Ld = s.hidden_size, s.intermediate_size, s.mlp_bias, dense_ffn_layers(s)
    out: list[Linear] = []
    if Ld:
        if s.model_type == "gpt2":
            out += [Linear("mlp.c_fc", H, I, Ld, mb, "mlp"), Linear("mlp.c_proj", I, H, Ld, mb, "mlp")]
        elif s.model_type == "bert":
            out += [Linear("intermediate.dense", H, I, Ld, mb, "mlp"), Linear("output.dense", I, H, Ld, mb, "mlp")]
        elif s.model_type == "phi3":
            out += [Linear("mlp.gate_up_proj", H, 2 * I, Ld, mb, "mlp"), Linear("mlp.down_proj", I, H, Ld, mb, "mlp")]
        elif s.ffn_gated:
            out += [Linear("mlp.gate_proj", H, I, Ld, mb, "mlp"), Linear("mlp.up_proj", H, I, Ld, mb, "mlp"),
                    Linear("mlp.down_proj", I, H, Ld, mb, "mlp")]
        else:
            out += [Linear("mlp.up_proj", H, I, Ld, mb, "mlp"), Linear("mlp.down_proj", I, H, Ld, mb, "mlp")]
    Lm, S = moe_layers(s), s.shared_expert_intermediate_size
    if Lm and S:
        p = "mlp.shared_expert" if s.model_type == "qwen2_moe" else "mlp.shared_experts"
        out += [Linear(f"{p}.gate_proj", H, S, Lm, False, "mlp"), Linear(f"{p}.up_proj", H, S, Lm, False, "mlp"),
                Linear(f"{p}.down_proj", S, H, Lm, False, "mlp")]
    if Lm and s.shared_expert_gate:
        out.append(Linear("mlp.shared_expert_gate", H, 1, Lm, False, "router"))
    return out


def other_linears(s: ModelSpec) -> list[Linear]:
    """Matrices outside the layers that LoRA could target: BERT's pooler H→H (with bias)."""
    return [Linear("pooler.dense", s.hidden_size, s.hidden_size, 1, True, "other")] if s.pooler else []


def layer_linears(s: ModelSpec) -> list[Linear]:
    """Every nn.Linear / GPT-2 Conv1D except lm_head, with its (in, out, count)."""
    return attention_linears(s) + mlp_linears(s) + other_linears(s)


def linear_params(lins: list[Linear]) -> int:
    """Σ count·(in·out + out·bias)."""
    return sum(m.count * (m.in_features * m.out_features + (m.out_features if m.bias else 0)) for m in lins)


def attention_extra_params(s: ModelSpec) -> int:
    """Norms inside attention: QK-norm 2·hd per layer (Qwen3, Gemma 3); MLA: r_kv (+ r_q) per layer."""
    per_layer = 2 * s.head_dim if s.qk_norm else 0
    if s.kv_lora_rank:
        per_layer += s.kv_lora_rank + (s.q_lora_rank or 0)
    return s.num_layers * per_layer


def expert_params(s: ModelSpec) -> int:
    """Routed experts: L_moe · E · 3·H·Im (gate, up, down; no biases)."""
    return moe_layers(s) * s.num_experts * 3 * s.hidden_size * (s.moe_intermediate_size or 0)


def router_params(s: ModelSpec) -> int:
    """Routers: L_moe · E·H (plus Qwen2-MoE's shared-expert gate, counted in its Linear list)."""
    return moe_layers(s) * s.num_experts * s.hidden_size


def norm_params(s: ModelSpec) -> int:
    """(L · norms_per_layer + 1) · n, n = H for RMSNorm, 2H for LayerNorm (weight + bias).

    The +1 is the final norm (BERT has none, but its embedding LayerNorm has the same size).
    """
    n = s.hidden_size * (2 if s.norm == "layer" else 1)
    return (s.num_layers * s.norms_per_layer + 1) * n


def embedding_params(s: ModelSpec) -> int:
    """Token embeddings: V·H."""
    return s.vocab_size * s.hidden_size


def position_params(s: ModelSpec) -> int:
    """Learned positions P·H (GPT-2, BERT) plus BERT's token-type embeddings T·H; RoPE has none."""
    pos = s.max_position * s.hidden_size if s.position == "learned" else 0
    return pos + s.token_types * s.hidden_size


def lm_head_params(s: ModelSpec) -> int:
    """V·H for a decoder with untied output embeddings, else 0 (tied: shared with the embedding)."""
    return s.vocab_size * s.hidden_size if s.is_decoder and not s.tie_embeddings else 0


def breakdown(s: ModelSpec) -> dict[str, int]:
    """Parameters by part; keys are stable and always present (0 when a part is absent)."""
    lins = layer_linears(s)
    by_part = {p: linear_params([m for m in lins if m.part == p]) for p in ("attention", "mlp", "router", "other")}
    out = {
        "embedding": embedding_params(s),
        "position": position_params(s),
        "attention": by_part["attention"] + attention_extra_params(s),
        "mlp": by_part["mlp"],
        "experts": expert_params(s),
        "router": router_params(s) + by_part["router"],
        "norms": norm_params(s),
        "lm_head": lm_head_params(s),
        "other": by_part["other"],
    }
    out["total"] = sum(out.values())
    return out


def inactive_expert_params(s: ModelSpec) -> int:
    """Routed-expert weights a token does not touch: L_moe · (E − k) · 3·H·Im."""
    if not s.num_experts:
        return 0
    return moe_layers(s) * (s.num_experts - s.experts_per_token) * 3 * s.hidden_size * (s.moe_intermediate_size or 0)


def module_key_map(entries: list[tuple[str, int, int, int]]) -> dict[str, tuple[int, int, int]]:
    """Name each (path, in, out, count) by its short name (last path part) when that name has one
    shape in the model, else by its path below the layer; counts of equal keys are summed."""
    shapes: dict[str, set[tuple[int, int]]] = {}
    for path, i, o, _ in entries:
        shapes.setdefault(path.rsplit(".", 1)[-1], set()).add((i, o))
    out: dict[str, tuple[int, int, int]] = {}
    for path, i, o, c in entries:
        short = path.rsplit(".", 1)[-1]
        key = short if len(shapes[short]) == 1 else path
        prev = out.get(key)
        out[key] = (i, o, c + (prev[2] if prev else 0))
    return out
