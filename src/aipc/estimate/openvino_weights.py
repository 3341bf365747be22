"""Bytes of a model's weights in an OpenVINO IR at fp16 / int8 / int4, as ``aipc convert --to openvino``
writes them (optimum-intel's export, NNCF's weight compression), without the IR.

The rules, from NNCF's weight compression (nncf/quantization/algorithms/weight_compression,
release 3.4) with optimum-intel's CLI defaults, checked against real exports in
tests/test_openvino_estimate.py:
* fp16: every matrix (linears, embedding, untied lm_head) at 2 bytes per element;
* int8 (``--weight-format int8``): every matrix, embedding included, u8 per-channel asymmetric:
  in·out bytes + per output channel an f16 scale and a u8 zero point (3 bytes);
* int4 (group 128, asymmetric, ratio 1.0): block linears as u4 in groups of g along the input:
  in·out / 2 bytes + per group an f16 scale and a u4 zero point (2.5 bytes); g = 128, or where the
  input width does not divide by 128 the largest power of two that divides it, if >= 32 ("adjust"
  fallback), else the matrix stays int8; the embeddings and the last MatMul (lm_head, or the tied
  embedding it reads) always take the int8 backup precision.
Norms and biases stay floating point and are counted at 4 bytes (a few KB per layer).
Import-light: aipc.models.params only.
"""

from __future__ import annotations

from aipc.models import params as MP
from aipc.models.spec import ModelSpec

FORMATS = ("fp16", "int8", "int4")
GROUP = 128
MIN_ADJUSTED_GROUP = 32


def matrix_bytes(fmt: str, n_in: int, n_out: int, *, backup: bool = False) -> int:
    """Bytes of one (n_out, n_in) weight matrix in ``fmt`` (``backup``: int4 mode's int8 layers)."""
    if fmt == "fp16":
        return 2 * n_in * n_out
    if fmt == "int8" or backup:
        return n_in * n_out + 3 * n_out
    g = group_size(n_in)
    if g is None:
        return n_in * n_out + 3 * n_out
    return n_in * n_out // 2 + n_out * (n_in // g) * 5 // 2


def group_size(n_in: int) -> int | None:
    """NNCF's int4 group for an input width: 128, else the largest power of two dividing it (>= 32)."""
    if n_in % GROUP == 0:
        return GROUP
    g = n_in & -n_in
    return g if MIN_ADJUSTED_GROUP <= g < GROUP else None


def weight_bytes(m: ModelSpec, fmt: str) -> dict[str, int]:
    """{"total", "per_step", "matrices", "embedding"}: all weight bytes; those a decode step reads
    (every matrix, the embedding table only when tied to the output, else one row of it; MoE: all
    experts, an upper bound); the compressed matrices alone; the embedding table."""
    if fmt not in FORMATS:
        raise ValueError(f"OpenVINO weight format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    lins = [(lin.in_features, lin.out_features, lin.count) for lin in MP.layer_linears(m)]
    H, V = m.hidden_size, m.vocab_size
    experts = MP.expert_params(m)
    linear = sum(c * matrix_bytes(fmt, i, o) for i, o, c in lins)
    if experts:  # routed experts: gate/up H->Im, down Im->H, each E per MoE layer
        Im, n = m.moe_intermediate_size or 0, MP.moe_layers(m) * m.num_experts
        linear += n * (2 * matrix_bytes(fmt, H, Im) + matrix_bytes(fmt, Im, H))
    emb = matrix_bytes(fmt, H, V, backup=True)
    head = 0 if m.tie_embeddings or not m.is_decoder else matrix_bytes(fmt, H, V, backup=True)
    small = 4 * (MP.norm_params(m) + MP.attention_extra_params(m) + MP.router_params(m) + MP.position_params(m)
                 + sum(c * o for i, o, c in ((lin.in_features, lin.out_features, lin.count)
                                             for lin in MP.layer_linears(m) if lin.bias)))
    per_step = linear + head + small + (emb if m.tie_embeddings else emb // max(V, 1))
    return {"total": linear + emb + head + small, "per_step": per_step, "matrices": linear + emb + head,
            "embedding": emb}
