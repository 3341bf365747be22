"""Exact bytes of a model in llama.cpp's GGUF file types, without the file.

Three steps, each checked against files llama.cpp itself writes (tests/test_estimate_quant.py):
1. the tensors llama.cpp's converter (convert_hf_to_gguf.py) writes for an architecture: names and
   shapes from the ModelSpec, 2-D weights at f16 (the converter's default --outtype), norms, biases,
   routers and learned positions at f32;
2. the type llama.cpp's quantizer (src/llama-quant.cpp, ``llama_tensor_get_type``) gives each
   tensor for a file type: the type's default (q4_k_m -> Q4_K), then its mix rules (attn_v and
   ffn_down of the first, last and every third layer at Q6_K for q4_k_m / q5_k_m; the output
   matrix — or the token embedding when it is tied to the output — at Q6_K; Mixtral's attn_k / attn_v
   at Q8_0 ...), then its fallback where a row does not divide into the type's blocks (Q4_K -> Q5_0,
   Q6_K -> Q8_0, ... -> F16);
3. bytes = elements / block size x block bytes (ggml's block sizes: ``gguf.GGML_QUANT_SIZES``).

The rules are llama.cpp's for the non-IQ file types in ``aipc.spec.GGUF_TYPES`` without an
importance matrix; IQ types are not modelled. The gguf library (numpy only) is imported on first use.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

from aipc.errors import AipcError
from aipc.estimate.params import _memo
from aipc.models import params as MP
from aipc.models.spec import ModelSpec


class GGUFTensor(NamedTuple):
    name: str
    ne0: int          # row length (elements per row): what a block type must divide
    n_elements: int
    n_dims: int
    layer: int        # -1 outside the blocks
    source: str       # type the converter writes: F16 (2-D weights) or F32


# file type -> the type most tensors get (llama.cpp's llama_ftype_get_default_type)
FTYPE_DEFAULT = {
    "f32": "F32", "f16": "F16", "bf16": "BF16", "q8_0": "Q8_0", "q4_0": "Q4_0", "q4_1": "Q4_1", "q5_0": "Q5_0",
    "q5_1": "Q5_1", "q2_k": "Q2_K", "q3_k_s": "Q3_K", "q3_k_m": "Q3_K", "q3_k_l": "Q3_K", "q4_k_s": "Q4_K",
    "q4_k_m": "Q4_K", "q5_k_s": "Q5_K", "q5_k_m": "Q5_K", "q6_k": "Q6_K",
}
FLOATS = ("F32", "F16", "BF16")
# llama.cpp's fallback when a row does not divide into the chosen type's blocks
FALLBACK = {"Q2_K": "Q4_0", "Q3_K": "Q4_0", "Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0"}
# HF module path (aipc.models.params) -> GGUF tensor name stem in a block (convert_hf_to_gguf's tensor map)
GGUF_NAMES = {
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "self_attn.qkv_proj": "attn_qkv", "attn.c_attn": "attn_qkv",
    "attn.c_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
    "mlp.gate_up_proj": "ffn_up", "mlp.c_fc": "ffn_up", "mlp.c_proj": "ffn_down",
    "mlp.shared_expert.gate_proj": "ffn_gate_shexp", "mlp.shared_expert.up_proj": "ffn_up_shexp",
    "mlp.shared_expert.down_proj": "ffn_down_shexp", "mlp.shared_experts.gate_proj": "ffn_gate_shexp",
    "mlp.shared_experts.up_proj": "ffn_up_shexp", "mlp.shared_experts.down_proj": "ffn_down_shexp",
    "mlp.shared_expert_gate": "ffn_gate_inp_shexp", "self_attn.q_a_proj": "attn_q_a",
    "self_attn.q_b_proj": "attn_q_b", "self_attn.kv_a_proj_with_mqa": "attn_kv_a_mqa",
    "self_attn.kv_b_proj": "attn_kv_b",
}


@lru_cache(maxsize=None)
def block_size(ggml_type: str) -> tuple[int, int]:
    """(elements per block, bytes per block) of a ggml type, from the gguf library (cached: the
    catalog-wide table asks it for every tensor of every model and type)."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    return GGML_QUANT_SIZES[GGMLQuantizationType[ggml_type]]


def tensor_bytes(ggml_type: str, n_elements: int) -> int:
    """Exact bytes of a tensor: whole blocks of the type (rows always hold whole blocks in GGUF)."""
    n, b = block_size(ggml_type)
    return n_elements // n * b


# ---- 1. the tensors the converter writes ------------------------------------------------------
def _block_tensors(m: ModelSpec) -> list[GGUFTensor]:
    """The matrices (with their biases) and the small f32 tensors of every block, in layer order.
    Attention matrices are in every layer, shared experts in the MoE layers, other FFN matrices in
    the dense-FFN layers (a MoE model's first ``dense_layers``, as DeepSeek and Qwen order them)."""
    n_dense = m.num_layers - MP.moe_layers(m)
    out = []
    for i in range(m.num_layers):
        moe = i >= n_dense
        for lin in MP.layer_linears(m):
            in_layer = (lin.part == "attention" or ("shared_expert" in lin.path) == moe)
            if not in_layer or lin.part == "other":
                continue
            stem = GGUF_NAMES.get(lin.path, lin.path.replace(".", "_"))
            src = "F32" if "gate_inp" in stem else "F16"
            out.append(GGUFTensor(f"blk.{i}.{stem}.weight", lin.in_features, lin.in_features * lin.out_features,
                                  2, i, src))
            if lin.bias:
                out.append(GGUFTensor(f"blk.{i}.{stem}.bias", lin.out_features, lin.out_features, 1, i, "F32"))
        out += _small_tensors(m, i, moe)
    return out


def _small_tensors(m: ModelSpec, i: int, moe: bool) -> list[GGUFTensor]:
    """Norms, QK-norms, and the router and fused experts of a MoE layer."""
    H, hd = m.hidden_size, m.head_dim
    f32 = [("attn_norm.weight", H), ("ffn_norm.weight", H)]
    f32 += [(n, H) for n in ("post_attention_norm.weight", "post_ffw_norm.weight") if m.norms_per_layer == 4]
    f32 += [("attn_norm.bias", H), ("ffn_norm.bias", H)] if m.norm == "layer" else []
    f32 += [("attn_q_norm.weight", hd), ("attn_k_norm.weight", hd)] if m.qk_norm else []
    out = [GGUFTensor(f"blk.{i}.{n}", c, c, 1, i, "F32") for n, c in f32]
    if moe:
        E, Im = m.num_experts, m.moe_intermediate_size or 0
        out.append(GGUFTensor(f"blk.{i}.ffn_gate_inp.weight", H, H * E, 2, i, "F32"))
        for stem, ne0 in (("ffn_gate_exps", H), ("ffn_up_exps", H), ("ffn_down_exps", Im)):
            out.append(GGUFTensor(f"blk.{i}.{stem}.weight", ne0, E * H * Im, 3, i, "F16"))
    return out


def converter_tensors(m: ModelSpec) -> tuple[GGUFTensor, ...]:
    """Every tensor llama.cpp's converter writes for this architecture (names, row lengths, sizes)."""
    return _memo(m, "gguf_tensors", lambda: _converter_tensors(m))


def _converter_tensors(m: ModelSpec) -> tuple[GGUFTensor, ...]:
    if m.kv_lora_rank or not m.is_decoder:
        raise AipcError(f"{m.name}: the GGUF layout of {m.model_type} is not modelled; estimate it from a "
                        ".gguf file ('aipc convert' writes one) or with --engine torch")
    H, V = m.hidden_size, m.vocab_size
    out = [GGUFTensor("token_embd.weight", H, V * H, 2, -1, "F16")]
    if m.position == "learned":
        out.append(GGUFTensor("position_embd.weight", H, m.max_position * H, 2, -1, "F32"))
    out.append(GGUFTensor("output_norm.weight", H, H, 1, -1, "F32"))
    if m.norm == "layer":
        out.append(GGUFTensor("output_norm.bias", H, H, 1, -1, "F32"))
    if not m.tie_embeddings:
        out.append(GGUFTensor("output.weight", H, V * H, 2, -1, "F16"))
    rope = m.config.get("rope_scaling")
    if isinstance(rope, dict) and rope.get("rope_type") == "llama3":  # llama-3.1's per-dimension RoPE factors
        out.append(GGUFTensor("rope_freqs.weight", m.head_dim // 2, m.head_dim // 2, 1, -1, "F32"))
    return tuple(out + _block_tensors(m))


# ---- 2. the type llama.cpp's quantizer gives each tensor ------------------------------------------
def _quantizable(t: GGUFTensor) -> bool:
    """llama.cpp quantizes 2-D and 3-D '*weight' tensors except norms, routers and learned positions."""
    return (t.n_dims >= 2 and t.name.endswith("weight") and "_norm.weight" not in t.name
            and "ffn_gate_inp" not in t.name and t.name not in ("position_embd.weight", "token_types.weight"))


@lru_cache(maxsize=4096)
def _category(name: str) -> str:
    """llama.cpp's tensor_get_category (first match wins, by substring)."""
    if name == "output.weight":
        return "output"
    if name == "token_embd.weight":
        return "token_embd"
    for key in ("attn_qkv", "attn_kv_b", "attn_v", "attn_k", "attn_q", "attn_output", "ffn_up", "ffn_gate", "ffn_down"):
        if f"{key}.weight" in name or (key.startswith("ffn") and key in name):
            return "attn_v" if key in ("attn_qkv", "attn_kv_b") else key
    return "other"


def _more_bits(i: int, n: int) -> bool:
    """llama.cpp's use_more_bits: the first and last eighth of the layers and every third one between."""
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def _mix(m: ModelSpec, t: GGUFTensor, ftype: str, new: str) -> str:
    """The ftype's mix rules for one tensor (non-IQ file types, no importance matrix, not Falcon)."""
    cat, i, n, experts = _category(t.name), t.layer, m.num_layers, m.num_experts
    if cat == "output" or (cat == "token_embd" and m.tie_embeddings):
        return "Q8_0" if t.ne0 % block_size(new)[0] else (new if new == "Q8_0" else "Q6_K")
    if cat == "attn_v":
        new = {"q2_k": "Q4_K" if m.num_heads // m.num_kv_heads >= 4 else "Q3_K", "q3_k_l": "Q5_K",
               "q3_k_m": "Q5_K" if i < 2 else "Q4_K"}.get(ftype, new)
        if (ftype in ("q4_k_m", "q5_k_m") and _more_bits(i, n)):
            new = "Q6_K"
        elif ftype == "q4_k_s" and i < 4:
            new = "Q5_K"
        if _is_70b(m) and new in ("Q3_K", "Q4_K"):
            new = "Q5_K"
        return "Q8_0" if experts == 8 else new
    if cat == "attn_k":
        return "Q8_0" if experts == 8 else new
    if cat == "ffn_down":
        return _ffn_down(ftype, new, i, n)
    if cat == "attn_output":
        if experts == 8:
            return "Q5_K" if ftype in ("q2_k", "q3_k_s", "q3_k_m", "q4_k_s", "q4_k_m") else new
        return {"q2_k": "Q3_K", "q3_k_m": "Q4_K", "q3_k_l": "Q5_K"}.get(ftype, new)
    return new


def _ffn_down(ftype: str, new: str, i: int, n: int) -> str:
    if ftype == "q2_k":
        return "Q3_K"
    if ftype == "q3_k_m":
        return "Q5_K" if i < n // 16 else "Q4_K"
    if ftype == "q3_k_l":
        return "Q5_K"
    if ftype in ("q4_k_m", "q5_k_m") and _more_bits(i, n):
        return "Q6_K"
    if ftype == "q4_k_s" and i < n // 8:
        return "Q5_K"
    return new


def _is_70b(m: ModelSpec) -> bool:
    """llama.cpp's LLM_TYPE_70B: an 80-layer Llama / Qwen2 with grouped-query attention."""
    return m.model_type in ("llama", "mistral", "qwen2") and m.num_layers == 80 and m.num_kv_heads < m.num_heads


def _fallback(t: GGUFTensor, new: str) -> str:
    """A row that does not divide into the type's blocks falls back (Q4_K -> Q5_0, ...; else F16)."""
    if t.ne0 % block_size(new)[0] == 0:
        return new
    new = FALLBACK.get(new, new)
    return new if t.ne0 % block_size(new)[0] == 0 else "F16"


def tensor_type(m: ModelSpec, t: GGUFTensor, ftype: str) -> str:
    """The ggml type of tensor ``t`` in a file of type ``ftype`` written by llama.cpp from an f16 conversion."""
    if ftype not in FTYPE_DEFAULT:
        raise AipcError(f"GGUF file type {ftype!r} is not modelled; use one of {', '.join(FTYPE_DEFAULT)}")
    default = FTYPE_DEFAULT[ftype]
    if not _quantizable(t):
        return t.source
    if default in FLOATS:
        return default
    return _fallback(t, _mix(m, t, ftype, default))


# ---- 3. bytes ----------------------------------------------------------------------------------
def gguf_types(m: ModelSpec, ftype: str) -> dict[str, str]:
    """Tensor name -> ggml type, for every tensor of the model in a file of type ``ftype``."""
    return _memo(m, ("gguf_types", ftype), lambda: {t.name: tensor_type(m, t, ftype) for t in converter_tensors(m)})


def gguf_parts(m: ModelSpec, ftype: str) -> dict[str, int]:
    """Exact bytes by part (token_embd, position_embd, output, blocks, other) of ``m`` at ``ftype``:
    the same parts a .gguf header gives (aipc.models.gguf.Header.parts)."""
    from aipc.models.gguf import part_of

    def f() -> dict[str, int]:
        types = gguf_types(m, ftype)
        out = {"token_embd": 0, "position_embd": 0, "output": 0, "blocks": 0, "other": 0}
        for t in converter_tensors(m):
            out[part_of(t.name)] += tensor_bytes(types[t.name], t.n_elements)
        return out
    return _memo(m, ("gguf_parts", ftype), f)


def weight_parts(m: ModelSpec, ftype: str) -> dict[str, int]:
    """Bytes by part: the file's own when ``m`` came from a .gguf of this type, else llama.cpp's mix."""
    if m.weight_format == ftype and m.weight_parts:
        return dict(m.weight_parts)
    return gguf_parts(m, ftype)


def matmul_mix(m: ModelSpec, ftype: str, head: bool = False) -> tuple[tuple[str, float], ...]:
    """Share of the blocks' matrix elements (what prefill multiplies every token by) per ggml type in a
    file of type ``ftype``, largest first: what llama.cpp's prefill time is spread over
    (aipc.estimate.kernels). ``head``: the output head counted too (output.weight, or the tied
    token_embd): a decode step multiplies its one token by every block matrix and by the head."""
    def f():
        types = gguf_types(m, ftype)
        tensors = converter_tensors(m)
        out = ("output.weight" if any(t.name == "output.weight" for t in tensors) else "token_embd.weight") if head else None
        by: dict[str, int] = {}
        for t in tensors:
            if (t.layer >= 0 and _quantizable(t)) or t.name == out:
                by[types[t.name]] = by.get(types[t.name], 0) + t.n_elements
        total = sum(by.values()) or 1
        return tuple(sorted(((k, v / total) for k, v in by.items()), key=lambda kv: -kv[1]))
    return _memo(m, ("matmul_mix", ftype, head), f)
